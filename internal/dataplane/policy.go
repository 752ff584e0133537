package dataplane

import (
	"github.com/calico-go/calico/internal/dpapi"
	"github.com/calico-go/calico/internal/kernel/nft"
)

// policyManager renders one chain per policy direction (cali-pi-/cali-po-)
// and per profile direction (cali-pri-/cali-pro-). Allow sets the accept
// mark and returns, Pass sets the pass mark and returns, Deny drops (or
// rejects), Log logs and goes on; the endpoint chains read the marks.
type policyManager struct {
	table    *nft.Table
	policies map[dpapi.PolicyID]*policy
	profiles map[dpapi.ProfileID]*dpapi.Profile
	dirtyPol map[dpapi.PolicyID]struct{}
	dirtyPro map[dpapi.ProfileID]struct{}
	// setUsers indexes the policies naming each IP set, for groups.
	setUsers map[string]map[dpapi.PolicyID]struct{}
	// changed collects policies updated or removed since the last
	// render, for the endpoint and group managers.
	changed map[dpapi.PolicyID]struct{}
}

type policy struct {
	dpapi.Policy
	// simpleIn and simpleOut: every rule of the direction can be folded
	// into a group's sets (see groups.go).
	simpleIn, simpleOut bool
}

func newPolicyManager(t *nft.Table) *policyManager {
	return &policyManager{
		table:    t,
		policies: map[dpapi.PolicyID]*policy{},
		profiles: map[dpapi.ProfileID]*dpapi.Profile{},
		dirtyPol: map[dpapi.PolicyID]struct{}{},
		dirtyPro: map[dpapi.ProfileID]struct{}{},
		setUsers: map[string]map[dpapi.PolicyID]struct{}{},
		changed:  map[dpapi.PolicyID]struct{}{},
	}
}

func (m *policyManager) updatePolicy(id dpapi.PolicyID, p dpapi.Policy) {
	m.unindex(id)
	np := &policy{Policy: p, simpleIn: simpleRules(p.InboundRules, true), simpleOut: simpleRules(p.OutboundRules, false)}
	m.policies[id] = np
	for _, rules := range [][]dpapi.Rule{p.InboundRules, p.OutboundRules} {
		for i := range rules {
			for _, s := range rules[i].IPSetIDs() {
				if m.setUsers[s] == nil {
					m.setUsers[s] = map[dpapi.PolicyID]struct{}{}
				}
				m.setUsers[s][id] = struct{}{}
			}
		}
	}
	m.dirtyPol[id] = struct{}{}
	m.changed[id] = struct{}{}
}

func (m *policyManager) unindex(id dpapi.PolicyID) {
	old := m.policies[id]
	if old == nil {
		return
	}
	for _, rules := range [][]dpapi.Rule{old.InboundRules, old.OutboundRules} {
		for i := range rules {
			for _, s := range rules[i].IPSetIDs() {
				delete(m.setUsers[s], id)
				if len(m.setUsers[s]) == 0 {
					delete(m.setUsers, s)
				}
			}
		}
	}
}

func (m *policyManager) removePolicy(id dpapi.PolicyID) {
	m.unindex(id)
	delete(m.policies, id)
	m.dirtyPol[id] = struct{}{}
	m.changed[id] = struct{}{}
}

func (m *policyManager) updateProfile(id dpapi.ProfileID, p dpapi.Profile) {
	m.profiles[id] = &p
	m.dirtyPro[id] = struct{}{}
}

func (m *policyManager) removeProfile(id dpapi.ProfileID) {
	delete(m.profiles, id)
	m.dirtyPro[id] = struct{}{}
}

// markAllDirty makes the next render rewrite every chain (after a
// configuration change).
func (m *policyManager) markAllDirty() {
	for id := range m.policies {
		m.dirtyPol[id] = struct{}{}
	}
	for id := range m.profiles {
		m.dirtyPro[id] = struct{}{}
	}
}

func (m *policyManager) render(c *renderConfig) {
	for id := range m.dirtyPol {
		p := m.policies[id]
		if p == nil {
			m.table.DeleteChain(policyChain(id, true))
			m.table.DeleteChain(policyChain(id, false))
			continue
		}
		rc := c.ruleCtx(id.Tier, string(id.Kind), id.Name, id.Namespace, !p.Untracked && !p.PreDNAT)
		m.table.SetChain(nft.Chain{Name: policyChain(id, true), Rules: compileRules(p.InboundRules, rc)})
		m.table.SetChain(nft.Chain{Name: policyChain(id, false), Rules: compileRules(p.OutboundRules, rc)})
	}
	clear(m.dirtyPol)
	for id := range m.dirtyPro {
		p := m.profiles[id]
		if p == nil {
			m.table.DeleteChain(profileChain(id, true))
			m.table.DeleteChain(profileChain(id, false))
			continue
		}
		rc := c.ruleCtx("profile", "pro", id.Name, "", true)
		m.table.SetChain(nft.Chain{Name: profileChain(id, true), Rules: compileRules(p.InboundRules, rc)})
		m.table.SetChain(nft.Chain{Name: profileChain(id, false), Rules: compileRules(p.OutboundRules, rc)})
	}
	clear(m.dirtyPro)
}

// takeChanged returns and forgets the policies changed since the last call.
func (m *policyManager) takeChanged() map[dpapi.PolicyID]struct{} {
	c := m.changed
	m.changed = map[dpapi.PolicyID]struct{}{}
	return c
}

// simpleRules reports whether every rule can be folded into a group: an
// Allow with at most one match on the peer's address (nets, or a single
// IP set), an optional protocol and destination ports, and nothing else.
// A run of such policies in a tier has the same outcome in any order
// (accept if any rule matches), so a set lookup can stand for it.
func simpleRules(rules []dpapi.Rule, ingress bool) bool {
	for i := range rules {
		if !simpleRule(&rules[i], ingress) {
			return false
		}
	}
	return true
}

func simpleRule(r *dpapi.Rule, ingress bool) bool {
	if r.Action != dpapi.ActionAllow || r.NotProtocol != 0 || r.ICMP != nil || r.NotICMP != nil {
		return false
	}
	if len(r.SrcPorts)+len(r.NotSrcPorts)+len(r.NotDstPorts) > 0 ||
		r.SrcNamedPortIPSetID != "" || r.DstNamedPortIPSetID != "" ||
		len(r.NotSrcNamedPortIPSetIDs)+len(r.NotDstNamedPortIPSetIDs) > 0 {
		return false
	}
	if len(r.NotSrcNets)+len(r.NotDstNets)+len(r.NotSrcIPSetIDs)+len(r.NotDstIPSetIDs) > 0 {
		return false
	}
	peerNets, peerSets, localNets, localSets := r.SrcNets, r.SrcIPSetIDs, r.DstNets, r.DstIPSetIDs
	if !ingress {
		peerNets, peerSets, localNets, localSets = r.DstNets, r.DstIPSetIDs, r.SrcNets, r.SrcIPSetIDs
	}
	if len(localNets)+len(localSets) > 0 || len(peerSets) > 1 || (len(peerSets) > 0 && len(peerNets) > 0) {
		return false
	}
	return len(r.DstPorts) == 0 || r.Protocol != 0
}
