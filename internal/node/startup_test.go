package node

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v3 "github.com/calico-go/calico/api/v3"
	"github.com/calico-go/calico/internal/autodetect"
	"github.com/calico-go/calico/internal/ipam"
	"github.com/calico-go/calico/internal/testutil/etcdtest"
	"github.com/calico-go/calico/pkg/client"
)

type fakeSys []autodetect.Interface

func (f fakeSys) Interfaces() ([]autodetect.Interface, error) { return f, nil }
func (f fakeSys) SourceFor(string, bool) (netip.Addr, error) {
	return netip.Addr{}, errors.New("unreachable")
}

func hostSys(addr string, mtu int) fakeSys {
	return fakeSys{
		{Name: "lo", Up: true, MTU: 65536, Addrs: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/8")}},
		{Name: "eth0", Up: true, MTU: mtu, Addrs: []netip.Prefix{netip.MustParsePrefix(addr)}},
	}
}

func testClient(t *testing.T) *client.Client {
	t.Helper()
	eps := etcdtest.Embedded(t)
	return connect(t, eps)
}

func nodeOpts(t *testing.T, name, addr string) NodeOptions {
	dir := t.TempDir()
	return NodeOptions{
		Name: name, System: hostSys(addr, 1450),
		NodenameFile: filepath.Join(dir, "nodename"), MTUFile: filepath.Join(dir, "mtu"),
	}
}

// TestStartup: the first node registers with its autodetected address,
// creates the default pool from the options, gets a VXLAN tunnel address
// and MAC, and writes the node name and MTU files; a restart keeps the
// tunnel address; a second node with the same address is refused.
func TestStartup(t *testing.T) {
	c := testClient(t)
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	opts := nodeOpts(t, "node-1", "192.0.2.10/24")
	opts.AS = "64601"
	opts.Pools.V4 = PoolSpec{CIDR: "198.19.0.0/16", VXLANMode: "always", BlockSize: 28}
	st, err := Startup(ctx, c, opts, log)
	if err != nil {
		t.Fatal(err)
	}
	n := st.Node
	if n.Spec.BGP == nil || n.Spec.BGP.IPv4Address != "192.0.2.10/24" || n.Spec.BGP.ASNumber == nil || *n.Spec.BGP.ASNumber != 64601 {
		t.Fatalf("node bgp spec = %+v", n.Spec.BGP)
	}
	if len(n.Spec.Addresses) != 1 || n.Spec.Addresses[0] != (v3.NodeAddress{Address: "192.0.2.10/24", Type: v3.NodeAddressCalicoNodeIP}) {
		t.Errorf("addresses = %+v", n.Spec.Addresses)
	}
	pool, err := client.Get[*v3.IPPool](ctx, c, "", DefaultPoolNameV4)
	if err != nil {
		t.Fatal(err)
	}
	if pool.Spec.CIDR != "198.19.0.0/16" || pool.Spec.VXLANMode != v3.VXLANModeAlways || !pool.Spec.NATOutgoing ||
		pool.Spec.BlockSize != 28 || pool.Spec.NodeSelector != "all()" {
		t.Errorf("default pool = %+v", pool.Spec)
	}
	tun, err := netip.ParseAddr(n.Spec.IPv4VXLANTunnelAddr)
	if err != nil || !netip.MustParsePrefix("198.19.0.0/16").Contains(tun) {
		t.Fatalf("vxlan tunnel address %q", n.Spec.IPv4VXLANTunnelAddr)
	}
	if n.Spec.VXLANTunnelMACAddr != VXLANMAC("node-1") || !strings.HasPrefix(n.Spec.VXLANTunnelMACAddr, "66:") {
		t.Errorf("vxlan MAC = %q, want %q", n.Spec.VXLANTunnelMACAddr, VXLANMAC("node-1"))
	}
	alloc, err := newAllocator(c, log)
	if err != nil {
		t.Fatal(err)
	}
	al, err := alloc.GetAssignmentAttributes(ctx, tun)
	if err != nil || al.HandleID != "vxlan-tunnel-addr-node-1" || al.Attrs[ipam.AttrType] != ipam.TypeVXLANTunnel {
		t.Errorf("tunnel allocation = %+v, %v", al, err)
	}
	if b, _ := os.ReadFile(opts.NodenameFile); string(b) != "node-1" {
		t.Errorf("nodename file = %q", b)
	}
	if b, _ := os.ReadFile(opts.MTUFile); string(b) != "1400\n" || st.MTU != 1400 {
		t.Errorf("mtu file = %q (MTU %d), want 1450-50", b, st.MTU)
	}
	// LocalRoutes sees the tunnel address's block as the node's.
	snap, err := alloc.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	blocks, borrowed, _ := LocalRoutes(snap, "node-1")
	if len(blocks) != 1 || !blocks[0].Contains(tun) || len(borrowed) != 0 {
		t.Errorf("LocalRoutes = %v, %v", blocks, borrowed)
	}

	// Restart with IP unset: address and tunnel address are kept.
	opts.System = hostSys("192.0.2.99/24", 1450) // would detect another address
	st2, err := Startup(ctx, c, opts, log)
	if err != nil {
		t.Fatal(err)
	}
	if st2.Node.Spec.BGP.IPv4Address != "192.0.2.10/24" || st2.Node.Spec.IPv4VXLANTunnelAddr != n.Spec.IPv4VXLANTunnelAddr {
		t.Errorf("restart changed the node: %+v", st2.Node.Spec)
	}

	// Another node with the same address is refused.
	other := nodeOpts(t, "node-2", "192.0.2.10/24")
	if _, err := Startup(ctx, c, other, log); !errors.Is(err, ErrAddressInUse) {
		t.Fatalf("duplicate address: %v, want ErrAddressInUse", err)
	}
	// IP=autodetect with another method; no second default pool.
	other.IP, other.IPMethod = "autodetect", "cidr=192.0.2.0/24"
	other.System = hostSys("192.0.2.11/24", 9000)
	other.Pools.V4.CIDR = "198.18.0.0/16"
	if _, err := Startup(ctx, c, other, log); err != nil {
		t.Fatal(err)
	}
	pools, _ := client.List[*v3.IPPool](ctx, c, "")
	if len(pools) != 1 {
		t.Errorf("%d pools, want only the first default", len(pools))
	}
}

func TestStartupNoPoolsAndNoAddress(t *testing.T) {
	c := testClient(t)
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	opts := nodeOpts(t, "n", "192.0.2.20/24")
	opts.IP, opts.Backend = "none", BackendBird
	if _, err := Startup(ctx, c, opts, log); !errors.Is(err, ErrNoAddress) {
		t.Fatalf("bird without address: %v", err)
	}
	opts.Backend = BackendNone
	opts.Pools.NoDefaultPools = true
	st, err := Startup(ctx, c, opts, log)
	if err != nil {
		t.Fatal(err)
	}
	if st.Node.Spec.BGP != nil || st.MTU != 1500 {
		t.Errorf("node = %+v, mtu %d", st.Node.Spec, st.MTU)
	}
	if pools, _ := client.List[*v3.IPPool](ctx, c, ""); len(pools) != 0 {
		t.Errorf("NO_DEFAULT_POOLS created %d pools", len(pools))
	}
	// The vxlan backend defaults the new pool to VXLAN; an explicit IP with
	// the interface's prefix; IPv6 detection adds a ULA pool.
	opts.Pools.NoDefaultPools = false
	opts.Backend, opts.IP, opts.IP6 = BackendVXLAN, "192.0.2.20", "autodetect"
	opts.System = append(hostSys("192.0.2.20/24", 1500), autodetect.Interface{Name: "eth1", Up: true, MTU: 1500,
		Addrs: []netip.Prefix{netip.MustParsePrefix("2001:db8::20/64")}})
	st, err = Startup(ctx, c, opts, log)
	if err != nil {
		t.Fatal(err)
	}
	if st.Node.Spec.BGP == nil || st.Node.Spec.BGP.IPv4Address != "192.0.2.20/24" || st.Node.Spec.BGP.IPv6Address != "2001:db8::20/64" {
		t.Fatalf("node bgp = %+v", st.Node.Spec.BGP)
	}
	p4, err := client.Get[*v3.IPPool](ctx, c, "", DefaultPoolNameV4)
	if err != nil || p4.Spec.VXLANMode != v3.VXLANModeAlways || p4.Spec.CIDR != DefaultPoolV4 {
		t.Fatalf("v4 pool = %+v, %v", p4, err)
	}
	p6, err := client.Get[*v3.IPPool](ctx, c, "", DefaultPoolNameV6)
	if err != nil || !strings.HasPrefix(p6.Spec.CIDR, "fd") || !strings.HasSuffix(p6.Spec.CIDR, "/48") {
		t.Fatalf("v6 pool = %+v, %v", p6, err)
	}
	if st.MTU != 1500-OverheadVXLANv6 || st.Node.Spec.IPv4VXLANTunnelAddr == "" || st.Node.Spec.IPv6VXLANTunnelAddr == "" {
		t.Errorf("mtu %d, tunnel %q", st.MTU, st.Node.Spec.IPv4VXLANTunnelAddr)
	}
}

func TestOptionsFromLookup(t *testing.T) {
	env := map[string]string{
		"ETCD_ENDPOINTS": "http://127.0.0.1:2379", "NODENAME": "n1", "IP": "autodetect",
		"IP_AUTODETECTION_METHOD": "can-reach=192.0.2.1", "AS": "65000", "CALICO_NETWORKING_BACKEND": "VXLAN",
		"CALICO_IPV4POOL_CIDR": "198.19.0.0/16", "CALICO_IPV4POOL_BLOCK_SIZE": "27", "CALICO_IPV4POOL_NAT_OUTGOING": "false",
		"CALICO_IPV4POOL_VXLAN": "CrossSubnet", "NO_DEFAULT_POOLS": "false", "FELIX_ROUTEREFRESHINTERVAL": "2.5",
		"CALICO_BGP_PASSWORD_MY_SECRET_PASSWORD": "pw",
	}
	opts, err := OptionsFromLookup(func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	n := opts.Node
	if n == nil || n.Name != "n1" || n.Backend != BackendVXLAN || n.Pools.V4.BlockSize != 27 || n.Pools.V4.NATOutgoing == nil ||
		*n.Pools.V4.NATOutgoing || n.Pools.V4.VXLANMode != "CrossSubnet" || n.RouteRefreshInterval.Seconds() != 2.5 ||
		opts.Datastore.Spec.EtcdEndpoints != "http://127.0.0.1:2379" {
		t.Fatalf("options = %+v / %+v", n, opts.Datastore.Spec)
	}
	if pw, ok := n.secret("my-secret", "password"); !ok || pw != "pw" {
		t.Errorf("secret = %q, %v", pw, ok)
	}
	env["CALICO_NODE_REGISTER"] = "false"
	if opts, _ := OptionsFromLookup(func(k string) (string, bool) { v, ok := env[k]; return v, ok }); opts.Node != nil {
		t.Error("CALICO_NODE_REGISTER=false still registers")
	}
	env["CALICO_NETWORKING_BACKEND"] = "flannel"
	delete(env, "CALICO_NODE_REGISTER")
	opts, _ = OptionsFromLookup(func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err := opts.Node.setDefaults(); err == nil {
		t.Error("unknown backend accepted")
	}
}

func TestVXLANMAC(t *testing.T) {
	m := VXLANMAC("node-1")
	if len(m) != 17 || !strings.HasPrefix(m, "66:") || m != VXLANMAC("node-1") || m == VXLANMAC("node-2") {
		t.Fatalf("VXLANMAC = %q", m)
	}
}
