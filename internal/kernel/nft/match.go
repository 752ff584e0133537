package nft

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
)

// Dir says which side of a packet a match looks at.
type Dir uint8

// Packet sides.
const (
	Src Dir = iota + 1
	Dst
)

func (d Dir) addr() string {
	if d == Src {
		return "saddr"
	}
	return "daddr"
}

func (d Dir) port() string {
	if d == Src {
		return "sport"
	}
	return "dport"
}

func neqText(neg bool) string {
	if neg {
		return "!= "
	}
	return ""
}

func cmpOp(neg bool) expr.CmpOp {
	if neg {
		return expr.CmpOpNeq
	}
	return expr.CmpOpEq
}

// --- interface names ---

type ifName struct {
	out  bool
	name string
	neg  bool
}

// IIfName matches the input interface; a name ending in "*" matches the
// prefix before it.
func IIfName(name string) Matcher { return ifName{name: name} }

// OIfName matches the output interface, like IIfName.
func OIfName(name string) Matcher { return ifName{out: true, name: name} }

func (m ifName) Not() Matcher { m.neg = !m.neg; return m }

func (m ifName) key() (expr.MetaKey, string) {
	if m.out {
		return expr.MetaKeyOIFNAME, "oifname"
	}
	return expr.MetaKeyIIFNAME, "iifname"
}

func (m ifName) text() string {
	_, kw := m.key()
	return fmt.Sprintf("%s %s%q", kw, neqText(m.neg), m.name)
}

func (m ifName) build(b *builder) {
	key, _ := m.key()
	data := []byte(m.name + "\x00")
	if p, ok := strings.CutSuffix(m.name, "*"); ok {
		data = []byte(p)
	}
	if len(data) == 0 || len(data) > 16 {
		b.fail(fmt.Errorf("interface name %q", m.name))
		return
	}
	b.add(&expr.Meta{Key: key, Register: reg1}, &expr.Cmp{Op: cmpOp(m.neg), Register: reg1, Data: data})
}

// --- protocol family ---

type nfproto struct{ f Family }

// NFProto matches packets of one IP family.
func NFProto(f Family) Stmt { return nfproto{f} }

func (m nfproto) text() string {
	if m.f == IPv6 {
		return "meta nfproto ipv6"
	}
	return "meta nfproto ipv4"
}

func (m nfproto) build(b *builder) { b.family(m.f) }

// --- addresses ---

func addrOffset(f Family, d Dir) (off, n uint32) {
	switch {
	case f == IPv4 && d == Src:
		return 12, 4
	case f == IPv4:
		return 16, 4
	case d == Src:
		return 8, 16
	default:
		return 24, 16
	}
}

func loadAddr(b *builder, f Family, d Dir, reg uint32) {
	b.family(f)
	off, n := addrOffset(f, d)
	b.add(&expr.Payload{DestRegister: reg, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: n})
}

type addrMatch struct {
	f   Family
	d   Dir
	ps  []netip.Prefix
	neg bool
}

// maxInline is how many negated values a match compares one by one
// before it uses an anonymous set instead.
const maxInline = 8

// Addr matches the source or destination address against CIDRs (ORed):
// one CIDR is compared inline, several go into an anonymous set; negated,
// up to maxInline CIDRs are compared inline (ANDed "not equal"). Anonymous
// sets cost the kernel far more to create than rules: a caller with
// several CIDRs may prefer one rule per CIDR.
func Addr(f Family, d Dir, prefixes ...netip.Prefix) Matcher {
	return addrMatch{f: f, d: d, ps: prefixes}
}

func (m addrMatch) Not() Matcher { m.neg = !m.neg; return m }

func (m addrMatch) text() string {
	s := fmt.Sprintf("%s %s %s", m.f, m.d.addr(), neqText(m.neg))
	if len(m.ps) == 1 {
		return s + prefixText(m.ps[0])
	}
	parts := make([]string, len(m.ps))
	for i, p := range m.ps {
		parts[i] = prefixText(p)
	}
	return s + "{ " + strings.Join(parts, ", ") + " }"
}

func prefixText(p netip.Prefix) string {
	if p.IsSingleIP() {
		return p.Addr().String()
	}
	return p.Masked().String()
}

func (m addrMatch) build(b *builder) {
	for _, p := range m.ps {
		if !p.IsValid() || (m.f == IPv6) != (p.Addr().Is6() && !p.Addr().Is4In6()) {
			b.fail(fmt.Errorf("address %s in an %s match", p, m.f))
			return
		}
	}
	if len(m.ps) == 0 {
		b.fail(fmt.Errorf("%s %s match without addresses", m.f, m.d.addr()))
		return
	}
	loadAddr(b, m.f, m.d, reg1)
	if len(m.ps) == 1 || (m.neg && len(m.ps) <= maxInline) {
		// One CIDR, or a few negated ones ANDed: compare inline (the
		// kernel builds anonymous sets slowly). Masking goes to a
		// second register so the address stays loaded.
		_, n := addrOffset(m.f, m.d)
		for _, p := range m.ps {
			p = p.Masked()
			reg := uint32(reg1)
			if p.Bits() != int(n)*8 {
				mask := make([]byte, n)
				for i := 0; i < p.Bits(); i++ {
					mask[i/8] |= 0x80 >> (i % 8)
				}
				reg = reg2
				b.add(&expr.Bitwise{SourceRegister: reg1, DestRegister: reg, Len: n, Mask: mask, Xor: make([]byte, n)})
			}
			b.add(&expr.Cmp{Op: cmpOp(m.neg), Register: reg, Data: p.Addr().AsSlice()})
		}
		return
	}
	rs := make([]addrRange, len(m.ps))
	for i, p := range m.ps {
		rs[i] = prefixRange(p)
	}
	var ranges [][2][]byte
	for _, r := range mergeRanges(rs) {
		ranges = append(ranges, [2][]byte{r.lo.AsSlice(), r.hi.AsSlice()})
	}
	kt := nftables.TypeIPAddr
	if m.f == IPv6 {
		kt = nftables.TypeIP6Addr
	}
	s := b.anonymous(kt, ranges)
	b.add(&expr.Lookup{SourceRegister: reg1, SetName: s.Name, SetID: s.ID, Invert: m.neg})
}

type setMatch struct {
	f     Family
	d     Dir
	pd    Dir // port side for concatenated sets; 0 for address sets
	set   string
	neg   bool
	ports bool
}

// AddrInSet matches the source or destination address against a named
// address set (SetIPv4 or SetIPv6).
func AddrInSet(f Family, d Dir, set string) Matcher { return setMatch{f: f, d: d, set: set} }

// AddrProtoPortInSet matches (address of side d, IP protocol, port of side
// pd) against a named concatenated set (SetIPv4Port, SetIPv4PortRanges and
// their IPv6 twins). Packets without ports match only elements whose port
// range covers whatever the transport header holds there.
func AddrProtoPortInSet(f Family, d, pd Dir, set string) Matcher {
	return setMatch{f: f, d: d, pd: pd, set: set, ports: true}
}

func (m setMatch) Not() Matcher { m.neg = !m.neg; return m }

func (m setMatch) text() string {
	if m.ports {
		return fmt.Sprintf("%s %s . meta l4proto . th %s %s@%s", m.f, m.d.addr(), m.pd.port(), neqText(m.neg), m.set)
	}
	return fmt.Sprintf("%s %s %s@%s", m.f, m.d.addr(), neqText(m.neg), m.set)
}

func (m setMatch) build(b *builder) {
	if !m.ports {
		loadAddr(b, m.f, m.d, reg1)
		b.add(&expr.Lookup{SourceRegister: reg1, SetName: m.set, Invert: m.neg})
		return
	}
	// Concatenations use 32-bit registers: the address, then the protocol
	// and the port, each padded to 4 bytes (the kernel zeroes the padding).
	loadAddr(b, m.f, m.d, reg32x00)
	_, n := addrOffset(m.f, m.d)
	pr := reg32x00 + n/4
	b.add(&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: pr},
		&expr.Payload{DestRegister: pr + 1, Base: expr.PayloadBaseTransportHeader, Offset: portOffset(m.pd), Len: 2},
		&expr.Lookup{SourceRegister: reg32x00, SetName: m.set, Invert: m.neg})
}

func portOffset(d Dir) uint32 {
	if d == Src {
		return 0
	}
	return 2
}

// --- protocol and ports ---

type l4proto struct {
	p   uint8
	neg bool
}

// L4Proto matches the transport protocol (meta l4proto).
func L4Proto(p uint8) Matcher { return l4proto{p: p} }

func (m l4proto) Not() Matcher { m.neg = !m.neg; return m }

func (m l4proto) text() string { return "meta l4proto " + neqText(m.neg) + ProtoName(m.p) }

func (m l4proto) build(b *builder) {
	b.add(&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg1}, &expr.Cmp{Op: cmpOp(m.neg), Register: reg1, Data: []byte{m.p}})
}

type portMatch struct {
	d   Dir
	rs  []PortRange
	neg bool
}

// Ports matches the source or destination port against ranges (ORed).
// The rule must first match a protocol that has ports.
func Ports(d Dir, ranges ...PortRange) Matcher { return portMatch{d: d, rs: ranges} }

func (m portMatch) Not() Matcher { m.neg = !m.neg; return m }

func (m portMatch) text() string {
	s := "th " + m.d.port() + " " + neqText(m.neg)
	if len(m.rs) == 1 {
		return s + m.rs[0].String()
	}
	parts := make([]string, len(m.rs))
	for i, r := range m.rs {
		parts[i] = r.String()
	}
	return s + "{ " + strings.Join(parts, ", ") + " }"
}

func (m portMatch) build(b *builder) {
	if len(m.rs) == 0 {
		b.fail(fmt.Errorf("port match without ports"))
		return
	}
	b.add(&expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseTransportHeader, Offset: portOffset(m.d), Len: 2})
	be := func(p uint16) []byte { return binary.BigEndian.AppendUint16(nil, p) }
	if len(m.rs) == 1 || (m.neg && len(m.rs) <= maxInline) {
		for _, r := range m.rs {
			if r.First == r.Last {
				b.add(&expr.Cmp{Op: cmpOp(m.neg), Register: reg1, Data: be(r.First)})
			} else {
				b.add(&expr.Range{Op: cmpOp(m.neg), Register: reg1, FromData: be(r.First), ToData: be(r.Last)})
			}
		}
		return
	}
	merged := mergePorts(m.rs)
	ranges := make([][2][]byte, len(merged))
	for i, r := range merged {
		ranges[i] = [2][]byte{be(r.First), be(r.Last)}
	}
	s := b.anonymous(nftables.TypeInetService, ranges)
	b.add(&expr.Lookup{SourceRegister: reg1, SetName: s.Name, SetID: s.ID, Invert: m.neg})
}

func mergePorts(rs []PortRange) []PortRange {
	in := slices.Clone(rs)
	slices.SortFunc(in, func(a, b PortRange) int { return cmp.Compare(a.First, b.First) })
	var out []PortRange
	for _, r := range in {
		if n := len(out); n > 0 && int(r.First) <= int(out[n-1].Last)+1 {
			out[n-1].Last = max(out[n-1].Last, r.Last)
			continue
		}
		out = append(out, r)
	}
	return out
}

// --- ICMP ---

type icmpMatch struct {
	v6      bool
	typ     uint8
	code    uint8
	hasCode bool
	neg     bool
}

// ICMPType matches the ICMP (f = IPv4) or ICMPv6 type. The rule must first
// match the protocol.
func ICMPType(f Family, typ uint8) Matcher { return icmpMatch{v6: f == IPv6, typ: typ} }

// ICMPTypeCode matches an ICMP or ICMPv6 type and code together; negated,
// it matches packets where either differs.
func ICMPTypeCode(f Family, typ, code uint8) Matcher {
	return icmpMatch{v6: f == IPv6, typ: typ, code: code, hasCode: true}
}

func (m icmpMatch) Not() Matcher { m.neg = !m.neg; return m }

func (m icmpMatch) text() string {
	kw := "icmp"
	if m.v6 {
		kw = "icmpv6"
	}
	if m.hasCode {
		return fmt.Sprintf("%s type . code %s%d . %d", kw, neqText(m.neg), m.typ, m.code)
	}
	return fmt.Sprintf("%s type %s%d", kw, neqText(m.neg), m.typ)
}

func (m icmpMatch) build(b *builder) {
	data := []byte{m.typ}
	if m.hasCode {
		data = append(data, m.code)
	}
	b.add(&expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: uint32(len(data))},
		&expr.Cmp{Op: cmpOp(m.neg), Register: reg1, Data: data})
}

// --- conntrack ---

// CTStateBit is a conntrack state.
type CTStateBit uint32

// Conntrack states.
const (
	CTInvalid     = CTStateBit(expr.CtStateBitINVALID)
	CTEstablished = CTStateBit(expr.CtStateBitESTABLISHED)
	CTRelated     = CTStateBit(expr.CtStateBitRELATED)
	CTNew         = CTStateBit(expr.CtStateBitNEW)
	CTUntracked   = CTStateBit(expr.CtStateBitUNTRACKED)
)

type ctState struct {
	bits CTStateBit
	neg  bool
}

// CTState matches packets whose conntrack state is any of bits.
func CTState(bits CTStateBit) Matcher { return ctState{bits: bits} }

func (m ctState) Not() Matcher { m.neg = !m.neg; return m }

func (m ctState) text() string {
	var names []string
	for _, s := range []struct {
		b CTStateBit
		n string
	}{{CTInvalid, "invalid"}, {CTEstablished, "established"}, {CTRelated, "related"}, {CTNew, "new"}, {CTUntracked, "untracked"}} {
		if m.bits&s.b != 0 {
			names = append(names, s.n)
		}
	}
	return "ct state " + neqText(m.neg) + strings.Join(names, ",")
}

func (m ctState) build(b *builder) {
	b.add(&expr.Ct{Register: reg1, Key: expr.CtKeySTATE},
		&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(uint32(m.bits)), Xor: make([]byte, 4)},
		&expr.Cmp{Op: cmpOp(!m.neg), Register: reg1, Data: make([]byte, 4)})
}

// --- marks ---

type markMatch struct {
	mask, value uint32
	neg         bool
}

// Mark matches packets whose mark, masked with mask, equals value.
func Mark(mask, value uint32) Matcher { return markMatch{mask: mask, value: value} }

func (m markMatch) Not() Matcher { m.neg = !m.neg; return m }

func (m markMatch) text() string {
	op := "=="
	if m.neg {
		op = "!="
	}
	return fmt.Sprintf("meta mark & %#08x %s %#08x", m.mask, op, m.value)
}

func (m markMatch) build(b *builder) {
	b.add(&expr.Meta{Key: expr.MetaKeyMARK, Register: reg1},
		&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(m.mask), Xor: make([]byte, 4)},
		&expr.Cmp{Op: cmpOp(m.neg), Register: reg1, Data: binaryutil.NativeEndian.PutUint32(m.value & m.mask)})
}

type setMark struct{ mask, value uint32 }

// SetMark sets the bits of mask in the packet mark to value (other bits
// are kept): meta mark set mark & ^mask | value.
func SetMark(mask, value uint32) Stmt { return setMark{mask, value & mask} }

func (s setMark) text() string {
	return fmt.Sprintf("meta mark set mark & %#08x | %#08x", ^s.mask, s.value)
}

func (s setMark) build(b *builder) {
	b.add(&expr.Meta{Key: expr.MetaKeyMARK, Register: reg1},
		&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(^s.mask), Xor: binaryutil.NativeEndian.PutUint32(s.value)},
		&expr.Meta{Key: expr.MetaKeyMARK, SourceRegister: true, Register: reg1})
}

// --- other statements ---

type logStmt struct{ prefix string }

// maxLogPrefix is NF_LOG_PREFIXLEN less the NUL.
const maxLogPrefix = 127

// Log logs the packet to the kernel log with a prefix (cut to 127 bytes);
// evaluation continues.
func Log(prefix string) Stmt {
	if len(prefix) > maxLogPrefix {
		prefix = prefix[:maxLogPrefix]
	}
	return logStmt{prefix}
}

func (s logStmt) text() string { return "log prefix " + strconv.Quote(s.prefix) }

func (s logStmt) build(b *builder) {
	b.add(&expr.Log{Key: 1 << logPrefixAttr, Data: []byte(s.prefix)})
}

const logPrefixAttr = 2 // NFTA_LOG_PREFIX

type counter struct{}

// Counter counts packets and bytes.
func Counter() Stmt { return counter{} }

func (counter) text() string     { return "counter" }
func (counter) build(b *builder) { b.add(&expr.Counter{}) }

type notrack struct{}

// Notrack exempts the packet from connection tracking (raw priority only).
func Notrack() Stmt { return notrack{} }

func (notrack) text() string     { return "notrack" }
func (notrack) build(b *builder) { b.add(&expr.Notrack{}) }

type reject struct{}

// Reject drops the packet and answers with ICMP(v6) administratively
// prohibited (TCP too; input, forward and output hooks only).
func Reject() Stmt { return reject{} }

func (reject) text() string { return "reject with icmpx admin-prohibited" }

func (reject) build(b *builder) {
	b.add(&expr.Reject{Type: 2 /* NFT_REJECT_ICMPX_UNREACH */, Code: 3 /* ADMIN_PROHIBITED */})
}

type vmap struct {
	out bool
	m   string
}

// IIfNameVMap looks the input interface name up in a verdict map and
// applies the verdict found; no verdict when the name is absent.
func IIfNameVMap(mapName string) Stmt { return vmap{m: mapName} }

// OIfNameVMap is IIfNameVMap for the output interface.
func OIfNameVMap(mapName string) Stmt { return vmap{out: true, m: mapName} }

func (s vmap) text() string {
	if s.out {
		return "oifname vmap @" + s.m
	}
	return "iifname vmap @" + s.m
}

func (s vmap) build(b *builder) {
	key := expr.MetaKeyIIFNAME
	if s.out {
		key = expr.MetaKeyOIFNAME
	}
	b.add(&expr.Meta{Key: key, Register: reg1},
		&expr.Lookup{SourceRegister: reg1, DestRegister: regVerdict, IsDestRegSet: true, SetName: s.m})
}
