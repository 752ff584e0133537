package v3

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Kind names of the policy kinds.
const (
	KindNetworkPolicy                 = "NetworkPolicy"
	KindGlobalNetworkPolicy           = "GlobalNetworkPolicy"
	KindStagedNetworkPolicy           = "StagedNetworkPolicy"
	KindStagedGlobalNetworkPolicy     = "StagedGlobalNetworkPolicy"
	KindStagedKubernetesNetworkPolicy = "StagedKubernetesNetworkPolicy"
	KindTier                          = "Tier"
)

// Well-known tiers.
const (
	DefaultTierName       = "default"
	KubeAdminTierName     = "kube-admin"
	KubeBaselineTierName  = "kube-baseline"
	DefaultTierOrder      = 1_000_000
	KubeAdminTierOrder    = 1_000
	KubeBaselineTierOrder = 10_000_000
)

// TierFinalizer keeps a tier until no policy refers to it.
const TierFinalizer = "projectcalico.org/tier-controller"

// PolicyPerformanceHint tunes how the dataplane handles a policy.
type PolicyPerformanceHint string

// PerfHintAssumeNeededOnEveryNode pre-loads the policy on every node.
const PerfHintAssumeNeededOnEveryNode PolicyPerformanceHint = "AssumeNeededOnEveryNode"

// StagedAction says what a staged policy would do if it were enforced.
type StagedAction string

// Staged actions; Set is the default.
const (
	StagedActionSet    StagedAction = "Set"
	StagedActionDelete StagedAction = "Delete"
	StagedActionLearn  StagedAction = "Learn"
	StagedActionIgnore StagedAction = "Ignore"
)

// NetworkPolicy is a namespaced policy: it selects only endpoints in its own
// namespace.
// +kubebuilder:object:root=true
type NetworkPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec NetworkPolicySpec `json:"spec,omitempty"`
}

// NetworkPolicySpec is the spec of a NetworkPolicy.
type NetworkPolicySpec struct {
	// Tier defaults to "default".
	Tier string `json:"tier,omitempty"`
	// Order: lower orders apply first; nil sorts last.
	Order                  *float64                `json:"order,omitempty"`
	Ingress                []Rule                  `json:"ingress,omitempty"`
	Egress                 []Rule                  `json:"egress,omitempty"`
	Selector               string                  `json:"selector,omitempty"`
	Types                  []PolicyType            `json:"types,omitempty"`
	ServiceAccountSelector string                  `json:"serviceAccountSelector,omitempty"`
	PerformanceHints       []PolicyPerformanceHint `json:"performanceHints,omitempty"`
}

// NetworkPolicyList is a list of NetworkPolicy.
// +kubebuilder:object:root=true
type NetworkPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []NetworkPolicy `json:"items"`
}

// GlobalNetworkPolicy is a cluster-wide policy.
// +kubebuilder:object:root=true
type GlobalNetworkPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec GlobalNetworkPolicySpec `json:"spec,omitempty"`
}

// GlobalNetworkPolicySpec is the spec of a GlobalNetworkPolicy.
type GlobalNetworkPolicySpec struct {
	Tier     string       `json:"tier,omitempty"`
	Order    *float64     `json:"order,omitempty"`
	Ingress  []Rule       `json:"ingress,omitempty"`
	Egress   []Rule       `json:"egress,omitempty"`
	Selector string       `json:"selector,omitempty"`
	Types    []PolicyType `json:"types,omitempty"`
	// DoNotTrack applies the policy before connection tracking; it needs
	// ApplyOnForward and excludes PreDNAT.
	DoNotTrack bool `json:"doNotTrack,omitempty"`
	// PreDNAT applies the policy before DNAT; ingress only.
	PreDNAT bool `json:"preDNAT,omitempty"`
	// ApplyOnForward applies host endpoint policy to forwarded traffic too.
	ApplyOnForward         bool                    `json:"applyOnForward,omitempty"`
	ServiceAccountSelector string                  `json:"serviceAccountSelector,omitempty"`
	NamespaceSelector      string                  `json:"namespaceSelector,omitempty"`
	PerformanceHints       []PolicyPerformanceHint `json:"performanceHints,omitempty"`
}

// GlobalNetworkPolicyList is a list of GlobalNetworkPolicy.
// +kubebuilder:object:root=true
type GlobalNetworkPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []GlobalNetworkPolicy `json:"items"`
}

// StagedNetworkPolicy is a NetworkPolicy that is never enforced; it only
// shows in flow logs what it would do.
// +kubebuilder:object:root=true
type StagedNetworkPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec StagedNetworkPolicySpec `json:"spec,omitempty"`
}

// StagedNetworkPolicySpec is NetworkPolicySpec plus StagedAction.
type StagedNetworkPolicySpec struct {
	// StagedAction defaults to Set. With Delete only Tier may be set.
	StagedAction           StagedAction            `json:"stagedAction,omitempty"`
	Tier                   string                  `json:"tier,omitempty"`
	Order                  *float64                `json:"order,omitempty"`
	Ingress                []Rule                  `json:"ingress,omitempty"`
	Egress                 []Rule                  `json:"egress,omitempty"`
	Selector               string                  `json:"selector,omitempty"`
	Types                  []PolicyType            `json:"types,omitempty"`
	ServiceAccountSelector string                  `json:"serviceAccountSelector,omitempty"`
	PerformanceHints       []PolicyPerformanceHint `json:"performanceHints,omitempty"`
}

// StagedNetworkPolicyList is a list of StagedNetworkPolicy.
// +kubebuilder:object:root=true
type StagedNetworkPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []StagedNetworkPolicy `json:"items"`
}

// StagedGlobalNetworkPolicy is a GlobalNetworkPolicy that is never enforced.
// +kubebuilder:object:root=true
type StagedGlobalNetworkPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec StagedGlobalNetworkPolicySpec `json:"spec,omitempty"`
}

// StagedGlobalNetworkPolicySpec is GlobalNetworkPolicySpec plus StagedAction.
type StagedGlobalNetworkPolicySpec struct {
	StagedAction           StagedAction            `json:"stagedAction,omitempty"`
	Tier                   string                  `json:"tier,omitempty"`
	Order                  *float64                `json:"order,omitempty"`
	Ingress                []Rule                  `json:"ingress,omitempty"`
	Egress                 []Rule                  `json:"egress,omitempty"`
	Selector               string                  `json:"selector,omitempty"`
	Types                  []PolicyType            `json:"types,omitempty"`
	DoNotTrack             bool                    `json:"doNotTrack,omitempty"`
	PreDNAT                bool                    `json:"preDNAT,omitempty"`
	ApplyOnForward         bool                    `json:"applyOnForward,omitempty"`
	ServiceAccountSelector string                  `json:"serviceAccountSelector,omitempty"`
	NamespaceSelector      string                  `json:"namespaceSelector,omitempty"`
	PerformanceHints       []PolicyPerformanceHint `json:"performanceHints,omitempty"`
}

// StagedGlobalNetworkPolicyList is a list of StagedGlobalNetworkPolicy.
// +kubebuilder:object:root=true
type StagedGlobalNetworkPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []StagedGlobalNetworkPolicy `json:"items"`
}

// Tier groups policies; tiers are evaluated in order, and a packet that no
// policy in a tier decides gets the tier's default action.
// +kubebuilder:object:root=true
type Tier struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   TierSpec    `json:"spec,omitempty"`
	Status *TierStatus `json:"status,omitempty"`
}

// TierSpec is the spec of a Tier.
type TierSpec struct {
	// Order: lower orders apply first; nil sorts last.
	Order *float64 `json:"order,omitempty"`
	// DefaultAction is Deny (the default) or Pass.
	DefaultAction *Action `json:"defaultAction,omitempty"`
}

// TierStatus reports, for example, why a delete is pending.
type TierStatus struct {
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// TierList is a list of Tier.
// +kubebuilder:object:root=true
type TierList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Tier `json:"items"`
}

// NewNetworkPolicy returns an empty NetworkPolicy with TypeMeta set.
func NewNetworkPolicy() *NetworkPolicy {
	return &NetworkPolicy{TypeMeta: typeMeta(KindNetworkPolicy)}
}

// NewNetworkPolicyList returns an empty NetworkPolicyList with TypeMeta set.
func NewNetworkPolicyList() *NetworkPolicyList {
	return &NetworkPolicyList{TypeMeta: typeMeta(KindNetworkPolicy + "List")}
}

// NewGlobalNetworkPolicy returns an empty GlobalNetworkPolicy with TypeMeta set.
func NewGlobalNetworkPolicy() *GlobalNetworkPolicy {
	return &GlobalNetworkPolicy{TypeMeta: typeMeta(KindGlobalNetworkPolicy)}
}

// NewGlobalNetworkPolicyList returns an empty GlobalNetworkPolicyList with TypeMeta set.
func NewGlobalNetworkPolicyList() *GlobalNetworkPolicyList {
	return &GlobalNetworkPolicyList{TypeMeta: typeMeta(KindGlobalNetworkPolicy + "List")}
}

// NewStagedNetworkPolicy returns an empty StagedNetworkPolicy with TypeMeta set.
func NewStagedNetworkPolicy() *StagedNetworkPolicy {
	return &StagedNetworkPolicy{TypeMeta: typeMeta(KindStagedNetworkPolicy)}
}

// NewStagedNetworkPolicyList returns an empty StagedNetworkPolicyList with TypeMeta set.
func NewStagedNetworkPolicyList() *StagedNetworkPolicyList {
	return &StagedNetworkPolicyList{TypeMeta: typeMeta(KindStagedNetworkPolicy + "List")}
}

// NewStagedGlobalNetworkPolicy returns an empty StagedGlobalNetworkPolicy with TypeMeta set.
func NewStagedGlobalNetworkPolicy() *StagedGlobalNetworkPolicy {
	return &StagedGlobalNetworkPolicy{TypeMeta: typeMeta(KindStagedGlobalNetworkPolicy)}
}

// NewStagedGlobalNetworkPolicyList returns an empty StagedGlobalNetworkPolicyList with TypeMeta set.
func NewStagedGlobalNetworkPolicyList() *StagedGlobalNetworkPolicyList {
	return &StagedGlobalNetworkPolicyList{TypeMeta: typeMeta(KindStagedGlobalNetworkPolicy + "List")}
}

// NewTier returns an empty Tier with TypeMeta set.
func NewTier() *Tier { return &Tier{TypeMeta: typeMeta(KindTier)} }

// NewTierList returns an empty TierList with TypeMeta set.
func NewTierList() *TierList { return &TierList{TypeMeta: typeMeta(KindTier + "List")} }

func typeMeta(kind string) metav1.TypeMeta {
	return metav1.TypeMeta{APIVersion: APIVersion, Kind: kind}
}
