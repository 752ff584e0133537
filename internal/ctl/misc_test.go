package ctl

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v3 "github.com/calico-go/calico/api/v3"
	"github.com/calico-go/calico/internal/datastore"
	"github.com/calico-go/calico/pkg/client"
)

func TestLabel(t *testing.T) {
	e := seeded(t)
	e.run("", "label", "ippool", "pool1", "env=prod").ok(t).
		stdoutHas(t, "Successfully set label env=prod on IPPool(pool1)")
	if got := e.get(v3.KindIPPool, "", "pool1").GetLabels()["env"]; got != "prod" {
		t.Fatalf("label env=%q", got)
	}
	e.run("", "label", "ippool", "pool1", "env=dev").fails(t).
		stderrHas(t, `Failed to update label of IPPool(pool1): label "env" is already present with value "prod"; use --overwrite`)
	e.run("", "label", "ippool", "pool1", "env=prod").ok(t).stdoutHas(t, "already set")
	e.run("", "label", "ippool", "pool1", "env=dev", "--overwrite").ok(t)
	if got := e.get(v3.KindIPPool, "", "pool1").GetLabels()["env"]; got != "dev" {
		t.Fatalf("label env=%q after --overwrite", got)
	}
	e.run("", "label", "ippool", "pool1", "env", "--remove").ok(t).
		stdoutHas(t, "Successfully removed label env from IPPool(pool1)")
	if _, ok := e.get(v3.KindIPPool, "", "pool1").GetLabels()["env"]; ok {
		t.Fatal("label not removed")
	}
	e.run("", "label", "ippool", "pool1", "env", "--remove").fails(t).stderrHas(t, `label "env" does not exist`)
	// Namespaced, and errors.
	e.run("", "label", "wep", "node1-k8s-nginx-eth0", "-n", "shop", "app=web").ok(t).
		stdoutHas(t, "on WorkloadEndpoint(shop/node1-k8s-nginx-eth0)")
	e.run("", "label", "wep", "node1-k8s-nginx-eth0", "app=web").fails(t).
		stderrHas(t, "resource does not exist: WorkloadEndpoint(default/node1-k8s-nginx-eth0)")
	e.run("", "label", "ippool", "pool1", "bad key=x").fails(t).stderrHas(t, "metadata.labels")
	e.run("", "label", "ippool", "pool1", "env").fails(t).stderrHas(t, "expected KEY=VALUE")
	e.run("", "label", "ippool", "pool1", "env=x", "--remove").fails(t)
	e.run("", "label", "ippool", "pool1").fails(t)
}

func TestPatch(t *testing.T) {
	e := seeded(t)
	e.run("", "patch", "ippool", "pool1", "-p", `{"spec":{"disabled":true}}`).ok(t).
		stdoutHas(t, "Successfully patched 1 'IPPool' resource")
	p := e.get(v3.KindIPPool, "", "pool1").(*v3.IPPool)
	if !p.Spec.Disabled || !p.Spec.NATOutgoing {
		t.Fatalf("merge patch: %+v", p.Spec)
	}
	// YAML patch, merge type, null removes.
	e.run("", "patch", "ippool", "pool1", "-t", "merge", "-p", "spec: {disabled: null}").ok(t)
	if e.get(v3.KindIPPool, "", "pool1").(*v3.IPPool).Spec.Disabled {
		t.Error("null did not remove disabled")
	}
	// JSON patch.
	e.run("", "patch", "gnp", "allow-dns", "-t", "json", "-p", `[{"op":"replace","path":"/spec/order","value":5}]`).ok(t)
	if o := e.get(v3.KindGlobalNetworkPolicy, "", "allow-dns").(*v3.GlobalNetworkPolicy).Spec.Order; o == nil || *o != 5 {
		t.Errorf("json patch order=%v", o)
	}
	// Strategic merge: a note when lists are involved.
	r := e.run("", "patch", "ippool", "pool2", "-p", `{"spec":{"allowedUses":["Workload"]}}`).ok(t)
	r.stderrHas(t, "applied as JSON merge patches")
	r = e.run("", "patch", "ippool", "pool2", "-p", `{"spec":{"natOutgoing":true}}`).ok(t)
	if r.stderr != "" {
		t.Errorf("note without lists: %q", r.stderr)
	}
	// Namespaced.
	e.run("", "patch", "np", "backend", "-n", "shop", "-p", `{"spec":{"order":3}}`).ok(t)

	// Failures.
	e.run("", "patch", "ippool", "pool1", "-p", `{"spec":{"cidr":"10.3.0.0/16"}}`).fails(t).
		stderrHas(t, "Failed to patch 'IPPool' resource: spec.cidr: may not be changed")
	e.run("", "patch", "ippool", "pool1", "-p", `{"spec":{"bogus":1}}`).fails(t).stderrHas(t, `unknown field "spec.bogus"`)
	e.run("", "patch", "ippool", "pool1", "-p", `{"metadata":{"name":"other"}}`).fails(t).stderrHas(t, "must not change metadata.name")
	e.run("", "patch", "ippool", "pool1", "-p", `{"kind":"Tier"}`).fails(t)
	e.run("", "patch", "ippool", "nope", "-p", `{}`).fails(t).stderrHas(t, "resource does not exist: IPPool(nope)")
	e.run("", "patch", "ippool", "pool1", "-t", "json", "-p", `{"op":"x"}`).fails(t).stderrHas(t, "invalid JSON patch")
	e.run("", "patch", "ippool", "pool1", "-t", "json", "-p", `[{"op":"remove","path":"/spec/nothing"}]`).fails(t)
	e.run("", "patch", "ippool", "pool1", "-t", "xml", "-p", `{}`).fails(t).stderrHas(t, "Invalid patch type")
	e.run("", "patch", "ippool", "pool1").fails(t).stderrHas(t, "Missing -p")
	e.run("", "patch", "ippool", "pool1", "-p", "[1, 2").fails(t)

	// A stale resourceVersion in the patch is a conflict.
	e.run("", "patch", "ippool", "pool1", "-p", `{"metadata":{"resourceVersion":"1"}}`).fails(t).stderrHas(t, "update conflict")
}

func TestPatchRetriesOnConflict(t *testing.T) {
	e := seeded(t)
	// The first update conflicts (someone else wrote); the patch re-reads
	// and succeeds.
	failed := false
	e.be.InjectError(func(op string, k datastore.Key) error {
		if op == "update" && !failed {
			failed = true
			return &datastore.Error{Op: op, Key: k, Err: datastore.ErrConflict}
		}
		return nil
	})
	e.run("", "patch", "ippool", "pool1", "-p", `{"spec":{"disabled":true}}`).ok(t)
	e.run("", "label", "ippool", "pool1", "a=b").ok(t)
	if !failed {
		t.Error("injected conflict not hit")
	}
}

func TestVersion(t *testing.T) {
	e := newTestEnv(t)
	e.runner.Version, e.runner.GitCommit = "v3.30.1", "abc123"
	r := e.run("", "version", "--client").ok(t)
	if r.stdout != "Client Version:    v3.30.1\nGit commit:        abc123\n" {
		t.Errorf("version --client:\n%s", r.stdout)
	}
	e.run("", "version").fails(t).stdoutHas(t, "Client Version:").
		stderrHas(t, "Unable to retrieve Cluster Version or Type: resource does not exist: ClusterInformation(default)")

	ci := `apiVersion: projectcalico.org/v3
kind: ClusterInformation
metadata: {name: default}
spec: {calicoVersion: v3.30.0, clusterType: "k8s,bgp", datastoreReady: true}
`
	e.run(ci, "create", "-f", "-").ok(t)
	e.run("", "version").ok(t).stdoutHas(t, "Client Version:    v3.30.1\nGit commit:        abc123\nCluster Version:   v3.30.0\nCluster Type:      k8s,bgp\n")

	// A cluster of another minor version is refused unless allowed.
	e.run(strings.Replace(ci, "v3.30.0", "v3.29.2", 1), "apply", "--allow-version-mismatch", "-f", "-").ok(t)
	e.run("", "get", "ippools").fails(t).stderrHas(t, "Version mismatch", "Client Version:   v3.30.1", "Cluster Version:  v3.29.2", "--allow-version-mismatch")
	e.run("", "get", "ippools", "--allow-version-mismatch").ok(t)
	e.run("", "version").ok(t).stdoutHas(t, "Cluster Version:   v3.29.2")
	// Unstamped builds do not check.
	e.runner.Version = ""
	e.run("", "get", "ippools").ok(t)
}

func TestCompletion(t *testing.T) {
	e := newTestEnv(t)
	for shell, want := range map[string]string{"bash": "bash completion V2 for calicoctl", "zsh": "#compdef calicoctl", "fish": "complete -c calicoctl", "powershell": "Register-ArgumentCompleter"} {
		e.run("", "completion", shell).ok(t).stdoutHas(t, want)
	}
	e.run("", "completion", "tcsh").fails(t)
	e.run("", "completion").fails(t)
	// Kind names complete.
	e.run("", "__complete", "get", "ippo").ok(t).stdoutHas(t, "ippools\n", "ippool\n")
}

func TestConfigSources(t *testing.T) {
	dir := t.TempDir()
	cfgFile := writeFile(t, dir, "calicoctl.cfg", `apiVersion: projectcalico.org/v3
kind: CalicoAPIConfig
metadata: {}
spec:
  datastoreType: etcdv3
  etcdEndpoints: https://10.0.0.1:2379,https://10.0.0.2:2379
  etcdCACertFile: /ca.pem
`)
	e := newTestEnv(t)
	e.env["ETCD_ENDPOINTS"] = "http://env:2379"
	e.env["CALICO_ETCD_CERT_FILE"] = "/cert.pem"
	e.env["ETCD_CERT_FILE"] = "/other.pem"

	// The file wins over the environment when it exists.
	e.run("", "-c", cfgFile, "get", "ippools").ok(t)
	last := e.configs[len(e.configs)-1].Spec
	if last.EtcdEndpoints != "https://10.0.0.1:2379,https://10.0.0.2:2379" || last.EtcdCACertFile != "/ca.pem" || last.EtcdCertFile != "" {
		t.Errorf("file config: %+v", last)
	}
	// No file at the default path: the environment, CALICO_ prefix first.
	e.run("", "get", "ippools", "--config", client.DefaultConfigPath).ok(t)
	last = e.configs[len(e.configs)-1].Spec
	if last.EtcdEndpoints != "http://env:2379" || last.EtcdCertFile != "/cert.pem" || last.DatastoreType != client.EtcdV3 {
		t.Errorf("env config: %+v", last)
	}
	// An explicit missing file is an error.
	e.run("", "get", "ippools", "-c", filepath.Join(dir, "nope.cfg")).fails(t).stderrHas(t, "nope.cfg does not exist")
	// A broken file is an error.
	broken := writeFile(t, dir, "broken.cfg", "apiVersion: projectcalico.org/v3\nkind: CalicoAPIConfig\nspec:\n  etcdEndpoint: x\n")
	e.run("", "get", "ippools", "-c", broken).fails(t).stderrHas(t, `unknown field "etcdEndpoint"`)
	// Nothing configured: etcdv3 on localhost.
	e.env = map[string]string{}
	e.run("", "get", "ippools").ok(t)
	last = e.configs[len(e.configs)-1].Spec
	if last.DatastoreType != client.EtcdV3 || last.EtcdEndpoints != client.DefaultEtcdEndpoint {
		t.Errorf("default config: %+v", last)
	}
	// The real client refuses kubernetes with a clear message.
	e.runner.NewClient = nil
	e.env["DATASTORE_TYPE"] = "kubernetes"
	e.run("", "get", "ippools").fails(t).stderrHas(t, `datastoreType "kubernetes" is not supported yet`)
}

func TestConnectFailure(t *testing.T) {
	e := newTestEnv(t)
	e.runner.NewClient = func(context.Context, client.Config) (*client.Client, error) {
		return nil, fmt.Errorf("%w: etcd at http://127.0.0.1:1 did not answer", client.ErrUnavailable)
	}
	e.run(pool1, "apply", "-f", "-").fails(t).stderrHas(t, "Failed to connect to the datastore: datastore unavailable")
	e.run("", "get", "ippools").fails(t).stderrHas(t, "Failed to connect to the datastore")
	e.run("", "version").fails(t).stdoutHas(t, "Client Version:").stderrHas(t, "Unable to retrieve Cluster Version")
	if !errors.Is(client.ErrUnavailable, datastore.ErrUnavailable) {
		t.Fatal("sentinels differ")
	}
}

func TestSplitDocuments(t *testing.T) {
	cases := []struct {
		in   string
		want int
	}{
		{"", 0},
		{"# only a comment\n", 0},
		{"---\na: 1\n---\n\n---\nb: 2\n...\n", 2},
		{"a: 1\n--- # next\nb: 2\n", 2},
		{"a: '---'\nb: |\n  ---x\n", 1},
		{`{"a":1} {"b":2}`, 2},
		{`[{"a":1},{"b":2}]`, 1},
	}
	for _, tc := range cases {
		got, err := splitDocuments([]byte(tc.in))
		if err != nil || len(got) != tc.want {
			t.Errorf("splitDocuments(%q) = %d docs, %v; want %d", tc.in, len(got), err, tc.want)
		}
	}
	if _, err := splitDocuments([]byte(`{"a":`)); err == nil {
		t.Error("truncated JSON accepted")
	}
}

func TestVersionPoll(t *testing.T) {
	e := newTestEnv(t)
	e.run("apiVersion: projectcalico.org/v3\nkind: ClusterInformation\nmetadata: {name: default}\nspec: {calicoVersion: v1.2.3}\n", "create", "-f", "-").ok(t)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	var out, errb bytes.Buffer
	code := e.runner.Run(ctx, []string{"version", "--poll", "20ms"}, strings.NewReader(""), &out, &errb)
	if code != 0 || strings.Count(out.String(), "Cluster Version:   v1.2.3") != 1 {
		t.Errorf("poll: %d %q %q", code, out.String(), errb.String())
	}
}
