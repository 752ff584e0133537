package node

import (
	"context"
	"io"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	vnetns "github.com/vishvananda/netns"

	v3 "github.com/calico-go/calico/api/v3"
	"github.com/calico-go/calico/internal/datastore"
	"github.com/calico-go/calico/internal/kernel/route"
	"github.com/calico-go/calico/internal/kernel/vxlan"
	"github.com/calico-go/calico/internal/testutil/netnstest"
)

func subnet1(i int) netip.Prefix {
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}), 24)
}
func subnet2(i int) netip.Prefix {
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}), 24)
}

func viaVTEP(b netip.Prefix, vtep netip.Addr) string {
	return b.String() + " via " + vtep.String() + " onlink " + vxlan.DefaultName
}

// TestVXLAN: with CALICO_NETWORKING_BACKEND=vxlan (no BGP), pods on three
// hosts reach each other over vxlan.calico (ICMP and TCP) and, through
// natOutgoing, an "internet" address outside the pools with the host's
// address as their source; a route, a workload route and the device
// deleted by hand are repaired within the refresh interval (1s); a
// calico-node restart changes nothing in the kernel; a node leaving takes
// its routes and tunnel entries with it.
func TestVXLAN(t *testing.T) {
	v := newVNet(t, v3.VXLANModeAlways)
	start := time.Now()
	var hs []*host
	for i := 1; i <= 3; i++ {
		hs = append(hs, v.host("host-"+string(rune('0'+i)), subnet1(i), underlayGW, "CALICO_NETWORKING_BACKEND=vxlan"))
	}
	vteps := make([]netip.Addr, len(hs))
	for i, h := range hs {
		vteps[i] = v.vtep(h)
		v.pod(h)
	}
	pods := v.pods
	wantRoutes := func(self int, live ...int) []string {
		out := []string{"blackhole " + pods[self].block.String()}
		for _, j := range live {
			if j != self {
				out = append(out, viaVTEP(pods[j].block, vteps[j]))
			}
		}
		return out
	}
	for i, h := range hs {
		h.expectDataplaneRoutes(wantRoutes(i, 0, 1, 2), true, converge)
	}
	t.Logf("VXLAN routes on every host %v after the first start", time.Since(start).Round(time.Millisecond))
	for _, h := range hs {
		if bgp := h.bgpRoutes(); len(bgp) != 0 {
			t.Fatalf("%s: BGP routes with the vxlan backend: %q", h.name, bgp)
		}
		vx := h.tunnel()
		if vx == nil || vx.VxlanId != vxlan.DefaultVNI || vx.Port != vxlan.DefaultPort || vx.Learning || vx.Attrs().MTU != vxlanMTU {
			t.Fatalf("%s: vxlan.calico = %+v", h.name, vx)
		}
		if peers := h.tunnelPeers(); len(peers) != 4 {
			t.Fatalf("%s: tunnel peers %q, want 2 neighbours and 2 FDB entries", h.name, peers)
		}
	}
	reachAll(t, pods, converge)

	// natOutgoing: the server outside the pools sees the host's address.
	srv := v.internet()
	if got, err := seenAs(pods[0].ns, srv); err != nil || got != hs[0].addr.String() {
		t.Fatalf("pod -> internet: seen as %q, %v; want %s", got, err, hs[0].addr)
	}

	// Repairs: a remote block's route, the pod's own route, the device.
	h1 := hs[0]
	t0 := time.Now()
	if err := h1.ns.Handle.RouteDel(&netlink.Route{Dst: netnstest.IPNet(pods[1].block), Scope: netlink.SCOPE_NOWHERE}); err != nil {
		t.Fatalf("delete route by hand: %v", err)
	}
	h1.expectDataplaneRoutes(wantRoutes(0, 0, 1, 2), true, 10*time.Second)
	t.Logf("hand-deleted VXLAN route repaired in %v", time.Since(t0).Round(time.Millisecond))

	t0 = time.Now()
	podRoute := netnstest.IPNet(netip.PrefixFrom(pods[0].addr, 32))
	if err := h1.ns.Handle.RouteDel(&netlink.Route{Dst: podRoute, Scope: netlink.SCOPE_NOWHERE}); err != nil {
		t.Fatalf("delete pod route by hand: %v", err)
	}
	waitUntil(t, "pod route repaired", 10*time.Second, func() (bool, string) {
		rs, err := h1.ns.Handle.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Dst: podRoute}, netlink.RT_FILTER_DST)
		return err == nil && len(rs) == 1 && rs[0].Protocol == route.ProtocolDataplane, ""
	})
	t.Logf("hand-deleted workload route repaired in %v", time.Since(t0).Round(time.Millisecond))

	t0 = time.Now()
	if err := h1.ns.Handle.LinkDel(h1.tunnel()); err != nil {
		t.Fatalf("delete vxlan.calico by hand: %v", err)
	}
	h1.expectDataplaneRoutes(wantRoutes(0, 0, 1, 2), true, 10*time.Second)
	waitUntil(t, "tunnel entries repaired", 10*time.Second, func() (bool, string) {
		p := h1.tunnelPeers()
		return len(p) == 4, strings.Join(p, ", ")
	})
	t.Logf("hand-deleted vxlan.calico repaired (device, entries, routes) in %v", time.Since(t0).Round(time.Millisecond))
	reachAll(t, pods[:2], 10*time.Second)

	// A restart of calico-node on host-1 changes nothing in its kernel.
	restartWithoutFlap(t, h1, func() { h1.expectDataplaneRoutes(wantRoutes(0, 0, 1, 2), true, converge) })

	// host-3 leaves: calico-node stops, its Node and IPAM go (as
	// `calicoctl node delete` or kube-controllers would do).
	hs[2].stop()
	ctx := context.Background()
	t0 = time.Now()
	if _, err := v.c.Delete(ctx, datastore.Key{Kind: v3.KindNode, Name: hs[2].name}, ""); err != nil {
		t.Fatal(err)
	}
	for _, hd := range []string{"vxlan-tunnel-addr-" + hs[2].name, "test." + hs[2].name} {
		if err := v.alloc.ReleaseByHandle(ctx, hd); err != nil {
			t.Fatal(err)
		}
	}
	if err := v.alloc.ReleaseHostAffinities(ctx, hs[2].name); err != nil {
		t.Fatal(err)
	}
	for i, h := range hs[:2] {
		h.expectDataplaneRoutes(wantRoutes(i, 0, 1), true, converge)
		waitUntil(t, h.name+" tunnel entries of host-3 gone", 10*time.Second, func() (bool, string) {
			p := h.tunnelPeers()
			return len(p) == 2, strings.Join(p, ", ")
		})
	}
	t.Logf("routes and tunnel entries of the node that left removed in %v", time.Since(t0).Round(time.Millisecond))
	reachAll(t, pods[:2], 10*time.Second)
}

// restartWithoutFlap restarts the host's calico-node while watching its
// kernel: no dataplane route is deleted and vxlan.calico stays.
func restartWithoutFlap(t *testing.T, h *host, converged func()) {
	t.Helper()
	nsh := vnetns.NsHandle(h.ns.Fd())
	routes := make(chan netlink.RouteUpdate, 1024)
	links := make(chan netlink.LinkUpdate, 1024)
	done := make(chan struct{})
	defer close(done)
	if err := netlink.RouteSubscribeWithOptions(routes, done, netlink.RouteSubscribeOptions{Namespace: &nsh}); err != nil {
		t.Fatal(err)
	}
	if err := netlink.LinkSubscribeWithOptions(links, done, netlink.LinkSubscribeOptions{Namespace: &nsh}); err != nil {
		t.Fatal(err)
	}
	idx := h.tunnel().Attrs().Index
	insync := strings.Count(readFile(t, h.logf), "dataplane in sync")
	t0 := time.Now()
	h.stop()
	h.start()
	waitUntil(t, h.name+" in sync again", converge, func() (bool, string) {
		return strings.Count(readFile(t, h.logf), "dataplane in sync") > insync, ""
	})
	converged()
	t.Logf("calico-node restarted and in sync in %v", time.Since(t0).Round(time.Millisecond))
	time.Sleep(2500 * time.Millisecond) // a few route refreshes
	for {
		select {
		case u := <-routes:
			if u.Type == syscall.RTM_DELROUTE && (u.Protocol == route.ProtocolDataplane || u.LinkIndex == idx) {
				t.Errorf("route deleted during the restart: %s", u.Route)
			}
			continue
		case u := <-links:
			if u.Header.Type == syscall.RTM_DELLINK && u.Attrs().Index == idx {
				t.Errorf("vxlan.calico deleted during the restart")
			}
			continue
		default:
		}
		break
	}
	if vx := h.tunnel(); vx == nil || vx.Attrs().Index != idx {
		t.Errorf("vxlan.calico re-created by the restart")
	}
}

func readFile(t *testing.T, path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestVXLANCrossSubnet: BGP (the bird backend) and a CrossSubnet VXLAN
// pool, hosts in two subnets. Felix programs every route of the pool:
// straight to the node within the subnet, through vxlan.calico across it;
// BGP keeps its learned routes for the pool out of the kernel. Pods reach
// each other; only the cross-subnet traffic goes through the tunnel.
func TestVXLANCrossSubnet(t *testing.T) {
	v := newVNet(t, v3.VXLANModeCrossSubnet)
	v.addSubnet()
	start := time.Now()
	hs := []*host{
		v.host("host-1", subnet1(1), underlayGW),
		v.host("host-2", subnet1(2), underlayGW),
		v.host("host-3", subnet2(3), subnet2GW),
	}
	vteps := make([]netip.Addr, len(hs))
	for i, h := range hs {
		vteps[i] = v.vtep(h)
		v.pod(h)
	}
	pods := v.pods
	direct := func(j int) string { return pods[j].block.String() + " via " + hs[j].addr.String() }
	want := [][]string{
		{direct(1), viaVTEP(pods[2].block, vteps[2])},
		{direct(0), viaVTEP(pods[2].block, vteps[2])},
		{viaVTEP(pods[0].block, vteps[0]), viaVTEP(pods[1].block, vteps[1])},
	}
	for i, h := range hs {
		h.expectDataplaneRoutes(want[i], false, converge)
	}
	t.Logf("CrossSubnet routes on every host %v after the first start", time.Since(start).Round(time.Millisecond))
	for i, h := range hs {
		h.expectEstablished(2, "node-to-node mesh", converge)
		// BGP keeps only its blackhole: learned routes of the VXLAN pool stay
		// out of the kernel. Exactly one blackhole (BGP's or Felix's) per block.
		for _, r := range h.bgpRoutes() {
			if !strings.HasPrefix(r, "blackhole ") {
				t.Fatalf("%s: BGP route %s in a VXLAN pool", h.name, r)
			}
		}
		rs, err := h.ns.Handle.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Dst: netnstest.IPNet(pods[i].block)}, netlink.RT_FILTER_DST)
		if err != nil || len(rs) != 1 || rs[0].Type != syscall.RTN_BLACKHOLE {
			t.Fatalf("%s: routes to its own block %v: %v", h.name, rs, err)
		}
	}
	reachAll(t, pods, converge)

	// Only traffic to the other subnet is encapsulated (a few packets of
	// the TCP checks above may still trickle through).
	time.Sleep(300 * time.Millisecond)
	tx := func() uint64 { return hs[0].tunnel().Attrs().Statistics.TxPackets }
	const n = 20
	ping := func(dst vpod) uint64 {
		before := tx()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for range n {
			if err := pods[0].ns.Ping(ctx, dst.addr); err != nil {
				t.Fatal(err)
			}
		}
		return tx() - before
	}
	if d := ping(pods[1]); d >= n/2 {
		t.Errorf("%d same-subnet pings: %d packets through vxlan.calico", n, d)
	}
	if d := ping(pods[2]); d < n {
		t.Errorf("%d cross-subnet pings: %d packets through vxlan.calico", n, d)
	}
}

// TestVXLANThroughput (opt-in: CALICO_TEST_THROUGHPUT=1) measures one TCP
// stream between pods on two hosts of one subnet, routed (CrossSubnet
// pool) and then encapsulated (the pool switched to Always, live).
func TestVXLANThroughput(t *testing.T) {
	if os.Getenv("CALICO_TEST_THROUGHPUT") != "1" {
		t.Skip("set CALICO_TEST_THROUGHPUT=1 to measure")
	}
	v := newVNet(t, v3.VXLANModeCrossSubnet)
	hs := []*host{v.host("host-1", subnet1(1), underlayGW, "CALICO_NETWORKING_BACKEND=vxlan"),
		v.host("host-2", subnet1(2), underlayGW, "CALICO_NETWORKING_BACKEND=vxlan")}
	for _, h := range hs {
		v.vtep(h)
		v.pod(h)
	}
	p1, p2 := v.pods[0], v.pods[1]
	hs[0].expectDataplaneRoutes([]string{p2.block.String() + " via " + hs[1].addr.String()}, false, converge)
	reachAll(t, v.pods, converge)
	best := func(port int) float64 {
		var m float64
		for i := range 3 {
			m = max(m, throughput(t, p1, p2, port+i))
		}
		return m
	}
	routed := best(9000)

	got, err := v.c.Get(context.Background(), datastore.Key{Kind: v3.KindIPPool, Name: "test-pool"})
	if err != nil {
		t.Fatal(err)
	}
	pool := got.(*v3.IPPool)
	pool.Spec.VXLANMode = v3.VXLANModeAlways
	if _, err := v.c.Update(context.Background(), pool); err != nil {
		t.Fatal(err)
	}
	hs[0].expectDataplaneRoutes([]string{viaVTEP(p2.block, v.vtep(hs[1]))}, false, converge)
	reachAll(t, v.pods, converge)
	encap := best(9010)
	t.Logf("pod to pod, one TCP stream (best of 3 x 1s): routed %.2f Gb/s, VXLAN %.2f Gb/s (%.0f%%)", routed, encap, 100*encap/routed)
}

// throughput sends from a to b for a second and returns Gb/s.
func throughput(t *testing.T, a, b vpod, port int) float64 {
	t.Helper()
	l, err := b.ns.Listen("tcp", netip.AddrPortFrom(b.addr, uint16(port)).String())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	got := make(chan int64, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			got <- 0
			return
		}
		defer c.Close()
		n, _ := io.Copy(io.Discard, c)
		got <- n
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := a.ns.Dial(ctx, "tcp", netip.AddrPortFrom(b.addr, uint16(port)).String())
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 256<<10)
	start := time.Now()
	for time.Since(start) < time.Second {
		if _, err := c.Write(buf); err != nil {
			t.Fatal(err)
		}
	}
	c.Close()
	n := <-got
	return float64(n) * 8 / time.Since(start).Seconds() / 1e9
}
