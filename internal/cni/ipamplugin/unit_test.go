package ipamplugin_test

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"

	"github.com/calico-go/calico/internal/cni/ipamplugin"
	"github.com/calico-go/calico/internal/datastore"
	"github.com/calico-go/calico/internal/ipam"
)

func TestParseConfigDefaults(t *testing.T) {
	c, err := ipamplugin.ParseConfig([]byte(`{"cniVersion":"1.0.0","type":"calico-ipam","ipam":{"type":"calico-ipam"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Name != ipamplugin.DefaultNetworkName || c.DatastoreType != "etcdv3" || c.NodenameFile != ipamplugin.DefaultNodenameFile ||
		c.LockFile != ipamplugin.DefaultLockFile || !c.WantIPv4() || c.WantIPv6() {
		t.Errorf("defaults: %+v v4=%v v6=%v", c, c.WantIPv4(), c.WantIPv6())
	}
	if got := c.HandleID("abc"); got != "k8s-pod-network.abc" {
		t.Errorf("HandleID = %s", got)
	}
	c, err = ipamplugin.ParseConfig([]byte(`{"name":"net","etcd_authority":"10.0.0.1:2379","ipam":{"assign_ipv4":"false","assign_ipv6":"TRUE",
		"ipv6_pools":["fd00::/64","v6pool"]},"cni.dev/valid-attachments":[{"containerID":"a","ifname":"eth0"}],
		"cni.dev/attachments":[{"containerID":"b","ifname":"eth0"}],"ipam_lock_file":"/tmp/x.lock"}`))
	if err != nil {
		t.Fatal(err)
	}
	if c.CNIVersion != "0.1.0" || c.WantIPv4() || !c.WantIPv6() || c.EtcdEndpoints != "http://10.0.0.1:2379" || c.LockFile != "/tmp/x.lock" {
		t.Errorf("parsed %+v", c)
	}
	if v := c.Valid(); !v["a"] || !v["b"] || len(v) != 2 {
		t.Errorf("valid attachments %v", v)
	}
}

func TestParseConfigErrors(t *testing.T) {
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
		_, err := ipamplugin.ParseConfig([]byte(tc.conf))
		if !errors.Is(err, ipamplugin.ErrConfig) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want ErrConfig with %q", tc.conf, err, tc.want)
		}
		if err != nil && ipamplugin.Code(err) != types.ErrInvalidNetworkConfig {
			t.Errorf("%s: code %d", tc.conf, ipamplugin.Code(err))
		}
	}
}

func TestParseArgs(t *testing.T) {
	a, err := ipamplugin.ParseArgs("IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME=web;K8S_POD_INFRA_CONTAINER_ID=x;IP=10.0.0.5")
	if err != nil {
		t.Fatal(err)
	}
	if !a.IsPod() || a.PodNamespace != "shop" || a.PodName != "web" || a.IP != netip.MustParseAddr("10.0.0.5") {
		t.Errorf("%+v", a)
	}
	if a.LegacyHandleID("cid") != "shop.web" {
		t.Errorf("legacy %s", a.LegacyHandleID("cid"))
	}
	if a, _ := ipamplugin.ParseArgs(""); a.IsPod() || a.LegacyHandleID("cid") != "cid" {
		t.Errorf("empty args: %+v", a)
	}
	for _, bad := range []string{"K8S_POD_NAME=web", "IP=banana", "novalue"} {
		if _, err := ipamplugin.ParseArgs(bad); !errors.Is(err, ipamplugin.ErrConfig) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

func TestResolveNodename(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "nodename")
	c := &ipamplugin.Config{Nodename: " explicit ", NodenameFile: file}
	if n, _ := c.ResolveNodename(); n != "explicit" {
		t.Errorf("explicit: %q", n)
	}
	c.Nodename = ""
	if _, err := c.ResolveNodename(); !errors.Is(err, ipamplugin.ErrConfig) || !strings.Contains(err.Error(), file) {
		t.Errorf("missing file: %v", err)
	}
	c.NodenameFileOptional = true
	host, _ := os.Hostname()
	if n, err := c.ResolveNodename(); err != nil || n != strings.ToLower(host) {
		t.Errorf("optional file: %q %v", n, err)
	}
	if err := os.WriteFile(file, []byte("node-7\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if n, _ := c.ResolveNodename(); n != "node-7" {
		t.Errorf("from file: %q", n)
	}
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ResolveNodename(); err == nil || !strings.Contains(err.Error(), "is empty") {
		t.Errorf("empty file: %v", err)
	}
}

func TestClientConfig(t *testing.T) {
	c, err := ipamplugin.ParseConfig([]byte(`{"etcd_endpoints":"https://10.0.0.1:2379","etcd_ca_cert_file":"/ca.pem"}`))
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

func TestErrorCodes(t *testing.T) {
	for _, tc := range []struct {
		err  error
		code uint
	}{
		{ipamplugin.ErrConfig, types.ErrInvalidNetworkConfig},
		{fmt.Errorf("x: %w", ipam.ErrPoolNotFound), types.ErrInvalidNetworkConfig},
		{ipam.ErrPoolNotAllowed, types.ErrInvalidNetworkConfig},
		{datastore.ErrUnauthorized, types.ErrInvalidNetworkConfig},
		{ipam.ErrNoPools, ipamplugin.CodeNoPool},
		{ipam.ErrPoolDisabled, ipamplugin.CodeNoPool},
		{fmt.Errorf("assign: %w", ipam.ErrNoAddresses), ipamplugin.CodePoolExhausted},
		{ipam.ErrAlreadyAssigned, ipamplugin.CodeAddressInUse},
		{ipam.ErrNotInPool, ipamplugin.CodeAddressNotInPool},
		{ipamplugin.ErrCheck, ipamplugin.CodeCheckFailed},
		{ipamplugin.ErrNotReady, types.ErrTryAgainLater},
		{&datastore.Error{Op: "get", Err: datastore.ErrUnavailable}, types.ErrTryAgainLater},
		{ipam.ErrTooManyRetries, types.ErrTryAgainLater},
		{ipam.ErrOutcomeUnknown, types.ErrTryAgainLater},
		{ipamplugin.ErrLockTimeout, types.ErrTryAgainLater},
		{errors.New("boom"), types.ErrInternal},
	} {
		if got := ipamplugin.Code(tc.err); got != tc.code {
			t.Errorf("Code(%v) = %d, want %d", tc.err, got, tc.code)
		}
		e := ipamplugin.Error(tc.err)
		if e.Code != tc.code || e.Msg != tc.err.Error() {
			t.Errorf("Error(%v) = %+v", tc.err, e)
		}
	}
	te := types.NewError(types.ErrInvalidNetNS, "kept", "")
	if got := ipamplugin.Error(fmt.Errorf("wrapped: %w", te)); got != te {
		t.Errorf("a CNI error is passed through: %+v", got)
	}
	if ipamplugin.Error(nil) != nil {
		t.Error("Error(nil) != nil")
	}
}

// holdLock takes the flock on path as another calico-ipam would, and
// returns its release.
func holdLock(t *testing.T, path string) func() {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	release := func() { once.Do(func() { _ = f.Close() }) }
	t.Cleanup(release)
	return release
}

func cmdArgs(conf []byte, containerID, args string) *skel.CmdArgs {
	return &skel.CmdArgs{ContainerID: containerID, Netns: "/var/run/netns/calico-ipam-test-none", IfName: "eth0",
		Args: args, Path: "/opt/cni/bin", StdinData: conf}
}

// FuzzParseConfig: whatever ParseConfig accepts has its defaults filled in
// and asks for at least one address family; whatever it refuses is
// ErrConfig. ParseArgs never panics and keeps pods whole.
func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(`{"cniVersion":"1.0.0","name":"k8s-pod-network","type":"calico-ipam","ipam":{"type":"calico-ipam"}}`), "K8S_POD_NAMESPACE=a;K8S_POD_NAME=b")
	f.Add([]byte(`{"ipam":{"assign_ipv4":"false","assign_ipv6":"true","ipv6_pools":["fd00::/64"]}}`), "IP=fd00::1")
	f.Add([]byte(`{"datastore_type":"kubernetes","nodename_file_optional":true}`), "IgnoreUnknown=1")
	f.Add([]byte(`{"ipam":{"assign_ipv4":1}}`), "x")
	f.Fuzz(func(t *testing.T, conf []byte, args string) {
		c, err := ipamplugin.ParseConfig(conf)
		if err != nil {
			if !errors.Is(err, ipamplugin.ErrConfig) {
				t.Fatalf("ParseConfig error without ErrConfig: %v", err)
			}
		} else if c.Name == "" || c.DatastoreType != ipamplugin.DatastoreEtcdV3 || c.LockFile == "" || c.CNIVersion == "" ||
			(!c.WantIPv4() && !c.WantIPv6()) {
			t.Fatalf("accepted %s as %+v", conf, c)
		}
		a, err := ipamplugin.ParseArgs(args)
		if err == nil && (a.PodName == "") != (a.PodNamespace == "") {
			t.Fatalf("ParseArgs(%q) = %+v", args, a)
		}
	})
}
