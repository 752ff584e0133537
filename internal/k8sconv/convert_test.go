package k8sconv

import (
	"encoding/json"
	"errors"
	"reflect"
	"strconv"
	"strings"
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
	"sigs.k8s.io/yaml"

	v3 "github.com/calico-go/calico/api/v3"
)

// npFromSpec decodes a YAML spec into a NetworkPolicy "np" in "ns".
func npFromSpec(t testing.TB, spec string) *networkingv1.NetworkPolicy {
	t.Helper()
	doc := "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: np, namespace: ns}\nspec:\n" + indent(spec)
	nps, err := Decode([]byte(doc))
	if err != nil {
		t.Fatalf("decode: %v\n%s", err, doc)
	}
	return nps[0]
}

func indent(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = "  " + l
	}
	return strings.Join(lines, "\n") + "\n"
}

// generic turns YAML or a value into plain maps for comparison.
func generic(t testing.TB, v any) any {
	t.Helper()
	var js []byte
	var err error
	if s, ok := v.(string); ok {
		js, err = yaml.YAMLToJSON([]byte(s))
	} else {
		js, err = json.Marshal(v)
	}
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := json.Unmarshal(js, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

const orch = "projectcalico.org/orchestrator == 'k8s'"

func TestNetworkPolicy(t *testing.T) {
	cases := []struct {
		name string
		in   string // the Kubernetes spec
		want string // the Calico spec
	}{{
		name: "default deny ingress",
		in:   "podSelector: {}\npolicyTypes: [Ingress]",
		want: "tier: default\norder: 1000\nselector: \"" + orch + "\"\ntypes: [Ingress]",
	}, {
		name: "default deny egress",
		in:   "podSelector: {}\npolicyTypes: [Egress]",
		want: "tier: default\norder: 1000\nselector: \"" + orch + "\"\ntypes: [Egress]",
	}, {
		name: "default deny both, types in Calico order",
		in:   "podSelector: {}\npolicyTypes: [Egress, Ingress]",
		want: "tier: default\norder: 1000\nselector: \"" + orch + "\"\ntypes: [Ingress, Egress]",
	}, {
		name: "no policyTypes and no rules is ingress",
		in:   "podSelector: {matchLabels: {app: db}}",
		want: "tier: default\norder: 1000\nselector: \"" + orch + " && app == 'db'\"\ntypes: [Ingress]",
	}, {
		name: "no policyTypes with egress rules is both (Kubernetes default)",
		in:   "podSelector: {}\negress: [{}]",
		want: "tier: default\norder: 1000\nselector: \"" + orch + "\"\ntypes: [Ingress, Egress]\negress: [{action: Allow}]",
	}, {
		name: "empty egress list without policyTypes is ingress only",
		in:   "podSelector: {}\negress: []",
		want: "tier: default\norder: 1000\nselector: \"" + orch + "\"\ntypes: [Ingress]",
	}, {
		name: "egress rules but types Ingress: kept, like Calico",
		in:   "podSelector: {}\npolicyTypes: [Ingress]\negress: [{}]",
		want: "tier: default\norder: 1000\nselector: \"" + orch + "\"\ntypes: [Ingress]\negress: [{action: Allow}]",
	}, {
		name: "allow all ingress",
		in:   "podSelector: {}\ningress: [{}]",
		want: "tier: default\norder: 1000\nselector: \"" + orch + "\"\ntypes: [Ingress]\ningress: [{action: Allow}]",
	}, {
		name: "allow all egress",
		in:   "podSelector: {}\npolicyTypes: [Egress]\negress: [{}]",
		want: "tier: default\norder: 1000\nselector: \"" + orch + "\"\ntypes: [Egress]\negress: [{action: Allow}]",
	}, {
		name: "pod selector: labels sorted, then expressions in order",
		in: `podSelector:
  matchLabels: {tier: web, app: shop}
  matchExpressions:
  - {key: env, operator: In, values: [prod, staging]}
  - {key: track, operator: NotIn, values: [canary]}
  - {key: app.kubernetes.io/name, operator: Exists}
  - {key: legacy, operator: DoesNotExist}`,
		want: `tier: default
order: 1000
selector: "` + orch + ` && app == 'shop' && tier == 'web' && env in { 'prod', 'staging' } && track not in { 'canary' } && has(app.kubernetes.io/name) && ! has(legacy)"
types: [Ingress]`,
	}, {
		name: "namespace AND pod selector peer",
		in: `podSelector: {matchLabels: {app: db}}
ingress:
- from:
  - namespaceSelector: {matchLabels: {team: a}}
    podSelector: {matchLabels: {app: web}}
  ports: [{port: 5432}]`,
		want: `tier: default
order: 1000
selector: "` + orch + ` && app == 'db'"
types: [Ingress]
ingress:
- action: Allow
  protocol: TCP
  source: {selector: "` + orch + ` && app == 'web'", namespaceSelector: "team == 'a'"}
  destination: {ports: [5432]}`,
	}, {
		name: "namespace or pod selector peers, empty selectors",
		in: `podSelector: {}
ingress:
- from:
  - namespaceSelector: {}
  - podSelector: {}
  - namespaceSelector: {matchExpressions: [{key: kubernetes.io/metadata.name, operator: In, values: [a, b]}]}`,
		want: `tier: default
order: 1000
selector: "` + orch + `"
types: [Ingress]
ingress:
- {action: Allow, source: {selector: "` + orch + `", namespaceSelector: "all()"}}
- {action: Allow, source: {selector: "` + orch + `"}}
- {action: Allow, source: {selector: "` + orch + `", namespaceSelector: "kubernetes.io/metadata.name in { 'a', 'b' }"}}`,
	}, {
		name: "ipBlock with except, host bits cleared",
		in: `podSelector: {}
ingress:
- from:
  - ipBlock: {cidr: 172.17.0.0/16, except: [172.17.1.0/24, 172.17.2.9/24]}
  - ipBlock: {cidr: "fd00::1/64"}`,
		want: `tier: default
order: 1000
selector: "` + orch + `"
types: [Ingress]
ingress:
- {action: Allow, source: {nets: [172.17.0.0/16], notNets: [172.17.1.0/24, 172.17.2.0/24]}}
- {action: Allow, source: {nets: ["fd00::/64"]}}`,
	}, {
		name: "port and endPort",
		in: `podSelector: {}
ingress:
- ports: [{protocol: TCP, port: 32000, endPort: 32768}]`,
		want: `tier: default
order: 1000
selector: "` + orch + `"
types: [Ingress]
ingress:
- {action: Allow, protocol: TCP, destination: {ports: ["32000:32768"]}}`,
	}, {
		name: "named ports",
		in: `podSelector: {}
ingress:
- ports: [{port: http}, {port: metrics, protocol: TCP}, {port: dns, protocol: UDP}]`,
		want: `tier: default
order: 1000
selector: "` + orch + `"
types: [Ingress]
ingress:
- {action: Allow, protocol: TCP, destination: {ports: [http, metrics]}}
- {action: Allow, protocol: UDP, destination: {ports: [dns]}}`,
	}, {
		name: "one named and one numeric port keep their order",
		in: `podSelector: {}
ingress:
- ports: [{port: 80}, {port: http}]`,
		want: `tier: default
order: 1000
selector: "` + orch + `"
types: [Ingress]
ingress:
- {action: Allow, protocol: TCP, destination: {ports: [80, http]}}`,
	}, {
		name: "multiple protocols times peers, protocols sorted",
		in: `podSelector: {}
ingress:
- from: [{podSelector: {matchLabels: {a: "1"}}}, {ipBlock: {cidr: 10.0.0.0/8}}]
  ports: [{protocol: UDP, port: 53}, {port: 443}, {protocol: SCTP, port: 9000}, {protocol: TCP, port: 80}]`,
		want: `tier: default
order: 1000
selector: "` + orch + `"
types: [Ingress]
ingress:
- {action: Allow, protocol: SCTP, source: {selector: "` + orch + ` && a == '1'"}, destination: {ports: [9000]}}
- {action: Allow, protocol: SCTP, source: {nets: [10.0.0.0/8]}, destination: {ports: [9000]}}
- {action: Allow, protocol: TCP, source: {selector: "` + orch + ` && a == '1'"}, destination: {ports: [80, 443]}}
- {action: Allow, protocol: TCP, source: {nets: [10.0.0.0/8]}, destination: {ports: [80, 443]}}
- {action: Allow, protocol: UDP, source: {selector: "` + orch + ` && a == '1'"}, destination: {ports: [53]}}
- {action: Allow, protocol: UDP, source: {nets: [10.0.0.0/8]}, destination: {ports: [53]}}`,
	}, {
		name: "ports merged into ranges, named first",
		in: `podSelector: {}
ingress:
- ports: [{port: 82}, {port: 80}, {port: web}, {port: 81}, {port: 90}, {port: 85, endPort: 89}, {port: 81}, {port: 1000}]`,
		want: `tier: default
order: 1000
selector: "` + orch + `"
types: [Ingress]
ingress:
- {action: Allow, protocol: TCP, destination: {ports: [web, "80:82", "85:90", 1000]}}`,
	}, {
		name: "a protocol without port allows all its ports",
		in: `podSelector: {}
ingress:
- ports: [{protocol: UDP, port: 53}, {protocol: UDP}, {protocol: UDP, port: 54}, {port: 22}]`,
		want: `tier: default
order: 1000
selector: "` + orch + `"
types: [Ingress]
ingress:
- {action: Allow, protocol: TCP, destination: {ports: [22]}}
- {action: Allow, protocol: UDP}`,
	}, {
		name: "an empty port is any TCP port",
		in: `podSelector: {}
ingress:
- ports: [{}]`,
		want: `tier: default
order: 1000
selector: "` + orch + `"
types: [Ingress]
ingress:
- {action: Allow, protocol: TCP}`,
	}, {
		name: "egress peers and ports go to the destination",
		in: `podSelector: {matchLabels: {app: web}}
policyTypes: [Egress]
egress:
- to:
  - ipBlock: {cidr: 10.0.0.0/24, except: [10.0.0.128/25]}
  - namespaceSelector: {matchLabels: {name: dns}}
  ports: [{protocol: UDP, port: 53}]
- to: [{podSelector: {matchLabels: {app: db}}}]`,
		want: `tier: default
order: 1000
selector: "` + orch + ` && app == 'web'"
types: [Egress]
egress:
- {action: Allow, protocol: UDP, destination: {nets: [10.0.0.0/24], notNets: [10.0.0.128/25], ports: [53]}}
- {action: Allow, protocol: UDP, destination: {selector: "` + orch + `", namespaceSelector: "name == 'dns'", ports: [53]}}
- {action: Allow, destination: {selector: "` + orch + ` && app == 'db'"}}`,
	}, {
		name: "ingress and egress",
		in: `podSelector: {}
policyTypes: [Ingress, Egress]
ingress: [{from: [{podSelector: {}}]}]
egress: [{ports: [{port: 443}]}]`,
		want: `tier: default
order: 1000
selector: "` + orch + `"
types: [Ingress, Egress]
ingress: [{action: Allow, source: {selector: "` + orch + `"}}]
egress: [{action: Allow, protocol: TCP, destination: {ports: [443]}}]`,
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			np := npFromSpec(t, tc.in)
			before := np.DeepCopy()
			got, err := NetworkPolicy(np)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(np, before) {
				t.Error("input modified")
			}
			if got.Name != "knp.default.np" || got.Namespace != "ns" || got.Kind != v3.KindNetworkPolicy || got.APIVersion != v3.APIVersion {
				t.Errorf("identity: %s %s %s/%s", got.APIVersion, got.Kind, got.Namespace, got.Name)
			}
			if err := v3.Validate(got); err != nil {
				t.Errorf("output invalid: %v", err)
			}
			if g, w := generic(t, got.Spec), generic(t, tc.want); !reflect.DeepEqual(g, w) {
				gy, _ := yaml.Marshal(got.Spec)
				t.Errorf("spec:\n%s\nwant:\n%s", gy, tc.want)
			}
		})
	}
}

func TestNetworkPolicyMetadata(t *testing.T) {
	np := npFromSpec(t, "podSelector: {}")
	np.Namespace = ""
	np.UID = "1234"
	np.ResourceVersion = "42"
	np.Labels = map[string]string{"a": "b"}
	got, err := NetworkPolicy(np)
	if err != nil {
		t.Fatal(err)
	}
	if got.Namespace != "default" || got.UID != "" || got.ResourceVersion != "" || got.Labels != nil {
		t.Errorf("metadata: %+v", got.ObjectMeta)
	}
	if _, err := NetworkPolicy(nil); err == nil {
		t.Error("nil policy accepted")
	}
}

func TestNetworkPolicyInvalid(t *testing.T) {
	cases := []struct {
		name, spec string
		field      string // the field named in the error
	}{
		{"empty peer", "ingress: [{from: [{}]}]", "spec.ingress[0].from[0]"},
		{"ipBlock and selector", "egress: [{to: [{ipBlock: {cidr: 10.0.0.0/8}, podSelector: {}}]}]", "spec.egress[0].to[0].ipBlock"},
		{"except outside cidr", "ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/16, except: [10.1.0.0/24]}}]}]", "spec.ingress[0].from[0].ipBlock.except[0]"},
		{"except family", "ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/16, except: [\"fd00::/64\"]}}]}]", "spec.ingress[0].from[0].ipBlock.except[0]"},
		{"bad cidr", "ingress: [{from: [{ipBlock: {cidr: 10.0.0.300/16}}]}]", "spec.ingress[0].from[0].ipBlock.cidr"},
		{"endPort with named port", "ingress: [{ports: [{port: http, endPort: 90}]}]", "spec.ingress[0].ports[0].endPort"},
		{"endPort below port", "ingress: [{ports: [{port: 90, endPort: 80}]}]", "spec.ingress[0].ports[0].endPort"},
		{"endPort without port", "ingress: [{ports: [{endPort: 80}]}]", "spec.ingress[0].ports[0].endPort"},
		{"port out of range", "ingress: [{ports: [{port: 65536}]}]", "spec.ingress[0].ports[0].port"},
		{"port zero", "ingress: [{ports: [{port: 0}]}]", "spec.ingress[0].ports[0].port"},
		{"bad port name", "ingress: [{ports: [{port: \"http'x\"}]}]", "spec.ingress[0].ports[0].port"},
		{"ICMP", "ingress: [{ports: [{protocol: ICMP}]}]", "spec.ingress[0].ports[0].protocol"},
		{"lower-case protocol", "ingress: [{ports: [{protocol: tcp}]}]", "spec.ingress[0].ports[0].protocol"},
		{"bad label value", "podSelector: {matchLabels: {app: \"a'b\"}}", "spec.podSelector.matchLabels"},
		{"bad operator", "podSelector: {matchExpressions: [{key: a, operator: Has}]}", "spec.podSelector.matchExpressions[0].operator"},
		{"In without values", "podSelector: {matchExpressions: [{key: a, operator: In}]}", "spec.podSelector.matchExpressions[0].values"},
		{"bad key", "ingress: [{from: [{podSelector: {matchExpressions: [{key: \"a b\", operator: Exists}]}}]}]", "spec.ingress[0].from[0].podSelector.matchExpressions[0].key"},
		{"bad policy type", "policyTypes: [Both]", "spec.policyTypes[0]"},
		{"too many ports after merging", "ingress: [{ports: [" + manyPorts(51) + "]}]", "spec.ingress[0].destination.ports"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			np := npFromSpec(t, tc.spec)
			_, err := NetworkPolicy(np)
			var ve *v3.ValidationError
			if !errors.Is(err, ErrInvalid) || !errors.As(err, &ve) {
				t.Fatalf("error %v, want ErrInvalid with a ValidationError", err)
			}
			found := false
			for _, fe := range ve.Errors {
				found = found || fe.Field == tc.field
			}
			if !found {
				t.Errorf("error %v does not name %s", err, tc.field)
			}
			if !strings.Contains(err.Error(), `networking.k8s.io/v1 NetworkPolicy "ns/np"`) {
				t.Errorf("error does not name the policy: %v", err)
			}
		})
	}

	np := npFromSpec(t, "podSelector: {}")
	np.Name = strings.Repeat("a", 250)
	_, err := NetworkPolicy(np)
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "metadata.name") ||
		!strings.Contains(err.Error(), "converted Calico NetworkPolicy knp.default.aaa") {
		t.Errorf("long name: %v", err)
	}
	np.Name = "Bad_Name"
	if _, err := NetworkPolicy(np); !errors.Is(err, ErrInvalid) {
		t.Errorf("bad name: %v", err)
	}
}

// manyPorts lists n ports that cannot be merged.
func manyPorts(n int) string {
	var parts []string
	for i := 0; i < n; i++ {
		parts = append(parts, "{port: "+strconv.Itoa(1000+2*i)+"}")
	}
	return strings.Join(parts, ", ")
}

func TestSimplifyPorts(t *testing.T) {
	p := v3.SinglePort
	r := v3.PortRange
	n := v3.NamedPort
	cases := []struct {
		in, want []v3.Port
	}{
		{nil, nil},
		{[]v3.Port{p(80)}, []v3.Port{p(80)}},
		{[]v3.Port{n("a"), p(80), n("b")}, []v3.Port{n("a"), p(80), n("b")}},
		{[]v3.Port{p(81), p(80)}, []v3.Port{r(80, 81)}},
		{[]v3.Port{p(80), p(80)}, []v3.Port{p(80)}},
		{[]v3.Port{r(1, 65535), p(80), n("x")}, []v3.Port{n("x"), r(1, 65535)}},
		{[]v3.Port{r(10, 20), r(15, 30), p(31), p(33)}, []v3.Port{r(10, 31), p(33)}},
		{[]v3.Port{r(10, 20), n("x")}, []v3.Port{n("x"), r(10, 20)}},
		{[]v3.Port{p(65535), p(65534)}, []v3.Port{r(65534, 65535)}},
	}
	for _, tc := range cases {
		if got := simplifyPorts(tc.in); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("simplifyPorts(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestStagedNetworkPolicy(t *testing.T) {
	decode := func(t *testing.T, doc string) *v3.StagedKubernetesNetworkPolicy {
		t.Helper()
		rs, err := v3.Decode([]byte(doc))
		if err != nil {
			t.Fatal(err)
		}
		return rs[0].(*v3.StagedKubernetesNetworkPolicy)
	}
	const head = "apiVersion: projectcalico.org/v3\nkind: StagedKubernetesNetworkPolicy\nmetadata: {name: np, namespace: ns}\n"

	in := decode(t, head+"spec:\n  podSelector: {matchLabels: {app: db}}\n  ingress: [{ports: [{port: 5432}]}]\n")
	got, err := StagedNetworkPolicy(in)
	if err != nil {
		t.Fatal(err)
	}
	want := `stagedAction: Set
tier: default
order: 1000
selector: "` + orch + ` && app == 'db'"
types: [Ingress]
ingress: [{action: Allow, protocol: TCP, destination: {ports: [5432]}}]`
	if got.Name != "knp.default.np" || got.Namespace != "ns" || got.Kind != v3.KindStagedNetworkPolicy {
		t.Errorf("identity: %s %s/%s", got.Kind, got.Namespace, got.Name)
	}
	if g, w := generic(t, got.Spec), generic(t, want); !reflect.DeepEqual(g, w) {
		gy, _ := yaml.Marshal(got.Spec)
		t.Errorf("spec:\n%s\nwant:\n%s", gy, want)
	}

	in = decode(t, head+"spec:\n  stagedAction: Learn\n  policyTypes: [Egress]\n")
	got, err = StagedNetworkPolicy(in)
	if err != nil || got.Spec.StagedAction != v3.StagedActionLearn || !reflect.DeepEqual(got.Spec.Types, []v3.PolicyType{v3.PolicyTypeEgress}) {
		t.Errorf("learn: %+v %v", got, err)
	}

	in = decode(t, head+"spec:\n  stagedAction: Delete\n")
	got, err = StagedNetworkPolicy(in)
	if err != nil {
		t.Fatal(err)
	}
	if w := (v3.StagedNetworkPolicySpec{StagedAction: v3.StagedActionDelete, Tier: "default"}); !reflect.DeepEqual(got.Spec, w) {
		t.Errorf("delete: %+v", got.Spec)
	}
	if err := v3.Validate(got); err != nil {
		t.Error(err)
	}

	in = decode(t, head+"spec:\n  ingress: [{from: [{}]}]\n")
	if _, err := StagedNetworkPolicy(in); !errors.Is(err, ErrInvalid) {
		t.Errorf("invalid staged policy: %v", err)
	}
}
