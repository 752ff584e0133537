package cni_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	v3 "github.com/calico-go/calico/api/v3"
	"github.com/calico-go/calico/internal/cni"
	"github.com/calico-go/calico/internal/cni/netconf"
	"github.com/calico-go/calico/internal/testutil/etcdtest"
	"github.com/calico-go/calico/internal/testutil/netnstest"
	"github.com/calico-go/calico/pkg/client"
)

// The plugin binaries are built once per test run into binRoot (made and
// removed by TestMain), on first use, so unit tests never wait for them.
var (
	binRoot   string
	buildOnce sync.Once
	buildErr  error
	// calicoIPAM is set when cmd/calico-ipam exists and was built.
	calicoIPAM bool
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "calico-cni-test-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binRoot = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// pluginDir builds calico, host-local, portmap (and calico-ipam when it
// exists) and returns the directory holding them.
func pluginDir(tb testing.TB) string {
	tb.Helper()
	buildOnce.Do(func() {
		pkgs := []string{
			"github.com/calico-go/calico/cmd/calico",
			"github.com/containernetworking/plugins/plugins/ipam/host-local",
			"github.com/containernetworking/plugins/plugins/meta/portmap",
		}
		if _, err := os.Stat("../../cmd/calico-ipam"); err == nil {
			pkgs = append(pkgs, "github.com/calico-go/calico/cmd/calico-ipam")
			calicoIPAM = true
		}
		cmd := exec.Command("go", append([]string{"build", "-o", binRoot + "/"}, pkgs...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build %v: %v\n%s", pkgs, err, out)
		}
	})
	if buildErr != nil {
		tb.Fatal(buildErr)
	}
	return binRoot
}

// newRuntime is a libcni runtime with its own exec (libcni creates a
// default one lazily, which races when ADDs run concurrently).
func newRuntime(bin, cacheDir string) *libcni.CNIConfig {
	exec := &invoke.DefaultExec{RawExec: &invoke.RawExec{Stderr: os.Stderr}, PluginDecoder: version.PluginDecoder{}}
	return libcni.NewCNIConfigWithCacheDir([]string{bin}, cacheDir, exec)
}

// fixture is one host: a host namespace (with an underlay), an embedded
// etcd, a libcni runtime and a host-local data directory.
type fixture struct {
	tb   testing.TB
	host *netnstest.Host
	bin  string
	cni  *libcni.CNIConfig
	// etcd is the datastore as the plugins see it from the host namespace
	// (a forwarder to the embedded etcd in the test's namespace).
	etcd string
	// etcdDirect is the embedded etcd's own endpoint (test namespace).
	etcdDirect string
	client     *client.Client
	ipamDir    string
	node       string
	ipam       string // "host-local" or "calico-ipam"
}

func newFixture(tb testing.TB) *fixture {
	tb.Helper()
	netnstest.RequireRoot(tb)
	bin := pluginDir(tb)
	f := &fixture{
		tb:      tb,
		host:    netnstest.NewHost(tb),
		bin:     bin,
		cni:     newRuntime(bin, tb.TempDir()),
		ipamDir: tb.TempDir(),
		node:    "node-1",
		ipam:    netconf.IPAMHostLocal,
	}
	etcd := etcdtest.Embedded(tb)[0]
	f.etcdDirect = etcd
	f.etcd = "http://" + f.host.Forward(tb, strings.TrimPrefix(etcd, "http://"))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := client.New(ctx, client.Config{Spec: client.ConfigSpec{DatastoreType: client.EtcdV3, EtcdEndpoints: etcd}})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	f.client = c
	return f
}

// with returns the fixture for a subtest: failures and clean-ups go to tb.
func (f *fixture) with(tb testing.TB) *fixture {
	c := *f
	c.tb = tb
	return &c
}

// useCalicoIPAM switches the fixture to calico-ipam with an IPPool, or
// fails when the binary was not built.
func (f *fixture) useCalicoIPAM(cidrs ...string) {
	f.tb.Helper()
	if !calicoIPAM {
		f.tb.Fatal("the calico-ipam plugin was not built (cmd/calico-ipam)")
	}
	f.ipam = netconf.IPAMCalico
	for i, cidr := range cidrs {
		pool := v3.NewIPPool()
		pool.Name = fmt.Sprintf("pool-%d", i)
		pool.Spec.CIDR = cidr
		if _, err := f.client.Create(context.Background(), pool); err != nil {
			f.tb.Fatal(err)
		}
	}
}

// net describes one network configuration list.
type netSpec struct {
	name       string
	cniVersion string
	mtu        int
	// ranges are host-local range sets, e.g. {{"subnet": "10.244.1.0/24"}}.
	ranges  [][]map[string]string
	portmap bool
	// extra keys merged into the calico plugin's configuration.
	extra map[string]any
	// ipam keys merged into the ipam section.
	ipamExtra map[string]any
}

func (f *fixture) conflist(s netSpec) *libcni.NetworkConfigList {
	f.tb.Helper()
	if s.name == "" {
		s.name = "k8s-pod-network"
	}
	if s.cniVersion == "" {
		s.cniVersion = "1.1.0"
	}
	ipam := map[string]any{"type": f.ipam}
	if f.ipam == netconf.IPAMHostLocal {
		if s.ranges == nil {
			s.ranges = [][]map[string]string{{{"subnet": "10.244.1.0/24"}}}
		}
		ipam["dataDir"] = f.ipamDir
		ipam["ranges"] = s.ranges
	}
	for k, v := range s.ipamExtra {
		ipam[k] = v
	}
	calico := map[string]any{
		"type":           "calico",
		"etcd_endpoints": f.etcd,
		"nodename":       f.node,
		"log_level":      logLevel(),
		"ipam":           ipam,
	}
	// Always explicit: /var/lib/calico/mtu, read for mtu 0, may exist on
	// a machine that ran calico-node.
	calico["mtu"] = 1500
	if s.mtu != 0 {
		calico["mtu"] = s.mtu
	}
	for k, v := range s.extra {
		calico[k] = v
	}
	plugins := []any{calico}
	if s.portmap {
		plugins = append(plugins, map[string]any{"type": "portmap", "backend": "nftables", "capabilities": map[string]bool{"portMappings": true}})
	}
	b, err := json.Marshal(map[string]any{"cniVersion": s.cniVersion, "name": s.name, "plugins": plugins})
	if err != nil {
		f.tb.Fatal(err)
	}
	list, err := libcni.ConfListFromBytes(b)
	if err != nil {
		f.tb.Fatalf("conflist %s: %v", b, err)
	}
	return list
}

// pod is one sandbox.
type pod struct {
	ns     *netnstest.NS
	id     string
	ifName string
	// k8s namespace and name; empty for orchestrator "cni".
	namespace, name string
	capArgs         map[string]any
}

var podSeq int64
var podMu sync.Mutex

func (f *fixture) newPod(k8sNamespace, k8sName string) *pod {
	f.tb.Helper()
	podMu.Lock()
	podSeq++
	id := fmt.Sprintf("c%08d%d", podSeq, time.Now().UnixNano()%1000000)
	podMu.Unlock()
	return &pod{ns: netnstest.New(f.tb, "cnipod"), id: id, ifName: "eth0", namespace: k8sNamespace, name: k8sName}
}

func (p *pod) rt() *libcni.RuntimeConf {
	rt := &libcni.RuntimeConf{ContainerID: p.id, NetNS: p.ns.Path(), IfName: p.ifName, CapabilityArgs: p.capArgs}
	if p.name != "" {
		rt.Args = [][2]string{{"IgnoreUnknown", "1"}, {"K8S_POD_NAMESPACE", p.namespace}, {"K8S_POD_NAME", p.name},
			{"K8S_POD_INFRA_CONTAINER_ID", p.id}}
	}
	return rt
}

func (p *pod) workload(node, network string) cni.Workload {
	return cni.NewWorkload(network, node, p.id, p.ifName, netconf.CNIArgs{PodNamespace: p.namespace, PodName: p.name})
}

// hostVeth is the pod's host-side interface name.
func (f *fixture) hostVeth(p *pod, list *libcni.NetworkConfigList) string {
	return p.workload(f.node, list.Name).HostVethName("cali")
}

// inHost runs fn with the calling thread in the host namespace, so that
// the plugins libcni executes run there.
func (f *fixture) inHost(fn func() error) error { return f.host.Do(fn) }

func (f *fixture) add(ctx context.Context, list *libcni.NetworkConfigList, p *pod) (*types100.Result, error) {
	var res types.Result
	err := f.inHost(func() error {
		var err error
		res, err = f.cni.AddNetworkList(ctx, list, p.rt())
		return err
	})
	if err != nil {
		return nil, err
	}
	return types100.NewResultFromResult(res)
}

func (f *fixture) mustAdd(list *libcni.NetworkConfigList, p *pod) *types100.Result {
	f.tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := f.add(ctx, list, p)
	if err != nil {
		f.tb.Fatalf("ADD %s: %v", p.id, err)
	}
	return res
}

func (f *fixture) del(ctx context.Context, list *libcni.NetworkConfigList, p *pod) error {
	return f.inHost(func() error { return f.cni.DelNetworkList(ctx, list, p.rt()) })
}

func (f *fixture) mustDel(list *libcni.NetworkConfigList, p *pod) {
	f.tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := f.del(ctx, list, p); err != nil {
		f.tb.Fatalf("DEL %s: %v", p.id, err)
	}
}

func (f *fixture) check(list *libcni.NetworkConfigList, p *pod) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return f.inHost(func() error { return f.cni.CheckNetworkList(ctx, list, p.rt()) })
}

// podAddr is the pod's first address of the family.
func podAddr(tb testing.TB, res *types100.Result, v6 bool) netip.Addr {
	tb.Helper()
	for _, ip := range res.IPs {
		a, _ := netip.AddrFromSlice(ip.Address.IP)
		a = a.Unmap()
		if a.Is6() == v6 {
			return a
		}
	}
	tb.Fatalf("no IPv6=%v address in %v", v6, res)
	return netip.Addr{}
}

// cniCode returns the CNI error code in err (or fails).
func cniCode(tb testing.TB, err error) *types.Error {
	tb.Helper()
	var te *types.Error
	if !errors.As(err, &te) {
		tb.Fatalf("error %v (%T) is not a CNI error", err, err)
	}
	return te
}

// hostLinkExists reports whether the host namespace has the interface.
func (f *fixture) hostLinkExists(name string) bool {
	_, err := f.host.Handle.LinkByName(name)
	return err == nil
}

// hostRoutes returns the main-table routes to addr/32 (/128) in the host.
func (f *fixture) hostRoutes(a netip.Addr) []netlink.Route {
	f.tb.Helper()
	fam := unix.AF_INET
	if a.Is6() {
		fam = unix.AF_INET6
	}
	routes, err := f.host.Handle.RouteListFiltered(fam, &netlink.Route{Dst: netnstest.IPNet(netip.PrefixFrom(a, a.BitLen())), Table: unix.RT_TABLE_MAIN},
		netlink.RT_FILTER_DST|netlink.RT_FILTER_TABLE)
	if err != nil {
		f.tb.Fatal(err)
	}
	return routes
}

// endpoint reads the pod's WorkloadEndpoint (nil when absent).
func (f *fixture) endpoint(p *pod, network string) *v3.WorkloadEndpoint {
	f.tb.Helper()
	w := p.workload(f.node, network)
	wep, err := client.Get[*v3.WorkloadEndpoint](context.Background(), f.client, w.EndpointNamespace(), w.EndpointName())
	if errors.Is(err, client.ErrNotFound) {
		return nil
	}
	if err != nil {
		f.tb.Fatal(err)
	}
	return wep
}

// reservations lists host-local's reserved addresses for the network.
func (f *fixture) reservations(network string) []string {
	f.tb.Helper()
	entries, err := os.ReadDir(filepath.Join(f.ipamDir, network))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		f.tb.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		n := e.Name()
		if strings.HasPrefix(n, "last_reserved_ip") || n == "lock" {
			continue
		}
		out = append(out, n)
	}
	return out
}

// calicoLinks lists the host's cali* interfaces.
func (f *fixture) calicoLinks() []string {
	f.tb.Helper()
	links, err := f.host.Handle.LinkList()
	if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
		f.tb.Fatal(err)
	}
	var out []string
	for _, l := range links {
		if strings.HasPrefix(l.Attrs().Name, "cali") {
			out = append(out, l.Attrs().Name)
		}
	}
	return out
}

// logLevel is the plugins' log level: CALICO_TEST_CNI_LOG_LEVEL, else
// warning (the plugin's stderr reaches the test output).
func logLevel() string {
	if l := os.Getenv("CALICO_TEST_CNI_LOG_LEVEL"); l != "" {
		return l
	}
	return "warning"
}
