package desired

import (
	"net/netip"

	v3 "github.com/calico-go/calico/api/v3"
	"github.com/calico-go/calico/internal/bgp"
)

// filters converts the BGPFilters a BGPPeer names into the peer's import and
// export rules for its address family, in the order the filters are listed.
// Rules that use a match this speaker cannot express (interface, source,
// asPathPrefix) are dropped with a warning rather than applied more broadly;
// rules for the other session type (peerType) are left out.
func (c *computer) filters(bp *v3.BGPPeer, p *bgp.Peer) (imp, exp []bgp.FilterRule) {
	ebgp := p.External(c.asn)
	for _, name := range bp.Spec.Filters {
		f := c.filter(name)
		if f == nil {
			c.warn("BGPPeer %s: BGPFilter %q does not exist", bp.Name, name)
			continue
		}
		if p.Address.Is4() {
			imp = append(imp, c.rulesV4(f.Name, f.Spec.ImportV4, ebgp)...)
			exp = append(exp, c.rulesV4(f.Name, f.Spec.ExportV4, ebgp)...)
		} else {
			imp = append(imp, c.rulesV6(f.Name, f.Spec.ImportV6, ebgp)...)
			exp = append(exp, c.rulesV6(f.Name, f.Spec.ExportV6, ebgp)...)
		}
	}
	return imp, exp
}

func (c *computer) filter(name string) *v3.BGPFilter {
	for i := range c.in.Filters {
		if c.in.Filters[i].Name == name {
			return &c.in.Filters[i]
		}
	}
	return nil
}

func (c *computer) rulesV4(filter string, rs []v3.BGPFilterRuleV4, ebgp bool) []bgp.FilterRule {
	var out []bgp.FilterRule
	for _, r := range rs {
		if fr, ok := c.rule(filter, ruleFields(r), ebgp); ok {
			out = append(out, fr)
		}
	}
	return out
}

func (c *computer) rulesV6(filter string, rs []v3.BGPFilterRuleV6, ebgp bool) []bgp.FilterRule {
	var out []bgp.FilterRule
	for _, r := range rs {
		if fr, ok := c.rule(filter, ruleFields(v3.BGPFilterRuleV4(r)), ebgp); ok {
			out = append(out, fr)
		}
	}
	return out
}

// ruleFields is the family-independent view of a rule (the V4 and V6 rule
// types have the same fields).
func ruleFields(r v3.BGPFilterRuleV4) v3.BGPFilterRuleV4 { return r }

func (c *computer) rule(filter string, r v3.BGPFilterRuleV4, ebgp bool) (bgp.FilterRule, bool) {
	switch {
	case r.PeerType == v3.BGPFilterPeerTypeEBGP && !ebgp, r.PeerType == v3.BGPFilterPeerTypeIBGP && ebgp:
		return bgp.FilterRule{}, false
	case r.Interface != "" || r.Source != "" || len(r.ASPathPrefix) > 0:
		c.warn("BGPFilter %s: a rule matching interface, source or asPathPrefix is not supported; rule ignored", filter)
		return bgp.FilterRule{}, false
	}
	fr := bgp.FilterRule{Action: bgp.Reject}
	if r.Action == v3.BGPFilterAccept {
		fr.Action = bgp.Accept
	}
	if r.CIDR != "" {
		p, err := netip.ParsePrefix(r.CIDR)
		if err != nil {
			c.warn("BGPFilter %s: cidr %q: %v; rule ignored", filter, r.CIDR, err)
			return bgp.FilterRule{}, false
		}
		fr.Prefix = p.Masked()
		fr.Op = bgp.MatchOp(r.MatchOperator)
		if fr.Op == bgp.MatchAny {
			fr.Op = bgp.MatchIn
		}
	}
	if r.PrefixLength != nil {
		if r.PrefixLength.Min != nil {
			fr.MinLen = int(*r.PrefixLength.Min)
		}
		if r.PrefixLength.Max != nil {
			fr.MaxLen = int(*r.PrefixLength.Max)
		}
	}
	if r.Communities != nil {
		fr.Communities = append(fr.Communities, r.Communities.Values...)
	}
	for _, op := range r.Operations {
		switch {
		case op.AddCommunity != nil:
			fr.AddCommunities = append(fr.AddCommunities, op.AddCommunity.Value)
		case op.PrependASPath != nil:
			for _, a := range op.PrependASPath.Prefix {
				fr.PrependAS = append(fr.PrependAS, uint32(a))
			}
		case op.SetPriority != nil:
			c.warn("BGPFilter %s: setPriority is not supported; operation ignored", filter)
		}
	}
	if r.Priority != nil {
		c.warn("BGPFilter %s: priority match is not supported; rule ignored", filter)
		return bgp.FilterRule{}, false
	}
	return fr, true
}
