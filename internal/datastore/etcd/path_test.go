package etcd

import (
	"strings"
	"testing"

	v3 "github.com/calico-go/calico/api/v3"
	"github.com/calico-go/calico/internal/datastore"
)

func TestPath(t *testing.T) {
	pool, _ := v3.LookupKind("IPPool")
	np, _ := v3.LookupKind("NetworkPolicy")
	gnp, _ := v3.LookupKind("GlobalNetworkPolicy")
	cases := []struct {
		ki   v3.KindInfo
		key  datastore.Key
		path string
	}{
		{pool, datastore.Key{Kind: "IPPool", Name: "default-ipv4-ippool"}, "/calico/resources/v3/projectcalico.org/ippools/default-ipv4-ippool"},
		{np, datastore.Key{Kind: "NetworkPolicy", Namespace: "prod", Name: "default.allow"}, "/calico/resources/v3/projectcalico.org/networkpolicies/prod/default.allow"},
		{gnp, datastore.Key{Kind: "GlobalNetworkPolicy", Name: "deny"}, "/calico/resources/v3/projectcalico.org/globalnetworkpolicies/deny"},
	}
	for _, c := range cases {
		if got := path(c.ki, c.key); got != c.path {
			t.Errorf("path(%s) = %s, want %s", c.key, got, c.path)
		}
		k, ok := parsePath(c.ki, c.path)
		if !ok || k != c.key {
			t.Errorf("parsePath(%s) = %v %v, want %v", c.path, k, ok, c.key)
		}
	}
	if got := kindPrefix(np, "prod"); got != "/calico/resources/v3/projectcalico.org/networkpolicies/prod/" {
		t.Errorf("kindPrefix = %s", got)
	}
	if got := kindPrefix(pool, "ignored"); got != "/calico/resources/v3/projectcalico.org/ippools/" {
		t.Errorf("kindPrefix(cluster-scoped, ns) = %s", got)
	}
	for _, bad := range []struct {
		ki  v3.KindInfo
		key string
	}{
		{pool, "/calico/resources/v3/projectcalico.org/ippools/"},
		{pool, "/calico/resources/v3/projectcalico.org/ippools/a/b"},
		{np, "/calico/resources/v3/projectcalico.org/networkpolicies/onlyname"},
		{np, "/calico/resources/v3/projectcalico.org/networkpolicies/ns/"},
		{np, "/calico/resources/v3/projectcalico.org/networkpolicies/ns/a/b"},
		{np, "/calico/resources/v3/projectcalico.org/stagednetworkpolicies/ns/a"},
	} {
		if k, ok := parsePath(bad.ki, bad.key); ok {
			t.Errorf("parsePath(%s) = %v, want not ok", bad.key, k)
		}
	}
}

// FuzzParsePath: whatever parsePath accepts, path turns back into the same
// key, and the name never contains a '/'.
func FuzzParsePath(f *testing.F) {
	f.Add("/calico/resources/v3/projectcalico.org/networkpolicies/prod/allow", true)
	f.Add("/calico/resources/v3/projectcalico.org/ippools/default-ipv4-ippool", false)
	f.Add("/calico/resources/v3/projectcalico.org/ippools/a/b", false)
	np, _ := v3.LookupKind("NetworkPolicy")
	pool, _ := v3.LookupKind("IPPool")
	f.Fuzz(func(t *testing.T, key string, namespaced bool) {
		ki := pool
		if namespaced {
			ki = np
		}
		k, ok := parsePath(ki, key)
		if !ok {
			return
		}
		if got := path(ki, k); got != key {
			t.Fatalf("parsePath(%q) = %+v, path gives back %q", key, k, got)
		}
		if k.Name == "" || strings.Contains(k.Name, "/") || strings.Contains(k.Namespace, "/") {
			t.Fatalf("parsePath(%q) = %+v", key, k)
		}
	})
}
