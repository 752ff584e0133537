package ipamplugin_test

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	clientv3 "go.etcd.io/etcd/client/v3"

	v3 "github.com/calico-go/calico/api/v3"
	"github.com/calico-go/calico/internal/ipam"
	"github.com/calico-go/calico/internal/testutil/etcdtest"
	"github.com/calico-go/calico/pkg/client"
)

// plugin is the calico-ipam binary, built once (on first use) into a
// temporary directory that TestMain removes.
var plugin struct {
	once sync.Once
	dir  string
	path string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if plugin.dir != "" {
		_ = os.RemoveAll(plugin.dir)
	}
	os.Exit(code)
}

// pluginBin returns the path of the built calico-ipam.
func pluginBin(tb testing.TB) string {
	tb.Helper()
	plugin.once.Do(func() {
		goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
		if _, err := os.Stat(goBin); err != nil {
			goBin = "go"
		}
		if plugin.dir, plugin.err = os.MkdirTemp("", "calico-ipam-test-"); plugin.err != nil {
			return
		}
		plugin.path = filepath.Join(plugin.dir, "calico-ipam")
		out, err := exec.Command(goBin, "build", "-o", plugin.path, "github.com/calico-go/calico/cmd/calico-ipam").CombinedOutput()
		if err != nil {
			plugin.err = errors.New("go build calico-ipam: " + err.Error() + "\n" + string(out))
		}
	})
	if plugin.err != nil {
		tb.Fatal(plugin.err)
	}
	return plugin.path
}

// env is one embedded etcd with a client, and a network configuration
// for calico-ipam against it on node "node-a".
type env struct {
	tb        testing.TB
	endpoints []string
	c         *client.Client
	etcd      *clientv3.Client
	alloc     *ipam.Allocator
	lockFile  string
	node      string
}

func newEnv(tb testing.TB) *env {
	tb.Helper()
	e := &env{tb: tb, endpoints: etcdtest.Embedded(tb), lockFile: filepath.Join(tb.TempDir(), "ipam.lock"), node: "node-a"}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var err error
	e.c, err = client.New(ctx, client.Config{Spec: client.ConfigSpec{DatastoreType: client.EtcdV3, EtcdEndpoints: strings.Join(e.endpoints, ",")}})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = e.c.Close() })
	e.etcd = e.c.Backend().(interface{ Client() *clientv3.Client }).Client()
	e.alloc, err = ipam.New(ipam.Options{Store: ipam.NewEtcdStore(e.etcd, 0), Resources: ipam.ClientResources(e.c)})
	if err != nil {
		tb.Fatal(err)
	}
	return e
}

func ctxT(tb testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	tb.Cleanup(cancel)
	return ctx
}

// pool creates an IPPool.
func (e *env) pool(name, cidr string, blockSize int, mod func(*v3.IPPool)) {
	e.tb.Helper()
	p := v3.NewIPPool()
	p.Name = name
	p.Spec = v3.IPPoolSpec{CIDR: cidr, BlockSize: blockSize}
	if mod != nil {
		mod(p)
	}
	if _, err := e.c.Create(ctxT(e.tb), p); err != nil {
		e.tb.Fatalf("create pool %s: %v", name, err)
	}
}

// conf is the network configuration; extra keys are merged in (an "ipam"
// map is merged into the ipam section).
func (e *env) conf(extra map[string]any) []byte {
	e.tb.Helper()
	ipamSec := map[string]any{"type": "calico-ipam"}
	c := map[string]any{
		"cniVersion":     "1.0.0",
		"name":           "test-net",
		"type":           "calico-ipam",
		"etcd_endpoints": strings.Join(e.endpoints, ","),
		"nodename":       e.node,
		"ipam_lock_file": e.lockFile,
	}
	for k, v := range extra {
		if k == "ipam" {
			maps.Copy(ipamSec, v.(map[string]any))
			continue
		}
		c[k] = v
	}
	c["ipam"] = ipamSec
	b, err := json.Marshal(c)
	if err != nil {
		e.tb.Fatal(err)
	}
	return b
}

// cniArgs builds invoke arguments for one command.
func cniArgs(cmd, containerID, pluginArgs string) *invoke.Args {
	return &invoke.Args{Command: cmd, ContainerID: containerID, NetNS: "/var/run/netns/calico-ipam-test-none",
		IfName: "eth0", PluginArgsStr: pluginArgs, Path: plugin.dir}
}

// add runs ADD through the binary and returns its result.
func (e *env) add(conf []byte, containerID, pluginArgs string) (*types100.Result, error) {
	e.tb.Helper()
	r, err := invoke.ExecPluginWithResult(ctxT(e.tb), pluginBin(e.tb), conf, cniArgs("ADD", containerID, pluginArgs), nil)
	if err != nil {
		return nil, err
	}
	return types100.NewResultFromResult(r)
}

func (e *env) mustAdd(conf []byte, containerID, pluginArgs string) *types100.Result {
	e.tb.Helper()
	r, err := e.add(conf, containerID, pluginArgs)
	if err != nil {
		e.tb.Fatalf("ADD %s: %v", containerID, err)
	}
	return r
}

// run runs a command without a result (DEL, CHECK, GC, STATUS).
func (e *env) run(cmd string, conf []byte, containerID, pluginArgs string) error {
	e.tb.Helper()
	return invoke.ExecPluginWithoutResult(ctxT(e.tb), pluginBin(e.tb), conf, cniArgs(cmd, containerID, pluginArgs), nil)
}

// cniErr asserts that err is a CNI error with code and a message holding
// every one of subs.
func cniErr(tb testing.TB, what string, err error, code uint, subs ...string) *types.Error {
	tb.Helper()
	var te *types.Error
	if !errors.As(err, &te) {
		tb.Fatalf("%s: %v (%T), want a CNI error with code %d", what, err, err, code)
	}
	if te.Code != code {
		tb.Errorf("%s: code %d, want %d: %s", what, te.Code, code, te.Msg)
	}
	for _, s := range subs {
		if !strings.Contains(te.Msg, s) {
			tb.Errorf("%s: message lacks %q: %s", what, s, te.Msg)
		}
	}
	return te
}

// addrs returns the addresses of a result.
func addrs(r *types100.Result) []netip.Prefix {
	var out []netip.Prefix
	for _, ip := range r.IPs {
		a, _ := netip.AddrFromSlice(ip.Address.IP)
		ones, _ := ip.Address.Mask.Size()
		out = append(out, netip.PrefixFrom(a.Unmap(), ones))
	}
	return out
}

// check runs ipam Check (no node list) and returns the report.
func (e *env) check() *ipam.Report {
	e.tb.Helper()
	r, err := e.alloc.Check(ctxT(e.tb), ipam.CheckOptions{})
	if err != nil {
		e.tb.Fatal(err)
	}
	return r
}

func (e *env) assertClean(allocations int) {
	e.tb.Helper()
	r := e.check()
	if !r.Clean() || r.Allocations != allocations {
		b, _ := json.Marshal(r)
		e.tb.Errorf("ipam check: %d problems, %d allocations; want clean with %d: %s", r.Problems(), r.Allocations, allocations, b)
	}
}

// blockHost returns the node the block holding ip is affine to.
func (e *env) blockHost(ip netip.Addr) string {
	e.tb.Helper()
	al, err := e.alloc.GetAssignmentAttributes(ctxT(e.tb), ip)
	if err != nil {
		e.tb.Fatalf("allocation of %s: %v", ip, err)
	}
	return al.BlockHost
}
