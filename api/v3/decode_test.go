package v3

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestDecodeErrors(t *testing.T) {
	cases := []struct {
		name, doc, want string
	}{
		{"unknown spec field", doc("IPPool", "p", "", "{cidr: 10.0.0.0/16, foo: 1}"), `unknown field "spec.foo"`},
		{"unknown nested field", doc("GlobalNetworkPolicy", "p", "", "{ingress: [{action: Allow, source: {bar: 1}}]}"), `unknown field "spec.ingress[0].source.bar"`},
		{"unknown top field", doc("Tier", "t", "", "{}") + "extra: 1\n", `unknown field "extra"`},
		{"unknown metadata field", "apiVersion: projectcalico.org/v3\nkind: Tier\nmetadata: {name: t, nam: x}\n", `unknown field "metadata.nam"`},
		{"wrong case field", "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: p}\nspec: {CIDR: 10.0.0.0/16}\n", `unknown field "spec.CIDR"`},
		{"duplicate field", `{"apiVersion":"projectcalico.org/v3","kind":"Tier","metadata":{"name":"a","name":"b"}}`, `already set`},
		{"duplicate yaml key", "apiVersion: projectcalico.org/v3\nkind: Tier\nkind: Tier\n", `already set`},
		{"missing apiVersion", "kind: IPPool\nmetadata: {name: p}\n", "apiVersion is missing"},
		{"wrong apiVersion", "apiVersion: crd.projectcalico.org/v1\nkind: IPPool\n", `apiVersion "crd.projectcalico.org/v1" is not "projectcalico.org/v3"`},
		{"missing kind", "apiVersion: projectcalico.org/v3\nmetadata: {name: p}\n", "kind is missing"},
		{"unknown kind", "apiVersion: projectcalico.org/v3\nkind: Pod\n", `unknown kind "Pod"`},
		{"alias is not a kind", "apiVersion: projectcalico.org/v3\nkind: ippool\n", `unknown kind "ippool"`},
		{"empty", "", "empty document"},
		{"comment only", "# nothing\n", "empty document"},
		{"scalar", "42", "not an object"},
		{"bad yaml", "a: [", "parse document"},
		{"type error", doc("IPPool", "p", "", "{cidr: 10.0.0.0/16, blockSize: big}"), "spec.blockSize"},
		{"protocol out of range", doc("NetworkPolicy", "p", "n", "{ingress: [{action: Allow, protocol: 256}]}"), "invalid protocol 256"},
		{"list item unknown field", "apiVersion: projectcalico.org/v3\nkind: TierList\nitems:\n- metadata: {name: a}\n- metadata: {name: b}\n  spec: {x: 1}\n", `items[1]: decode Tier: unknown field "spec.x"`},
		{"list item wrong kind", "apiVersion: projectcalico.org/v3\nkind: TierList\nitems:\n- kind: IPPool\n  metadata: {name: a}\n", `items[0]: kind "IPPool" in a TierList`},
		{"list item wrong apiVersion", "apiVersion: projectcalico.org/v3\nkind: TierList\nitems:\n- apiVersion: v1\n  metadata: {name: a}\n", `items[0]: apiVersion "v1"`},
		{"list item not object", "apiVersion: projectcalico.org/v3\nkind: TierList\nitems: [1]\n", "items[0]: item is not an object"},
		{"list unknown field", "apiVersion: projectcalico.org/v3\nkind: TierList\nitems: []\nfoo: 1\n", `unknown field "foo"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rs, err := Decode([]byte(tc.doc))
			if err == nil {
				t.Fatalf("Decode = %v, want error containing %q", rs, tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error = %q, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestDecodeYAMLAndJSON(t *testing.T) {
	yamlDoc := `
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata:
  name: allow-dns
  labels: {team: net}
spec:
  order: 100
  selector: all()
  egress:
  - action: Allow
    protocol: UDP
    destination:
      ports: [53, "1000:2000", dns]
`
	jsonDoc := `{"apiVersion":"projectcalico.org/v3","kind":"GlobalNetworkPolicy",
		"metadata":{"name":"allow-dns","labels":{"team":"net"}},
		"spec":{"order":100,"selector":"all()","egress":[{"action":"Allow","protocol":"UDP",
		"destination":{"ports":[53,"1000:2000","dns"]}}]}}`
	for name, d := range map[string]string{"yaml": yamlDoc, "json": jsonDoc} {
		t.Run(name, func(t *testing.T) {
			r := decodeOneT(t, d)
			g, ok := r.(*GlobalNetworkPolicy)
			if !ok {
				t.Fatalf("got %T", r)
			}
			if g.APIVersion != APIVersion || g.Kind != KindGlobalNetworkPolicy || g.Name != "allow-dns" || g.Labels["team"] != "net" {
				t.Errorf("meta = %+v %+v", g.TypeMeta, g.ObjectMeta)
			}
			if g.Spec.Order == nil || *g.Spec.Order != 100 {
				t.Errorf("order = %v", g.Spec.Order)
			}
			ports := g.Spec.Egress[0].Destination.Ports
			want := []Port{SinglePort(53), PortRange(1000, 2000), NamedPort("dns")}
			if len(ports) != 3 || ports[0] != want[0] || ports[1] != want[1] || ports[2] != want[2] {
				t.Errorf("ports = %+v, want %+v", ports, want)
			}
			if p := g.Spec.Egress[0].Protocol; p == nil || p.String() != "UDP" {
				t.Errorf("protocol = %v", p)
			}
		})
	}
}

func TestDecodeList(t *testing.T) {
	d := `
apiVersion: projectcalico.org/v3
kind: IPPoolList
metadata: {resourceVersion: "5"}
items:
- metadata: {name: a}
  spec: {cidr: 10.0.0.0/16}
- apiVersion: projectcalico.org/v3
  kind: IPPool
  metadata: {name: b}
  spec: {cidr: 10.1.0.0/16}
`
	rs, err := Decode([]byte(d))
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 2 {
		t.Fatalf("got %d items", len(rs))
	}
	for i, name := range []string{"a", "b"} {
		p, ok := rs[i].(*IPPool)
		if !ok || p.Name != name || p.Kind != KindIPPool || p.APIVersion != APIVersion {
			t.Errorf("item %d = %#v", i, rs[i])
		}
	}
	rs, err = Decode([]byte("apiVersion: projectcalico.org/v3\nkind: NodeList\nitems: []\n"))
	if err != nil || len(rs) != 0 {
		t.Errorf("empty list: %v, %v", rs, err)
	}
}

// TestDecodeEveryKind decodes a minimal document of every kind and checks
// that the Go type and TypeMeta match the registry.
func TestDecodeEveryKind(t *testing.T) {
	for _, k := range Kinds() {
		ns := ""
		if k.Namespaced {
			ns = "ns1"
		}
		r := decodeOneT(t, doc(k.Kind, "default", ns, ""))
		info, ok := KindOf(r)
		if !ok || info.Kind != k.Kind {
			t.Errorf("%s: decoded %T", k.Kind, r)
		}
		if gvk := r.GetObjectKind().GroupVersionKind(); gvk.Kind != k.Kind || gvk.GroupVersion().String() != APIVersion {
			t.Errorf("%s: gvk %v", k.Kind, gvk)
		}
	}
}

// TestEncodeDecodeRoundTrip marshals decoded resources and decodes them again.
func TestEncodeDecodeRoundTrip(t *testing.T) {
	docs := []string{
		doc("NetworkPolicy", "p", "ns1", `{tier: t1, order: 5, selector: "a == 'b'", types: [Ingress], ingress: [{action: Allow, protocol: 6, ipVersion: 4, icmp: null, source: {nets: [10.0.0.0/8], ports: ["1:2"], notPorts: [http]}, destination: {services: {name: s}}, http: {methods: [GET]}, metadata: {annotations: {a: b}}}]}`),
		doc("BGPPeer", "p", "", `{asNumber: "1.1", peerIP: 10.0.0.1, maxRestartTime: 2m0s, ttlSecurity: 1}`),
		doc("FelixConfiguration", "default", "", `{failsafeInboundHostPorts: [], iptablesRefreshInterval: 1m30s, natPortRange: "1:10"}`),
		doc("WorkloadEndpoint", "w", "ns1", `{ports: [{name: a, protocol: sctp, port: 1}], qosControls: {dscp: 10}}`),
	}
	for _, d := range docs {
		r := decodeOneT(t, d)
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		r2 := decodeOneT(t, string(b))
		b2, _ := json.Marshal(r2)
		if string(b) != string(b2) {
			t.Errorf("round trip changed:\n%s\n%s", b, b2)
		}
	}
}

func TestEncodeShape(t *testing.T) {
	r := decodeOneT(t, doc("GlobalNetworkPolicy", "p", "", `{ingress: [{action: Allow}]}`))
	Default(r)
	b, _ := json.Marshal(r)
	want := `{"kind":"GlobalNetworkPolicy","apiVersion":"projectcalico.org/v3","metadata":{"name":"p"},"spec":{"tier":"default","ingress":[{"action":"Allow"}],"types":["Ingress"]}}`
	if string(b) != want {
		t.Errorf("json = %s\nwant   %s", b, want)
	}
	fc := decodeOneT(t, doc("FelixConfiguration", "default", "", `{failsafeInboundHostPorts: []}`))
	b, _ = json.Marshal(fc)
	if !strings.Contains(string(b), `"failsafeInboundHostPorts":[]`) {
		t.Errorf("an explicitly empty failsafe list must survive: %s", b)
	}
}

func FuzzDecode(f *testing.F) {
	seeds := []string{
		doc("IPPool", "p", "", "{cidr: 10.0.0.0/16}"),
		doc("NetworkPolicy", "p", "ns", `{ingress: [{action: Allow, protocol: TCP, source: {ports: [1, "2:3", x]}}]}`),
		doc("BGPConfiguration", "default", "", `{asNumber: "1.2"}`),
		"apiVersion: projectcalico.org/v3\nkind: TierList\nitems: [{metadata: {name: a}}]\n",
		`{"apiVersion":"projectcalico.org/v3","kind":"Node","metadata":{"name":"n"},"spec":{"bgp":{}}}`,
		"", "- a\n", "{}",
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		rs, err := Decode(data)
		if err != nil {
			return
		}
		for _, r := range rs {
			_ = Validate(r)
			Default(r)
			_ = Validate(r)
			b, err := json.Marshal(r)
			if err != nil {
				t.Fatalf("marshal %T: %v", r, err)
			}
			if _, err := Decode(b); err != nil {
				t.Fatalf("re-decode of %s: %v", b, err)
			}
		}
	})
}
