package calc

import (
	"fmt"
	"runtime"
	"slices"
	"testing"

	v3 "github.com/calico-go/calico/api/v3"
	"github.com/calico-go/calico/internal/dpapi"
)

// cluster is a generated datastore for the benchmarks.
type cluster struct {
	updates []Update
	local   []*v3.WorkloadEndpoint
	remote  []*v3.WorkloadEndpoint
	active  *v3.NetworkPolicy // a policy that selects a local endpoint
}

func (c *cluster) add(r v3.Resource) { c.updates = append(c.updates, Update{Key: keyOf(r), Value: r}) }

func podIP(i int) string { return fmt.Sprintf("10.%d.%d.%d/32", i>>16&255, i>>8&255, i&255) }

// bigCluster: endpoints over endpoints/200 nodes (200 per node, node-0
// being this one), 250 namespaces with a kns profile each, 20 apps per
// namespace, and policies spread over the (namespace, app) pairs, two per
// pair: each selects one app and allows ingress from another app of its
// namespace on TCP 80, and (every other one) from a team of namespaces.
// The local endpoints fall in pseudo-random (namespace, app) pairs.
func bigCluster(endpoints, policies int) *cluster {
	c := &cluster{}
	const namespaces, appsPerNS = 250, 20
	nodes := endpoints / 200
	for n := range namespaces {
		ns := fmt.Sprintf("ns-%d", n)
		c.add(profileRes("kns."+ns, lbl("pcns.team", fmt.Sprintf("team-%d", n%10),
			"pcns.projectcalico.org/name", ns), []v3.Rule{{Action: v3.Allow}}, []v3.Rule{{Action: v3.Allow}}))
	}
	for i := range endpoints {
		h := uint32(i) * 2654435761 // spreads namespaces and apps over nodes
		ns := fmt.Sprintf("ns-%d", h%namespaces)
		node := fmt.Sprintf("node-%d", i%nodes)
		if i%nodes == 0 {
			node = testNode
		}
		w := wep(ns, fmt.Sprintf("pod-%d", i), node, []string{podIP(i)},
			lbl("app", fmt.Sprintf("app-%d", h/namespaces%appsPerNS), "version", fmt.Sprintf("v%d", i%3),
				"pod-template-hash", fmt.Sprintf("h%d", i%1000)), "kns."+ns)
		c.add(w)
		if node == testNode {
			c.local = append(c.local, w)
		} else if len(c.remote) < 10 {
			c.remote = append(c.remote, w)
		}
	}
	tcp := v3.ProtocolFromString("TCP")
	for i := range policies {
		ns := fmt.Sprintf("ns-%d", i%namespaces)
		app := (i / namespaces) % appsPerNS
		p := np(ns, fmt.Sprintf("pol-%d", i), fmt.Sprintf("app == 'app-%d'", app), ord(float64(i%7)), func(s *v3.NetworkPolicySpec) {
			s.Types = []v3.PolicyType{v3.PolicyTypeIngress}
			s.Ingress = []v3.Rule{{Action: v3.Allow, Protocol: &tcp,
				Source:      v3.EntityRule{Selector: fmt.Sprintf("app == 'app-%d'", (app+1+i/5000)%appsPerNS)},
				Destination: v3.EntityRule{Ports: []v3.Port{v3.SinglePort(80)}}}}
			if i%2 == 0 {
				s.Ingress = append(s.Ingress, v3.Rule{Action: v3.Allow,
					Source: v3.EntityRule{NamespaceSelector: fmt.Sprintf("team == 'team-%d'", i%10)}})
			}
		})
		c.add(p)
		if c.active == nil && ns == c.local[0].Namespace && p.Spec.Selector == fmt.Sprintf("app == '%s'", c.local[0].Labels["app"]) {
			c.active = p
		}
	}
	// Remote endpoints that are members of the active policy's first
	// rule's IP set go first in c.remote.
	src := c.active.Spec.Ingress[0].Source.Selector
	for _, u := range c.updates {
		if w, ok := u.Value.(*v3.WorkloadEndpoint); ok && w.Spec.Node != testNode && w.Namespace == c.active.Namespace &&
			src == fmt.Sprintf("app == '%s'", w.Labels["app"]) {
			c.remote = append([]*v3.WorkloadEndpoint{w}, c.remote...)
			break
		}
	}
	return c
}

// netsetCluster: 10,000 endpoints (200 local, 2 per app) in 100 apps, 10,000
// global network sets and 10,000 policies, each selecting one app and
// allowing egress to its own network set.
func netsetCluster(endpoints, policies int) *cluster {
	c := &cluster{}
	nodes := endpoints / 200
	for i := range endpoints {
		node := fmt.Sprintf("node-%d", i%nodes)
		if i%nodes == 0 {
			node = testNode
		}
		w := wep("ns", fmt.Sprintf("pod-%d", i), node, []string{podIP(i)}, lbl("app", fmt.Sprintf("app-%d", (i/nodes)%100)))
		c.add(w)
		if node == testNode {
			c.local = append(c.local, w)
		} else if len(c.remote) < 10 {
			c.remote = append(c.remote, w)
		}
	}
	for i := range policies {
		c.add(gns(fmt.Sprintf("set-%d", i), lbl("set", fmt.Sprint(i)),
			fmt.Sprintf("172.%d.%d.0/24", 16+i>>8&15, i&255), fmt.Sprintf("192.168.%d.%d/32", i>>8&255, i&255)))
		c.add(gnp(fmt.Sprintf("pol-%d", i), fmt.Sprintf("app == 'app-%d'", i%100), ord(float64(i)), func(s *v3.GlobalNetworkPolicySpec) {
			s.Types = []v3.PolicyType{v3.PolicyTypeEgress}
			s.Egress = []v3.Rule{{Action: v3.Allow, Destination: v3.EntityRule{Selector: fmt.Sprintf("set == '%d'", i)}}}
		}))
	}
	return c
}

// counter is a cheap sink for benchmarks.
type counter struct{ batches, msgs int }

func (c *counter) sink(b []dpapi.Message) { c.batches++; c.msgs += len(b) }

// start feeds a cluster in syncer-sized batches, then InSync.
func start(c *cluster, sink dpapi.Sink) *Graph {
	g := New(Options{NodeName: testNode, Sink: sink})
	for i := 0; i < len(c.updates); i += 1000 {
		g.OnUpdates(c.updates[i:min(i+1000, len(c.updates))])
	}
	g.OnInSync()
	return g
}

func liveHeapMB() float64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return float64(ms.HeapAlloc) / (1 << 20)
}

func benchStartup(b *testing.B, mk func() *cluster) {
	c := mk()
	before := liveHeapMB()
	var g *Graph
	var cnt counter
	for b.Loop() {
		cnt = counter{}
		g = start(c, cnt.sink)
	}
	b.ReportMetric(liveHeapMB()-before, "graph-MB")
	b.ReportMetric(float64(cnt.msgs), "msgs")
	runtime.KeepAlive(g)
	runtime.KeepAlive(c)
}

// BenchmarkStartup250k: 250,000 endpoints (200 local), 10,000 policies.
func BenchmarkStartup250k(b *testing.B) {
	benchStartup(b, func() *cluster { return bigCluster(250_000, 10_000) })
}

// BenchmarkStartup250kPoliciesFirst is BenchmarkStartup250k with the
// updates in reverse order: policies before endpoints.
func BenchmarkStartup250kPoliciesFirst(b *testing.B) {
	benchStartup(b, func() *cluster {
		c := bigCluster(250_000, 10_000)
		slices.Reverse(c.updates)
		return c
	})
}

// BenchmarkStartupNetsets: 10,000 endpoints (200 local), 10,000 network
// sets and 10,000 policies using them.
func BenchmarkStartupNetsets(b *testing.B) {
	benchStartup(b, func() *cluster { return netsetCluster(10_000, 10_000) })
}

// benchChange measures one update (alternating between two values) on a
// loaded graph.
func benchChange(b *testing.B, c *cluster, a, z Update) {
	var cnt counter
	g := start(c, cnt.sink)
	cnt = counter{}
	i := 0
	for b.Loop() {
		if i%2 == 0 {
			g.OnUpdates([]Update{a})
		} else {
			g.OnUpdates([]Update{z})
		}
		i++
	}
	b.ReportMetric(float64(cnt.msgs)/float64(i), "msgs/op")
}

func relabel(w *v3.WorkloadEndpoint, key, val string) Update {
	c := w.DeepCopy()
	c.Labels = map[string]string{}
	for k, v := range w.Labels {
		c.Labels[k] = v
	}
	c.Labels[key] = val
	return Update{Key: keyOf(c), Value: c}
}

// BenchmarkLabelChange250k: one endpoint's app label flips between two
// values in the 250k cluster. Local: the endpoint's policies change, which
// activates policies and creates IP sets (and removes them on the way
// back). Remote: the endpoint leaves and re-joins an active IP set.
func BenchmarkLabelChange250k(b *testing.B) {
	c := bigCluster(250_000, 10_000)
	for _, tc := range []struct {
		name string
		w    *v3.WorkloadEndpoint
	}{{"local", c.local[0]}, {"remote", c.remote[0]}} {
		b.Run(tc.name, func(b *testing.B) {
			next := "app-none"
			benchChange(b, c, relabel(tc.w, "app", next), relabel(tc.w, "app", tc.w.Labels["app"]))
		})
	}
}

// BenchmarkPolicyChange250k: an active policy's rule selector flips
// between two apps in the 250k cluster (an IP set is created and another
// removed each time).
func BenchmarkPolicyChange250k(b *testing.B) {
	c := bigCluster(250_000, 10_000)
	p := c.active.DeepCopy()
	p.Spec.Ingress[0].Source.Selector = "app == 'app-7' && version == 'v1'"
	benchChange(b, c, Update{Key: keyOf(p), Value: p}, Update{Key: keyOf(c.active), Value: c.active})
}
