package ctl

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	v3 "github.com/calico-go/calico/api/v3"
	"github.com/calico-go/calico/internal/testutil/etcdtest"
)

const k8sAllowWeb = `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: allow-web
  namespace: shop
spec:
  podSelector:
    matchLabels: {app: db}
  ingress:
  - from:
    - namespaceSelector: {matchLabels: {team: shop}}
      podSelector: {matchLabels: {app: web}}
    - ipBlock: {cidr: 10.0.0.0/8, except: [10.1.0.0/16]}
    ports:
    - port: 5432
    - {protocol: TCP, port: 6000, endPort: 6010}
`

// k8sDenyAll has no namespace.
const k8sDenyAll = `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: deny-all
spec:
  podSelector: {}
  policyTypes: [Ingress, Egress]
`

const k8sBadPeer = `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: bad
  namespace: shop
spec:
  podSelector: {}
  ingress:
  - from: [{}]
`

const allowWebSpec = `{
  "tier": "default",
  "order": 1000,
  "selector": "projectcalico.org/orchestrator == 'k8s' && app == 'db'",
  "types": ["Ingress"],
  "ingress": [
    {"action": "Allow", "protocol": "TCP",
     "source": {"selector": "projectcalico.org/orchestrator == 'k8s' && app == 'web'", "namespaceSelector": "team == 'shop'"},
     "destination": {"ports": [5432, "6000:6010"]}},
    {"action": "Allow", "protocol": "TCP",
     "source": {"nets": ["10.0.0.0/8"], "notNets": ["10.1.0.0/16"]},
     "destination": {"ports": [5432, "6000:6010"]}}
  ]
}`

// sameJSON compares two JSON values for equality of content.
func sameJSON(t *testing.T, got, want []byte) bool {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("%v: %s", err, got)
	}
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatalf("%v: %s", err, want)
	}
	gb, _ := json.Marshal(g)
	wb, _ := json.Marshal(w)
	return string(gb) == string(wb)
}

func TestConvert(t *testing.T) {
	e := newTestEnv(t)
	r := e.run(k8sAllowWeb, "convert", "-f", "-", "-o", "json").ok(t)
	var np v3.NetworkPolicy
	if err := json.Unmarshal([]byte(r.stdout), &np); err != nil {
		t.Fatalf("%v:\n%s", err, r.stdout)
	}
	if np.APIVersion != v3.APIVersion || np.Kind != v3.KindNetworkPolicy || np.Name != "knp.default.allow-web" || np.Namespace != "shop" {
		t.Errorf("identity: %+v", np.TypeMeta)
	}
	spec, _ := json.Marshal(np.Spec)
	if !sameJSON(t, spec, []byte(allowWebSpec)) {
		t.Errorf("spec:\n%s\nwant:\n%s", spec, allowWebSpec)
	}
	if len(e.configs) != 0 {
		t.Error("convert connected to the datastore")
	}

	// YAML (the default) reads back as the same resource.
	r = e.run(k8sAllowWeb, "convert", "-f", "-").ok(t)
	rs, err := v3.Decode([]byte(r.stdout))
	if err != nil || len(rs) != 1 {
		t.Fatalf("%v:\n%s", err, r.stdout)
	}
	spec, _ = json.Marshal(rs[0].(*v3.NetworkPolicy).Spec)
	if !sameJSON(t, spec, []byte(allowWebSpec)) {
		t.Errorf("yaml spec:\n%s", r.stdout)
	}

	// Calico documents pass through; no namespace means default.
	r = e.run(yamlDocs(k8sDenyAll, pool1, npBackend), "convert", "-f", "-").ok(t)
	r.stdoutHas(t, "kind: List", "name: knp.default.deny-all", "namespace: default", "types:\n    - Ingress\n    - Egress",
		"kind: IPPool", "name: pool1", "natOutgoing: true", "name: backend", "namespace: shop")
	if strings.Contains(r.stdout, "blockSize") {
		t.Errorf("a passed-through document was defaulted:\n%s", r.stdout)
	}
	// Only policies: a NetworkPolicyList.
	e.run(yamlDocs(k8sDenyAll, k8sAllowWeb), "convert", "-f", "-").ok(t).stdoutHas(t, "kind: NetworkPolicyList")

	// -n gives the namespace to a policy without one, and refuses another.
	e.run(k8sDenyAll, "convert", "-f", "-", "-n", "prod").ok(t).stdoutHas(t, "namespace: prod")
	e.run(k8sAllowWeb, "convert", "-f", "-", "-n", "prod").fails(t).
		stderrHas(t, `document 1 (networking.k8s.io/v1 NetworkPolicy "shop/allow-web"): metadata.namespace "shop" does not match --namespace "prod"`)

	// kubectl's List of policies.
	list := `{"apiVersion": "v1", "kind": "List", "items": [
	  {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "a", "namespace": "x"}, "spec": {"podSelector": {}}},
	  {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "b", "namespace": "x"}, "spec": {"podSelector": {}}}]}`
	e.run(list, "convert", "-f", "-").ok(t).stdoutHas(t, "name: knp.default.a", "name: knp.default.b")
	nplist := `{"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicyList", "items": [{"metadata": {"name": "a"}, "spec": {"podSelector": {}}}]}`
	e.run(nplist, "convert", "-f", "-").ok(t).stdoutHas(t, "name: knp.default.a")
}

func TestConvertErrors(t *testing.T) {
	e := newTestEnv(t)
	r := e.run(yamlDocs(k8sAllowWeb, k8sBadPeer), "convert", "-f", "-").fails(t)
	r.stderrHas(t, "Failed to convert resources: 1 invalid resource(s), nothing was converted",
		`document 2 (networking.k8s.io/v1 NetworkPolicy "shop/bad"): spec.ingress[0].from[0]: must set podSelector, namespaceSelector or ipBlock`)
	if r.stdout != "" {
		t.Errorf("stdout on failure: %q", r.stdout)
	}
	cases := []struct{ name, input, want string }{
		{"other kind", "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: x}\n", `document 1 (Ingress "x"): kind "Ingress" of networking.k8s.io/v1 is not supported`},
		{"unknown field", strings.Replace(k8sAllowWeb, "podSelector:\n    matchLabels", "podSelectr:\n    matchLabels", 1), `document 1 (networking.k8s.io/v1 NetworkPolicy "shop/allow-web"): decode NetworkPolicy: unknown field "spec.podSelectr"`},
		{"endPort", strings.Replace(k8sAllowWeb, "endPort: 6010", "endPort: 5999", 1), "spec.ingress[0].ports[1].endPort: must be between port and 65535"},
		{"long name", strings.Replace(k8sDenyAll, "deny-all", strings.Repeat("d", 245), 1), "metadata.name: must be no more than 253 characters (in the converted Calico NetworkPolicy knp.default.ddd"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e.run(tc.input, "convert", "-f", "-").fails(t).stderrHas(t, tc.want)
		})
	}
	e.run(k8sAllowWeb, "convert", "-f", "-", "-o", "wide").fails(t).stderrHas(t, `Unknown output format "wide"`)
	e.run(k8sAllowWeb, "convert").fails(t).stderrHas(t, "Missing -f")
	e.run("", "convert", "-f", "-", "--skip-empty").ok(t)
}

func TestWriteKubernetesPolicy(t *testing.T) {
	e := newTestEnv(t)
	e.run(yamlDocs(pool1, k8sAllowWeb, k8sDenyAll), "apply", "-f", "-").ok(t).
		stdoutHas(t, "Successfully applied 3 resource(s)")
	np, ok := e.get(v3.KindNetworkPolicy, "shop", "knp.default.allow-web").(*v3.NetworkPolicy)
	if !ok {
		t.Fatal("knp.default.allow-web not stored")
	}
	spec, _ := json.Marshal(np.Spec)
	if !sameJSON(t, spec, []byte(allowWebSpec)) {
		t.Errorf("stored spec:\n%s", spec)
	}
	if e.get(v3.KindNetworkPolicy, "default", "knp.default.deny-all") == nil {
		t.Error("a policy without namespace was not stored in default")
	}

	// apply again updates it.
	e.run(strings.Replace(k8sAllowWeb, "port: 5432", "port: 5433", 1), "apply", "-f", "-").ok(t).
		stdoutHas(t, "Successfully applied 1 'NetworkPolicy' resource(s)")
	np = e.get(v3.KindNetworkPolicy, "shop", "knp.default.allow-web").(*v3.NetworkPolicy)
	if np.Spec.Ingress[0].Destination.Ports[0] != v3.SinglePort(5433) {
		t.Errorf("apply did not update: %v", np.Spec.Ingress[0].Destination.Ports)
	}

	// create of an existing one names the Kubernetes document and the Calico policy.
	e.run(k8sAllowWeb, "create", "-f", "-").fails(t).stderrHas(t,
		`Failed to create 'NetworkPolicy' resource: document 1 (networking.k8s.io/v1 NetworkPolicy "shop/allow-web"): resource already exists: NetworkPolicy(shop/knp.default.allow-web)`)

	// replace works on the converted policy.
	e.run(strings.Replace(k8sAllowWeb, "port: 5432", "port: 5434", 1), "replace", "-f", "-").ok(t).
		stdoutHas(t, "Successfully replaced 1 'NetworkPolicy' resource(s)")

	// get -f finds the converted policy.
	e.run(k8sAllowWeb, "get", "-f", "-").ok(t).stdoutHas(t, "knp.default.allow-web")

	// An invalid Kubernetes document in a batch: nothing is written.
	pool2Before := e.get(v3.KindIPPool, "", "pool2")
	r := e.run(yamlDocs(pool2, k8sBadPeer), "apply", "-f", "-").fails(t)
	r.stderrHas(t, "Failed to apply resources: 1 invalid resource(s), nothing was applied",
		`document 2 (networking.k8s.io/v1 NetworkPolicy "shop/bad"): spec.ingress[0].from[0]: must set podSelector, namespaceSelector or ipBlock`)
	if pool2Before != nil || e.get(v3.KindIPPool, "", "pool2") != nil {
		t.Error("pool2 written from a batch with an invalid document")
	}

	// validate checks Kubernetes documents too, without the datastore.
	e.run(yamlDocs(k8sAllowWeb, gnpAllowDNS), "validate", "-f", "-").ok(t).stdoutHas(t, "Successfully validated 2 resource(s)")
	e.run(yamlDocs(k8sAllowWeb, k8sBadPeer), "validate", "-f", "-").fails(t).
		stderrHas(t, "Failed to validate resources: 1 of 2 resource(s) invalid", `document 2 (networking.k8s.io/v1 NetworkPolicy "shop/bad")`)

	// delete -f removes the converted policy; an invalid spec does not matter.
	bad := strings.Replace(k8sAllowWeb, "port: 5432", "port: 0", 1)
	e.run(yamlDocs(bad, k8sDenyAll), "delete", "-f", "-").ok(t).stdoutHas(t, "Successfully deleted 2 'NetworkPolicy' resource(s)")
	if e.count(v3.KindNetworkPolicy) != 0 {
		t.Error("policies left after delete")
	}
	e.run(k8sAllowWeb, "delete", "-f", "-").fails(t).stderrHas(t,
		`document 1 (networking.k8s.io/v1 NetworkPolicy "shop/allow-web"): resource does not exist: NetworkPolicy(shop/knp.default.allow-web)`)
	e.run(k8sAllowWeb, "delete", "-f", "-", "--skip-not-exists").ok(t)
}

// TestIntegrationKubernetesPolicyEtcd stores Kubernetes policy YAML in a
// real (embedded) etcd, under Calico's key for the converted policy.
func TestIntegrationKubernetesPolicyEtcd(t *testing.T) {
	endpoints := etcdtest.Embedded(t)
	e := realEnv(t, map[string]string{"ETCD_ENDPOINTS": strings.Join(endpoints, ",")})

	e.run(yamlDocs(k8sAllowWeb, npBackend), "create", "-f", "-").ok(t).
		stdoutHas(t, "Successfully created 2 'NetworkPolicy' resource(s)")
	cli, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	const key = "/calico/resources/v3/projectcalico.org/networkpolicies/shop/knp.default.allow-web"
	resp, err := cli.Get(ctx, key)
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("key %s: %v %v", key, resp, err)
	}
	var stored v3.NetworkPolicy
	if err := json.Unmarshal(resp.Kvs[0].Value, &stored); err != nil {
		t.Fatal(err)
	}
	if stored.Spec.Order == nil || *stored.Spec.Order != 1000 || stored.Spec.Selector != "projectcalico.org/orchestrator == 'k8s' && app == 'db'" {
		t.Errorf("stored value: %s", resp.Kvs[0].Value)
	}
	e.run("", "get", "networkpolicy", "-n", "shop", "-o", "wide").ok(t).
		stdoutHas(t, "knp.default.allow-web", "1000", "backend")

	e.run(k8sAllowWeb, "delete", "-f", "-").ok(t).stdoutHas(t, "Successfully deleted 1 'NetworkPolicy' resource(s)")
	resp, err = cli.Get(ctx, key)
	if err != nil || len(resp.Kvs) != 0 {
		t.Errorf("key %s after delete: %v %v", key, resp, err)
	}
}
