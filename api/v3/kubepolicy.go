package v3

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// StagedKubernetesNetworkPolicy is a Kubernetes NetworkPolicy that is never
// enforced. Its spec mirrors networking.k8s.io/v1 NetworkPolicySpec (the
// same JSON), so that this package needs no dependency on k8s.io/api.
// +kubebuilder:object:root=true
type StagedKubernetesNetworkPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec StagedKubernetesNetworkPolicySpec `json:"spec,omitempty"`
}

// StagedKubernetesNetworkPolicySpec is a k8s NetworkPolicySpec plus StagedAction.
type StagedKubernetesNetworkPolicySpec struct {
	StagedAction StagedAction               `json:"stagedAction,omitempty"`
	PodSelector  metav1.LabelSelector       `json:"podSelector,omitempty"`
	Ingress      []KubeNetworkPolicyIngress `json:"ingress,omitempty"`
	Egress       []KubeNetworkPolicyEgress  `json:"egress,omitempty"`
	PolicyTypes  []PolicyType               `json:"policyTypes,omitempty"`
}

// KubeNetworkPolicyIngress mirrors networking/v1 NetworkPolicyIngressRule.
type KubeNetworkPolicyIngress struct {
	Ports []KubeNetworkPolicyPort `json:"ports,omitempty"`
	From  []KubeNetworkPolicyPeer `json:"from,omitempty"`
}

// KubeNetworkPolicyEgress mirrors networking/v1 NetworkPolicyEgressRule.
type KubeNetworkPolicyEgress struct {
	Ports []KubeNetworkPolicyPort `json:"ports,omitempty"`
	To    []KubeNetworkPolicyPeer `json:"to,omitempty"`
}

// KubeNetworkPolicyPort mirrors networking/v1 NetworkPolicyPort.
type KubeNetworkPolicyPort struct {
	// Protocol is TCP, UDP or SCTP; Kubernetes defaults it to TCP.
	Protocol *string             `json:"protocol,omitempty"`
	Port     *intstr.IntOrString `json:"port,omitempty"`
	EndPort  *int32              `json:"endPort,omitempty"`
}

// KubeNetworkPolicyPeer mirrors networking/v1 NetworkPolicyPeer.
type KubeNetworkPolicyPeer struct {
	PodSelector       *metav1.LabelSelector `json:"podSelector,omitempty"`
	NamespaceSelector *metav1.LabelSelector `json:"namespaceSelector,omitempty"`
	IPBlock           *KubeIPBlock          `json:"ipBlock,omitempty"`
}

// KubeIPBlock mirrors networking/v1 IPBlock.
type KubeIPBlock struct {
	CIDR   string   `json:"cidr"`
	Except []string `json:"except,omitempty"`
}

// StagedKubernetesNetworkPolicyList is a list of StagedKubernetesNetworkPolicy.
// +kubebuilder:object:root=true
type StagedKubernetesNetworkPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []StagedKubernetesNetworkPolicy `json:"items"`
}

// NewStagedKubernetesNetworkPolicy returns an empty StagedKubernetesNetworkPolicy with TypeMeta set.
func NewStagedKubernetesNetworkPolicy() *StagedKubernetesNetworkPolicy {
	return &StagedKubernetesNetworkPolicy{TypeMeta: typeMeta(KindStagedKubernetesNetworkPolicy)}
}

// NewStagedKubernetesNetworkPolicyList returns an empty list with TypeMeta set.
func NewStagedKubernetesNetworkPolicyList() *StagedKubernetesNetworkPolicyList {
	return &StagedKubernetesNetworkPolicyList{TypeMeta: typeMeta(KindStagedKubernetesNetworkPolicy + "List")}
}
