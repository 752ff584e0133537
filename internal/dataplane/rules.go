package dataplane

import (
	"cmp"
	"net/netip"
	"slices"
	"strings"

	"github.com/calico-go/calico/internal/dpapi"
	"github.com/calico-go/calico/internal/kernel/nft"
)

// marks are the packet mark bits the chains use to talk to each other.
type marks struct {
	accept, pass uint32
}

// marksFor takes the accept and pass bits from the mark mask, lowest
// first (SPEC §8): 0x10000 and 0x20000 with the default mask.
func marksFor(mask uint32) marks {
	if mask == 0 {
		mask = 0xffff0000
	}
	var bits []uint32
	for b := uint32(1); b != 0 && len(bits) < 2; b <<= 1 {
		if mask&b != 0 {
			bits = append(bits, b)
		}
	}
	for len(bits) < 2 {
		bits = append(bits, 0)
	}
	return marks{accept: bits[0], pass: bits[1]}
}

func (m marks) both() uint32 { return m.accept | m.pass }

// ruleCtx is what compiling a policy's rules needs besides the rules.
type ruleCtx struct {
	marks
	// deny is Drop, or Reject in filter-hook chains when configured.
	deny nft.Stmt
	// logPrefix is the expanded Log prefix.
	logPrefix string
	// v6: IPv6 is programmed; otherwise rules are written for IPv4 only.
	v6 bool
}

func (rc ruleCtx) action(a dpapi.Action) []nft.Stmt {
	switch a {
	case dpapi.ActionAllow:
		return []nft.Stmt{nft.SetMark(rc.accept, rc.accept), nft.Return()}
	case dpapi.ActionPass:
		return []nft.Stmt{nft.SetMark(rc.pass, rc.pass), nft.Return()}
	case dpapi.ActionLog:
		p := rc.logPrefix
		if !strings.HasSuffix(p, " ") {
			p += " "
		}
		return []nft.Stmt{nft.Log(p)}
	default:
		return []nft.Stmt{rc.deny}
	}
}

// compileRules turns resolved rules into nftables rules.
func compileRules(rules []dpapi.Rule, rc ruleCtx) []nft.Rule {
	var out []nft.Rule
	for i := range rules {
		out = append(out, compileRule(&rules[i], rc)...)
	}
	return out
}

func familyOf(p netip.Prefix) nft.Family {
	if p.Addr().Is4() {
		return nft.IPv4
	}
	return nft.IPv6
}

func netsOf(ps []netip.Prefix, f nft.Family) []netip.Prefix {
	var out []netip.Prefix
	for _, p := range ps {
		if familyOf(p) == f {
			out = append(out, p)
		}
	}
	return out
}

// ruleFamilies returns the families a rule must be written for, or
// agnostic when one rule without a family guard covers both.
func ruleFamilies(r *dpapi.Rule) (fams []nft.Family, agnostic bool) {
	switch {
	case r.IPVersion == 4 || r.Protocol == dpapi.ProtoICMP:
		fams = []nft.Family{nft.IPv4}
	case r.IPVersion == 6 || r.Protocol == dpapi.ProtoICMPv6:
		fams = []nft.Family{nft.IPv6}
	case !familySpecific(r):
		return nil, true
	default:
		fams = []nft.Family{nft.IPv4, nft.IPv6}
	}
	var out []nft.Family
	for _, f := range fams {
		// "In one of these nets" cannot hold in a family without one.
		if len(r.SrcNets) > 0 && len(netsOf(r.SrcNets, f)) == 0 {
			continue
		}
		if len(r.DstNets) > 0 && len(netsOf(r.DstNets, f)) == 0 {
			continue
		}
		out = append(out, f)
	}
	return out, false
}

func familySpecific(r *dpapi.Rule) bool {
	return len(r.SrcNets)+len(r.NotSrcNets)+len(r.DstNets)+len(r.NotDstNets)+
		len(r.SrcIPSetIDs)+len(r.NotSrcIPSetIDs)+len(r.DstIPSetIDs)+len(r.NotDstIPSetIDs)+
		len(r.NotSrcNamedPortIPSetIDs)+len(r.NotDstNamedPortIPSetIDs) > 0 ||
		r.SrcNamedPortIPSetID != "" || r.DstNamedPortIPSetID != "" || r.ICMP != nil || r.NotICMP != nil
}

// maxSplit bounds how many kernel rules one rule may become. A rule with
// several nets or port ranges (ORed) is written as one kernel rule per
// combination, because anonymous sets cost the kernel several times more
// to create than rules; the values are first made disjoint, so a packet
// matches at most one combination and a Log rule logs it once. Past the
// bound, one rule with anonymous sets is written instead.
const maxSplit = 16

func compileRule(r *dpapi.Rule, rc ruleCtx) []nft.Rule {
	fams, agnostic := ruleFamilies(r)
	if agnostic {
		fams = []nft.Family{0}
	} else if !rc.v6 {
		fams = slices.DeleteFunc(fams, func(f nft.Family) bool { return f == nft.IPv6 })
	}
	var out []nft.Rule
	for _, f := range fams {
		var srcNets, dstNets [][]netip.Prefix
		if f != 0 {
			srcNets, dstNets = alternatives(disjoint(netsOf(r.SrcNets, f))), alternatives(disjoint(netsOf(r.DstNets, f)))
		} else {
			srcNets, dstNets = [][]netip.Prefix{nil}, [][]netip.Prefix{nil}
		}
		srcPorts, dstPorts := alternatives(mergePorts(r.SrcPorts)), alternatives(mergePorts(r.DstPorts))
		if len(srcNets)*len(dstNets)*len(srcPorts)*len(dstPorts) > maxSplit {
			srcNets = [][]netip.Prefix{disjoint(netsOf(r.SrcNets, f))}
			dstNets = [][]netip.Prefix{disjoint(netsOf(r.DstNets, f))}
			srcPorts = [][]dpapi.PortRange{mergePorts(r.SrcPorts)}
			dstPorts = [][]dpapi.PortRange{mergePorts(r.DstPorts)}
		}
		for _, sn := range srcNets {
			for _, dn := range dstNets {
				for _, sp := range srcPorts {
					for _, dp := range dstPorts {
						out = append(out, nft.Rule{Stmts: ruleStmts(r, rc, f, sn, dn, sp, dp), Comment: r.RuleID})
					}
				}
			}
		}
	}
	return out
}

// alternatives splits an ORed list into one-element lists ([nil] when
// empty: no constraint).
func alternatives[T any](xs []T) [][]T {
	if len(xs) == 0 {
		return [][]T{nil}
	}
	out := make([][]T, len(xs))
	for i := range xs {
		out[i] = xs[i : i+1]
	}
	return out
}

// disjoint drops the prefixes covered by another one (CIDRs are either
// nested or disjoint), sorted.
func disjoint(ps []netip.Prefix) []netip.Prefix {
	in := make([]netip.Prefix, len(ps))
	for i, p := range ps {
		in[i] = p.Masked()
	}
	slices.SortFunc(in, func(a, b netip.Prefix) int {
		return cmp.Or(cmp.Compare(a.Bits(), b.Bits()), a.Addr().Compare(b.Addr()))
	})
	var out []netip.Prefix
	for _, p := range in {
		if !slices.ContainsFunc(out, func(q netip.Prefix) bool { return q.Contains(p.Addr()) }) {
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
	return out
}

// mergePorts sorts port ranges and merges overlapping and adjacent ones.
func mergePorts(rs []dpapi.PortRange) []dpapi.PortRange {
	in := slices.Clone(rs)
	slices.SortFunc(in, func(a, b dpapi.PortRange) int { return cmp.Compare(a.First, b.First) })
	var out []dpapi.PortRange
	for _, r := range in {
		if n := len(out); n > 0 && int(r.First) <= int(out[n-1].Last)+1 {
			out[n-1].Last = max(out[n-1].Last, r.Last)
			continue
		}
		out = append(out, r)
	}
	return out
}

// ruleStmts builds one kernel rule of r for family f (0: both) with the
// given positive nets and ports.
func ruleStmts(r *dpapi.Rule, rc ruleCtx, f nft.Family, srcNets, dstNets []netip.Prefix, srcPorts, dstPorts []dpapi.PortRange) []nft.Stmt {
	var s []nft.Stmt
	if f != 0 {
		s = append(s, nft.NFProto(f))
	}
	if r.Protocol != 0 {
		s = append(s, nft.L4Proto(r.Protocol))
	}
	if r.NotProtocol != 0 {
		s = append(s, nft.L4Proto(r.NotProtocol).Not())
	}
	s = appendPorts(s, nft.Src, srcPorts, mergePorts(r.NotSrcPorts))
	s = appendPorts(s, nft.Dst, dstPorts, mergePorts(r.NotDstPorts))
	if r.ICMP != nil {
		s = append(s, icmpMatch(f, r.ICMP))
	}
	if r.NotICMP != nil {
		s = append(s, icmpMatch(f, r.NotICMP).Not())
	}
	if f != 0 {
		s = appendAddrs(s, f, nft.Src, srcNets, disjoint(netsOf(r.NotSrcNets, f)), r.SrcIPSetIDs, r.NotSrcIPSetIDs)
		s = appendAddrs(s, f, nft.Dst, dstNets, disjoint(netsOf(r.NotDstNets, f)), r.DstIPSetIDs, r.NotDstIPSetIDs)
		s = appendNamedPorts(s, f, nft.Src, r.SrcNamedPortIPSetID, r.NotSrcNamedPortIPSetIDs)
		s = appendNamedPorts(s, f, nft.Dst, r.DstNamedPortIPSetID, r.NotDstNamedPortIPSetIDs)
	}
	return append(s, rc.action(r.Action)...)
}

func appendPorts(s []nft.Stmt, d nft.Dir, ports, notPorts []dpapi.PortRange) []nft.Stmt {
	if len(ports) > 0 {
		s = append(s, nft.Ports(d, portRanges(ports)...))
	}
	if len(notPorts) > 0 {
		s = append(s, nft.Ports(d, portRanges(notPorts)...).Not())
	}
	return s
}

func portRanges(ps []dpapi.PortRange) []nft.PortRange {
	out := make([]nft.PortRange, len(ps))
	for i, p := range ps {
		out[i] = nft.PortRange{First: p.First, Last: p.Last}
	}
	return out
}

func icmpMatch(f nft.Family, m *dpapi.ICMPMatch) nft.Matcher {
	if m.HasCode {
		return nft.ICMPTypeCode(f, m.Type, m.Code)
	}
	return nft.ICMPType(f, m.Type)
}

func appendAddrs(s []nft.Stmt, f nft.Family, d nft.Dir, nets, notNets []netip.Prefix, sets, notSets []string) []nft.Stmt {
	if len(nets) > 0 {
		s = append(s, nft.Addr(f, d, nets...))
	}
	if len(notNets) > 0 {
		s = append(s, nft.Addr(f, d, notNets...).Not())
	}
	for _, id := range sets {
		s = append(s, nft.AddrInSet(f, d, ipSetName(id, f)))
	}
	for _, id := range notSets {
		s = append(s, nft.AddrInSet(f, d, ipSetName(id, f)).Not())
	}
	return s
}

func appendNamedPorts(s []nft.Stmt, f nft.Family, d nft.Dir, id string, notIDs []string) []nft.Stmt {
	if id != "" {
		s = append(s, nft.AddrProtoPortInSet(f, d, d, ipSetName(id, f)))
	}
	for _, n := range notIDs {
		s = append(s, nft.AddrProtoPortInSet(f, d, d, ipSetName(n, f)).Not())
	}
	return s
}
