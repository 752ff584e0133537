package desired

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v3 "github.com/calico-go/calico/api/v3"
	"github.com/calico-go/calico/internal/bgp"
)

func node(name, ip string, labels map[string]string, mod ...func(*v3.Node)) v3.Node {
	n := v3.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
	n.Spec.BGP = &v3.NodeBGPSpec{IPv4Address: ip}
	for _, m := range mod {
		m(&n)
	}
	return n
}

func rr(cluster string) func(*v3.Node) {
	return func(n *v3.Node) { n.Spec.BGP.RouteReflectorClusterID = cluster }
}

func asn(a uint32) func(*v3.Node) {
	return func(n *v3.Node) { x := v3.ASNumber(a); n.Spec.BGP.ASNumber = &x }
}

func bgpConfig(name string, f func(*v3.BGPConfigurationSpec)) v3.BGPConfiguration {
	c := v3.BGPConfiguration{ObjectMeta: metav1.ObjectMeta{Name: name}}
	f(&c.Spec)
	return c
}

func meshOff(s *v3.BGPConfigurationSpec) { f := false; s.NodeToNodeMeshEnabled = &f }

func peer(name string, f func(*v3.BGPPeerSpec)) v3.BGPPeer {
	p := v3.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: name}}
	f(&p.Spec)
	return p
}

func pool(name, cidr string, f ...func(*v3.IPPoolSpec)) v3.IPPool {
	p := v3.IPPool{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v3.IPPoolSpec{CIDR: cidr}}
	for _, m := range f {
		m(&p.Spec)
	}
	return p
}

// peerLine is a compact, comparable view of a peer.
func peerLine(p bgp.Peer) string {
	s := fmt.Sprintf("%s %s as%d", p.Name, p.Type, p.ASN)
	if p.Port != 0 {
		s += fmt.Sprintf(" port%d", p.Port)
	}
	if p.Passive {
		s += " passive"
	}
	if p.RRClient {
		s += " rrclient:" + p.RRClusterID
	}
	if p.NextHop != "" {
		s += " nh:" + string(p.NextHop)
	}
	if p.Password != "" {
		s += " pw:" + p.Password
	}
	if p.RestartTime != 0 {
		s += " gr:" + p.RestartTime.String()
	}
	if p.LocalASN != 0 {
		s += fmt.Sprintf(" local-as%d", p.LocalASN)
	}
	if !p.LocalAddress.IsValid() {
		s += " nosrc"
	}
	return s
}

func TestPeers(t *testing.T) {
	three := []v3.Node{
		node("a", "192.0.2.1/24", map[string]string{"rack": "1"}),
		node("b", "192.0.2.2/24", map[string]string{"rack": "1"}),
		node("c", "192.0.2.3/24", map[string]string{"rack": "2"}, asn(64600)),
	}
	rrNodes := []v3.Node{
		node("a", "192.0.2.1/24", nil),
		node("b", "192.0.2.2/24", nil),
		node("rr1", "192.0.2.10/24", map[string]string{"route-reflector": "true"}, rr("224.0.0.1")),
		node("rr2", "192.0.2.11/24", map[string]string{"route-reflector": "true"}, rr("224.0.0.1")),
	}
	toRR := peer("to-rr", func(s *v3.BGPPeerSpec) { s.NodeSelector = "all()"; s.PeerSelector = "route-reflector == 'true'" })
	tests := []struct {
		name    string
		me      string
		nodes   []v3.Node
		configs []v3.BGPConfiguration
		peers   []v3.BGPPeer
		secret  map[string]string
		want    []string
		warn    string
	}{{
		name: "mesh: one active side per pair", me: "b", nodes: three,
		want: []string{
			"Mesh_192_0_2_1 node-to-node mesh as64512",
			"Mesh_192_0_2_3 node-to-node mesh as64600 passive",
		},
	}, {
		name: "mesh off, global peer with port and password, mesh password ignored", me: "a", nodes: three,
		configs: []v3.BGPConfiguration{bgpConfig("default", meshOff)},
		peers: []v3.BGPPeer{peer("tor", func(s *v3.BGPPeerSpec) {
			s.PeerIP = "192.0.2.254:1179"
			s.ASNumber = 65001
			s.Password = &v3.BGPPassword{SecretKeyRef: &v3.SecretKeySelector{Name: "bgp", Key: "tor"}}
			s.KeepOriginalNextHop = true
			s.MaxRestartTime = &metav1.Duration{Duration: 30 * time.Second}
		})},
		secret: map[string]string{"bgp/tor": "s3cret"},
		want:   []string{"Global_192_0_2_254 global as65001 port1179 nh:Keep pw:s3cret gr:30s"},
	}, {
		name: "node-specific peer by name and by nodeSelector; other nodes unaffected", me: "c", nodes: three,
		configs: []v3.BGPConfiguration{bgpConfig("default", meshOff)},
		peers: []v3.BGPPeer{
			peer("for-a", func(s *v3.BGPPeerSpec) { s.Node = "a"; s.PeerIP = "192.0.2.100"; s.ASNumber = 65000 }),
			peer("rack2", func(s *v3.BGPPeerSpec) {
				s.NodeSelector = "rack == '2'"
				s.PeerIP = "192.0.2.200"
				s.ASNumber = 65002
				nh := v3.NextHopModeSelf
				s.NextHopMode = &nh
				s.SourceAddress = v3.SourceAddressNone
				l := v3.ASNumber(65999)
				s.LocalASNumber = &l
			}),
		},
		want: []string{"Node_192_0_2_200 node specific as65002 nh:Self local-as65999 nosrc"},
	}, {
		name: "peerSelector between nodes: passive rule, self excluded, reverse peering to c", me: "b", nodes: three,
		configs: []v3.BGPConfiguration{bgpConfig("default", meshOff)},
		peers:   []v3.BGPPeer{peer("rack1", func(s *v3.BGPPeerSpec) { s.PeerSelector = "rack == '1'" })},
		want:    []string{"Global_192_0_2_1 global as64512", "Global_192_0_2_3 global as64600 passive"},
	}, {
		name: "reversePeering Manual: no reverse session", me: "b", nodes: three,
		configs: []v3.BGPConfiguration{bgpConfig("default", meshOff)},
		peers: []v3.BGPPeer{peer("rack1", func(s *v3.BGPPeerSpec) {
			s.NodeSelector = "rack == '2'"
			s.PeerSelector = "rack == '1'"
			m := v3.ReversePeeringManual
			s.ReversePeering = &m
		})},
	}, {
		name: "reverse peering of a peerIP that is this node", me: "b", nodes: three,
		configs: []v3.BGPConfiguration{bgpConfig("default", meshOff)},
		peers:   []v3.BGPPeer{peer("c-to-b", func(s *v3.BGPPeerSpec) { s.Node = "c"; s.PeerIP = "192.0.2.2"; s.ASNumber = 64512 })},
		want:    []string{"Node_192_0_2_3 node specific as64600 passive"},
	}, {
		name: "explicit peer wins over the mesh for the same address", me: "a", nodes: three,
		peers: []v3.BGPPeer{peer("to-b", func(s *v3.BGPPeerSpec) { s.Node = "a"; s.PeerIP = "192.0.2.2"; s.ASNumber = 64512 })},
		want: []string{
			"Node_192_0_2_2 node specific as64512 passive",
			"Mesh_192_0_2_3 node-to-node mesh as64600 passive",
		},
	}, {
		name: "route reflector client side: peers only with the reflectors", me: "a", nodes: rrNodes,
		configs: []v3.BGPConfiguration{bgpConfig("default", meshOff)}, peers: []v3.BGPPeer{toRR},
		want: []string{
			"Node_192_0_2_10 node specific as64512 passive",
			"Node_192_0_2_11 node specific as64512 passive",
		},
	}, {
		name: "route reflector: clients are rr clients, same-cluster reflector is not", me: "rr1", nodes: rrNodes,
		configs: []v3.BGPConfiguration{bgpConfig("default", meshOff)},
		peers:   []v3.BGPPeer{toRR}, // the reflector's sessions to its clients are reverse peerings
		want: []string{
			"Node_192_0_2_1 node specific as64512 rrclient:224.0.0.1",
			"Node_192_0_2_2 node specific as64512 passive rrclient:224.0.0.1", // "192.0.2.2" > "192.0.2.10" as strings
			"Node_192_0_2_11 node specific as64512 passive",
		},
	}, {
		name: "missing secret: warned, session kept without password", me: "a", nodes: three[:1],
		peers: []v3.BGPPeer{peer("x", func(s *v3.BGPPeerSpec) {
			s.PeerIP = "192.0.2.50"
			s.ASNumber = 64512
			s.Password = &v3.BGPPassword{SecretKeyRef: &v3.SecretKeySelector{Name: "nope", Key: "k"}}
		})},
		want: []string{"Global_192_0_2_50 global as64512"},
		warn: "secret nope/k not available",
	}, {
		name: "mesh password and restart time", me: "a", nodes: three[:2],
		configs: []v3.BGPConfiguration{bgpConfig("default", func(s *v3.BGPConfigurationSpec) {
			s.NodeMeshPassword = &v3.BGPPassword{SecretKeyRef: &v3.SecretKeySelector{Name: "mesh", Key: "pw"}}
			s.NodeMeshMaxRestartTime = &metav1.Duration{Duration: 2 * time.Minute}
		})},
		secret: map[string]string{"mesh/pw": "m"},
		want:   []string{"Mesh_192_0_2_2 node-to-node mesh as64512 passive pw:m gr:2m0s"},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st, err := Compute(Input{NodeName: tc.me, Nodes: tc.nodes, Configs: tc.configs, Peers: tc.peers,
				Secret: func(n, k string) (string, bool) { v, ok := tc.secret[n+"/"+k]; return v, ok }})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, p := range st.Peers {
				got = append(got, peerLine(p))
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("peers:\n got %q\nwant %q", got, tc.want)
			}
			if tc.warn != "" && !strings.Contains(strings.Join(st.Warnings, "\n"), tc.warn) {
				t.Errorf("warnings %q lack %q", st.Warnings, tc.warn)
			}
		})
	}
}

func TestGlobal(t *testing.T) {
	nodes := []v3.Node{node("a", "192.0.2.1/24", nil, asn(65010))}
	st, err := Compute(Input{NodeName: "a", Nodes: nodes, Configs: []v3.BGPConfiguration{
		bgpConfig("default", func(s *v3.BGPConfigurationSpec) { s.ListenPort = 1790; a := v3.ASNumber(65000); s.ASNumber = &a }),
		bgpConfig("node.a", func(s *v3.BGPConfigurationSpec) { s.ListenPort = 1791 }),
	}})
	if err != nil {
		t.Fatal(err)
	}
	if st.Global.ASN != 65010 || st.Global.RouterID != netip.MustParseAddr("192.0.2.1") || st.Global.ListenPort != 1791 {
		t.Fatalf("global = %+v", st.Global)
	}
	// IPv6-only: a stable router ID derived from the name.
	v6 := v3.Node{ObjectMeta: metav1.ObjectMeta{Name: "v6"}, Spec: v3.NodeSpec{BGP: &v3.NodeBGPSpec{IPv6Address: "2001:db8::1/64"}}}
	st1, err := Compute(Input{NodeName: "v6", Nodes: []v3.Node{v6}})
	if err != nil || !st1.Global.RouterID.Is4() || st1.Global.ASN != 64512 {
		t.Fatalf("v6-only global = %+v, %v", st1.Global, err)
	}
	if _, err := Compute(Input{NodeName: "zz", Nodes: nodes}); !errors.Is(err, ErrNodeNotFound) {
		t.Fatalf("missing node: %v", err)
	}
	noBGP := v3.Node{ObjectMeta: metav1.ObjectMeta{Name: "x"}}
	if _, err := Compute(Input{NodeName: "x", Nodes: []v3.Node{noBGP}}); !errors.Is(err, ErrNoBGPAddress) {
		t.Fatalf("node without bgp: %v", err)
	}
}

func TestAdvertisements(t *testing.T) {
	nodes := []v3.Node{node("a", "192.0.2.1/24", nil), node("b", "192.0.2.2/24", nil)}
	pools := []v3.IPPool{
		pool("main", "198.19.0.0/16"),
		pool("private", "198.18.0.0/24", func(s *v3.IPPoolSpec) { s.DisableBGPExport = true }),
		pool("vx", "198.18.128.0/20", func(s *v3.IPPoolSpec) { s.VXLANMode = v3.VXLANModeAlways }),
	}
	configs := []v3.BGPConfiguration{bgpConfig("default", func(s *v3.BGPConfigurationSpec) {
		s.Communities = []v3.Community{{Name: "pods", Value: "65000:100"}}
		s.PrefixAdvertisements = []v3.PrefixAdvertisement{
			{CIDR: "198.19.0.0/16", Communities: []string{"pods", "65000:200:300"}},
			{CIDR: "198.19.1.0/26", Communities: []string{"65000:1"}},
		}
		s.ServiceClusterIPs = []v3.ServiceClusterIPBlock{{CIDR: "203.0.113.0/24"}}
	})}
	st, err := Compute(Input{
		NodeName: "a", Nodes: nodes, Pools: pools, Configs: configs,
		Blocks:   []netip.Prefix{netip.MustParsePrefix("198.19.1.0/26"), netip.MustParsePrefix("198.18.0.0/26")},
		Borrowed: []netip.Addr{netip.MustParseAddr("198.19.2.7"), netip.MustParseAddr("198.18.0.70")},
	})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range st.Routes {
		got = append(got, r.Prefix.String()+" "+strings.Join(r.Communities, ","))
	}
	want := []string{
		"198.19.1.0/26 65000:100,65000:200:300,65000:1",
		"198.19.2.7/32 65000:100,65000:200:300",
		"203.0.113.0/24 ",
	}
	if !slices.Equal(got, want) {
		t.Errorf("routes:\n got %q\nwant %q", got, want)
	}
	if fmt.Sprint(st.Blackholes) != "[198.18.0.0/26 198.19.1.0/26]" {
		t.Errorf("blackholes = %v", st.Blackholes)
	}
	if fmt.Sprint(st.Exportable) != "[198.19.0.0/16 198.18.128.0/20 203.0.113.0/24]" {
		t.Errorf("exportable = %v", st.Exportable)
	}
	if fmt.Sprint(st.NoKernel) != "[198.18.128.0/20]" {
		t.Errorf("no-kernel = %v", st.NoKernel)
	}
}

func TestFilters(t *testing.T) {
	nodes := []v3.Node{node("a", "192.0.2.1/24", nil)}
	min := int32(32)
	filters := []v3.BGPFilter{{
		ObjectMeta: metav1.ObjectMeta{Name: "f"},
		Spec: v3.BGPFilterSpec{
			ExportV4: []v3.BGPFilterRuleV4{
				{CIDR: "198.19.1.0/26", MatchOperator: v3.MatchOperatorEqual, Action: v3.BGPFilterReject},
				{CIDR: "198.19.0.0/16", MatchOperator: v3.MatchOperatorNotIn, Action: v3.BGPFilterReject, PeerType: v3.BGPFilterPeerTypeIBGP},
				{Interface: "eth*", Action: v3.BGPFilterAccept},
				{CIDR: "198.19.0.0/16", Action: v3.BGPFilterAccept, Operations: []v3.BGPFilterOperation{
					{AddCommunity: &v3.BGPFilterAddCommunity{Value: "65000:7"}},
					{PrependASPath: &v3.BGPFilterPrependASPath{Prefix: []v3.ASNumber{65000, 65001}}},
				}},
			},
			ImportV4: []v3.BGPFilterRuleV4{{CIDR: "0.0.0.0/0", MatchOperator: v3.MatchOperatorIn, PrefixLength: &v3.BGPFilterPrefixLength{Min: &min}, Action: v3.BGPFilterReject}},
			ExportV6: []v3.BGPFilterRuleV6{{CIDR: "2001:db8::/32", Action: v3.BGPFilterReject}},
		},
	}}
	peers := []v3.BGPPeer{peer("ext", func(s *v3.BGPPeerSpec) {
		s.PeerIP = "192.0.2.9"
		s.ASNumber = 65001
		s.Filters = []string{"f", "missing"}
	})}
	st, err := Compute(Input{NodeName: "a", Nodes: nodes, Peers: peers, Filters: filters})
	if err != nil {
		t.Fatal(err)
	}
	p := st.Peers[0]
	if len(p.Export) != 2 || p.Export[0].Op != bgp.MatchEqual || p.Export[0].Action != bgp.Reject ||
		p.Export[1].Op != bgp.MatchIn || p.Export[1].Action != bgp.Accept ||
		!slices.Equal(p.Export[1].AddCommunities, []string{"65000:7"}) || !slices.Equal(p.Export[1].PrependAS, []uint32{65000, 65001}) {
		t.Errorf("export rules = %+v (the iBGP-only and interface rules must be gone)", p.Export)
	}
	if len(p.Import) != 1 || p.Import[0].MinLen != 32 || p.Import[0].Action != bgp.Reject {
		t.Errorf("import rules = %+v", p.Import)
	}
	w := strings.Join(st.Warnings, "\n")
	if !strings.Contains(w, `"missing" does not exist`) || !strings.Contains(w, "interface") {
		t.Errorf("warnings = %q", st.Warnings)
	}
}
