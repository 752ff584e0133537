package nft

import (
	"cmp"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// SetType is the key type of a named set.
type SetType uint8

// Set types.
const (
	// SetIPv4 holds IPv4 addresses and CIDRs (ipv4_addr, flags interval).
	// Overlapping and adjacent members are merged before they are written.
	SetIPv4 SetType = iota + 1
	// SetIPv6 is SetIPv4 for IPv6.
	SetIPv6
	// SetIPv4Port holds (address, protocol, port) tuples
	// (ipv4_addr . inet_proto . inet_service): named-port sets.
	SetIPv4Port
	// SetIPv6Port is SetIPv4Port for IPv6.
	SetIPv6Port
	// SetIPv4PortRanges holds boxes of (address range, protocol, port
	// range) (the same key with flags interval). Members may overlap; the
	// driver splits them into disjoint elements. Protocol 0 means any.
	SetIPv4PortRanges
	// SetIPv6PortRanges is SetIPv4PortRanges for IPv6.
	SetIPv6PortRanges
)

// Family is an IP version: 4 or 6.
type Family uint8

// IP families.
const (
	IPv4 Family = 4
	IPv6 Family = 6
)

func (f Family) String() string {
	if f == IPv6 {
		return "ip6"
	}
	return "ip"
}

// Family returns the address family of the set's keys.
func (t SetType) Family() Family {
	switch t {
	case SetIPv6, SetIPv6Port, SetIPv6PortRanges:
		return IPv6
	}
	return IPv4
}

func (t SetType) valid() bool { return t >= SetIPv4 && t <= SetIPv6PortRanges }

func (t SetType) concat() bool { return t >= SetIPv4Port }

func (t SetType) interval() bool {
	switch t {
	case SetIPv4, SetIPv6, SetIPv4PortRanges, SetIPv6PortRanges:
		return true
	}
	return false
}

func (t SetType) addrType() string {
	if t.Family() == IPv6 {
		return "ipv6_addr"
	}
	return "ipv4_addr"
}

func (t SetType) String() string {
	s := "type " + t.addrType()
	if t.concat() {
		s += " . inet_proto . inet_service"
	}
	if t.interval() {
		s += "; flags interval"
	}
	return s
}

// PortRange is an inclusive range of ports; First == Last for one port.
type PortRange struct {
	First, Last uint16
}

// AnyPort covers every port.
var AnyPort = PortRange{0, 65535}

func (r PortRange) String() string {
	if r.First == r.Last {
		return strconv.Itoa(int(r.First))
	}
	return strconv.Itoa(int(r.First)) + "-" + strconv.Itoa(int(r.Last))
}

// Member is one member of a set. IP sets use Prefix only. Port sets use a
// single-address Prefix, Protocol and a single port (Ports.First ==
// Ports.Last). Port-range sets use all three: any Prefix, Protocol (0 =
// any protocol) and any PortRange.
type Member struct {
	Prefix   netip.Prefix
	Protocol uint8
	Ports    PortRange
}

func (m Member) String() string {
	if m.Protocol == 0 && m.Ports == (PortRange{}) {
		return m.Prefix.String()
	}
	return fmt.Sprintf("%s . %s . %s", m.Prefix, ProtoName(m.Protocol), m.Ports)
}

// ErrBadMember is wrapped by errors about members that do not fit their
// set's type.
var ErrBadMember = errors.New("member does not fit the set type")

func (t SetType) check(m Member) error {
	if !m.Prefix.IsValid() {
		return fmt.Errorf("%w: invalid prefix in %v", ErrBadMember, m)
	}
	a := m.Prefix.Addr()
	if (t.Family() == IPv6) != (a.Is6() && !a.Is4In6()) {
		return fmt.Errorf("%w: %s in a %s set", ErrBadMember, m.Prefix, t.addrType())
	}
	switch t {
	case SetIPv4, SetIPv6:
		if m.Protocol != 0 || m.Ports != (PortRange{}) {
			return fmt.Errorf("%w: protocol or port in an address set: %v", ErrBadMember, m)
		}
	case SetIPv4Port, SetIPv6Port:
		if !m.Prefix.IsSingleIP() || m.Protocol == 0 || m.Ports.First != m.Ports.Last {
			return fmt.Errorf("%w: %v is not one address, protocol and port", ErrBadMember, m)
		}
	default:
		if m.Ports.First > m.Ports.Last {
			return fmt.Errorf("%w: port range %v", ErrBadMember, m.Ports)
		}
	}
	return nil
}

// element is a canonical kernel element: the unit of element diffs.
// Ranges are inclusive; keyEnd is empty for exact keys.
type element struct {
	key, keyEnd string
	verdict     Verdict // maps only
}

// addrRange is an inclusive range of addresses of one family.
type addrRange struct{ lo, hi netip.Addr }

func prefixRange(p netip.Prefix) addrRange {
	p = p.Masked()
	lo := p.Addr()
	b := lo.AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	hi, _ := netip.AddrFromSlice(b)
	return addrRange{lo, hi}
}

// mergeRanges sorts ranges and merges overlapping and adjacent ones.
func mergeRanges(rs []addrRange) []addrRange {
	if len(rs) == 0 {
		return nil
	}
	slices.SortFunc(rs, func(a, b addrRange) int { return a.lo.Compare(b.lo) })
	out := rs[:1]
	for _, r := range rs[1:] {
		last := &out[len(out)-1]
		next := last.hi.Next()
		if !next.IsValid() || r.lo.Compare(next) <= 0 {
			if r.hi.Compare(last.hi) > 0 {
				last.hi = r.hi
			}
			continue
		}
		out = append(out, r)
	}
	return out
}

// elements turns a set's members into canonical elements.
func (t SetType) elements(members map[Member]struct{}) []element {
	switch t {
	case SetIPv4, SetIPv6:
		rs := make([]addrRange, 0, len(members))
		for m := range members {
			rs = append(rs, prefixRange(m.Prefix))
		}
		rs = mergeRanges(rs)
		out := make([]element, len(rs))
		for i, r := range rs {
			out[i] = element{key: string(r.lo.AsSlice()), keyEnd: string(r.hi.AsSlice())}
		}
		return out
	case SetIPv4Port, SetIPv6Port:
		out := make([]element, 0, len(members))
		for m := range members {
			out = append(out, element{key: concatKey(m.Prefix.Addr(), m.Protocol, m.Ports.First)})
		}
		return out
	default:
		return boxElements(members)
	}
}

func concatKey(a netip.Addr, proto uint8, port uint16) string {
	b := a.AsSlice()
	b = append(b, proto, 0, 0, 0, byte(port>>8), byte(port), 0, 0)
	return string(b)
}

type boxKey struct {
	plo, phi uint8
	ports    PortRange
}

type box struct {
	boxKey
	rs []addrRange
}

// boxElements splits possibly overlapping (address, protocol, port) boxes
// into disjoint elements: the protocol and port axes are cut into
// elementary intervals, and each cell holds the merged union of the
// address ranges of the members covering it.
func boxElements(members map[Member]struct{}) []element {
	groups := map[boxKey][]addrRange{}
	for m := range members {
		k := boxKey{m.Protocol, m.Protocol, m.Ports}
		if m.Protocol == 0 {
			k.phi = 255
		}
		groups[k] = append(groups[k], prefixRange(m.Prefix))
	}
	boxes := make([]box, 0, len(groups))
	for k, rs := range groups {
		boxes = append(boxes, box{k, mergeRanges(rs)})
	}
	var out []element
	for _, pi := range elementary(boxes, func(b box) (int, int) { return int(b.plo), int(b.phi) }) {
		var inP []box
		for _, b := range boxes {
			if int(b.plo) <= pi[0] && pi[1] <= int(b.phi) {
				inP = append(inP, b)
			}
		}
		var prev *box
		for _, qi := range elementary(inP, func(b box) (int, int) { return int(b.ports.First), int(b.ports.Last) }) {
			var rs []addrRange
			for _, b := range inP {
				if int(b.ports.First) <= qi[0] && qi[1] <= int(b.ports.Last) {
					rs = append(rs, b.rs...)
				}
			}
			rs = mergeRanges(rs)
			if len(rs) == 0 {
				prev = nil
				continue
			}
			if prev != nil && int(prev.ports.Last)+1 == qi[0] && slices.Equal(prev.rs, rs) {
				prev.ports.Last = uint16(qi[1])
				continue
			}
			out = flushBox(out, prev)
			prev = &box{boxKey{uint8(pi[0]), uint8(pi[1]), PortRange{uint16(qi[0]), uint16(qi[1])}}, rs}
		}
		out = flushBox(out, prev)
	}
	return out
}

func flushBox(out []element, b *box) []element {
	if b == nil {
		return out
	}
	for _, r := range b.rs {
		out = append(out, element{
			key:    concatKey(r.lo, b.plo, b.ports.First),
			keyEnd: concatKey(r.hi, b.phi, b.ports.Last),
		})
	}
	return out
}

// elementary returns the elementary intervals [lo, hi] that the
// boundaries of the given intervals cut the axis into, keeping only those
// covered by at least one interval.
func elementary(bs []box, span func(box) (int, int)) [][2]int {
	var cuts []int
	for _, b := range bs {
		lo, hi := span(b)
		cuts = append(cuts, lo, hi+1)
	}
	slices.Sort(cuts)
	cuts = slices.Compact(cuts)
	var out [][2]int
	for i := 0; i+1 < len(cuts); i++ {
		lo, hi := cuts[i], cuts[i+1]-1
		for _, b := range bs {
			blo, bhi := span(b)
			if blo <= lo && hi <= bhi {
				out = append(out, [2]int{lo, hi})
				break
			}
		}
	}
	return out
}

// elementText renders an element of a set of type t in nft syntax.
func (t SetType) elementText(e element) string {
	switch t {
	case SetIPv4, SetIPv6:
		return rangeText(addrOf(e.key), addrOf(e.keyEnd))
	case SetIPv4Port, SetIPv6Port:
		a, p, port := splitConcat(e.key)
		return fmt.Sprintf("%s . %s . %d", a, ProtoName(p), port)
	default:
		a, plo, qlo := splitConcat(e.key)
		b, phi, qhi := splitConcat(e.keyEnd)
		proto := ProtoName(plo)
		if plo != phi {
			proto = fmt.Sprintf("%d-%d", plo, phi)
		}
		return fmt.Sprintf("%s . %s . %s", rangeText(a, b), proto, PortRange{qlo, qhi})
	}
}

func addrOf(s string) netip.Addr {
	a, _ := netip.AddrFromSlice([]byte(s))
	return a
}

func splitConcat(s string) (netip.Addr, uint8, uint16) {
	n := len(s) - 8
	return addrOf(s[:n]), s[n], uint16(s[n+4])<<8 | uint16(s[n+5])
}

// rangeText renders an inclusive address range as an address, a prefix or
// "lo-hi".
func rangeText(lo, hi netip.Addr) string {
	if lo == hi {
		return lo.String()
	}
	for bits := lo.BitLen() - 1; bits >= 0; bits-- {
		p := netip.PrefixFrom(lo, bits)
		if p.Masked().Addr() != lo {
			break
		}
		if prefixRange(p).hi == hi {
			return p.String()
		}
	}
	return lo.String() + "-" + hi.String()
}

func sortElements(t SetType, es []element) []string {
	out := make([]string, len(es))
	slices.SortFunc(es, func(a, b element) int {
		return cmp.Or(strings.Compare(a.key, b.key), strings.Compare(a.keyEnd, b.keyEnd))
	})
	for i, e := range es {
		out[i] = t.elementText(e)
	}
	return out
}
