package calc

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"

	v3 "github.com/calico-go/calico/api/v3"
	"github.com/calico-go/calico/internal/dpapi"
	"github.com/calico-go/calico/internal/syncer/affinity"
)

// Network resource builders.

func nodeRes(name, ipv4, vtep, mac string) *v3.Node {
	r := v3.NewNode()
	r.Name = name
	if ipv4 != "" {
		r.Spec.BGP = &v3.NodeBGPSpec{IPv4Address: ipv4}
	}
	r.Spec.IPv4VXLANTunnelAddr, r.Spec.VXLANTunnelMACAddr = vtep, mac
	return r
}

func poolRes(name, cidr string, vxlan v3.VXLANMode, nat bool) *v3.IPPool {
	r := v3.NewIPPool()
	r.Name = name
	r.Spec = v3.IPPoolSpec{CIDR: cidr, VXLANMode: vxlan, NATOutgoing: nat, BlockSize: 26}
	return r
}

func aff(node, cidr string) *affinity.Block {
	p := netip.MustParsePrefix(cidr)
	return affinity.New(node+"/ipv4/block/"+strings.Replace(cidr, "/", "-", 1), node, p)
}

func localWEP(name, node string, ips ...string) *v3.WorkloadEndpoint {
	return wep("ns1", name, node, ips, nil, "kns.ns1")
}

// routeLines renders a model's routes as "dst route" lines.
func routeLines(m *dpapi.State) []string {
	var out []string
	for _, dst := range slices.SortedFunc(maps.Keys(m.Routes), netip.Prefix.Compare) {
		out = append(out, dst.String()+" "+m.Routes[dst].String())
	}
	return out
}

func TestRouteResolver(t *testing.T) {
	const (
		sub1 = "192.0.2.1/24"
		sub2 = "192.0.2.2/24"
		far3 = "198.51.100.3/24"
	)
	nodes := func(vxlan3 bool) []v3.Resource {
		v3addr := ""
		if vxlan3 {
			v3addr = "10.0.3.0"
		}
		return []v3.Resource{
			nodeRes(testNode, sub1, "10.0.1.0", ""),
			nodeRes("node2", sub2, "10.0.2.0", ""),
			nodeRes("node3", far3, v3addr, ""),
		}
	}
	blocks := []v3.Resource{aff(testNode, "10.0.1.0/26"), aff("node2", "10.0.2.0/26"), aff("node3", "10.0.3.0/26")}
	tests := []struct {
		name string
		rs   []v3.Resource
		want []string
	}{
		{"VXLAN Always: local block blackholed, remote blocks through their VTEPs, local workloads to their interfaces",
			slices.Concat(nodes(true), blocks, []v3.Resource{
				poolRes("p", "10.0.0.0/16", v3.VXLANModeAlways, true),
				localWEP("a", testNode, "10.0.1.5/32"), localWEP("b", "node2", "10.0.2.5/32")}),
			[]string{
				"10.0.1.0/26 blackhole",
				"10.0.1.5/32 dev calia",
				"10.0.2.0/26 via 10.0.2.0 vxlan node node2",
				"10.0.3.0/26 via 10.0.3.0 vxlan node node3",
			}},
		{"CrossSubnet: routed to the node in this subnet, encapsulated across",
			slices.Concat(nodes(true), blocks, []v3.Resource{poolRes("p", "10.0.0.0/16", v3.VXLANModeCrossSubnet, false)}),
			[]string{
				"10.0.1.0/26 blackhole",
				"10.0.2.0/26 via 192.0.2.2 node node2",
				"10.0.3.0/26 via 10.0.3.0 vxlan node node3",
			}},
		{"pool without VXLAN: only workload routes (BGP routes the blocks)",
			slices.Concat(nodes(true), blocks, []v3.Resource{
				poolRes("p", "10.0.0.0/16", v3.VXLANModeNever, true), localWEP("a", testNode, "10.0.1.5/32", "fd00::5/128")}),
			[]string{"10.0.1.5/32 dev calia", "fd00::5/128 dev calia"}},
		{"a node without a VTEP gets no route; a block of an unknown node neither",
			slices.Concat(nodes(false), blocks, []v3.Resource{
				aff("ghost", "10.0.9.0/26"), poolRes("p", "10.0.0.0/16", v3.VXLANModeAlways, false)}),
			[]string{"10.0.1.0/26 blackhole", "10.0.2.0/26 via 10.0.2.0 vxlan node node2"}},
		{"blocks outside every pool are not routed",
			slices.Concat(nodes(true), blocks, []v3.Resource{poolRes("p", "10.0.2.0/24", v3.VXLANModeAlways, false)}),
			[]string{"10.0.2.0/26 via 10.0.2.0 vxlan node node2"}},
		{"borrowed addresses: a remote workload outside its node's blocks gets a /32",
			slices.Concat(nodes(true), blocks, []v3.Resource{
				poolRes("p", "10.0.0.0/16", v3.VXLANModeAlways, false),
				localWEP("in-my-block", "node2", "10.0.1.9/32"),   // borrowed from this node's block
				localWEP("in-third", "node2", "10.0.3.9/32"),      // borrowed from node3's block
				localWEP("own", "node2", "10.0.2.9/32"),           // in its own block: covered
				localWEP("local-borrow", testNode, "10.0.2.7/32"), // this node borrowed from node2
			}),
			[]string{
				"10.0.1.0/26 blackhole",
				"10.0.1.9/32 via 10.0.2.0 vxlan node node2",
				"10.0.2.0/26 via 10.0.2.0 vxlan node node2",
				"10.0.2.7/32 dev calilocal-borrow",
				"10.0.3.0/26 via 10.0.3.0 vxlan node node3",
				"10.0.3.9/32 via 10.0.2.0 vxlan node node2",
			}},
		{"a VTEP address outside its node's blocks gets a /32",
			[]v3.Resource{
				nodeRes(testNode, sub1, "10.0.1.0", ""), nodeRes("node2", sub2, "10.0.7.7", ""),
				aff(testNode, "10.0.1.0/26"), aff("node2", "10.0.2.0/26"),
				poolRes("p", "10.0.0.0/16", v3.VXLANModeAlways, false),
			},
			[]string{
				"10.0.1.0/26 blackhole",
				"10.0.2.0/26 via 10.0.7.7 vxlan node node2",
				"10.0.7.7/32 via 10.0.7.7 vxlan node node2",
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := squashed(t, mkState(tc.rs...))
			if got := routeLines(m); !slices.Equal(got, tc.want) {
				t.Fatalf("routes:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

func TestNodesAndPools(t *testing.T) {
	n2 := nodeRes("node2", "192.0.2.2/24", "10.0.2.0", "")
	n3 := nodeRes("node3", "", "10.0.3.0", "") // no address: no VTEP
	n3.Spec.Addresses = []v3.NodeAddress{{Address: "198.51.100.3/24", Type: v3.NodeAddressInternalIP}}
	n4 := nodeRes("node4", "192.0.2.4", "10.0.4.0", "0A:58:0A:00:04:00")
	m := squashed(t, mkState(n2, n3, n4, nodeRes("node5", "", "10.0.5.0", ""),
		poolRes("p", "10.0.0.0/16", v3.VXLANModeCrossSubnet, true), poolRes("bad", "nonsense", "", false)))
	var got []string
	for _, name := range slices.Sorted(maps.Keys(m.Nodes)) {
		got = append(got, name+" "+m.Nodes[name].String())
	}
	for _, name := range slices.Sorted(maps.Keys(m.IPPools)) {
		got = append(got, name+" "+m.IPPools[name].String())
	}
	want := []string{
		// 0x66 then the first five bytes of SHA-1("node2").
		"node2 {ipv4=192.0.2.2/24 vtep=10.0.2.0," + vtepMAC("node2", "") + "}",
		"node3 {ipv4=198.51.100.3/24 vtep=10.0.3.0," + vtepMAC("node3", "") + "}",
		"node4 {ipv4=192.0.2.4/32 vtep=10.0.4.0,0a:58:0a:00:04:00}",
		"node5 {}",
		"p {10.0.0.0/16 vxlan=CrossSubnet ipip=Never nat=true disabled=false}",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if mac := vtepMAC("node2", ""); !strings.HasPrefix(mac, "66:") || len(mac) != 17 {
		t.Fatalf("derived MAC %q", mac)
	}
}

// TestRouteSequences moves through states that exercise every fan-out
// (a node's subnet, its VTEP, a pool's mode, a block changing hands, a
// workload moving) and checks that the incremental model always equals
// the model computed from scratch.
func TestRouteSequences(t *testing.T) {
	base := []v3.Resource{
		nodeRes(testNode, "192.0.2.1/24", "10.0.1.0", ""), nodeRes("node2", "192.0.2.2/24", "10.0.2.0", ""),
		aff(testNode, "10.0.1.0/26"), aff("node2", "10.0.2.0/26"),
		poolRes("p", "10.0.0.0/16", v3.VXLANModeCrossSubnet, true),
		localWEP("a", testNode, "10.0.1.5/32"), localWEP("b", "node2", "10.0.1.6/32"),
	}
	with := func(rs ...v3.Resource) state { return mkState(slices.Concat(base, rs)...) }
	s0 := with()
	s1 := with(nodeRes(testNode, "198.51.100.1/24", "10.0.1.0", "")) // this node moves subnet
	s2 := with(nodeRes("node2", "192.0.2.2/24", "10.0.2.64", ""))    // node2's VTEP changes
	s3 := with(poolRes("p", "10.0.0.0/16", v3.VXLANModeAlways, true))
	s4 := with(aff("node2", "10.0.1.0/26"), nodeRes("node2", "192.0.2.2/24", "10.0.7.7", "")) // shared block, VTEP outside
	s5 := mkState(base[0], base[2], base[4], base[5])                                         // node2 leaves
	s6 := with(localWEP("b", testNode, "10.0.1.6/32"))                                        // workload moves here
	runSequence(t, s0, s1, s2, s3, s4, s5, s6, s0)
}

// TestRandomRouteSequences checks random sequences over a small universe
// of nodes, pools, affinities and workloads, as runSequence does.
func TestRandomRouteSequences(t *testing.T) {
	seeds := 30
	if testing.Short() {
		seeds = 5
	}
	nodes := []string{testNode, "node2", "node3"}
	subnets := []string{"192.0.2.%d/24", "198.51.100.%d/24"}
	blocks := []string{"10.0.1.0/26", "10.0.1.64/26", "10.0.2.0/26", "10.1.0.0/26"}
	addrs := []string{"10.0.1.5/32", "10.0.1.70/32", "10.0.2.5/32", "10.1.0.9/32", "10.0.9.9/32"}
	vteps := []string{"", "10.0.1.0", "10.0.2.0", "10.0.9.1"}
	modes := []v3.VXLANMode{v3.VXLANModeNever, v3.VXLANModeAlways, v3.VXLANModeCrossSubnet}
	for seed := range seeds {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(seed), 7))
			var states []state
			for range 5 {
				var rs []v3.Resource
				for i, n := range nodes {
					if rng.IntN(4) > 0 {
						rs = append(rs, nodeRes(n, fmt.Sprintf(pick(rng, subnets), i+1), pick(rng, vteps), ""))
					}
				}
				rs = append(rs, poolRes("p0", "10.0.0.0/16", pick(rng, modes), rng.IntN(2) == 0))
				if rng.IntN(2) == 0 {
					rs = append(rs, poolRes("p1", "10.1.0.0/16", pick(rng, modes), false))
				}
				for _, b := range blocks {
					if rng.IntN(3) > 0 {
						rs = append(rs, aff(pick(rng, nodes), b))
					}
				}
				for i := range 4 {
					if rng.IntN(3) > 0 {
						rs = append(rs, localWEP(fmt.Sprintf("w%d", i), pick(rng, nodes), pick(rng, addrs)))
					}
				}
				states = append(states, mkState(rs...))
			}
			runSequence(t, states...)
		})
	}
}
