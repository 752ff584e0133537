package calc

import (
	"net/netip"
	"reflect"
	"slices"
	"testing"

	v3 "github.com/calico-go/calico/api/v3"
	"github.com/calico-go/calico/internal/dpapi"
)

func TestPolicyOrdering(t *testing.T) {
	types := func(ts ...v3.PolicyType) func(*v3.GlobalNetworkPolicySpec) {
		return func(s *v3.GlobalNetworkPolicySpec) { s.Types = ts }
	}
	inTier := func(tier string, ts ...v3.PolicyType) func(*v3.GlobalNetworkPolicySpec) {
		return func(s *v3.GlobalNetworkPolicySpec) { s.Tier, s.Types = tier, ts }
	}
	ing, eg := v3.PolicyTypeIngress, v3.PolicyTypeEgress
	ep := wep("ns1", "a", testNode, []string{"10.0.0.1/32"}, lbl("app", "a"))
	tests := []struct {
		name string
		rs   []v3.Resource
		want string
	}{
		{"order then name, nil last",
			[]v3.Resource{
				gnp("b", "app == 'a'", ord(10), types(ing)),
				gnp("a", "app == 'a'", ord(10), types(ing)),
				gnp("c", "app == 'a'", ord(5), types(ing)),
				gnp("z-nil", "app == 'a'", nil, types(ing)),
				gnp("other", "app == 'x'", ord(1), types(ing)),
			},
			"default(Deny):in=c,a,b,z-nil;eg="},
		{"types split directions; empty types means both",
			[]v3.Resource{
				gnp("in", "all()", ord(1), types(ing)),
				gnp("out", "all()", ord(2), types(eg)),
				gnp("both", "all()", ord(3), types()),
			},
			"default(Deny):in=in,both;eg=out,both"},
		{"tiers by order then name, nil last; only tiers with policies",
			[]v3.Resource{
				tierRes("t-pass", 50, v3.Pass), tierRes("t-early", 50, v3.Deny), tierRes("empty", 1, v3.Deny),
				func() v3.Resource { r := v3.NewTier(); r.Name = "t-nil"; return r }(),
				gnp("p1", "all()", ord(1), inTier("t-pass", ing)),
				gnp("p2", "all()", ord(1), inTier("t-early", ing)),
				gnp("p3", "all()", ord(1), inTier("t-nil", ing)),
				gnp("p4", "all()", ord(1), inTier("default", ing)),
				gnp("p5", "all()", ord(1), inTier("kube-admin", eg)),
				gnp("p6", "all()", ord(1), inTier("kube-baseline", eg)),
			},
			"t-early(Deny):in=p2;eg= | t-pass(Pass):in=p1;eg= | kube-admin(Pass):in=;eg=p5 | " +
				"default(Deny):in=p4;eg= | kube-baseline(Pass):in=;eg=p6 | t-nil(Deny):in=p3;eg="},
		{"namespaced policies by name/namespace/kind",
			[]v3.Resource{
				np("ns1", "x", "", ord(1), func(s *v3.NetworkPolicySpec) { s.Types = []v3.PolicyType{ing} }),
				gnp("x", "all()", ord(1), types(ing)),
				np("ns2", "x", "", ord(1), nil),
				gnp("w", "all()", ord(1), types(ing)),
			},
			"default(Deny):in=w,x,x;eg="},
		{"untracked and preDNAT policies never reach workloads",
			[]v3.Resource{
				gnp("untracked", "all()", ord(1), func(s *v3.GlobalNetworkPolicySpec) { s.DoNotTrack, s.ApplyOnForward = true, true }),
				gnp("prednat", "all()", ord(1), func(s *v3.GlobalNetworkPolicySpec) { s.PreDNAT, s.ApplyOnForward = true, true }),
				gnp("normal", "all()", ord(2), func(s *v3.GlobalNetworkPolicySpec) { s.ApplyOnForward = true; s.Types = []v3.PolicyType{ing} }),
			},
			"default(Deny):in=normal;eg="},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := squashed(t, mkState(append(tc.rs, ep)...))
			if got := tierNames(wepOf(t, m, "ns1", "a").Tiers); got != tc.want {
				t.Fatalf("tiers\n got %s\nwant %s", got, tc.want)
			}
			// Policies in ns2, and the ones that select nothing local, are not sent.
			for id := range m.Policies {
				if id.Namespace == "ns2" || id.Name == "other" || id.Name == "untracked" || id.Name == "prednat" {
					t.Errorf("policy %s sent but not used", id)
				}
			}
		})
	}
}

func TestEntitySelectors(t *testing.T) {
	tests := []struct {
		name     string
		ns       string
		er       v3.EntityRule
		pos, neg string
	}{
		{"nothing", "ns1", v3.EntityRule{Nets: []string{"10.0.0.0/8"}}, "", ""},
		{"np selector gets own namespace", "ns1", v3.EntityRule{Selector: "app == 'x'"},
			`(projectcalico.org/namespace == "ns1") && (app == 'x')`, ""},
		{"gnp selector unchanged", "", v3.EntityRule{Selector: "app == 'x'"}, `app == 'x'`, ""},
		{"namespaceSelector prefixed", "ns1", v3.EntityRule{NamespaceSelector: "team == 'a'"},
			`pcns.team == "a"`, ""},
		{"namespaceSelector all()", "ns1", v3.EntityRule{NamespaceSelector: "all()", Selector: "has(a)"},
			`(has(projectcalico.org/namespace)) && (has(a))`, ""},
		{"namespaceSelector global()", "", v3.EntityRule{NamespaceSelector: "global()"},
			`!has(projectcalico.org/namespace)`, ""},
		{"np notSelector namespaces the positive part", "ns1", v3.EntityRule{NotSelector: "app == 'x'"},
			`projectcalico.org/namespace == "ns1"`, `app == "x"`},
		{"gnp notSelector alone", "", v3.EntityRule{NotSelector: "has(a) || has(b)"}, "", `(has(a) || has(b))`},
		{"service accounts", "ns1", v3.EntityRule{ServiceAccounts: &v3.ServiceAccountMatch{
			Names: []string{"sa1", "sa2"}, Selector: "role in {'x', 'y'} && !has(z)"}},
			`(projectcalico.org/namespace == "ns1") && ((projectcalico.org/serviceaccount in {"sa1", "sa2"}) && ` +
				`((pcsa.role in {"x", "y"} && !(has(pcsa.z)))))`, ""},
		{"service account names only", "", v3.EntityRule{ServiceAccounts: &v3.ServiceAccountMatch{Names: []string{"sa1"}}},
			`projectcalico.org/serviceaccount in {"sa1"}`, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pos, neg, err := entitySelectors(tc.ns, &tc.er)
			if err != nil {
				t.Fatal(err)
			}
			if pos != tc.pos || neg != tc.neg {
				t.Fatalf("got\n pos %s\n neg %s\nwant\n pos %s\n neg %s", pos, neg, tc.pos, tc.neg)
			}
		})
	}
	// Policy selectors (SPEC §2 step 4).
	s, _ := npSelector("ns1", "", "role == 'x'")
	if want := `(all()) && (projectcalico.org/namespace == "ns1") && (pcsa.role == "x")`; s != want {
		t.Errorf("npSelector = %s", s)
	}
	s, _ = gnpSelector("a == 'b'", "team == 'x'", "")
	if want := `(a == 'b') && (pcns.team == "x")`; s != want {
		t.Errorf("gnpSelector = %s", s)
	}
}

// TestSelectorMembership checks, end to end, which endpoints and network
// sets each compiled selector's IP set holds.
func TestSelectorMembership(t *testing.T) {
	rs := []v3.Resource{
		wep("ns1", "local", testNode, []string{"10.0.0.1/32"}, lbl("app", "web")),
		wep("ns1", "db1", "node2", []string{"10.0.1.1/32", "fd00::1/128"}, lbl("app", "db"), "kns.ns1"),
		wep("ns2", "db2", "node3", []string{"10.0.2.1/32"}, lbl("app", "db"), "kns.ns2"),
		profileRes("kns.ns1", lbl("pcns.team", "a", "pcns.projectcalico.org/name", "ns1"), nil, nil),
		profileRes("kns.ns2", lbl("pcns.team", "b", "pcns.projectcalico.org/name", "ns2"), nil, nil),
		hep("h2", "node2", "eth0", []string{"192.168.0.2"}, lbl("app", "db")),
		gns("g1", lbl("app", "db"), "172.16.0.0/12"),
		netset("ns1", "n1", lbl("app", "db"), "10.9.0.0/16", "10.0.1.1"),
		np("ns1", "p", "app == 'web'", ord(1), func(s *v3.NetworkPolicySpec) {
			s.Ingress = []v3.Rule{
				allowFrom("app == 'db'"),
				{Action: v3.Allow, Source: v3.EntityRule{NamespaceSelector: "team == 'b'", Selector: "app == 'db'"}},
				{Action: v3.Allow, Source: v3.EntityRule{NamespaceSelector: "global()"}},
				{Action: v3.Deny, Source: v3.EntityRule{NotSelector: "app == 'db'"}},
			}
		}),
	}
	m := squashed(t, mkState(rs...))
	tests := []struct {
		sel  string
		want []string
	}{
		{`(projectcalico.org/namespace == "ns1") && (app == 'db')`, []string{"10.0.1.1/32", "10.9.0.0/16", "fd00::1/128"}},
		{`(pcns.team == "b") && (app == 'db')`, []string{"10.0.2.1/32"}},
		{`(!has(projectcalico.org/namespace))`, []string{"172.16.0.0/12", "192.168.0.2/32"}},
		{`projectcalico.org/namespace == "ns1"`, []string{"10.0.0.1/32", "10.0.1.1/32", "10.9.0.0/16", "fd00::1/128"}},
		{`app == "db"`, []string{"10.0.1.1/32", "10.0.2.1/32", "10.9.0.0/16", "172.16.0.0/12", "192.168.0.2/32", "fd00::1/128"}},
	}
	for _, tc := range tests {
		if got := members(t, m, setID(tc.sel)); !slices.Equal(got, tc.want) {
			t.Errorf("set for %s:\n got %v\nwant %v", tc.sel, got, tc.want)
		}
	}
	if len(m.IPSets) != len(tests) {
		t.Errorf("%d IP sets, want %d:\n%s", len(m.IPSets), len(tests), m)
	}
}

func TestNamedPorts(t *testing.T) {
	withPorts := func(r *v3.WorkloadEndpoint, ports ...v3.WorkloadEndpointPort) *v3.WorkloadEndpoint {
		r.Spec.Ports = ports
		return r
	}
	tcp, udp := v3.ProtocolFromString("TCP"), v3.ProtocolFromString("udp")
	rs := []v3.Resource{
		withPorts(wep("ns1", "local", testNode, []string{"10.0.0.1/32"}, lbl("app", "web")),
			v3.WorkloadEndpointPort{Name: "http", Protocol: tcp, Port: 8080}),
		withPorts(wep("ns1", "b", "node2", []string{"10.0.0.2/32", "fd00::2/128"}, lbl("app", "web")),
			v3.WorkloadEndpointPort{Name: "http", Protocol: tcp, Port: 80},
			v3.WorkloadEndpointPort{Name: "dns", Protocol: udp, Port: 53}),
		withPorts(wep("ns2", "c", "node2", []string{"10.0.0.3/32"}, lbl("app", "web")),
			v3.WorkloadEndpointPort{Name: "http", Protocol: udp, Port: 81}),
		gnp("p", "app == 'web'", ord(1), func(s *v3.GlobalNetworkPolicySpec) {
			s.Ingress = []v3.Rule{{Action: v3.Allow, Protocol: &tcp,
				Destination: v3.EntityRule{Ports: []v3.Port{v3.SinglePort(443), {PortName: "http"}}}}}
			s.Egress = []v3.Rule{{Action: v3.Allow,
				Destination: v3.EntityRule{Selector: "app == 'web'", Ports: []v3.Port{{PortName: "http"}, {PortName: "dns"}}}}}
		}),
	}
	m := squashed(t, mkState(rs...))
	pol := m.Policies[dpapi.PolicyID{Tier: "default", Name: "p", Kind: dpapi.KindGlobalNetworkPolicy}]
	if len(pol.InboundRules) != 2 {
		t.Fatalf("inbound rules %+v; want the numeric and the named alternative", pol.InboundRules)
	}
	if r := pol.InboundRules[0]; !slices.Equal(r.DstPorts, []dpapi.PortRange{{First: 443, Last: 443}}) || r.DstNamedPortIPSetID != "" {
		t.Errorf("first alternative %+v", r)
	}
	named := pol.InboundRules[1]
	if named.DstNamedPortIPSetID == "" || named.DstPorts != nil || named.RuleID != pol.InboundRules[0].RuleID {
		t.Fatalf("second alternative %+v", named)
	}
	if got, want := members(t, m, named.DstNamedPortIPSetID), []string{"10.0.0.1,tcp:8080", "10.0.0.2,tcp:80", "fd00::2,tcp:80"}; !slices.Equal(got, want) {
		t.Errorf("tcp http set %v, want %v", got, want)
	}
	if m.IPSets[named.DstNamedPortIPSetID].Type != dpapi.IPSetIPPorts {
		t.Errorf("named port set type %v", m.IPSets[named.DstNamedPortIPSetID].Type)
	}
	if len(pol.OutboundRules) != 2 {
		t.Fatalf("outbound rules %+v", pol.OutboundRules)
	}
	var got [][]string
	for _, r := range pol.OutboundRules {
		got = append(got, members(t, m, r.DstNamedPortIPSetID))
	}
	want := [][]string{{"10.0.0.1,tcp:8080", "10.0.0.2,tcp:80", "10.0.0.3,udp:81", "fd00::2,tcp:80"}, {"10.0.0.2,udp:53", "fd00::2,udp:53"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("any-protocol named port sets %v, want %v", got, want)
	}
}

func TestProfiles(t *testing.T) {
	allow := []v3.Rule{{Action: v3.Allow}}
	rs := []v3.Resource{
		wep("ns1", "a", testNode, []string{"10.0.0.1/32"}, lbl("team", "own"), "kns.ns1", "missing"),
		wep("ns1", "b", "node2", []string{"10.0.0.2/32"}, nil, "kns.ns1"),
		profileRes("kns.ns1", lbl("team", "profile", "pcns.x", "1"), allow, allow),
		profileRes("unused", nil, allow, nil),
		gnp("p", "pcns.x == '1'", ord(1), func(s *v3.GlobalNetworkPolicySpec) {
			s.Ingress = []v3.Rule{allowFrom("team == 'own'"), allowFrom("team == 'profile'")}
		}),
	}
	m := squashed(t, mkState(rs...))
	e := wepOf(t, m, "ns1", "a")
	if want := []dpapi.ProfileID{{Name: "kns.ns1"}, {Name: "missing"}}; !slices.Equal(e.ProfileIDs, want) {
		t.Errorf("profile IDs %v", e.ProfileIDs)
	}
	if got := tierNames(e.Tiers); got != "default(Deny):in=p;eg=p" {
		t.Errorf("inherited label not matched by the policy: %s", got)
	}
	if p := m.Profiles[dpapi.ProfileID{Name: "kns.ns1"}]; len(p.InboundRules) != 1 || len(p.OutboundRules) != 1 {
		t.Errorf("kns.ns1 = %+v", p)
	}
	if p, ok := m.Profiles[dpapi.ProfileID{Name: "missing"}]; !ok || p.InboundRules != nil {
		t.Errorf("missing profile should be sent empty, got %+v, %v", p, ok)
	}
	if _, ok := m.Profiles[dpapi.ProfileID{Name: "unused"}]; ok {
		t.Error("unused profile sent")
	}
	if got := members(t, m, setID("team == 'own'")); !slices.Equal(got, []string{"10.0.0.1/32"}) {
		t.Errorf("endpoint label must win over the profile's: %v", got)
	}
	if got := members(t, m, setID("team == 'profile'")); !slices.Equal(got, []string{"10.0.0.2/32"}) {
		t.Errorf("inherited label: %v", got)
	}
}

func TestHostEndpointStages(t *testing.T) {
	stage := func(mod func(*v3.GlobalNetworkPolicySpec)) func(*v3.GlobalNetworkPolicySpec) {
		return func(s *v3.GlobalNetworkPolicySpec) {
			s.Types = []v3.PolicyType{v3.PolicyTypeIngress, v3.PolicyTypeEgress}
			mod(s)
		}
	}
	rs := []v3.Resource{
		hep("eth0", testNode, "eth0", []string{"192.168.0.1"}, lbl("host", "yes")),
		hep("all", testNode, "*", nil, lbl("host", "yes")),
		hep("remote", "node2", "eth0", []string{"192.168.0.2"}, lbl("host", "yes")),
		gnp("normal", "host == 'yes'", ord(1), stage(func(s *v3.GlobalNetworkPolicySpec) {})),
		gnp("fwd", "host == 'yes'", ord(2), stage(func(s *v3.GlobalNetworkPolicySpec) { s.ApplyOnForward = true })),
		gnp("untracked", "host == 'yes'", ord(3), stage(func(s *v3.GlobalNetworkPolicySpec) { s.DoNotTrack, s.ApplyOnForward = true, true })),
		gnp("prednat", "host == 'yes'", ord(4), stage(func(s *v3.GlobalNetworkPolicySpec) { s.PreDNAT, s.ApplyOnForward = true, true })),
	}
	m := squashed(t, mkState(rs...))
	if len(m.HostEndpoints) != 2 {
		t.Fatalf("host endpoints: %v", m.HostEndpoints)
	}
	named := m.HostEndpoints[dpapi.HostEndpointID{Name: "eth0"}]
	checks := []struct{ what, got, want string }{
		{"normal", tierNames(named.Tiers), "default(Deny):in=normal,fwd;eg=normal,fwd"},
		{"forward", tierNames(named.ForwardTiers), "default(Deny):in=fwd;eg=fwd"},
		{"untracked", tierNames(named.UntrackedTiers), "default(Deny):in=untracked;eg=untracked"},
		{"preDNAT (ingress only)", tierNames(named.PreDNATTiers), "default(Deny):in=prednat;eg="},
	}
	star := m.HostEndpoints[dpapi.HostEndpointID{Name: "all"}]
	checks = append(checks, struct{ what, got, want string }{"* has no untracked", tierNames(star.UntrackedTiers), ""})
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s tiers: got %s, want %s", c.what, c.got, c.want)
		}
	}
	if !slices.Equal(named.ExpectedIPv4Addrs, []netip.Addr{netip.MustParseAddr("192.168.0.1")}) || star.InterfaceName != "*" {
		t.Errorf("host endpoint fields: %+v / %+v", named, star)
	}
}

func TestActivation(t *testing.T) {
	ep := wep("ns1", "a", testNode, []string{"10.0.0.1/32"}, lbl("app", "a"))
	staged := v3.NewStagedGlobalNetworkPolicy()
	staged.Name, staged.Spec.Selector = "staged", "all()"
	rs := []v3.Resource{ep, staged,
		gnp("assumed", "app == 'nowhere'", nil, func(s *v3.GlobalNetworkPolicySpec) {
			s.PerformanceHints = []v3.PolicyPerformanceHint{v3.PerfHintAssumeNeededOnEveryNode}
			s.Ingress = []v3.Rule{allowFrom("role == 'x'")}
		}),
		gnp("remote-only", "app == 'b'", nil, func(s *v3.GlobalNetworkPolicySpec) {
			s.Ingress = []v3.Rule{allowFrom("role == 'y'")}
		}),
	}
	m := squashed(t, mkState(rs...))
	if len(m.Policies) != 1 {
		t.Fatalf("policies sent: %v", m.Policies)
	}
	if _, ok := m.Policies[dpapi.PolicyID{Tier: "default", Name: "assumed", Kind: dpapi.KindGlobalNetworkPolicy}]; !ok {
		t.Fatal("AssumeNeededOnEveryNode policy not sent")
	}
	if _, ok := m.IPSets[setID("role == 'x'")]; !ok || len(m.IPSets) != 1 {
		t.Fatalf("IP sets: %v", m.IPSets)
	}
	if got := tierNames(wepOf(t, m, "ns1", "a").Tiers); got != "" {
		t.Fatalf("staged or unmatched policy applied: %s", got)
	}
}

func TestRuleFamiliesAndFields(t *testing.T) {
	icmp, six := v3.ProtocolFromString("ICMP"), 6
	code := 3
	rs := []v3.Resource{
		wep("ns1", "a", testNode, []string{"10.0.0.1/32"}, nil),
		gnp("p", "all()", ord(1), func(s *v3.GlobalNetworkPolicySpec) {
			s.Ingress = []v3.Rule{
				{Action: v3.Allow, Source: v3.EntityRule{Nets: []string{"10.0.0.0/8", "fd00::/8"}, NotNets: []string{"10.1.0.0/16"}}},
				{Action: v3.Deny, IPVersion: &six, Source: v3.EntityRule{Nets: []string{"10.0.0.0/8"}}},
				{Action: v3.Log, Protocol: &icmp, ICMP: &v3.ICMPFields{Type: &code, Code: &code}},
				{Action: v3.Pass, Destination: v3.EntityRule{NotNets: []string{"fd00::/8"}}},
			}
		}),
	}
	m := squashed(t, mkState(rs...))
	rules := m.Policies[dpapi.PolicyID{Tier: "default", Name: "p", Kind: dpapi.KindGlobalNetworkPolicy}].InboundRules
	p := netip.MustParsePrefix
	want := []dpapi.Rule{
		{Action: dpapi.ActionAllow, IPVersion: 4, SrcNets: []netip.Prefix{p("10.0.0.0/8")}, NotSrcNets: []netip.Prefix{p("10.1.0.0/16")}},
		{Action: dpapi.ActionAllow, IPVersion: 6, SrcNets: []netip.Prefix{p("fd00::/8")}},
		// The IPv6-only rule with IPv4 nets cannot match: dropped.
		{Action: dpapi.ActionLog, IPVersion: 4, Protocol: dpapi.ProtoICMP, ICMP: &dpapi.ICMPMatch{Type: 3, Code: 3, HasCode: true}},
		{Action: dpapi.ActionPass, IPVersion: 4},
		{Action: dpapi.ActionPass, IPVersion: 6, NotDstNets: []netip.Prefix{p("fd00::/8")}},
	}
	if len(rules) != len(want) {
		t.Fatalf("got %d rules: %+v", len(rules), rules)
	}
	for i := range rules {
		if len(rules[i].RuleID) != 16 {
			t.Errorf("rule %d: RuleID %q", i, rules[i].RuleID)
		}
		rules[i].RuleID = ""
		if !reflect.DeepEqual(rules[i], want[i]) {
			t.Errorf("rule %d:\n got %+v\nwant %+v", i, rules[i], want[i])
		}
	}
}
