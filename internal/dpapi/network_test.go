package dpapi

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func TestNetworkContract(t *testing.T) {
	pfx := netip.MustParsePrefix
	addr := netip.MustParseAddr
	n2 := Node{IPv4: pfx("192.0.2.2/24"), VXLAN: VTEP{Addr: addr("10.0.2.0"), MAC: "66:00:00:00:00:02"}}
	blk := pfx("10.0.2.0/26")
	viaVTEP := Route{Type: RouteRemote, Node: "n2", VXLAN: true, Gateway: addr("10.0.2.0")}
	direct := Route{Type: RouteRemote, Node: "n2", Gateway: addr("192.0.2.2")}
	pool := IPPool{CIDR: pfx("10.0.0.0/16"), VXLANMode: EncapCrossSubnet, NATOutgoing: true}
	good := [][]Message{
		{ConfigUpdate{}, IPPoolUpdate{Name: "p", Pool: pool}, NodeUpdate{Name: "n2", Node: n2},
			RouteUpdate{Dst: blk, Route: viaVTEP},
			RouteUpdate{Dst: pfx("10.0.1.0/26"), Route: Route{Type: RouteLocalBlock}},
			RouteUpdate{Dst: pfx("10.0.1.5/32"), Route: Route{Type: RouteLocalWorkload, Device: "cali1"}}, InSync{}},
		// The node loses its VTEP and the route changes in the same batch:
		// consistent at the end of the batch.
		{NodeUpdate{Name: "n2", Node: Node{IPv4: n2.IPv4}}, RouteUpdate{Dst: blk, Route: direct}},
		{RouteRemove{Dst: blk}, NodeRemove{Name: "n2"}, IPPoolRemove{Name: "p"}},
	}
	s := NewState()
	for i, b := range good {
		if err := s.Apply(b); err != nil {
			t.Fatalf("batch %d: %v", i, err)
		}
	}
	if len(s.Nodes)+len(s.IPPools) != 0 || len(s.Routes) != 2 {
		t.Fatalf("unexpected final state:\n%s", s)
	}
	want := "route 10.0.1.0/26 blackhole\nroute 10.0.1.5/32 dev cali1\n"
	if got := s.String(); !strings.Contains(got, want) {
		t.Fatalf("String() = %q, want it to hold %q", got, want)
	}

	cfg := ConfigUpdate{}
	withNode := []Message{cfg, NodeUpdate{Name: "n2", Node: n2}}
	bad := []struct {
		name  string
		batch []Message
		want  string
	}{
		{"route before its node in a batch", []Message{cfg, RouteUpdate{Dst: blk, Route: viaVTEP}, NodeUpdate{Name: "n2", Node: n2}}, "after a later group"},
		{"route to an unknown node", []Message{cfg, RouteUpdate{Dst: blk, Route: viaVTEP}}, `unknown node "n2"`},
		{"gateway is not the VTEP", append(withNode, RouteUpdate{Dst: blk, Route: Route{Type: RouteRemote, Node: "n2", VXLAN: true, Gateway: addr("10.0.9.9")}}), "is not the VTEP"},
		{"gateway is not the node", append(withNode, RouteUpdate{Dst: blk, Route: Route{Type: RouteRemote, Node: "n2", Gateway: addr("192.0.2.9")}}), "not an address of node"},
		{"node removed under its route", append(withNode, RouteUpdate{Dst: blk, Route: viaVTEP}, NodeRemove{Name: "n2"}), `unknown node "n2"`},
		{"workload route without device", []Message{cfg, RouteUpdate{Dst: blk, Route: Route{Type: RouteLocalWorkload}}}, "without a device"},
		{"unmasked destination", []Message{cfg, RouteUpdate{Dst: pfx("10.0.2.1/26"), Route: Route{Type: RouteLocalBlock}}}, "not a masked prefix"},
		{"unknown route removed", []Message{cfg, RouteRemove{Dst: blk}}, "unknown route"},
		{"unknown node removed", []Message{cfg, NodeRemove{Name: "x"}}, "unknown node x"},
		{"unknown pool removed", []Message{cfg, IPPoolRemove{Name: "x"}}, "unknown IP pool x"},
		{"pool removed before route removal group", []Message{cfg, IPPoolUpdate{Name: "p", Pool: pool}, IPPoolRemove{Name: "p"}, RouteRemove{Dst: blk}}, "after a later group"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			err := NewState().Apply(tc.batch)
			if !errors.Is(err, ErrContract) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Apply = %v, want an ErrContract containing %q", err, tc.want)
			}
		})
	}
}
