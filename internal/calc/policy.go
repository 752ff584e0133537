package calc

import (
	"cmp"
	"math"
	"slices"

	v3 "github.com/calico-go/calico/api/v3"
	"github.com/calico-go/calico/internal/dpapi"
	"github.com/calico-go/calico/internal/selector"
)

type policyKey struct {
	kind dpapi.PolicyKind
	ns   string
	name string
}

// policy is an enforced (non-staged) policy of the datastore.
type policy struct {
	key      policyKey
	id       dpapi.PolicyID
	sortKey  string  // name/namespace/kind, the tie-break (SPEC §3.3)
	order    float64 // +Inf when unset
	ingress  bool    // applies to ingress (types)
	egress   bool
	flags    policyFlags
	assume   bool // performanceHints: AssumeNeededOnEveryNode
	sel      *selector.Selector
	inRules  []v3.Rule
	outRules []v3.Rule

	weps, heps int            // local endpoints it selects, by kind
	active     bool           // sent to the dataplane
	compiled   *compiledRules // while active
}

type policyFlags struct {
	untracked, preDNAT, applyOnForward bool
}

// tier is a Tier resource (or a well-known tier's defaults).
type tier struct {
	order         float64 // +Inf when unset
	defaultAction dpapi.Action
}

// wellKnownTiers are used when no Tier resource says otherwise (SPEC §1.1).
var wellKnownTiers = map[string]tier{
	"kube-admin":    {order: 1000, defaultAction: dpapi.ActionPass},
	"default":       {order: 1_000_000, defaultAction: dpapi.ActionDeny},
	"kube-baseline": {order: 10_000_000, defaultAction: dpapi.ActionPass},
}

func (g *Graph) tierOf(name string) tier {
	if t := g.tiers[name]; t != nil {
		return *t
	}
	if t, ok := wellKnownTiers[name]; ok {
		return t
	}
	return tier{order: math.Inf(1), defaultAction: dpapi.ActionDeny}
}

func (g *Graph) updateTier(name string, r *v3.Tier) {
	if r == nil {
		delete(g.tiers, name)
	} else {
		t := tier{order: math.Inf(1), defaultAction: dpapi.ActionDeny}
		if wk, ok := wellKnownTiers[name]; ok {
			t = wk
		}
		if r.Spec.Order != nil {
			t.order = *r.Spec.Order
		}
		if r.Spec.DefaultAction != nil && *r.Spec.DefaultAction == v3.Pass {
			t.defaultAction = dpapi.ActionPass
		} else if r.Spec.DefaultAction != nil {
			t.defaultAction = dpapi.ActionDeny
		}
		g.tiers[name] = &t
	}
	for it := range g.polMatcher.items {
		g.seq.dirtyEndpoint(it.key)
	}
}

// updatePolicy handles a NetworkPolicy or GlobalNetworkPolicy update.
func (g *Graph) updatePolicy(k Key, r v3.Resource) {
	key := policyKey{kind: dpapi.KindGlobalNetworkPolicy, name: k.Name}
	if k.Kind == v3.KindNetworkPolicy {
		key = policyKey{kind: dpapi.KindNetworkPolicy, ns: k.Namespace, name: k.Name}
	}
	old := g.policies[key]
	var next *policy
	if r != nil {
		var err error
		next, err = policyFrom(key, r)
		if err != nil {
			g.log.Warn("ignoring an invalid policy", "policy", key.name, "namespace", key.ns, "error", err)
		}
	}
	switch {
	case next == nil && old == nil:
	case next == nil:
		g.removePolicy(old)
	case old == nil || old.id != next.id:
		if old != nil {
			g.removePolicy(old)
		}
		g.policies[key] = next
		g.polMatcher.updateSelector(next, next.sel)
		g.updateActive(next)
	default:
		g.changePolicy(old, next)
	}
}

func (g *Graph) removePolicy(p *policy) {
	g.polMatcher.removeSelector(p, true) // ends every match: endpoints dirty
	p.assume = false
	g.updateActive(p)
	delete(g.policies, p.key)
}

// changePolicy moves next's data into the existing policy p.
func (g *Graph) changePolicy(p, next *policy) {
	if p.order != next.order || p.ingress != next.ingress || p.egress != next.egress || p.flags != next.flags {
		for it := range g.polMatcher.matchesOfSel(p) {
			g.seq.dirtyEndpoint(it.key)
		}
	}
	rulesChanged := p.flags != next.flags || !slices.EqualFunc(p.inRules, next.inRules, ruleEqual) ||
		!slices.EqualFunc(p.outRules, next.outRules, ruleEqual)
	p.order, p.ingress, p.egress, p.flags, p.assume = next.order, next.ingress, next.egress, next.flags, next.assume
	p.inRules, p.outRules = next.inRules, next.outRules
	p.sel = next.sel
	wasActive := p.active
	g.polMatcher.updateSelector(p, p.sel)
	g.updateActive(p)
	if wasActive && p.active && rulesChanged {
		g.compilePolicy(p)
	}
}

// onPolicyMatch is the polMatcher callback.
func (g *Graph) onPolicyMatch(p *policy, it *item, matched bool) {
	d := 1
	if !matched {
		d = -1
	}
	if it.key.kind == kindHEP {
		p.heps += d
	} else {
		p.weps += d
	}
	g.seq.dirtyEndpoint(it.key)
	g.updateActive(p)
}

// wantActive: a policy is sent when it applies to a local endpoint (a
// workload endpoint takes neither untracked nor preDNAT policies) or is
// marked as needed on every node.
func (p *policy) wantActive() bool {
	if p.assume || p.heps > 0 {
		return true
	}
	return p.weps > 0 && !p.flags.untracked && !p.flags.preDNAT
}

func (g *Graph) updateActive(p *policy) {
	want := p.wantActive()
	if want == p.active {
		return
	}
	p.active = want
	if want {
		g.compilePolicy(p)
		return
	}
	g.releaseRules(p.compiled)
	p.compiled = nil
	g.seq.dirtyPolicy(p.id)
}

// compilePolicy (re)compiles an active policy's rules.
func (g *Graph) compilePolicy(p *policy) {
	owner := ruleOwner{id: p.id.String(), ns: p.key.ns}
	c := g.compileRules(owner, p.inRules, p.outRules)
	c.policy = dpapi.Policy{Namespace: p.key.ns, InboundRules: c.in, OutboundRules: c.out,
		Untracked: p.flags.untracked, PreDNAT: p.flags.preDNAT, ApplyOnForward: p.flags.applyOnForward}
	if p.compiled != nil && p.compiled.equal(c) {
		g.releaseRules(c)
		return
	}
	g.releaseRules(p.compiled)
	p.compiled = c
	g.seq.dirtyPolicy(p.id)
}

// comparePolicies is the evaluation order: tier order, tier name, policy
// order, then name/namespace/kind (SPEC §3.2, §3.3).
func (g *Graph) comparePolicies(a, b *policy) int {
	if a.id.Tier != b.id.Tier {
		ta, tb := g.tierOf(a.id.Tier), g.tierOf(b.id.Tier)
		return cmp.Or(cmp.Compare(ta.order, tb.order), cmp.Compare(a.id.Tier, b.id.Tier))
	}
	return cmp.Or(cmp.Compare(a.order, b.order), cmp.Compare(a.sortKey, b.sortKey))
}

// stage selects the policies of one host endpoint stage.
type stage uint8

const (
	stageNormal stage = iota
	stageUntracked
	stagePreDNAT
	stageForward
)

func (s stage) takes(p *policy) bool {
	switch s {
	case stageUntracked:
		return p.flags.untracked
	case stagePreDNAT:
		return p.flags.preDNAT
	case stageForward:
		return !p.flags.untracked && !p.flags.preDNAT && p.flags.applyOnForward
	}
	return !p.flags.untracked && !p.flags.preDNAT
}

// tiersFor returns the tiers of one stage for the sorted policies.
func (g *Graph) tiersFor(sorted []*policy, st stage) []dpapi.TierInfo {
	var out []dpapi.TierInfo
	for _, p := range sorted {
		if !st.takes(p) {
			continue
		}
		if len(out) == 0 || out[len(out)-1].Name != p.id.Tier {
			out = append(out, dpapi.TierInfo{Name: p.id.Tier, DefaultAction: g.tierOf(p.id.Tier).defaultAction})
		}
		ti := &out[len(out)-1]
		if p.ingress {
			ti.IngressPolicies = append(ti.IngressPolicies, p.id)
		}
		if p.egress && st != stagePreDNAT {
			ti.EgressPolicies = append(ti.EgressPolicies, p.id)
		}
		if len(ti.IngressPolicies) == 0 && len(ti.EgressPolicies) == 0 {
			out = out[:len(out)-1]
		}
	}
	return out
}

// sortedPolicies returns the policies matching a local endpoint in
// evaluation order.
func (g *Graph) sortedPolicies(it *item) []*policy {
	pols := slices.Clone(g.polMatcher.matchesOfItem(it))
	slices.SortFunc(pols, g.comparePolicies)
	return pols
}
