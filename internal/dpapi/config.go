package dpapi

import (
	"net/netip"
	"time"
)

// Config is the merged Felix configuration the dataplane needs (SPEC
// §1.6), already defaulted and typed: every field holds its effective
// value. internal/felixconfig builds it.
type Config struct {
	// NodeName is this host's Calico node name.
	NodeName string

	// InterfacePrefixes are the workload interface prefixes ("cali").
	InterfacePrefixes []string
	// InterfaceExclude lists interface names, or regular expressions
	// written /like this/, that are never treated as endpoints.
	InterfaceExclude []string

	// FailsafeInbound and FailsafeOutbound are always allowed to and from
	// host endpoints, before any policy (empty: none).
	FailsafeInbound  []ProtoPort
	FailsafeOutbound []ProtoPort

	// DefaultEndpointToHostAction applies to workload→host traffic after
	// the workload's egress policy: "Drop", "Return" or "Accept".
	DefaultEndpointToHostAction string
	// FilterAllowAction is "Accept" or "Return" (iptables/nftables
	// FilterAllowAction); MangleAllowAction likewise for preDNAT;
	// FilterDenyAction is "Drop" or "Reject".
	FilterAllowAction string
	MangleAllowAction string
	FilterDenyAction  string
	// ChainInsertMode is "Insert" or "Append".
	ChainInsertMode string
	// MarkMask holds the packet mark bits Calico may use.
	MarkMask uint32
	// LogPrefix prefixes Log-action entries; %t, %k, %n, %p expand to
	// tier, kind, name and namespace/name.
	LogPrefix string
	// DisableConntrackInvalidCheck stops dropping conntrack-INVALID packets.
	DisableConntrackInvalidCheck bool
	// WorkloadSourceSpoofing is "Disabled" or "Any" (allows
	// AllowSpoofedSourcePrefixes).
	WorkloadSourceSpoofing string

	// NFTablesMode is "Auto", "Enabled" or "Disabled".
	NFTablesMode string
	// RefreshInterval is how often the dataplane reads back and repairs
	// its tables (nftablesRefreshInterval); 0 disables.
	RefreshInterval time.Duration
	// IPSetsRefreshInterval, RouteRefreshInterval and
	// InterfaceRefreshInterval: 0 disables.
	IPSetsRefreshInterval    time.Duration
	RouteRefreshInterval     time.Duration
	InterfaceRefreshInterval time.Duration
	IPv6Support              bool

	// VXLANPort and VXLANVNI configure the VXLAN device (4789 and 4096 by
	// default); VXLANMTU is its MTU, 0 meaning the MTU of the interface
	// holding the node's address less 50.
	VXLANPort int
	VXLANVNI  int
	VXLANMTU  int
	// NATOutgoingAddress, when valid, is the source address traffic from
	// natOutgoing pools is SNATed to, instead of being masqueraded.
	NATOutgoingAddress netip.Addr
	// NATOutgoingExclusions is "IPPoolsOnly" (traffic to any pool
	// address is not NATed) or "IPPoolsAndHostIPs" (nor traffic to the
	// address of any node).
	NATOutgoingExclusions string

	// Health and metrics.
	HealthEnabled            bool
	HealthHost               string
	HealthPort               int
	PrometheusMetricsEnabled bool
	PrometheusMetricsHost    string
	PrometheusMetricsPort    int
	// LogSeverityScreen is Debug, Info, Warning, Error or Fatal.
	LogSeverityScreen string
}

// ProtoPort is one failsafe entry: protocol (number, TCP by default), port
// and, when Net is valid, the peer must be in Net.
type ProtoPort struct {
	Protocol uint8
	Port     uint16
	Net      netip.Prefix
}
