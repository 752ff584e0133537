package calc

import (
	"fmt"
	"net/netip"
	"testing"

	v3 "github.com/calico-go/calico/api/v3"
	"github.com/calico-go/calico/internal/dpapi"
)

// vxlanCluster: nodes nodes with a VTEP and one /26 block each in a VXLAN
// pool, and podsPerNode workloads on every node (node-0 is this one).
func vxlanCluster(nodes, podsPerNode int) []Update {
	var us []Update
	add := func(r v3.Resource) { us = append(us, Update{Key: keyOf(r), Value: r}) }
	add(poolRes("pool", "10.0.0.0/8", v3.VXLANModeAlways, true))
	for n := range nodes {
		name := fmt.Sprintf("node-%d", n)
		if n == 0 {
			name = testNode
		}
		block := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(n >> 10), byte(n >> 2), byte(n&3) * 64}), 26)
		add(nodeRes(name, fmt.Sprintf("172.16.%d.%d/16", n>>8, n&255), block.Addr().String(), ""))
		add(aff(name, block.String()))
		a := block.Addr().Next()
		for p := range podsPerNode {
			add(wep("ns", fmt.Sprintf("%s-pod-%d", name, p), name, []string{netip.PrefixFrom(a, 32).String()}, nil))
			a = a.Next()
		}
	}
	return us
}

// BenchmarkRouteSnapshot: the initial snapshot of 1,000 nodes (VTEPs,
// blocks, 10 pods each) through the graph.
func BenchmarkRouteSnapshot(b *testing.B) {
	us := vxlanCluster(1000, 10)
	b.ResetTimer()
	for range b.N {
		var msgs int
		g := New(Options{NodeName: testNode, Sink: func(m []dpapi.Message) { msgs += len(m) }})
		g.OnUpdates(us)
		g.OnInSync()
		if msgs < 2000 {
			b.Fatalf("%d messages", msgs)
		}
	}
}

// BenchmarkRouteNodeJoins: with 1,000 nodes in place, one more node
// joins (its block, then its Node with the VTEP, the order calico-node
// writes them in): the cost of the increment.
func BenchmarkRouteNodeJoins(b *testing.B) {
	g := New(Options{NodeName: testNode, Sink: func([]dpapi.Message) {}})
	g.OnUpdates(vxlanCluster(1000, 10))
	g.OnInSync()
	b.ResetTimer()
	for i := range b.N {
		name := fmt.Sprintf("new-%d", i)
		v := 10<<24 | 128<<16 + uint32(i)*64 // 10.128.0.0 onwards, in the pool
		block := netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), 26)
		n := nodeRes(name, "172.17.0.1/16", block.Addr().String(), "")
		a := aff(name, block.String())
		var got int
		g.opts.Sink = func(m []dpapi.Message) { got += len(m) }
		g.OnUpdates([]Update{{Key: keyOf(a), Value: a}})
		g.OnUpdates([]Update{{Key: keyOf(n), Value: n}})
		if got != 2 {
			b.Fatalf("node join emitted %d messages, want 2", got)
		}
	}
}
