package felix

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	v3 "github.com/calico-go/calico/api/v3"
	"github.com/calico-go/calico/internal/testutil/wltest"
)

// policyCase is a set of resources written to the datastore (on top of
// the namespaces, service accounts and pods of newPolicyWorld) and the
// probes that must then succeed (+) or fail (-).
type policyCase struct {
	name   string
	res    string
	probes []string
	// extra, when set, checks more after the probes.
	extra func(t *testing.T, cl *cluster)
}

// np is a NetworkPolicy "ns/name" selecting sel; spec lines are YAML
// (flow style is handy) under spec.
func np(nsName, sel string, spec ...string) string {
	ns, name, _ := strings.Cut(nsName, "/")
	return fmt.Sprintf("kind: NetworkPolicy\nmetadata: {name: %s, namespace: %s}\nspec:\n  selector: %q\n%s", name, ns, sel, specLines(spec))
}

// gnp is a GlobalNetworkPolicy.
func gnp(name, sel string, spec ...string) string {
	return fmt.Sprintf("kind: GlobalNetworkPolicy\nmetadata: {name: %s}\nspec:\n  selector: %q\n%s", name, sel, specLines(spec))
}

// knp is a Kubernetes NetworkPolicy in prod (converted by k8sconv).
func knp(name string, spec ...string) string {
	return fmt.Sprintf("k8s: true\nmetadata: {name: %s, namespace: prod}\nspec:\n%s", name, specLines(spec))
}

func tier(name string, order int, defaultAction string) string {
	s := fmt.Sprintf("kind: Tier\nmetadata: {name: %s}\nspec: {order: %d", name, order)
	if defaultAction != "" {
		s += ", defaultAction: " + defaultAction
	}
	return s + "}"
}

func specLines(spec []string) string {
	var b strings.Builder
	for _, l := range spec {
		b.WriteString("  " + l + "\n")
	}
	return b.String()
}

func docs(ds ...string) string { return strings.Join(ds, "\n---\n") }

const (
	web     = "app == 'web'"
	db      = "app == 'db'"
	clients = "app == 'client'"
)

// policyCases covers every rule field of SPEC §2 and the evaluation rules
// of §3 for workload endpoints, written as datastore resources.
//
// Pods (newPolicyWorld): prod/web (app=web, role=frontend, SA web with
// role=frontend, named ports http=TCP 8080, metrics=TCP 9090, dns=UDP
// 5353), prod/db (app=db, role=backend, SA db with role=backend, http=TCP
// 80), prod/pc (app=client, SA client with trusted=true), dev/dc
// (app=client, SA default), dev/dt (app=tool, debug=true, SA tool with
// trusted=false), ops/mon (app=monitor, SA mon with trusted=true), ops/bare
// (no profiles). Namespaces: prod {env: prod, team: shop}, dev {env: dev,
// team: shop}, ops {env: ops}. "out" is the underlay, outside the cluster
// (192.0.2.2). Every pod serves TCP 80, 443, 8080, 9090 and UDP 53, 5353;
// out serves TCP 80 and UDP 53.
func policyCases() []policyCase {
	return []policyCase{
		// Profiles.
		{name: "profile kns allows everything without policy", probes: []string{
			"pc web tcp/80 +", "dc db tcp/443 +", "mon web udp/53 +", "dt pc icmp +", "out web tcp/80 +", "web out tcp/80 +", "db out udp/53 +"}},
		{name: "endpoint without profiles drops everything", probes: []string{
			"pc bare tcp/80 -", "bare pc tcp/80 -", "out bare icmp -", "bare out udp/53 -"}},
		{name: "policy decides its direction of a profile-less endpoint, the other still drops",
			res:    gnp("bare-in", "app == 'bare'", "ingress: [{action: Allow, protocol: TCP, destination: {ports: [80]}}]"),
			probes: []string{"pc bare tcp/80 +", "pc bare tcp/443 -", "bare pc tcp/80 -"}},

		// Policy selection and types.
		{name: "policy without rules denies the direction it selects",
			res:    np("prod/web-none", web, "types: [Ingress]"),
			probes: []string{"pc web tcp/80 -", "out web icmp -", "pc db tcp/80 +", "web db tcp/80 +"}},
		{name: "types inferred: egress-only policy leaves ingress to the profile",
			res:    np("prod/web-eg", web, "egress: [{action: Allow, protocol: TCP, destination: {nets: [10.65.0.0/16], ports: [80]}}]"),
			probes: []string{"pc web tcp/443 +", "dc web udp/53 +", "web db tcp/80 +", "web db tcp/443 -", "web out tcp/80 -"}},

		// nets / notNets.
		{name: "source nets (CIDR and bare IP)",
			res:    np("prod/web-in", web, "ingress: [{action: Allow, source: {nets: [$pc/32, $mon]}}]"),
			probes: []string{"pc web tcp/80 +", "mon web udp/53 +", "dc web tcp/80 -", "out web tcp/80 -"}},
		{name: "source notNets",
			res:    np("prod/web-in", web, "ingress: [{action: Allow, source: {notNets: [$pc/32, 192.0.2.0/24]}}]"),
			probes: []string{"pc web tcp/80 -", "out web tcp/80 -", "dc web tcp/80 +", "mon web icmp +"}},
		{name: "destination nets on egress",
			res:    np("prod/web-eg", web, "egress: [{action: Allow, destination: {nets: [192.0.2.0/24]}}]"),
			probes: []string{"web out tcp/80 +", "web out udp/53 +", "web db tcp/80 -", "pc web tcp/80 +"}},
		{name: "egress Deny to outside before Allow",
			res:    np("prod/pc-eg", clients, "egress: [{action: Deny, destination: {nets: [192.0.2.0/24]}}, {action: Allow}]"),
			probes: []string{"pc out tcp/80 -", "pc out udp/53 -", "pc web tcp/80 +", "dc out tcp/80 +"}},

		// Selectors and namespaces.
		{name: "NetworkPolicy selector matches its own namespace only",
			res:    np("prod/web-in", web, "ingress: [{action: Allow, source: {selector: \"app == 'client'\"}}]"),
			probes: []string{"pc web tcp/80 +", "dc web tcp/80 -", "mon web tcp/80 -"}},
		{name: "namespaceSelector all() with selector",
			res:    np("prod/web-in", web, "ingress: [{action: Allow, source: {selector: \"app == 'client'\", namespaceSelector: all()}}]"),
			probes: []string{"pc web tcp/80 +", "dc web tcp/80 +", "dt web tcp/80 -", "out web tcp/80 -"}},
		{name: "namespaceSelector label match alone selects the whole namespace",
			res:    np("prod/web-in", web, "ingress: [{action: Allow, source: {namespaceSelector: \"env == 'dev'\"}}]"),
			probes: []string{"dc web tcp/80 +", "dt web tcp/80 +", "pc web tcp/80 -", "mon web tcp/80 -"}},
		{name: "namespaceSelector AND selector",
			res:    np("prod/web-in", web, "ingress: [{action: Allow, source: {namespaceSelector: \"team == 'shop'\", selector: \"app == 'client'\"}}]"),
			probes: []string{"pc web tcp/80 +", "dc web tcp/80 +", "dt web tcp/80 -", "mon web tcp/80 -"}},
		{name: "namespaceSelector on the name label with in, selector with !=",
			res:    np("prod/web-in", web, "ingress: [{action: Allow, source: {namespaceSelector: \"projectcalico.org/name in {'ops', 'dev'}\", selector: \"app != 'tool'\"}}]"),
			probes: []string{"mon web tcp/80 +", "dc web tcp/80 +", "dt web tcp/80 -", "pc web tcp/80 -"}},
		{name: "namespaceSelector global() matches GlobalNetworkSets, not NetworkSets",
			res: docs(
				"kind: GlobalNetworkSet\nmetadata: {name: outside, labels: {zone: external}}\nspec: {nets: [192.0.2.0/24]}",
				"kind: NetworkSet\nmetadata: {name: inside, namespace: prod, labels: {zone: external}}\nspec: {nets: [$dc/32]}",
				np("prod/web-in", web, "ingress: [{action: Allow, source: {selector: \"zone == 'external'\", namespaceSelector: global()}}]")),
			probes: []string{"out web tcp/80 +", "dc web tcp/80 -", "pc web tcp/80 -"}},
		{name: "NetworkPolicy selector matches NetworkSets of its own namespace",
			res: docs(
				"kind: NetworkSet\nmetadata: {name: ext, namespace: prod, labels: {role: ext}}\nspec: {nets: [$out/32]}",
				"kind: NetworkSet\nmetadata: {name: ext, namespace: dev, labels: {role: ext}}\nspec: {nets: [$dc/32]}",
				np("prod/web-in", web, "ingress: [{action: Allow, source: {selector: \"role == 'ext'\"}}]")),
			probes: []string{"out web tcp/80 +", "dc web tcp/80 -", "pc web tcp/80 -"}},
		{name: "GlobalNetworkSet: GNP selector matches it, NP selector without global() does not",
			res: docs(
				"kind: GlobalNetworkSet\nmetadata: {name: outside, labels: {zone: external}}\nspec: {nets: [192.0.2.0/24]}",
				np("prod/web-in", web, "ingress: [{action: Allow, source: {selector: \"zone == 'external'\"}}]"),
				gnp("db-in", db, "ingress: [{action: Allow, source: {selector: \"zone == 'external'\"}}]")),
			probes: []string{"out web tcp/80 -", "out db tcp/80 +", "pc db tcp/80 -"}},
		{name: "selector !has(a) matches only known endpoints without a",
			res:    gnp("web-in", web, "ingress: [{action: Allow, source: {selector: \"!has(debug)\"}}]"),
			probes: []string{"pc web tcp/80 +", "dc web tcp/80 +", "dt web tcp/80 -", "out web tcp/80 -"}},
		{name: "notSelector has(a) also matches non-Calico sources",
			res:    gnp("web-in", web, "ingress: [{action: Allow, source: {notSelector: has(debug)}}]"),
			probes: []string{"pc web tcp/80 +", "dc web tcp/80 +", "dt web tcp/80 -", "out web tcp/80 +"}},
		{name: "notSelector in a NetworkPolicy is limited to its namespace",
			res:    np("prod/web-in", web, "ingress: [{action: Allow, source: {notSelector: \"app == 'db'\"}}]"),
			probes: []string{"pc web tcp/80 +", "db web tcp/80 -", "dc web tcp/80 -", "out web tcp/80 -"}},
		{name: "destination selector and notSelector on egress",
			res:    np("prod/pc-eg", clients, "egress: [{action: Allow, destination: {selector: \"role in {'frontend', 'backend'}\", notSelector: \"app == 'db'\"}}]"),
			probes: []string{"pc web tcp/80 +", "pc db tcp/80 -", "pc out tcp/80 -"}},
		{name: "GlobalNetworkPolicy with namespaceSelector selects that namespace's endpoints",
			res:    gnp("dev-in", "all()", "namespaceSelector: env == 'dev'", "types: [Ingress]", "ingress: [{action: Deny}]"),
			probes: []string{"pc dc tcp/80 -", "mon dt tcp/80 -", "dc pc tcp/80 +", "pc web tcp/80 +"}},

		// Ports.
		{name: "destination ports: single and range",
			res:    np("prod/web-in", web, "ingress: [{action: Allow, protocol: TCP, destination: {ports: [80, '8000:8100']}}]"),
			probes: []string{"pc web tcp/80 +", "pc web tcp/8080 +", "pc web tcp/443 -", "pc web tcp/9090 -"}},
		{name: "destination notPorts",
			res:    np("prod/web-in", web, "ingress: [{action: Allow, protocol: TCP, destination: {notPorts: [443, '9000:9999']}}]"),
			probes: []string{"pc web tcp/80 +", "pc web tcp/8080 +", "pc web tcp/443 -", "pc web tcp/9090 -", "pc web udp/53 -"}},
		{name: "source ports",
			res: docs(
				np("prod/web-in", web, "ingress: [{action: Allow, protocol: TCP, source: {ports: ['32768:60999']}, destination: {ports: [80]}}]"),
				np("prod/db-in", db, "ingress: [{action: Allow, protocol: TCP, source: {ports: ['1:1023']}}]")),
			probes: []string{"pc web tcp/80 +", "pc web tcp/443 -", "pc db tcp/80 -"}},
		{name: "UDP ports",
			res:    np("prod/web-in", web, "ingress: [{action: Allow, protocol: UDP, destination: {ports: [53]}}]"),
			probes: []string{"pc web udp/53 +", "pc web udp/5353 -", "pc web tcp/80 -"}},
		{name: "named port resolved per endpoint",
			res:    gnp("http-in", "app in {'web', 'db'}", "ingress: [{action: Allow, protocol: TCP, destination: {ports: [http]}}]"),
			probes: []string{"pc web tcp/8080 +", "pc web tcp/80 -", "pc db tcp/80 +", "pc db tcp/8080 -"}},
		{name: "named UDP port without protocol",
			res:    gnp("dns-in", web, "ingress: [{action: Allow, destination: {ports: [dns]}}]"),
			probes: []string{"pc web udp/5353 +", "pc web udp/53 -", "pc web tcp/8080 -"}},
		{name: "named port in an egress destination",
			res:    np("prod/pc-eg", clients, "egress: [{action: Allow, protocol: TCP, destination: {ports: [metrics]}}]"),
			probes: []string{"pc web tcp/9090 +", "pc web tcp/8080 -", "pc db tcp/9090 -"}},
		{name: "named and numeric ports mixed",
			res:    np("prod/web-in", web, "ingress: [{action: Allow, protocol: TCP, destination: {ports: [http, 443]}}]"),
			probes: []string{"pc web tcp/8080 +", "pc web tcp/443 +", "pc web tcp/80 -"}},

		// Protocols and ICMP.
		{name: "protocol TCP by name",
			res:    np("prod/web-in", web, "ingress: [{action: Allow, protocol: TCP}]"),
			probes: []string{"pc web tcp/80 +", "pc web udp/53 -", "pc web icmp -"}},
		{name: "protocol by lower-case name and by number",
			res: docs(
				np("prod/web-in", web, "ingress: [{action: Allow, protocol: udp}]"),
				np("prod/db-in", db, "ingress: [{action: Allow, protocol: 6}]")),
			probes: []string{"pc web udp/53 +", "pc web tcp/80 -", "pc db tcp/80 +", "pc db udp/53 -"}},
		{name: "protocol ICMP and UDP by number",
			res: docs(
				np("prod/web-in", web, "ingress: [{action: Allow, protocol: 1}]"),
				np("prod/db-in", db, "ingress: [{action: Allow, protocol: 17}]")),
			probes: []string{"pc web icmp +", "pc web tcp/80 -", "pc web udp/53 -", "pc db udp/53 +", "pc db tcp/80 -"}},
		{name: "notProtocol",
			res:    np("prod/web-in", web, "ingress: [{action: Allow, notProtocol: TCP}]"),
			probes: []string{"pc web udp/53 +", "pc web icmp +", "pc web tcp/80 -"}},
		{name: "ICMP type",
			res: docs(
				np("prod/web-in", web, "ingress: [{action: Allow, protocol: ICMP, icmp: {type: 8}}]"),
				np("prod/db-in", db, "ingress: [{action: Allow, protocol: ICMP, icmp: {type: 13}}]")),
			probes: []string{"pc web icmp +", "pc db icmp -"}},
		{name: "ICMP type and code",
			res: docs(
				np("prod/web-in", web, "ingress: [{action: Allow, protocol: ICMP, icmp: {type: 8, code: 0}}]"),
				np("prod/db-in", db, "ingress: [{action: Allow, protocol: ICMP, icmp: {type: 8, code: 1}}]")),
			probes: []string{"pc web icmp +", "pc db icmp -"}},
		{name: "notICMP",
			res: docs(
				np("prod/web-in", web, "ingress: [{action: Allow, protocol: ICMP, notICMP: {type: 8}}]"),
				np("prod/db-in", db, "ingress: [{action: Allow, protocol: ICMP, notICMP: {type: 8, code: 5}}]")),
			probes: []string{"pc web icmp -", "pc db icmp +"}},
		{name: "ipVersion 4 matches IPv4, ipVersion 6 does not",
			res: docs(
				np("prod/web-in", web, "ingress: [{action: Allow, ipVersion: 4, protocol: TCP}]"),
				np("prod/db-in", db, "ingress: [{action: Allow, ipVersion: 6}]")),
			probes: []string{"pc web tcp/80 +", "pc web udp/53 -", "pc db tcp/80 -"}},
		{name: "http match: the dataplane enforces the L4 part; rule annotations are kept",
			res: np("prod/web-in", web, "ingress: [{action: Allow, protocol: TCP, destination: {ports: [80]}, "+
				"http: {methods: [GET], paths: [{prefix: /api}]}, metadata: {annotations: {owner: shop}}}]"),
			probes: []string{"pc web tcp/80 +", "pc web tcp/443 -"}},

		// Service accounts.
		{name: "serviceAccounts names in a NetworkPolicy (own namespace)",
			res:    np("prod/web-in", web, "ingress: [{action: Allow, source: {serviceAccounts: {names: [client, mon]}}}]"),
			probes: []string{"pc web tcp/80 +", "mon web tcp/80 -", "dc web tcp/80 -"}},
		{name: "serviceAccounts names across namespaces",
			res:    gnp("web-in", web, "ingress: [{action: Allow, source: {serviceAccounts: {names: [client, mon]}}}]"),
			probes: []string{"pc web tcp/80 +", "mon web tcp/80 +", "dc web tcp/80 -", "dt web tcp/80 -"}},
		{name: "serviceAccounts selector",
			res:    gnp("web-in", web, "ingress: [{action: Allow, source: {serviceAccounts: {selector: \"trusted == 'true'\"}}}]"),
			probes: []string{"pc web tcp/80 +", "mon web tcp/80 +", "dt web tcp/80 -", "dc web tcp/80 -"}},
		{name: "serviceAccounts names AND selector",
			res:    gnp("web-in", web, "ingress: [{action: Allow, source: {serviceAccounts: {names: [tool, mon], selector: \"trusted == 'true'\"}}}]"),
			probes: []string{"mon web tcp/80 +", "dt web tcp/80 -", "pc web tcp/80 -"}},
		{name: "policy serviceAccountSelector",
			res:    gnp("backend-in", "all()", "serviceAccountSelector: role == 'backend'", "types: [Ingress]", "ingress: [{action: Deny}]"),
			probes: []string{"pc db tcp/80 -", "pc web tcp/80 +", "dc mon tcp/80 +"}},

		// Tiers, Pass, Log, order.
		{name: "Pass skips to the next tier",
			res: docs(tier("first", 10, ""),
				gnp("pass-clients", web, "tier: first", "ingress: [{action: Pass, source: {selector: \"app == 'client'\", namespaceSelector: all()}}, {action: Deny}]"),
				np("prod/web-own", web, "ingress: [{action: Allow, source: {selector: all()}}]")),
			probes: []string{"pc web tcp/80 +", "dc web tcp/80 -", "mon web tcp/80 -", "dt web tcp/80 -"}},
		{name: "Pass with no later tier reaches the profiles",
			res:    docs(tier("first", 10, ""), gnp("pass-all", web, "tier: first", "ingress: [{action: Pass}]")),
			probes: []string{"pc web tcp/80 +", "dc web tcp/80 +", "out web tcp/80 +"}},
		{name: "tier defaultAction Pass",
			res: docs(tier("passing", 10, "Pass"),
				gnp("deny-tool", web, "tier: passing", "ingress: [{action: Deny, source: {selector: \"app == 'tool'\"}}]")),
			probes: []string{"dt web tcp/80 -", "pc web tcp/80 +", "out web tcp/80 +"}},
		{name: "tier defaultAction Deny ends the tier",
			res: docs(tier("strict", 10, "Deny"),
				gnp("deny-tool", web, "tier: strict", "ingress: [{action: Deny, source: {selector: \"app == 'tool'\"}}]")),
			probes: []string{"dt web tcp/80 -", "pc web tcp/80 -", "out web tcp/80 -"}},
		{name: "Deny in an earlier tier beats Allow in a later one",
			res: docs(tier("first", 10, ""),
				gnp("deny-clients", web, "tier: first", "ingress: [{action: Deny, source: {selector: \"app == 'client'\"}}, {action: Pass}]"),
				np("prod/web-in", web, "ingress: [{action: Allow}]")),
			probes: []string{"pc web tcp/80 -", "dc web tcp/80 -", "mon web tcp/80 +"}},
		{name: "tiers sorted by order, not name",
			res: docs(tier("a-late", 200, ""), tier("z-early", 100, ""),
				gnp("allow", web, "tier: a-late", "ingress: [{action: Allow}]"),
				gnp("deny", web, "tier: z-early", "ingress: [{action: Deny}]")),
			probes: []string{"pc web tcp/80 -", "out web tcp/80 -"}},
		{name: "Log continues with the next rule",
			res:    np("prod/web-in", web, "ingress: [{action: Log}, {action: Allow, protocol: TCP, destination: {ports: [80]}}]"),
			probes: []string{"pc web tcp/80 +", "pc web tcp/443 -"},
			extra:  checkLogRule},
		{name: "Log alone does not decide",
			res:    np("prod/web-in", web, "ingress: [{action: Log}]"),
			probes: []string{"pc web tcp/80 -", "out web tcp/80 -"}},
		{name: "policy order: lower first",
			res: docs(
				np("prod/deny-later", web, "order: 20", "ingress: [{action: Deny}]"),
				np("prod/allow-first", web, "order: 10", "ingress: [{action: Allow, source: {selector: \"app == 'client'\"}}]")),
			probes: []string{"pc web tcp/80 +", "db web tcp/80 -"}},
		{name: "order tie broken by name: a-deny before b-allow",
			res: docs(
				np("prod/b-allow", web, "order: 100", "ingress: [{action: Allow}]"),
				np("prod/a-deny", web, "order: 100", "ingress: [{action: Deny, source: {selector: \"app == 'client'\"}}]")),
			probes: []string{"pc web tcp/80 -", "db web tcp/80 +"}},
		{name: "order tie broken by name: b-allow before z-deny",
			res: docs(
				np("prod/b-allow", web, "order: 100", "ingress: [{action: Allow}]"),
				np("prod/z-deny", web, "order: 100", "ingress: [{action: Deny, source: {selector: \"app == 'client'\"}}]")),
			probes: []string{"pc web tcp/80 +", "db web tcp/80 +"}},
		{name: "unset order sorts last",
			res: docs(
				np("prod/a-unordered", web, "ingress: [{action: Allow}]"),
				np("prod/z-ordered", web, "order: 1000", "ingress: [{action: Deny, source: {selector: \"app == 'client'\"}}]")),
			probes: []string{"pc web tcp/80 -", "db web tcp/80 +"}},
		{name: "staged policies are never enforced",
			res: docs(tier("shadow", 10, ""),
				"kind: StagedNetworkPolicy\nmetadata: {name: web-deny, namespace: prod}\nspec: {selector: \"app == 'web'\", types: [Ingress], ingress: [{action: Deny}]}",
				"kind: StagedGlobalNetworkPolicy\nmetadata: {name: deny-all}\nspec: {tier: shadow, selector: all(), types: [Ingress, Egress], ingress: [{action: Deny}], egress: [{action: Deny}]}",
				"kind: StagedKubernetesNetworkPolicy\nmetadata: {name: deny-prod, namespace: prod}\nspec: {podSelector: {}, policyTypes: [Ingress, Egress]}"),
			probes: []string{"pc web tcp/80 +", "web db tcp/80 +", "out web tcp/80 +", "dc pc udp/53 +"}},

		// Kubernetes NetworkPolicy, converted by k8sconv and stored.
		{name: "k8s default deny ingress",
			res:    knp("default-deny", "podSelector: {}", "policyTypes: [Ingress]"),
			probes: []string{"pc web tcp/80 -", "dc db tcp/80 -", "out web icmp -", "web out tcp/80 +", "pc dc tcp/80 +"}},
		{name: "k8s default deny egress",
			res:    knp("default-deny", "podSelector: {}", "policyTypes: [Egress]"),
			probes: []string{"pc web tcp/80 -", "web out udp/53 -", "dc web tcp/80 +"}},
		{name: "k8s allow from namespace AND pod selector",
			res:    knp("web-in", "podSelector: {matchLabels: {app: web}}", "ingress: [{from: [{namespaceSelector: {matchLabels: {env: dev}}, podSelector: {matchLabels: {app: client}}}]}]"),
			probes: []string{"dc web tcp/80 +", "dt web tcp/80 -", "pc web tcp/80 -", "mon web tcp/80 -"}},
		{name: "k8s namespace OR pod selector (two peers)",
			res:    knp("web-in", "podSelector: {matchLabels: {app: web}}", "ingress: [{from: [{namespaceSelector: {matchLabels: {env: ops}}}, {podSelector: {matchLabels: {app: client}}}]}]"),
			probes: []string{"mon web tcp/80 +", "pc web tcp/80 +", "dc web tcp/80 -", "dt web tcp/80 -"}},
		{name: "k8s namespaceSelector {} means every namespace",
			res:    knp("web-in", "podSelector: {matchLabels: {app: web}}", "ingress: [{from: [{namespaceSelector: {}}]}]"),
			probes: []string{"dc web tcp/80 +", "mon web tcp/80 +", "out web tcp/80 -"}},
		{name: "k8s ipBlock with except",
			res:    knp("web-in", "podSelector: {matchLabels: {app: web}}", "ingress: [{from: [{ipBlock: {cidr: 10.65.0.0/16, except: [$pc/32]}}]}]"),
			probes: []string{"dc web tcp/80 +", "mon web tcp/80 +", "pc web tcp/80 -", "out web tcp/80 -"}},
		{name: "k8s port range with endPort",
			res:    knp("web-in", "podSelector: {matchLabels: {app: web}}", "ingress: [{ports: [{protocol: TCP, port: 8000, endPort: 9000}]}]"),
			probes: []string{"pc web tcp/8080 +", "pc web tcp/9090 -", "pc web tcp/80 -", "pc web udp/53 -"}},
		{name: "k8s named port and UDP port",
			res:    knp("http-in", "podSelector: {}", "ingress: [{ports: [{port: http}, {protocol: UDP, port: 53}]}]"),
			probes: []string{"pc web tcp/8080 +", "pc web udp/53 +", "pc web tcp/80 -", "pc db tcp/80 +"}},
		{name: "k8s egress to pods on a port",
			res:    knp("client-eg", "podSelector: {matchLabels: {app: client}}", "policyTypes: [Egress]", "egress: [{to: [{podSelector: {matchLabels: {app: db}}}], ports: [{port: 80}]}]"),
			probes: []string{"pc db tcp/80 +", "pc db tcp/443 -", "pc web tcp/80 -", "pc out tcp/80 -", "dc web tcp/80 +"}},
		{name: "k8s allow-all ingress",
			res: docs(knp("default-deny", "podSelector: {}", "policyTypes: [Ingress]"),
				knp("allow-all", "podSelector: {}", "ingress: [{}]")),
			probes: []string{"pc web tcp/80 +", "out web tcp/80 +", "dc db udp/53 +", "mon pc icmp +"}},
	}
}

// checkLogRule looks for the log statement in the host's ruleset.
func checkLogRule(t *testing.T, cl *cluster) {
	out, err := exec.Command("ip", "netns", "exec", cl.host.Name, "nft", "list", "ruleset").CombinedOutput()
	if err != nil {
		t.Fatalf("nft list ruleset: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "log prefix") {
		t.Errorf("no log statement in the ruleset:\n%s", out)
	}
}

// newPolicyWorld builds the namespaces, service accounts and pods that
// policyCases describe, and a barrier.
func newPolicyWorld(t *testing.T) *cluster {
	cl := newCluster(t)
	cl.namespace("prod", map[string]string{"env": "prod", "team": "shop"})
	cl.namespace("dev", map[string]string{"env": "dev", "team": "shop"})
	cl.namespace("ops", map[string]string{"env": "ops"})
	for _, sa := range []struct {
		ns, name string
		labels   map[string]string
	}{
		{"prod", "web", map[string]string{"role": "frontend"}},
		{"prod", "db", map[string]string{"role": "backend"}},
		{"prod", "client", map[string]string{"trusted": "true"}},
		{"dev", "default", nil},
		{"dev", "tool", map[string]string{"trusted": "false"}},
		{"ops", "mon", map[string]string{"trusted": "true"}},
	} {
		cl.serviceAccount(sa.ns, sa.name, sa.labels)
	}
	tcp, udp := []uint16{80, 443, 8080, 9090}, []uint16{53, 5353}
	port := func(name, proto string, n uint16) v3.WorkloadEndpointPort {
		return v3.WorkloadEndpointPort{Name: name, Protocol: v3.ProtocolFromString(proto), Port: n}
	}
	for _, s := range []podSpec{
		{alias: "web", ns: "prod", sa: "web", labels: map[string]string{"app": "web", "role": "frontend"},
			ports: []v3.WorkloadEndpointPort{port("http", "TCP", 8080), port("metrics", "TCP", 9090), port("dns", "UDP", 5353)}},
		{alias: "db", ns: "prod", sa: "db", labels: map[string]string{"app": "db", "role": "backend"},
			ports: []v3.WorkloadEndpointPort{port("http", "TCP", 80)}},
		{alias: "pc", ns: "prod", sa: "client", labels: map[string]string{"app": "client"}},
		{alias: "dc", ns: "dev", sa: "default", labels: map[string]string{"app": "client"}},
		{alias: "dt", ns: "dev", sa: "tool", labels: map[string]string{"app": "tool", "debug": "true"}},
		{alias: "mon", ns: "ops", sa: "mon", labels: map[string]string{"app": "monitor"}},
		{alias: "bare", ns: "ops", labels: map[string]string{"app": "bare"}, noProfiles: true},
	} {
		s.tcp, s.udp = tcp, udp
		cl.writeEndpoint(t, cl.attachPod(t, s))
	}
	wltest.Servers(t, cl.host.Underlay, cl.host.UnderlayAddr, []uint16{80}, []uint16{53})
	cl.setupBarrier(t)
	return cl
}

// TestPolicyCases writes each case's resources to etcd, waits for the
// dataplane (barrier), and probes real TCP, UDP and ICMP between the pods
// and the outside. One felix serves every case; each case's resources are
// deleted (and the deletion applied) before the next.
func TestPolicyCases(t *testing.T) {
	start := time.Now()
	cl := newPolicyWorld(t)
	cl.startFelix(t, true, nil)
	cl.sync(t)
	t.Logf("set-up and felix start: %s", time.Since(start).Round(time.Millisecond))
	cl.check(t, []string{"pc web tcp/80 +", "dc db udp/53 +", "mon dt icmp +", "out pc tcp/80 +", "web out tcp/80 +"}, 10*time.Second)

	cases := policyCases()
	slow, ran := 0, 0
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ran++
			keys := cl.applyAll(t, cl.decode(t, c.res))
			defer func() {
				cl.deleteAll(t, keys)
				cl.sync(t)
			}()
			cl.sync(t)
			if rounds := cl.check(t, c.probes, 3*time.Second); rounds > 1 {
				slow++
				t.Logf("probes needed %d rounds after the barrier", rounds)
			}
			if c.extra != nil {
				c.extra(t, cl)
			}
		})
	}
	// After every reset the profiles alone decide again.
	cl.check(t, []string{"pc web tcp/80 +", "dc db udp/53 +", "dt web icmp +", "out web tcp/80 +", "web out tcp/80 +", "pc bare tcp/80 -"}, 3*time.Second)
	t.Logf("%d of %d cases in %s (%d needed more than one probe round)", ran, len(cases), time.Since(start).Round(time.Millisecond), slow)
}
