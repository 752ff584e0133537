package v3

import (
	"strings"
	"testing"
)

func np(spec string) string  { return doc("NetworkPolicy", "p", "ns1", spec) }
func gnp(spec string) string { return doc("GlobalNetworkPolicy", "p", "", spec) }

// in1 wraps one ingress rule (flow YAML) into a NetworkPolicy spec.
func in1(rule string) string { return np("{ingress: [" + rule + "]}") }

func TestValidateNetworkPolicyMeta(t *testing.T) {
	runValidate(t, []vcase{
		{"valid", np(`{selector: "app == 'x'", ingress: [{action: Allow, protocol: TCP, destination: {ports: [80, "8080:8090"]}}]}`), nil},
		{"no namespace", doc("NetworkPolicy", "p", "", "{}"), []string{"metadata.namespace"}},
		{"bad namespace", doc("NetworkPolicy", "p", "Ns", "{}"), []string{"metadata.namespace"}},
		{"two labels", doc("NetworkPolicy", "a.b", "ns1", "{}"), nil},
		{"three labels", doc("NetworkPolicy", "a.b.c", "ns1", "{}"), []string{"metadata.name"}},
		{"knp prefix", doc("NetworkPolicy", "knp.default.foo.bar", "ns1", "{}"), nil},
		{"ossg prefix", doc("NetworkPolicy", "ossg.default.x.y.z", "ns1", "{}"), nil},
		{"upper case", doc("NetworkPolicy", "Bad", "ns1", "{}"), []string{"metadata.name"}},
		{"empty name", doc("NetworkPolicy", "", "ns1", "{}"), []string{"metadata.name"}},
		{"bad label key", "apiVersion: projectcalico.org/v3\nkind: NetworkPolicy\nmetadata: {name: p, namespace: ns1, labels: {'a b': x}}\n", []string{"metadata.labels"}},
		{"bad label value", "apiVersion: projectcalico.org/v3\nkind: NetworkPolicy\nmetadata: {name: p, namespace: ns1, labels: {a: 'x y'}}\n", []string{"metadata.labels"}},
		{"big annotations", "apiVersion: projectcalico.org/v3\nkind: NetworkPolicy\nmetadata: {name: p, namespace: ns1, annotations: {a: " + strings.Repeat("x", 256*1024) + "}}\n", []string{"metadata.annotations"}},
		{"tier with dot", np("{tier: a.b}"), []string{"spec.tier"}},
		{"types repeated", np("{types: [Ingress, Ingress]}"), []string{"spec.types[1]"}},
		{"types unknown", np("{types: [Sideways]}"), []string{"spec.types[0]"}},
		{"types three", np("{types: [Ingress, Egress, Ingress]}"), []string{"spec.types", "spec.types[2]"}},
		{"perf hint", np("{performanceHints: [AssumeNeededOnEveryNode]}"), nil},
		{"perf hint bad", np("{performanceHints: [Fast]}"), []string{"spec.performanceHints[0]"}},
		{"perf hint repeated", np("{performanceHints: [AssumeNeededOnEveryNode, AssumeNeededOnEveryNode]}"), []string{"spec.performanceHints[1]"}},
		{"selector parse error", np(`{selector: "a == 'b' &&"}`), []string{"spec.selector"}},
		{"selector global", np(`{selector: "global()"}`), []string{"spec.selector"}},
		{"sa selector global", np(`{serviceAccountSelector: "global() || has(a)"}`), []string{"spec.serviceAccountSelector"}},
		{"selector too long", np(`{selector: "` + strings.Repeat("a", 1025) + ` == 'x'"}`), []string{"spec.selector"}},
		{"too many rules", np("{egress: [" + repeat("{action: Allow}", ",", 1025) + "]}"), []string{"spec.egress"}},
		{"order ok", np("{order: 10.5}"), nil},
	})
}

func TestValidateRules(t *testing.T) {
	runValidate(t, []vcase{
		{"action missing", in1("{protocol: TCP}"), []string{"spec.ingress[0].action"}},
		{"action wrong case", in1("{action: allow}"), []string{"spec.ingress[0].action"}},
		{"all actions", np("{ingress: [{action: Allow}, {action: Deny}, {action: Log}, {action: Pass}]}"), nil},
		{"ipVersion 5", in1("{action: Allow, ipVersion: 5}"), []string{"spec.ingress[0].ipVersion"}},
		{"protocol lower", in1("{action: Allow, protocol: udplite}"), nil},
		{"protocol number", in1("{action: Allow, protocol: 132}"), nil},
		{"protocol numeric string", in1(`{action: Allow, protocol: "17"}`), nil},
		{"protocol zero", in1("{action: Allow, protocol: 0}"), []string{"spec.ingress[0].protocol"}},
		{"protocol unknown", in1("{action: Allow, protocol: GRE}"), []string{"spec.ingress[0].protocol"}},
		{"notProtocol unknown", in1("{action: Allow, notProtocol: GRE}"), []string{"spec.ingress[0].notProtocol"}},
		{"icmp v6 mismatch", in1("{action: Allow, protocol: ICMP, ipVersion: 6}"), []string{"spec.ingress[0].protocol"}},
		{"icmpv6 v4 mismatch", in1("{action: Allow, protocol: ICMPv6, ipVersion: 4}"), []string{"spec.ingress[0].protocol"}},
		{"icmp ok", in1("{action: Allow, protocol: ICMP, icmp: {type: 8, code: 0}}"), nil},
		{"icmp code without type", in1("{action: Allow, protocol: ICMP, icmp: {code: 1}}"), []string{"spec.ingress[0].icmp.code"}},
		{"icmp type 255", in1("{action: Allow, protocol: ICMP, icmp: {type: 255}}"), []string{"spec.ingress[0].icmp.type"}},
		{"icmp code 256", in1("{action: Allow, protocol: ICMPv6, icmp: {type: 1, code: 256}}"), []string{"spec.ingress[0].icmp.code"}},
		{"icmp needs icmp protocol", in1("{action: Allow, protocol: TCP, icmp: {type: 8}}"), []string{"spec.ingress[0].icmp"}},
		{"notICMP needs protocol", in1("{action: Allow, notICMP: {type: 8}}"), []string{"spec.ingress[0].notICMP"}},
		{"http ok", in1("{action: Allow, protocol: TCP, http: {methods: [GET], paths: [{exact: /a}, {prefix: /b}]}}"), nil},
		{"http on deny", in1("{action: Deny, http: {methods: [GET]}}"), []string{"spec.ingress[0].http"}},
		{"http on egress", np("{egress: [{action: Allow, http: {methods: [GET]}}]}"), []string{"spec.egress[0].http"}},
		{"http udp", in1("{action: Allow, protocol: UDP, http: {methods: [GET]}}"), []string{"spec.ingress[0].http"}},
		{"http too many methods", in1("{action: Allow, http: {methods: [" + repeat("GET", ",", 21) + "]}}"), []string{"spec.ingress[0].http.methods"}},
		{"http too many paths", in1("{action: Allow, http: {paths: [" + repeat("{exact: /}", ",", 21) + "]}}"), []string{"spec.ingress[0].http.paths"}},
		{"http path both", in1("{action: Allow, http: {paths: [{exact: /a, prefix: /b}]}}"), []string{"spec.ingress[0].http.paths[0]"}},
		{"nets ok", in1("{action: Allow, source: {nets: [10.0.0.0/8, 192.168.1.1]}, destination: {notNets: [10.1.0.0/16]}}"), nil},
		{"nets bad", in1("{action: Allow, source: {nets: [10.0.0.0/33]}}"), []string{"spec.ingress[0].source.nets[0]"}},
		{"nets mixed", in1("{action: Allow, source: {nets: [10.0.0.0/8, 'fd00::/8']}}"), []string{"spec.ingress[0].source.nets[1]"}},
		{"nets mixed across sides", in1("{action: Allow, source: {nets: [10.0.0.0/8]}, destination: {nets: ['fd00::/8']}}"), []string{"spec.ingress[0].destination.nets[0]"}},
		{"nets vs ipVersion", in1("{action: Allow, ipVersion: 6, source: {nets: [10.0.0.0/8]}}"), []string{"spec.ingress[0].source.nets[0]"}},
		{"notNets all v4", in1("{action: Allow, source: {notNets: [0.0.0.0/0]}}"), []string{"spec.ingress[0].source.notNets[0]"}},
		{"notNets all v6", in1("{action: Allow, destination: {notNets: ['::/0']}}"), []string{"spec.ingress[0].destination.notNets[0]"}},
		{"nets too many", in1("{action: Allow, source: {nets: [" + repeat("10.0.0.1", ",", 257) + "]}}"), []string{"spec.ingress[0].source.nets"}},
		{"ports too many", in1("{action: Allow, protocol: TCP, destination: {ports: [" + repeat("80", ",", 51) + "]}}"), []string{"spec.ingress[0].destination.ports"}},
		{"port zero", in1("{action: Allow, protocol: TCP, destination: {ports: [0]}}"), []string{"spec.ingress[0].destination.ports[0]"}},
		{"range reversed", in1(`{action: Allow, protocol: TCP, destination: {notPorts: ["90:80"]}}`), []string{"spec.ingress[0].destination.notPorts[0]"}},
		{"range from zero", in1(`{action: Allow, protocol: TCP, destination: {ports: ["0:80"]}}`), []string{"spec.ingress[0].destination.ports[0]"}},
		{"named port bad chars", in1(`{action: Allow, destination: {ports: ["a/b"]}}`), []string{"spec.ingress[0].destination.ports[0]"}},
		{"named port not k8s", in1(`{action: Allow, destination: {ports: ["very-long-port-name-here"]}}`), []string{"spec.ingress[0].destination.ports[0]"}},
		{"named ports without protocol", in1(`{action: Allow, destination: {ports: [http, metrics]}}`), nil},
		{"numeric ports without protocol", in1(`{action: Allow, source: {ports: [80]}}`), []string{"spec.ingress[0].protocol"}},
		{"ports with icmp", in1(`{action: Allow, protocol: ICMP, destination: {ports: [http]}}`), []string{"spec.ingress[0].protocol"}},
		{"ports with sctp", in1(`{action: Allow, protocol: sctp, destination: {ports: [80]}}`), nil},
		{"services ok ingress source", in1("{action: Allow, source: {services: {name: svc, namespace: ns2}}}"), nil},
		{"services ok egress destination", np("{egress: [{action: Allow, destination: {services: {name: svc}}}]}"), nil},
		{"services in ingress destination", in1("{action: Allow, destination: {services: {name: svc}}}"), []string{"spec.ingress[0].destination.services"}},
		{"services with selector", in1("{action: Allow, source: {selector: has(a), services: {name: svc}}}"), []string{"spec.ingress[0].source.services"}},
		{"services with nets", in1("{action: Allow, source: {nets: [10.0.0.0/8], services: {name: svc}}}"), []string{"spec.ingress[0].source.services"}},
		{"services with ports", in1("{action: Allow, protocol: TCP, source: {ports: [80], services: {name: svc}}}"), []string{"spec.ingress[0].source.services"}},
		{"services no name", in1("{action: Allow, source: {services: {namespace: x}}}"), []string{"spec.ingress[0].source.services.name"}},
		{"selector bad", in1(`{action: Allow, source: {selector: "a =="}}`), []string{"spec.ingress[0].source.selector"}},
		{"notSelector bad", in1(`{action: Allow, destination: {notSelector: "(a"}}`), []string{"spec.ingress[0].destination.notSelector"}},
		{"ns selector global alone", in1(`{action: Allow, source: {namespaceSelector: "global()"}}`), nil},
		{"ns selector all", in1(`{action: Allow, source: {namespaceSelector: "all()"}}`), nil},
		{"ns selector global combined", in1(`{action: Allow, source: {namespaceSelector: "global() && has(a)"}}`), []string{"spec.ingress[0].source.namespaceSelector"}},
		{"ns selector global in literal", in1(`{action: Allow, source: {namespaceSelector: "a == 'global()'"}}`), nil},
		{"sa names and selector", in1(`{action: Allow, source: {serviceAccounts: {names: [a, b], selector: "role == 'x'"}}}`), nil},
		{"sa bad name", in1(`{action: Allow, source: {serviceAccounts: {names: [A_B]}}}`), []string{"spec.ingress[0].source.serviceAccounts.names[0]"}},
		{"sa bad selector", in1(`{action: Allow, source: {serviceAccounts: {selector: "!"}}}`), []string{"spec.ingress[0].source.serviceAccounts.selector"}},
		{"several problems", in1(`{ipVersion: 7, protocol: 0}`), []string{"spec.ingress[0].action", "spec.ingress[0].ipVersion", "spec.ingress[0].protocol"}},
	})
}

func TestValidateGlobalNetworkPolicy(t *testing.T) {
	runValidate(t, []vcase{
		{"valid", gnp(`{namespaceSelector: "has(team)", selector: "all()", egress: [{action: Deny}]}`), nil},
		{"namespace forbidden", doc("GlobalNetworkPolicy", "p", "ns1", "{}"), []string{"metadata.namespace"}},
		{"name three labels", doc("GlobalNetworkPolicy", "a.b.c", "", "{}"), []string{"metadata.name"}},
		{"name knp not allowed", doc("GlobalNetworkPolicy", "knp.default.x", "", "{}"), []string{"metadata.name"}},
		{"doNotTrack needs applyOnForward", gnp("{doNotTrack: true}"), []string{"spec.doNotTrack"}},
		{"doNotTrack ok", gnp("{doNotTrack: true, applyOnForward: true}"), nil},
		{"doNotTrack and preDNAT", gnp("{doNotTrack: true, preDNAT: true, applyOnForward: true}"), []string{"spec.doNotTrack"}},
		{"preDNAT needs applyOnForward", gnp("{preDNAT: true}"), []string{"spec.preDNAT"}},
		{"preDNAT egress", gnp("{preDNAT: true, applyOnForward: true, egress: [{action: Allow}]}"), []string{"spec.egress", "spec.types[0]"}},
		{"preDNAT egress type", gnp("{preDNAT: true, applyOnForward: true, types: [Ingress, Egress]}"), []string{"spec.types[1]"}},
		{"ns selector bad", gnp(`{namespaceSelector: "=="}`), []string{"spec.namespaceSelector"}},
		{"ns selector global combined", gnp(`{namespaceSelector: "global() || has(x)"}`), []string{"spec.namespaceSelector"}},
		{"egress services in source", gnp("{egress: [{action: Allow, source: {services: {name: s, namespace: ns2}}}]}"), []string{"spec.egress[0].source.services"}},
	})
}

func TestValidateStagedPolicies(t *testing.T) {
	runValidate(t, []vcase{
		{"snp valid", doc("StagedNetworkPolicy", "p", "ns1", "{stagedAction: Learn, ingress: [{action: Allow}]}"), nil},
		{"snp bad action", doc("StagedNetworkPolicy", "p", "ns1", "{stagedAction: Remove}"), []string{"spec.stagedAction"}},
		{"snp delete tier only", doc("StagedNetworkPolicy", "p", "ns1", "{stagedAction: Delete, tier: security}"), nil},
		{"snp delete with selector", doc("StagedNetworkPolicy", "p", "ns1", "{stagedAction: Delete, selector: all()}"), []string{"spec.selector"}},
		{"snp delete with rules", doc("StagedNetworkPolicy", "p", "ns1", "{stagedAction: Delete, ingress: [{action: Allow}], order: 1}"), []string{"spec.ingress", "spec.order"}},
		{"snp no namespace", doc("StagedNetworkPolicy", "p", "", "{}"), []string{"metadata.namespace"}},
		{"sgnp valid", doc("StagedGlobalNetworkPolicy", "p", "", "{stagedAction: Ignore}"), nil},
		{"sgnp preDNAT", doc("StagedGlobalNetworkPolicy", "p", "", "{preDNAT: true}"), []string{"spec.preDNAT"}},
		{"sgnp delete", doc("StagedGlobalNetworkPolicy", "p", "", "{stagedAction: Delete, doNotTrack: true, applyOnForward: true}"), []string{"spec.doNotTrack", "spec.applyOnForward"}},
		{"sgnp rule error", doc("StagedGlobalNetworkPolicy", "p", "", "{egress: [{action: Nope}]}"), []string{"spec.egress[0].action"}},
		{"sknp valid", doc("StagedKubernetesNetworkPolicy", "p", "ns1", `{podSelector: {matchLabels: {app: x}}, ingress: [{ports: [{protocol: TCP, port: 80, endPort: 90}], from: [{ipBlock: {cidr: 10.0.0.0/8, except: [10.1.0.0/16]}}]}]}`), nil},
		{"sknp named port", doc("StagedKubernetesNetworkPolicy", "p", "ns1", `{ingress: [{ports: [{port: http}]}]}`), nil},
		{"sknp bad port", doc("StagedKubernetesNetworkPolicy", "p", "ns1", `{ingress: [{ports: [{port: 70000}]}]}`), []string{"spec.ingress[0].ports[0].port"}},
		{"sknp endPort named", doc("StagedKubernetesNetworkPolicy", "p", "ns1", `{egress: [{ports: [{port: http, endPort: 90}]}]}`), []string{"spec.egress[0].ports[0].endPort"}},
		{"sknp protocol", doc("StagedKubernetesNetworkPolicy", "p", "ns1", `{egress: [{ports: [{protocol: ICMP}]}]}`), []string{"spec.egress[0].ports[0].protocol"}},
		{"sknp except outside", doc("StagedKubernetesNetworkPolicy", "p", "ns1", `{egress: [{to: [{ipBlock: {cidr: 10.0.0.0/16, except: [10.2.0.0/24]}}]}]}`), []string{"spec.egress[0].to[0].ipBlock.except[0]"}},
		{"sknp empty peer", doc("StagedKubernetesNetworkPolicy", "p", "ns1", `{egress: [{to: [{}]}]}`), []string{"spec.egress[0].to[0]"}},
		{"sknp selector op", doc("StagedKubernetesNetworkPolicy", "p", "ns1", `{podSelector: {matchExpressions: [{key: a, operator: Has}]}}`), []string{"spec.podSelector.matchExpressions[0].operator"}},
		{"sknp policyTypes", doc("StagedKubernetesNetworkPolicy", "p", "ns1", `{policyTypes: [Both]}`), []string{"spec.policyTypes[0]"}},
	})
}

func TestValidateTierAndProfile(t *testing.T) {
	runValidate(t, []vcase{
		{"tier valid", doc("Tier", "security", "", "{order: 100, defaultAction: Pass}"), nil},
		{"tier no spec", doc("Tier", "security", "", ""), nil},
		{"tier dotted name", doc("Tier", "a.b", "", "{}"), []string{"metadata.name"}},
		{"tier namespaced", doc("Tier", "t", "ns1", "{}"), []string{"metadata.namespace"}},
		{"tier bad action", doc("Tier", "t", "", "{defaultAction: Allow}"), []string{"spec.defaultAction"}},
		{"default tier order fixed", doc("Tier", "default", "", "{order: 5}"), []string{"spec.order"}},
		{"default tier ok", doc("Tier", "default", "", "{order: 1000000}"), nil},
		{"kube-admin pass", doc("Tier", "kube-admin", "", "{}"), nil},
		{"kube-admin deny", doc("Tier", "kube-admin", "", "{defaultAction: Deny}"), []string{"spec.defaultAction"}},
		{"profile valid", doc("Profile", "kns.ns1", "", "{ingress: [{action: Allow}], egress: [{action: Allow}], labelsToApply: {pcns.a: b}}"), nil},
		{"profile bad label", doc("Profile", "p", "", "{labelsToApply: {'-a': b}}"), []string{"spec.labelsToApply"}},
		{"profile bad rule", doc("Profile", "p", "", "{egress: [{action: Allow, http: {methods: [GET]}}]}"), []string{"spec.egress[0].http"}},
		{"profile namespaced", doc("Profile", "p", "ns1", "{}"), []string{"metadata.namespace"}},
	})
}
