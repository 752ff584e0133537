package v3

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"reflect"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/calico-go/calico/internal/selector"
)

// ErrInvalid matches every *ValidationError with errors.Is.
var ErrInvalid = errors.New("invalid resource")

// FieldError is one problem with one field.
// +kubebuilder:object:generate=false
type FieldError struct {
	// Field is the JSON path of the field, e.g. "spec.ingress[0].source.selector".
	Field string
	// Detail says what is wrong.
	Detail string
}

// String returns "<field>: <detail>".
func (e FieldError) String() string { return e.Field + ": " + e.Detail }

// ValidationError lists every problem found in one resource.
// +kubebuilder:object:generate=false
type ValidationError struct {
	Kind, Namespace, Name string
	Errors                []FieldError
}

// Error returns e.g. `invalid IPPool "p1": spec.cidr: ...; spec.blockSize: ...`.
func (e *ValidationError) Error() string {
	var b strings.Builder
	b.WriteString("invalid ")
	b.WriteString(e.Kind)
	name := e.Name
	if e.Namespace != "" {
		name = e.Namespace + "/" + e.Name
	}
	fmt.Fprintf(&b, " %q: ", name)
	for i, fe := range e.Errors {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(fe.String())
	}
	return b.String()
}

// Is reports whether target is ErrInvalid.
func (e *ValidationError) Is(target error) bool { return target == ErrInvalid }

// Validate checks a resource against Calico's rules for its kind (SPEC §0–2)
// and returns nil or a *ValidationError listing every problem. It accepts
// resources before and after Default. Checks that need other resources
// (overlapping pools, tier existence) are the client's job.
func Validate(r Resource) error {
	if isNil(r) {
		return errors.New("validate: nil resource")
	}
	info, ok := KindOf(r)
	if !ok {
		return fmt.Errorf("validate: unknown resource type %T", r)
	}
	c := &checker{}
	c.meta(info, r)
	validateSpec(c, r)
	return c.result(info.Kind, r)
}

// validateSpec dispatches to the kind's validator.
func validateSpec(c *checker, r Resource) {
	switch v := r.(type) {
	case *NetworkPolicy:
		c.networkPolicy(v)
	case *GlobalNetworkPolicy:
		c.globalNetworkPolicy(v)
	case *StagedNetworkPolicy:
		c.stagedNetworkPolicy(v)
	case *StagedGlobalNetworkPolicy:
		c.stagedGlobalNetworkPolicy(v)
	case *StagedKubernetesNetworkPolicy:
		c.stagedKubernetesNetworkPolicy(v)
	case *Tier:
		c.tier(v)
	case *NetworkSet:
		c.networkSet(v.Labels, v.Spec.Nets)
	case *GlobalNetworkSet:
		c.networkSet(v.Labels, v.Spec.Nets)
	case *HostEndpoint:
		c.hostEndpoint(&v.Spec)
	case *WorkloadEndpoint:
		c.workloadEndpoint(&v.Spec)
	case *Profile:
		c.profile(&v.Spec)
	case *IPPool:
		c.ipPool(&v.Spec)
	case *IPReservation:
		c.ipReservation(&v.Spec)
	case *IPAMConfiguration:
		c.ipamConfiguration(&v.Spec)
	case *BGPConfiguration:
		c.bgpConfiguration(v.Name, &v.Spec)
	case *BGPPeer:
		c.bgpPeer(&v.Spec)
	case *BGPFilter:
		c.bgpFilter(&v.Spec)
	case *FelixConfiguration:
		c.felixConfiguration(&v.Spec)
	case *KubeControllersConfiguration:
		c.kubeControllersConfiguration(v)
	case *ClusterInformation:
	case *Node:
		c.node(v)
	}
}

// ValidateUpdate validates newR and checks that no immutable field changed
// from oldR (IPPool cidr and blockSize). Both must be the same kind.
func ValidateUpdate(oldR, newR Resource) error {
	if err := Validate(newR); err != nil {
		return err
	}
	if isNil(oldR) {
		return errors.New("validate update: nil old resource")
	}
	info, _ := KindOf(newR)
	if oldInfo, ok := KindOf(oldR); !ok || oldInfo.Kind != info.Kind {
		return fmt.Errorf("validate update: old %T and new %T are different kinds", oldR, newR)
	}
	c := &checker{}
	if o, ok := oldR.(*IPPool); ok {
		n := newR.(*IPPool)
		if o.Spec.CIDR != n.Spec.CIDR {
			c.add("spec.cidr", "may not be changed (was %s)", o.Spec.CIDR)
		}
		if effectiveBlockSize(&o.Spec) != effectiveBlockSize(&n.Spec) {
			c.add("spec.blockSize", "may not be changed (was %d)", effectiveBlockSize(&o.Spec))
		}
	}
	return c.result(info.Kind, newR)
}

// isNil reports whether r is nil or a typed nil pointer.
func isNil(r Resource) bool {
	if r == nil {
		return true
	}
	v := reflect.ValueOf(r)
	return v.Kind() == reflect.Pointer && v.IsNil()
}

// checker collects FieldErrors.
type checker struct {
	errs []FieldError
}

func (c *checker) add(field, format string, args ...any) {
	c.errs = append(c.errs, FieldError{Field: field, Detail: fmt.Sprintf(format, args...)})
}

func (c *checker) result(kind string, r Resource) error {
	if len(c.errs) == 0 {
		return nil
	}
	return &ValidationError{Kind: kind, Namespace: r.GetNamespace(), Name: r.GetName(), Errors: c.errs}
}

// idx returns "base[i]".
func idx(base string, i int) string { return fmt.Sprintf("%s[%d]", base, i) }

// maxAnnotationBytes is the limit on all annotations of an object together.
const maxAnnotationBytes = 256 * 1024

// meta checks name, namespace, labels and annotations.
func (c *checker) meta(info KindInfo, m metav1.Object) {
	name := m.GetName()
	if name == "" {
		c.add("metadata.name", "required")
	} else if detail := nameProblem(info.Kind, name, m); detail != "" {
		c.add("metadata.name", "%s", detail)
	}
	switch ns := m.GetNamespace(); {
	case info.Namespaced && ns == "":
		c.add("metadata.namespace", "required for namespaced kind %s", info.Kind)
	case info.Namespaced:
		if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
			c.add("metadata.namespace", "%s", strings.Join(errs, "; "))
		}
	case ns != "":
		c.add("metadata.namespace", "must be empty: %s is not namespaced", info.Kind)
	}
	c.labels("metadata.labels", m.GetLabels())
	total := 0
	for k, v := range m.GetAnnotations() {
		total += len(k) + len(v)
		if errs := validation.IsQualifiedName(strings.ToLower(k)); len(errs) > 0 {
			c.add("metadata.annotations", "key %q: %s", k, strings.Join(errs, "; "))
		}
	}
	if total > maxAnnotationBytes {
		c.add("metadata.annotations", "may not exceed %d bytes in total (have %d)", maxAnnotationBytes, total)
	}
}

// labels checks label keys and values the way Kubernetes does.
func (c *checker) labels(field string, labels map[string]string) {
	for _, k := range sortedKeys(labels) {
		if errs := validation.IsQualifiedName(k); len(errs) > 0 {
			c.add(field, "key %q: %s", k, strings.Join(errs, "; "))
		}
		if errs := validation.IsValidLabelValue(labels[k]); len(errs) > 0 {
			c.add(field, "value %q of %q: %s", labels[k], k, strings.Join(errs, "; "))
		}
	}
}

// nameProblem checks the name form of each kind; "" means fine.
func nameProblem(kind, name string, m metav1.Object) string {
	if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
		return strings.Join(errs, "; ")
	}
	switch kind {
	case KindTier:
		if errs := validation.IsDNS1123Label(name); len(errs) > 0 {
			return "tier names are a single DNS-1123 label: " + strings.Join(errs, "; ")
		}
	case KindNetworkPolicy, KindStagedNetworkPolicy:
		for _, p := range []string{"knp.default.", "ossg.default."} {
			if rest, ok := strings.CutPrefix(name, p); ok && rest != "" {
				return ""
			}
		}
		return policyNameProblem(name)
	case KindGlobalNetworkPolicy, KindStagedGlobalNetworkPolicy:
		return policyNameProblem(name)
	case KindClusterInformation, KindKubeControllersConfiguration, KindIPAMConfiguration:
		if name != "default" {
			return `must be "default"`
		}
	case KindBGPConfiguration:
		return perNodeNameProblem(name)
	case KindFelixConfiguration:
		if fc, ok := m.(*FelixConfiguration); ok && fc.Spec.NodeSelector != "" {
			return ""
		}
		return perNodeNameProblem(name)
	}
	return ""
}

// policyNameProblem allows "label" or "label.label".
func policyNameProblem(name string) string {
	parts := strings.Split(name, ".")
	if len(parts) > 2 {
		return `must be "<label>" or "<label>.<label>"`
	}
	for _, p := range parts {
		if errs := validation.IsDNS1123Label(p); len(errs) > 0 {
			return `must be "<label>" or "<label>.<label>": ` + strings.Join(errs, "; ")
		}
	}
	return ""
}

func perNodeNameProblem(name string) string {
	if name == "default" {
		return ""
	}
	if node, ok := strings.CutPrefix(name, "node."); ok && node != "" {
		return ""
	}
	return `must be "default" or "node.<nodename>"`
}

// selector checks that s parses; unless allowGlobal, global() is rejected.
// With standalone, global() may appear only as the whole selector.
func (c *checker) selector(field, s string, allowGlobal bool) {
	if s == "" {
		return
	}
	sel, err := selector.Parse(s)
	if err != nil {
		c.add(field, "invalid selector %q: %v", s, err)
		return
	}
	canon := sel.String()
	if !containsGlobal(canon) {
		return
	}
	if !allowGlobal {
		c.add(field, "global() is not allowed here")
	} else if canon != "global()" {
		c.add(field, "global() must stand alone")
	}
}

// containsGlobal reports whether a canonical selector uses global(),
// ignoring string literals.
func containsGlobal(canon string) bool {
	var quote byte
	for i := 0; i < len(canon); i++ {
		ch := canon[i]
		switch {
		case quote != 0:
			if ch == quote {
				quote = 0
			}
		case ch == '"' || ch == '\'':
			quote = ch
		case strings.HasPrefix(canon[i:], "global()"):
			return true
		}
	}
	return false
}

// enum checks that v is empty or one of allowed.
func (c *checker) enum(field, v string, allowed ...string) {
	if v == "" {
		return
	}
	for _, a := range allowed {
		if v == a {
			return
		}
	}
	c.add(field, "%q is not one of %s", v, strings.Join(allowed, ", "))
}

// enumFold is enum without regard to case.
func (c *checker) enumFold(field, v string, allowed ...string) {
	if v == "" {
		return
	}
	for _, a := range allowed {
		if strings.EqualFold(v, a) {
			return
		}
	}
	c.add(field, "%q is not one of %s", v, strings.Join(allowed, ", "))
}

// parseIP parses an address without a zone; IPv4-mapped IPv6 is unmapped.
func parseIP(s string) (netip.Addr, bool) {
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}

// parseCIDR parses "ip/len", or a bare IP as a full-length prefix when
// allowIP is set.
func parseCIDR(s string, allowIP bool) (netip.Prefix, bool) {
	if !strings.Contains(s, "/") {
		if !allowIP {
			return netip.Prefix{}, false
		}
		a, ok := parseIP(s)
		if !ok {
			return netip.Prefix{}, false
		}
		return netip.PrefixFrom(a, a.BitLen()), true
	}
	p, err := netip.ParsePrefix(s)
	if err != nil || p.Addr().Zone() != "" {
		return netip.Prefix{}, false
	}
	if p.Addr().Is4In6() {
		if p.Bits() < 96 {
			return netip.Prefix{}, false
		}
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	return p, true
}

// ip checks an IP address, optionally of one family (4 or 6; 0 for any).
func (c *checker) ip(field, s string, family int) (netip.Addr, bool) {
	a, ok := parseIP(s)
	if !ok {
		c.add(field, "%q is not an IP address", s)
		return a, false
	}
	if family != 0 && familyOf(a) != family {
		c.add(field, "%q is not an IPv%d address", s, family)
		return a, false
	}
	return a, true
}

// cidr checks a CIDR (or, with allowIP, a bare IP) of family (0 for any).
func (c *checker) cidr(field, s string, allowIP bool, family int) (netip.Prefix, bool) {
	p, ok := parseCIDR(s, allowIP)
	if !ok {
		what := "a CIDR"
		if allowIP {
			what = "a CIDR or IP address"
		}
		c.add(field, "%q is not %s", s, what)
		return p, false
	}
	if family != 0 && familyOf(p.Addr()) != family {
		c.add(field, "%q is not an IPv%d CIDR", s, family)
		return p, false
	}
	return p, true
}

func familyOf(a netip.Addr) int {
	if a.Is4() {
		return 4
	}
	return 6
}

// duration checks that a duration is not negative.
func (c *checker) duration(field string, d *metav1.Duration) {
	if d != nil && d.Duration < 0 {
		c.add(field, "may not be negative")
	}
}

// intRange checks lo ≤ *v ≤ hi for an optional integer.
func (c *checker) intRange(field string, v *int, lo, hi int) {
	if v != nil && (*v < lo || *v > hi) {
		c.add(field, "%d is out of range %d-%d", *v, lo, hi)
	}
}

// order checks a policy or tier order.
func (c *checker) order(field string, o *float64) {
	if o != nil && (math.IsNaN(*o) || math.IsInf(*o, 0)) {
		c.add(field, "must be a finite number")
	}
}

// resourceName checks a reference to another resource by name.
func (c *checker) resourceName(field, s string) {
	if errs := validation.IsDNS1123Subdomain(s); len(errs) > 0 {
		c.add(field, "%q: %s", s, strings.Join(errs, "; "))
	}
}
