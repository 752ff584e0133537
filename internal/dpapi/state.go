package dpapi

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
)

// State models what a dataplane holds after applying a stream of
// messages in order. Apply checks the ordering contract of the package
// documentation as it goes, so tests on either side of the contract can use
// it: calc tests feed it calc's output, dataplane tests can build the
// state they expect to render. It is not safe for concurrent use.
type State struct {
	Config            *Config
	IPSets            map[string]IPSet
	Policies          map[PolicyID]Policy
	Profiles          map[ProfileID]Profile
	WorkloadEndpoints map[WorkloadEndpointID]WorkloadEndpoint
	HostEndpoints     map[HostEndpointID]HostEndpoint
	Nodes             map[string]Node
	IPPools           map[string]IPPool
	Routes            map[netip.Prefix]Route
	InSync            bool
}

// IPSet is an IP set in a State.
type IPSet struct {
	Type    IPSetType
	Members map[Member]struct{}
}

// NewState returns an empty State.
func NewState() *State {
	return &State{
		IPSets:            map[string]IPSet{},
		Policies:          map[PolicyID]Policy{},
		Profiles:          map[ProfileID]Profile{},
		WorkloadEndpoints: map[WorkloadEndpointID]WorkloadEndpoint{},
		HostEndpoints:     map[HostEndpointID]HostEndpoint{},
		Nodes:             map[string]Node{},
		IPPools:           map[string]IPPool{},
		Routes:            map[netip.Prefix]Route{},
	}
}

// ErrContract is wrapped by every error Apply returns.
var ErrContract = errors.New("dataplane message contract violated")

// groupOf returns the position of a message's group in a batch
// (contract rule 7).
func groupOf(m Message) int {
	switch m.(type) {
	case ConfigUpdate:
		return 0
	case IPSetUpdate, IPSetDelta:
		return 1
	case ProfileUpdate, PolicyUpdate:
		return 2
	case WorkloadEndpointUpdate, HostEndpointUpdate:
		return 3
	case WorkloadEndpointRemove, HostEndpointRemove:
		return 4
	case PolicyRemove, ProfileRemove:
		return 5
	case IPSetRemove:
		return 6
	case IPPoolUpdate, NodeUpdate:
		return 7
	case RouteUpdate:
		return 8
	case RouteRemove:
		return 9
	case NodeRemove, IPPoolRemove:
		return 10
	case InSync:
		return 11
	}
	return -1
}

// Apply applies one batch in order. It applies every message it can and
// returns the contract violations it saw (joined), each wrapping
// ErrContract. Routes are checked against the nodes at the end of the
// batch (contract rule 9).
func (s *State) Apply(batch []Message) error {
	var errs []error
	last := 0
	for i, m := range batch {
		g := groupOf(m)
		if g < last {
			errs = append(errs, fmt.Errorf("%w: message %d (%T) after a later group", ErrContract, i, m))
		}
		last = max(last, g)
		if err := s.apply(m); err != nil {
			errs = append(errs, fmt.Errorf("%w: message %d: %w", ErrContract, i, err))
		}
	}
	if err := s.checkRoutes(); err != nil {
		errs = append(errs, fmt.Errorf("%w: at the end of the batch: %w", ErrContract, err))
	}
	return errors.Join(errs...)
}

func (s *State) apply(m Message) error {
	if _, ok := m.(ConfigUpdate); !ok && s.Config == nil {
		return fmt.Errorf("%T before the first ConfigUpdate", m)
	}
	switch m := m.(type) {
	case ConfigUpdate:
		c := m.Config
		s.Config = &c
	case IPSetUpdate:
		return s.applyIPSetUpdate(m)
	case IPSetDelta:
		return s.applyIPSetDelta(m)
	case IPSetRemove:
		return s.applyIPSetRemove(m)
	case PolicyUpdate:
		s.Policies[m.ID] = m.Policy
		return s.checkRules(m.ID.String(), m.Policy.InboundRules, m.Policy.OutboundRules)
	case ProfileUpdate:
		s.Profiles[m.ID] = m.Profile
		return s.checkRules("profile "+m.ID.Name, m.Profile.InboundRules, m.Profile.OutboundRules)
	case PolicyRemove:
		return s.applyPolicyRemove(m)
	case ProfileRemove:
		return s.applyProfileRemove(m)
	case WorkloadEndpointUpdate:
		s.WorkloadEndpoints[m.ID] = m.Endpoint
		return s.checkEndpointRefs("workload endpoint "+m.ID.String(), m.Endpoint.ProfileIDs, m.Endpoint.Tiers)
	case WorkloadEndpointRemove:
		if _, ok := s.WorkloadEndpoints[m.ID]; !ok {
			return fmt.Errorf("remove of unknown workload endpoint %s", m.ID)
		}
		delete(s.WorkloadEndpoints, m.ID)
	case HostEndpointUpdate:
		s.HostEndpoints[m.ID] = m.Endpoint
		e := m.Endpoint
		return s.checkEndpointRefs("host endpoint "+m.ID.Name, e.ProfileIDs,
			e.Tiers, e.UntrackedTiers, e.PreDNATTiers, e.ForwardTiers)
	case HostEndpointRemove:
		if _, ok := s.HostEndpoints[m.ID]; !ok {
			return fmt.Errorf("remove of unknown host endpoint %s", m.ID)
		}
		delete(s.HostEndpoints, m.ID)
	case NodeUpdate, NodeRemove, IPPoolUpdate, IPPoolRemove, RouteUpdate, RouteRemove:
		return s.applyNetwork(m)
	case InSync:
		if s.InSync {
			return errors.New("second InSync")
		}
		s.InSync = true
	default:
		return fmt.Errorf("unknown message type %T", m)
	}
	return nil
}

func (s *State) applyIPSetUpdate(m IPSetUpdate) error {
	set := IPSet{Type: m.Type, Members: make(map[Member]struct{}, len(m.Members))}
	var err error
	for _, mem := range m.Members {
		if _, dup := set.Members[mem]; dup {
			err = fmt.Errorf("IP set %s: duplicate member %s", m.ID, mem)
		}
		set.Members[mem] = struct{}{}
	}
	s.IPSets[m.ID] = set
	return err
}

func (s *State) applyIPSetDelta(m IPSetDelta) error {
	set, ok := s.IPSets[m.ID]
	if !ok {
		return fmt.Errorf("delta for unknown IP set %s", m.ID)
	}
	var errs []error
	for _, mem := range m.Removed {
		if _, ok := set.Members[mem]; !ok {
			errs = append(errs, fmt.Errorf("IP set %s: removing absent member %s", m.ID, mem))
		}
		delete(set.Members, mem)
	}
	for _, mem := range m.Added {
		if _, ok := set.Members[mem]; ok {
			errs = append(errs, fmt.Errorf("IP set %s: adding present member %s", m.ID, mem))
		}
		set.Members[mem] = struct{}{}
	}
	return errors.Join(errs...)
}

func (s *State) applyIPSetRemove(m IPSetRemove) error {
	if _, ok := s.IPSets[m.ID]; !ok {
		return fmt.Errorf("remove of unknown IP set %s", m.ID)
	}
	delete(s.IPSets, m.ID)
	for id, p := range s.Policies {
		if rulesName(m.ID, p.InboundRules, p.OutboundRules) {
			return fmt.Errorf("IP set %s removed while policy %s uses it", m.ID, id)
		}
	}
	for id, p := range s.Profiles {
		if rulesName(m.ID, p.InboundRules, p.OutboundRules) {
			return fmt.Errorf("IP set %s removed while profile %s uses it", m.ID, id)
		}
	}
	return nil
}

func rulesName(setID string, lists ...[]Rule) bool {
	for _, rules := range lists {
		for i := range rules {
			if slices.Contains(rules[i].IPSetIDs(), setID) {
				return true
			}
		}
	}
	return false
}

func (s *State) checkRules(owner string, lists ...[]Rule) error {
	for _, rules := range lists {
		for i := range rules {
			for _, id := range rules[i].IPSetIDs() {
				if _, ok := s.IPSets[id]; !ok {
					return fmt.Errorf("%s names unknown IP set %s", owner, id)
				}
			}
		}
	}
	return nil
}

func (s *State) checkEndpointRefs(owner string, profiles []ProfileID, tierLists ...[]TierInfo) error {
	for _, p := range profiles {
		if _, ok := s.Profiles[p]; !ok {
			return fmt.Errorf("%s lists unknown profile %s", owner, p)
		}
	}
	for _, tiers := range tierLists {
		for _, t := range tiers {
			for _, id := range slices.Concat(t.IngressPolicies, t.EgressPolicies) {
				if _, ok := s.Policies[id]; !ok {
					return fmt.Errorf("%s lists unknown policy %s", owner, id)
				}
			}
		}
	}
	return nil
}

func (s *State) applyPolicyRemove(m PolicyRemove) error {
	if _, ok := s.Policies[m.ID]; !ok {
		return fmt.Errorf("remove of unknown policy %s", m.ID)
	}
	delete(s.Policies, m.ID)
	uses := func(tierLists ...[]TierInfo) bool {
		for _, tiers := range tierLists {
			for _, t := range tiers {
				if slices.Contains(t.IngressPolicies, m.ID) || slices.Contains(t.EgressPolicies, m.ID) {
					return true
				}
			}
		}
		return false
	}
	for id, e := range s.WorkloadEndpoints {
		if uses(e.Tiers) {
			return fmt.Errorf("policy %s removed while workload endpoint %s uses it", m.ID, id)
		}
	}
	for id, e := range s.HostEndpoints {
		if uses(e.Tiers, e.UntrackedTiers, e.PreDNATTiers, e.ForwardTiers) {
			return fmt.Errorf("policy %s removed while host endpoint %s uses it", m.ID, id)
		}
	}
	return nil
}

func (s *State) applyProfileRemove(m ProfileRemove) error {
	if _, ok := s.Profiles[m.ID]; !ok {
		return fmt.Errorf("remove of unknown profile %s", m.ID)
	}
	delete(s.Profiles, m.ID)
	for id, e := range s.WorkloadEndpoints {
		if slices.Contains(e.ProfileIDs, m.ID) {
			return fmt.Errorf("profile %s removed while workload endpoint %s uses it", m.ID, id)
		}
	}
	for id, e := range s.HostEndpoints {
		if slices.Contains(e.ProfileIDs, m.ID) {
			return fmt.Errorf("profile %s removed while host endpoint %s uses it", m.ID, id)
		}
	}
	return nil
}

// String renders the state deterministically, one object per line, for
// golden files and test diffs.
func (s *State) String() string {
	var b strings.Builder
	if s.Config != nil {
		fmt.Fprintf(&b, "config %+v\n", *s.Config)
	}
	for _, id := range slices.Sorted(maps.Keys(s.IPSets)) {
		set := s.IPSets[id]
		mems := slices.SortedFunc(maps.Keys(set.Members), CompareMembers)
		fmt.Fprintf(&b, "ipset %s %s %v\n", id, set.Type, mems)
	}
	for _, id := range slices.SortedFunc(maps.Keys(s.Profiles), func(a, b ProfileID) int { return cmp.Compare(a.Name, b.Name) }) {
		fmt.Fprintf(&b, "profile %s %+v\n", id, s.Profiles[id])
	}
	for _, id := range slices.SortedFunc(maps.Keys(s.Policies), ComparePolicyIDs) {
		fmt.Fprintf(&b, "policy %s tier=%s %+v\n", id, id.Tier, s.Policies[id])
	}
	for _, id := range slices.SortedFunc(maps.Keys(s.WorkloadEndpoints), func(a, b WorkloadEndpointID) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	}) {
		fmt.Fprintf(&b, "wep %s %+v\n", id, s.WorkloadEndpoints[id])
	}
	for _, id := range slices.SortedFunc(maps.Keys(s.HostEndpoints), func(a, b HostEndpointID) int { return cmp.Compare(a.Name, b.Name) }) {
		fmt.Fprintf(&b, "hep %s %+v\n", id, s.HostEndpoints[id])
	}
	for _, name := range slices.Sorted(maps.Keys(s.IPPools)) {
		fmt.Fprintf(&b, "ippool %s %s\n", name, s.IPPools[name])
	}
	for _, name := range slices.Sorted(maps.Keys(s.Nodes)) {
		fmt.Fprintf(&b, "node %s %s\n", name, s.Nodes[name])
	}
	for _, dst := range slices.SortedFunc(maps.Keys(s.Routes), netip.Prefix.Compare) {
		fmt.Fprintf(&b, "route %s %s\n", dst, s.Routes[dst])
	}
	fmt.Fprintf(&b, "in-sync %v\n", s.InSync)
	return b.String()
}

// CompareMembers orders members by address, prefix length, protocol, port.
func CompareMembers(a, b Member) int {
	return cmp.Or(a.Prefix.Addr().Compare(b.Prefix.Addr()),
		cmp.Compare(a.Prefix.Bits(), b.Prefix.Bits()),
		cmp.Compare(a.Protocol, b.Protocol), cmp.Compare(a.Port, b.Port))
}

// ComparePolicyIDs orders IDs by tier, namespace, name and kind (a fixed
// order for output, not the evaluation order).
func ComparePolicyIDs(a, b PolicyID) int {
	return cmp.Or(cmp.Compare(a.Tier, b.Tier), cmp.Compare(a.Namespace, b.Namespace),
		cmp.Compare(a.Name, b.Name), cmp.Compare(a.Kind, b.Kind))
}

// Recorder is a Sink for tests: it keeps every batch and applies it to
// State, collecting contract violations.
type Recorder struct {
	Batches [][]Message
	State   *State
	Errs    []error
}

// NewRecorder returns a Recorder with an empty State.
func NewRecorder() *Recorder { return &Recorder{State: NewState()} }

// Sink records and applies one batch; pass it (as a method value) where a
// Sink is wanted.
func (r *Recorder) Sink(batch []Message) {
	r.Batches = append(r.Batches, batch)
	if err := r.State.Apply(batch); err != nil {
		r.Errs = append(r.Errs, fmt.Errorf("batch %d: %w", len(r.Batches)-1, err))
	}
}

// Err returns the contract violations seen so far, joined, or nil.
func (r *Recorder) Err() error { return errors.Join(r.Errs...) }

// Messages returns all recorded messages in order.
func (r *Recorder) Messages() []Message { return slices.Concat(r.Batches...) }
