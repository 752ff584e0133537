package dataplane

import (
	"crypto/sha256"
	"encoding/base64"
	"net/netip"
	"slices"
	"strings"

	"github.com/calico-go/calico/internal/dpapi"
	"github.com/calico-go/calico/internal/kernel/nft"
)

// A group stands for a run of consecutive "simple" policies of one tier
// (all rules Allow, matching only the peer address, protocol and
// destination ports: see simpleRules). Within such a run the order of the
// rules cannot change the outcome, so the run is written as set lookups
// instead of one jump per policy:
//
//	cali4-g<d>p-<hash>  ipv4_addr . inet_proto . inet_service, interval:
//	                    peer address ranges x protocol x port ranges
//	cali4-g<d>a-<hash>  ipv4_addr, interval: peers allowed on any protocol
//
// (and the cali6- twins), where <d> is i (ingress: the peer is the
// source) or o (egress: the peer is the destination). A packet costs one
// or two lookups whatever the number of policies, which keeps the
// connection rate of an endpoint selected by a thousand policies close to
// that of an endpoint with none. Groups are shared by every endpoint whose
// tier holds the same run, and are rebuilt when a policy of the run or an
// IP set one of its rules names changes; the table then writes only the
// element delta.
type groupManager struct {
	table    *nft.Table
	fams     []nft.Family // programmed families
	policies *policyManager
	ipsets   *ipSetManager
	groups   map[string]*group
	byPolicy map[dpapi.PolicyID]map[string]struct{}
	dirty    map[string]struct{}
}

type group struct {
	ingress bool
	ids     []dpapi.PolicyID
	hash    string
	refs    int
}

func newGroupManager(t *nft.Table, p *policyManager, s *ipSetManager) *groupManager {
	return &groupManager{
		table: t, policies: p, ipsets: s,
		groups:   map[string]*group{},
		byPolicy: map[dpapi.PolicyID]map[string]struct{}{},
		dirty:    map[string]struct{}{},
	}
}

func groupKey(ingress bool, ids []dpapi.PolicyID) string {
	var sb strings.Builder
	if ingress {
		sb.WriteString("i")
	} else {
		sb.WriteString("o")
	}
	for _, id := range ids {
		sb.WriteString("|" + id.Tier + "|" + id.String())
	}
	return sb.String()
}

func (g *group) dir() string {
	if g.ingress {
		return "i"
	}
	return "o"
}

// setNames returns the group's port-set and any-protocol set names.
func (g *group) setNames(f nft.Family) (ports, any string) {
	v := "cali4-g"
	if f == nft.IPv6 {
		v = "cali6-g"
	}
	return v + g.dir() + "p-" + g.hash, v + g.dir() + "a-" + g.hash
}

// acquire returns the group for a run of policies, creating it.
func (m *groupManager) acquire(ingress bool, ids []dpapi.PolicyID) *group {
	key := groupKey(ingress, ids)
	g := m.groups[key]
	if g == nil {
		sum := sha256.Sum256([]byte(key))
		g = &group{ingress: ingress, ids: append([]dpapi.PolicyID(nil), ids...), hash: base64.RawURLEncoding.EncodeToString(sum[:12])}
		m.groups[key] = g
		for _, id := range ids {
			if m.byPolicy[id] == nil {
				m.byPolicy[id] = map[string]struct{}{}
			}
			m.byPolicy[id][key] = struct{}{}
		}
		m.dirty[key] = struct{}{}
	}
	g.refs++
	return g
}

// release drops a reference taken by acquire.
func (m *groupManager) release(g *group) {
	g.refs--
	if g.refs == 0 {
		m.dirty[groupKey(g.ingress, g.ids)] = struct{}{}
	}
}

// invalidate marks the groups that depend on changed policies or sets.
func (m *groupManager) invalidate(policies map[dpapi.PolicyID]struct{}, sets map[string]struct{}) {
	mark := func(id dpapi.PolicyID) {
		for key := range m.byPolicy[id] {
			m.dirty[key] = struct{}{}
		}
	}
	for id := range policies {
		mark(id)
	}
	for s := range sets {
		for id := range m.policies.setUsers[s] {
			mark(id)
		}
	}
}

// setFamilies records the programmed families; a change rebuilds every
// group.
func (m *groupManager) setFamilies(fams []nft.Family) {
	if slices.Equal(fams, m.fams) {
		return
	}
	m.fams = fams
	for key := range m.groups {
		m.dirty[key] = struct{}{}
	}
}

func (m *groupManager) render() {
	for key := range m.dirty {
		g := m.groups[key]
		if g == nil {
			continue
		}
		if g.refs == 0 {
			for _, f := range []nft.Family{nft.IPv4, nft.IPv6} {
				p, a := g.setNames(f)
				m.table.DeleteSet(p)
				m.table.DeleteSet(a)
			}
			for _, id := range g.ids {
				delete(m.byPolicy[id], key)
				if len(m.byPolicy[id]) == 0 {
					delete(m.byPolicy, id)
				}
			}
			delete(m.groups, key)
			continue
		}
		for _, f := range []nft.Family{nft.IPv4, nft.IPv6} {
			pn, an := g.setNames(f)
			if !slices.Contains(m.fams, f) {
				m.table.DeleteSet(pn)
				m.table.DeleteSet(an)
				continue
			}
			ports, any := m.members(g, f)
			// Members are built from valid sets and prefixes; an error
			// here is a bug, and the sets stay as they were.
			_ = m.table.SetSet(pn, portSetType(f), ports)
			_ = m.table.SetSet(an, addrSetType(f), any)
		}
	}
	clear(m.dirty)
}

func portSetType(f nft.Family) nft.SetType {
	if f == nft.IPv6 {
		return nft.SetIPv6PortRanges
	}
	return nft.SetIPv4PortRanges
}

func addrSetType(f nft.Family) nft.SetType {
	if f == nft.IPv6 {
		return nft.SetIPv6
	}
	return nft.SetIPv4
}

func anyPrefix(f nft.Family) netip.Prefix {
	if f == nft.IPv6 {
		return netip.MustParsePrefix("::/0")
	}
	return netip.MustParsePrefix("0.0.0.0/0")
}

// members folds the rules of the group's policies into set members.
func (m *groupManager) members(g *group, f nft.Family) (ports, any []nft.Member) {
	for _, id := range g.ids {
		p := m.policies.policies[id]
		if p == nil {
			continue
		}
		rules := p.InboundRules
		if !g.ingress {
			rules = p.OutboundRules
		}
		for i := range rules {
			r := &rules[i]
			if fams, agnostic := ruleFamilies(r); !agnostic && !containsFamily(fams, f) {
				continue
			}
			nets, sets := r.SrcNets, r.SrcIPSetIDs
			if !g.ingress {
				nets, sets = r.DstNets, r.DstIPSetIDs
			}
			var addrs []netip.Prefix
			switch {
			case len(nets) > 0:
				addrs = netsOf(nets, f)
			case len(sets) > 0:
				for _, mem := range m.ipsets.members(sets[0], f) {
					addrs = append(addrs, mem.Prefix.Masked())
				}
			default:
				addrs = []netip.Prefix{anyPrefix(f)}
			}
			if r.Protocol == 0 {
				for _, a := range addrs {
					any = append(any, nft.Member{Prefix: a})
				}
				continue
			}
			ranges := portRanges(r.DstPorts)
			if len(ranges) == 0 {
				ranges = []nft.PortRange{nft.AnyPort}
			}
			for _, a := range addrs {
				for _, pr := range ranges {
					ports = append(ports, nft.Member{Prefix: a, Protocol: r.Protocol, Ports: pr})
				}
			}
		}
	}
	return ports, any
}

func containsFamily(fs []nft.Family, f nft.Family) bool {
	for _, x := range fs {
		if x == f {
			return true
		}
	}
	return false
}

// rules returns the endpoint-chain rules that stand for the group: a hit
// in either set sets the accept mark and returns. cond guards each rule
// (the pass mark being clear) when the group is not first in its tier.
func (g *group) rules(mk marks, fams []nft.Family, cond []nft.Stmt) []nft.Rule {
	peer := nft.Src
	if !g.ingress {
		peer = nft.Dst
	}
	var out []nft.Rule
	for _, f := range fams {
		pn, an := g.setNames(f)
		hit := []nft.Stmt{nft.SetMark(mk.accept, mk.accept), nft.Return()}
		out = append(out,
			nft.R(append(append(append([]nft.Stmt{}, cond...), nft.AddrProtoPortInSet(f, peer, nft.Dst, pn)), hit...)...),
			nft.R(append(append(append([]nft.Stmt{}, cond...), nft.AddrInSet(f, peer, an)), hit...)...))
	}
	return out
}
