package calc

import (
	"cmp"
	"maps"
	"reflect"
	"slices"

	"github.com/calico-go/calico/internal/dpapi"
)

// sequencer remembers what changed since the last batch and what the
// dataplane has been sent, and emits each batch in the order of the dpapi
// contract: config; IP set creations and deltas; profile and policy
// updates; endpoint updates; endpoint removals; policy and profile
// removals; IP set removals; then the networking messages (see
// network.flush); InSync.
type sequencer struct {
	inSync     bool // OnInSync has been called
	sendInSync bool // InSync is due in the next batch

	sentConfig *dpapi.Config

	dirtySets   map[string]struct{}
	removedSets map[string]struct{} // sent, since removed: IPSetRemove due

	dirtyProfiles map[string]struct{}
	sentProfiles  map[string]struct{}

	dirtyPolicies map[dpapi.PolicyID]struct{}
	sentPolicies  map[dpapi.PolicyID]struct{}

	dirtyEndpoints map[itemKey]struct{}
	sentEndpoints  map[itemKey]dpapi.Message
}

func newSequencer() sequencer {
	return sequencer{
		dirtySets: map[string]struct{}{}, removedSets: map[string]struct{}{},
		dirtyProfiles: map[string]struct{}{}, sentProfiles: map[string]struct{}{},
		dirtyPolicies: map[dpapi.PolicyID]struct{}{}, sentPolicies: map[dpapi.PolicyID]struct{}{},
		dirtyEndpoints: map[itemKey]struct{}{}, sentEndpoints: map[itemKey]dpapi.Message{},
	}
}

func (q *sequencer) setCreated(s *ipSet) {
	if _, ok := q.removedSets[s.id]; ok {
		// Removed and re-created before the dataplane heard of it: replace
		// its members instead.
		delete(q.removedSets, s.id)
		s.sent, s.full = true, true
	}
	q.dirtySets[s.id] = struct{}{}
}

func (q *sequencer) setRemoved(s *ipSet) {
	if s.sent {
		q.removedSets[s.id] = struct{}{}
	}
	delete(q.dirtySets, s.id)
}

func (q *sequencer) setChanged(s *ipSet)           { q.dirtySets[s.id] = struct{}{} }
func (q *sequencer) dirtyProfile(name string)      { q.dirtyProfiles[name] = struct{}{} }
func (q *sequencer) dirtyPolicy(id dpapi.PolicyID) { q.dirtyPolicies[id] = struct{}{} }
func (q *sequencer) dirtyEndpoint(k itemKey)       { q.dirtyEndpoints[k] = struct{}{} }

func compareItemKeys(a, b itemKey) int {
	return cmp.Or(cmp.Compare(a.kind, b.kind), cmp.Compare(a.ns, b.ns), cmp.Compare(a.name, b.name))
}

func sortedKeys[K cmp.Ordered, V any](m map[K]V) []K { return slices.Sorted(maps.Keys(m)) }

// emptied empties a dirty map, dropping it when it grew large (after the
// initial snapshot) so that its buckets are not kept forever.
func emptied[K comparable, V any](m map[K]V) map[K]V {
	if len(m) > 1024 {
		return map[K]V{}
	}
	clear(m)
	return m
}

// flush emits everything that changed as one batch (nothing when nothing
// changed).
func (g *Graph) flush() {
	q := &g.seq
	var msgs []dpapi.Message
	if g.config.dirty {
		g.config.dirty = false
		cfg := g.mergedConfig()
		if q.sentConfig == nil || !reflect.DeepEqual(*q.sentConfig, cfg) {
			q.sentConfig = &cfg
			msgs = append(msgs, dpapi.ConfigUpdate{Config: cfg})
		}
	}
	msgs = g.flushSets(msgs)
	msgs, ruleRemoves := g.flushRules(msgs)
	msgs, epRemoves := g.flushEndpoints(msgs)
	msgs = append(msgs, epRemoves...)
	msgs = append(msgs, ruleRemoves...)
	for _, id := range sortedKeys(q.removedSets) {
		msgs = append(msgs, dpapi.IPSetRemove{ID: id})
	}
	q.removedSets = emptied(q.removedSets)
	msgs = g.net.flush(msgs)
	if q.sendInSync {
		q.sendInSync = false
		msgs = append(msgs, dpapi.InSync{})
	}
	if len(msgs) > 0 && g.opts.Sink != nil {
		g.opts.Sink(msgs)
	}
}

// flushSets emits the creations and deltas of IP sets.
func (g *Graph) flushSets(msgs []dpapi.Message) []dpapi.Message {
	q := &g.seq
	for _, id := range sortedKeys(q.dirtySets) {
		s := g.ipSets[id]
		if s == nil {
			continue
		}
		if !s.sent || s.full {
			mems := slices.SortedFunc(maps.Keys(s.members), dpapi.CompareMembers)
			msgs = append(msgs, dpapi.IPSetUpdate{ID: id, Type: s.typ(), Members: mems})
		} else if len(s.added)+len(s.removed) > 0 {
			msgs = append(msgs, dpapi.IPSetDelta{ID: id,
				Added:   slices.SortedFunc(maps.Keys(s.added), dpapi.CompareMembers),
				Removed: slices.SortedFunc(maps.Keys(s.removed), dpapi.CompareMembers)})
		}
		s.sent, s.full, s.added, s.removed = true, false, nil, nil
	}
	q.dirtySets = emptied(q.dirtySets)
	return msgs
}

// flushRules emits profile and policy updates, and returns their removals
// separately (they go after the endpoint messages).
func (g *Graph) flushRules(msgs []dpapi.Message) ([]dpapi.Message, []dpapi.Message) {
	q := &g.seq
	var removes []dpapi.Message
	for _, name := range sortedKeys(q.dirtyProfiles) {
		id := dpapi.ProfileID{Name: name}
		if p := g.profiles[name]; p != nil && p.compiled != nil {
			msgs = append(msgs, dpapi.ProfileUpdate{ID: id,
				Profile: dpapi.Profile{InboundRules: p.compiled.in, OutboundRules: p.compiled.out}})
			q.sentProfiles[name] = struct{}{}
		} else if _, ok := q.sentProfiles[name]; ok {
			removes = append(removes, dpapi.ProfileRemove{ID: id})
			delete(q.sentProfiles, name)
		}
	}
	q.dirtyProfiles = emptied(q.dirtyProfiles)
	for _, id := range slices.SortedFunc(maps.Keys(q.dirtyPolicies), dpapi.ComparePolicyIDs) {
		key := policyKey{kind: id.Kind, ns: id.Namespace, name: id.Name}
		if p := g.policies[key]; p != nil && p.id == id && p.active {
			msgs = append(msgs, dpapi.PolicyUpdate{ID: id, Policy: p.compiled.policy})
			q.sentPolicies[id] = struct{}{}
		} else if _, ok := q.sentPolicies[id]; ok {
			removes = append(removes, dpapi.PolicyRemove{ID: id})
			delete(q.sentPolicies, id)
		}
	}
	q.dirtyPolicies = emptied(q.dirtyPolicies)
	return msgs, removes
}

// flushEndpoints emits endpoint updates that differ from what was sent,
// and returns the removals separately.
func (g *Graph) flushEndpoints(msgs []dpapi.Message) ([]dpapi.Message, []dpapi.Message) {
	q := &g.seq
	var removes []dpapi.Message
	for _, k := range slices.SortedFunc(maps.Keys(q.dirtyEndpoints), compareItemKeys) {
		if it := g.items[k]; it != nil && it.local != nil {
			m := g.endpointMessage(it)
			if old, ok := q.sentEndpoints[k]; !ok || !reflect.DeepEqual(old, m) {
				msgs = append(msgs, m)
				q.sentEndpoints[k] = m
			}
			continue
		}
		if _, ok := q.sentEndpoints[k]; !ok {
			continue
		}
		delete(q.sentEndpoints, k)
		if k.kind == kindHEP {
			removes = append(removes, dpapi.HostEndpointRemove{ID: dpapi.HostEndpointID{Name: k.name}})
		} else {
			removes = append(removes, dpapi.WorkloadEndpointRemove{ID: dpapi.WorkloadEndpointID{Namespace: k.ns, Name: k.name}})
		}
	}
	q.dirtyEndpoints = emptied(q.dirtyEndpoints)
	return msgs, removes
}
