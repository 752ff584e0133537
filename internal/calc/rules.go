package calc

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/netip"
	"reflect"
	"strconv"

	v3 "github.com/calico-go/calico/api/v3"
	"github.com/calico-go/calico/internal/dpapi"
	"github.com/calico-go/calico/internal/selector"
)

// ruleOwner is the policy or profile whose rules are compiled.
type ruleOwner struct {
	id string // "gnp/name", "np/ns/name", "pro/name": feeds the rule IDs
	ns string // the namespace of a NetworkPolicy, else empty
}

// compiledRules are an active policy's or profile's rules with the IP
// sets they reference (one reference each).
type compiledRules struct {
	in, out []dpapi.Rule
	policy  dpapi.Policy // for policies: the message body
	sets    []*ipSet
}

func (c *compiledRules) equal(o *compiledRules) bool {
	a, b := c.policy, o.policy
	a.InboundRules, a.OutboundRules, b.InboundRules, b.OutboundRules = nil, nil, nil, nil
	return reflect.DeepEqual(a, b) && reflect.DeepEqual(c.in, o.in) && reflect.DeepEqual(c.out, o.out)
}

func ruleEqual(a, b v3.Rule) bool { return reflect.DeepEqual(a, b) }

// compileRules resolves rules into dpapi Rules, taking a reference on
// every IP set they name.
func (g *Graph) compileRules(owner ruleOwner, in, out []v3.Rule) *compiledRules {
	rc := &ruleCompiler{g: g, owner: owner, sets: map[string]*ipSet{}}
	c := &compiledRules{}
	for i := range in {
		c.in = append(c.in, rc.rule("in", i, &in[i])...)
	}
	for i := range out {
		c.out = append(c.out, rc.rule("out", i, &out[i])...)
	}
	for _, s := range rc.sets {
		c.sets = append(c.sets, s)
	}
	return c
}

// releaseRules drops the set references of c (nil is fine).
func (g *Graph) releaseRules(c *compiledRules) {
	if c == nil {
		return
	}
	for _, s := range c.sets {
		g.unrefSet(s)
	}
}

type ruleCompiler struct {
	g     *Graph
	owner ruleOwner
	sets  map[string]*ipSet
}

func (rc *ruleCompiler) ref(spec setSpec) string {
	id := spec.id()
	if _, ok := rc.sets[id]; !ok {
		rc.sets[id] = rc.g.refSet(spec)
	}
	return id
}

// side is one compiled EntityRule.
type side struct {
	nets, notNets          []netip.Prefix
	setIDs, notSetIDs      []string
	ports, notPorts        []dpapi.PortRange
	namedSets, notNamedIDs []string
	origSel, origNotSel    string
}

// rule compiles one rule into zero or more dpapi Rules (see dpapi.Rule
// for why one rule may become several). Invalid rules are skipped and
// logged: the datastore validates rules, so this does not happen in
// practice.
func (rc *ruleCompiler) rule(dir string, idx int, r *v3.Rule) []dpapi.Rule {
	out, err := rc.tryRule(dir, idx, r)
	if err != nil {
		rc.g.log.Warn("ignoring an invalid rule", "owner", rc.owner.id, "direction", dir, "index", idx, "error", err)
		return nil
	}
	return out
}

func (rc *ruleCompiler) tryRule(dir string, idx int, r *v3.Rule) ([]dpapi.Rule, error) {
	base := dpapi.Rule{RuleID: ruleID(rc.owner.id, dir, idx, r)}
	switch r.Action {
	case v3.Allow:
		base.Action = dpapi.ActionAllow
	case v3.Deny:
		base.Action = dpapi.ActionDeny
	case v3.Log:
		base.Action = dpapi.ActionLog
	case v3.Pass:
		base.Action = dpapi.ActionPass
	default:
		return nil, fmt.Errorf("unknown action %q", r.Action)
	}
	if r.Source.Services != nil || r.Destination.Services != nil {
		return nil, fmt.Errorf("services matches are not supported")
	}
	if r.IPVersion != nil {
		base.IPVersion = uint8(*r.IPVersion)
	}
	var err error
	if r.Protocol != nil {
		if base.Protocol, err = r.Protocol.NumValue(); err != nil {
			return nil, err
		}
	}
	if r.NotProtocol != nil {
		if base.NotProtocol, err = r.NotProtocol.NumValue(); err != nil {
			return nil, err
		}
	}
	base.ICMP, base.NotICMP = icmpMatch(r.ICMP), icmpMatch(r.NotICMP)
	src, err := rc.side(&r.Source, base.Protocol)
	if err != nil {
		return nil, fmt.Errorf("source: %w", err)
	}
	dst, err := rc.side(&r.Destination, base.Protocol)
	if err != nil {
		return nil, fmt.Errorf("destination: %w", err)
	}
	base.SrcNets, base.NotSrcNets, base.DstNets, base.NotDstNets = src.nets, src.notNets, dst.nets, dst.notNets
	base.SrcIPSetIDs, base.NotSrcIPSetIDs = src.setIDs, src.notSetIDs
	base.DstIPSetIDs, base.NotDstIPSetIDs = dst.setIDs, dst.notSetIDs
	base.NotSrcPorts, base.NotDstPorts = src.notPorts, dst.notPorts
	base.NotSrcNamedPortIPSetIDs, base.NotDstNamedPortIPSetIDs = src.notNamedIDs, dst.notNamedIDs
	base.OrigSrcSelector, base.OrigSrcNotSelector = src.origSel, src.origNotSel
	base.OrigDstSelector, base.OrigDstNotSelector = dst.origSel, dst.origNotSel

	var out []dpapi.Rule
	for _, fr := range splitFamilies(base) {
		for _, sa := range portAlts(src.ports, src.namedSets) {
			for _, da := range portAlts(dst.ports, dst.namedSets) {
				pr := fr
				pr.SrcPorts, pr.SrcNamedPortIPSetID = sa.ports, sa.set
				pr.DstPorts, pr.DstNamedPortIPSetID = da.ports, da.set
				out = append(out, pr)
			}
		}
	}
	return out, nil
}

// side compiles an EntityRule.
func (rc *ruleCompiler) side(er *v3.EntityRule, proto uint8) (side, error) {
	var s side
	var ok bool
	for _, n := range er.Nets {
		p, good := parseNet(n)
		if !good {
			return s, fmt.Errorf("bad net %q", n)
		}
		s.nets = append(s.nets, p)
	}
	for _, n := range er.NotNets {
		p, good := parseNet(n)
		if !good {
			return s, fmt.Errorf("bad net %q", n)
		}
		s.notNets = append(s.notNets, p)
	}
	pos, neg, err := entitySelectors(rc.owner.ns, er)
	if err != nil {
		return s, err
	}
	s.origSel, s.origNotSel = er.Selector, er.NotSelector
	var posSel *selector.Selector
	if pos != "" {
		if posSel, err = selector.Parse(pos); err != nil {
			return s, fmt.Errorf("compiled selector %q: %w", pos, err)
		}
		s.setIDs = []string{rc.ref(setSpec{sel: posSel})}
	}
	if neg != "" {
		s.notSetIDs = []string{rc.ref(setSpec{sel: selector.MustParse(neg)})}
	}
	if posSel == nil {
		posSel = selector.MustParse("all()")
	}
	namedProto := uint8(0)
	if proto == dpapi.ProtoTCP || proto == dpapi.ProtoUDP || proto == dpapi.ProtoSCTP {
		namedProto = proto
	}
	if s.ports, s.namedSets, ok = rc.ports(er.Ports, posSel, namedProto); !ok {
		return s, fmt.Errorf("bad port in %v", er.Ports)
	}
	if s.notPorts, s.notNamedIDs, ok = rc.ports(er.NotPorts, posSel, namedProto); !ok {
		return s, fmt.Errorf("bad port in %v", er.NotPorts)
	}
	return s, nil
}

// ports splits a port list into numeric ranges and named-port sets.
func (rc *ruleCompiler) ports(ports []v3.Port, sel *selector.Selector, proto uint8) ([]dpapi.PortRange, []string, bool) {
	var ranges []dpapi.PortRange
	var sets []string
	for _, p := range ports {
		if p.Invalid() != "" {
			return nil, nil, false
		}
		if p.PortName != "" {
			sets = append(sets, rc.ref(setSpec{sel: sel, named: true, port: p.PortName, proto: proto}))
			continue
		}
		ranges = append(ranges, dpapi.PortRange{First: p.MinPort, Last: p.MaxPort})
	}
	return ranges, sets, true
}

func icmpMatch(f *v3.ICMPFields) *dpapi.ICMPMatch {
	if f == nil || f.Type == nil {
		return nil
	}
	m := &dpapi.ICMPMatch{Type: uint8(*f.Type)}
	if f.Code != nil {
		m.Code, m.HasCode = uint8(*f.Code), true
	}
	return m
}

func protoNum(p v3.Protocol) uint8 {
	n, _ := p.NumValue()
	return n
}

// ruleID is a stable hash of the rule, its owner and its position.
func ruleID(owner, dir string, idx int, r *v3.Rule) string {
	b, _ := json.Marshal(r)
	h := sha256.New224()
	h.Write([]byte(owner + "|" + dir + "|" + strconv.Itoa(idx) + "|"))
	h.Write(b)
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil))[:16]
}

// splitFamilies gives a rule an IP version when its nets or protocol
// imply one, and splits a rule without one but with nets into an IPv4 and
// an IPv6 rule, each with the nets of its family. A family in which a
// positive net list would become empty is dropped (the rule cannot match
// there); a negative list may become empty.
func splitFamilies(r dpapi.Rule) []dpapi.Rule {
	fam := r.IPVersion
	if fam == 0 {
		switch r.Protocol {
		case dpapi.ProtoICMP:
			fam = 4
		case dpapi.ProtoICMPv6:
			fam = 6
		}
	}
	if len(r.SrcNets)+len(r.DstNets)+len(r.NotSrcNets)+len(r.NotDstNets) == 0 {
		r.IPVersion = fam
		return []dpapi.Rule{r}
	}
	fams := []uint8{4, 6}
	if fam != 0 {
		fams = []uint8{fam}
	}
	var out []dpapi.Rule
	for _, f := range fams {
		fr := r
		fr.IPVersion = f
		fr.SrcNets, fr.DstNets = ofFamily(r.SrcNets, f), ofFamily(r.DstNets, f)
		if (len(r.SrcNets) > 0 && len(fr.SrcNets) == 0) || (len(r.DstNets) > 0 && len(fr.DstNets) == 0) {
			continue
		}
		fr.NotSrcNets, fr.NotDstNets = ofFamily(r.NotSrcNets, f), ofFamily(r.NotDstNets, f)
		out = append(out, fr)
	}
	return out
}

func ofFamily(nets []netip.Prefix, fam uint8) []netip.Prefix {
	var out []netip.Prefix
	for _, n := range nets {
		if (fam == 4) == n.Addr().Is4() {
			out = append(out, n)
		}
	}
	return out
}

type portAlt struct {
	ports []dpapi.PortRange
	set   string
}

// portAlts lists the alternatives of a port match: the numeric ranges
// (if any) and each named-port set, or just the ranges.
func portAlts(ranges []dpapi.PortRange, sets []string) []portAlt {
	if len(sets) == 0 {
		return []portAlt{{ports: ranges}}
	}
	var out []portAlt
	if len(ranges) > 0 {
		out = append(out, portAlt{ports: ranges})
	}
	for _, s := range sets {
		out = append(out, portAlt{set: s})
	}
	return out
}
