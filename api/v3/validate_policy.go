package v3

import (
	"reflect"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
)

func (c *checker) networkPolicy(p *NetworkPolicy) {
	s := &p.Spec
	c.policyCommon(policyCommon{
		tier: s.Tier, order: s.Order, ingress: s.Ingress, egress: s.Egress,
		selector: s.Selector, types: s.Types,
		serviceAccountSelector: s.ServiceAccountSelector, performanceHints: s.PerformanceHints,
	})
}

func (c *checker) globalNetworkPolicy(p *GlobalNetworkPolicy) {
	s := &p.Spec
	c.policyCommon(policyCommon{
		tier: s.Tier, order: s.Order, ingress: s.Ingress, egress: s.Egress,
		selector: s.Selector, types: s.Types,
		serviceAccountSelector: s.ServiceAccountSelector, performanceHints: s.PerformanceHints,
	})
	c.globalPolicyExtras(s.NamespaceSelector, s.DoNotTrack, s.PreDNAT, s.ApplyOnForward, s.Egress, s.Types)
}

// globalPolicyExtras checks the GNP-only fields.
func (c *checker) globalPolicyExtras(nsSel string, doNotTrack, preDNAT, applyOnForward bool, egressRules []Rule, types []PolicyType) {
	c.selector("spec.namespaceSelector", nsSel, true)
	if doNotTrack && preDNAT {
		c.add("spec.doNotTrack", "cannot be combined with preDNAT")
	}
	if doNotTrack && !applyOnForward {
		c.add("spec.doNotTrack", "needs applyOnForward: true")
	}
	if preDNAT && !applyOnForward {
		c.add("spec.preDNAT", "needs applyOnForward: true")
	}
	if preDNAT && len(egressRules) > 0 {
		c.add("spec.egress", "not allowed in a preDNAT policy")
	}
	if preDNAT {
		for i, t := range types {
			if t == PolicyTypeEgress {
				c.add(idx("spec.types", i), "Egress is not allowed in a preDNAT policy")
			}
		}
	}
}

func (c *checker) stagedAction(a StagedAction) {
	c.enum("spec.stagedAction", string(a), string(StagedActionSet), string(StagedActionDelete),
		string(StagedActionLearn), string(StagedActionIgnore))
}

// onlyTier reports, for a staged Delete, every spec field other than
// stagedAction and tier that is set. spec must be a struct value.
func (c *checker) onlyTier(spec any) {
	v := reflect.ValueOf(spec)
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name == "stagedAction" || name == "tier" {
			continue
		}
		if !v.Field(i).IsZero() {
			c.add("spec."+name, "must be empty when stagedAction is Delete")
		}
	}
}

func (c *checker) stagedNetworkPolicy(p *StagedNetworkPolicy) {
	s := &p.Spec
	c.stagedAction(s.StagedAction)
	if s.StagedAction == StagedActionDelete {
		c.onlyTier(*s)
	}
	c.policyCommon(policyCommon{
		tier: s.Tier, order: s.Order, ingress: s.Ingress, egress: s.Egress,
		selector: s.Selector, types: s.Types,
		serviceAccountSelector: s.ServiceAccountSelector, performanceHints: s.PerformanceHints,
	})
}

func (c *checker) stagedGlobalNetworkPolicy(p *StagedGlobalNetworkPolicy) {
	s := &p.Spec
	c.stagedAction(s.StagedAction)
	if s.StagedAction == StagedActionDelete {
		c.onlyTier(*s)
	}
	c.policyCommon(policyCommon{
		tier: s.Tier, order: s.Order, ingress: s.Ingress, egress: s.Egress,
		selector: s.Selector, types: s.Types,
		serviceAccountSelector: s.ServiceAccountSelector, performanceHints: s.PerformanceHints,
	})
	c.globalPolicyExtras(s.NamespaceSelector, s.DoNotTrack, s.PreDNAT, s.ApplyOnForward, s.Egress, s.Types)
}

func (c *checker) stagedKubernetesNetworkPolicy(p *StagedKubernetesNetworkPolicy) {
	s := &p.Spec
	c.stagedAction(s.StagedAction)
	if s.StagedAction == StagedActionDelete {
		c.onlyTier(*s)
	}
	c.labelSelector("spec.podSelector", &s.PodSelector)
	c.policyTypes("spec.policyTypes", s.PolicyTypes)
	for i, r := range s.Ingress {
		f := idx("spec.ingress", i)
		c.kubePorts(f+".ports", r.Ports)
		c.kubePeers(f+".from", r.From)
	}
	for i, r := range s.Egress {
		f := idx("spec.egress", i)
		c.kubePorts(f+".ports", r.Ports)
		c.kubePeers(f+".to", r.To)
	}
}

func (c *checker) kubePorts(field string, ports []KubeNetworkPolicyPort) {
	for i, p := range ports {
		f := idx(field, i)
		if p.Protocol != nil {
			c.enum(f+".protocol", *p.Protocol, "TCP", "UDP", "SCTP")
		}
		numeric := false
		if p.Port != nil {
			if p.Port.Type == 0 {
				numeric = true
				if p.Port.IntVal < 1 || p.Port.IntVal > 65535 {
					c.add(f+".port", "%d is out of range 1-65535", p.Port.IntVal)
				}
			} else if errs := validation.IsValidPortName(p.Port.StrVal); len(errs) > 0 {
				c.add(f+".port", "%q: %s", p.Port.StrVal, strings.Join(errs, "; "))
			}
		}
		if p.EndPort != nil {
			switch {
			case !numeric:
				c.add(f+".endPort", "needs a numeric port")
			case *p.EndPort < p.Port.IntVal || *p.EndPort > 65535:
				c.add(f+".endPort", "must be between port and 65535")
			}
		}
	}
}

func (c *checker) kubePeers(field string, peers []KubeNetworkPolicyPeer) {
	for i, p := range peers {
		f := idx(field, i)
		if p.IPBlock != nil && (p.PodSelector != nil || p.NamespaceSelector != nil) {
			c.add(f+".ipBlock", "cannot be combined with podSelector or namespaceSelector")
		}
		if p.IPBlock == nil && p.PodSelector == nil && p.NamespaceSelector == nil {
			c.add(f, "must set podSelector, namespaceSelector or ipBlock")
		}
		c.labelSelector(f+".podSelector", p.PodSelector)
		c.labelSelector(f+".namespaceSelector", p.NamespaceSelector)
		if b := p.IPBlock; b != nil {
			outer, ok := c.cidr(f+".ipBlock.cidr", b.CIDR, false, 0)
			for j, e := range b.Except {
				ef := idx(f+".ipBlock.except", j)
				if inner, ok2 := c.cidr(ef, e, false, 0); ok && ok2 &&
					(!outer.Overlaps(inner) || inner.Bits() <= outer.Bits()) {
					c.add(ef, "%q must be strictly inside %q", e, b.CIDR)
				}
			}
		}
	}
}

// labelSelector checks a Kubernetes label selector.
func (c *checker) labelSelector(field string, ls *metav1.LabelSelector) {
	if ls == nil {
		return
	}
	c.labels(field+".matchLabels", ls.MatchLabels)
	for i, r := range ls.MatchExpressions {
		f := idx(field+".matchExpressions", i)
		if errs := validation.IsQualifiedName(r.Key); len(errs) > 0 {
			c.add(f+".key", "%q: %s", r.Key, strings.Join(errs, "; "))
		}
		switch r.Operator {
		case metav1.LabelSelectorOpIn, metav1.LabelSelectorOpNotIn:
			if len(r.Values) == 0 {
				c.add(f+".values", "required for operator %s", r.Operator)
			}
		case metav1.LabelSelectorOpExists, metav1.LabelSelectorOpDoesNotExist:
			if len(r.Values) > 0 {
				c.add(f+".values", "must be empty for operator %s", r.Operator)
			}
		default:
			c.add(f+".operator", "%q is not one of In, NotIn, Exists, DoesNotExist", r.Operator)
		}
		for j, v := range r.Values {
			if errs := validation.IsValidLabelValue(v); len(errs) > 0 {
				c.add(idx(f+".values", j), "%q: %s", v, strings.Join(errs, "; "))
			}
		}
	}
}

func (c *checker) tier(t *Tier) {
	c.order("spec.order", t.Spec.Order)
	if a := t.Spec.DefaultAction; a != nil {
		c.enum("spec.defaultAction", string(*a), string(Deny), string(Pass))
		if *a == "" {
			c.add("spec.defaultAction", "may not be empty")
		}
	}
	action, order, known := wellKnownTier(t.Name)
	if !known {
		return
	}
	if t.Spec.Order != nil && *t.Spec.Order != order {
		c.add("spec.order", "the %s tier's order is fixed at %g", t.Name, order)
	}
	if a := t.Spec.DefaultAction; a != nil && *a != action {
		c.add("spec.defaultAction", "the %s tier's default action is fixed at %s", t.Name, action)
	}
}

func (c *checker) profile(s *ProfileSpec) {
	c.rules("spec.ingress", s.Ingress, ingress)
	c.rules("spec.egress", s.Egress, egress)
	c.labels("spec.labelsToApply", s.LabelsToApply)
}
