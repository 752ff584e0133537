package etcd

import (
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
