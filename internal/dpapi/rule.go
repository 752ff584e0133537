package dpapi

import (
	"net/netip"
	"strconv"
)

// Action is what a rule does with a packet it matches, or what a tier does
// with a packet none of its policies decided.
type Action uint8

// Rule and tier actions (SPEC §2, §3).
const (
	// ActionAllow accepts the packet; the decision is final.
	ActionAllow Action = iota + 1
	// ActionDeny drops (or rejects, per Config.FilterDenyAction).
	ActionDeny
	// ActionLog logs the packet (Config.LogPrefix) and goes on to the
	// next rule.
	ActionLog
	// ActionPass leaves the tier: evaluation goes on with the next tier,
	// or with the profiles after the last one.
	ActionPass
)

func (a Action) String() string {
	switch a {
	case ActionAllow:
		return "Allow"
	case ActionDeny:
		return "Deny"
	case ActionLog:
		return "Log"
	case ActionPass:
		return "Pass"
	}
	return "Action(" + strconv.Itoa(int(a)) + ")"
}

// PortRange is an inclusive range of port numbers; First == Last for a
// single port.
type PortRange struct {
	First, Last uint16
}

// ICMPMatch matches an ICMP (or ICMPv6, per the rule's IP version) type
// and, when HasCode, code.
type ICMPMatch struct {
	Type    uint8
	Code    uint8
	HasCode bool
}

// Rule is a fully resolved rule. Every field that is set must match (the
// fields are ANDed); within a list field the entries are ORed unless the
// field says otherwise. A zero Rule with an Action matches every packet.
//
// Calc resolves everything that needs the datastore: selectors become IP
// set IDs, named ports become IP-port sets, protocol names become numbers.
// A datastore rule whose ports mix numbers and names, or name several
// ports, is split by calc into several Rules with the same RuleID, each a
// pure conjunction (so Log may log a packet once per split rule it
// matches). Likewise a rule without ipVersion whose nets mix IPv4 and
// IPv6 becomes an IPv4 and an IPv6 Rule: IPVersion is always set when the
// rule has nets (or an ICMP/ICMPv6 protocol), and then every net is of
// that family. A rule that can never match (an IPv6-only rule whose
// positive nets are all IPv4) is dropped by calc. Kubernetes Service
// matches and the HTTP part of rules are not represented (see package
// calc).
type Rule struct {
	Action Action
	// IPVersion is 4 or 6 to restrict the rule to one family, 0 for both
	// (then the rule has no nets).
	IPVersion uint8
	// Protocol and NotProtocol are IP protocol numbers, 0 when unset.
	Protocol    uint8
	NotProtocol uint8

	// SrcNets: the source address is in one of them. NotSrcNets: in
	// none of them. Likewise for Dst. All prefixes are masked and of the
	// family IPVersion.
	SrcNets    []netip.Prefix
	NotSrcNets []netip.Prefix
	DstNets    []netip.Prefix
	NotDstNets []netip.Prefix

	// SrcIPSetIDs: the source address is in every one of these sets
	// (ANDed). NotSrcIPSetIDs: in none of them. Likewise for Dst.
	SrcIPSetIDs    []string
	NotSrcIPSetIDs []string
	DstIPSetIDs    []string
	NotDstIPSetIDs []string

	// SrcPorts: the source port is in one of the ranges. NotSrcPorts: in
	// none. Likewise for Dst. Set only with Protocol TCP, UDP or SCTP.
	SrcPorts    []PortRange
	NotSrcPorts []PortRange
	DstPorts    []PortRange
	NotDstPorts []PortRange

	// SrcNamedPortIPSetID, when set, names an IPSetIPPorts set that must
	// contain (source address, protocol, source port). At most one per
	// side, and never together with SrcPorts on the same Rule.
	// NotSrcNamedPortIPSetIDs: (address, protocol, port) is in none of
	// them. Likewise for Dst.
	SrcNamedPortIPSetID     string
	NotSrcNamedPortIPSetIDs []string
	DstNamedPortIPSetID     string
	NotDstNamedPortIPSetIDs []string

	// ICMP and NotICMP match the ICMP type/code (Protocol is ICMP or
	// ICMPv6 when set).
	ICMP    *ICMPMatch
	NotICMP *ICMPMatch

	// RuleID is a stable hash of the datastore rule and its position, for
	// rule comments (cali:<RuleID>) and drift detection; 16 characters of
	// [A-Za-z0-9_-].
	RuleID string

	// The original selectors, for comments and debugging only.
	OrigSrcSelector    string
	OrigSrcNotSelector string
	OrigDstSelector    string
	OrigDstNotSelector string
}

// IPSetIDs returns every IP set ID the rule names, possibly with repeats.
func (r *Rule) IPSetIDs() []string {
	var ids []string
	ids = append(ids, r.SrcIPSetIDs...)
	ids = append(ids, r.NotSrcIPSetIDs...)
	ids = append(ids, r.DstIPSetIDs...)
	ids = append(ids, r.NotDstIPSetIDs...)
	ids = append(ids, r.NotSrcNamedPortIPSetIDs...)
	ids = append(ids, r.NotDstNamedPortIPSetIDs...)
	if r.SrcNamedPortIPSetID != "" {
		ids = append(ids, r.SrcNamedPortIPSetID)
	}
	if r.DstNamedPortIPSetID != "" {
		ids = append(ids, r.DstNamedPortIPSetID)
	}
	return ids
}

// Protocol numbers of the protocols Calico knows by name.
const (
	ProtoICMP    uint8 = 1
	ProtoTCP     uint8 = 6
	ProtoUDP     uint8 = 17
	ProtoICMPv6  uint8 = 58
	ProtoSCTP    uint8 = 132
	ProtoUDPLite uint8 = 136
)

// ProtocolName returns the lower-case name of a protocol number ("tcp"),
// or the number itself.
func ProtocolName(p uint8) string {
	switch p {
	case ProtoICMP:
		return "icmp"
	case ProtoTCP:
		return "tcp"
	case ProtoUDP:
		return "udp"
	case ProtoICMPv6:
		return "icmpv6"
	case ProtoSCTP:
		return "sctp"
	case ProtoUDPLite:
		return "udplite"
	}
	return strconv.Itoa(int(p))
}
