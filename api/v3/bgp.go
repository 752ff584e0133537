package v3

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Kind names of the BGP kinds.
const (
	KindBGPConfiguration = "BGPConfiguration"
	KindBGPPeer          = "BGPPeer"
	KindBGPFilter        = "BGPFilter"
)

// Values used when a BGPConfiguration field is nil.
const (
	DefaultASNumber                ASNumber = 64512
	DefaultBGPListenPort           uint16   = 179
	DefaultBGPLogSeverity                   = "Info"
	DefaultNormalRoutePriority              = 1024
	DefaultNodeToNodeMeshEnabled            = true
	DefaultBGPMaxRestartTimeSecond          = 120
)

// BindMode says which addresses BIRD listens on.
type BindMode string

// Bind modes.
const (
	BindModeNone   BindMode = "None"
	BindModeNodeIP BindMode = "NodeIP"
)

// ServiceLoadBalancerAggregation says whether LoadBalancer IPs are
// advertised as their CIDR blocks or one /32 (/128) each.
type ServiceLoadBalancerAggregation string

// Aggregation settings.
const (
	ServiceLoadBalancerAggregationEnabled  ServiceLoadBalancerAggregation = "Enabled"
	ServiceLoadBalancerAggregationDisabled ServiceLoadBalancerAggregation = "Disabled"
)

// ProgramClusterRoutes says which component programs routes to other
// nodes' blocks (BIRD or Felix), per encapsulation.
type ProgramClusterRoutes string

// Cluster route settings.
const (
	ProgramClusterRoutesEnabled            ProgramClusterRoutes = "Enabled"
	ProgramClusterRoutesDisabled           ProgramClusterRoutes = "Disabled"
	ProgramClusterRoutesEnabledNoEncapOnly ProgramClusterRoutes = "EnabledNoEncapOnly"
	ProgramClusterRoutesEnabledIPIPOnly    ProgramClusterRoutes = "EnabledIPIPOnly"
)

// BGPConfiguration holds BGP settings: "default" for the cluster,
// "node.<name>" for one node. Nil fields take the Default* values at use
// (see the Effective* methods); nothing is filled in on write.
// +kubebuilder:object:root=true
type BGPConfiguration struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec BGPConfigurationSpec `json:"spec,omitempty"`
}

// BGPConfigurationSpec is the spec of a BGPConfiguration.
type BGPConfigurationSpec struct {
	LogSeverityScreen     string    `json:"logSeverityScreen,omitempty"`
	NodeToNodeMeshEnabled *bool     `json:"nodeToNodeMeshEnabled,omitempty"`
	ASNumber              *ASNumber `json:"asNumber,omitempty"`
	// Service address ranges to advertise.
	ServiceLoadBalancerIPs []ServiceLoadBalancerIPBlock `json:"serviceLoadBalancerIPs,omitempty"`
	ServiceExternalIPs     []ServiceExternalIPBlock     `json:"serviceExternalIPs,omitempty"`
	ServiceClusterIPs      []ServiceClusterIPBlock      `json:"serviceClusterIPs,omitempty"`
	// Communities names community values; each must be used by a
	// prefix advertisement.
	Communities          []Community           `json:"communities,omitempty"`
	PrefixAdvertisements []PrefixAdvertisement `json:"prefixAdvertisements,omitempty"`
	ListenPort           uint16                `json:"listenPort,omitempty"`
	// NodeMeshPassword is allowed only while the mesh is on.
	NodeMeshPassword       *BGPPassword     `json:"nodeMeshPassword,omitempty"`
	NodeMeshMaxRestartTime *metav1.Duration `json:"nodeMeshMaxRestartTime,omitempty"`
	BindMode               *BindMode        `json:"bindMode,omitempty"`
	// IgnoredInterfaces are interface-name globs BIRD does not learn routes from.
	IgnoredInterfaces              []string                        `json:"ignoredInterfaces,omitempty"`
	LocalWorkloadPeeringIPV4       string                          `json:"localWorkloadPeeringIPV4,omitempty"`
	LocalWorkloadPeeringIPV6       string                          `json:"localWorkloadPeeringIPV6,omitempty"`
	ServiceLoadBalancerAggregation *ServiceLoadBalancerAggregation `json:"serviceLoadBalancerAggregation,omitempty"`
	ProgramClusterRoutes           *ProgramClusterRoutes           `json:"programClusterRoutes,omitempty"`
	IPv4NormalRoutePriority        *int                            `json:"ipv4NormalRoutePriority,omitempty"`
	IPv6NormalRoutePriority        *int                            `json:"ipv6NormalRoutePriority,omitempty"`
	IPv4ElevatedRoutePriority      *int                            `json:"ipv4ElevatedRoutePriority,omitempty"`
	IPv6ElevatedRoutePriority      *int                            `json:"ipv6ElevatedRoutePriority,omitempty"`
}

// ServiceClusterIPBlock is a cluster IP range to advertise.
type ServiceClusterIPBlock struct {
	CIDR string `json:"cidr,omitempty"`
}

// ServiceExternalIPBlock is an external IP range to advertise.
type ServiceExternalIPBlock struct {
	CIDR string `json:"cidr,omitempty"`
}

// ServiceLoadBalancerIPBlock is a LoadBalancer IP range to advertise.
type ServiceLoadBalancerIPBlock struct {
	CIDR string `json:"cidr,omitempty"`
}

// Community gives a name to a BGP community value ("aa:nn" or "aa:nn:mm").
type Community struct {
	Name  string `json:"name,omitempty"`
	Value string `json:"value,omitempty"`
}

// PrefixAdvertisement attaches communities (names or values) to a CIDR.
type PrefixAdvertisement struct {
	CIDR        string   `json:"cidr,omitempty"`
	Communities []string `json:"communities,omitempty"`
}

// BGPPassword says where a BGP password comes from.
type BGPPassword struct {
	SecretKeyRef *SecretKeySelector `json:"secretKeyRef,omitempty"`
}

// SecretKeySelector mirrors core/v1 SecretKeySelector: a key of a secret in
// calico-node's namespace.
type SecretKeySelector struct {
	Name     string `json:"name,omitempty"`
	Key      string `json:"key"`
	Optional *bool  `json:"optional,omitempty"`
}

// BGPConfigurationList is a list of BGPConfiguration.
// +kubebuilder:object:root=true
type BGPConfigurationList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []BGPConfiguration `json:"items"`
}

// EffectiveASNumber returns the AS number, or DefaultASNumber if unset.
func (s *BGPConfigurationSpec) EffectiveASNumber() ASNumber {
	if s.ASNumber != nil {
		return *s.ASNumber
	}
	return DefaultASNumber
}

// EffectiveNodeToNodeMeshEnabled returns whether the full mesh is on (default true).
func (s *BGPConfigurationSpec) EffectiveNodeToNodeMeshEnabled() bool {
	if s.NodeToNodeMeshEnabled != nil {
		return *s.NodeToNodeMeshEnabled
	}
	return DefaultNodeToNodeMeshEnabled
}

// EffectiveListenPort returns the BGP port (default 179).
func (s *BGPConfigurationSpec) EffectiveListenPort() uint16 {
	if s.ListenPort != 0 {
		return s.ListenPort
	}
	return DefaultBGPListenPort
}

// EffectiveLogSeverityScreen returns the log level (default Info).
func (s *BGPConfigurationSpec) EffectiveLogSeverityScreen() string {
	if s.LogSeverityScreen != "" {
		return s.LogSeverityScreen
	}
	return DefaultBGPLogSeverity
}

// EffectiveBindMode returns the bind mode (default None).
func (s *BGPConfigurationSpec) EffectiveBindMode() BindMode {
	if s.BindMode != nil {
		return *s.BindMode
	}
	return BindModeNone
}

// EffectiveServiceLoadBalancerAggregation returns the LB aggregation (default Enabled).
func (s *BGPConfigurationSpec) EffectiveServiceLoadBalancerAggregation() ServiceLoadBalancerAggregation {
	if s.ServiceLoadBalancerAggregation != nil {
		return *s.ServiceLoadBalancerAggregation
	}
	return ServiceLoadBalancerAggregationEnabled
}

// EffectiveProgramClusterRoutes returns the cluster-route mode (default EnabledNoEncapOnly).
func (s *BGPConfigurationSpec) EffectiveProgramClusterRoutes() ProgramClusterRoutes {
	if s.ProgramClusterRoutes != nil {
		return *s.ProgramClusterRoutes
	}
	return ProgramClusterRoutesEnabledNoEncapOnly
}

// EffectiveIPv4NormalRoutePriority returns the v4 route priority (default 1024).
func (s *BGPConfigurationSpec) EffectiveIPv4NormalRoutePriority() int {
	if s.IPv4NormalRoutePriority != nil {
		return *s.IPv4NormalRoutePriority
	}
	return DefaultNormalRoutePriority
}

// EffectiveIPv6NormalRoutePriority returns the v6 route priority (default 1024).
func (s *BGPConfigurationSpec) EffectiveIPv6NormalRoutePriority() int {
	if s.IPv6NormalRoutePriority != nil {
		return *s.IPv6NormalRoutePriority
	}
	return DefaultNormalRoutePriority
}

// SourceAddress says whether a peering uses the node IP as source address.
type SourceAddress string

// Source address settings.
const (
	SourceAddressUseNodeIP SourceAddress = "UseNodeIP"
	SourceAddressNone      SourceAddress = "None"
)

// NextHopMode says how the next hop of routes sent to a peer is set.
type NextHopMode string

// Next hop modes.
const (
	NextHopModeAuto NextHopMode = "Auto"
	NextHopModeSelf NextHopMode = "Self"
	NextHopModeKeep NextHopMode = "Keep"
)

// ReversePeering says whether the reverse peering is generated automatically.
type ReversePeering string

// Reverse peering settings.
const (
	ReversePeeringAuto   ReversePeering = "Auto"
	ReversePeeringManual ReversePeering = "Manual"
)

// BGPPeer configures peerings between nodes (local side) and BGP speakers
// (remote side).
// +kubebuilder:object:root=true
type BGPPeer struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec BGPPeerSpec `json:"spec,omitempty"`
}

// BGPPeerSpec is the spec of a BGPPeer.
type BGPPeerSpec struct {
	// Node or NodeSelector (not both) pick the local side; neither means all nodes.
	Node         string `json:"node,omitempty"`
	NodeSelector string `json:"nodeSelector,omitempty"`
	// PeerIP ("ip", "ip:port" or "[v6]:port") or PeerSelector (not both)
	// pick the remote side.
	PeerIP       string   `json:"peerIP,omitempty"`
	ASNumber     ASNumber `json:"asNumber,omitempty"`
	PeerSelector string   `json:"peerSelector,omitempty"`
	// KeepOriginalNextHop is deprecated in favour of NextHopMode Keep.
	KeepOriginalNextHop      bool             `json:"keepOriginalNextHop,omitempty"`
	Password                 *BGPPassword     `json:"password,omitempty"`
	SourceAddress            SourceAddress    `json:"sourceAddress,omitempty"`
	MaxRestartTime           *metav1.Duration `json:"maxRestartTime,omitempty"`
	NumAllowedLocalASNumbers *int32           `json:"numAllowedLocalASNumbers,omitempty"`
	TTLSecurity              *uint8           `json:"ttlSecurity,omitempty"`
	KeepaliveTime            *metav1.Duration `json:"keepaliveTime,omitempty"`
	NextHopMode              *NextHopMode     `json:"nextHopMode,omitempty"`
	// ReachableBy is a gateway address used to reach PeerIP.
	ReachableBy    string          `json:"reachableBy,omitempty"`
	Filters        []string        `json:"filters,omitempty"`
	LocalASNumber  *ASNumber       `json:"localASNumber,omitempty"`
	ReversePeering *ReversePeering `json:"reversePeering,omitempty"`
	// LocalWorkloadSelector peers with local workloads; needs ASNumber.
	LocalWorkloadSelector string `json:"localWorkloadSelector,omitempty"`
}

// BGPPeerList is a list of BGPPeer.
// +kubebuilder:object:root=true
type BGPPeerList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []BGPPeer `json:"items"`
}

// BGPFilter holds ordered import/export rule lists; the first match wins.
// +kubebuilder:object:root=true
type BGPFilter struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec BGPFilterSpec `json:"spec,omitempty"`
}

// BGPFilterSpec is the spec of a BGPFilter.
type BGPFilterSpec struct {
	ExportV4 []BGPFilterRuleV4 `json:"exportV4,omitempty"`
	ImportV4 []BGPFilterRuleV4 `json:"importV4,omitempty"`
	ExportV6 []BGPFilterRuleV6 `json:"exportV6,omitempty"`
	ImportV6 []BGPFilterRuleV6 `json:"importV6,omitempty"`
}

// BGPFilterMatchOperator compares a route's prefix with a rule's CIDR.
type BGPFilterMatchOperator string

// Match operators.
const (
	MatchOperatorEqual    BGPFilterMatchOperator = "Equal"
	MatchOperatorNotEqual BGPFilterMatchOperator = "NotEqual"
	MatchOperatorIn       BGPFilterMatchOperator = "In"
	MatchOperatorNotIn    BGPFilterMatchOperator = "NotIn"
)

// BGPFilterAction is what a filter rule does with a matching route.
type BGPFilterAction string

// Filter actions.
const (
	BGPFilterAccept BGPFilterAction = "Accept"
	BGPFilterReject BGPFilterAction = "Reject"
)

// BGPFilterMatchSource restricts a rule to routes of some origin.
type BGPFilterMatchSource string

// BGPFilterSourceRemotePeers matches routes learned from BGP peers.
const BGPFilterSourceRemotePeers BGPFilterMatchSource = "RemotePeers"

// BGPFilterPeerType restricts a rule to eBGP or iBGP peers.
type BGPFilterPeerType string

// Peer types.
const (
	BGPFilterPeerTypeEBGP BGPFilterPeerType = "eBGP"
	BGPFilterPeerTypeIBGP BGPFilterPeerType = "iBGP"
)

// BGPFilterRuleV4 is one IPv4 filter rule.
type BGPFilterRuleV4 struct {
	CIDR          string                   `json:"cidr,omitempty"`
	PrefixLength  *BGPFilterPrefixLength   `json:"prefixLength,omitempty"`
	Source        BGPFilterMatchSource     `json:"source,omitempty"`
	Interface     string                   `json:"interface,omitempty"`
	MatchOperator BGPFilterMatchOperator   `json:"matchOperator,omitempty"`
	PeerType      BGPFilterPeerType        `json:"peerType,omitempty"`
	Communities   *BGPFilterCommunityMatch `json:"communities,omitempty"`
	ASPathPrefix  []ASNumber               `json:"asPathPrefix,omitempty"`
	Priority      *int                     `json:"priority,omitempty"`
	Action        BGPFilterAction          `json:"action"`
	Operations    []BGPFilterOperation     `json:"operations,omitempty"`
}

// BGPFilterRuleV6 is one IPv6 filter rule; the fields are those of
// BGPFilterRuleV4.
type BGPFilterRuleV6 struct {
	CIDR          string                   `json:"cidr,omitempty"`
	PrefixLength  *BGPFilterPrefixLength   `json:"prefixLength,omitempty"`
	Source        BGPFilterMatchSource     `json:"source,omitempty"`
	Interface     string                   `json:"interface,omitempty"`
	MatchOperator BGPFilterMatchOperator   `json:"matchOperator,omitempty"`
	PeerType      BGPFilterPeerType        `json:"peerType,omitempty"`
	Communities   *BGPFilterCommunityMatch `json:"communities,omitempty"`
	ASPathPrefix  []ASNumber               `json:"asPathPrefix,omitempty"`
	Priority      *int                     `json:"priority,omitempty"`
	Action        BGPFilterAction          `json:"action"`
	Operations    []BGPFilterOperation     `json:"operations,omitempty"`
}

// BGPFilterPrefixLength bounds the prefix length of matched routes.
type BGPFilterPrefixLength struct {
	Min *int32 `json:"min,omitempty"`
	Max *int32 `json:"max,omitempty"`
}

// BGPFilterCommunityMatch matches routes carrying a community.
type BGPFilterCommunityMatch struct {
	Values []string `json:"values"`
}

// BGPFilterOperation modifies an accepted route; exactly one field is set.
type BGPFilterOperation struct {
	AddCommunity  *BGPFilterAddCommunity  `json:"addCommunity,omitempty"`
	PrependASPath *BGPFilterPrependASPath `json:"prependASPath,omitempty"`
	SetPriority   *BGPFilterSetPriority   `json:"setPriority,omitempty"`
}

// BGPFilterAddCommunity adds a community ("aa:nn" or "aa:nn:mm").
type BGPFilterAddCommunity struct {
	Value string `json:"value"`
}

// BGPFilterPrependASPath prepends AS numbers to the AS path.
type BGPFilterPrependASPath struct {
	Prefix []ASNumber `json:"prefix"`
}

// BGPFilterSetPriority sets the route priority.
type BGPFilterSetPriority struct {
	Value int `json:"value"`
}

// BGPFilterList is a list of BGPFilter.
// +kubebuilder:object:root=true
type BGPFilterList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []BGPFilter `json:"items"`
}

// NewBGPConfiguration returns an empty BGPConfiguration with TypeMeta set.
func NewBGPConfiguration() *BGPConfiguration {
	return &BGPConfiguration{TypeMeta: typeMeta(KindBGPConfiguration)}
}

// NewBGPConfigurationList returns an empty BGPConfigurationList with TypeMeta set.
func NewBGPConfigurationList() *BGPConfigurationList {
	return &BGPConfigurationList{TypeMeta: typeMeta(KindBGPConfiguration + "List")}
}

// NewBGPPeer returns an empty BGPPeer with TypeMeta set.
func NewBGPPeer() *BGPPeer { return &BGPPeer{TypeMeta: typeMeta(KindBGPPeer)} }

// NewBGPPeerList returns an empty BGPPeerList with TypeMeta set.
func NewBGPPeerList() *BGPPeerList { return &BGPPeerList{TypeMeta: typeMeta(KindBGPPeer + "List")} }

// NewBGPFilter returns an empty BGPFilter with TypeMeta set.
func NewBGPFilter() *BGPFilter { return &BGPFilter{TypeMeta: typeMeta(KindBGPFilter)} }

// NewBGPFilterList returns an empty BGPFilterList with TypeMeta set.
func NewBGPFilterList() *BGPFilterList {
	return &BGPFilterList{TypeMeta: typeMeta(KindBGPFilter + "List")}
}
