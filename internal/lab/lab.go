package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/calico-go/calico/pkg/client"
)

// Env is what every command needs to know about where it runs.
type Env struct {
	// RunDir holds the labs' directories (default DefaultRunDir).
	RunDir string
	// Self is the calico-lab executable, re-executed as the datastore and
	// the workloads' echo servers (default os.Executable).
	Self string
	// Out receives progress and messages (default os.Stderr).
	Out io.Writer
}

func (e Env) withDefaults() (Env, error) {
	if e.RunDir == "" {
		e.RunDir = DefaultRunDir
	}
	if e.Out == nil {
		e.Out = os.Stderr
	}
	if e.Self == "" {
		exe, err := os.Executable()
		if err != nil {
			return e, fmt.Errorf("find the calico-lab executable: %w", err)
		}
		if r, err := filepath.EvalSymlinks(exe); err == nil {
			exe = r
		}
		e.Self = exe
	}
	return e, nil
}

// ErrNotRoot: the lab needs root (namespaces, links, nftables).
var ErrNotRoot = errors.New("calico-lab needs root")

func requireRoot() error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("%w: it creates network namespaces, links and nftables tables; run it with sudo", ErrNotRoot)
	}
	return nil
}

// Lab is one open lab: its state and the connections commands share.
type Lab struct {
	env   Env
	st    store
	state *State
	out   *progress

	mu     sync.Mutex // guards state while workloads are added concurrently
	cli    *client.Client
	unlock func()
}

// Open opens the named lab for a command; write takes its lock, so that
// commands that change the lab run one at a time. Close releases it.
func Open(env Env, name string, write bool) (*Lab, error) {
	env, err := env.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := CheckLabName(name); err != nil {
		return nil, err
	}
	l := &Lab{env: env, st: store{dir: filepath.Join(env.RunDir, name)}, out: newProgress(env.Out)}
	if write {
		if err := requireRoot(); err != nil {
			return nil, err
		}
		if _, err := os.Stat(l.st.dir); err != nil {
			_, err = l.st.load(name)
			return nil, err
		}
		if l.unlock, err = l.st.lock(); err != nil {
			return nil, err
		}
	}
	if l.state, err = l.st.load(name); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

// State returns a copy of the lab's state.
func (l *Lab) State() State {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := *l.state
	s.Hosts = append([]Host(nil), s.Hosts...)
	s.Workloads = append([]Workload(nil), s.Workloads...)
	return s
}

// Close releases the lock and the datastore connection.
func (l *Lab) Close() {
	if l.cli != nil {
		l.cli.Close()
		l.cli = nil
	}
	if l.unlock != nil {
		l.unlock()
		l.unlock = nil
	}
}

// save writes the state.
func (l *Lab) save() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.st.save(l.state)
}

// client connects to the lab's datastore (once).
func (l *Lab) client(ctx context.Context) (*client.Client, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cli != nil {
		return l.cli, nil
	}
	cfg := client.Config{Spec: client.ConfigSpec{DatastoreType: client.EtcdV3, EtcdEndpoints: strings.Join(l.state.Endpoints, ",")}}
	c, err := client.New(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("lab datastore: %w", err)
	}
	l.cli = c
	return c, nil
}

// bin is the path of one of the binaries.
func (l *Lab) bin(name string) string { return filepath.Join(l.state.BinDir, name) }

// baseEnv is the environment of the processes the lab runs: a PATH and
// the datastore as the hosts see it.
func (l *Lab) baseEnv(hostSide bool) []string {
	eps := l.state.Endpoints
	if hostSide {
		eps = l.state.HostEndpoints
	}
	return []string{
		"PATH=" + os.Getenv("PATH"),
		"DATASTORE_TYPE=etcdv3",
		"ETCD_ENDPOINTS=" + strings.Join(eps, ","),
	}
}
