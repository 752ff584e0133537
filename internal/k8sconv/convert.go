// Package k8sconv converts Kubernetes NetworkPolicy (networking.k8s.io/v1)
// into the Calico NetworkPolicy that Calico enforces in its place (SPEC §3,
// "Kubernetes NetworkPolicy → Calico"), so that a cluster without Kubernetes
// can still be given Kubernetes policy YAML.
//
// The converted policy is named knp.default.<name>, lives in the same
// namespace, sits in tier default at order 1000, and selects
// projectcalico.org/orchestrator == 'k8s' && <podSelector>. Each Kubernetes
// rule becomes one Allow rule per (protocol × peer); ports without a
// protocol are TCP, ports of one protocol are merged into ranges, and a rule
// without ports allows any protocol. Ingress peers become the source (ports
// stay in the destination); egress peers and ports become the destination.
//
// Both directions are checked: the input as Kubernetes validates it (errors
// name the Kubernetes fields, e.g. spec.ingress[0].from[1].ipBlock.except[0])
// and the output with v3.Validate, so a policy returned without error can be
// stored as it is.
package k8sconv

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	v3 "github.com/calico-go/calico/api/v3"
)

const (
	// NamePrefix is put before a Kubernetes policy's name to name the Calico
	// policy made from it.
	NamePrefix = "knp.default."
	// Order is the order of every converted policy.
	Order = 1000.0
	// Tier is the tier of every converted policy.
	Tier = v3.DefaultTierName
	// OrchestratorSelector is ANDed into every pod selector: Kubernetes
	// policy selects only Kubernetes pods.
	OrchestratorSelector = v3.LabelOrchestrator + " == '" + v3.OrchestratorKubernetes + "'"
	// DefaultNamespace is used for a policy that names no namespace, as
	// kubectl does without a context namespace.
	DefaultNamespace = "default"
)

// kindLabel names Kubernetes policies in errors.
const kindLabel = APIVersion + " " + Kind

// ErrInvalid matches every error about an input that Kubernetes would
// refuse, or whose conversion Calico would refuse; such errors also unwrap
// to a *v3.ValidationError that lists the fields.
var ErrInvalid = errors.New("invalid Kubernetes NetworkPolicy")

// Name returns the name of the Calico policy made from the Kubernetes policy
// called k8sName.
func Name(k8sName string) string { return NamePrefix + k8sName }

// NetworkPolicy converts np. np is not modified. An empty namespace means
// DefaultNamespace. Only the name and namespace of np's metadata are carried
// over: uid, resourceVersion and the rest belong to the Kubernetes object.
func NetworkPolicy(np *networkingv1.NetworkPolicy) (*v3.NetworkPolicy, error) {
	if np == nil {
		return nil, errors.New("convert NetworkPolicy: nil policy")
	}
	in := mirror(np)
	if err := checkInput(in); err != nil {
		return nil, err
	}
	out := v3.NewNetworkPolicy()
	out.Name = Name(in.Name)
	out.Namespace = in.Namespace
	out.Spec = convertSpec(&in.Spec)
	if err := checkOutput(out, in); err != nil {
		return nil, err
	}
	return out, nil
}

// StagedNetworkPolicy converts a StagedKubernetesNetworkPolicy into the
// StagedNetworkPolicy knp.default.<name> with the same staged action (Set
// when empty). With stagedAction Delete the result holds only the action
// and the tier, as Calico requires.
func StagedNetworkPolicy(p *v3.StagedKubernetesNetworkPolicy) (*v3.StagedNetworkPolicy, error) {
	if p == nil {
		return nil, errors.New("convert StagedKubernetesNetworkPolicy: nil policy")
	}
	in := p.DeepCopy()
	if in.Namespace == "" {
		in.Namespace = DefaultNamespace
	}
	if in.Spec.StagedAction == "" {
		in.Spec.StagedAction = v3.StagedActionSet
	}
	if err := v3.Validate(in); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	out := v3.NewStagedNetworkPolicy()
	out.Name = Name(in.Name)
	out.Namespace = in.Namespace
	if in.Spec.StagedAction == v3.StagedActionDelete {
		out.Spec = v3.StagedNetworkPolicySpec{StagedAction: v3.StagedActionDelete, Tier: Tier}
	} else {
		s := convertSpec(&in.Spec)
		out.Spec = v3.StagedNetworkPolicySpec{
			StagedAction: in.Spec.StagedAction,
			Tier:         s.Tier, Order: s.Order, Selector: s.Selector, Types: s.Types,
			Ingress: s.Ingress, Egress: s.Egress,
		}
	}
	if err := checkOutput(out, in); err != nil {
		return nil, err
	}
	return out, nil
}

// mirror copies np into api/v3's mirror of the Kubernetes policy, whose
// validator checks what the Kubernetes API server checks.
func mirror(np *networkingv1.NetworkPolicy) *v3.StagedKubernetesNetworkPolicy {
	out := v3.NewStagedKubernetesNetworkPolicy()
	out.Name = np.Name
	out.Namespace = np.Namespace
	if out.Namespace == "" {
		out.Namespace = DefaultNamespace
	}
	s := &out.Spec
	s.StagedAction = v3.StagedActionSet
	s.PodSelector = np.Spec.PodSelector
	for _, r := range np.Spec.Ingress {
		s.Ingress = append(s.Ingress, v3.KubeNetworkPolicyIngress{Ports: mirrorPorts(r.Ports), From: mirrorPeers(r.From)})
	}
	for _, r := range np.Spec.Egress {
		s.Egress = append(s.Egress, v3.KubeNetworkPolicyEgress{Ports: mirrorPorts(r.Ports), To: mirrorPeers(r.To)})
	}
	for _, t := range np.Spec.PolicyTypes {
		s.PolicyTypes = append(s.PolicyTypes, v3.PolicyType(t))
	}
	return out
}

func mirrorPorts(ports []networkingv1.NetworkPolicyPort) []v3.KubeNetworkPolicyPort {
	var out []v3.KubeNetworkPolicyPort
	for _, p := range ports {
		m := v3.KubeNetworkPolicyPort{Port: p.Port, EndPort: p.EndPort}
		if p.Protocol != nil {
			proto := string(*p.Protocol)
			m.Protocol = &proto
		}
		out = append(out, m)
	}
	return out
}

func mirrorPeers(peers []networkingv1.NetworkPolicyPeer) []v3.KubeNetworkPolicyPeer {
	var out []v3.KubeNetworkPolicyPeer
	for _, p := range peers {
		m := v3.KubeNetworkPolicyPeer{PodSelector: p.PodSelector, NamespaceSelector: p.NamespaceSelector}
		if p.IPBlock != nil {
			m.IPBlock = &v3.KubeIPBlock{CIDR: p.IPBlock.CIDR, Except: p.IPBlock.Except}
		}
		out = append(out, m)
	}
	return out
}

// checkInput validates the Kubernetes policy; errors name the Kubernetes
// fields.
func checkInput(in *v3.StagedKubernetesNetworkPolicy) error {
	err := v3.Validate(in)
	var ve *v3.ValidationError
	if errors.As(err, &ve) {
		ve.Kind = kindLabel
		return fmt.Errorf("%w: %w", ErrInvalid, ve)
	}
	return err
}

// checkOutput validates the converted policy. Its problems (a name too long
// once prefixed, too many ports or rules, a selector over the length limit)
// are reported against the Kubernetes policy, with the Calico field named.
func checkOutput(out v3.Resource, in *v3.StagedKubernetesNetworkPolicy) error {
	err := v3.Validate(out)
	var ve *v3.ValidationError
	if !errors.As(err, &ve) {
		return err
	}
	res := &v3.ValidationError{Kind: kindLabel, Namespace: in.Namespace, Name: in.Name}
	for _, fe := range ve.Errors {
		res.Errors = append(res.Errors, v3.FieldError{
			Field:  fe.Field,
			Detail: fmt.Sprintf("%s (in the converted Calico %s %s)", fe.Detail, ve.Kind, out.GetName()),
		})
	}
	return fmt.Errorf("%w: %w", ErrInvalid, res)
}

// convertSpec converts a validated Kubernetes policy spec.
func convertSpec(s *v3.StagedKubernetesNetworkPolicySpec) v3.NetworkPolicySpec {
	order := Order
	out := v3.NetworkPolicySpec{
		Tier:     Tier,
		Order:    &order,
		Selector: selectorFor(&s.PodSelector, podSelector),
		Types:    policyTypes(s),
	}
	for _, r := range s.Ingress {
		out.Ingress = append(out.Ingress, rules(r.From, r.Ports, true)...)
	}
	for _, r := range s.Egress {
		out.Egress = append(out.Egress, rules(r.To, r.Ports, false)...)
	}
	return out
}

// policyTypes applies Kubernetes' default (Ingress, plus Egress when the
// policy has egress rules) when policyTypes is empty, and returns the types
// in Calico's order. Egress rules of a policy whose types lack Egress are
// kept but never apply, as in Calico.
func policyTypes(s *v3.StagedKubernetesNetworkPolicySpec) []v3.PolicyType {
	given := s.PolicyTypes
	if len(given) == 0 {
		given = []v3.PolicyType{v3.PolicyTypeIngress}
		if len(s.Egress) > 0 {
			given = append(given, v3.PolicyTypeEgress)
		}
	}
	var out []v3.PolicyType
	for _, t := range []v3.PolicyType{v3.PolicyTypeIngress, v3.PolicyTypeEgress} {
		if slices.Contains(given, t) {
			out = append(out, t)
		}
	}
	if len(out) == 0 {
		out = []v3.PolicyType{v3.PolicyTypeIngress}
	}
	return out
}

// selectorKind says how an empty or missing Kubernetes selector reads.
type selectorKind int

const (
	// podSelector: always includes OrchestratorSelector; {} and nil add
	// nothing to it.
	podSelector selectorKind = iota
	// namespaceSelector: nil is "" (the policy's own namespace), {} is all().
	namespaceSelector
)

// selectorFor writes a Kubernetes label selector in Calico's selector
// language: matchLabels in key order, then matchExpressions in their order,
// joined with &&.
func selectorFor(ls *metav1.LabelSelector, kind selectorKind) string {
	var terms []string
	if kind == podSelector {
		terms = append(terms, OrchestratorSelector)
	}
	if ls == nil {
		return strings.Join(terms, " && ")
	}
	if kind == namespaceSelector && len(ls.MatchLabels) == 0 && len(ls.MatchExpressions) == 0 {
		return "all()"
	}
	keys := make([]string, 0, len(ls.MatchLabels))
	for k := range ls.MatchLabels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		terms = append(terms, fmt.Sprintf("%s == '%s'", k, ls.MatchLabels[k]))
	}
	for _, e := range ls.MatchExpressions {
		set := "{ '" + strings.Join(e.Values, "', '") + "' }"
		switch e.Operator {
		case metav1.LabelSelectorOpIn:
			terms = append(terms, e.Key+" in "+set)
		case metav1.LabelSelectorOpNotIn:
			terms = append(terms, e.Key+" not in "+set)
		case metav1.LabelSelectorOpExists:
			terms = append(terms, "has("+e.Key+")")
		case metav1.LabelSelectorOpDoesNotExist:
			terms = append(terms, "! has("+e.Key+")")
		}
	}
	return strings.Join(terms, " && ")
}

// protoPorts is the ports allowed for one protocol; all means any port.
type protoPorts struct {
	all   bool
	ports []v3.Port
}

// rules converts one Kubernetes rule into Allow rules: one per protocol
// (sorted by name; none when the rule lists no ports) and peer (in order;
// one any-peer rule when the rule lists none).
func rules(peers []v3.KubeNetworkPolicyPeer, ports []v3.KubeNetworkPolicyPort, ingress bool) []v3.Rule {
	byProto := map[string]*protoPorts{}
	for _, p := range ports {
		proto := "TCP"
		if p.Protocol != nil {
			proto = *p.Protocol
		}
		pp := byProto[proto]
		if pp == nil {
			pp = &protoPorts{}
			byProto[proto] = pp
		}
		if p.Port == nil {
			pp.all, pp.ports = true, nil
			continue
		}
		if !pp.all {
			pp.ports = append(pp.ports, portOf(p))
		}
	}
	protos := make([]string, 0, len(byProto))
	for k := range byProto {
		protos = append(protos, k)
	}
	sort.Strings(protos)
	if len(protos) == 0 {
		protos = []string{""} // any protocol, any port
	}
	if len(peers) == 0 {
		peers = []v3.KubeNetworkPolicyPeer{{}} // any peer
	}
	var out []v3.Rule
	for _, proto := range protos {
		var protocol *v3.Protocol
		var dstPorts []v3.Port
		if proto != "" {
			p := v3.ProtocolFromString(proto)
			protocol = &p
			dstPorts = simplifyPorts(byProto[proto].ports)
		}
		for _, peer := range peers {
			r := v3.Rule{Action: v3.Allow, Protocol: protocol}
			e := peerEntity(peer)
			if ingress {
				r.Source = e
			} else {
				r.Destination = e
			}
			r.Destination.Ports = slices.Clone(dstPorts)
			out = append(out, r)
		}
	}
	return out
}

// portOf converts a port, or port and endPort, of a validated policy.
func portOf(p v3.KubeNetworkPolicyPort) v3.Port {
	if p.Port.Type == intstr.String {
		return v3.NamedPort(p.Port.StrVal)
	}
	lo := uint16(p.Port.IntVal)
	if p.EndPort != nil {
		return v3.PortRange(lo, uint16(*p.EndPort))
	}
	return v3.SinglePort(lo)
}

// simplifyPorts merges numeric ports and ranges that overlap or touch into
// the fewest ranges, sorted, after the named ports in their order. Like
// Calico, a list whose numeric entries cover at most one port is left as
// it is.
func simplifyPorts(ports []v3.Port) []v3.Port {
	var named, numeric []v3.Port
	covered := 0
	for _, p := range ports {
		if p.IsNamed() {
			named = append(named, p)
			continue
		}
		numeric = append(numeric, p)
		covered += int(p.MaxPort) - int(p.MinPort) + 1
	}
	if len(ports) <= 1 || covered <= 1 {
		return ports
	}
	sort.Slice(numeric, func(i, j int) bool { return numeric[i].MinPort < numeric[j].MinPort })
	out := named
	cur := numeric[0]
	for _, p := range numeric[1:] {
		if int(p.MinPort) <= int(cur.MaxPort)+1 {
			cur.MaxPort = max(cur.MaxPort, p.MaxPort)
			continue
		}
		out = append(out, cur)
		cur = p
	}
	return append(out, cur)
}

// peerEntity converts one peer; the zero peer is any peer.
func peerEntity(p v3.KubeNetworkPolicyPeer) v3.EntityRule {
	if b := p.IPBlock; b != nil {
		e := v3.EntityRule{Nets: []string{canonicalCIDR(b.CIDR)}}
		for _, x := range b.Except {
			e.NotNets = append(e.NotNets, canonicalCIDR(x))
		}
		return e
	}
	if p.PodSelector == nil && p.NamespaceSelector == nil {
		return v3.EntityRule{}
	}
	return v3.EntityRule{
		Selector:          selectorFor(p.PodSelector, podSelector),
		NamespaceSelector: selectorFor(p.NamespaceSelector, namespaceSelector),
	}
}

// canonicalCIDR writes a CIDR with its host bits cleared, IPv4-mapped IPv6
// as IPv4; anything unparsable is returned as it is (validation reports it).
func canonicalCIDR(s string) string {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return s
	}
	if p.Addr().Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	return p.Masked().String()
}
