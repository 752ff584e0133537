package vxlan

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/calico-go/calico/internal/kernel/route"
	"github.com/calico-go/calico/internal/testutil/netnstest"
)

// node is one side of the test: a namespace with an underlay veth, its
// tunnel and its route table.
type node struct {
	ns     *netnstest.NS
	under  netip.Addr
	vtep   netip.Addr
	mac    net.HardwareAddr
	block  netip.Prefix
	tunnel *Tunnel
	routes *route.Table
}

func mac(s string) net.HardwareAddr {
	hw, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return hw
}

func newPair(t *testing.T) (*node, *node) {
	t.Helper()
	a := &node{ns: netnstest.New(t, "vxa"), under: netip.MustParseAddr("192.0.2.1"), vtep: netip.MustParseAddr("198.19.1.0"),
		mac: mac("66:00:00:00:00:01"), block: netip.MustParsePrefix("198.19.1.0/26")}
	b := &node{ns: netnstest.New(t, "vxb"), under: netip.MustParseAddr("192.0.2.2"), vtep: netip.MustParseAddr("198.19.2.0"),
		mac: mac("66:00:00:00:00:02"), block: netip.MustParsePrefix("198.19.2.0/26")}
	la := netlink.NewLinkAttrs()
	la.Name = "eth0"
	if err := a.ns.Handle.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: "eth0", PeerNamespace: netlink.NsFd(b.ns.Fd())}); err != nil {
		t.Fatal(err)
	}
	for _, n := range []*node{a, b} {
		l, err := n.ns.Handle.LinkByName("eth0")
		if err != nil {
			t.Fatal(err)
		}
		if err := n.ns.Handle.AddrAdd(l, &netlink.Addr{IPNet: netnstest.IPNet(netip.PrefixFrom(n.under, 24))}); err != nil {
			t.Fatal(err)
		}
		if err := n.ns.Handle.LinkSetUp(l); err != nil {
			t.Fatal(err)
		}
		if n.tunnel, err = New(Options{NetNSFd: n.ns.Fd()}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(n.tunnel.Close)
		if n.routes, err = route.New(route.Options{NetNSFd: n.ns.Fd(), Protocol: route.ProtocolDataplane}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(n.routes.Close)
	}
	return a, b
}

func (n *node) device() *Device {
	return &Device{Addr: n.vtep, MAC: n.mac, ParentAddr: n.under}
}

func (n *node) peerOf() Peer { return Peer{Addr: n.vtep, MAC: n.mac, NodeAddr: n.under} }

// program sets the tunnel towards peer and the route to its block.
func (n *node) program(t *testing.T, peers ...*node) Stats {
	t.Helper()
	var ps []Peer
	var rs []route.Route
	for _, p := range peers {
		ps = append(ps, p.peerOf())
		rs = append(rs, route.Route{Dst: p.block, Gateway: p.vtep, Device: DefaultName, OnLink: true})
	}
	n.tunnel.Set(n.device(), ps)
	st, err := n.tunnel.Apply(context.Background())
	if err != nil {
		t.Fatalf("tunnel Apply: %v", err)
	}
	n.routes.Set(rs)
	if _, err := n.routes.Apply(context.Background()); err != nil {
		t.Fatalf("routes Apply: %v", err)
	}
	return st
}

func ping(t *testing.T, from *node, to netip.Addr) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := from.ns.Ping(ctx, to); err != nil {
		t.Fatalf("ping %s from %s: %v", to, from.ns.Name, err)
	}
}

// TestTunnel: two nodes reach each other's VTEP through vxlan.calico;
// Apply is idempotent, repairs a device deleted by hand (with its
// neighbour and FDB entries) and a deleted neighbour entry, removes
// entries of peers that go away, re-creates the device when its VNI
// changes, and deletes it when no device is desired.
func TestTunnel(t *testing.T) {
	netnstest.RequireRoot(t)
	a, b := newPair(t)
	if st := a.program(t, b); !st.Created || st.NeighSet != 1 || st.FDBSet != 1 {
		t.Fatalf("first Apply on a: %+v", st)
	}
	b.program(t, a)
	ping(t, a, b.vtep)

	l, err := a.ns.Handle.LinkByName(DefaultName)
	if err != nil {
		t.Fatal(err)
	}
	vx := l.(*netlink.Vxlan)
	if vx.VxlanId != DefaultVNI || vx.Port != DefaultPort || vx.Learning || vx.Attrs().MTU != 1500-Overhead ||
		vx.Attrs().HardwareAddr.String() != a.mac.String() {
		t.Fatalf("device: vni %d port %d learning %v mtu %d mac %s", vx.VxlanId, vx.Port, vx.Learning, vx.Attrs().MTU, vx.Attrs().HardwareAddr)
	}
	fdb, err := a.ns.Handle.NeighList(vx.Attrs().Index, unix.AF_BRIDGE)
	if err != nil || len(fdb) != 1 || fdb[0].HardwareAddr.String() != b.mac.String() || !net.IP(fdb[0].IP).Equal(b.under.AsSlice()) {
		t.Fatalf("FDB = %+v, %v; want %s → %s", fdb, err, b.mac, b.under)
	}
	if st := a.program(t, b); st.Changed() {
		t.Fatalf("idempotent Apply changed: %+v", st)
	}

	// Deleted by hand: everything comes back.
	if err := a.ns.Handle.LinkDel(l); err != nil {
		t.Fatal(err)
	}
	if st := a.program(t, b); !st.Created || st.NeighSet != 1 || st.FDBSet != 1 {
		t.Fatalf("repair Apply: %+v", st)
	}
	ping(t, a, b.vtep)

	// A neighbour entry deleted by hand, a stray one added.
	l, _ = a.ns.Handle.LinkByName(DefaultName)
	idx := l.Attrs().Index
	if err := a.ns.Handle.NeighDel(&netlink.Neigh{LinkIndex: idx, Family: netlink.FAMILY_V4, IP: b.vtep.AsSlice()}); err != nil {
		t.Fatal(err)
	}
	stray := &netlink.Neigh{LinkIndex: idx, Family: netlink.FAMILY_V4, State: netlink.NUD_PERMANENT,
		IP: net.ParseIP("198.19.9.9"), HardwareAddr: mac("66:00:00:00:00:09")}
	if err := a.ns.Handle.NeighSet(stray); err != nil {
		t.Fatal(err)
	}
	if st := a.program(t, b); st.NeighSet != 1 || st.NeighDel != 1 || st.Created {
		t.Fatalf("neighbour repair: %+v", st)
	}

	// The peer goes away: its entries go.
	if st := a.program(t); st.NeighDel != 1 || st.FDBDel != 1 {
		t.Fatalf("peer removal: %+v", st)
	}

	// A different VNI re-creates the device.
	dev := a.device()
	dev.VNI = 4097
	a.tunnel.Set(dev, []Peer{b.peerOf()})
	if st, err := a.tunnel.Apply(context.Background()); err != nil || !st.Created {
		t.Fatalf("VNI change: %+v, %v", st, err)
	}

	a.tunnel.Set(nil, nil)
	if st, err := a.tunnel.Apply(context.Background()); err != nil || !st.Deleted {
		t.Fatalf("removal: %+v, %v", st, err)
	}
	if _, err := a.ns.Handle.LinkByName(DefaultName); err == nil {
		t.Fatal("device still there")
	}
	if st, err := a.tunnel.Apply(context.Background()); err != nil || st.Changed() {
		t.Fatalf("second removal: %+v, %v", st, err)
	}
}

func TestNoParent(t *testing.T) {
	netnstest.RequireRoot(t)
	ns := netnstest.New(t, "vxnp")
	tun, err := New(Options{NetNSFd: ns.Fd()})
	if err != nil {
		t.Fatal(err)
	}
	defer tun.Close()
	tun.Set(&Device{Addr: netip.MustParseAddr("198.19.1.0"), ParentAddr: netip.MustParseAddr("192.0.2.1")}, nil)
	if _, err := tun.Apply(context.Background()); !errors.Is(err, ErrNoParent) {
		t.Fatalf("Apply without a parent interface: %v, want ErrNoParent", err)
	}
}
