package v3

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Kind names of the node and cluster kinds.
const (
	KindNode                         = "Node"
	KindClusterInformation           = "ClusterInformation"
	KindKubeControllersConfiguration = "KubeControllersConfiguration"
)

// Node is a host running calico-node.
// +kubebuilder:object:root=true
type Node struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   NodeSpec   `json:"spec,omitempty"`
	Status NodeStatus `json:"status,omitempty"`
}

// NodeSpec is the spec of a Node.
type NodeSpec struct {
	// BGP is nil when the node does not run BGP; an empty object is invalid.
	BGP                  *NodeBGPSpec       `json:"bgp,omitempty"`
	IPv4VXLANTunnelAddr  string             `json:"ipv4VXLANTunnelAddr,omitempty"`
	VXLANTunnelMACAddr   string             `json:"vxlanTunnelMACAddr,omitempty"`
	IPv6VXLANTunnelAddr  string             `json:"ipv6VXLANTunnelAddr,omitempty"`
	VXLANTunnelMACAddrV6 string             `json:"vxlanTunnelMACAddrV6,omitempty"`
	OrchRefs             []OrchRef          `json:"orchRefs,omitempty"`
	Wireguard            *NodeWireguardSpec `json:"wireguard,omitempty"`
	Addresses            []NodeAddress      `json:"addresses,omitempty"`
}

// NodeBGPSpec is a node's BGP identity.
type NodeBGPSpec struct {
	// ASNumber overrides the cluster AS number for this node.
	ASNumber *ASNumber `json:"asNumber,omitempty"`
	// IPv4Address and IPv6Address are in CIDR form (ip/prefix).
	IPv4Address        string `json:"ipv4Address,omitempty"`
	IPv6Address        string `json:"ipv6Address,omitempty"`
	IPv4IPIPTunnelAddr string `json:"ipv4IPIPTunnelAddr,omitempty"`
	// RouteReflectorClusterID (IPv4 form) makes the node a route reflector.
	RouteReflectorClusterID string `json:"routeReflectorClusterID,omitempty"`
}

// OrchRef names the node in an orchestrator.
type OrchRef struct {
	NodeName     string `json:"nodeName,omitempty"`
	Orchestrator string `json:"orchestrator"`
}

// NodeWireguardSpec holds the node's WireGuard interface addresses.
type NodeWireguardSpec struct {
	InterfaceIPv4Address string `json:"interfaceIPv4Address,omitempty"`
	InterfaceIPv6Address string `json:"interfaceIPv6Address,omitempty"`
}

// NodeAddressType says where a node address came from.
type NodeAddressType string

// Node address types.
const (
	NodeAddressCalicoNodeIP NodeAddressType = "CalicoNodeIP"
	NodeAddressInternalIP   NodeAddressType = "InternalIP"
	NodeAddressExternalIP   NodeAddressType = "ExternalIP"
)

// NodeAddress is one of the node's addresses (IP or CIDR form).
type NodeAddress struct {
	Address string          `json:"address"`
	Type    NodeAddressType `json:"type,omitempty"`
}

// NodeStatus is reported by the node itself.
type NodeStatus struct {
	// WireguardPublicKey and WireguardPublicKeyV6 are base64.
	WireguardPublicKey   string   `json:"wireguardPublicKey,omitempty"`
	WireguardPublicKeyV6 string   `json:"wireguardPublicKeyV6,omitempty"`
	PodCIDRs             []string `json:"podCIDRs,omitempty"`
}

// NodeList is a list of Node.
// +kubebuilder:object:root=true
type NodeList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Node `json:"items"`
}

// ClusterInformation describes the cluster; its name is "default".
// +kubebuilder:object:root=true
type ClusterInformation struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec ClusterInformationSpec `json:"spec,omitempty"`
}

// ClusterInformationSpec is the spec of a ClusterInformation.
type ClusterInformationSpec struct {
	ClusterGUID string `json:"clusterGUID,omitempty"`
	// ClusterType is a comma-separated list such as "k8s,bgp,kubeadm".
	ClusterType   string `json:"clusterType,omitempty"`
	CalicoVersion string `json:"calicoVersion,omitempty"`
	// DatastoreReady false makes the CNI plugin and Felix wait.
	DatastoreReady *bool  `json:"datastoreReady,omitempty"`
	Variant        string `json:"variant,omitempty"`
}

// ClusterInformationList is a list of ClusterInformation.
// +kubebuilder:object:root=true
type ClusterInformationList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ClusterInformation `json:"items"`
}

// ControllerMode enables or disables a kube-controllers feature.
type ControllerMode string

// Controller modes.
const (
	ControllerEnabled  ControllerMode = "Enabled"
	ControllerDisabled ControllerMode = "Disabled"
)

// KubeControllersConfiguration configures calico-kube-controllers; its name
// is "default".
// +kubebuilder:object:root=true
type KubeControllersConfiguration struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   KubeControllersConfigurationSpec   `json:"spec,omitempty"`
	Status KubeControllersConfigurationStatus `json:"status,omitempty"`
}

// KubeControllersConfigurationSpec is the spec of a KubeControllersConfiguration.
type KubeControllersConfigurationSpec struct {
	LogSeverityScreen      string            `json:"logSeverityScreen,omitempty"`
	HealthChecks           ControllerMode    `json:"healthChecks,omitempty"`
	EtcdV3CompactionPeriod *metav1.Duration  `json:"etcdV3CompactionPeriod,omitempty"`
	PrometheusMetricsPort  *int              `json:"prometheusMetricsPort,omitempty"`
	DebugProfilePort       *int32            `json:"debugProfilePort,omitempty"`
	Controllers            ControllersConfig `json:"controllers"`
}

// ControllersConfig enables and configures each controller; nil disables it.
type ControllersConfig struct {
	Node             *NodeControllerConfig             `json:"node,omitempty"`
	Policy           *PolicyControllerConfig           `json:"policy,omitempty"`
	WorkloadEndpoint *WorkloadEndpointControllerConfig `json:"workloadEndpoint,omitempty"`
	ServiceAccount   *ServiceAccountControllerConfig   `json:"serviceAccount,omitempty"`
	Namespace        *NamespaceControllerConfig        `json:"namespace,omitempty"`
	LoadBalancer     *LoadBalancerControllerConfig     `json:"loadBalancer,omitempty"`
}

// NodeControllerConfig configures the node controller.
type NodeControllerConfig struct {
	ReconcilerPeriod *metav1.Duration        `json:"reconcilerPeriod,omitempty"`
	SyncLabels       ControllerMode          `json:"syncLabels,omitempty"`
	HostEndpoint     *AutoHostEndpointConfig `json:"hostEndpoint,omitempty"`
	// LeakGracePeriod is how long an IP may look leaked before release.
	LeakGracePeriod *metav1.Duration `json:"leakGracePeriod,omitempty"`
}

// AutoHostEndpointConfig configures automatic host endpoints.
type AutoHostEndpointConfig struct {
	AutoCreate                ControllerMode `json:"autoCreate,omitempty"`
	CreateDefaultHostEndpoint ControllerMode `json:"createDefaultHostEndpoint,omitempty"`
}

// PolicyControllerConfig configures the policy controller.
type PolicyControllerConfig struct {
	ReconcilerPeriod *metav1.Duration `json:"reconcilerPeriod,omitempty"`
}

// WorkloadEndpointControllerConfig configures the workload endpoint controller.
type WorkloadEndpointControllerConfig struct {
	ReconcilerPeriod *metav1.Duration `json:"reconcilerPeriod,omitempty"`
}

// ServiceAccountControllerConfig configures the service account controller.
type ServiceAccountControllerConfig struct {
	ReconcilerPeriod *metav1.Duration `json:"reconcilerPeriod,omitempty"`
}

// NamespaceControllerConfig configures the namespace controller.
type NamespaceControllerConfig struct {
	ReconcilerPeriod *metav1.Duration `json:"reconcilerPeriod,omitempty"`
}

// LoadBalancerControllerConfig configures LoadBalancer IP assignment.
type LoadBalancerControllerConfig struct {
	// AssignIPs is AllServices or RequestedServicesOnly.
	AssignIPs string `json:"assignIPs,omitempty"`
}

// KubeControllersConfigurationStatus reports the configuration in effect.
type KubeControllersConfigurationStatus struct {
	RunningConfig   *KubeControllersConfigurationSpec `json:"runningConfig,omitempty"`
	EnvironmentVars map[string]string                 `json:"environmentVars,omitempty"`
}

// KubeControllersConfigurationList is a list of KubeControllersConfiguration.
// +kubebuilder:object:root=true
type KubeControllersConfigurationList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []KubeControllersConfiguration `json:"items"`
}

// NewNode returns an empty Node with TypeMeta set.
func NewNode() *Node { return &Node{TypeMeta: typeMeta(KindNode)} }

// NewNodeList returns an empty NodeList with TypeMeta set.
func NewNodeList() *NodeList { return &NodeList{TypeMeta: typeMeta(KindNode + "List")} }

// NewClusterInformation returns an empty ClusterInformation with TypeMeta set.
func NewClusterInformation() *ClusterInformation {
	return &ClusterInformation{TypeMeta: typeMeta(KindClusterInformation)}
}

// NewClusterInformationList returns an empty ClusterInformationList with TypeMeta set.
func NewClusterInformationList() *ClusterInformationList {
	return &ClusterInformationList{TypeMeta: typeMeta(KindClusterInformation + "List")}
}

// NewKubeControllersConfiguration returns an empty KubeControllersConfiguration with TypeMeta set.
func NewKubeControllersConfiguration() *KubeControllersConfiguration {
	return &KubeControllersConfiguration{TypeMeta: typeMeta(KindKubeControllersConfiguration)}
}

// NewKubeControllersConfigurationList returns an empty list with TypeMeta set.
func NewKubeControllersConfigurationList() *KubeControllersConfigurationList {
	return &KubeControllersConfigurationList{TypeMeta: typeMeta(KindKubeControllersConfiguration + "List")}
}
