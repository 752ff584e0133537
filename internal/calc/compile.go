package calc

import (
	"fmt"
	"math"
	"slices"
	"strings"

	v3 "github.com/calico-go/calico/api/v3"
	"github.com/calico-go/calico/internal/dpapi"
	"github.com/calico-go/calico/internal/selector"
)

// This file compiles selectors as SPEC §2 "How selectors are compiled"
// describes.

// policyFrom reads a NetworkPolicy or GlobalNetworkPolicy.
func policyFrom(key policyKey, r v3.Resource) (*policy, error) {
	p := &policy{key: key, order: math.Inf(1)}
	var tierName string
	var order *float64
	var types []v3.PolicyType
	var hints []v3.PolicyPerformanceHint
	var sel string
	var err error
	switch r := r.(type) {
	case *v3.NetworkPolicy:
		s := r.Spec
		tierName, order, types, hints = s.Tier, s.Order, s.Types, s.PerformanceHints
		p.inRules, p.outRules = s.Ingress, s.Egress
		sel, err = npSelector(r.Namespace, s.Selector, s.ServiceAccountSelector)
	case *v3.GlobalNetworkPolicy:
		s := r.Spec
		tierName, order, types, hints = s.Tier, s.Order, s.Types, s.PerformanceHints
		p.inRules, p.outRules = s.Ingress, s.Egress
		p.flags = policyFlags{untracked: s.DoNotTrack, preDNAT: s.PreDNAT, applyOnForward: s.ApplyOnForward}
		sel, err = gnpSelector(s.Selector, s.NamespaceSelector, s.ServiceAccountSelector)
	default:
		return nil, fmt.Errorf("unexpected type %T", r)
	}
	if err != nil {
		return nil, err
	}
	if p.sel, err = selector.Parse(sel); err != nil {
		return nil, fmt.Errorf("compiled selector %q: %w", sel, err)
	}
	if tierName == "" {
		tierName = "default"
	}
	if order != nil {
		p.order = *order
	}
	p.ingress = len(types) == 0 || slices.Contains(types, v3.PolicyTypeIngress)
	p.egress = len(types) == 0 || slices.Contains(types, v3.PolicyTypeEgress)
	p.assume = slices.Contains(hints, v3.PerfHintAssumeNeededOnEveryNode)
	p.id = dpapi.PolicyID{Tier: tierName, Name: key.name, Namespace: key.ns, Kind: key.kind}
	p.sortKey = key.name + "/" + key.ns + "/" + string(key.kind)
	return p, nil
}

// canon parses a user selector and returns its canonical form.
func canon(s string) (string, error) {
	sel, err := selector.Parse(s)
	if err != nil {
		return "", err
	}
	return sel.String(), nil
}

// prefixed returns s with every label key prefixed.
func prefixed(s, prefix string) (string, error) {
	c, err := canon(s)
	if err != nil {
		return "", err
	}
	e, err := parseCanonical(c)
	if err != nil {
		return "", fmt.Errorf("selector %q: %w", c, err)
	}
	var b strings.Builder
	e.render(&b, prefix)
	return b.String(), nil
}

// namespacePart compiles a namespaceSelector (SPEC §2 step 2): keys get
// the pcns. prefix; all() means every namespaced entity and global() only
// the non-namespaced ones.
func namespacePart(nsSel string) (string, error) {
	c, err := canon(nsSel)
	if err != nil {
		return "", fmt.Errorf("namespaceSelector: %w", err)
	}
	switch c {
	case "all()":
		return "has(" + v3.LabelNamespace + ")", nil
	case "global()":
		return "!has(" + v3.LabelNamespace + ")", nil
	}
	return prefixed(c, v3.NamespaceLabelPrefix)
}

func ownNamespace(ns string) string {
	return v3.LabelNamespace + " == " + quote(ns)
}

// and joins the non-empty parts with &&, each in parentheses; one part
// is returned as is, none as "".
func and(parts ...string) string {
	var kept []string
	for _, p := range parts {
		if p != "" {
			kept = append(kept, p)
		}
	}
	if len(kept) <= 1 {
		return strings.Join(kept, "")
	}
	return "(" + strings.Join(kept, ") && (") + ")"
}

// npSelector is a NetworkPolicy's own selector (SPEC §2 step 4).
func npSelector(ns, sel, saSel string) (string, error) {
	if _, err := canon(sel); err != nil {
		return "", fmt.Errorf("selector: %w", err)
	}
	sa := ""
	if saSel != "" {
		var err error
		if sa, err = prefixed(saSel, v3.ServiceAccountLabelPrefix); err != nil {
			return "", fmt.Errorf("serviceAccountSelector: %w", err)
		}
	}
	return and(orAll(sel), ownNamespace(ns), sa), nil
}

// gnpSelector is a GlobalNetworkPolicy's own selector.
func gnpSelector(sel, nsSel, saSel string) (string, error) {
	if _, err := canon(sel); err != nil {
		return "", fmt.Errorf("selector: %w", err)
	}
	var nsPart, sa string
	var err error
	if nsSel != "" {
		if nsPart, err = namespacePart(nsSel); err != nil {
			return "", err
		}
	}
	if saSel != "" {
		if sa, err = prefixed(saSel, v3.ServiceAccountLabelPrefix); err != nil {
			return "", fmt.Errorf("serviceAccountSelector: %w", err)
		}
	}
	return and(orAll(sel), nsPart, sa), nil
}

func orAll(sel string) string {
	if strings.TrimSpace(sel) == "" {
		return "all()"
	}
	return sel
}

// entitySelectors compiles the selector fields of one side of a rule
// into the positive selector (N && A && S, "" when there is none) and the
// notSelector (SPEC §2 steps 1-3). ns is the policy's namespace, empty for
// global policies and profiles.
func entitySelectors(ns string, er *v3.EntityRule) (pos, neg string, err error) {
	any := er.Selector != "" || er.NotSelector != "" || er.NamespaceSelector != "" || er.ServiceAccounts != nil
	if !any {
		return "", "", nil
	}
	var nPart, aPart string
	switch {
	case er.NamespaceSelector != "":
		if nPart, err = namespacePart(er.NamespaceSelector); err != nil {
			return "", "", err
		}
	case ns != "":
		nPart = ownNamespace(ns)
	}
	if sa := er.ServiceAccounts; sa != nil {
		var names, sel string
		if len(sa.Names) > 0 {
			qs := make([]string, len(sa.Names))
			for i, n := range sa.Names {
				qs[i] = quote(n)
			}
			names = v3.LabelServiceAccount + " in {" + strings.Join(qs, ", ") + "}"
		}
		if sa.Selector != "" {
			if sel, err = prefixed(sa.Selector, v3.ServiceAccountLabelPrefix); err != nil {
				return "", "", fmt.Errorf("serviceAccounts.selector: %w", err)
			}
		}
		aPart = and(names, sel)
	}
	if er.Selector != "" {
		if _, err := canon(er.Selector); err != nil {
			return "", "", fmt.Errorf("selector: %w", err)
		}
	}
	pos = and(nPart, and(aPart, er.Selector))
	if er.NotSelector != "" {
		if neg, err = canon(er.NotSelector); err != nil {
			return "", "", fmt.Errorf("notSelector: %w", err)
		}
	}
	return pos, neg, nil
}
