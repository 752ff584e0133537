package dataplane

import (
	"context"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/calico-go/calico/internal/dpapi"
	"github.com/calico-go/calico/internal/kernel/route"
	"github.com/calico-go/calico/internal/testutil/netnstest"
)

// whoServer listens in ns and answers every connection with the address
// it came from.
func whoServer(t *testing.T, ns *netnstest.NS, addr netip.AddrPort) {
	t.Helper()
	l, err := ns.Listen("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			host, _, _ := net.SplitHostPort(c.RemoteAddr().String())
			_, _ = io.WriteString(c, host)
			c.Close()
		}
	}()
}

// seenAs connects from ns to dst and returns the source address the
// server saw.
func seenAs(ns *netnstest.NS, dst netip.AddrPort, timeout time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c, err := ns.Dial(ctx, "tcp", dst.String())
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	b, err := io.ReadAll(c)
	return string(b), err
}

// TestNATOutgoingAndRouteRepair runs the dataplane in a host namespace: a
// workload in a natOutgoing pool reaches the underlay (which has no route
// back to the pool) masqueraded to the host address, then SNATed to the
// configured natOutgoingAddress; the workload's route, deleted by hand,
// is repaired within the route refresh interval.
func TestNATOutgoingAndRouteRepair(t *testing.T) {
	w := newWorld(t, Options{})
	w.v4only = true
	w.start()
	srv := netip.AddrPortFrom(w.host.UnderlayAddr, 7000)
	whoServer(t, w.host.Underlay, srv)

	o := w.base()
	o.cfg.RouteRefreshInterval = 200 * time.Millisecond
	w.sync(o)
	if got, err := seenAs(w.c1.NS, srv, 300*time.Millisecond); err == nil {
		t.Fatalf("reached the underlay without NAT outgoing (seen as %s)", got)
	}
	w.send(batch(poolMsg("pool", "10.65.0.0/16", dpapi.EncapNever, true),
		nodeMsg(o.cfg.NodeName, "192.0.2.1/24", "", ""), localRoute(c1Addr.String()+"/32", "calic1")))
	if got, err := seenAs(w.c1.NS, srv, 2*time.Second); err != nil || got != w.host.Addr.String() {
		t.Fatalf("with natOutgoing: seen as %q, %v; want %s", got, err, w.host.Addr)
	}

	// SNAT to an address of the host's instead.
	snat := netip.MustParseAddr("192.0.2.50")
	l, err := w.host.Handle.LinkByName("uplink")
	if err != nil {
		t.Fatal(err)
	}
	if err := w.host.Handle.AddrAdd(l, &netlink.Addr{IPNet: netnstest.IPNet(netip.PrefixFrom(snat, 32))}); err != nil {
		t.Fatal(err)
	}
	next := o.clone()
	next.cfg.NATOutgoingAddress = snat
	w.sync(next)
	if got, err := seenAs(w.c1.NS, srv, 2*time.Second); err != nil || got != snat.String() {
		t.Fatalf("with natOutgoingAddress: seen as %q, %v; want %s", got, err, snat)
	}

	// The workload route (the harness made it, as the CNI plugin would)
	// deleted by hand comes back, now with our protocol.
	dst := netnstest.IPNet(netip.PrefixFrom(c1Addr, 32))
	if err := w.host.Handle.RouteDel(&netlink.Route{Dst: dst, Scope: netlink.SCOPE_NOWHERE}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		rs, err := w.host.Handle.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Dst: dst}, netlink.RT_FILTER_DST)
		if err == nil && len(rs) == 1 && rs[0].Protocol == route.ProtocolDataplane && rs[0].LinkIndex > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("route to %s not repaired: %v %v", c1Addr, rs, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got, err := seenAs(w.c1.NS, srv, 2*time.Second); err != nil || got != snat.String() {
		t.Fatalf("after the repair: seen as %q, %v", got, err)
	}
}
