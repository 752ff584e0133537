package v3

import (
	"maps"
	"net/netip"
	"regexp"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// Limits on rule contents.
const (
	maxNetsPerEntity  = 256
	maxPortsPerEntity = 50
	maxHTTPMatches    = 20
	maxRulesPerPolicy = 1024
	maxSelectorLength = 1024
)

var portNameRE = regexp.MustCompile(`^[a-zA-Z0-9_.-]{1,128}$`)

// direction of a rule list.
type direction int

const (
	ingress direction = iota
	egress
)

func (c *checker) rules(field string, rules []Rule, dir direction) {
	if len(rules) > maxRulesPerPolicy {
		c.add(field, "at most %d rules allowed (have %d)", maxRulesPerPolicy, len(rules))
	}
	for i := range rules {
		c.rule(idx(field, i), &rules[i], dir)
	}
}

func (c *checker) rule(field string, r *Rule, dir direction) {
	switch r.Action {
	case "":
		c.add(field+".action", "required")
	case Allow, Deny, Log, Pass:
	default:
		c.add(field+".action", "%q is not one of Allow, Deny, Log, Pass", r.Action)
	}
	if r.IPVersion != nil && *r.IPVersion != 4 && *r.IPVersion != 6 {
		c.add(field+".ipVersion", "%d is not 4 or 6", *r.IPVersion)
	}
	c.ruleProtocol(field+".protocol", r.Protocol, r.IPVersion)
	c.ruleProtocol(field+".notProtocol", r.NotProtocol, r.IPVersion)
	c.icmp(field+".icmp", r.ICMP, r.Protocol)
	c.icmp(field+".notICMP", r.NotICMP, r.Protocol)
	c.entityRule(field+".source", &r.Source, dir == ingress)
	c.entityRule(field+".destination", &r.Destination, dir == egress)
	c.rulePorts(field, r)
	c.ruleNets(field, r)
	if r.HTTP != nil {
		c.httpMatch(field+".http", r, dir)
	}
	if r.Metadata != nil {
		total := 0
		for k, v := range r.Metadata.Annotations {
			total += len(k) + len(v)
		}
		if total > maxAnnotationBytes {
			c.add(field+".metadata.annotations", "may not exceed %d bytes in total", maxAnnotationBytes)
		}
	}
}

// ruleProtocol checks a protocol name/number and its agreement with ipVersion.
func (c *checker) ruleProtocol(field string, p *Protocol, ipVersion *int) {
	if p == nil {
		return
	}
	if !c.protocol(field, *p) {
		return
	}
	n, _ := p.NumValue()
	switch {
	case n == 1 && ipVersion != nil && *ipVersion != 4:
		c.add(field, "ICMP needs ipVersion 4 (or unset)")
	case n == 58 && ipVersion != nil && *ipVersion != 6:
		c.add(field, "ICMPv6 needs ipVersion 6 (or unset)")
	}
}

// protocol checks a name (any case) or a number 1-255.
func (c *checker) protocol(field string, p Protocol) bool {
	n, err := p.NumValue()
	if err != nil {
		c.add(field, "%q is not one of TCP, UDP, ICMP, ICMPv6, SCTP, UDPLite or 1-255", p.StrVal)
		return false
	}
	if n == 0 {
		c.add(field, "protocol 0 is not allowed")
		return false
	}
	return true
}

func (c *checker) icmp(field string, f *ICMPFields, proto *Protocol) {
	if f == nil {
		return
	}
	if f.Type != nil && (*f.Type < 0 || *f.Type > 254) {
		c.add(field+".type", "%d is out of range 0-254", *f.Type)
	}
	if f.Code != nil {
		if *f.Code < 0 || *f.Code > 255 {
			c.add(field+".code", "%d is out of range 0-255", *f.Code)
		}
		if f.Type == nil {
			c.add(field+".code", "needs a type")
		}
	}
	n := uint8(0)
	if proto != nil {
		n, _ = proto.NumValue()
	}
	if n != 1 && n != 58 {
		c.add(field, "needs protocol ICMP or ICMPv6")
	}
}

// entityRule checks one side of a rule. servicesOK says whether services
// may be used on this side (ingress source, egress destination).
func (c *checker) entityRule(field string, e *EntityRule, servicesOK bool) {
	c.netList(field+".nets", e.Nets, false)
	c.netList(field+".notNets", e.NotNets, true)
	c.selector(field+".selector", e.Selector, true)
	c.selector(field+".notSelector", e.NotSelector, true)
	c.namespaceSelector(field+".namespaceSelector", e.NamespaceSelector)
	c.portList(field+".ports", e.Ports)
	c.portList(field+".notPorts", e.NotPorts)
	if sa := e.ServiceAccounts; sa != nil {
		for i, n := range sa.Names {
			c.resourceName(idx(field+".serviceAccounts.names", i), n)
		}
		c.selector(field+".serviceAccounts.selector", sa.Selector, false)
	}
	if e.Services == nil {
		return
	}
	sf := field + ".services"
	if !servicesOK {
		c.add(sf, "only allowed in the source of ingress rules and the destination of egress rules")
	}
	if e.Services.Name == "" {
		c.add(sf+".name", "required")
	} else {
		c.resourceName(sf+".name", e.Services.Name)
	}
	if e.Services.Namespace != "" {
		if errs := validation.IsDNS1123Label(e.Services.Namespace); len(errs) > 0 {
			c.add(sf+".namespace", "%s", strings.Join(errs, "; "))
		}
	}
	conflicts := []struct {
		set  bool
		name string
	}{
		{e.Selector != "", "selector"},
		{e.NotSelector != "", "notSelector"},
		{e.NamespaceSelector != "", "namespaceSelector"},
		{len(e.Nets) > 0, "nets"},
		{len(e.NotNets) > 0, "notNets"},
		{e.ServiceAccounts != nil, "serviceAccounts"},
		{len(e.Ports) > 0, "ports"},
		{len(e.NotPorts) > 0, "notPorts"},
	}
	for _, cf := range conflicts {
		if cf.set {
			c.add(sf, "cannot be combined with %s", cf.name)
		}
	}
}

// namespaceSelector checks an entity's namespace selector: global() is
// allowed only on its own.
func (c *checker) namespaceSelector(field, s string) {
	c.selector(field, s, true)
}

func (c *checker) netList(field string, nets []string, isNot bool) {
	if len(nets) > maxNetsPerEntity {
		c.add(field, "at most %d entries allowed (have %d)", maxNetsPerEntity, len(nets))
	}
	for i, n := range nets {
		p, ok := c.cidr(idx(field, i), n, true, 0)
		if ok && isNot && p.Bits() == 0 {
			c.add(idx(field, i), "%q would match nothing; not allowed in notNets", n)
		}
	}
}

// ruleNets checks that a rule's nets are of one family, agreeing with
// ipVersion when it is set.
func (c *checker) ruleNets(field string, r *Rule) {
	want := 0
	if r.IPVersion != nil && (*r.IPVersion == 4 || *r.IPVersion == 6) {
		want = *r.IPVersion
	}
	lists := []struct {
		name string
		nets []string
	}{
		{".source.nets", r.Source.Nets},
		{".source.notNets", r.Source.NotNets},
		{".destination.nets", r.Destination.Nets},
		{".destination.notNets", r.Destination.NotNets},
	}
	for _, l := range lists {
		for i, n := range l.nets {
			p, ok := parseCIDR(n, true)
			if !ok {
				continue // reported by netList
			}
			fam := familyOf(p.Addr())
			switch {
			case want == 0:
				want = fam
			case r.IPVersion != nil && fam != want:
				c.add(idx(field+l.name, i), "IPv%d net in a rule with ipVersion %d", fam, want)
			case fam != want:
				c.add(idx(field+l.name, i), "IPv%d net mixed with IPv%d nets in one rule", fam, want)
			}
		}
	}
}

func (c *checker) portList(field string, ports []Port) {
	if len(ports) > maxPortsPerEntity {
		c.add(field, "at most %d entries allowed (have %d)", maxPortsPerEntity, len(ports))
	}
	for i, p := range ports {
		c.port(idx(field, i), p)
	}
}

// port checks a single port, range or name.
func (c *checker) port(field string, p Port) {
	if p.invalid != "" {
		c.add(field, "%s is not a port: use 1-65535, \"min:max\" or a port name", p.invalid)
		return
	}
	if p.PortName != "" {
		if p.MinPort != 0 || p.MaxPort != 0 {
			c.add(field, "a named port may not also have numbers")
		}
		c.portName(field, p.PortName)
		return
	}
	if p.MinPort == 0 || p.MaxPort == 0 {
		c.add(field, "%s: ports must be 1-65535", p)
	} else if p.MinPort > p.MaxPort {
		c.add(field, "%s: range minimum is above maximum", p)
	}
}

// portName checks a named port: [a-zA-Z0-9_.-]{1,128} and a valid
// Kubernetes port name.
func (c *checker) portName(field, name string) {
	if !portNameRE.MatchString(name) {
		c.add(field, "port name %q must match [a-zA-Z0-9_.-]{1,128}", name)
		return
	}
	if errs := validation.IsValidPortName(name); len(errs) > 0 {
		c.add(field, "port name %q: %s", name, strings.Join(errs, "; "))
	}
}

// rulePorts checks that numeric ports come with a protocol that has ports;
// a list of named ports only may leave the protocol unset.
func (c *checker) rulePorts(field string, r *Rule) {
	numeric, any := false, false
	for _, l := range [][]Port{r.Source.Ports, r.Source.NotPorts, r.Destination.Ports, r.Destination.NotPorts} {
		for _, p := range l {
			any = true
			if p.PortName == "" {
				numeric = true
			}
		}
	}
	if !any {
		return
	}
	if r.Protocol == nil {
		if numeric {
			c.add(field+".protocol", "required to be TCP, UDP or SCTP when numeric ports are given")
		}
		return
	}
	if _, err := r.Protocol.NumValue(); err == nil && !r.Protocol.SupportsPorts() {
		c.add(field+".protocol", "%s has no ports; ports need TCP, UDP or SCTP", r.Protocol)
	}
}

func (c *checker) httpMatch(field string, r *Rule, dir direction) {
	h := r.HTTP
	if r.Action != Allow {
		c.add(field, "only allowed in Allow rules")
	}
	if dir != ingress {
		c.add(field, "only allowed in ingress rules")
	}
	if r.Protocol != nil {
		if n, err := r.Protocol.NumValue(); err == nil && n != 6 {
			c.add(field, "needs protocol TCP (or unset)")
		}
	}
	if len(h.Methods) > maxHTTPMatches {
		c.add(field+".methods", "at most %d entries allowed (have %d)", maxHTTPMatches, len(h.Methods))
	}
	for i, m := range h.Methods {
		if m == "" {
			c.add(idx(field+".methods", i), "may not be empty")
		}
	}
	if len(h.Paths) > maxHTTPMatches {
		c.add(field+".paths", "at most %d entries allowed (have %d)", maxHTTPMatches, len(h.Paths))
	}
	for i, p := range h.Paths {
		switch {
		case p.Exact != "" && p.Prefix != "":
			c.add(idx(field+".paths", i), "set exact or prefix, not both")
		case p.Exact == "" && p.Prefix == "":
			c.add(idx(field+".paths", i), "set exact or prefix")
		}
	}
}

// policyCommon holds the fields shared by all Calico policy specs.
type policyCommon struct {
	tier                   string
	order                  *float64
	ingress, egress        []Rule
	selector               string
	types                  []PolicyType
	serviceAccountSelector string
	performanceHints       []PolicyPerformanceHint
}

func (c *checker) policyCommon(p policyCommon) {
	if p.tier != "" {
		if errs := validation.IsDNS1123Label(p.tier); len(errs) > 0 {
			c.add("spec.tier", "%q: %s", p.tier, strings.Join(errs, "; "))
		}
	}
	c.order("spec.order", p.order)
	c.rules("spec.ingress", p.ingress, ingress)
	c.rules("spec.egress", p.egress, egress)
	if len(p.selector) > maxSelectorLength {
		c.add("spec.selector", "at most %d characters allowed (have %d)", maxSelectorLength, len(p.selector))
	}
	c.selector("spec.selector", p.selector, false)
	c.selector("spec.serviceAccountSelector", p.serviceAccountSelector, false)
	c.policyTypes("spec.types", p.types)
	seen := map[PolicyPerformanceHint]bool{}
	for i, h := range p.performanceHints {
		f := idx("spec.performanceHints", i)
		if h != PerfHintAssumeNeededOnEveryNode {
			c.add(f, "%q is not one of %s", h, PerfHintAssumeNeededOnEveryNode)
		} else if seen[h] {
			c.add(f, "%q repeated", h)
		}
		seen[h] = true
	}
}

func (c *checker) policyTypes(field string, types []PolicyType) {
	if len(types) > 2 {
		c.add(field, "at most 2 entries allowed (have %d)", len(types))
	}
	seen := map[PolicyType]bool{}
	for i, t := range types {
		switch {
		case t != PolicyTypeIngress && t != PolicyTypeEgress:
			c.add(idx(field, i), "%q is not one of Ingress, Egress", t)
		case seen[t]:
			c.add(idx(field, i), "%q repeated", t)
		}
		seen[t] = true
	}
}

func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}

// validPrefixBits reports whether p is strictly masked (no host bits set).
func validPrefixBits(p netip.Prefix) bool { return p.Masked().Addr() == p.Addr() }
