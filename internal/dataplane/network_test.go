package dataplane

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/calico-go/calico/internal/dpapi"
	"github.com/calico-go/calico/internal/kernel/route"
	"github.com/calico-go/calico/internal/testutil/golden"
)

// Builders for networking messages.

func nodeMsg(name, ipv4, vtep, mac string) dpapi.NodeUpdate {
	n := dpapi.Node{IPv4: pfx(ipv4)}
	if vtep != "" {
		n.VXLAN = dpapi.VTEP{Addr: netip.MustParseAddr(vtep), MAC: mac}
	}
	return dpapi.NodeUpdate{Name: name, Node: n}
}

func poolMsg(name, cidr string, mode dpapi.EncapMode, nat bool) dpapi.IPPoolUpdate {
	return dpapi.IPPoolUpdate{Name: name, Pool: dpapi.IPPool{CIDR: pfx(cidr), VXLANMode: mode, NATOutgoing: nat}}
}

func viaVTEP(dst, node, vtep string) dpapi.RouteUpdate {
	return dpapi.RouteUpdate{Dst: pfx(dst), Route: dpapi.Route{Type: dpapi.RouteRemote, Node: node, VXLAN: true, Gateway: netip.MustParseAddr(vtep)}}
}

func viaNode(dst, node, addr string) dpapi.RouteUpdate {
	return dpapi.RouteUpdate{Dst: pfx(dst), Route: dpapi.Route{Type: dpapi.RouteRemote, Node: node, Gateway: netip.MustParseAddr(addr)}}
}

func localRoute(dst, dev string) dpapi.RouteUpdate {
	return dpapi.RouteUpdate{Dst: pfx(dst), Route: dpapi.Route{Type: dpapi.RouteLocalWorkload, Device: dev}}
}

func holeRoute(dst string) dpapi.RouteUpdate {
	return dpapi.RouteUpdate{Dst: pfx(dst), Route: dpapi.Route{Type: dpapi.RouteLocalBlock}}
}

// runNetworkGolden is runGolden plus the desired device, peers and routes
// after each step.
func runNetworkGolden(t *testing.T, file string, steps []step) {
	t.Helper()
	d := offline(t, Options{})
	ctx := context.Background()
	var sb strings.Builder
	for _, s := range steps {
		d.handle(s.msgs)
		if err := d.apply(ctx); err != nil {
			t.Fatalf("step %s: %v", s.name, err)
		}
		if err := d.applyNetwork(ctx); err != nil {
			t.Fatalf("step %s: network: %v", s.name, err)
		}
		fmt.Fprintf(&sb, "### %s\n%s", s.name, d.net.renderKernel())
		sb.WriteString(d.table.Render())
	}
	golden.Check(t, "testdata/"+file+".golden", sb.String())
}

// TestGoldenNetwork: VXLAN device, peers and routes, NAT outgoing
// (masquerade, SNAT, host exclusions) and the VXLAN input filter, as
// nodes, pools and routes come and go.
func TestGoldenNetwork(t *testing.T) {
	const mac1, mac2, mac3 = "66:00:00:00:00:01", "66:00:00:00:00:02", "66:00:00:00:00:03"
	runNetworkGolden(t, "network", []step{
		{"VXLAN pool, three nodes", batch(cfgMsg(func(c *dpapi.Config) { c.IPv6Support = false }),
			poolMsg("pool", "10.65.0.0/16", dpapi.EncapAlways, true),
			nodeMsg("node1", "192.0.2.1/24", "10.65.1.0", mac1),
			nodeMsg("node2", "192.0.2.2/24", "10.65.2.0", mac2),
			nodeMsg("node3", "198.51.100.3/24", "10.65.3.0", mac3),
			holeRoute("10.65.1.0/26"), localRoute("10.65.1.5/32", "cali1"),
			viaVTEP("10.65.2.0/26", "node2", "10.65.2.0"), viaVTEP("10.65.3.0/26", "node3", "10.65.3.0"),
			dpapi.InSync{})},
		{"CrossSubnet: node2 routed directly; SNAT to an address, hosts excluded", batch(
			cfgMsg(func(c *dpapi.Config) {
				c.IPv6Support = false
				c.NATOutgoingAddress = netip.MustParseAddr("192.0.2.100")
				c.NATOutgoingExclusions = "IPPoolsAndHostIPs"
				c.VXLANMTU = 1400
			}),
			poolMsg("pool", "10.65.0.0/16", dpapi.EncapCrossSubnet, true), poolMsg("other", "10.66.0.0/16", dpapi.EncapNever, false),
			viaNode("10.65.2.0/26", "node2", "192.0.2.2"))},
		{"node3 leaves", batch(dpapi.RouteRemove{Dst: pfx("10.65.3.0/26")}, dpapi.NodeRemove{Name: "node3"})},
		{"no VXLAN pool left: no device, no VXLAN routes, no VXLAN filter", batch(
			dpapi.RouteRemove{Dst: pfx("10.65.1.0/26")}, dpapi.RouteRemove{Dst: pfx("10.65.2.0/26")},
			dpapi.IPPoolRemove{Name: "pool"})},
		{"no pool at all: no NAT", batch(dpapi.IPPoolRemove{Name: "other"})},
	})
}

// TestRouteDesired checks the translation of dpapi routes into kernel
// routes directly: VXLAN routes only with a device, IPv6 only with
// IPv6Support.
func TestRouteDesired(t *testing.T) {
	m := &networkManager{nodes: map[string]dpapi.Node{}, pools: map[string]dpapi.IPPool{}, dpRoutes: map[netip.Prefix]dpapi.Route{}}
	for _, msg := range []dpapi.Message{
		localRoute("10.65.1.5/32", "cali1"), localRoute("fd00::5/128", "cali1"),
		viaVTEP("10.65.2.0/26", "node2", "10.65.2.0"), viaNode("10.65.3.0/26", "node3", "192.0.2.3"), holeRoute("10.65.1.0/26"),
	} {
		m.handle(msg)
	}
	str := func(rs []route.Route) string {
		var out []string
		for _, r := range rs {
			out = append(out, r.String())
		}
		return strings.Join(out, "; ")
	}
	cfg := testConfig()
	got := str(m.kernelRoutes(cfg, false))
	want := "blackhole 10.65.1.0/26; 10.65.1.5/32 dev cali1; 10.65.3.0/26 via 192.0.2.3; fd00::5/128 dev cali1"
	if got != want {
		t.Errorf("without a device: %s\nwant %s", got, want)
	}
	cfg.IPv6Support = false
	got = str(m.kernelRoutes(cfg, true))
	want = "blackhole 10.65.1.0/26; 10.65.1.5/32 dev cali1; 10.65.2.0/26 via 10.65.2.0 dev vxlan.calico; 10.65.3.0/26 via 192.0.2.3"
	if got != want {
		t.Errorf("with a device, no IPv6: %s\nwant %s", got, want)
	}
}
