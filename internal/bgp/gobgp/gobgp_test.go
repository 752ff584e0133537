package gobgp

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/calico-go/calico/internal/bgp"
)

func freePort(t *testing.T, addr string) int32 {
	t.Helper()
	l, err := net.Listen("tcp", addr+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return int32(l.Addr().(*net.TCPAddr).Port)
}

type node struct {
	s    *Speaker
	addr netip.Addr
	port int32
}

// pair starts two speakers on loopback addresses 127.0.0.1 and 127.0.0.2
// (distinct ports; no root needed) and peers them: a connects, b waits.
func pair(t *testing.T, asA, asB uint32, peerA, peerB func(*bgp.Peer)) (a, b node) {
	t.Helper()
	ctx := context.Background()
	a = node{s: New(Options{}), addr: netip.MustParseAddr("127.0.0.1")}
	b = node{s: New(Options{}), addr: netip.MustParseAddr("127.0.0.2")}
	a.port, b.port = freePort(t, "127.0.0.1"), freePort(t, "127.0.0.2")
	for _, n := range []node{a, b} {
		as := asA
		if n.addr == b.addr {
			as = asB
		}
		if err := n.s.Start(ctx, bgp.Global{ASN: as, RouterID: n.addr, ListenPort: n.port, ListenAddrs: []netip.Addr{n.addr}}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = n.s.Stop(context.Background()) })
	}
	pa := bgp.Peer{Name: "Mesh_127_0_0_2", Type: bgp.PeerMesh, Address: b.addr, Port: uint16(b.port), ASN: asB, LocalAddress: a.addr}
	pb := bgp.Peer{Name: "Mesh_127_0_0_1", Type: bgp.PeerMesh, Address: a.addr, Port: uint16(a.port), ASN: asA, LocalAddress: b.addr, Passive: true}
	if peerA != nil {
		peerA(&pa)
	}
	if peerB != nil {
		peerB(&pb)
	}
	if err := a.s.SetPeers(ctx, []bgp.Peer{pa}); err != nil {
		t.Fatal(err)
	}
	if err := b.s.SetPeers(ctx, []bgp.Peer{pb}); err != nil {
		t.Fatal(err)
	}
	return a, b
}

func waitFor(t *testing.T, what string, d time.Duration, f func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(d)
	var last string
	for time.Now().Before(deadline) {
		ok, s := f()
		if ok {
			return
		}
		last = s
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s: not reached after %v; last: %s", what, d, last)
}

func learned(t *testing.T, s *Speaker) map[netip.Prefix]bgp.LearnedRoute {
	t.Helper()
	ls, err := s.Learned(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	m := map[netip.Prefix]bgp.LearnedRoute{}
	for _, l := range ls {
		m[l.Prefix] = l
	}
	return m
}

func prefixes(m map[netip.Prefix]bgp.LearnedRoute) []string {
	var out []string
	for p := range m {
		out = append(out, p.String())
	}
	slices.Sort(out)
	return out
}

// TestSessionRoutesAndExport: an iBGP session comes up, each side learns the
// other's routes with the right next hop, a learned route outside the
// exportable set is not passed on, withdrawing a route removes it, and
// removing the peer clears everything.
func TestSessionRoutesAndExport(t *testing.T) {
	ctx := context.Background()
	a, b := pair(t, 64512, 64512, nil, nil)
	waitFor(t, "Established", 30*time.Second, func() (bool, string) {
		ps, _ := a.s.Peers(ctx)
		return len(ps) == 1 && ps[0].State == bgp.StateEstablished, fmt.Sprint(ps)
	})
	ps, _ := b.s.Peers(ctx)
	if len(ps) != 1 || ps[0].Type != bgp.PeerMesh || ps[0].Name != "Mesh_127_0_0_1" || ps[0].Since.IsZero() {
		t.Fatalf("b's peers = %+v", ps)
	}
	if err := a.s.SetRoutes(ctx, []bgp.Route{{Prefix: netip.MustParsePrefix("198.19.0.0/26")}, {Prefix: netip.MustParsePrefix("198.19.5.9/32")}}); err != nil {
		t.Fatal(err)
	}
	if err := b.s.SetRoutes(ctx, []bgp.Route{{Prefix: netip.MustParsePrefix("198.19.0.64/26"), Communities: []string{"65000:100"}}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a and b learn each other's routes", 10*time.Second, func() (bool, string) {
		la, lb := learned(t, a.s), learned(t, b.s)
		return len(la) == 1 && len(lb) == 2, fmt.Sprint(prefixes(la), prefixes(lb))
	})
	lb := learned(t, b.s)
	if r := lb[netip.MustParsePrefix("198.19.0.0/26")]; r.NextHop != a.addr || r.Peer != a.addr {
		t.Fatalf("b learned %+v, want next hop and peer %s", r, a.addr)
	}
	if err := a.s.SetRoutes(ctx, []bgp.Route{{Prefix: netip.MustParsePrefix("198.19.0.0/26")}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "withdrawal reaches b", 10*time.Second, func() (bool, string) {
		lb := learned(t, b.s)
		return len(lb) == 1, fmt.Sprint(prefixes(lb))
	})
	if err := b.s.SetPeers(ctx, nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "b forgets a's routes", 10*time.Second, func() (bool, string) {
		lb := learned(t, b.s)
		return len(lb) == 0, fmt.Sprint(prefixes(lb))
	})
}

// TestFilters: eBGP with an export filter on a (reject one block) and an
// import filter on b (reject /32s), then a filter change applied to the live
// session.
func TestFilters(t *testing.T) {
	ctx := context.Background()
	reject := bgp.FilterRule{Prefix: netip.MustParsePrefix("198.19.1.0/26"), Op: bgp.MatchEqual, Action: bgp.Reject}
	a, b := pair(t, 64512, 64513, func(p *bgp.Peer) { p.Export = []bgp.FilterRule{reject} },
		func(p *bgp.Peer) {
			p.Import = []bgp.FilterRule{{Prefix: netip.MustParsePrefix("198.19.0.0/16"), Op: bgp.MatchIn, MinLen: 32, Action: bgp.Reject}}
		})
	routes := []bgp.Route{
		{Prefix: netip.MustParsePrefix("198.19.0.0/26")},
		{Prefix: netip.MustParsePrefix("198.19.1.0/26")},
		{Prefix: netip.MustParsePrefix("198.19.2.3/32")},
	}
	if err := a.s.SetRoutes(ctx, routes); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "b learns only 198.19.0.0/26", 40*time.Second, func() (bool, string) {
		lb := learned(t, b.s)
		_, ok := lb[netip.MustParsePrefix("198.19.0.0/26")]
		return len(lb) == 1 && ok, fmt.Sprint(prefixes(lb))
	})
	// Drop a's export filter: 198.19.1.0/26 now reaches b.
	pa := a.s.filterPeers[0]
	pa.Export = nil
	if err := a.s.SetPeers(ctx, []bgp.Peer{pa}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "b learns 198.19.1.0/26 after the filter change", 20*time.Second, func() (bool, string) {
		lb := learned(t, b.s)
		return len(lb) == 2, fmt.Sprint(prefixes(lb))
	})
	if ps, _ := a.s.Peers(ctx); len(ps) != 1 || ps[0].State != bgp.StateEstablished {
		t.Fatalf("filter change reset the session: %+v", ps)
	}
}

func TestParseCommunity(t *testing.T) {
	if v, l, err := parseCommunity("65000:100"); err != nil || l != nil || v != 65000<<16|100 {
		t.Fatalf("standard: %v %v %v", v, l, err)
	}
	if _, l, err := parseCommunity("4200000000:1:2"); err != nil || l == nil || l.GlobalAdmin != 4200000000 {
		t.Fatalf("large: %v %v", l, err)
	}
	for _, bad := range []string{"70000:1", "1", "a:b", "1:2:3:4"} {
		if _, _, err := parseCommunity(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
