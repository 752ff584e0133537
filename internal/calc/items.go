package calc

import (
	"maps"
	"net/netip"
	"slices"
	"strings"

	v3 "github.com/calico-go/calico/api/v3"
	"github.com/calico-go/calico/internal/dpapi"
)

// itemKind is the kind of a labelled item.
type itemKind uint8

const (
	kindWEP itemKind = iota + 1
	kindHEP
	kindNetSet
	kindGlobalNetSet
)

type itemKey struct {
	kind itemKind
	ns   string
	name string
}

// item is anything rule selectors match: an endpoint (anywhere in the
// cluster) or a network set.
type item struct {
	key      itemKey
	implicit map[string]string // implicit labels (shared between items)
	own      map[string]string // the resource's labels (shared with it)
	profiles []string          // parents for label inheritance, in order
	labels   *labelSet         // effective: implicit, own, then profiles
	nets     []netip.Prefix    // what the item contributes to selector sets
	ports    []namedPort       // named ports (endpoints only)
	// local is set for endpoints on this node.
	local *localEndpoint
}

type namedPort struct {
	name  string
	proto uint8
	port  uint16
}

// localEndpoint is what the graph needs to describe a local endpoint.
type localEndpoint struct {
	wep *dpapi.WorkloadEndpoint // exactly one of wep and hep is set;
	hep *dpapi.HostEndpoint     // their Tiers are filled at flush
}

// profile is a Profile resource or a name endpoints list (or both).
type profile struct {
	name      string
	res       *v3.Profile       // nil when not in the datastore
	labels    map[string]string // labelsToApply
	items     map[*item]struct{}
	localRefs int            // local endpoints listing it: active when > 0
	compiled  *compiledRules // while active
}

func itemKindOf(kind string) itemKind {
	switch kind {
	case v3.KindWorkloadEndpoint:
		return kindWEP
	case v3.KindHostEndpoint:
		return kindHEP
	case v3.KindNetworkSet:
		return kindNetSet
	}
	return kindGlobalNetSet
}

// updateItem handles an endpoint or network set update.
func (g *Graph) updateItem(k Key, r v3.Resource) {
	key := itemKey{kind: itemKindOf(k.Kind), ns: k.Namespace, name: k.Name}
	old := g.items[key]
	if r == nil {
		if old != nil {
			g.removeItem(old)
		}
		return
	}
	next := g.itemFrom(key, r)
	if next == nil { // of the wrong type: treat as deleted
		if old != nil {
			g.removeItem(old)
		}
		return
	}
	if old == nil {
		g.addItem(next)
		return
	}
	g.changeItem(old, next)
}

// itemFrom extracts what the graph needs from a resource.
func (g *Graph) itemFrom(key itemKey, r v3.Resource) *item {
	it := &item{key: key}
	switch r := r.(type) {
	case *v3.WorkloadEndpoint:
		it.own = r.Labels
		sa := r.Spec.ServiceAccountName
		if len(sa) >= 63 {
			sa = ""
		}
		it.implicit = g.implicitLabels(r.Namespace, r.Spec.Orchestrator, sa)
		it.profiles = r.Spec.Profiles
		it.nets = g.parseNets(r.Spec.IPNetworks, "workload endpoint "+r.Namespace+"/"+r.Name)
		for _, p := range r.Spec.Ports {
			it.ports = append(it.ports, namedPort{name: p.Name, proto: protoNum(p.Protocol), port: p.Port})
		}
		if r.Spec.Node == g.opts.NodeName {
			it.local = &localEndpoint{wep: g.wepMessage(r, it)}
		}
	case *v3.HostEndpoint:
		it.own = r.Labels
		it.profiles = r.Spec.Profiles
		it.nets = g.parseNets(r.Spec.ExpectedIPs, "host endpoint "+r.Name)
		for _, p := range r.Spec.Ports {
			it.ports = append(it.ports, namedPort{name: p.Name, proto: protoNum(p.Protocol), port: p.Port})
		}
		if r.Spec.Node == g.opts.NodeName {
			it.local = &localEndpoint{hep: hepMessage(r, it)}
		}
	case *v3.NetworkSet:
		it.own = r.Labels
		it.implicit = g.implicitLabels(r.Namespace, "", "")
		it.nets = g.parseNets(r.Spec.Nets, "network set "+r.Namespace+"/"+r.Name)
	case *v3.GlobalNetworkSet:
		it.own = r.Labels
		it.nets = g.parseNets(r.Spec.Nets, "global network set "+r.Name)
	default:
		return nil
	}
	return it
}

// implicitLabels returns the shared map of the labels Calico adds to
// namespaced items (SPEC §1.2); empty values are left out.
func (g *Graph) implicitLabels(ns, orch, sa string) map[string]string {
	k := [3]string{ns, orch, sa}
	if m, ok := g.implicit[k]; ok {
		return m
	}
	m := map[string]string{v3.LabelNamespace: ns}
	if orch != "" {
		m[v3.LabelOrchestrator] = orch
	}
	if sa != "" {
		m[v3.LabelServiceAccount] = sa
	}
	g.implicit[k] = m
	return m
}

// parseNets parses CIDRs or bare addresses, skipping (and logging) bad
// ones, into masked prefixes.
func (g *Graph) parseNets(nets []string, owner string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range nets {
		p, ok := parseNet(s)
		if !ok {
			g.log.Warn("ignoring an invalid address", "owner", owner, "address", s)
			continue
		}
		out = append(out, p)
	}
	return out
}

func parseNet(s string) (netip.Prefix, bool) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		return p.Masked(), err == nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, false
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), true
}

func (g *Graph) addItem(it *item) {
	g.items[it.key] = it
	for _, name := range it.profiles {
		p := g.profileRef(name)
		p.items[it] = struct{}{}
		if it.local != nil {
			g.profileLocalRef(p, +1)
		}
	}
	it.labels = g.effectiveLabels(it)
	g.setMatcher.updateItem(it, it.labels)
	if it.local != nil {
		g.polMatcher.updateItem(it, it.labels)
		g.seq.dirtyEndpoint(it.key)
	}
}

func (g *Graph) removeItem(it *item) {
	if it.local != nil {
		g.polMatcher.removeItem(it)
		g.seq.dirtyEndpoint(it.key)
	}
	g.setMatcher.removeItem(it)
	for _, name := range it.profiles {
		p := g.profiles[name]
		delete(p.items, it)
		if it.local != nil {
			g.profileLocalRef(p, -1)
		}
		g.maybeForgetProfile(p)
	}
	delete(g.items, it.key)
}

// changeItem replaces old by next (same key), doing only what changed.
func (g *Graph) changeItem(old, next *item) {
	if !slices.Equal(old.profiles, next.profiles) || (old.local == nil) != (next.local == nil) {
		// Rare: re-add, which recomputes everything about the item.
		g.removeItem(old)
		g.addItem(next)
		return
	}
	// Keep the *item identity (the matchers know it); move the new data in.
	old.local = next.local
	if old.local != nil {
		g.seq.dirtyEndpoint(old.key)
	}
	if !maps.Equal(old.own, next.own) || !maps.Equal(old.implicit, next.implicit) {
		old.own, old.implicit = next.own, next.implicit
		g.relabel(old)
	}
	if !slices.Equal(old.nets, next.nets) || !slices.Equal(old.ports, next.ports) {
		g.changeMembers(old, next.nets, next.ports)
	}
}

// relabel recomputes an item's effective labels and re-matches it.
func (g *Graph) relabel(it *item) {
	labels := g.effectiveLabels(it)
	if labels.equal(it.labels) {
		it.labels = labels
		return
	}
	it.labels = labels
	g.setMatcher.updateItem(it, labels)
	if it.local != nil {
		g.polMatcher.updateItem(it, labels)
	}
}

// effectiveLabels layers the item's implicit and own labels over its
// profiles' labelsToApply (an earlier profile wins over a later one).
func (g *Graph) effectiveLabels(it *item) *labelSet {
	layers := make([]map[string]string, 0, 2+len(it.profiles))
	layers = append(layers, it.implicit, it.own)
	for _, name := range it.profiles {
		layers = append(layers, g.profiles[name].labels)
	}
	return newLabelSet(layers...)
}

// profileRef returns the profile entry for name, creating it.
func (g *Graph) profileRef(name string) *profile {
	p := g.profiles[name]
	if p == nil {
		p = &profile{name: name, items: map[*item]struct{}{}}
		g.profiles[name] = p
	}
	return p
}

func (g *Graph) maybeForgetProfile(p *profile) {
	if p.res == nil && len(p.items) == 0 {
		delete(g.profiles, p.name)
	}
}

// updateProfile handles a Profile update (r nil: deleted).
func (g *Graph) updateProfile(name string, r *v3.Profile) {
	p := g.profileRef(name)
	p.res = r
	var labels map[string]string
	if r != nil {
		labels = r.Spec.LabelsToApply
	}
	if !maps.Equal(labels, p.labels) {
		p.labels = labels
		for it := range p.items {
			g.relabel(it)
		}
	}
	if p.localRefs > 0 {
		g.compileProfile(p)
	}
	g.maybeForgetProfile(p)
}

// profileLocalRef counts local endpoints listing p; a profile is active
// (sent to the dataplane) while the count is positive.
func (g *Graph) profileLocalRef(p *profile, delta int) {
	was := p.localRefs > 0
	p.localRefs += delta
	switch now := p.localRefs > 0; {
	case now && !was:
		g.compileProfile(p)
	case !now && was:
		g.releaseRules(p.compiled)
		p.compiled = nil
		g.seq.dirtyProfile(p.name)
	}
}

// compileProfile (re)compiles an active profile's rules.
func (g *Graph) compileProfile(p *profile) {
	var in, out []v3.Rule
	if p.res != nil {
		in, out = p.res.Spec.Ingress, p.res.Spec.Egress
	}
	owner := ruleOwner{id: "pro/" + p.name}
	c := g.compileRules(owner, in, out)
	if p.compiled != nil && p.compiled.equal(c) {
		g.releaseRules(c)
		return
	}
	g.releaseRules(p.compiled)
	p.compiled = c
	g.seq.dirtyProfile(p.name)
}
