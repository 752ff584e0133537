package v3

import (
	"net/netip"
)

// Default fills in the fields that Calico fills in when a resource is
// written. It is idempotent and never overwrites a value the user set.
// Fields that Calico leaves nil and interprets at use (most of
// BGPConfiguration and FelixConfiguration) stay nil; see the Effective*
// methods for their meaning.
func Default(r Resource) {
	if isNil(r) {
		return
	}
	switch v := r.(type) {
	case *NetworkPolicy:
		s := &v.Spec
		defaultTier(&s.Tier)
		defaultTypes(&s.Types, len(s.Egress), len(s.Ingress))
	case *GlobalNetworkPolicy:
		s := &v.Spec
		defaultTier(&s.Tier)
		defaultTypes(&s.Types, len(s.Egress), len(s.Ingress))
	case *StagedNetworkPolicy:
		s := &v.Spec
		defaultTier(&s.Tier)
		if s.StagedAction == "" {
			s.StagedAction = StagedActionSet
		}
		if s.StagedAction != StagedActionDelete {
			defaultTypes(&s.Types, len(s.Egress), len(s.Ingress))
		}
	case *StagedGlobalNetworkPolicy:
		s := &v.Spec
		defaultTier(&s.Tier)
		if s.StagedAction == "" {
			s.StagedAction = StagedActionSet
		}
		if s.StagedAction != StagedActionDelete {
			defaultTypes(&s.Types, len(s.Egress), len(s.Ingress))
		}
	case *StagedKubernetesNetworkPolicy:
		defaultStagedKubernetes(&v.Spec)
	case *Tier:
		defaultTierSpec(v.Name, &v.Spec)
	case *IPPool:
		defaultIPPool(&v.Spec)
	case *IPAMConfiguration:
		if v.Spec.AutoAllocateBlocks == nil {
			t := true
			v.Spec.AutoAllocateBlocks = &t
		}
	}
}

func defaultTier(t *string) {
	if *t == "" {
		*t = DefaultTierName
	}
}

// defaultTypes infers a policy's types from its rules when none are given:
// egress rules only → [Egress]; both → [Ingress, Egress]; else [Ingress].
func defaultTypes(types *[]PolicyType, nEgress, nIngress int) {
	if len(*types) > 0 {
		return
	}
	switch {
	case nEgress > 0 && nIngress > 0:
		*types = []PolicyType{PolicyTypeIngress, PolicyTypeEgress}
	case nEgress > 0:
		*types = []PolicyType{PolicyTypeEgress}
	default:
		*types = []PolicyType{PolicyTypeIngress}
	}
}

// defaultStagedKubernetes applies Kubernetes' own policyTypes default:
// Ingress always, Egress too when there are egress rules.
func defaultStagedKubernetes(s *StagedKubernetesNetworkPolicySpec) {
	if s.StagedAction == "" {
		s.StagedAction = StagedActionSet
	}
	if len(s.PolicyTypes) == 0 && s.StagedAction != StagedActionDelete {
		s.PolicyTypes = []PolicyType{PolicyTypeIngress}
		if len(s.Egress) > 0 {
			s.PolicyTypes = append(s.PolicyTypes, PolicyTypeEgress)
		}
	}
}

// defaultTierSpec sets the default action (Deny, or Pass for the two
// Kubernetes admin tiers) and the fixed order of well-known tiers.
func defaultTierSpec(name string, s *TierSpec) {
	action, order, known := wellKnownTier(name)
	if s.DefaultAction == nil {
		a := Deny
		if known {
			a = action
		}
		s.DefaultAction = &a
	}
	if known && s.Order == nil {
		o := order
		s.Order = &o
	}
}

// wellKnownTier returns the fixed default action and order of a tier that
// Calico manages itself.
func wellKnownTier(name string) (Action, float64, bool) {
	switch name {
	case DefaultTierName:
		return Deny, DefaultTierOrder, true
	case KubeAdminTierName:
		return Pass, KubeAdminTierOrder, true
	case KubeBaselineTierName:
		return Pass, KubeBaselineTierOrder, true
	}
	return "", 0, false
}

func defaultIPPool(s *IPPoolSpec) {
	if s.BlockSize == 0 {
		if p, err := netip.ParsePrefix(s.CIDR); err == nil {
			s.BlockSize = DefaultBlockSizeV4
			if p.Addr().Is6() && !p.Addr().Is4In6() {
				s.BlockSize = DefaultBlockSizeV6
			}
		}
	}
	if s.IPIPMode == "" {
		s.IPIPMode = IPIPModeNever
	}
	if s.VXLANMode == "" {
		s.VXLANMode = VXLANModeNever
	}
	if s.NodeSelector == "" {
		s.NodeSelector = "all()"
	}
	if len(s.AllowedUses) == 0 {
		s.AllowedUses = []IPPoolAllowedUse{IPPoolAllowedUseWorkload, IPPoolAllowedUseTunnel}
	}
	if s.AssignmentMode == nil {
		m := AssignmentModeAutomatic
		s.AssignmentMode = &m
	}
}
