package client

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func lookup(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestConfigFromLookup(t *testing.T) {
	cfg, err := ConfigFromLookup(lookup(nil))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Spec.DatastoreType != EtcdV3 || cfg.Spec.EtcdEndpoints != DefaultEtcdEndpoint || cfg.Kind != ConfigKind {
		t.Errorf("defaults: %+v", cfg)
	}

	cfg, err = ConfigFromLookup(lookup(map[string]string{
		"DATASTORE_TYPE":               "etcdv3",
		"ETCD_ENDPOINTS":               "http://a:2379, http://b:2379,",
		"CALICO_ETCD_ENDPOINTS":        "https://c:2379",
		"ETCD_CA_CERT_FILE":            "/ca",
		"ETCD_CERT_FILE":               "/cert",
		"CALICO_ETCD_KEY_FILE":         "/key",
		"ETCD_USERNAME":                "u",
		"ETCD_PASSWORD":                "p",
		"KUBECONFIG":                   "/kc",
		"K8S_INSECURE_SKIP_TLS_VERIFY": "true",
	}))
	if err != nil {
		t.Fatal(err)
	}
	s := cfg.Spec
	if s.EtcdEndpoints != "https://c:2379" || s.EtcdCACertFile != "/ca" || s.EtcdCertFile != "/cert" ||
		s.EtcdKeyFile != "/key" || s.EtcdUsername != "u" || s.EtcdPassword != "p" || s.Kubeconfig != "/kc" || !s.K8sInsecureSkipTLSVerify {
		t.Errorf("env: %+v", s)
	}
	s.EtcdEndpoints = "http://a:2379, http://b:2379,"
	if got := s.Endpoints(); len(got) != 2 || got[1] != "http://b:2379" {
		t.Errorf("Endpoints() = %q", got)
	}

	_, err = ConfigFromLookup(lookup(map[string]string{"K8S_INSECURE_SKIP_TLS_VERIFY": "maybe"}))
	if !errors.Is(err, ErrConfig) {
		t.Errorf("bad bool: %v", err)
	}
	cfg, _ = ConfigFromLookup(lookup(map[string]string{"CALICO_DATASTORE_TYPE": "kubernetes", "DATASTORE_TYPE": "etcdv3"}))
	if cfg.Spec.DatastoreType != Kubernetes || cfg.Spec.EtcdEndpoints != "" {
		t.Errorf("CALICO_ prefix: %+v", cfg.Spec)
	}
}

func TestLoadConfig(t *testing.T) {
	dir := t.TempDir()
	env := lookup(map[string]string{"ETCD_ENDPOINTS": "http://env:2379"})
	file := filepath.Join(dir, "calicoctl.cfg")
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(file, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	// Missing default file: environment.
	cfg, err := LoadConfigWith(filepath.Join(dir, "absent.cfg"), false, env)
	if err != nil || cfg.Spec.EtcdEndpoints != "http://env:2379" {
		t.Fatalf("fallback to env: %+v %v", cfg, err)
	}
	// Missing explicit file: error.
	if _, err := LoadConfigWith(filepath.Join(dir, "absent.cfg"), true, env); !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("explicit missing file: %v", err)
	}

	// YAML file wins over env.
	write("apiVersion: projectcalico.org/v3\nkind: CalicoAPIConfig\nmetadata:\nspec:\n  etcdEndpoints: http://file:2379\n  etcdUsername: me\n")
	cfg, err = LoadConfigWith(file, true, env)
	if err != nil || cfg.Spec.EtcdEndpoints != "http://file:2379" || cfg.Spec.EtcdUsername != "me" || cfg.Spec.DatastoreType != EtcdV3 {
		t.Fatalf("file: %+v %v", cfg, err)
	}
	// JSON works too.
	write(`{"apiVersion":"projectcalico.org/v3","kind":"CalicoAPIConfig","spec":{"datastoreType":"etcdv3"}}`)
	cfg, err = LoadConfigWith(file, false, env)
	if err != nil || cfg.Spec.EtcdEndpoints != DefaultEtcdEndpoint {
		t.Fatalf("json file: %+v %v", cfg, err)
	}

	for name, body := range map[string]string{
		"unknown field": "apiVersion: projectcalico.org/v3\nkind: CalicoAPIConfig\nspec:\n  etcdEndpoint: x\n",
		"wrong kind":    "apiVersion: projectcalico.org/v3\nkind: IPPool\nspec: {}\n",
		"old version":   "apiVersion: v1\nkind: CalicoAPIConfig\nspec: {}\n",
		"not yaml":      "spec: [\n",
	} {
		write(body)
		if _, err := LoadConfigWith(file, true, env); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: %v", name, err)
		}
	}
}
