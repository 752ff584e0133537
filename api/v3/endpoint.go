package v3

import (
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Kind names of endpoints, sets and profiles.
const (
	KindHostEndpoint     = "HostEndpoint"
	KindWorkloadEndpoint = "WorkloadEndpoint"
	KindNetworkSet       = "NetworkSet"
	KindGlobalNetworkSet = "GlobalNetworkSet"
	KindProfile          = "Profile"
)

// Well-known labels.
const (
	LabelNamespace      = "projectcalico.org/namespace"
	LabelOrchestrator   = "projectcalico.org/orchestrator"
	LabelServiceAccount = "projectcalico.org/serviceaccount"
)

// Profile names and label prefixes derived from Kubernetes namespaces and
// service accounts.
const (
	ProfilePrefixNamespace      = "kns."
	ProfilePrefixServiceAccount = "ksa."
	DefaultAllowProfileName     = "projectcalico-default-allow"
	NamespaceLabelPrefix        = "pcns."
	ServiceAccountLabelPrefix   = "pcsa."
	// LabelName carries the namespace or service account name itself
	// (after the prefix: "pcns.projectcalico.org/name").
	LabelName = "projectcalico.org/name"
)

// Orchestrator names used in WorkloadEndpoint.spec.orchestrator.
const (
	OrchestratorKubernetes = "k8s"
	OrchestratorCNI        = "cni"
	OrchestratorLibnetwork = "libnetwork"
	OrchestratorOpenStack  = "openstack"
)

// HostEndpoint is an interface (or set of IPs) of a host that policy applies to.
// +kubebuilder:object:root=true
type HostEndpoint struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec HostEndpointSpec `json:"spec,omitempty"`
}

// HostEndpointSpec is the spec of a HostEndpoint.
type HostEndpointSpec struct {
	// Node is required.
	Node string `json:"node,omitempty"`
	// InterfaceName is a Linux interface name, or "*" for all of the host's
	// interfaces.
	InterfaceName string `json:"interfaceName,omitempty"`
	// ExpectedIPs are the only way other nodes' selectors resolve the HEP to IPs.
	ExpectedIPs []string       `json:"expectedIPs,omitempty"`
	Profiles    []string       `json:"profiles,omitempty"`
	Ports       []EndpointPort `json:"ports,omitempty"`
}

// EndpointPort is a named port of a host endpoint.
type EndpointPort struct {
	Name     string   `json:"name"`
	Protocol Protocol `json:"protocol"`
	Port     uint16   `json:"port"`
}

// HostEndpointList is a list of HostEndpoint.
// +kubebuilder:object:root=true
type HostEndpointList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []HostEndpoint `json:"items"`
}

// WorkloadEndpoint is a pod's (or VM's, container's) network interface.
// +kubebuilder:object:root=true
type WorkloadEndpoint struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec WorkloadEndpointSpec `json:"spec,omitempty"`
}

// WorkloadEndpointSpec is the spec of a WorkloadEndpoint.
type WorkloadEndpointSpec struct {
	Orchestrator       string `json:"orchestrator,omitempty"`
	Workload           string `json:"workload,omitempty"`
	Node               string `json:"node,omitempty"`
	ContainerID        string `json:"containerID,omitempty"`
	Pod                string `json:"pod,omitempty"`
	Endpoint           string `json:"endpoint,omitempty"`
	ServiceAccountName string `json:"serviceAccountName,omitempty"`
	// IPNetworks are /32 or /128 CIDRs.
	IPNetworks                 []string               `json:"ipNetworks,omitempty"`
	IPNATs                     []IPNAT                `json:"ipNATs,omitempty"`
	IPv4Gateway                string                 `json:"ipv4Gateway,omitempty"`
	IPv6Gateway                string                 `json:"ipv6Gateway,omitempty"`
	Profiles                   []string               `json:"profiles,omitempty"`
	InterfaceName              string                 `json:"interfaceName,omitempty"`
	MAC                        string                 `json:"mac,omitempty"`
	Ports                      []WorkloadEndpointPort `json:"ports,omitempty"`
	AllowSpoofedSourcePrefixes []string               `json:"allowSpoofedSourcePrefixes,omitempty"`
	QoSControls                *QoSControls           `json:"qosControls,omitempty"`
}

// IPNAT is a 1:1 NAT mapping of a workload address.
type IPNAT struct {
	InternalIP string `json:"internalIP"`
	ExternalIP string `json:"externalIP"`
}

// WorkloadEndpointPort is a named port of a workload, optionally exposed on
// the host.
type WorkloadEndpointPort struct {
	Name     string   `json:"name"`
	Protocol Protocol `json:"protocol"`
	Port     uint16   `json:"port"`
	HostPort uint16   `json:"hostPort"`
	HostIP   string   `json:"hostIP"`
}

// QoSControls limits a workload's bandwidth, packet rate and connections.
// Bandwidths are in bits per second, bursts in bits.
type QoSControls struct {
	IngressBandwidth      int64               `json:"ingressBandwidth,omitempty"`
	EgressBandwidth       int64               `json:"egressBandwidth,omitempty"`
	IngressBurst          int64               `json:"ingressBurst,omitempty"`
	EgressBurst           int64               `json:"egressBurst,omitempty"`
	IngressPeakrate       int64               `json:"ingressPeakrate,omitempty"`
	EgressPeakrate        int64               `json:"egressPeakrate,omitempty"`
	IngressMinburst       int64               `json:"ingressMinburst,omitempty"`
	EgressMinburst        int64               `json:"egressMinburst,omitempty"`
	IngressPacketRate     int64               `json:"ingressPacketRate,omitempty"`
	EgressPacketRate      int64               `json:"egressPacketRate,omitempty"`
	IngressPacketBurst    int64               `json:"ingressPacketBurst,omitempty"`
	EgressPacketBurst     int64               `json:"egressPacketBurst,omitempty"`
	IngressMaxConnections int64               `json:"ingressMaxConnections,omitempty"`
	EgressMaxConnections  int64               `json:"egressMaxConnections,omitempty"`
	DSCP                  *intstr.IntOrString `json:"dscp,omitempty"`
}

// WorkloadEndpointList is a list of WorkloadEndpoint.
// +kubebuilder:object:root=true
type WorkloadEndpointList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []WorkloadEndpoint `json:"items"`
}

// NetworkSet is a namespaced set of CIDRs that rule selectors can match.
// +kubebuilder:object:root=true
type NetworkSet struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec NetworkSetSpec `json:"spec,omitempty"`
}

// NetworkSetSpec is the spec of a NetworkSet.
type NetworkSetSpec struct {
	Nets []string `json:"nets,omitempty"`
}

// NetworkSetList is a list of NetworkSet.
// +kubebuilder:object:root=true
type NetworkSetList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []NetworkSet `json:"items"`
}

// GlobalNetworkSet is a cluster-wide set of CIDRs that rule selectors can match.
// +kubebuilder:object:root=true
type GlobalNetworkSet struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec GlobalNetworkSetSpec `json:"spec,omitempty"`
}

// GlobalNetworkSetSpec is the spec of a GlobalNetworkSet.
type GlobalNetworkSetSpec struct {
	Nets []string `json:"nets,omitempty"`
}

// GlobalNetworkSetList is a list of GlobalNetworkSet.
// +kubebuilder:object:root=true
type GlobalNetworkSetList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []GlobalNetworkSet `json:"items"`
}

// Profile carries rules and labels that endpoints listing it inherit.
// +kubebuilder:object:root=true
type Profile struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec ProfileSpec `json:"spec,omitempty"`
}

// ProfileSpec is the spec of a Profile.
type ProfileSpec struct {
	Ingress []Rule `json:"ingress,omitempty"`
	Egress  []Rule `json:"egress,omitempty"`
	// LabelsToApply are added to the endpoints using the profile; the
	// endpoint's own labels win on conflict.
	LabelsToApply map[string]string `json:"labelsToApply,omitempty"`
}

// ProfileList is a list of Profile.
// +kubebuilder:object:root=true
type ProfileList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Profile `json:"items"`
}

// NewHostEndpoint returns an empty HostEndpoint with TypeMeta set.
func NewHostEndpoint() *HostEndpoint { return &HostEndpoint{TypeMeta: typeMeta(KindHostEndpoint)} }

// NewHostEndpointList returns an empty HostEndpointList with TypeMeta set.
func NewHostEndpointList() *HostEndpointList {
	return &HostEndpointList{TypeMeta: typeMeta(KindHostEndpoint + "List")}
}

// NewWorkloadEndpoint returns an empty WorkloadEndpoint with TypeMeta set.
func NewWorkloadEndpoint() *WorkloadEndpoint {
	return &WorkloadEndpoint{TypeMeta: typeMeta(KindWorkloadEndpoint)}
}

// NewWorkloadEndpointList returns an empty WorkloadEndpointList with TypeMeta set.
func NewWorkloadEndpointList() *WorkloadEndpointList {
	return &WorkloadEndpointList{TypeMeta: typeMeta(KindWorkloadEndpoint + "List")}
}

// NewNetworkSet returns an empty NetworkSet with TypeMeta set.
func NewNetworkSet() *NetworkSet { return &NetworkSet{TypeMeta: typeMeta(KindNetworkSet)} }

// NewNetworkSetList returns an empty NetworkSetList with TypeMeta set.
func NewNetworkSetList() *NetworkSetList {
	return &NetworkSetList{TypeMeta: typeMeta(KindNetworkSet + "List")}
}

// NewGlobalNetworkSet returns an empty GlobalNetworkSet with TypeMeta set.
func NewGlobalNetworkSet() *GlobalNetworkSet {
	return &GlobalNetworkSet{TypeMeta: typeMeta(KindGlobalNetworkSet)}
}

// NewGlobalNetworkSetList returns an empty GlobalNetworkSetList with TypeMeta set.
func NewGlobalNetworkSetList() *GlobalNetworkSetList {
	return &GlobalNetworkSetList{TypeMeta: typeMeta(KindGlobalNetworkSet + "List")}
}

// NewProfile returns an empty Profile with TypeMeta set.
func NewProfile() *Profile { return &Profile{TypeMeta: typeMeta(KindProfile)} }

// NewProfileList returns an empty ProfileList with TypeMeta set.
func NewProfileList() *ProfileList { return &ProfileList{TypeMeta: typeMeta(KindProfile + "List")} }

// WorkloadEndpointName returns Calico's name for a workload endpoint:
// "<node>-<orchestrator>-<workload>-<endpoint>", each segment with every
// "-" doubled so the segments stay recoverable ("n1-k8s-my--pod-eth0").
// For Kubernetes the workload segment is the pod name.
func WorkloadEndpointName(node, orchestrator, workload, endpoint string) string {
	esc := func(s string) string { return strings.ReplaceAll(s, "-", "--") }
	return esc(node) + "-" + esc(orchestrator) + "-" + esc(workload) + "-" + esc(endpoint)
}
