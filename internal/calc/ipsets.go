package calc

import (
	"crypto/sha256"
	"encoding/base64"
	"net/netip"
	"strconv"

	"github.com/calico-go/calico/internal/dpapi"
	"github.com/calico-go/calico/internal/selector"
)

// selEntry is one distinct selector used by active IP sets; the sets
// derived from it (the selector set and any named-port sets) share its
// matches.
type selEntry struct {
	uid  string
	sel  *selector.Selector
	sets []*ipSet
}

// setSpec says which IP set a rule needs.
type setSpec struct {
	sel   *selector.Selector
	named bool   // a named-port set
	port  string // the port name
	proto uint8  // the rule's protocol; 0 for any
}

// id returns the set ID (see the dpapi package documentation).
func (s setSpec) id() string {
	if !s.named {
		return s.sel.UniqueID()
	}
	h := sha256.Sum224([]byte("n:" + s.sel.String() + "," + strconv.Itoa(int(s.proto)) + "," + s.port))
	return "n:" + base64.RawURLEncoding.EncodeToString(h[:])
}

// ipSet is an active IP set: at least one active policy or profile rule
// names it.
type ipSet struct {
	id      string
	spec    setSpec
	entry   *selEntry
	refs    int
	members map[dpapi.Member]int32 // with the number of items contributing each

	// Sequencer state.
	sent    bool // the dataplane has the set
	full    bool // send it whole (new, or re-created since sent)
	added   map[dpapi.Member]struct{}
	removed map[dpapi.Member]struct{}
}

func (s *ipSet) typ() dpapi.IPSetType {
	if s.spec.named {
		return dpapi.IPSetIPPorts
	}
	return dpapi.IPSetNets
}

// refSet takes a reference on the set spec describes, creating it.
func (g *Graph) refSet(spec setSpec) *ipSet {
	id := spec.id()
	if s := g.ipSets[id]; s != nil {
		s.refs++
		return s
	}
	s := &ipSet{id: id, spec: spec, refs: 1, members: map[dpapi.Member]int32{}}
	g.ipSets[id] = s
	g.seq.setCreated(s)
	uid := spec.sel.UniqueID()
	e := g.selEntries[uid]
	if e == nil {
		e = &selEntry{uid: uid, sel: spec.sel, sets: []*ipSet{s}}
		s.entry = e
		g.selEntries[uid] = e
		g.setMatcher.updateSelector(e, spec.sel) // populates s through onSetMatch
		return s
	}
	s.entry = e
	e.sets = append(e.sets, s)
	for it := range g.setMatcher.matchesOfSel(e) {
		s.addItem(it, 1, &g.seq)
	}
	return s
}

// unrefSet drops a reference; the last one removes the set.
func (g *Graph) unrefSet(s *ipSet) {
	if s.refs--; s.refs > 0 {
		return
	}
	delete(g.ipSets, s.id)
	g.seq.setRemoved(s)
	e := s.entry
	e.sets = deleteItem(e.sets, s)
	if len(e.sets) == 0 {
		g.setMatcher.removeSelector(e, false)
		delete(g.selEntries, e.uid)
	}
}

// onSetMatch is the setMatcher callback.
func (g *Graph) onSetMatch(e *selEntry, it *item, matched bool) {
	delta := int32(1)
	if !matched {
		delta = -1
	}
	for _, s := range e.sets {
		s.addItem(it, delta, &g.seq)
	}
}

// changeMembers updates an item's addresses and named ports in every set
// whose selector matches it.
func (g *Graph) changeMembers(it *item, nets []netip.Prefix, ports []namedPort) {
	entries := g.setMatcher.matchesOfItem(it)
	for _, e := range entries {
		for _, s := range e.sets {
			s.addContribution(nets, ports, 1, &g.seq)
		}
	}
	for _, e := range entries {
		for _, s := range e.sets {
			s.addItem(it, -1, &g.seq)
		}
	}
	it.nets, it.ports = nets, ports
}

// addItem adds (delta 1) or removes (delta -1) what an item contributes.
func (s *ipSet) addItem(it *item, delta int32, seq *sequencer) {
	s.addContribution(it.nets, it.ports, delta, seq)
}

func (s *ipSet) addContribution(nets []netip.Prefix, ports []namedPort, delta int32, seq *sequencer) {
	if !s.spec.named {
		for _, n := range nets {
			s.count(dpapi.Member{Prefix: n}, delta, seq)
		}
		return
	}
	for _, p := range ports {
		if p.name != s.spec.port || (s.spec.proto != 0 && p.proto != s.spec.proto) {
			continue
		}
		for _, n := range nets {
			if !n.IsSingleIP() {
				continue
			}
			s.count(dpapi.Member{Prefix: n, Protocol: p.proto, Port: p.port}, delta, seq)
		}
	}
}

// count adjusts a member's contributor count, recording additions and
// removals for the sequencer.
func (s *ipSet) count(m dpapi.Member, delta int32, seq *sequencer) {
	n := s.members[m] + delta
	switch {
	case n > 0:
		s.members[m] = n
		if n == delta { // 0 -> positive
			s.noteMember(m, true, seq)
		}
	case n == 0:
		delete(s.members, m)
		s.noteMember(m, false, seq)
	default:
		panic("calc: IP set member count below zero for " + m.String())
	}
}

func (s *ipSet) noteMember(m dpapi.Member, present bool, seq *sequencer) {
	seq.setChanged(s)
	if !s.sent || s.full {
		return // sent whole at the next flush
	}
	if present {
		if _, ok := s.removed[m]; ok {
			delete(s.removed, m)
			return
		}
		if s.added == nil {
			s.added = map[dpapi.Member]struct{}{}
		}
		s.added[m] = struct{}{}
		return
	}
	if _, ok := s.added[m]; ok {
		delete(s.added, m)
		return
	}
	if s.removed == nil {
		s.removed = map[dpapi.Member]struct{}{}
	}
	s.removed[m] = struct{}{}
}
