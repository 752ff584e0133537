package lab

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
)

// DefaultRunDir holds one directory per lab (its state, logs, sockets and
// the embedded datastore's data).
const DefaultRunDir = "/run/calico-lab"

// ErrNoLab: the named lab does not exist (no state directory).
var ErrNoLab = errors.New("no such lab")

// ErrExists: a lab of that name exists already, or left things behind.
var ErrExists = errors.New("a lab of that name exists")

// State is what a lab is made of, kept in <dir>/state.json. Every command
// reads it; the commands that change the lab write it back under the
// lab's lock.
type State struct {
	Name      string       `json:"name"`
	Backend   string       `json:"backend"`
	Dataplane string       `json:"dataplane"`
	Pool      netip.Prefix `json:"pool"`
	Underlay  netip.Prefix `json:"underlay"`
	// Gateway is the underlay bridge's address: the hosts' default route
	// and where they reach the datastore.
	Gateway netip.Addr `json:"gateway"`
	// Endpoints reach the datastore from the machine; HostEndpoints from
	// inside the hosts (the relay on the underlay).
	Endpoints     []string `json:"endpoints"`
	HostEndpoints []string `json:"hostEndpoints"`
	// External is true when the datastore is not the lab's own.
	External     bool       `json:"external,omitempty"`
	DatastorePID int        `json:"datastorePID,omitempty"`
	BinDir       string     `json:"binDir"`
	Example      string     `json:"example,omitempty"`
	Hosts        []Host     `json:"hosts"`
	Workloads    []Workload `json:"workloads"`
}

// Host is one host namespace running calico-node.
type Host struct {
	Name string     `json:"name"`
	Addr netip.Addr `json:"addr"`
	PID  int        `json:"pid,omitempty"`
}

// Workload is one workload namespace attached by the CNI plugin.
type Workload struct {
	Namespace   string            `json:"namespace"`
	Name        string            `json:"name"`
	Host        string            `json:"host"`
	Labels      map[string]string `json:"labels,omitempty"`
	ContainerID string            `json:"containerID"`
	Addr        netip.Addr        `json:"addr"`
	Ports       []int             `json:"ports"`
	PID         int               `json:"pid,omitempty"`
}

// ID is "namespace/name".
func (w Workload) ID() string { return ID(w.Namespace, w.Name) }

// host returns the named host.
func (s *State) host(name string) (*Host, bool) {
	for i := range s.Hosts {
		if s.Hosts[i].Name == name {
			return &s.Hosts[i], true
		}
	}
	return nil, false
}

// workload finds a workload by "ns/name", or by a bare name when exactly one
// workload has it.
func (s *State) workload(ref string) (*Workload, error) {
	var found []*Workload
	for i := range s.Workloads {
		w := &s.Workloads[i]
		if w.ID() == ref || (!strings.Contains(ref, "/") && w.Name == ref) {
			found = append(found, w)
		}
	}
	switch len(found) {
	case 0:
		return nil, fmt.Errorf("lab %q has no workload %q (see `calico-lab status`): %w", s.Name, ref, ErrInvalid)
	case 1:
		return found[0], nil
	}
	return nil, fmt.Errorf("workload name %q is ambiguous; use namespace/name: %w", ref, ErrInvalid)
}

// sortedWorkloads are the workloads ordered by ID.
func (s *State) sortedWorkloads() []Workload {
	ws := slices.Clone(s.Workloads)
	slices.SortFunc(ws, func(a, b Workload) int { return strings.Compare(a.ID(), b.ID()) })
	return ws
}

// store is a lab's directory.
type store struct {
	dir string
}

func (st store) statePath() string       { return filepath.Join(st.dir, "state.json") }
func (st store) hostDir(h string) string { return filepath.Join(st.dir, "hosts", h) }
func (st store) workloadDir(id string) string {
	return filepath.Join(st.dir, "workloads", strings.ReplaceAll(id, "/", "."))
}

// load reads the state; a missing directory is ErrNoLab.
func (st store) load(name string) (*State, error) {
	b, err := os.ReadFile(st.statePath())
	if errors.Is(err, fs.ErrNotExist) {
		if _, derr := os.Stat(st.dir); errors.Is(derr, fs.ErrNotExist) {
			return nil, fmt.Errorf("lab %q (%s): %w; start one with `calico-lab up --name %s`", name, st.dir, ErrNoLab, name)
		}
		return nil, fmt.Errorf("lab %q has no state (an `up` failed or is still running); `calico-lab down --name %s` removes what is left: %w", name, name, ErrNoLab)
	}
	if err != nil {
		return nil, fmt.Errorf("read lab state: %w", err)
	}
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("decode lab state %s: %w", st.statePath(), err)
	}
	return &s, nil
}

// save writes the state atomically.
func (st store) save(s *State) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("encode lab state: %w", err)
	}
	return writeFileAtomic(st.statePath(), append(b, '\n'))
}

// lock takes the lab's exclusive lock (a flock on <dir>/lock), waiting
// for another command to finish. The returned function releases it.
func (st store) lock() (func(), error) {
	f, err := os.OpenFile(filepath.Join(st.dir, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lab lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lab lock: %w", err)
	}
	return func() { f.Close() }, nil
}

func writeFileAtomic(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("create %s: %w", filepath.Dir(path), err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
