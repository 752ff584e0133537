package netconf

import (
	"errors"
	"strings"
	"testing"
)

func TestParseIPAMDefaults(t *testing.T) {
	c, err := ParseIPAM([]byte(`{"cniVersion":"1.0.0","type":"calico-ipam","ipam":{"type":"calico-ipam"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Name != DefaultNetworkName || c.DatastoreType != DatastoreEtcdV3 || c.NodenameFile != DefaultNodenameFile ||
		c.IPAMLockFile != DefaultIPAMLockFile || !c.IPAM.WantIPv4() || c.IPAM.WantIPv6() {
		t.Errorf("defaults: %+v v4=%v v6=%v", c, c.IPAM.WantIPv4(), c.IPAM.WantIPv6())
	}
	if got := HandleID(c.Name, "abc"); got != "k8s-pod-network.abc" {
		t.Errorf("HandleID = %s", got)
	}
	c, err = ParseIPAM([]byte(`{"name":"net","etcd_authority":"10.0.0.1:2379","ipam":{"assign_ipv4":"false","assign_ipv6":"TRUE",
		"ipv6_pools":["fd00::/64","v6pool"]},"cni.dev/valid-attachments":[{"containerID":"a","ifname":"eth0"}],
		"cni.dev/attachments":[{"containerID":"b","ifname":"eth0"}],"ipam_lock_file":"/tmp/x.lock"}`))
	if err != nil {
		t.Fatal(err)
	}
	if c.CNIVersion != "0.1.0" || c.IPAM.WantIPv4() || !c.IPAM.WantIPv6() || c.EtcdEndpoints != "http://10.0.0.1:2379" ||
		c.IPAMLockFile != "/tmp/x.lock" {
		t.Errorf("parsed %+v", c)
	}
	if v := c.Valid(); !v["a"] || !v["b"] || len(v) != 2 {
		t.Errorf("valid attachments %v", v)
	}
}

// TestParseIPAMIgnoresPluginKeys: calico-ipam does not refuse keys only the
// calico plugin validates, nor a configuration without an IPAM type.
func TestParseIPAMIgnoresPluginKeys(t *testing.T) {
	conf := []byte(`{"type":"bridge","mtu":-1,"device_type":"netkit","num_queues":-3,"ipam":{"subnet":"10.0.0.0/24","assign_ipv4":true}}`)
	if _, err := Parse(conf); err == nil {
		t.Fatal("Parse accepted it; the test needs a configuration the calico plugin refuses")
	}
	c, err := ParseIPAM(conf)
	if err != nil || !c.IPAM.WantIPv4() {
		t.Fatalf("ParseIPAM: %+v, %v", c, err)
	}
}

func TestParseIPAMErrors(t *testing.T) {
	for _, tc := range []struct{ conf, want string }{
		{`{"ipam":{"assign_ipv4":"yes"}}`, `ipam.assign_ipv4 is "yes"`},
		{`{"ipam":{"assign_ipv6":1}}`, `ipam.assign_ipv6 is 1`},
		{`{"ipam":{"assign_ipv4":false}}`, "nothing to assign"},
		{`{"datastore_type":"consul"}`, `datastore_type "consul" is unknown`},
		{`{"datastore_type":"kubernetes"}`, "not supported by this build"},
		{`{"etcd_discovery_srv":"example.com"}`, "etcd_discovery_srv is not supported"},
		{`{"ipam":{"ipv4_pools":["fd00::/64"]}}`, "not an IPv4 CIDR"},
		{`{"ipam":{"ipv6_pools":[""]}}`, "empty entry"},
		{`{"log_level":"loud"}`, `log_level "loud" is unknown`},
		{`{"ipam":{"ipv4_pools":"10.0.0.0/8"}}`, "ipam.ipv4_pools must not be a JSON string"},
		{`[1]`, "cannot unmarshal array"},
	} {
		_, err := ParseIPAM([]byte(tc.conf))
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want ErrInvalid with %q", tc.conf, err, tc.want)
		}
	}
}

func TestParseIPAMClientConfig(t *testing.T) {
	c, err := ParseIPAM([]byte(`{"etcd_endpoints":"https://10.0.0.1:2379","etcd_ca_cert_file":"/ca.pem"}`))
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"ETCD_ENDPOINTS": "http://ignored:2379", "ETCD_KEY_FILE": "/key.pem", "DATASTORE_TYPE": "kubernetes"}
	cfg, err := c.ClientConfig(func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	s := cfg.Spec
	if s.DatastoreType != "etcdv3" || s.EtcdEndpoints != "https://10.0.0.1:2379" || s.EtcdCACertFile != "/ca.pem" || s.EtcdKeyFile != "/key.pem" {
		t.Errorf("%+v", s)
	}
}

// FuzzParseIPAM: whatever ParseIPAM accepts has its defaults filled in and
// asks for at least one address family; whatever it refuses is ErrInvalid.
// ParseArgs never panics and keeps pods whole.
func FuzzParseIPAM(f *testing.F) {
	f.Add([]byte(`{"cniVersion":"1.0.0","name":"k8s-pod-network","type":"calico-ipam","ipam":{"type":"calico-ipam"}}`), "K8S_POD_NAMESPACE=a;K8S_POD_NAME=b")
	f.Add([]byte(`{"ipam":{"assign_ipv4":"false","assign_ipv6":"true","ipv6_pools":["fd00::/64"]}}`), "IP=fd00::1")
	f.Add([]byte(`{"datastore_type":"kubernetes","nodename_file_optional":true}`), "IgnoreUnknown=1")
	f.Add([]byte(`{"ipam":{"assign_ipv4":1}}`), "x")
	f.Fuzz(func(t *testing.T, conf []byte, args string) {
		c, err := ParseIPAM(conf)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("ParseIPAM error without ErrInvalid: %v", err)
			}
		} else if c.Name == "" || c.DatastoreType != DatastoreEtcdV3 || c.IPAMLockFile == "" || c.CNIVersion == "" ||
			(!c.IPAM.WantIPv4() && !c.IPAM.WantIPv6()) {
			t.Fatalf("accepted %s as %+v", conf, c)
		}
		a, err := ParseArgs(args)
		if err == nil && (a.PodName == "") != (a.PodNamespace == "") {
			t.Fatalf("ParseArgs(%q) = %+v", args, a)
		}
		if err == nil {
			if _, err := a.Addr(); err != nil && !errors.Is(err, ErrInvalid) {
				t.Fatalf("Addr error without ErrInvalid: %v", err)
			}
		}
	})
}
