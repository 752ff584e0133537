package v3

// FelixConfiguration carries the parameters of SPEC §1.6 under Calico's JSON
// names, plus the common knobs around them. Left out for now (Calico has
// them; adding one is a field plus, if it is an enum, a validation entry):
// the flow-log and DNS-policy families, the OpenStack metadata knobs
// (metadataAddr/metadataPort, openstackRegion), debug knobs
// (debugMemoryProfilePath, debugDisableLogDropping, debugSimulate*,
// debugHost/debugPort), most bpf* map sizes and tuning knobs beyond those
// listed below, xdp*, awsSrcDstCheck, aws/gke/gce specific settings,
// sidecarAccelerationEnabled, routeTableRange (deprecated single range),
// goGCThreshold/goMemoryLimitMB/goMaxProcs, featureDetectOverride,
// featureGates, healthTimeoutOverrides, windows* and live-migration knobs.

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// KindFelixConfiguration is the kind name of FelixConfiguration.
const KindFelixConfiguration = "FelixConfiguration"

// FelixConfiguration holds Felix settings: "default" for the cluster,
// "node.<name>" for one node, or any name with Spec.NodeSelector.
// Nil fields take the built-in default.
// +kubebuilder:object:root=true
type FelixConfiguration struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec FelixConfigurationSpec `json:"spec,omitempty"`
}

// ProtoPort is a failsafe port: protocol (default tcp), port and an
// optional CIDR the peer must be in.
type ProtoPort struct {
	Protocol string `json:"protocol"`
	Port     uint16 `json:"port"`
	Net      string `json:"net,omitempty"`
}

// RouteTableIDRange is an inclusive range of routing table indexes.
type RouteTableIDRange struct {
	Min int `json:"min"`
	Max int `json:"max"`
}

// FelixConfigurationSpec is the spec of a FelixConfiguration.
type FelixConfigurationSpec struct {
	// NodeSelector applies a non-"default", non-"node.*" resource to the
	// nodes it matches; the oldest matching resource wins.
	NodeSelector string `json:"nodeSelector,omitempty"`

	// Policy plumbing.
	DefaultEndpointToHostAction  string       `json:"defaultEndpointToHostAction,omitempty"`
	FailsafeInboundHostPorts     *[]ProtoPort `json:"failsafeInboundHostPorts,omitempty"`
	FailsafeOutboundHostPorts    *[]ProtoPort `json:"failsafeOutboundHostPorts,omitempty"`
	ChainInsertMode              string       `json:"chainInsertMode,omitempty"`
	IptablesFilterAllowAction    string       `json:"iptablesFilterAllowAction,omitempty"`
	IptablesMangleAllowAction    string       `json:"iptablesMangleAllowAction,omitempty"`
	IptablesFilterDenyAction     string       `json:"iptablesFilterDenyAction,omitempty"`
	NftablesFilterAllowAction    string       `json:"nftablesFilterAllowAction,omitempty"`
	NftablesMangleAllowAction    string       `json:"nftablesMangleAllowAction,omitempty"`
	NftablesFilterDenyAction     string       `json:"nftablesFilterDenyAction,omitempty"`
	IptablesMarkMask             *uint32      `json:"iptablesMarkMask,omitempty"`
	NftablesMarkMask             *uint32      `json:"nftablesMarkMask,omitempty"`
	LogPrefix                    string       `json:"logPrefix,omitempty"`
	DisableConntrackInvalidCheck *bool        `json:"disableConntrackInvalidCheck,omitempty"`
	PolicySyncPathPrefix         string       `json:"policySyncPathPrefix,omitempty"`

	// Refresh and backend.
	UseInternalDataplaneDriver     *bool            `json:"useInternalDataplaneDriver,omitempty"`
	DataplaneDriver                string           `json:"dataplaneDriver,omitempty"`
	IptablesRefreshInterval        *metav1.Duration `json:"iptablesRefreshInterval,omitempty"`
	NftablesRefreshInterval        *metav1.Duration `json:"nftablesRefreshInterval,omitempty"`
	IpsetsRefreshInterval          *metav1.Duration `json:"ipsetsRefreshInterval,omitempty"`
	RouteRefreshInterval           *metav1.Duration `json:"routeRefreshInterval,omitempty"`
	InterfaceRefreshInterval       *metav1.Duration `json:"interfaceRefreshInterval,omitempty"`
	IptablesPostWriteCheckInterval *metav1.Duration `json:"iptablesPostWriteCheckInterval,omitempty"`
	IptablesLockTimeout            *metav1.Duration `json:"iptablesLockTimeout,omitempty"`
	IptablesLockProbeInterval      *metav1.Duration `json:"iptablesLockProbeInterval,omitempty"`
	NetlinkTimeout                 *metav1.Duration `json:"netlinkTimeout,omitempty"`
	IptablesBackend                string           `json:"iptablesBackend,omitempty"`
	NFTablesMode                   string           `json:"nftablesMode,omitempty"`
	MaxIpsetSize                   *int             `json:"maxIpsetSize,omitempty"`

	// Interfaces and routes.
	InterfacePrefix              string              `json:"interfacePrefix,omitempty"`
	InterfaceExclude             string              `json:"interfaceExclude,omitempty"`
	IPv6Support                  *bool               `json:"ipv6Support,omitempty"`
	RouteTableRanges             []RouteTableIDRange `json:"routeTableRanges,omitempty"`
	RouteSource                  string              `json:"routeSource,omitempty"`
	DeviceRouteSourceAddress     string              `json:"deviceRouteSourceAddress,omitempty"`
	DeviceRouteSourceAddressIPv6 string              `json:"deviceRouteSourceAddressIPv6,omitempty"`
	DeviceRouteProtocol          *int                `json:"deviceRouteProtocol,omitempty"`
	RemoveExternalRoutes         *bool               `json:"removeExternalRoutes,omitempty"`
	MTUIfacePattern              string              `json:"mtuIfacePattern,omitempty"`
	ExternalNodesCIDRList        *[]string           `json:"externalNodesCIDRList,omitempty"`

	// Encapsulation.
	IPIPEnabled                    *bool   `json:"ipipEnabled,omitempty"`
	IPIPMTU                        *int    `json:"ipipMTU,omitempty"`
	VXLANEnabled                   *bool   `json:"vxlanEnabled,omitempty"`
	VXLANMTU                       *int    `json:"vxlanMTU,omitempty"`
	VXLANMTUV6                     *int    `json:"vxlanMTUV6,omitempty"`
	VXLANPort                      *int    `json:"vxlanPort,omitempty"`
	VXLANVNI                       *int    `json:"vxlanVNI,omitempty"`
	AllowVXLANPacketsFromWorkloads *bool   `json:"allowVXLANPacketsFromWorkloads,omitempty"`
	AllowIPIPPacketsFromWorkloads  *bool   `json:"allowIPIPPacketsFromWorkloads,omitempty"`
	ProgramClusterRoutes           *string `json:"programClusterRoutes,omitempty"`

	// WireGuard.
	WireguardEnabled               *bool            `json:"wireguardEnabled,omitempty"`
	WireguardEnabledV6             *bool            `json:"wireguardEnabledV6,omitempty"`
	WireguardListeningPort         *int             `json:"wireguardListeningPort,omitempty"`
	WireguardListeningPortV6       *int             `json:"wireguardListeningPortV6,omitempty"`
	WireguardRoutingRulePriority   *int             `json:"wireguardRoutingRulePriority,omitempty"`
	WireguardInterfaceName         string           `json:"wireguardInterfaceName,omitempty"`
	WireguardInterfaceNameV6       string           `json:"wireguardInterfaceNameV6,omitempty"`
	WireguardMTU                   *int             `json:"wireguardMTU,omitempty"`
	WireguardMTUV6                 *int             `json:"wireguardMTUV6,omitempty"`
	WireguardHostEncryptionEnabled *bool            `json:"wireguardHostEncryptionEnabled,omitempty"`
	WireguardKeepAlive             *metav1.Duration `json:"wireguardKeepAlive,omitempty"`

	// eBPF.
	BPFEnabled                         *bool            `json:"bpfEnabled,omitempty"`
	BPFDisableUnprivileged             *bool            `json:"bpfDisableUnprivileged,omitempty"`
	BPFLogLevel                        string           `json:"bpfLogLevel,omitempty"`
	BPFDataIfacePattern                string           `json:"bpfDataIfacePattern,omitempty"`
	BPFConnectTimeLoadBalancing        string           `json:"bpfConnectTimeLoadBalancing,omitempty"`
	BPFExternalServiceMode             string           `json:"bpfExternalServiceMode,omitempty"`
	BPFKubeProxyIptablesCleanupEnabled *bool            `json:"bpfKubeProxyIptablesCleanupEnabled,omitempty"`
	BPFKubeProxyMinSyncPeriod          *metav1.Duration `json:"bpfKubeProxyMinSyncPeriod,omitempty"`
	BPFMapSizeConntrack                *int             `json:"bpfMapSizeConntrack,omitempty"`
	BPFMapSizeNATFrontend              *int             `json:"bpfMapSizeNATFrontend,omitempty"`
	BPFMapSizeNATBackend               *int             `json:"bpfMapSizeNATBackend,omitempty"`
	BPFMapSizeRoute                    *int             `json:"bpfMapSizeRoute,omitempty"`
	BPFMapSizeIPSets                   *int             `json:"bpfMapSizeIPSets,omitempty"`
	BPFPSNATPorts                      *Port            `json:"bpfPSNATPorts,omitempty"`
	BPFEnforceRPF                      string           `json:"bpfEnforceRPF,omitempty"`

	// NAT.
	NATOutgoingAddress     string  `json:"natOutgoingAddress,omitempty"`
	NATPortRange           *Port   `json:"natPortRange,omitempty"`
	NATOutgoingExclusions  string  `json:"natOutgoingExclusions,omitempty"`
	KubeNodePortRanges     *[]Port `json:"kubeNodePortRanges,omitempty"`
	ServiceLoopPrevention  string  `json:"serviceLoopPrevention,omitempty"`
	WorkloadSourceSpoofing string  `json:"workloadSourceSpoofing,omitempty"`

	// Observability.
	LogFilePath                     string           `json:"logFilePath,omitempty"`
	LogSeverityFile                 string           `json:"logSeverityFile,omitempty"`
	LogSeverityScreen               string           `json:"logSeverityScreen,omitempty"`
	LogSeveritySys                  string           `json:"logSeveritySys,omitempty"`
	LogDebugFilenameRegex           string           `json:"logDebugFilenameRegex,omitempty"`
	HealthEnabled                   *bool            `json:"healthEnabled,omitempty"`
	HealthHost                      *string          `json:"healthHost,omitempty"`
	HealthPort                      *int             `json:"healthPort,omitempty"`
	PrometheusMetricsEnabled        *bool            `json:"prometheusMetricsEnabled,omitempty"`
	PrometheusMetricsHost           string           `json:"prometheusMetricsHost,omitempty"`
	PrometheusMetricsPort           *int             `json:"prometheusMetricsPort,omitempty"`
	PrometheusGoMetricsEnabled      *bool            `json:"prometheusGoMetricsEnabled,omitempty"`
	PrometheusProcessMetricsEnabled *bool            `json:"prometheusProcessMetricsEnabled,omitempty"`
	ReportingInterval               *metav1.Duration `json:"reportingInterval,omitempty"`
	ReportingTTL                    *metav1.Duration `json:"reportingTTL,omitempty"`
	EndpointReportingEnabled        *bool            `json:"endpointReportingEnabled,omitempty"`
	EndpointReportingDelay          *metav1.Duration `json:"endpointReportingDelay,omitempty"`
	UsageReportingEnabled           *bool            `json:"usageReportingEnabled,omitempty"`
	UsageReportingInitialDelay      *metav1.Duration `json:"usageReportingInitialDelay,omitempty"`
	UsageReportingInterval          *metav1.Duration `json:"usageReportingInterval,omitempty"`
}

// FelixConfigurationList is a list of FelixConfiguration.
// +kubebuilder:object:root=true
type FelixConfigurationList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []FelixConfiguration `json:"items"`
}

// NewFelixConfiguration returns an empty FelixConfiguration with TypeMeta set.
func NewFelixConfiguration() *FelixConfiguration {
	return &FelixConfiguration{TypeMeta: typeMeta(KindFelixConfiguration)}
}

// NewFelixConfigurationList returns an empty FelixConfigurationList with TypeMeta set.
func NewFelixConfigurationList() *FelixConfigurationList {
	return &FelixConfigurationList{TypeMeta: typeMeta(KindFelixConfiguration + "List")}
}
