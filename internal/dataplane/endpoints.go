package dataplane

import (
	"fmt"
	"net/netip"

	"github.com/calico-go/calico/internal/dpapi"
	"github.com/calico-go/calico/internal/kernel/nft"
)

// stage says where an endpoint chain runs, which decides what an accept
// does and whether tiers end with a drop.
type stage uint8

const (
	stageNormal    stage = iota // filter: end-of-tier drop, profiles, final drop
	stageForward                // filter, forwarded host-endpoint traffic: allow when nothing decided
	stageUntracked              // raw: accept = notrack + accept, no drops of its own
	stagePreDNAT                // mangle: accept, no drops of its own
)

// tierDir is one tier's policies for one direction.
type tierDir struct {
	name string
	def  dpapi.Action
	ids  []dpapi.PolicyID
}

func tiersFor(tiers []dpapi.TierInfo, ingress bool) []tierDir {
	var out []tierDir
	for _, t := range tiers {
		ids := t.EgressPolicies
		if ingress {
			ids = t.IngressPolicies
		}
		if len(ids) > 0 {
			out = append(out, tierDir{name: t.Name, def: t.DefaultAction, ids: ids})
		}
	}
	return out
}

// epChain describes the policy part of one endpoint chain.
type epChain struct {
	ingress  bool // ingress policies (inbound rules) or egress
	stage    stage
	tiers    []tierDir
	profiles []dpapi.ProfileID
	groups   bool // fold runs of simple policies into groups
}

// policyRules renders tiers and profiles (SPEC §8 "Endpoint chain" steps
// 6-8). It returns the groups it used, and ok=false when a policy or
// profile is unknown: the caller then drops everything (fail closed).
func (e epChain) policyRules(c *renderConfig, pm *policyManager, gm *groupManager) (rules []nft.Rule, used []*group, ok bool) {
	mk := c.marks
	onAccept := []nft.Stmt{nft.Mark(mk.accept, mk.accept)}
	switch e.stage {
	case stageUntracked:
		onAccept = append(onAccept, nft.Notrack(), nft.Accept())
	case stagePreDNAT:
		onAccept = append(onAccept, nft.Accept())
	default:
		onAccept = append(onAccept, nft.Return())
	}
	deny := c.deny
	if e.stage == stageUntracked || e.stage == stagePreDNAT {
		deny = nft.Drop()
	}
	for ti, t := range e.tiers {
		if ti > 0 {
			rules = append(rules, nft.R(nft.SetMark(mk.pass, 0)))
		}
		for j, run := range e.runs(t.ids, pm) {
			var cond []nft.Stmt
			if j > 0 {
				cond = []nft.Stmt{nft.Mark(mk.pass, 0)}
			}
			if len(run) > 1 || (len(run) == 1 && e.groups && e.simple(run[0], pm)) {
				g := gm.acquire(e.ingress, run)
				used = append(used, g)
				rules = append(rules, g.rules(mk, c.families(), cond)...)
				continue
			}
			id := run[0]
			if pm.policies[id] == nil {
				return nil, used, false
			}
			rules = append(rules,
				nft.R(append(cond, nft.Jump(policyChain(id, e.ingress)))...),
				nft.R(onAccept...))
		}
		if t.def != dpapi.ActionPass && (e.stage == stageNormal || e.stage == stageForward) {
			rules = append(rules, nft.R(nft.Mark(mk.pass, 0), deny).
				WithComment(fmt.Sprintf("End of tier %s. Drop if no policies passed packet", t.name)))
		}
	}
	switch e.stage {
	case stageNormal:
		for _, id := range e.profiles {
			if pm.profiles[id] == nil {
				return nil, used, false
			}
			rules = append(rules, nft.R(nft.Jump(profileChain(id, e.ingress))), nft.R(onAccept...))
		}
		rules = append(rules, nft.R(deny).WithComment("Drop if no profiles matched"))
	case stageForward:
		rules = append(rules, nft.R(nft.SetMark(mk.accept, mk.accept), nft.Return()).
			WithComment("Allow forwarded traffic no tier decided"))
	}
	return rules, used, true
}

func (e epChain) simple(id dpapi.PolicyID, pm *policyManager) bool {
	p := pm.policies[id]
	if p == nil || e.stage != stageNormal {
		return false
	}
	if e.ingress {
		return p.simpleIn
	}
	return p.simpleOut
}

// runs splits a tier's policies into maximal runs of simple policies
// (which become groups) and single other policies.
func (e epChain) runs(ids []dpapi.PolicyID, pm *policyManager) [][]dpapi.PolicyID {
	var out [][]dpapi.PolicyID
	var cur []dpapi.PolicyID
	for _, id := range ids {
		if e.groups && e.simple(id, pm) {
			cur = append(cur, id)
			continue
		}
		if len(cur) > 0 {
			out = append(out, cur)
			cur = nil
		}
		out = append(out, []dpapi.PolicyID{id})
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

// workloadManager renders the chains of local workload endpoints:
// cali-tw-<if> (to the workload: its ingress policy) and cali-fw-<if>
// (from it: anti-spoofing and egress policy), and their entries in the
// dispatch maps.
type workloadManager struct {
	table    *nft.Table
	policies *policyManager
	groups   *groupManager
	eps      map[dpapi.WorkloadEndpointID]*workload
	dirty    map[dpapi.WorkloadEndpointID]struct{}
}

type workload struct {
	ep       *dpapi.WorkloadEndpoint // nil once removed
	iface    string                  // interface the chains were written for
	used     []*group
	policies map[dpapi.PolicyID]struct{}
}

func newWorkloadManager(t *nft.Table, pm *policyManager, gm *groupManager) *workloadManager {
	return &workloadManager{table: t, policies: pm, groups: gm, eps: map[dpapi.WorkloadEndpointID]*workload{}, dirty: map[dpapi.WorkloadEndpointID]struct{}{}}
}

func (m *workloadManager) update(id dpapi.WorkloadEndpointID, ep dpapi.WorkloadEndpoint) {
	w := m.eps[id]
	if w == nil {
		w = &workload{}
		m.eps[id] = w
	}
	w.ep = &ep
	m.dirty[id] = struct{}{}
}

func (m *workloadManager) remove(id dpapi.WorkloadEndpointID) {
	if w := m.eps[id]; w != nil {
		w.ep = nil
		m.dirty[id] = struct{}{}
	}
}

func (m *workloadManager) markAllDirty() {
	for id := range m.eps {
		m.dirty[id] = struct{}{}
	}
}

// policiesChanged marks the endpoints using changed policies.
func (m *workloadManager) policiesChanged(changed map[dpapi.PolicyID]struct{}) {
	if len(changed) == 0 {
		return
	}
	for id, w := range m.eps {
		for p := range changed {
			if _, ok := w.policies[p]; ok {
				m.dirty[id] = struct{}{}
				break
			}
		}
	}
}

func (m *workloadManager) render(c *renderConfig) {
	for id := range m.dirty {
		w := m.eps[id]
		for _, g := range w.used {
			m.groups.release(g)
		}
		w.used = nil
		if w.iface != "" && (w.ep == nil || w.ep.InterfaceName != w.iface) {
			m.table.DeleteMapEntry(mapToWl, w.iface)
			m.table.DeleteMapEntry(mapFromWl, w.iface)
			m.table.DeleteChain(chainName(prefixToWl, w.iface))
			m.table.DeleteChain(chainName(prefixFromWl, w.iface))
			w.iface = ""
		}
		if w.ep == nil {
			delete(m.eps, id)
			continue
		}
		m.renderOne(c, w)
	}
	clear(m.dirty)
}

func (m *workloadManager) renderOne(c *renderConfig, w *workload) {
	ep := w.ep
	iface := ep.InterfaceName
	w.policies = map[dpapi.PolicyID]struct{}{}
	for _, t := range ep.Tiers {
		for _, id := range append(append([]dpapi.PolicyID(nil), t.IngressPolicies...), t.EgressPolicies...) {
			w.policies[id] = struct{}{}
		}
	}
	for _, dir := range []bool{true, false} {
		e := epChain{ingress: dir, stage: stageNormal, tiers: tiersFor(ep.Tiers, dir), profiles: ep.ProfileIDs, groups: c.groups}
		rules := c.conntrackRules()
		if !dir {
			rules = append(rules, antiSpoof(c, ep)...)
		}
		pr, used, ok := e.policyRules(c, m.policies, m.groups)
		w.used = append(w.used, used...)
		if !ok {
			pr = []nft.Rule{nft.R(nft.Drop()).WithComment("Fail closed: policy or profile not programmed")}
		}
		rules = append(rules, pr...)
		name, mp := chainName(prefixToWl, iface), mapToWl
		if !dir {
			name, mp = chainName(prefixFromWl, iface), mapFromWl
		}
		m.table.SetChain(nft.Chain{Name: name, Rules: rules})
		m.table.SetMapEntry(mp, iface, nft.Goto(name))
	}
	w.iface = iface
}

// antiSpoof drops packets from the workload whose source is not one of
// its addresses (or an allowed spoofed prefix), per family.
func antiSpoof(c *renderConfig, ep *dpapi.WorkloadEndpoint) []nft.Rule {
	var out []nft.Rule
	for _, f := range []nft.Family{nft.IPv4, nft.IPv6} {
		nets := ep.IPv4Nets
		if f == nft.IPv6 {
			nets = ep.IPv6Nets
			if !c.cfg.IPv6Support {
				nets = nil // not programmed: IPv6 from workloads is dropped
			}
		}
		allowed := append([]netip.Prefix(nil), nets...)
		if c.cfg.WorkloadSourceSpoofing == "Any" {
			allowed = append(allowed, netsOf(ep.AllowSpoofedSourcePrefixes, f)...)
		}
		if len(allowed) == 0 {
			out = append(out, nft.R(nft.NFProto(f), nft.Drop()).WithComment("Anti-spoofing: no addresses of this family"))
			continue
		}
		out = append(out, nft.R(nft.Addr(f, nft.Src, allowed...).Not(), nft.Drop()).WithComment("Anti-spoofing"))
	}
	return out
}

func (m *workloadManager) count() int { return len(m.eps) }
