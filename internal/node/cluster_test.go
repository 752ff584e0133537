package node

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	v3 "github.com/calico-go/calico/api/v3"
	"github.com/calico-go/calico/internal/bgp"
	"github.com/calico-go/calico/internal/bgp/status"
	"github.com/calico-go/calico/internal/ipam"
	"github.com/calico-go/calico/internal/kernel/route"
	"github.com/calico-go/calico/internal/testutil/etcdtest"
	"github.com/calico-go/calico/internal/testutil/netnstest"
	"github.com/calico-go/calico/pkg/client"
)

// childEnv marks a re-executed test binary that runs calico-node (Run with
// OptionsFromEnv) instead of tests: integration tests start one per "host"
// namespace, so that every socket the node opens, including GoBGP's
// outgoing connections, lives in that namespace.
const childEnv = "CALICO_NODE_TEST_CHILD"

// policyEnv=1 makes the child run the policy engine as well (as
// cmd/calico-node does), reading felixCfgEnv as its config file.
const (
	policyEnv   = "CALICO_NODE_TEST_POLICY"
	felixCfgEnv = "CALICO_NODE_TEST_FELIX_CFG"
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		os.Exit(childMain())
	}
	code := m.Run()
	if cniDir != "" {
		os.RemoveAll(cniDir)
	}
	os.Exit(code)
}

func childMain() int {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	opts, err := OptionsFromEnv()
	if err != nil {
		log.Error("options", "error", err)
		return 2
	}
	opts.Logger = log
	if os.Getenv(policyEnv) == "1" {
		// The policy engine (felix) too, with a private config file.
		p := PolicyOptionsFromEnv()
		p.ConfigFile = os.Getenv(felixCfgEnv)
		opts.Policy = &p
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := Run(ctx, opts); err != nil {
		log.Error("calico-node failed", "error", err)
		return 1
	}
	return 0
}

// Addresses of the test underlay (documentation range) and the pool
// (benchmarking range): nothing leaves the test's namespaces.
const (
	underlayGW = "192.0.2.254"
	testPool   = "198.19.0.0/16"
)

// cluster is an underlay bridge, an etcd in the test's namespace, and hosts
// (namespaces on the bridge) running calico-node.
type cluster struct {
	t      *testing.T
	ul     *netnstest.NS
	etcd   string // host:port in the test's namespace
	c      *client.Client
	alloc  *ipam.Allocator
	dir    string
	nextIf int
}

type host struct {
	cl   *cluster
	name string
	ns   *netnstest.NS
	addr netip.Addr
	// etcdURL reaches the datastore from inside the host namespace.
	etcdURL string
	env     []string
	sock    string
	logf    string
	cmd     *exec.Cmd
	done    chan error
}

func newCluster(t *testing.T) *cluster {
	t.Helper()
	netnstest.RequireRoot(t)
	eps := etcdtest.Embedded(t)
	cl := &cluster{t: t, ul: netnstest.New(t, "bgpul"), etcd: strings.TrimPrefix(eps[0], "http://"), dir: t.TempDir()}
	cl.c = connect(t, eps)
	var err error
	if cl.alloc, err = newAllocator(cl.c, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "br0"}}
	if err := cl.ul.Handle.LinkAdd(br); err != nil {
		t.Fatalf("bridge: %v", err)
	}
	if err := cl.ul.Handle.AddrAdd(br, &netlink.Addr{IPNet: netnstest.IPNet(netip.MustParsePrefix(underlayGW + "/24"))}); err != nil {
		t.Fatal(err)
	}
	if err := cl.ul.Handle.LinkSetUp(br); err != nil {
		t.Fatal(err)
	}
	pool := v3.NewIPPool()
	pool.Name = "test-pool"
	pool.Spec = v3.IPPoolSpec{CIDR: testPool, BlockSize: 26, NATOutgoing: true}
	cl.create(pool)
	return cl
}

func (cl *cluster) create(r v3.Resource) {
	cl.t.Helper()
	if _, err := cl.c.Create(context.Background(), r); err != nil {
		cl.t.Fatalf("create %s: %v", r.GetName(), err)
	}
}

// attach makes a namespace with eth0 on the bridge at 192.0.2.<idx>/24 and
// a default route towards the underlay gateway.
func (cl *cluster) attach(prefix string, idx int) (*netnstest.NS, netip.Addr) {
	cl.t.Helper()
	return cl.attachAt(prefix, netip.PrefixFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(idx)}), 24), netip.MustParseAddr(underlayGW))
}

// attachAt makes a namespace with eth0 on the bridge at addr and a default
// route via gw (an address of the bridge: see addSubnet).
func (cl *cluster) attachAt(prefix string, addrPfx netip.Prefix, gw netip.Addr) (*netnstest.NS, netip.Addr) {
	t := cl.t
	t.Helper()
	ns := netnstest.New(t, prefix)
	cl.nextIf++
	peer := fmt.Sprintf("p%d", cl.nextIf)
	la := netlink.NewLinkAttrs()
	la.Name = "eth0"
	if err := ns.Handle.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: peer, PeerNamespace: netlink.NsFd(cl.ul.Fd())}); err != nil {
		t.Fatalf("veth: %v", err)
	}
	pl, err := cl.ul.Handle.LinkByName(peer)
	if err != nil {
		t.Fatal(err)
	}
	br, _ := cl.ul.Handle.LinkByName("br0")
	if err := cl.ul.Handle.LinkSetMaster(pl, br); err != nil {
		t.Fatal(err)
	}
	if err := cl.ul.Handle.LinkSetUp(pl); err != nil {
		t.Fatal(err)
	}
	addr := addrPfx.Addr()
	l, _ := ns.Handle.LinkByName("eth0")
	if err := ns.Handle.AddrAdd(l, &netlink.Addr{IPNet: netnstest.IPNet(addrPfx)}); err != nil {
		t.Fatal(err)
	}
	if err := ns.Handle.LinkSetUp(l); err != nil {
		t.Fatal(err)
	}
	if err := ns.Handle.RouteAdd(&netlink.Route{LinkIndex: l.Attrs().Index, Gw: gw.AsSlice()}); err != nil {
		t.Fatal(err)
	}
	if err := ns.Sysctl("net.ipv4.ip_forward", "1"); err != nil {
		t.Fatal(err)
	}
	return ns, addr
}

// addHost attaches a host and starts calico-node in it.
func (cl *cluster) addHost(name string, idx int, env ...string) *host {
	cl.t.Helper()
	ns, addr := cl.attach("bgph", idx)
	return cl.startHost(name, ns, addr, env...)
}

// addHostAt attaches a host at addr (default route via gw) and starts
// calico-node in it.
func (cl *cluster) addHostAt(name string, addr netip.Prefix, gw netip.Addr, env ...string) *host {
	cl.t.Helper()
	ns, a := cl.attachAt("bgph", addr, gw)
	return cl.startHost(name, ns, a, env...)
}

func (cl *cluster) startHost(name string, ns *netnstest.NS, addr netip.Addr, env ...string) *host {
	cl.t.Helper()
	fwd := ns.Forward(cl.t, cl.etcd)
	h := &host{cl: cl, name: name, ns: ns, addr: addr, etcdURL: "http://" + fwd,
		sock: filepath.Join(cl.dir, name+".sock"), logf: filepath.Join(cl.dir, name+".log")}
	h.env = append([]string{
		childEnv + "=1", "DATASTORE_TYPE=etcdv3", "ETCD_ENDPOINTS=http://" + fwd,
		"NODENAME=" + name, "IP=autodetect", "IP_AUTODETECTION_METHOD=interface=eth0",
		"CALICO_NODENAME_FILE=" + filepath.Join(cl.dir, name+".nodename"),
		"CALICO_MTU_FILE=" + filepath.Join(cl.dir, name+".mtu"),
		"CALICO_BGP_STATUS_SOCKET=" + h.sock, "FELIX_ROUTEREFRESHINTERVAL=1",
		felixCfgEnv + "=" + filepath.Join(cl.dir, name+".felix.cfg"),
	}, env...)
	h.start()
	cl.t.Cleanup(h.stop)
	return h
}

func (h *host) start() {
	t := h.cl.t
	t.Helper()
	logf, err := os.OpenFile(h.logf, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = h.env
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := h.ns.Do(cmd.Start); err != nil {
		logf.Close()
		t.Fatalf("start calico-node %s: %v", h.name, err)
	}
	h.cmd, h.done = cmd, make(chan error, 1)
	go func() { h.done <- cmd.Wait(); logf.Close() }()
}

// stop ends calico-node (SIGTERM, then SIGKILL) and is idempotent.
func (h *host) stop() {
	if h.cmd == nil {
		return
	}
	_ = h.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-h.done:
	case <-time.After(10 * time.Second):
		_ = h.cmd.Process.Kill()
		<-h.done
	}
	h.cmd = nil
	if h.cl.t.Failed() {
		if b, err := os.ReadFile(h.logf); err == nil {
			lines := strings.Split(strings.TrimSpace(string(b)), "\n")
			if len(lines) > 40 {
				lines = lines[len(lines)-40:]
			}
			h.cl.t.Logf("calico-node %s log (tail):\n%s", h.name, strings.Join(lines, "\n"))
		}
	}
}

// claimBlock gives the host an IPAM block (as the CNI plugin would by
// assigning a pod address) and returns it.
func (cl *cluster) claimBlock(node string) netip.Prefix {
	cl.t.Helper()
	res, err := cl.alloc.AutoAssign(context.Background(), ipam.AutoAssignArgs{Num4: 1, HandleID: "test." + node, Hostname: node,
		Attrs: ipam.Attrs{Node: node}, IntendedUse: v3.IPPoolAllowedUseWorkload})
	if err != nil || len(res.IPv4) != 1 {
		cl.t.Fatalf("assign an address on %s: %v", node, err)
	}
	return res.IPv4[0].Masked()
}

// bgpRoutes lists the host's routes with our protocol number as
// "dst via gw" / "blackhole dst".
func (h *host) bgpRoutes() []string {
	rs, err := h.ns.Handle.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Protocol: route.ProtocolBGP, Table: route.MainTable},
		netlink.RT_FILTER_PROTOCOL|netlink.RT_FILTER_TABLE)
	if err != nil {
		h.cl.t.Fatal(err)
	}
	var out []string
	for _, r := range rs {
		if r.Type == syscall.RTN_BLACKHOLE {
			out = append(out, "blackhole "+r.Dst.String())
		} else {
			out = append(out, r.Dst.String()+" via "+r.Gw.String())
		}
	}
	slices.Sort(out)
	return out
}

func waitUntil(t *testing.T, what string, d time.Duration, f func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(d)
	var last string
	for {
		ok, s := f()
		if ok {
			return
		}
		last = s
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %v; last: %s", what, d, last)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// expectRoutes waits until the host's BGP routes are exactly want.
func (h *host) expectRoutes(want []string, d time.Duration) {
	h.cl.t.Helper()
	want = slices.Clone(want)
	slices.Sort(want)
	waitUntil(h.cl.t, h.name+" routes", d, func() (bool, string) {
		got := h.bgpRoutes()
		return slices.Equal(got, want), fmt.Sprintf("got %q, want %q", got, want)
	})
}

// peers reads the host's status socket.
func (h *host) peers() []bgp.PeerStatus {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	rep, err := status.Fetch(ctx, h.sock)
	if err != nil {
		return nil
	}
	return rep.Peers
}

func (h *host) expectEstablished(n int, typ bgp.PeerType, d time.Duration) {
	h.cl.t.Helper()
	waitUntil(h.cl.t, h.name+" sessions", d, func() (bool, string) {
		ps := h.peers()
		est := 0
		for _, p := range ps {
			if p.State == bgp.StateEstablished && p.Type == typ {
				est++
			}
		}
		return est == n && len(ps) == n, fmt.Sprint(ps)
	})
}
