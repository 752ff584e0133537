package v3

import "fmt"

// This file registers every kind and gives each List type its
// ResourceList methods.

func init() {
	register(KindInfo{
		Kind: KindNetworkPolicy, ListKind: KindNetworkPolicy + "List", Plural: "networkpolicies", Namespaced: true,
		Aliases: []string{"np", "policy", "networkpolicy", "policies", "cnp"},
		New:     func() Resource { return NewNetworkPolicy() },
		NewList: func() ResourceList { return NewNetworkPolicyList() },
	})
	register(KindInfo{
		Kind: KindGlobalNetworkPolicy, ListKind: KindGlobalNetworkPolicy + "List", Plural: "globalnetworkpolicies", Namespaced: false,
		Aliases: []string{"gnp", "globalnetworkpolicy"},
		New:     func() Resource { return NewGlobalNetworkPolicy() },
		NewList: func() ResourceList { return NewGlobalNetworkPolicyList() },
	})
	register(KindInfo{
		Kind: KindStagedNetworkPolicy, ListKind: KindStagedNetworkPolicy + "List", Plural: "stagednetworkpolicies", Namespaced: true,
		Aliases: []string{"snp", "stagednetworkpolicy"},
		New:     func() Resource { return NewStagedNetworkPolicy() },
		NewList: func() ResourceList { return NewStagedNetworkPolicyList() },
	})
	register(KindInfo{
		Kind: KindStagedGlobalNetworkPolicy, ListKind: KindStagedGlobalNetworkPolicy + "List", Plural: "stagedglobalnetworkpolicies", Namespaced: false,
		Aliases: []string{"sgnp", "stagedglobalnetworkpolicy"},
		New:     func() Resource { return NewStagedGlobalNetworkPolicy() },
		NewList: func() ResourceList { return NewStagedGlobalNetworkPolicyList() },
	})
	register(KindInfo{
		Kind: KindStagedKubernetesNetworkPolicy, ListKind: KindStagedKubernetesNetworkPolicy + "List", Plural: "stagedkubernetesnetworkpolicies", Namespaced: true,
		Aliases: []string{"sknp", "stagedkubernetesnetworkpolicy"},
		New:     func() Resource { return NewStagedKubernetesNetworkPolicy() },
		NewList: func() ResourceList { return NewStagedKubernetesNetworkPolicyList() },
	})
	register(KindInfo{
		Kind: KindTier, ListKind: KindTier + "List", Plural: "tiers", Namespaced: false,
		Aliases: []string{"tier"},
		New:     func() Resource { return NewTier() },
		NewList: func() ResourceList { return NewTierList() },
	})
	register(KindInfo{
		Kind: KindNetworkSet, ListKind: KindNetworkSet + "List", Plural: "networksets", Namespaced: true,
		Aliases: []string{"netsets", "netset", "networkset"},
		New:     func() Resource { return NewNetworkSet() },
		NewList: func() ResourceList { return NewNetworkSetList() },
	})
	register(KindInfo{
		Kind: KindGlobalNetworkSet, ListKind: KindGlobalNetworkSet + "List", Plural: "globalnetworksets", Namespaced: false,
		Aliases: []string{"gnetsets", "gnetset", "gns", "globalnetworkset"},
		New:     func() Resource { return NewGlobalNetworkSet() },
		NewList: func() ResourceList { return NewGlobalNetworkSetList() },
	})
	register(KindInfo{
		Kind: KindHostEndpoint, ListKind: KindHostEndpoint + "List", Plural: "hostendpoints", Namespaced: false,
		Aliases: []string{"hep", "heps", "hostendpoint"},
		New:     func() Resource { return NewHostEndpoint() },
		NewList: func() ResourceList { return NewHostEndpointList() },
	})
	register(KindInfo{
		Kind: KindWorkloadEndpoint, ListKind: KindWorkloadEndpoint + "List", Plural: "workloadendpoints", Namespaced: true,
		Aliases: []string{"wep", "weps", "workloadendpoint"},
		New:     func() Resource { return NewWorkloadEndpoint() },
		NewList: func() ResourceList { return NewWorkloadEndpointList() },
	})
	register(KindInfo{
		Kind: KindProfile, ListKind: KindProfile + "List", Plural: "profiles", Namespaced: false,
		Aliases: []string{"pro", "pros", "profile"},
		New:     func() Resource { return NewProfile() },
		NewList: func() ResourceList { return NewProfileList() },
	})
	register(KindInfo{
		Kind: KindIPPool, ListKind: KindIPPool + "List", Plural: "ippools", Namespaced: false,
		Aliases: []string{"ipp", "ipps", "pool", "pools", "ippool"},
		New:     func() Resource { return NewIPPool() },
		NewList: func() ResourceList { return NewIPPoolList() },
	})
	register(KindInfo{
		Kind: KindIPReservation, ListKind: KindIPReservation + "List", Plural: "ipreservations", Namespaced: false,
		Aliases: []string{"reservation", "reservations", "ipreservation"},
		New:     func() Resource { return NewIPReservation() },
		NewList: func() ResourceList { return NewIPReservationList() },
	})
	register(KindInfo{
		Kind: KindIPAMConfiguration, ListKind: KindIPAMConfiguration + "List", Plural: "ipamconfigurations", Namespaced: false,
		Aliases: []string{"ipamconfig", "ipamconfigs", "ipamconfiguration"},
		New:     func() Resource { return NewIPAMConfiguration() },
		NewList: func() ResourceList { return NewIPAMConfigurationList() },
	})
	register(KindInfo{
		Kind: KindBGPConfiguration, ListKind: KindBGPConfiguration + "List", Plural: "bgpconfigurations", Namespaced: false,
		Aliases: []string{"bgpconfig", "bgpconfigs", "bgpconfiguration"},
		New:     func() Resource { return NewBGPConfiguration() },
		NewList: func() ResourceList { return NewBGPConfigurationList() },
	})
	register(KindInfo{
		Kind: KindBGPPeer, ListKind: KindBGPPeer + "List", Plural: "bgppeers", Namespaced: false,
		Aliases: []string{"bgpp", "bgpps", "bp", "bps", "bgppeer"},
		New:     func() Resource { return NewBGPPeer() },
		NewList: func() ResourceList { return NewBGPPeerList() },
	})
	register(KindInfo{
		Kind: KindBGPFilter, ListKind: KindBGPFilter + "List", Plural: "bgpfilters", Namespaced: false,
		Aliases: []string{"bgpf", "bgpfs", "bgpfilter"},
		New:     func() Resource { return NewBGPFilter() },
		NewList: func() ResourceList { return NewBGPFilterList() },
	})
	register(KindInfo{
		Kind: KindFelixConfiguration, ListKind: KindFelixConfiguration + "List", Plural: "felixconfigurations", Namespaced: false,
		Aliases: []string{"felixconfig", "felixconfigs", "felixconfiguration"},
		New:     func() Resource { return NewFelixConfiguration() },
		NewList: func() ResourceList { return NewFelixConfigurationList() },
	})
	register(KindInfo{
		Kind: KindKubeControllersConfiguration, ListKind: KindKubeControllersConfiguration + "List", Plural: "kubecontrollersconfigurations", Namespaced: false,
		Aliases: []string{"kubecontrollersconfig", "kubecontrollersconfiguration"},
		New:     func() Resource { return NewKubeControllersConfiguration() },
		NewList: func() ResourceList { return NewKubeControllersConfigurationList() },
	})
	register(KindInfo{
		Kind: KindClusterInformation, ListKind: KindClusterInformation + "List", Plural: "clusterinformations", Namespaced: false,
		Aliases: []string{"clusterinfo", "clusterinformation"},
		New:     func() Resource { return NewClusterInformation() },
		NewList: func() ResourceList { return NewClusterInformationList() },
	})
	register(KindInfo{
		Kind: KindNode, ListKind: KindNode + "List", Plural: "nodes", Namespaced: false,
		Aliases: []string{"no", "node"},
		New:     func() Resource { return NewNode() },
		NewList: func() ResourceList { return NewNodeList() },
	})
}

// GetItems returns deep copies of the list's items.
func (l *NetworkPolicyList) GetItems() []Resource { return itemsOf(l.Items) }

// SetItems replaces the list's items; each must be a *NetworkPolicy.
func (l *NetworkPolicyList) SetItems(rs []Resource) error { return setItemsOf(&l.Items, rs) }

// GetItems returns deep copies of the list's items.
func (l *GlobalNetworkPolicyList) GetItems() []Resource { return itemsOf(l.Items) }

// SetItems replaces the list's items; each must be a *GlobalNetworkPolicy.
func (l *GlobalNetworkPolicyList) SetItems(rs []Resource) error { return setItemsOf(&l.Items, rs) }

// GetItems returns deep copies of the list's items.
func (l *StagedNetworkPolicyList) GetItems() []Resource { return itemsOf(l.Items) }

// SetItems replaces the list's items; each must be a *StagedNetworkPolicy.
func (l *StagedNetworkPolicyList) SetItems(rs []Resource) error { return setItemsOf(&l.Items, rs) }

// GetItems returns deep copies of the list's items.
func (l *StagedGlobalNetworkPolicyList) GetItems() []Resource { return itemsOf(l.Items) }

// SetItems replaces the list's items; each must be a *StagedGlobalNetworkPolicy.
func (l *StagedGlobalNetworkPolicyList) SetItems(rs []Resource) error {
	return setItemsOf(&l.Items, rs)
}

// GetItems returns deep copies of the list's items.
func (l *StagedKubernetesNetworkPolicyList) GetItems() []Resource { return itemsOf(l.Items) }

// SetItems replaces the list's items; each must be a *StagedKubernetesNetworkPolicy.
func (l *StagedKubernetesNetworkPolicyList) SetItems(rs []Resource) error {
	return setItemsOf(&l.Items, rs)
}

// GetItems returns deep copies of the list's items.
func (l *TierList) GetItems() []Resource { return itemsOf(l.Items) }

// SetItems replaces the list's items; each must be a *Tier.
func (l *TierList) SetItems(rs []Resource) error { return setItemsOf(&l.Items, rs) }

// GetItems returns deep copies of the list's items.
func (l *NetworkSetList) GetItems() []Resource { return itemsOf(l.Items) }

// SetItems replaces the list's items; each must be a *NetworkSet.
func (l *NetworkSetList) SetItems(rs []Resource) error { return setItemsOf(&l.Items, rs) }

// GetItems returns deep copies of the list's items.
func (l *GlobalNetworkSetList) GetItems() []Resource { return itemsOf(l.Items) }

// SetItems replaces the list's items; each must be a *GlobalNetworkSet.
func (l *GlobalNetworkSetList) SetItems(rs []Resource) error { return setItemsOf(&l.Items, rs) }

// GetItems returns deep copies of the list's items.
func (l *HostEndpointList) GetItems() []Resource { return itemsOf(l.Items) }

// SetItems replaces the list's items; each must be a *HostEndpoint.
func (l *HostEndpointList) SetItems(rs []Resource) error { return setItemsOf(&l.Items, rs) }

// GetItems returns deep copies of the list's items.
func (l *WorkloadEndpointList) GetItems() []Resource { return itemsOf(l.Items) }

// SetItems replaces the list's items; each must be a *WorkloadEndpoint.
func (l *WorkloadEndpointList) SetItems(rs []Resource) error { return setItemsOf(&l.Items, rs) }

// GetItems returns deep copies of the list's items.
func (l *ProfileList) GetItems() []Resource { return itemsOf(l.Items) }

// SetItems replaces the list's items; each must be a *Profile.
func (l *ProfileList) SetItems(rs []Resource) error { return setItemsOf(&l.Items, rs) }

// GetItems returns deep copies of the list's items.
func (l *IPPoolList) GetItems() []Resource { return itemsOf(l.Items) }

// SetItems replaces the list's items; each must be a *IPPool.
func (l *IPPoolList) SetItems(rs []Resource) error { return setItemsOf(&l.Items, rs) }

// GetItems returns deep copies of the list's items.
func (l *IPReservationList) GetItems() []Resource { return itemsOf(l.Items) }

// SetItems replaces the list's items; each must be a *IPReservation.
func (l *IPReservationList) SetItems(rs []Resource) error { return setItemsOf(&l.Items, rs) }

// GetItems returns deep copies of the list's items.
func (l *IPAMConfigurationList) GetItems() []Resource { return itemsOf(l.Items) }

// SetItems replaces the list's items; each must be a *IPAMConfiguration.
func (l *IPAMConfigurationList) SetItems(rs []Resource) error { return setItemsOf(&l.Items, rs) }

// GetItems returns deep copies of the list's items.
func (l *BGPConfigurationList) GetItems() []Resource { return itemsOf(l.Items) }

// SetItems replaces the list's items; each must be a *BGPConfiguration.
func (l *BGPConfigurationList) SetItems(rs []Resource) error { return setItemsOf(&l.Items, rs) }

// GetItems returns deep copies of the list's items.
func (l *BGPPeerList) GetItems() []Resource { return itemsOf(l.Items) }

// SetItems replaces the list's items; each must be a *BGPPeer.
func (l *BGPPeerList) SetItems(rs []Resource) error { return setItemsOf(&l.Items, rs) }

// GetItems returns deep copies of the list's items.
func (l *BGPFilterList) GetItems() []Resource { return itemsOf(l.Items) }

// SetItems replaces the list's items; each must be a *BGPFilter.
func (l *BGPFilterList) SetItems(rs []Resource) error { return setItemsOf(&l.Items, rs) }

// GetItems returns deep copies of the list's items.
func (l *FelixConfigurationList) GetItems() []Resource { return itemsOf(l.Items) }

// SetItems replaces the list's items; each must be a *FelixConfiguration.
func (l *FelixConfigurationList) SetItems(rs []Resource) error { return setItemsOf(&l.Items, rs) }

// GetItems returns deep copies of the list's items.
func (l *KubeControllersConfigurationList) GetItems() []Resource { return itemsOf(l.Items) }

// SetItems replaces the list's items; each must be a *KubeControllersConfiguration.
func (l *KubeControllersConfigurationList) SetItems(rs []Resource) error {
	return setItemsOf(&l.Items, rs)
}

// GetItems returns deep copies of the list's items.
func (l *ClusterInformationList) GetItems() []Resource { return itemsOf(l.Items) }

// SetItems replaces the list's items; each must be a *ClusterInformation.
func (l *ClusterInformationList) SetItems(rs []Resource) error { return setItemsOf(&l.Items, rs) }

// GetItems returns deep copies of the list's items.
func (l *NodeList) GetItems() []Resource { return itemsOf(l.Items) }

// SetItems replaces the list's items; each must be a *Node.
func (l *NodeList) SetItems(rs []Resource) error { return setItemsOf(&l.Items, rs) }

// itemsOf returns deep copies of items as Resources.
func itemsOf[T any, PT interface {
	*T
	Resource
}](items []T) []Resource {
	out := make([]Resource, len(items))
	for i := range items {
		out[i] = PT(&items[i]).DeepCopyObject().(Resource)
	}
	return out
}

// setItemsOf stores rs, which must all be PT, into *dst.
func setItemsOf[T any, PT interface {
	*T
	Resource
}](dst *[]T, rs []Resource) error {
	items := make([]T, 0, len(rs))
	for i, r := range rs {
		p, ok := r.(PT)
		if !ok || p == nil {
			return fmt.Errorf("item %d: got %T, want %T", i, r, PT(nil))
		}
		items = append(items, *p)
	}
	*dst = items
	return nil
}
