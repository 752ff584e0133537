package dpapi

import (
	"fmt"
	"net/netip"
	"strconv"
)

// Message is one calc→dataplane update. The set of implementations is
// closed: the types of this package listed in the package documentation.
type Message interface {
	isMessage()
}

// Sink receives batches of messages. The slice belongs to the receiver
// after the call; the sender does not reuse it.
type Sink func([]Message)

// ConfigUpdate carries the complete merged configuration.
type ConfigUpdate struct {
	Config Config
}

// IPSetType says what the members of an IP set are.
type IPSetType uint8

// IP set types.
const (
	// IPSetIPs: single addresses (Member.Prefix is /32 or /128).
	IPSetIPs IPSetType = iota + 1
	// IPSetNets: CIDRs (Member.Prefix any length). Selector sets have this
	// type, because network sets contribute CIDRs to them.
	IPSetNets
	// IPSetIPPorts: address, protocol and port (named-port sets).
	IPSetIPPorts
)

func (t IPSetType) String() string {
	switch t {
	case IPSetIPs:
		return "ips"
	case IPSetNets:
		return "nets"
	case IPSetIPPorts:
		return "ip-ports"
	}
	return "IPSetType(" + strconv.Itoa(int(t)) + ")"
}

// Member is one element of an IP set. It is comparable and usable as a map
// key. For IPSetIPs and IPSetIPPorts sets Prefix is a single address
// (/32 or /128); for IPSetNets any masked prefix. Protocol and Port are set
// only in IPSetIPPorts sets.
type Member struct {
	Prefix   netip.Prefix
	Protocol uint8 // IP protocol number: 6 (TCP), 17 (UDP) or 132 (SCTP)
	Port     uint16
}

// String renders the member in ipset syntax: "10.0.0.0/24",
// "10.0.0.1/32", or "10.0.0.1,tcp:80" for IP-port members.
func (m Member) String() string {
	if m.Protocol == 0 {
		return m.Prefix.String()
	}
	return fmt.Sprintf("%s,%s:%d", m.Prefix.Addr(), ProtocolName(m.Protocol), m.Port)
}

// IPSetUpdate creates the set ID or replaces all its members.
type IPSetUpdate struct {
	ID      string
	Type    IPSetType
	Members []Member // sorted, no duplicates
}

// IPSetDelta changes the members of an existing set. Added members are
// not in the set yet; Removed members are. Both are sorted.
type IPSetDelta struct {
	ID      string
	Added   []Member
	Removed []Member
}

// IPSetRemove deletes the set ID; no rule names it any more.
type IPSetRemove struct {
	ID string
}

// PolicyKind is the short kind of a policy, as used in chain names
// (SPEC §8: np, gnp, ...).
type PolicyKind string

// Policy kinds. Staged kinds exist in the datastore but are never sent.
const (
	KindNetworkPolicy       PolicyKind = "np"
	KindGlobalNetworkPolicy PolicyKind = "gnp"
)

// PolicyID names a policy. Namespace is empty for global policies.
type PolicyID struct {
	Tier      string
	Name      string
	Namespace string
	Kind      PolicyKind
}

// String returns "<kind>/[<ns>/]<name>", the form Calico uses in chain
// names (SPEC §8), e.g. "gnp/default.foo" or "np/ns1/allow-dns".
func (id PolicyID) String() string {
	if id.Namespace != "" {
		return string(id.Kind) + "/" + id.Namespace + "/" + id.Name
	}
	return string(id.Kind) + "/" + id.Name
}

// Policy is a resolved policy.
type Policy struct {
	Namespace     string // empty for global policies
	InboundRules  []Rule
	OutboundRules []Rule
	// Untracked (doNotTrack), PreDNAT and ApplyOnForward tell which host
	// endpoint stage the policy belongs to; see HostEndpoint.
	Untracked      bool
	PreDNAT        bool
	ApplyOnForward bool
}

// PolicyUpdate creates or replaces a policy.
type PolicyUpdate struct {
	ID     PolicyID
	Policy Policy
}

// PolicyRemove deletes a policy; no endpoint lists it any more.
type PolicyRemove struct {
	ID PolicyID
}

// ProfileID names a profile.
type ProfileID struct {
	Name string
}

func (id ProfileID) String() string { return id.Name }

// Profile is a resolved profile. A profile that an endpoint lists but that
// does not exist in the datastore is sent with no rules (so it allows
// nothing).
type Profile struct {
	InboundRules  []Rule
	OutboundRules []Rule
}

// ProfileUpdate creates or replaces a profile.
type ProfileUpdate struct {
	ID      ProfileID
	Profile Profile
}

// ProfileRemove deletes a profile; no endpoint lists it any more.
type ProfileRemove struct {
	ID ProfileID
}

// TierInfo is one tier as it applies to one endpoint: the policies that
// select the endpoint, in evaluation order, per direction. A tier appears
// when at least one of its policies applies in either direction; in a
// direction whose list is empty the tier does not take part (no
// end-of-tier action).
type TierInfo struct {
	Name string
	// DefaultAction is what happens when no policy of the tier decided:
	// ActionDeny or ActionPass.
	DefaultAction   Action
	IngressPolicies []PolicyID
	EgressPolicies  []PolicyID
}

// WorkloadEndpointID names a workload endpoint: the WorkloadEndpoint
// resource's namespace and name.
type WorkloadEndpointID struct {
	Namespace string
	Name      string
}

func (id WorkloadEndpointID) String() string { return id.Namespace + "/" + id.Name }

// WorkloadEndpoint is a local workload endpoint and what applies to it.
type WorkloadEndpoint struct {
	Orchestrator string
	Workload     string // the pod (k8s) or workload name
	Endpoint     string
	// InterfaceName is the host side of the veth, e.g. cali1234abcd.
	InterfaceName string
	MAC           string // may be empty
	// ProfileIDs are the endpoint's profiles in order (SPEC §3.6).
	ProfileIDs []ProfileID
	IPv4Nets   []netip.Prefix // single addresses (/32)
	IPv6Nets   []netip.Prefix // single addresses (/128)
	// Tiers are the tiers in evaluation order. Untracked and preDNAT
	// policies never appear here.
	Tiers []TierInfo
	// AllowSpoofedSourcePrefixes are accepted as source addresses besides
	// the endpoint's own, when workloadSourceSpoofing=Any.
	AllowSpoofedSourcePrefixes []netip.Prefix
}

// WorkloadEndpointUpdate creates or replaces a local workload endpoint.
type WorkloadEndpointUpdate struct {
	ID       WorkloadEndpointID
	Endpoint WorkloadEndpoint
}

// WorkloadEndpointRemove deletes a local workload endpoint.
type WorkloadEndpointRemove struct {
	ID WorkloadEndpointID
}

// HostEndpointID names a host endpoint: the HostEndpoint resource name.
type HostEndpointID struct {
	Name string
}

func (id HostEndpointID) String() string { return id.Name }

// HostEndpoint is a host endpoint of this node with its tiers per stage.
type HostEndpoint struct {
	// InterfaceName is an interface name, "*" (all host interfaces), or
	// empty: then the endpoint covers the local interfaces that carry one
	// of the expected addresses.
	InterfaceName     string
	ExpectedIPv4Addrs []netip.Addr
	ExpectedIPv6Addrs []netip.Addr
	ProfileIDs        []ProfileID
	// Tiers hold the normal policies (neither doNotTrack nor preDNAT),
	// for traffic to and from local processes.
	Tiers []TierInfo
	// UntrackedTiers hold doNotTrack policies (raw table, both directions,
	// no end-of-tier drop).
	UntrackedTiers []TierInfo
	// PreDNATTiers hold preDNAT policies (ingress only, no end-of-tier drop).
	PreDNATTiers []TierInfo
	// ForwardTiers hold the normal policies with applyOnForward, for
	// forwarded traffic; they also appear in Tiers.
	ForwardTiers []TierInfo
}

// HostEndpointUpdate creates or replaces a host endpoint.
type HostEndpointUpdate struct {
	ID       HostEndpointID
	Endpoint HostEndpoint
}

// HostEndpointRemove deletes a host endpoint.
type HostEndpointRemove struct {
	ID HostEndpointID
}

// InSync says the initial snapshot has been sent in full.
type InSync struct{}

func (ConfigUpdate) isMessage()           {}
func (IPSetUpdate) isMessage()            {}
func (IPSetDelta) isMessage()             {}
func (IPSetRemove) isMessage()            {}
func (PolicyUpdate) isMessage()           {}
func (PolicyRemove) isMessage()           {}
func (ProfileUpdate) isMessage()          {}
func (ProfileRemove) isMessage()          {}
func (WorkloadEndpointUpdate) isMessage() {}
func (WorkloadEndpointRemove) isMessage() {}
func (HostEndpointUpdate) isMessage()     {}
func (HostEndpointRemove) isMessage()     {}
func (InSync) isMessage()                 {}
