package calc

import (
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"

	v3 "github.com/calico-go/calico/api/v3"
	"github.com/calico-go/calico/internal/dpapi"
	"github.com/calico-go/calico/internal/selector"
	"github.com/calico-go/calico/internal/syncer/affinity"
)

const testNode = "node1"

// state is a datastore state: every resource by key.
type state map[Key]v3.Resource

func keyOf(r v3.Resource) Key {
	if b, ok := r.(*affinity.Block); ok {
		return Key{Kind: affinity.Kind, Name: b.Name}
	}
	ki, _ := v3.KindOf(r)
	return Key{Kind: ki.Kind, Namespace: r.GetNamespace(), Name: r.GetName()}
}

func mkState(rs ...v3.Resource) state {
	s := state{}
	for _, r := range rs {
		s[keyOf(r)] = r
	}
	return s
}

func compareKeys(a, b Key) int {
	return strings.Compare(a.Kind+"/"+a.Namespace+"/"+a.Name, b.Kind+"/"+b.Namespace+"/"+b.Name)
}

// diff returns the updates that turn from into to, in key order.
func diff(from, to state) []Update {
	var out []Update
	for _, k := range slices.SortedFunc(maps.Keys(to), compareKeys) {
		if old, ok := from[k]; !ok || !reflect.DeepEqual(old, to[k]) {
			out = append(out, Update{Key: k, Value: to[k]})
		}
	}
	for _, k := range slices.SortedFunc(maps.Keys(from), compareKeys) {
		if _, ok := to[k]; !ok {
			out = append(out, Update{Key: k})
		}
	}
	return out
}

// driver runs a graph over a sequence of states.
type driver struct {
	t     testing.TB
	g     *Graph
	rec   *dpapi.Recorder
	state state
}

func newDriver(t testing.TB) *driver {
	rec := dpapi.NewRecorder()
	return &driver{t: t, rec: rec, state: state{},
		g: New(Options{NodeName: testNode, Sink: rec.Sink})}
}

// load feeds the initial state and InSync.
func (d *driver) load(s state) *driver {
	d.g.OnUpdates(diff(d.state, s))
	d.state = s
	d.g.OnInSync()
	d.check()
	return d
}

// step moves to s, in one batch or (split) one update per batch.
func (d *driver) step(s state, split bool) {
	ups := diff(d.state, s)
	if split {
		for _, u := range ups {
			d.g.OnUpdates([]Update{u})
		}
	} else {
		d.g.OnUpdates(ups)
	}
	d.state = s
	d.check()
}

func (d *driver) check() {
	d.t.Helper()
	if err := d.rec.Err(); err != nil {
		d.t.Fatalf("contract violated: %v", err)
	}
}

// model returns the dataplane state after the messages so far.
func (d *driver) model() *dpapi.State { return d.rec.State }

// squashed is the model a fresh graph reaches from s alone.
func squashed(t testing.TB, s state) *dpapi.State {
	return newDriver(t).load(s).model()
}

// sameModel fails with a line diff when the models differ.
func sameModel(t testing.TB, what string, got, want *dpapi.State) {
	t.Helper()
	if reflect.DeepEqual(got, want) {
		return
	}
	gl, wl := strings.Split(got.String(), "\n"), strings.Split(want.String(), "\n")
	var b strings.Builder
	for _, l := range gl {
		if !slices.Contains(wl, l) {
			fmt.Fprintf(&b, "+ %s\n", l)
		}
	}
	for _, l := range wl {
		if !slices.Contains(gl, l) {
			fmt.Fprintf(&b, "- %s\n", l)
		}
	}
	t.Fatalf("%s: dataplane models differ (+got -want):\n%s", what, b.String())
}

// runSequence checks a sequence of states: after every step the model
// equals the squashed model of that state, moving forwards, backwards,
// and one update per batch.
func runSequence(t *testing.T, states ...state) []*dpapi.State {
	t.Helper()
	want := make([]*dpapi.State, len(states))
	for i, s := range states {
		want[i] = squashed(t, s)
	}
	for _, split := range []bool{false, true} {
		d := newDriver(t).load(states[0])
		for i := 1; i < len(states); i++ {
			d.step(states[i], split)
			sameModel(t, fmt.Sprintf("forward step %d (split %v)", i, split), d.model(), want[i])
		}
		for i := len(states) - 2; i >= 0; i-- {
			d.step(states[i], split)
			sameModel(t, fmt.Sprintf("backward step %d (split %v)", i, split), d.model(), want[i])
		}
	}
	// Reversed sequence from the last state.
	d := newDriver(t).load(states[len(states)-1])
	for i := len(states) - 2; i >= 0; i-- {
		d.step(states[i], false)
		sameModel(t, fmt.Sprintf("reversed step %d", i), d.model(), want[i])
	}
	return want
}

// Resource builders.

func wep(ns, name, node string, ips []string, labels map[string]string, profiles ...string) *v3.WorkloadEndpoint {
	r := v3.NewWorkloadEndpoint()
	r.Namespace, r.Name, r.Labels = ns, name, labels
	r.Spec = v3.WorkloadEndpointSpec{Orchestrator: "k8s", Node: node, Pod: name, Endpoint: "eth0",
		InterfaceName: "cali" + name, IPNetworks: ips, Profiles: profiles}
	return r
}

func hep(name, node, iface string, ips []string, labels map[string]string, profiles ...string) *v3.HostEndpoint {
	r := v3.NewHostEndpoint()
	r.Name, r.Labels = name, labels
	r.Spec = v3.HostEndpointSpec{Node: node, InterfaceName: iface, ExpectedIPs: ips, Profiles: profiles}
	return r
}

func gns(name string, labels map[string]string, nets ...string) *v3.GlobalNetworkSet {
	r := v3.NewGlobalNetworkSet()
	r.Name, r.Labels, r.Spec.Nets = name, labels, nets
	return r
}

func netset(ns, name string, labels map[string]string, nets ...string) *v3.NetworkSet {
	r := v3.NewNetworkSet()
	r.Namespace, r.Name, r.Labels, r.Spec.Nets = ns, name, labels, nets
	return r
}

func profileRes(name string, labels map[string]string, in, out []v3.Rule) *v3.Profile {
	r := v3.NewProfile()
	r.Name = name
	r.Spec.LabelsToApply, r.Spec.Ingress, r.Spec.Egress = labels, in, out
	return r
}

func tierRes(name string, order float64, action v3.Action) *v3.Tier {
	r := v3.NewTier()
	r.Name = name
	r.Spec.Order, r.Spec.DefaultAction = &order, &action
	return r
}

func gnp(name, sel string, order *float64, mod func(*v3.GlobalNetworkPolicySpec)) *v3.GlobalNetworkPolicy {
	r := v3.NewGlobalNetworkPolicy()
	r.Name = name
	r.Spec.Selector, r.Spec.Order = sel, order
	if mod != nil {
		mod(&r.Spec)
	}
	return r
}

func np(ns, name, sel string, order *float64, mod func(*v3.NetworkPolicySpec)) *v3.NetworkPolicy {
	r := v3.NewNetworkPolicy()
	r.Namespace, r.Name = ns, name
	r.Spec.Selector, r.Spec.Order = sel, order
	if mod != nil {
		mod(&r.Spec)
	}
	return r
}

func ord(f float64) *float64 { return &f }

func allowFrom(sel string) v3.Rule {
	return v3.Rule{Action: v3.Allow, Source: v3.EntityRule{Selector: sel}}
}

func lbl(kv ...string) map[string]string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

// setID is the IP set ID of a compiled selector.
func setID(sel string) string { return selector.MustParse(sel).UniqueID() }

func members(t testing.TB, m *dpapi.State, id string) []string {
	t.Helper()
	s, ok := m.IPSets[id]
	if !ok {
		t.Fatalf("no IP set %s in the model:\n%s", id, m)
	}
	var out []string
	for _, mem := range slices.SortedFunc(maps.Keys(s.Members), dpapi.CompareMembers) {
		out = append(out, mem.String())
	}
	return out
}

func wepOf(t testing.TB, m *dpapi.State, ns, name string) dpapi.WorkloadEndpoint {
	t.Helper()
	e, ok := m.WorkloadEndpoints[dpapi.WorkloadEndpointID{Namespace: ns, Name: name}]
	if !ok {
		t.Fatalf("no workload endpoint %s/%s in the model:\n%s", ns, name, m)
	}
	return e
}

// tierNames renders tiers as "tier:in=p1,p2;eg=p3 | ...".
func tierNames(tiers []dpapi.TierInfo) string {
	var parts []string
	for _, ti := range tiers {
		var in, eg []string
		for _, p := range ti.IngressPolicies {
			in = append(in, p.Name)
		}
		for _, p := range ti.EgressPolicies {
			eg = append(eg, p.Name)
		}
		parts = append(parts, fmt.Sprintf("%s(%s):in=%s;eg=%s", ti.Name, ti.DefaultAction,
			strings.Join(in, ","), strings.Join(eg, ",")))
	}
	return strings.Join(parts, " | ")
}
