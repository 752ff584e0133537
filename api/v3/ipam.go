package v3

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Kind names of the IPAM kinds.
const (
	KindIPPool            = "IPPool"
	KindIPReservation     = "IPReservation"
	KindIPAMConfiguration = "IPAMConfiguration"
)

// IPIPMode says when traffic to a pool's addresses is IP-in-IP encapsulated.
type IPIPMode string

// IP-in-IP modes.
const (
	IPIPModeNever       IPIPMode = "Never"
	IPIPModeAlways      IPIPMode = "Always"
	IPIPModeCrossSubnet IPIPMode = "CrossSubnet"
)

// VXLANMode says when traffic to a pool's addresses is VXLAN encapsulated.
type VXLANMode string

// VXLAN modes.
const (
	VXLANModeNever       VXLANMode = "Never"
	VXLANModeAlways      VXLANMode = "Always"
	VXLANModeCrossSubnet VXLANMode = "CrossSubnet"
)

// IPPoolAllowedUse is what addresses of a pool may be used for.
type IPPoolAllowedUse string

// Allowed uses of a pool.
const (
	IPPoolAllowedUseWorkload     IPPoolAllowedUse = "Workload"
	IPPoolAllowedUseTunnel       IPPoolAllowedUse = "Tunnel"
	IPPoolAllowedUseLoadBalancer IPPoolAllowedUse = "LoadBalancer"
)

// AssignmentMode says whether IPAM picks a pool on its own.
type AssignmentMode string

// Assignment modes.
const (
	AssignmentModeAutomatic AssignmentMode = "Automatic"
	AssignmentModeManual    AssignmentMode = "Manual"
)

// Default block sizes of IPv4 and IPv6 pools.
const (
	DefaultBlockSizeV4 = 26
	DefaultBlockSizeV6 = 122
)

// IPPool is a range of addresses that IPAM allocates from in blocks.
// +kubebuilder:object:root=true
type IPPool struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   IPPoolSpec    `json:"spec,omitempty"`
	Status *IPPoolStatus `json:"status,omitempty"`
}

// IPPoolSpec is the spec of an IPPool.
type IPPoolSpec struct {
	// CIDR is strictly masked and immutable.
	CIDR      string    `json:"cidr"`
	VXLANMode VXLANMode `json:"vxlanMode,omitempty"`
	IPIPMode  IPIPMode  `json:"ipipMode,omitempty"`
	// NATOutgoing masquerades traffic from the pool to outside all pools.
	NATOutgoing bool `json:"natOutgoing,omitempty"`
	// Disabled stops new allocations; the pool still counts for NAT and routing.
	Disabled         bool `json:"disabled,omitempty"`
	DisableBGPExport bool `json:"disableBGPExport,omitempty"`
	// BlockSize is the prefix length of the pool's blocks; immutable.
	BlockSize         int                `json:"blockSize,omitempty"`
	NodeSelector      string             `json:"nodeSelector,omitempty"`
	NamespaceSelector string             `json:"namespaceSelector,omitempty"`
	AllowedUses       []IPPoolAllowedUse `json:"allowedUses,omitempty"`
	AssignmentMode    *AssignmentMode    `json:"assignmentMode,omitempty"`
}

// IPPoolStatus carries the pool's conditions.
type IPPoolStatus struct {
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// IPPool status condition type and reasons.
const (
	IPPoolConditionAllocatable = "Allocatable"
	IPPoolReasonOK             = "OK"
	IPPoolReasonCIDROverlap    = "CIDROverlap"
	IPPoolReasonTerminating    = "Terminating"
	IPPoolReasonPoolDisabled   = "PoolDisabled"
)

// IPPoolList is a list of IPPool.
// +kubebuilder:object:root=true
type IPPoolList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []IPPool `json:"items"`
}

// IPReservation excludes CIDRs from new allocations.
// +kubebuilder:object:root=true
type IPReservation struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec IPReservationSpec `json:"spec,omitempty"`
}

// IPReservationSpec is the spec of an IPReservation.
type IPReservationSpec struct {
	ReservedCIDRs []string `json:"reservedCIDRs,omitempty"`
}

// IPReservationList is a list of IPReservation.
// +kubebuilder:object:root=true
type IPReservationList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []IPReservation `json:"items"`
}

// VMAddressPersistence says whether KubeVirt VMs keep their addresses.
type VMAddressPersistence string

// VM address persistence settings.
const (
	VMAddressPersistenceEnabled  VMAddressPersistence = "Enabled"
	VMAddressPersistenceDisabled VMAddressPersistence = "Disabled"
)

// DefaultMaxBlocksPerHost is what maxBlocksPerHost 0 means.
const DefaultMaxBlocksPerHost = 20

// IPAMConfiguration holds cluster-wide IPAM settings; its name is "default".
// +kubebuilder:object:root=true
type IPAMConfiguration struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec IPAMConfigurationSpec `json:"spec,omitempty"`
}

// IPAMConfigurationSpec is the spec of an IPAMConfiguration.
type IPAMConfigurationSpec struct {
	// StrictAffinity forbids borrowing addresses from other hosts' blocks.
	StrictAffinity bool `json:"strictAffinity"`
	// MaxBlocksPerHost: 0 means DefaultMaxBlocksPerHost; >0 needs StrictAffinity.
	MaxBlocksPerHost int32 `json:"maxBlocksPerHost,omitempty"`
	// AutoAllocateBlocks defaults to true (Calico's Go type is a plain bool;
	// a pointer lets an omitted field default to true).
	AutoAllocateBlocks *bool `json:"autoAllocateBlocks,omitempty"`
	// IPCooldownSeconds delays reuse of a released address (0-1200).
	IPCooldownSeconds *int32 `json:"ipCooldownSeconds,omitempty"`
	// KubeVirtVMAddressPersistence defaults to Enabled.
	KubeVirtVMAddressPersistence *VMAddressPersistence `json:"kubeVirtVMAddressPersistence,omitempty"`
}

// IPAMConfigurationList is a list of IPAMConfiguration.
// +kubebuilder:object:root=true
type IPAMConfigurationList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []IPAMConfiguration `json:"items"`
}

// NewIPPool returns an empty IPPool with TypeMeta set.
func NewIPPool() *IPPool { return &IPPool{TypeMeta: typeMeta(KindIPPool)} }

// NewIPPoolList returns an empty IPPoolList with TypeMeta set.
func NewIPPoolList() *IPPoolList { return &IPPoolList{TypeMeta: typeMeta(KindIPPool + "List")} }

// NewIPReservation returns an empty IPReservation with TypeMeta set.
func NewIPReservation() *IPReservation {
	return &IPReservation{TypeMeta: typeMeta(KindIPReservation)}
}

// NewIPReservationList returns an empty IPReservationList with TypeMeta set.
func NewIPReservationList() *IPReservationList {
	return &IPReservationList{TypeMeta: typeMeta(KindIPReservation + "List")}
}

// NewIPAMConfiguration returns an empty IPAMConfiguration with TypeMeta set.
func NewIPAMConfiguration() *IPAMConfiguration {
	return &IPAMConfiguration{TypeMeta: typeMeta(KindIPAMConfiguration)}
}

// NewIPAMConfigurationList returns an empty IPAMConfigurationList with TypeMeta set.
func NewIPAMConfigurationList() *IPAMConfigurationList {
	return &IPAMConfigurationList{TypeMeta: typeMeta(KindIPAMConfiguration + "List")}
}
