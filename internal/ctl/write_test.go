package ctl

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	v3 "github.com/calico-go/calico/api/v3"
	"github.com/calico-go/calico/internal/datastore"
)

func TestCreate(t *testing.T) {
	e := newTestEnv(t)
	e.run(pool1, "create", "-f", "-").ok(t).stdoutHas(t, "Successfully created 1 'IPPool' resource(s)\n")
	p, ok := e.get(v3.KindIPPool, "", "pool1").(*v3.IPPool)
	if !ok {
		t.Fatal("pool1 not stored")
	}
	if !p.Spec.NATOutgoing || p.Spec.BlockSize == 0 {
		t.Errorf("stored pool not as given and defaulted: %+v", p.Spec)
	}

	r := e.run(pool1, "create", "-f", "-").fails(t)
	r.stderrHas(t, `Failed to create 'IPPool' resource: document 1 (IPPool "pool1"): resource already exists: IPPool(pool1)`)
	if r.stdout != "" {
		t.Errorf("stdout on failure: %q", r.stdout)
	}

	// --skip-exists: the existing one is skipped, the new one created.
	e.run(yamlDocs(pool1, pool2), "create", "--skip-exists", "-f", "-").ok(t).
		stdoutHas(t, "Successfully created 2 'IPPool' resource(s)")
	if e.get(v3.KindIPPool, "", "pool2") == nil {
		t.Error("pool2 not created")
	}
}

func TestCreateExistingWritesNothing(t *testing.T) {
	e := newTestEnv(t)
	e.run(pool1, "create", "-f", "-").ok(t)
	r := e.run(yamlDocs(pool2, pool1), "create", "-f", "-").fails(t)
	r.stderrHas(t, "Failed to create 'IPPool' resources: 1 of 2 resource(s) cannot be created, nothing was created",
		`document 2 (IPPool "pool1"): resource already exists`, "--skip-exists")
	if e.get(v3.KindIPPool, "", "pool2") != nil {
		t.Error("pool2 was created although the batch failed its checks")
	}
}

func TestInvalidDocumentWritesNothing(t *testing.T) {
	e := newTestEnv(t)
	r := e.run(yamlDocs(pool1, badSelectorGNP, pool2), "apply", "-f", "-").fails(t)
	r.stderrHas(t, "Failed to apply resources: 1 invalid resource(s), nothing was applied",
		`document 2 (GlobalNetworkPolicy "deny-all"): spec.ingress[0].source.selector: `)
	if n := e.count(v3.KindIPPool); n != 0 {
		t.Errorf("%d pools written from a file with an invalid document", n)
	}
	if r.stdout != "" {
		t.Errorf("stdout: %q", r.stdout)
	}
}

func TestDecodeErrors(t *testing.T) {
	cases := []struct {
		name, input, want string
	}{
		{"unknown field", strings.Replace(pool1, "natOutgoing", "natOutgoin", 1), `document 1 (IPPool "pool1"): `},
		{"wrong apiVersion", strings.Replace(pool1, "projectcalico.org/v3", "projectcalico.org/v2", 1), `apiVersion "projectcalico.org/v2"`},
		{"unknown kind", strings.Replace(pool1, "kind: IPPool", "kind: IPPoolz", 1), `unknown kind "IPPoolz"`},
		{"not YAML", "a: [b\n", "document 1: invalid YAML"},
		{"scalar", "hello\n", "document 1: not a resource"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newTestEnv(t)
			r := e.run(yamlDocs(pool2, tc.input), "create", "-f", "-").fails(t)
			r.stderrHas(t, "nothing was created", strings.ReplaceAll(tc.want, "document 1", "document 2"))
			if e.count(v3.KindIPPool) != 0 {
				t.Error("something was written")
			}
		})
	}
	e := newTestEnv(t)
	e.run(strings.Replace(pool1, "natOutgoing", "natOutgoin", 1), "create", "-f", "-").fails(t).
		stderrHas(t, "natOutgoin")
}

func TestApplyCreatesThenUpdates(t *testing.T) {
	e := newTestEnv(t)
	in := yamlDocs(pool1, gnpAllowDNS, npBackend)
	e.run(in, "apply", "-f", "-").ok(t).stdoutHas(t, "Successfully applied 3 resource(s)\n")
	if e.get(v3.KindTier, "", "default") == nil {
		t.Error("default tier not created for a policy in it")
	}
	changed := strings.Replace(in, "10.1.0.0/16", "10.1.0.0/16\n  disabled: true", 1)
	e.run(changed, "apply", "-f", "-").ok(t).stdoutHas(t, "Successfully applied 3 resource(s)")
	if p := e.get(v3.KindIPPool, "", "pool1").(*v3.IPPool); !p.Spec.Disabled {
		t.Error("apply did not update pool1")
	}
	// An immutable field.
	e.run(strings.Replace(pool1, "10.1.0.0/16", "10.9.0.0/16", 1), "apply", "-f", "-").fails(t).
		stderrHas(t, `document 1 (IPPool "pool1"): spec.cidr: may not be changed`)
}

func TestReplace(t *testing.T) {
	e := newTestEnv(t)
	e.run(pool1, "replace", "-f", "-").fails(t).
		stderrHas(t, "Failed to replace 'IPPool' resource: document 1 (IPPool \"pool1\"): resource does not exist: IPPool(pool1)")
	e.run(pool1, "create", "-f", "-").ok(t)
	e.run(strings.Replace(pool1, "natOutgoing: true", "natOutgoing: false", 1), "replace", "-f", "-").ok(t).
		stdoutHas(t, "Successfully replaced 1 'IPPool' resource(s)")
	cur := e.get(v3.KindIPPool, "", "pool1")
	if cur.(*v3.IPPool).Spec.NATOutgoing {
		t.Error("replace did not change natOutgoing")
	}

	// Stale resourceVersion: conflict, nothing written.
	stale := strings.Replace(pool1, "name: pool1", "name: pool1\n  resourceVersion: \"1\"", 1)
	e.run(stale, "replace", "-f", "-").fails(t).stderrHas(t, "update conflict", "IPPool(pool1)")
	// The current resourceVersion works.
	fresh := strings.Replace(pool1, "name: pool1", fmt.Sprintf("name: pool1\n  resourceVersion: %q", cur.GetResourceVersion()), 1)
	e.run(fresh, "replace", "-f", "-").ok(t)
}

func TestDeleteByName(t *testing.T) {
	e := newTestEnv(t)
	e.run(yamlDocs(pool1, pool2), "create", "-f", "-").ok(t)
	e.run("", "delete", "ippool", "pool1", "nope").fails(t).
		stderrHas(t, "Failed to delete 'IPPool' resources: 1 of 2 resource(s) cannot be deleted, nothing was deleted",
			"resource does not exist: IPPool(nope)", "--skip-not-exists")
	if e.get(v3.KindIPPool, "", "pool1") == nil {
		t.Fatal("pool1 deleted although the batch failed")
	}
	e.run("", "delete", "pools", "pool1", "nope", "-s").ok(t).stdoutHas(t, "Successfully deleted 2 'IPPool' resource(s)")
	e.run("", "delete", "ipp", "pool2").ok(t).stdoutHas(t, "Successfully deleted 1 'IPPool' resource(s)")
	if e.count(v3.KindIPPool) != 0 {
		t.Error("pools left")
	}
	e.run("", "delete", "ippool", "pool2").fails(t).
		stderrHas(t, "Failed to delete 'IPPool' resource: resource does not exist: IPPool(pool2)")
	e.run("", "delete", "ippool").fails(t).stderrHas(t, "NAME")
	e.run("", "delete", "bogus", "x").fails(t).stderrHas(t, `Resource type "bogus" is not supported`)
}

func TestDeleteFromFileAndNamespaces(t *testing.T) {
	e := newTestEnv(t)
	e.run(npBackend, "create", "-f", "-").ok(t)
	if e.get(v3.KindNetworkPolicy, "shop", "backend") == nil {
		t.Fatal("policy not in namespace shop")
	}
	// -n that contradicts the document.
	e.run(npBackend, "apply", "-f", "-", "-n", "other").fails(t).stderrHas(t, `does not match --namespace "other"`)
	// A namespaced kind without a namespace goes to -n, or to "default".
	noNS := strings.Replace(npBackend, "  namespace: shop\n", "", 1)
	e.run(noNS, "create", "-f", "-", "-n", "prod").ok(t)
	e.run(noNS, "create", "-f", "-").ok(t)
	if e.get(v3.KindNetworkPolicy, "prod", "backend") == nil || e.get(v3.KindNetworkPolicy, "default", "backend") == nil {
		t.Fatal("namespace defaulting failed")
	}
	e.run("", "delete", "networkpolicy", "backend", "-n", "prod").ok(t)
	e.run(npBackend, "delete", "-f", "-").ok(t).stdoutHas(t, "Successfully deleted 1 'NetworkPolicy' resource(s)")
	if e.get(v3.KindNetworkPolicy, "shop", "backend") != nil {
		t.Error("delete -f left the policy")
	}
}

func TestTiers(t *testing.T) {
	e := newTestEnv(t)
	inTier := strings.Replace(gnpAllowDNS, "  order: 10\n", "  tier: security\n  order: 10\n", 1)
	e.run(inTier, "create", "-f", "-").fails(t).stderrHas(t, `tier "security", which does not exist`)
	tier := "apiVersion: projectcalico.org/v3\nkind: Tier\nmetadata:\n  name: security\nspec:\n  order: 100\n"
	// A tier earlier in the same file counts.
	e.run(yamlDocs(tier, inTier), "create", "-f", "-").ok(t).stdoutHas(t, "Successfully created 2 resource(s)")
	// A tier that still holds policies cannot be deleted alone...
	e.run("", "delete", "tier", "security").fails(t).stderrHas(t, "still has 1 policies")
	// ...but together with its policies it can, whatever the file order.
	e.run(yamlDocs(tier, inTier), "delete", "-f", "-").ok(t).stdoutHas(t, "Successfully deleted 2 resource(s)")
	e.run(gnpAllowDNS, "create", "-f", "-").ok(t)
	e.run("", "delete", "tier", "default").fails(t).stderrHas(t, "the default tier cannot be deleted")
}

func TestPoolOverlap(t *testing.T) {
	e := newTestEnv(t)
	e.run(pool1, "create", "-f", "-").ok(t)
	overlap := strings.NewReplacer("pool1", "pool3", "10.1.0.0/16", "10.1.128.0/17").Replace(pool1)
	e.run(overlap, "create", "-f", "-").fails(t).stderrHas(t, `spec.cidr: 10.1.128.0/17 overlaps with IPPool "pool1"`)
	// Within one file too.
	e.run(yamlDocs(pool2, strings.Replace(overlap, "10.1.128.0/17", "10.2.0.0/24", 1)), "apply", "-f", "-").fails(t).
		stderrHas(t, `overlaps with IPPool "pool2"`)
	if e.get(v3.KindIPPool, "", "pool2") != nil {
		t.Error("pool2 written")
	}
}

func TestPartialFailure(t *testing.T) {
	e := newTestEnv(t)
	e.be.InjectError(func(op string, k datastore.Key) error {
		if op == "create" && k.Name == "pool2" {
			return &datastore.Error{Op: op, Key: k, Err: datastore.ErrUnavailable, Detail: "injected"}
		}
		return nil
	})
	r := e.run(yamlDocs(pool1, pool2), "create", "-f", "-").fails(t)
	r.stdoutHas(t, "Partial success: created the first 1 out of 2 'IPPool' resources:")
	r.stderrHas(t, "Hit error: document 2 (IPPool \"pool2\"): datastore unavailable")
	e.be.InjectError(nil)
	if e.get(v3.KindIPPool, "", "pool1") == nil {
		t.Error("pool1 not written")
	}
	// First write fails: no partial success.
	e.be.InjectError(func(op string, k datastore.Key) error {
		if op == "update" {
			return errors.New("boom")
		}
		return nil
	})
	r = e.run(pool1, "apply", "-f", "-").fails(t)
	r.stderrHas(t, "Failed to apply 'IPPool' resource: document 1 (IPPool \"pool1\"): boom")
	if strings.Contains(r.stdout, "Partial") {
		t.Errorf("stdout: %q", r.stdout)
	}
}

func TestInputForms(t *testing.T) {
	dir := t.TempDir()
	jsonList := `{"apiVersion":"projectcalico.org/v3","kind":"IPPoolList","items":[
	  {"metadata":{"name":"a"},"spec":{"cidr":"10.10.0.0/16"}},
	  {"apiVersion":"projectcalico.org/v3","kind":"IPPool","metadata":{"name":"b"},"spec":{"cidr":"10.11.0.0/16"}}]}`
	jsonArray := `[{"apiVersion":"projectcalico.org/v3","kind":"IPPool","metadata":{"name":"c"},"spec":{"cidr":"10.12.0.0/16"}},
	  {"apiVersion":"projectcalico.org/v3","kind":"IPPool","metadata":{"name":"d"},"spec":{"cidr":"10.13.0.0/16"}}]`
	writeFile(t, dir, "list.json", jsonList)
	writeFile(t, dir, "array.json", jsonArray)
	writeFile(t, dir, "notes.txt", "ignored")
	writeFile(t, dir, "sub/deep.yaml", "# comment only\n---\n"+strings.NewReplacer("pool1", "e", "10.1.", "10.14.").Replace(pool1)+"...\n")

	e := newTestEnv(t)
	e.run("", "create", "-f", dir).ok(t).stdoutHas(t, "Successfully created 4 'IPPool' resource(s)")
	e.run("", "apply", "-f", dir, "-R").ok(t).stdoutHas(t, "Successfully applied 5 'IPPool' resource(s)")
	if e.count(v3.KindIPPool) != 5 {
		t.Errorf("%d pools", e.count(v3.KindIPPool))
	}
	// An invalid document in a directory names its file.
	writeFile(t, dir, "sub/zz.yaml", strings.Replace(pool2, "10.2.0.0/16", "10.2.0.1/16", 1))
	e.run("", "apply", "-f", dir, "-R").fails(t).stderrHas(t, filepath.Join(dir, "sub/zz.yaml")+`: document 1 (IPPool "pool2"): spec.cidr`)

	// Empty input.
	empty := writeFile(t, dir, "empty/e.yaml", "# nothing\n")
	e.run("", "create", "-f", empty).fails(t).stderrHas(t, "No resources in file", "--skip-empty")
	e.run("", "create", "-f", empty, "--skip-empty").ok(t)
	e.run("", "create", "-f", filepath.Join(dir, "missing.yaml")).fails(t).stderrHas(t, "does not exist")
	e.run("", "create").fails(t).stderrHas(t, "Missing -f")
}

func TestValidateCommand(t *testing.T) {
	e := newTestEnv(t)
	e.run(yamlDocs(pool1, pool2), "validate", "-f", "-").ok(t).stdoutHas(t, "Successfully validated 2 'IPPool' resource(s)")
	r := e.run(yamlDocs(pool1, badSelectorGNP, "kind: Nope\napiVersion: projectcalico.org/v3\n"), "validate", "-f", "-").fails(t)
	r.stderrHas(t, "Failed to validate resources: 2 of 3 resource(s) invalid",
		`document 2 (GlobalNetworkPolicy "deny-all"): spec.ingress[0].source.selector`,
		`document 3 (Nope): unknown kind "Nope"`)
	if len(e.configs) != 0 {
		t.Error("validate connected to the datastore")
	}
}

func TestUsageErrors(t *testing.T) {
	e := newTestEnv(t)
	e.run("", "frobnicate").fails(t).stderrHas(t, `Unknown command "frobnicate"`, "calicoctl --help")
	e.run("", "get", "--bogus").fails(t).stderrHas(t, "Unknown flag: --bogus")
	e.run("", "create", "extra", "-f", "-").fails(t).stderrHas(t, `Unexpected argument "extra"`)
	e.run("", "-l", "shouty", "version", "--client").fails(t).stderrHas(t, "Invalid log level")
	e.run("", "--help").ok(t).stdoutHas(t, "create", "apply", "replace", "delete", "get", "label", "patch", "validate", "version", "completion")
	e.run("", "--allow-version-mismatch", "--context", "x", "-l", "debug", "version", "--client").ok(t)
}

func TestPanicIsReported(t *testing.T) {
	e := newTestEnv(t)
	e.runner.NewClient = nil
	e.runner.LookupEnv = func(string) (string, bool) { panic("kaboom") }
	r := e.run("", "get", "ippools").fails(t)
	r.stderrHas(t, "Internal error: kaboom")
}
