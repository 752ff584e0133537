package k8sconv

import (
	"strings"
	"testing"
)

func TestDecode(t *testing.T) {
	const np = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: a, namespace: ns}\nspec: {podSelector: {}}\n"
	nps, err := Decode([]byte(np))
	if err != nil || len(nps) != 1 || nps[0].Name != "a" || nps[0].Namespace != "ns" || nps[0].Kind != Kind {
		t.Fatalf("single: %v %v", nps, err)
	}
	js := `{"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicyList", "items": [
		{"metadata": {"name": "a"}, "spec": {"podSelector": {}}},
		{"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "b"}, "spec": {"podSelector": {}}}]}`
	nps, err = Decode([]byte(js))
	if err != nil || len(nps) != 2 || nps[0].Name != "a" || nps[1].Name != "b" || nps[0].APIVersion != APIVersion {
		t.Fatalf("list: %v %v", nps, err)
	}

	bad := []struct{ name, doc, want string }{
		{"unknown field", strings.Replace(np, "podSelector", "podSelectr", 1), `unknown field "spec.podSelectr"`},
		{"duplicate field", np + "spec: {}\n", "already set"},
		{"wrong apiVersion", strings.Replace(np, "networking.k8s.io/v1", "networking.k8s.io/v1beta1", 1), `apiVersion "networking.k8s.io/v1beta1"`},
		{"no apiVersion", "kind: NetworkPolicy\n", "apiVersion is missing"},
		{"no kind", "apiVersion: networking.k8s.io/v1\n", "kind is missing"},
		{"other kind", "apiVersion: networking.k8s.io/v1\nkind: Ingress\n", `kind "Ingress" of networking.k8s.io/v1 is not supported`},
		{"not an object", "[1]", "not an object"},
		{"not YAML", "a: [", "parse document"},
		{"wrong type", strings.Replace(np, "{podSelector: {}}", "{podSelector: 3}", 1), "decode NetworkPolicy"},
		{"list item kind", `{"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicyList", "items": [{"kind": "NetworkPolicyList"}]}`, "items[0]: kind \"NetworkPolicyList\" in a NetworkPolicyList"},
		{"list item not object", `{"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicyList", "items": [3]}`, "items[0]: item is not an object"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Decode([]byte(tc.doc))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want %q", err, tc.want)
			}
		})
	}
}

func TestHandles(t *testing.T) {
	for _, tc := range []struct {
		apiVersion, kind string
		want             bool
	}{
		{"networking.k8s.io/v1", "NetworkPolicy", true},
		{"networking.k8s.io/v1", "NetworkPolicyList", true},
		{"networking.k8s.io/v1", "Ingress", false},
		{"projectcalico.org/v3", "NetworkPolicy", false},
	} {
		if got := Handles(tc.apiVersion, tc.kind); got != tc.want {
			t.Errorf("Handles(%q, %q) = %v", tc.apiVersion, tc.kind, got)
		}
	}
}
