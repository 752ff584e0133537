package route

import (
	"context"
	"net/netip"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/calico-go/calico/internal/testutil/netnstest"
)

func mustPrefix(s string) netip.Prefix { return netip.MustParsePrefix(s) }

// TestApplyReconciles programs blackholes and gateway routes in a fresh
// namespace, repairs a route deleted by hand, replaces a changed one, removes
// undesired ones and never touches routes of another protocol.
func TestApplyReconciles(t *testing.T) {
	netnstest.RequireRoot(t)
	h := netnstest.NewHost(t) // uplink 192.0.2.1/24, gateway 192.0.2.2
	ctx := context.Background()

	// A foreign route (protocol boot) that must survive.
	foreign := &netlink.Route{Dst: netnstest.IPNet(mustPrefix("198.51.100.0/24")), Type: 6 /* RTN_BLACKHOLE */}
	if err := h.Handle.RouteAdd(foreign); err != nil {
		t.Fatalf("foreign route: %v", err)
	}

	tbl, err := New(Options{Handle: h.Handle})
	if err != nil {
		t.Fatal(err)
	}
	defer tbl.Close()
	want := []Route{
		{Dst: mustPrefix("198.19.1.0/26"), Type: Blackhole},
		{Dst: mustPrefix("198.19.2.0/26"), Gateway: netip.MustParseAddr("192.0.2.20")},
		{Dst: mustPrefix("198.19.3.7/32"), Gateway: netip.MustParseAddr("192.0.2.30"), Device: "uplink", OnLink: true},
		{Dst: mustPrefix("2001:db8:5::/122"), Type: Blackhole},
	}
	tbl.Set(want)
	st, err := tbl.Apply(ctx)
	if err != nil || st.Added != 4 {
		t.Fatalf("first Apply = %+v, %v; want 4 added", st, err)
	}
	assertRoutes(t, tbl, want)
	st, err = tbl.Apply(ctx)
	if err != nil || st != (Stats{}) {
		t.Fatalf("idempotent Apply = %+v, %v; want nothing done", st, err)
	}

	// Delete one by hand: the next Apply repairs it.
	if err := h.Handle.RouteDel(&netlink.Route{Dst: netnstest.IPNet(want[1].Dst), Protocol: ProtocolBGP}); err != nil {
		t.Fatalf("delete by hand: %v", err)
	}
	if st, err := tbl.Apply(ctx); err != nil || st.Added != 1 {
		t.Fatalf("repair Apply = %+v, %v; want 1 added", st, err)
	}
	assertRoutes(t, tbl, want)

	// Change a gateway and drop two routes.
	want = []Route{
		{Dst: mustPrefix("198.19.1.0/26"), Type: Blackhole},
		{Dst: mustPrefix("198.19.2.0/26"), Gateway: netip.MustParseAddr("192.0.2.21")},
	}
	tbl.Set(want)
	st, err = tbl.Apply(ctx)
	if err != nil || st.Replaced != 1 || st.Deleted != 2 {
		t.Fatalf("update Apply = %+v, %v; want 1 replaced, 2 deleted", st, err)
	}
	assertRoutes(t, tbl, want)

	// An unreachable gateway fails alone; the rest is programmed.
	tbl.Set(append(want, Route{Dst: mustPrefix("198.19.9.0/26"), Gateway: netip.MustParseAddr("203.0.113.9")}))
	st, err = tbl.Apply(ctx)
	if err == nil || st.Failed != 1 {
		t.Fatalf("Apply with unreachable gateway = %+v, %v; want one failure", st, err)
	}
	assertRoutes(t, tbl, want)

	tbl.Set(nil)
	if _, err := tbl.Apply(ctx); err != nil {
		t.Fatal(err)
	}
	assertRoutes(t, tbl, nil)
	rs, err := h.Handle.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Dst: foreign.Dst}, netlink.RT_FILTER_DST)
	if err != nil || len(rs) != 1 {
		t.Fatalf("foreign route gone: %v %v", rs, err)
	}
}

// TestOwnersShare: two owners (BGP's protocol and the dataplane's) that
// want the same blackhole share one copy and never delete each other's;
// a CNI-style workload route (protocol boot) is adopted as it is; a route
// to a missing device is skipped when asked; a different route of another
// owner is never replaced.
func TestOwnersShare(t *testing.T) {
	netnstest.RequireRoot(t)
	h := netnstest.NewHost(t)
	ctx := context.Background()
	bgp, err := New(Options{NetNSFd: h.Fd()})
	if err != nil {
		t.Fatal(err)
	}
	defer bgp.Close()
	dp, err := New(Options{NetNSFd: h.Fd(), Protocol: ProtocolDataplane, SkipMissingDevices: true})
	if err != nil {
		t.Fatal(err)
	}
	defer dp.Close()

	hole := Route{Dst: mustPrefix("198.19.1.0/26"), Type: Blackhole}
	bgp.Set([]Route{hole})
	if st, err := bgp.Apply(ctx); err != nil || st.Added != 1 {
		t.Fatalf("bgp Apply = %+v, %v", st, err)
	}
	// A workload route as the CNI plugin writes it (no protocol: boot).
	if err := h.Handle.RouteAdd(&netlink.Route{LinkIndex: linkIndex(t, h, "uplink"), Dst: netnstest.IPNet(mustPrefix("198.19.1.5/32")), Scope: netlink.SCOPE_LINK}); err != nil {
		t.Fatal(err)
	}
	wl := Route{Dst: mustPrefix("198.19.1.5/32"), Device: "uplink"}
	missing := Route{Dst: mustPrefix("198.19.1.6/32"), Device: "cali-gone"}
	dp.Set([]Route{hole, wl, missing})
	st, err := dp.Apply(ctx)
	if err != nil || st != (Stats{Shared: 2, Skipped: 1}) {
		t.Fatalf("dataplane Apply = %+v, %v; want 2 shared, 1 skipped", st, err)
	}
	assertRoutes(t, dp, nil)

	// BGP stops wanting the blackhole: it deletes its own copy only, and
	// the dataplane writes its own at the next Apply.
	bgp.Set(nil)
	if st, err := bgp.Apply(ctx); err != nil || st.Deleted != 1 {
		t.Fatalf("bgp Apply = %+v, %v", st, err)
	}
	if st, err := dp.Apply(ctx); err != nil || st.Added != 1 || st.Shared != 1 {
		t.Fatalf("dataplane Apply = %+v, %v; want the blackhole added", st, err)
	}
	assertRoutes(t, dp, []Route{hole})
	// Now BGP wants it again: shared with the dataplane's copy.
	bgp.Set([]Route{hole})
	if st, err := bgp.Apply(ctx); err != nil || st.Shared != 1 {
		t.Fatalf("bgp Apply = %+v, %v; want shared", st, err)
	}
	assertRoutes(t, bgp, nil)

	// The workload route deleted by hand: the dataplane writes its own.
	if err := h.Handle.RouteDel(&netlink.Route{Dst: netnstest.IPNet(wl.Dst), Scope: netlink.SCOPE_NOWHERE}); err != nil {
		t.Fatal(err)
	}
	if st, err := dp.Apply(ctx); err != nil || st.Added != 1 {
		t.Fatalf("repair Apply = %+v, %v", st, err)
	}
	assertRoutes(t, dp, []Route{hole, wl})

	// Another owner's different route to a destination is left alone and
	// reported.
	other := &netlink.Route{Dst: netnstest.IPNet(mustPrefix("198.19.2.0/26")), Gw: netip.MustParseAddr("192.0.2.2").AsSlice()}
	if err := h.Handle.RouteAdd(other); err != nil {
		t.Fatal(err)
	}
	dp.Set([]Route{hole, wl, {Dst: mustPrefix("198.19.2.0/26"), Type: Blackhole}})
	if st, err := dp.Apply(ctx); err == nil || st.Failed != 1 {
		t.Fatalf("conflicting Apply = %+v, %v; want one failure", st, err)
	}
	rs, err := h.Handle.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Dst: other.Dst}, netlink.RT_FILTER_DST)
	if err != nil || len(rs) != 1 || rs[0].Gw == nil {
		t.Fatalf("the other owner's route changed: %v %v", rs, err)
	}
}

func linkIndex(t *testing.T, h *netnstest.Host, name string) int {
	t.Helper()
	l, err := h.Handle.LinkByName(name)
	if err != nil {
		t.Fatal(err)
	}
	return l.Attrs().Index
}

func assertRoutes(t *testing.T, tbl *Table, want []Route) {
	t.Helper()
	got, err := tbl.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("routes = %v, want %v", got, want)
	}
	for i := range want {
		w, g := want[i], got[i]
		if g.Dst != w.Dst || g.Type != w.Type || g.Gateway != w.Gateway || (w.Device != "" && g.Device != w.Device) {
			t.Fatalf("route %d = %+v, want %+v", i, g, w)
		}
	}
}

// BenchmarkApply1000 programs 1,000 remote blocks from scratch, then
// measures a no-change Apply.
func BenchmarkApply1000(b *testing.B) {
	netnstest.RequireRoot(b)
	h := netnstest.NewHost(b)
	tbl, err := New(Options{Handle: h.Handle})
	if err != nil {
		b.Fatal(err)
	}
	defer tbl.Close()
	var rs []Route
	for i := 0; i < 1000; i++ {
		dst := netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 18, byte(i / 4), byte(i%4) * 64}), 26)
		rs = append(rs, Route{Dst: dst, Gateway: netip.MustParseAddr("192.0.2.2")})
	}
	ctx := context.Background()
	b.Run("program", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			tbl.Set(nil)
			if _, err := tbl.Apply(ctx); err != nil {
				b.Fatal(err)
			}
			tbl.Set(rs)
			b.StartTimer()
			if _, err := tbl.Apply(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("nochange", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if _, err := tbl.Apply(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
}
