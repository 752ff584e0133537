package dataplane

import (
	"github.com/calico-go/calico/internal/dpapi"
	"github.com/calico-go/calico/internal/kernel/nft"
)

// hostManager renders host endpoint chains for each stage (SPEC §3 "Host
// endpoints"): normal policy for traffic to and from local processes
// (cali-fh-/cali-th-), applyOnForward policy for forwarded traffic
// (cali-fhfw-/cali-thfw-), doNotTrack policy in the raw hooks
// (cali-fhu-/cali-thu-) and preDNAT policy at mangle priority
// (cali-fhp-). A named endpoint is dispatched by interface through the
// maps; a "*" endpoint (chain suffix "all") is the fallback at the end of
// each dispatch chain. Endpoints without an interface name (matched by
// expected addresses) are not supported and are ignored.
type hostManager struct {
	table    *nft.Table
	policies *policyManager
	eps      map[dpapi.HostEndpointID]*hostEP
	dirty    map[dpapi.HostEndpointID]struct{}
	// star is the "*" endpoint's chains, by stage, for the dispatch
	// chains; starChanged asks for them to be rendered again.
	star        map[string]bool
	starChanged bool
}

type hostEP struct {
	ep       *dpapi.HostEndpoint
	written  []hostChain // what was written, to remove
	policies map[dpapi.PolicyID]struct{}
}

// hostChain is one chain of a host endpoint and its dispatch entry.
type hostChain struct {
	chain, mp, key string
}

func newHostManager(t *nft.Table, pm *policyManager) *hostManager {
	return &hostManager{table: t, policies: pm, eps: map[dpapi.HostEndpointID]*hostEP{}, dirty: map[dpapi.HostEndpointID]struct{}{}, star: map[string]bool{}}
}

func (m *hostManager) update(id dpapi.HostEndpointID, ep dpapi.HostEndpoint) {
	h := m.eps[id]
	if h == nil {
		h = &hostEP{}
		m.eps[id] = h
	}
	h.ep = &ep
	m.dirty[id] = struct{}{}
}

func (m *hostManager) remove(id dpapi.HostEndpointID) {
	if h := m.eps[id]; h != nil {
		h.ep = nil
		m.dirty[id] = struct{}{}
	}
}

func (m *hostManager) markAllDirty() {
	for id := range m.eps {
		m.dirty[id] = struct{}{}
	}
}

func (m *hostManager) policiesChanged(changed map[dpapi.PolicyID]struct{}) {
	for id, h := range m.eps {
		for p := range changed {
			if _, ok := h.policies[p]; ok {
				m.dirty[id] = struct{}{}
				break
			}
		}
	}
}

func (m *hostManager) render(c *renderConfig) {
	for id := range m.dirty {
		h := m.eps[id]
		for _, w := range h.written {
			if w.key == allInterfaces {
				m.star = map[string]bool{}
				m.starChanged = true
			} else {
				m.table.DeleteMapEntry(w.mp, w.key)
			}
			m.table.DeleteChain(w.chain)
		}
		h.written = nil
		if h.ep == nil {
			delete(m.eps, id)
			continue
		}
		if h.ep.InterfaceName == "" {
			continue
		}
		m.renderOne(c, h)
	}
	clear(m.dirty)
}

type hostStage struct {
	prefix, mp string
	ingress    bool
	stage      stage
	tiers      []dpapi.TierInfo
	failsafe   string
	always     bool // written even without tiers (default deny)
}

func (m *hostManager) renderOne(c *renderConfig, h *hostEP) {
	ep := h.ep
	key := ep.InterfaceName
	suffix := key
	star := key == "*"
	if star {
		key, suffix = allInterfaces, allInterfaces
	}
	h.policies = map[dpapi.PolicyID]struct{}{}
	for _, ts := range [][]dpapi.TierInfo{ep.Tiers, ep.UntrackedTiers, ep.PreDNATTiers, ep.ForwardTiers} {
		for _, t := range ts {
			for _, id := range append(append([]dpapi.PolicyID(nil), t.IngressPolicies...), t.EgressPolicies...) {
				h.policies[id] = struct{}{}
			}
		}
	}
	stages := []hostStage{
		{prefixFromHost, mapFromHEP, true, stageNormal, ep.Tiers, chainFailsafeIn, true},
		{prefixToHost, mapToHEP, false, stageNormal, ep.Tiers, chainFailsafeOut, true},
		{prefixFromHstFwd, mapFromHEPFwd, true, stageForward, ep.ForwardTiers, "", false},
		{prefixToHostFwd, mapToHEPFwd, false, stageForward, ep.ForwardTiers, "", false},
		{prefixFromHostP, mapFromHEPPreDNT, true, stagePreDNAT, ep.PreDNATTiers, chainFailsafeIn, false},
	}
	if !star { // doNotTrack is not supported on "*" endpoints
		stages = append(stages,
			hostStage{prefixFromHostU, mapFromHEPUntrkd, true, stageUntracked, ep.UntrackedTiers, chainFailsafeIn, false},
			hostStage{prefixToHostU, mapToHEPUntrkd, false, stageUntracked, ep.UntrackedTiers, chainFailsafeOut, false})
	}
	for _, s := range stages {
		tiers := tiersFor(s.tiers, s.ingress)
		if len(tiers) == 0 && !s.always {
			continue // not policed at this stage: no chain, no dispatch entry
		}
		var rules []nft.Rule
		if s.failsafe != "" {
			rules = append(rules, nft.R(nft.Jump(s.failsafe)))
		}
		if s.stage == stageNormal || s.stage == stageForward {
			rules = append(rules, c.conntrackRules()...)
		}
		e := epChain{ingress: s.ingress, stage: s.stage, tiers: tiers, profiles: ep.ProfileIDs}
		pr, _, ok := e.policyRules(c, m.policies, nil)
		if !ok {
			pr = []nft.Rule{nft.R(nft.Drop()).WithComment("Fail closed: policy or profile not programmed")}
		}
		rules = append(rules, pr...)
		name := chainName(s.prefix, suffix)
		m.table.SetChain(nft.Chain{Name: name, Rules: rules})
		if star {
			m.star[s.prefix] = true
			m.starChanged = true
		} else {
			v := nft.Goto(name)
			if s.stage == stageUntracked {
				v = nft.Jump(name) // dispatched straight from the raw base chains
			}
			m.table.SetMapEntry(s.mp, key, v)
		}
		h.written = append(h.written, hostChain{chain: name, mp: s.mp, key: key})
	}
}

// starChain returns the "*" endpoint's chain for a stage prefix, if any.
func (m *hostManager) starChain(prefix string) (string, bool) {
	if !m.star[prefix] {
		return "", false
	}
	return chainName(prefix, allInterfaces), true
}

func (m *hostManager) count() int { return len(m.eps) }
