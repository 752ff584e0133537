package dataplane

import (
	"errors"
	"fmt"
	"slices"

	"github.com/calico-go/calico/internal/dpapi"
	"github.com/calico-go/calico/internal/kernel/nft"
)

// ipSetManager keeps the IP sets: one kernel set per family for each
// dpapi set (so rules of either family always find their set), and a copy
// of the members for the policy groups that fold sets into their own.
// Updates are recorded (a full replace, or the net delta since the last
// render) and written into the table's desired state by render, so
// nothing reaches the kernel before the dataplane is in sync.
type ipSetManager struct {
	table   *nft.Table
	sets    map[string]*ipSet
	pending map[string]*pendingSet
	// changed collects the sets whose members changed since the last
	// call of takeChanged, for the group manager.
	changed map[string]struct{}
}

type ipSet struct {
	typ     dpapi.IPSetType
	members map[dpapi.Member]struct{}
}

// pendingSet is what render must write for one set.
type pendingSet struct {
	full     bool // write all members (new set, replace or removal)
	add, del map[dpapi.Member]struct{}
}

func newIPSetManager(t *nft.Table) *ipSetManager {
	return &ipSetManager{table: t, sets: map[string]*ipSet{}, pending: map[string]*pendingSet{}, changed: map[string]struct{}{}}
}

func setType(t dpapi.IPSetType, f nft.Family) nft.SetType {
	switch {
	case t == dpapi.IPSetIPPorts && f == nft.IPv6:
		return nft.SetIPv6Port
	case t == dpapi.IPSetIPPorts:
		return nft.SetIPv4Port
	case f == nft.IPv6:
		return nft.SetIPv6
	}
	return nft.SetIPv4
}

func toMember(m dpapi.Member) (nft.Member, nft.Family) {
	nm := nft.Member{Prefix: m.Prefix.Masked()}
	if m.Protocol != 0 {
		nm.Protocol, nm.Ports = m.Protocol, nft.PortRange{First: m.Port, Last: m.Port}
	}
	return nm, familyOf(m.Prefix)
}

func split(ms map[dpapi.Member]struct{}) map[nft.Family][]nft.Member {
	out := map[nft.Family][]nft.Member{nft.IPv4: nil, nft.IPv6: nil}
	for m := range ms {
		nm, f := toMember(m)
		out[f] = append(out[f], nm)
	}
	return out
}

func (m *ipSetManager) update(u dpapi.IPSetUpdate) {
	s := &ipSet{typ: u.Type, members: make(map[dpapi.Member]struct{}, len(u.Members))}
	for _, mem := range u.Members {
		s.members[mem] = struct{}{}
	}
	m.sets[u.ID] = s
	m.changed[u.ID] = struct{}{}
	m.pending[u.ID] = &pendingSet{full: true}
}

func (m *ipSetManager) delta(d dpapi.IPSetDelta) error {
	s := m.sets[d.ID]
	if s == nil {
		return fmt.Errorf("delta for unknown IP set %s", d.ID)
	}
	p := m.pending[d.ID]
	if p == nil {
		p = &pendingSet{add: map[dpapi.Member]struct{}{}, del: map[dpapi.Member]struct{}{}}
		m.pending[d.ID] = p
	}
	for _, mem := range d.Removed {
		delete(s.members, mem)
		if !p.full {
			delete(p.add, mem)
			p.del[mem] = struct{}{}
		}
	}
	for _, mem := range d.Added {
		s.members[mem] = struct{}{}
		if !p.full {
			delete(p.del, mem)
			p.add[mem] = struct{}{}
		}
	}
	m.changed[d.ID] = struct{}{}
	return nil
}

func (m *ipSetManager) remove(id string) {
	delete(m.sets, id)
	m.changed[id] = struct{}{}
	m.pending[id] = &pendingSet{full: true}
}

// render writes the pending changes into the table, for the programmed
// families (the other family's halves are deleted).
func (m *ipSetManager) render(fams []nft.Family) error {
	var errs []error
	for id, p := range m.pending {
		s := m.sets[id]
		switch {
		case s == nil:
			m.table.DeleteSet(ipSetName(id, nft.IPv4))
			m.table.DeleteSet(ipSetName(id, nft.IPv6))
		case p.full:
			for f, ms := range split(s.members) {
				if !slices.Contains(fams, f) {
					m.table.DeleteSet(ipSetName(id, f))
					continue
				}
				if err := m.table.SetSet(ipSetName(id, f), setType(s.typ, f), ms); err != nil {
					errs = append(errs, fmt.Errorf("IP set %s: %w", id, err))
				}
			}
		default:
			for f, ms := range split(p.del) {
				if slices.Contains(fams, f) {
					m.table.RemoveMembers(ipSetName(id, f), ms...)
				}
			}
			for f, ms := range split(p.add) {
				if !slices.Contains(fams, f) {
					continue
				}
				if err := m.table.AddMembers(ipSetName(id, f), ms...); err != nil {
					errs = append(errs, fmt.Errorf("IP set %s: %w", id, err))
				}
			}
		}
	}
	clear(m.pending)
	return errors.Join(errs...)
}

// markAllDirty makes the next render write every set in full.
func (m *ipSetManager) markAllDirty() {
	for id := range m.sets {
		m.pending[id] = &pendingSet{full: true}
	}
}

// members returns a set's members of family f (nil for unknown sets).
func (m *ipSetManager) members(id string, f nft.Family) []dpapi.Member {
	s := m.sets[id]
	if s == nil {
		return nil
	}
	var out []dpapi.Member
	for mem := range s.members {
		if familyOf(mem.Prefix) == f {
			out = append(out, mem)
		}
	}
	return out
}

// takeChanged returns and forgets the sets changed since the last call.
func (m *ipSetManager) takeChanged() map[string]struct{} {
	c := m.changed
	m.changed = map[string]struct{}{}
	return c
}

// stats returns the number of sets and their total members.
func (m *ipSetManager) stats() (sets, members int) {
	for _, s := range m.sets {
		members += len(s.members)
	}
	return len(m.sets), members
}
