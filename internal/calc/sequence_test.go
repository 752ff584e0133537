package calc

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"

	v3 "github.com/calico-go/calico/api/v3"
	"github.com/calico-go/calico/internal/dpapi"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestSequences pushes hand-written sequences of datastore states through
// the graph (see runSequence for the checks made at every step).
func TestSequences(t *testing.T) {
	pol := func(sel, from string) *v3.GlobalNetworkPolicy {
		return gnp("p", sel, ord(1), func(s *v3.GlobalNetworkPolicySpec) { s.Ingress = []v3.Rule{allowFrom(from)} })
	}
	local := func(labels map[string]string, ips ...string) *v3.WorkloadEndpoint {
		return wep("ns1", "local", testNode, ips, labels, "kns.ns1")
	}
	remote := func(labels map[string]string, ips ...string) *v3.WorkloadEndpoint {
		return wep("ns1", "remote", "node2", ips, labels, "kns.ns1")
	}
	kns := func(labels map[string]string) *v3.Profile {
		return profileRes("kns.ns1", labels, []v3.Rule{{Action: v3.Allow}}, []v3.Rule{{Action: v3.Allow}})
	}
	felix := func(prefix string) *v3.FelixConfiguration {
		r := v3.NewFelixConfiguration()
		r.Name, r.Spec.LogPrefix = "default", prefix
		return r
	}
	tests := []struct {
		name   string
		states []state
	}{
		{"endpoint lifecycle", []state{
			mkState(pol("app == 'a'", "role == 'db'")),
			mkState(pol("app == 'a'", "role == 'db'"), local(lbl("app", "a"), "10.0.0.1/32")),
			mkState(pol("app == 'a'", "role == 'db'"), local(lbl("app", "a"), "10.0.0.1/32"), remote(lbl("role", "db"), "10.0.0.2/32")),
			mkState(pol("app == 'a'", "role == 'db'"), local(lbl("app", "b"), "10.0.0.1/32"), remote(lbl("role", "db"), "10.0.0.2/32")),
			mkState(pol("app == 'a'", "role == 'db'"), local(lbl("app", "a"), "10.0.0.9/32"), remote(lbl("role", "db"), "10.0.0.3/32")),
			mkState(pol("app == 'a'", "role == 'db'"), remote(lbl("role", "db"), "10.0.0.3/32")),
		}},
		{"policy lifecycle", []state{
			mkState(local(lbl("app", "a"), "10.0.0.1/32"), remote(lbl("role", "db"), "10.0.0.2/32")),
			mkState(local(lbl("app", "a"), "10.0.0.1/32"), remote(lbl("role", "db"), "10.0.0.2/32"), pol("app == 'a'", "role == 'db'")),
			mkState(local(lbl("app", "a"), "10.0.0.1/32"), remote(lbl("role", "db"), "10.0.0.2/32"), pol("app == 'a'", "role == 'web'")),
			mkState(local(lbl("app", "a"), "10.0.0.1/32"), remote(lbl("role", "db"), "10.0.0.2/32"), pol("has(app)", "has(role)")),
			mkState(local(lbl("app", "a"), "10.0.0.1/32"), remote(lbl("role", "db"), "10.0.0.2/32"),
				gnp("p", "has(app)", ord(1), func(s *v3.GlobalNetworkPolicySpec) {
					s.Tier = "t1"
					s.Ingress = []v3.Rule{allowFrom("has(role)")}
				}), tierRes("t1", 5, v3.Pass)),
			mkState(local(lbl("app", "a"), "10.0.0.1/32"), remote(lbl("role", "db"), "10.0.0.2/32"), tierRes("t1", 5, v3.Pass)),
		}},
		{"inherited labels and config", []state{
			mkState(kns(nil), local(nil, "10.0.0.1/32"), remote(nil, "10.0.0.2/32"), pol("team == 'x'", "team == 'x'")),
			mkState(kns(lbl("team", "x")), local(nil, "10.0.0.1/32"), remote(nil, "10.0.0.2/32"), pol("team == 'x'", "team == 'x'"), felix("a")),
			mkState(kns(lbl("team", "x")), local(nil, "10.0.0.1/32"), remote(lbl("team", "y"), "10.0.0.2/32"), pol("team == 'x'", "team == 'x'"), felix("b")),
			mkState(local(nil, "10.0.0.1/32"), remote(lbl("team", "y"), "10.0.0.2/32"), pol("team == 'x'", "team == 'x'")),
		}},
		{"overlapping members", []state{
			mkState(local(lbl("app", "a"), "10.0.0.1/32"), pol("all()", "has(m)"),
				gns("g", lbl("m", "1"), "10.0.0.0/24", "10.0.0.1/32"), remote(lbl("m", "1"), "10.0.0.1/32")),
			mkState(local(lbl("app", "a"), "10.0.0.1/32"), pol("all()", "has(m)"),
				gns("g", lbl("m", "1"), "10.0.0.0/24"), remote(lbl("m", "1"), "10.0.0.1/32")),
			mkState(local(lbl("app", "a"), "10.0.0.1/32"), pol("all()", "has(m)"), remote(lbl("m", "1"), "10.0.0.1/32")),
			mkState(local(lbl("app", "a", "m", "2"), "10.0.0.1/32"), pol("all()", "has(m)")),
		}},
		{"set shared and handed over", []state{
			mkState(local(lbl("app", "a"), "10.0.0.1/32"), remote(lbl("r", "1"), "10.0.0.2/32"), pol("all()", "r == '1'")),
			mkState(local(lbl("app", "a"), "10.0.0.1/32"), remote(lbl("r", "1"), "10.0.0.2/32"),
				gnp("q", "all()", ord(2), func(s *v3.GlobalNetworkPolicySpec) {
					s.Egress = []v3.Rule{{Action: v3.Deny, Destination: v3.EntityRule{Selector: "r == '1'"}}}
				})),
			mkState(local(lbl("app", "a"), "10.0.0.1/32"), remote(lbl("r", "1"), "10.0.0.2/32")),
		}},
		{"endpoint moves between nodes", []state{
			mkState(wep("ns1", "w", testNode, []string{"10.0.0.1/32"}, lbl("app", "a")), pol("app == 'a'", "app == 'a'")),
			mkState(wep("ns1", "w", "node2", []string{"10.0.0.1/32"}, lbl("app", "a")), pol("app == 'a'", "app == 'a'")),
			mkState(wep("ns1", "w", testNode, []string{"10.0.0.1/32"}, lbl("app", "a")), pol("app == 'a'", "app == 'a'"),
				hep("h", testNode, "eth0", []string{"192.168.1.1"}, lbl("app", "a"))),
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { runSequence(t, tc.states...) })
	}
}

// TestNoOpUpdatesEmitNothing: re-sending the same state emits no batch.
func TestNoOpUpdatesEmitNothing(t *testing.T) {
	s := randomState(rand.New(rand.NewPCG(1, 2)))
	d := newDriver(t).load(s)
	n := len(d.rec.Batches)
	var ups []Update
	for k, r := range s {
		ups = append(ups, Update{Key: k, Value: r})
	}
	d.g.OnUpdates(ups)
	if len(d.rec.Batches) != n {
		t.Fatalf("re-sending the state emitted %v", d.rec.Batches[n:])
	}
}

// TestRandomSequences generates random states over a small universe (so
// that labels, addresses and selectors collide often) and checks every
// sequence as runSequence does, plus an oracle: IP set members and the
// policies of each local endpoint are recomputed by brute force.
func TestRandomSequences(t *testing.T) {
	seeds := 40
	if testing.Short() {
		seeds = 5
	}
	for seed := range seeds {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(seed), 99))
			var states []state
			for range 5 {
				states = append(states, randomState(rng))
			}
			runSequence(t, states...)
			for _, s := range states {
				checkOracle(t, s)
			}
		})
	}
}

var (
	rndKeys   = []string{"app", "role", "tier"}
	rndVals   = []string{"a", "b", "c"}
	rndIPs    = []string{"10.0.0.1/32", "10.0.0.2/32", "10.0.0.3/32", "fd00::1/128", "10.0.1.1/32"}
	rndNets   = []string{"10.0.0.0/24", "10.0.0.1/32", "10.1.0.0/16", "fd00::/64"}
	rndSels   = []string{"", "all()", "app == 'a'", "has(role)", "!has(app)", "app in {'a', 'b'} && role != 'c'", "tier == 'a' || role == 'b'", "pcns.team == 'x'", "app starts with 'a'"}
	rndNsSels = []string{"", "", "all()", "global()", "team == 'x'"}
)

func pick[T any](rng *rand.Rand, xs []T) T { return xs[rng.IntN(len(xs))] }

func rndLabels(rng *rand.Rand) map[string]string {
	m := map[string]string{}
	for _, k := range rndKeys {
		if rng.IntN(2) == 0 {
			m[k] = pick(rng, rndVals)
		}
	}
	return m
}

func rndRule(rng *rand.Rand) v3.Rule {
	r := v3.Rule{Action: pick(rng, []v3.Action{v3.Allow, v3.Deny, v3.Pass, v3.Log})}
	side := &r.Source
	if rng.IntN(2) == 0 {
		side = &r.Destination
	}
	side.Selector = pick(rng, rndSels)
	if rng.IntN(3) == 0 {
		side.NotSelector = pick(rng, rndSels[1:])
	}
	side.NamespaceSelector = pick(rng, rndNsSels)
	if rng.IntN(3) == 0 {
		side.Nets = []string{pick(rng, rndNets)}
	}
	if rng.IntN(3) == 0 {
		tcp := v3.ProtocolFromString("TCP")
		r.Protocol = &tcp
		side.Ports = []v3.Port{{PortName: pick(rng, []string{"http", "dns"})}, v3.SinglePort(443)}
	}
	if rng.IntN(4) == 0 {
		side.ServiceAccounts = &v3.ServiceAccountMatch{Names: []string{"sa1"}}
	}
	return r
}

// randomState returns a random datastore state of the small universe.
func randomState(rng *rand.Rand) state {
	var rs []v3.Resource
	for i := range 6 {
		ns := pick(rng, []string{"ns1", "ns2"})
		if rng.IntN(5) == 0 {
			continue
		}
		w := wep(ns, fmt.Sprintf("w%d", i), pick(rng, []string{testNode, "node2"}),
			[]string{pick(rng, rndIPs)}, rndLabels(rng), "kns."+ns)
		w.Spec.ServiceAccountName = pick(rng, []string{"", "sa1"})
		w.Spec.Ports = []v3.WorkloadEndpointPort{{Name: pick(rng, []string{"http", "dns"}),
			Protocol: v3.ProtocolFromString(pick(rng, []string{"TCP", "UDP"})), Port: uint16(80 + rng.IntN(2))}}
		rs = append(rs, w)
	}
	for _, ns := range []string{"ns1", "ns2"} {
		if rng.IntN(3) > 0 {
			labels := map[string]string{"pcns.projectcalico.org/name": ns}
			if rng.IntN(2) == 0 {
				labels["pcns.team"] = "x"
			}
			if rng.IntN(3) == 0 {
				labels["app"] = pick(rng, rndVals)
			}
			rs = append(rs, profileRes("kns."+ns, labels, []v3.Rule{{Action: v3.Allow}}, nil))
		}
		if rng.IntN(2) == 0 {
			rs = append(rs, netset(ns, "n", rndLabels(rng), pick(rng, rndNets)))
		}
	}
	if rng.IntN(2) == 0 {
		rs = append(rs, gns("g", rndLabels(rng), pick(rng, rndNets), pick(rng, rndNets)))
	}
	if rng.IntN(2) == 0 {
		rs = append(rs, hep("h", pick(rng, []string{testNode, "node2"}), pick(rng, []string{"eth0", "*"}),
			[]string{"192.168.0.1"}, rndLabels(rng)))
	}
	if rng.IntN(2) == 0 {
		rs = append(rs, tierRes("t1", float64(rng.IntN(3))*1e6, pick(rng, []v3.Action{v3.Deny, v3.Pass})))
	}
	rs = append(rs, randomPolicies(rng)...)
	if rng.IntN(2) == 0 {
		fc := v3.NewFelixConfiguration()
		fc.Name, fc.Spec.LogPrefix = "default", pick(rng, rndVals)
		fc.CreationTimestamp = metav1.Unix(1, 0)
		rs = append(rs, fc)
	}
	return mkState(rs...)
}

// randomPolicies returns up to four random policies.
func randomPolicies(rng *rand.Rand) []v3.Resource {
	var rs []v3.Resource
	for i := range 4 {
		if rng.IntN(4) == 0 {
			continue
		}
		var in, out []v3.Rule
		for range rng.IntN(3) {
			in = append(in, rndRule(rng))
		}
		for range rng.IntN(2) {
			out = append(out, rndRule(rng))
		}
		order := ord(float64(rng.IntN(3)))
		tier := pick(rng, []string{"", "default", "t1"})
		if i%2 == 0 {
			rs = append(rs, gnp(fmt.Sprintf("g%d", i), pick(rng, rndSels), order, func(s *v3.GlobalNetworkPolicySpec) {
				s.Tier, s.Ingress, s.Egress = tier, in, out
				s.NamespaceSelector = pick(rng, rndNsSels)
				s.ApplyOnForward = rng.IntN(2) == 0
				if s.ApplyOnForward && rng.IntN(2) == 0 {
					s.DoNotTrack = true
				}
			}))
		} else {
			rs = append(rs, np(pick(rng, []string{"ns1", "ns2"}), fmt.Sprintf("n%d", i), pick(rng, rndSels), order,
				func(s *v3.NetworkPolicySpec) { s.Tier, s.Ingress, s.Egress = tier, in, out }))
		}
	}
	return rs
}

// oracleLabels computes an item's effective labels from the state alone.
func oracleLabels(s state, r v3.Resource) map[string]string {
	own := maps.Clone(r.GetLabels())
	if own == nil {
		own = map[string]string{}
	}
	var profiles []string
	switch r := r.(type) {
	case *v3.WorkloadEndpoint:
		own[v3.LabelNamespace], own[v3.LabelOrchestrator] = r.Namespace, r.Spec.Orchestrator
		if r.Spec.ServiceAccountName != "" {
			own[v3.LabelServiceAccount] = r.Spec.ServiceAccountName
		}
		profiles = r.Spec.Profiles
	case *v3.NetworkSet:
		own[v3.LabelNamespace] = r.Namespace
	case *v3.HostEndpoint:
		profiles = r.Spec.Profiles
	}
	for _, p := range profiles {
		if pr, ok := s[Key{Kind: v3.KindProfile, Name: p}].(*v3.Profile); ok {
			for k, v := range pr.Spec.LabelsToApply {
				if _, ok := own[k]; !ok {
					own[k] = v
				}
			}
		}
	}
	return own
}

// checkOracle loads s and recomputes, by brute force over every
// resource, the members of every IP set and each local endpoint's
// policies.
func checkOracle(t *testing.T, s state) {
	t.Helper()
	d := newDriver(t).load(s)
	g, m := d.g, d.model()
	for id, set := range g.ipSets {
		want := map[dpapi.Member]struct{}{}
		for _, r := range s {
			it := g.itemFrom(itemKey{kind: itemKindOf(keyOf(r).Kind)}, r)
			if it == nil || !set.spec.sel.EvaluateMap(oracleLabels(s, r)) {
				continue
			}
			tmp := &ipSet{spec: set.spec, members: map[dpapi.Member]int32{}}
			tmp.addContribution(it.nets, it.ports, 1, &sequencer{dirtySets: map[string]struct{}{}})
			for mem := range tmp.members {
				want[mem] = struct{}{}
			}
		}
		if got := m.IPSets[id].Members; !maps.Equal(got, want) {
			t.Fatalf("IP set %s (%s): got %v, want %v", id, set.spec.sel, got, want)
		}
	}
	for k, r := range s {
		w, ok := r.(*v3.WorkloadEndpoint)
		if !ok || w.Spec.Node != testNode {
			continue
		}
		var want []string
		for _, p := range g.policies {
			if !p.flags.untracked && !p.flags.preDNAT && p.sel.EvaluateMap(oracleLabels(s, r)) {
				want = append(want, p.id.String())
			}
		}
		var got []string
		for _, ti := range wepOf(t, m, k.Namespace, k.Name).Tiers {
			for _, id := range slices.Concat(ti.IngressPolicies, ti.EgressPolicies) {
				if !slices.Contains(got, id.String()) {
					got = append(got, id.String())
				}
			}
		}
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Fatalf("endpoint %s: policies %v, want %v", k.Name, got, want)
		}
	}
}
