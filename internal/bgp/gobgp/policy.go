package gobgp

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	api "github.com/osrg/gobgp/v3/api"

	"github.com/calico-go/calico/internal/bgp"
)

// Names of the two global policies the speaker owns.
const (
	importPolicy = "calico-import"
	exportPolicy = "calico-export"
	globalRIB    = "global"
)

// applyPolicy rebuilds the import and export policies from filterPeers, our
// routes (plus extra prefixes about to be originated) and the exportable
// set. When they changed it installs them and asks every established session
// to re-evaluate (soft reset in and out). On the first call it also assigns
// the two policies to the global RIB.
func (s *Speaker) applyPolicy(ctx context.Context, extra []netip.Prefix) error {
	own := make([]netip.Prefix, 0, len(s.routes)+len(extra))
	for p := range s.routes {
		own = append(own, p)
	}
	own = append(own, extra...)
	req, key := buildPolicy(s.filterPeers, own, s.exportable)
	if key == s.policyKey {
		return nil
	}
	if err := s.srv.SetPolicies(ctx, req); err != nil {
		return fmt.Errorf("set BGP policies: %w", err)
	}
	if s.policyKey == "" {
		for _, as := range []*api.PolicyAssignment{
			{Name: globalRIB, Direction: api.PolicyDirection_IMPORT, Policies: []*api.Policy{{Name: importPolicy}}, DefaultAction: api.RouteAction_ACCEPT},
			{Name: globalRIB, Direction: api.PolicyDirection_EXPORT, Policies: []*api.Policy{{Name: exportPolicy}}, DefaultAction: api.RouteAction_REJECT},
		} {
			if err := s.srv.SetPolicyAssignment(ctx, &api.SetPolicyAssignmentRequest{Assignment: as}); err != nil {
				return fmt.Errorf("assign BGP policy %s: %w", as.Policies[0].Name, err)
			}
		}
	} else if len(s.peers) > 0 {
		if err := s.srv.ResetPeer(ctx, &api.ResetPeerRequest{Address: "all", Soft: true, Direction: api.ResetPeerRequest_BOTH}); err != nil {
			return fmt.Errorf("re-evaluate BGP policies: %w", err)
		}
	}
	s.policyKey = key
	return nil
}

// buildPolicy turns filters into GoBGP defined sets and two policies. The
// key is a canonical text of the inputs: equal keys give equal policies.
func buildPolicy(peers []bgp.Peer, own, exportable []netip.Prefix) (*api.SetPoliciesRequest, string) {
	b := &policyBuilder{}
	peers = slices.Clone(peers)
	slices.SortFunc(peers, func(a, b bgp.Peer) int { return a.Address.Compare(b.Address) })

	var exp, imp []*api.Statement
	for _, p := range peers {
		var nh *api.NexthopAction
		switch p.NextHop {
		case bgp.NextHopSelf:
			nh = &api.NexthopAction{Self: true}
		case bgp.NextHopKeep:
			nh = &api.NexthopAction{Unchanged: true}
		}
		if nh != nil {
			exp = append(exp, &api.Statement{
				Name:       b.name("nh"),
				Conditions: &api.Conditions{NeighborSet: b.neighbor(p.Address)},
				Actions:    &api.Actions{RouteAction: api.RouteAction_NONE, Nexthop: nh},
			})
		}
	}
	for _, p := range peers {
		exp = append(exp, b.rules(p.Address, p.Export)...)
		imp = append(imp, b.rules(p.Address, p.Export[:0:0])...)
		imp = append(imp, b.rules(p.Address, p.Import)...)
	}
	allowed := append(slices.Clone(own), exportable...)
	for _, v6 := range []bool{false, true} {
		var ps []*api.Prefix
		seen := map[netip.Prefix]bool{}
		for _, a := range allowed {
			a = a.Masked()
			if a.Addr().Is6() != v6 || seen[a] {
				continue
			}
			seen[a] = true
			ps = append(ps, &api.Prefix{IpPrefix: a.String(), MaskLengthMin: uint32(a.Bits()), MaskLengthMax: uint32(a.Addr().BitLen())})
		}
		if len(ps) == 0 {
			continue
		}
		slices.SortFunc(ps, func(x, y *api.Prefix) int { return strings.Compare(x.IpPrefix, y.IpPrefix) })
		name := b.name("exportable")
		b.sets = append(b.sets, &api.DefinedSet{DefinedType: api.DefinedType_PREFIX, Name: name, Prefixes: ps})
		exp = append(exp, &api.Statement{
			Name:       b.name("export"),
			Conditions: &api.Conditions{PrefixSet: &api.MatchSet{Type: api.MatchSet_ANY, Name: name}},
			Actions:    &api.Actions{RouteAction: api.RouteAction_ACCEPT},
		})
	}
	req := &api.SetPoliciesRequest{
		DefinedSets: b.sets,
		Policies: []*api.Policy{
			{Name: importPolicy, Statements: imp},
			{Name: exportPolicy, Statements: exp},
		},
	}
	return req, fmt.Sprint(req.DefinedSets, req.Policies)
}

type policyBuilder struct {
	sets      []*api.DefinedSet
	n         int
	neighbors map[netip.Addr]string
}

func (b *policyBuilder) name(kind string) string {
	b.n++
	return fmt.Sprintf("%s-%d", kind, b.n)
}

func (b *policyBuilder) neighbor(a netip.Addr) *api.MatchSet {
	if b.neighbors == nil {
		b.neighbors = map[netip.Addr]string{}
	}
	name, ok := b.neighbors[a]
	if !ok {
		name = b.name("peer")
		b.neighbors[a] = name
		b.sets = append(b.sets, &api.DefinedSet{DefinedType: api.DefinedType_NEIGHBOR, Name: name,
			List: []string{netip.PrefixFrom(a, a.BitLen()).String()}})
	}
	return &api.MatchSet{Type: api.MatchSet_ANY, Name: name}
}

// rules turns a peer's ordered filter rules into statements. A rule with
// several AS numbers to prepend becomes one modifying statement per number
// (GoBGP prepends one AS at a time) followed by the deciding one.
func (b *policyBuilder) rules(peer netip.Addr, rules []bgp.FilterRule) []*api.Statement {
	var out []*api.Statement
	for _, r := range rules {
		cond := &api.Conditions{NeighborSet: b.neighbor(peer)}
		fam := familyV4
		if r.Prefix.IsValid() && r.Prefix.Addr().Is6() {
			fam = familyV6
		}
		cond.AfiSafiIn = []*api.Family{fam}
		if ps := b.prefixSet(r); ps != nil {
			cond.PrefixSet = ps
		}
		if len(r.Communities) > 0 {
			std, large := splitCommunities(r.Communities)
			if len(std) > 0 {
				name := b.name("comm")
				b.sets = append(b.sets, &api.DefinedSet{DefinedType: api.DefinedType_COMMUNITY, Name: name, List: anchored(std)})
				cond.CommunitySet = &api.MatchSet{Type: api.MatchSet_ANY, Name: name}
			}
			if len(large) > 0 {
				name := b.name("lcomm")
				b.sets = append(b.sets, &api.DefinedSet{DefinedType: api.DefinedType_LARGE_COMMUNITY, Name: name, List: anchored(large)})
				cond.LargeCommunitySet = &api.MatchSet{Type: api.MatchSet_ANY, Name: name}
			}
		}
		action := api.RouteAction_REJECT
		if r.Action == bgp.Accept {
			action = api.RouteAction_ACCEPT
			for i := len(r.PrependAS) - 1; i >= 0; i-- {
				out = append(out, &api.Statement{Name: b.name("prepend"), Conditions: cond,
					Actions: &api.Actions{RouteAction: api.RouteAction_NONE, AsPrepend: &api.AsPrependAction{Asn: r.PrependAS[i], Repeat: 1}}})
			}
		}
		acts := &api.Actions{RouteAction: action}
		if r.Action == bgp.Accept && len(r.AddCommunities) > 0 {
			std, large := splitCommunities(r.AddCommunities)
			if len(std) > 0 {
				acts.Community = &api.CommunityAction{Type: api.CommunityAction_ADD, Communities: std}
			}
			if len(large) > 0 {
				acts.LargeCommunity = &api.CommunityAction{Type: api.CommunityAction_ADD, Communities: large}
			}
		}
		out = append(out, &api.Statement{Name: b.name("rule"), Conditions: cond, Actions: acts})
	}
	return out
}

// prefixSet builds the prefix condition of a rule: Equal matches the CIDR
// exactly, In the CIDR and its subnets (within MinLen..MaxLen); NotEqual and
// NotIn invert them. A rule without a CIDR but with length bounds matches
// any prefix of those lengths.
func (b *policyBuilder) prefixSet(r bgp.FilterRule) *api.MatchSet {
	pfx := r.Prefix
	if !pfx.IsValid() {
		if r.MinLen == 0 && r.MaxLen == 0 {
			return nil
		}
		pfx = netip.PrefixFrom(netip.IPv4Unspecified(), 0)
	}
	pfx = pfx.Masked()
	lo, hi := pfx.Bits(), pfx.Addr().BitLen()
	if r.Op == bgp.MatchEqual || r.Op == bgp.MatchNotEqual {
		hi = lo
	}
	if r.MinLen > lo {
		lo = r.MinLen
	}
	if r.MaxLen > 0 && r.MaxLen < hi {
		hi = r.MaxLen
	}
	name := b.name("pfx")
	b.sets = append(b.sets, &api.DefinedSet{DefinedType: api.DefinedType_PREFIX, Name: name,
		Prefixes: []*api.Prefix{{IpPrefix: pfx.String(), MaskLengthMin: uint32(lo), MaskLengthMax: uint32(hi)}}})
	t := api.MatchSet_ANY
	if r.Op == bgp.MatchNotEqual || r.Op == bgp.MatchNotIn {
		t = api.MatchSet_INVERT
	}
	return &api.MatchSet{Type: t, Name: name}
}

func splitCommunities(cs []string) (std, large []string) {
	for _, c := range cs {
		if strings.Count(c, ":") == 2 {
			large = append(large, c)
		} else {
			std = append(std, c)
		}
	}
	return std, large
}

func anchored(cs []string) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = "^" + c + "$"
	}
	return out
}
