package ctl

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/calico-go/calico/internal/testutil/etcdtest"
)

// realEnv runs command lines through the real client against etcd at
// endpoints, configured through the environment.
func realEnv(t *testing.T, env map[string]string) *testEnv {
	t.Helper()
	e := newTestEnv(t)
	e.runner.NewClient = nil
	e.env = env
	return e
}

// quickstart is examples/quickstart.yaml, the file `make run` applies.
func quickstart(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "examples", "quickstart.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func TestIntegrationEmbeddedEtcd(t *testing.T) {
	endpoints := etcdtest.Embedded(t)
	e := realEnv(t, map[string]string{"ETCD_ENDPOINTS": strings.Join(endpoints, ",")})

	e.run(quickstart(t), "apply", "-f", "-").ok(t).stdoutHas(t, "Successfully applied 5 resource(s)")
	e.run(quickstart(t), "create", "-f", "-").fails(t).stderrHas(t, "5 of 5 resource(s) cannot be created, nothing was created")
	e.run(quickstart(t), "create", "-f", "-", "--skip-exists").ok(t)

	// Calico's etcd key layout.
	cli, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, key := range []string{
		"/calico/resources/v3/projectcalico.org/ippools/default-ipv4-ippool",
		"/calico/resources/v3/projectcalico.org/networkpolicies/shop/backend-ingress",
		"/calico/resources/v3/projectcalico.org/tiers/default",
	} {
		resp, err := cli.Get(ctx, key)
		if err != nil || len(resp.Kvs) != 1 {
			t.Errorf("key %s: %v %v", key, resp, err)
		}
	}

	e.run("", "get", "ippools", "-o", "wide").ok(t).stdoutHas(t, "default-ipv4-ippool", "10.244.0.0/16", "CrossSubnet")
	e.run("", "get", "networkpolicies", "--all-namespaces").ok(t).stdoutHas(t, "NAMESPACE", "shop", "backend-ingress")
	e.run("", "label", "gns", "trusted-monitoring", "tier=gold").ok(t)
	e.run("", "patch", "ippool", "default-ipv4-ippool", "-p", `{"spec":{"natOutgoing":false}}`).ok(t)
	r := e.run("", "get", "ippool", "default-ipv4-ippool", "-o", "yaml").ok(t)
	if strings.Contains(r.stdout, "natOutgoing: true") {
		t.Errorf("patch not stored:\n%s", r.stdout)
	}
	// Stale resourceVersion on replace.
	stale := strings.Replace(r.stdout, "natOutgoing", "disabled: true\n  natOutgoing", 1)
	e.run("", "label", "ippool", "default-ipv4-ippool", "x=y").ok(t)
	e.run(stale, "replace", "-f", "-").fails(t).stderrHas(t, "update conflict")

	ci := "apiVersion: projectcalico.org/v3\nkind: ClusterInformation\nmetadata: {name: default}\nspec: {calicoVersion: v9.9.9, clusterType: etcd}\n"
	e.run(ci, "create", "-f", "-").ok(t)
	e.run("", "version").ok(t).stdoutHas(t, "Cluster Version:   v9.9.9", "Cluster Type:      etcd")

	e.run(quickstart(t), "delete", "-f", "-").ok(t).stdoutHas(t, "Successfully deleted 5 resource(s)")
	e.run("", "get", "ippools", "-o", "name").ok(t)
	e.run("", "delete", "tier", "default").fails(t).stderrHas(t, "the default tier cannot be deleted")
}

func TestIntegrationExternalEtcdTLS(t *testing.T) {
	srv := etcdtest.External(t, true)
	dir := t.TempDir()
	cfg := writeFile(t, dir, "calicoctl.cfg", `apiVersion: projectcalico.org/v3
kind: CalicoAPIConfig
metadata: {}
spec:
  datastoreType: etcdv3
  etcdEndpoints: `+srv.Endpoint+`
  etcdCACertFile: `+srv.PKI.CA+`
  etcdCertFile: `+srv.PKI.ClientCert+`
  etcdKeyFile: `+srv.PKI.ClientKey+`
`)
	// The file wins over an environment that points elsewhere.
	e := realEnv(t, map[string]string{"ETCD_ENDPOINTS": "http://127.0.0.1:1"})
	e.run(pool1, "-c", cfg, "create", "-f", "-").ok(t).stdoutHas(t, "Successfully created 1 'IPPool' resource(s)")
	e.run("", "get", "ippool", "-c", cfg).ok(t).stdoutHas(t, "pool1")

	// The same through the environment, with the CALICO_ prefix.
	e = realEnv(t, map[string]string{
		"CALICO_ETCD_ENDPOINTS":     srv.Endpoint,
		"CALICO_ETCD_CA_CERT_FILE":  srv.PKI.CA,
		"CALICO_ETCD_CERT_FILE":     srv.PKI.ClientCert,
		"CALICO_ETCD_KEY_FILE":      srv.PKI.ClientKey,
		"CALICO_DATASTORE_TYPE":     "etcdv3",
		"ETCD_ENDPOINTS":            "http://127.0.0.1:1",
		"DATASTORE_TYPE":            "kubernetes",
		"K8S_API_ENDPOINT":          "https://127.0.0.1:1",
		"CALICO_K8S_API_ENDPOINT":   "",
		"CALICO_ETCD_DISCOVERY_SRV": "",
	})
	e.run("", "get", "ippool", "pool1", "-o", "json").ok(t).stdoutHas(t, `"cidr": "10.1.0.0/16"`)

	// Without the client certificate the server refuses: a clear error.
	e = realEnv(t, map[string]string{"ETCD_ENDPOINTS": srv.Endpoint, "ETCD_CA_CERT_FILE": srv.PKI.CA})
	e.run("", "get", "ippools").fails(t).stderrHas(t, "Failed to connect to the datastore")
}

// TestIntegrationBinary builds the real calicoctl once and runs it as a user
// would, against an embedded etcd.
func TestIntegrationBinary(t *testing.T) {
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goBin); err != nil {
		goBin = etcdtest.RequireBinary(t, "go", "golang-go")
	}
	bin := filepath.Join(t.TempDir(), "calicoctl")
	build := exec.Command(goBin, "build", "-o", bin,
		"-ldflags", "-X github.com/calico-go/calico/internal/buildinfo.Version=v0.0.0-test -X github.com/calico-go/calico/internal/buildinfo.GitCommit=cafe",
		"github.com/calico-go/calico/cmd/calicoctl")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	endpoints := etcdtest.Embedded(t)
	run := func(stdin string, args ...string) (string, string, int) {
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), "ETCD_ENDPOINTS="+strings.Join(endpoints, ","), "DATASTORE_TYPE=etcdv3")
		cmd.Stdin = strings.NewReader(stdin)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return out.String(), errb.String(), code
	}
	out, _, code := run("", "version", "--client")
	if code != 0 || !strings.Contains(out, "Client Version:    v0.0.0-test") || !strings.Contains(out, "Git commit:        cafe") {
		t.Errorf("version: %d %q", code, out)
	}
	out, errOut, code := run(yamlDocs(pool1, gnpAllowDNS), "apply", "-f", "-")
	if code != 0 || out != "Successfully applied 2 resource(s)\n" {
		t.Errorf("apply: %d %q %q", code, out, errOut)
	}
	out, _, code = run("", "get", "gnp")
	if code != 0 || !strings.Contains(out, "allow-dns") {
		t.Errorf("get: %d %q", code, out)
	}
	out, errOut, code = run(badSelectorGNP, "create", "-f", "-")
	if code != 1 || out != "" || !strings.Contains(errOut, `document 1 (GlobalNetworkPolicy "deny-all"): spec.ingress[0].source.selector`) {
		t.Errorf("invalid create: %d %q %q", code, out, errOut)
	}
	_, errOut, code = run("", "delete", "ippool", "nope")
	if code != 1 || !strings.Contains(errOut, "resource does not exist: IPPool(nope)") || strings.Contains(errOut, "goroutine") {
		t.Errorf("delete missing: %d %q", code, errOut)
	}
}
