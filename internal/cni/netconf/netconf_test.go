package netconf

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseDefaults(t *testing.T) {
	c, err := Parse([]byte(`{"cniVersion":"1.0.0","type":"calico","ipam":{"type":"calico-ipam"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Name != DefaultNetworkName || c.DatastoreType != DatastoreEtcdV3 || c.NodenameFile != DefaultNodenameFile ||
		c.IPAMLockFile != DefaultIPAMLockFile {
		t.Errorf("defaults: %+v", c)
	}
	if !c.IPAM.WantIPv4() || c.IPAM.WantIPv6() {
		t.Errorf("default families: v4=%v v6=%v, want true false", c.IPAM.WantIPv4(), c.IPAM.WantIPv6())
	}
}

func TestParseFull(t *testing.T) {
	c, err := Parse([]byte(`{
	  "cniVersion": "0.3.1", "name": "net1", "type": "calico",
	  "datastore_type": "etcdv3", "etcd_endpoints": "http://10.0.0.1:2379,http://10.0.0.2:2379",
	  "etcd_key_file": "/k", "etcd_cert_file": "/c", "etcd_ca_cert_file": "/ca",
	  "nodename": "n1", "nodename_file_optional": true, "mtu": 1440, "num_queues": 2,
	  "log_level": "debug", "include_default_routes": true,
	  "container_settings": {"allow_ip_forwarding": true},
	  "feature_control": {"ip_addrs_no_ipam": true, "floating_ips": true},
	  "policy": {"type": "k8s"}, "kubernetes": {"kubeconfig": "/kc"},
	  "ipam": {"type": "calico-ipam", "assign_ipv4": "false", "assign_ipv6": "true",
	           "ipv4_pools": ["p1"], "ipv6_pools": ["fd00::/64"]},
	  "args": {"cni": {"labels": [{"key": "app", "value": "web"}, {"key": "tier", "value": "fe"}]}},
	  "runtimeConfig": {"labels": {"tier": "be"}}
	}`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Name != "net1" || c.Nodename != "n1" || c.MTU != 1440 || c.NumQueues != 2 || !c.IncludeDefaultRoutes ||
		!c.ContainerSettings.AllowIPForwarding || !c.FeatureControl.FloatingIPs || c.Policy.Type != "k8s" ||
		c.Kubernetes.Kubeconfig != "/kc" || c.IPAM.IPv4Pools[0] != "p1" {
		t.Errorf("parsed: %+v", c)
	}
	if c.IPAM.WantIPv4() || !c.IPAM.WantIPv6() {
		t.Errorf("families: v4=%v v6=%v", c.IPAM.WantIPv4(), c.IPAM.WantIPv6())
	}
	labels := c.Labels()
	if labels["app"] != "web" || labels["tier"] != "be" {
		t.Errorf("labels %v: runtimeConfig should win over args", labels)
	}
	cfg, err := c.ClientConfig(func(k string) (string, bool) {
		if k == "ETCD_ENDPOINTS" {
			return "http://env:2379", true
		}
		return "", false
	})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Spec.EtcdEndpoints != "http://10.0.0.1:2379,http://10.0.0.2:2379" || cfg.Spec.EtcdCACertFile != "/ca" ||
		cfg.Spec.EtcdKeyFile != "/k" || cfg.Spec.EtcdCertFile != "/c" {
		t.Errorf("client config: %+v", cfg.Spec)
	}
}

func TestClientConfigFromEnv(t *testing.T) {
	c, err := Parse([]byte(`{"type":"calico","ipam":{"type":"host-local"}}`))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := c.ClientConfig(func(k string) (string, bool) {
		if k == "ETCD_ENDPOINTS" {
			return "http://env:2379", true
		}
		return "", false
	})
	if err != nil || cfg.Spec.EtcdEndpoints != "http://env:2379" {
		t.Errorf("env endpoints: %+v, %v", cfg.Spec, err)
	}
	c.DatastoreType = DatastoreKubernetes
	if _, err := c.ClientConfig(nil); !errors.Is(err, ErrInvalid) {
		t.Errorf("kubernetes datastore: err %v, want ErrInvalid", err)
	}
}

func TestDeprecatedEtcdAuthority(t *testing.T) {
	c, err := Parse([]byte(`{"type":"calico","etcd_authority":"1.2.3.4:2379","etcd_scheme":"https","ipam":{"type":"host-local"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if c.EtcdEndpoints != "https://1.2.3.4:2379" {
		t.Errorf("endpoints %q", c.EtcdEndpoints)
	}
}

func TestParseErrors(t *testing.T) {
	cases := []struct{ conf, want string }{
		{`{"type":"calico"}`, `"ipam" needs a "type"`},
		{`{"type":"calico","ipam":{"type":"calico-ipam"},"mtu":-1}`, "mtu -1 is out of range"},
		{`{"type":"calico","ipam":{"type":"calico-ipam"},"mtu":20}`, "too small"},
		{`{"type":"calico","ipam":{"type":"calico-ipam","assign_ipv4":"yes"}}`, `ipam.assign_ipv4 is "yes"`},
		{`{"type":"calico","ipam":{"type":"calico-ipam"},"datastore_type":"consul"}`, `datastore_type "consul" is unknown`},
		{`{"type":"calico","ipam":{"type":"calico-ipam"},"device_type":"netkit"}`, "netkit"},
		{`{"type":"calico","ipam":{"type":"calico-ipam","subnet":"usePodCidr"}}`, "ipam.subnet"},
		{`{"type":"calico","ipam":{"type":"calico-ipam"},"args":{"cni":{"labels":5}}}`, "labels must be"},
		{`{"type":`, "unexpected end"},
	}
	for _, tc := range cases {
		_, err := Parse([]byte(tc.conf))
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%s): err %v, want ErrInvalid containing %q", tc.conf, err, tc.want)
		}
	}
}

func TestResolveNodename(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "nodename")
	c := &Common{Nodename: " explicit ", NodenameFile: file}
	if n, _ := c.ResolveNodename(); n != "explicit" {
		t.Errorf("explicit nodename: %q", n)
	}
	c.Nodename = ""
	if _, err := c.ResolveNodename(); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "nodename_file_optional") ||
		!strings.Contains(err.Error(), file) {
		t.Errorf("missing file: %v", err)
	}
	c.NodenameFileOptional = true
	h, _ := os.Hostname()
	if n, err := c.ResolveNodename(); err != nil || n != strings.ToLower(h) {
		t.Errorf("optional file: %q, %v; want host name %q", n, err, h)
	}
	if err := os.WriteFile(file, []byte("node-7\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if n, err := c.ResolveNodename(); err != nil || n != "node-7" {
		t.Errorf("file: %q, %v", n, err)
	}
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ResolveNodename(); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "is empty") {
		t.Errorf("empty file: %v", err)
	}
	c.Nodename = "explicit"
	if n, _ := c.ResolveNodename(); n != "explicit" {
		t.Errorf("explicit nodename: %q", n)
	}
}

func TestResolveMTU(t *testing.T) {
	file := filepath.Join(t.TempDir(), "mtu")
	c := &NetConf{}
	if m, err := c.ResolveMTU(file); err != nil || m != DefaultMTU {
		t.Errorf("no file: %d, %v", m, err)
	}
	c.RequireMTUFile = true
	if _, err := c.ResolveMTU(file); !errors.Is(err, ErrInvalid) {
		t.Errorf("required file missing: %v", err)
	}
	if err := os.WriteFile(file, []byte("1410\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if m, err := c.ResolveMTU(file); err != nil || m != 1410 {
		t.Errorf("file: %d, %v", m, err)
	}
	if err := os.WriteFile(file, []byte("big"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ResolveMTU(file); !errors.Is(err, ErrInvalid) {
		t.Errorf("bad file: %v", err)
	}
	c.MTU = 9000
	if m, _ := c.ResolveMTU(file); m != 9000 {
		t.Errorf("explicit mtu: %d", m)
	}
}

func TestParseArgs(t *testing.T) {
	k, err := ParseArgs("IgnoreUnknown=1;K8S_POD_NAMESPACE=ns1;K8S_POD_NAME=web-0;K8S_POD_INFRA_CONTAINER_ID=abc;K8S_POD_UID=u1;IP=10.0.0.5")
	if err != nil {
		t.Fatal(err)
	}
	if !k.IsPod() || k.PodNamespace != "ns1" || k.PodName != "web-0" || k.PodInfraContainerID != "abc" || k.PodUID != "u1" {
		t.Errorf("args: %+v", k)
	}
	if ip, err := k.Addr(); err != nil || ip != netip.MustParseAddr("10.0.0.5") {
		t.Errorf("IP: %v, %v", ip, err)
	}
	if k, err := ParseArgs(""); err != nil || k.IsPod() || k.LegacyHandleID("cid") != "cid" {
		t.Errorf("empty: %+v %v", k, err)
	}
	if k, err := ParseArgs(" ; "); err != nil || k.IsPod() {
		t.Errorf("blank entries: %+v %v", k, err)
	}
	for _, bad := range []string{"K8S_POD_NAME=x", "garbage"} {
		if _, err := ParseArgs(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("%q: %v", bad, err)
		}
	}
	if bad, err := ParseArgs("IP=banana"); err != nil {
		t.Errorf("IP is passed on unread: %v", err)
	} else if _, err := bad.Addr(); !errors.Is(err, ErrInvalid) {
		t.Errorf("IP=banana: %v", err)
	}
	if h := HandleID("k8s-pod-network", "abc"); h != "k8s-pod-network.abc" {
		t.Errorf("handle %q", h)
	}
	if h := k.LegacyHandleID("cid"); h != "ns1.web-0" {
		t.Errorf("legacy handle %q", h)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"type":"calico","ipam":{"type":"calico-ipam"}}`))
	f.Add([]byte(`{"type":"calico","mtu":1400,"ipam":{"type":"host-local","assign_ipv4":"true"},"args":{"cni":{"labels":{"a":"b"}}}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error without ErrInvalid: %v", err)
			}
			return
		}
		if c.Name == "" || c.IPAM.Type == "" {
			t.Fatalf("accepted config without name or ipam type: %+v", c)
		}
	})
}
