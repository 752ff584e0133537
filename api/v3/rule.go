package v3

// Action is what a rule does with a matching packet, and what a tier does
// with a packet that no policy in it decided.
type Action string

// Rule actions. Tiers use only Deny and Pass as their default action.
const (
	Allow Action = "Allow"
	Deny  Action = "Deny"
	Log   Action = "Log"
	Pass  Action = "Pass"
)

// PolicyType is a direction a policy applies to.
type PolicyType string

// The two policy directions.
const (
	PolicyTypeIngress PolicyType = "Ingress"
	PolicyTypeEgress  PolicyType = "Egress"
)

// Rule is one ingress or egress rule of a policy or profile. All fields
// that are set must match for the rule's action to apply.
type Rule struct {
	Action Action `json:"action"`
	// IPVersion restricts the rule to IPv4 (4) or IPv6 (6) traffic.
	IPVersion *int `json:"ipVersion,omitempty"`
	// Protocol is a name (TCP, UDP, ICMP, ICMPv6, SCTP, UDPLite) or 1-255.
	Protocol    *Protocol   `json:"protocol,omitempty"`
	ICMP        *ICMPFields `json:"icmp,omitempty"`
	NotProtocol *Protocol   `json:"notProtocol,omitempty"`
	NotICMP     *ICMPFields `json:"notICMP,omitempty"`
	// Source and Destination are always written, as "{}" when empty.
	Source      EntityRule    `json:"source,omitzero"`
	Destination EntityRule    `json:"destination,omitzero"`
	HTTP        *HTTPMatch    `json:"http,omitempty"`
	Metadata    *RuleMetadata `json:"metadata,omitempty"`
}

// RuleMetadata is data kept with a rule but not used for matching.
type RuleMetadata struct {
	Annotations map[string]string `json:"annotations,omitempty"`
}

// ICMPFields matches an ICMP type and, optionally, code.
type ICMPFields struct {
	Type *int `json:"type,omitempty"`
	Code *int `json:"code,omitempty"`
}

// HTTPMatch matches HTTP requests; it needs the application-layer policy
// proxy, the dataplane only enforces the L3/L4 part of the rule.
type HTTPMatch struct {
	// Methods lists HTTP methods, any of which may match.
	Methods []string `json:"methods,omitempty"`
	// Paths lists paths, any of which may match.
	Paths []HTTPPath `json:"paths,omitempty"`
}

// HTTPPath is an exact path or a path prefix; exactly one is set.
type HTTPPath struct {
	Exact  string `json:"exact,omitempty"`
	Prefix string `json:"prefix,omitempty"`
}

// EntityRule matches the source or destination of a packet.
type EntityRule struct {
	// Nets are CIDRs or bare IPs; any may match.
	Nets []string `json:"nets,omitempty"`
	// Selector matches endpoints and network sets by label.
	Selector string `json:"selector,omitempty"`
	// NamespaceSelector matches the namespaces of the selected entities.
	NamespaceSelector string `json:"namespaceSelector,omitempty"`
	// Services matches the endpoints of a Kubernetes Service.
	Services *ServiceMatch `json:"services,omitempty"`
	Ports    []Port        `json:"ports,omitempty"`
	NotNets  []string      `json:"notNets,omitempty"`
	// NotSelector excludes entities matching it, including non-Calico ones.
	NotSelector     string               `json:"notSelector,omitempty"`
	NotPorts        []Port               `json:"notPorts,omitempty"`
	ServiceAccounts *ServiceAccountMatch `json:"serviceAccounts,omitempty"`
}

// ServiceAccountMatch matches endpoints by their service account: the name
// must be in Names (if set) and the account's labels must match Selector.
type ServiceAccountMatch struct {
	Names    []string `json:"names,omitempty"`
	Selector string   `json:"selector,omitempty"`
}

// ServiceMatch names a Kubernetes Service.
type ServiceMatch struct {
	Name      string `json:"name,omitempty"`
	Namespace string `json:"namespace,omitempty"`
}
