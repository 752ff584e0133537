package ctl

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

const wep = `apiVersion: projectcalico.org/v3
kind: WorkloadEndpoint
metadata:
  name: node1-k8s-nginx-eth0
  namespace: shop
spec:
  orchestrator: k8s
  node: node1
  pod: nginx
  endpoint: eth0
  interfaceName: cali0ef24ba
  ipNetworks: [10.1.0.5/32]
  ipNATs: [{internalIP: 10.1.0.5, externalIP: 172.16.0.5}]
  profiles: [kns.shop]
`

func seeded(t *testing.T) *testEnv {
	t.Helper()
	e := newTestEnv(t)
	e.run(yamlDocs(pool1, pool2, gnpAllowDNS, npBackend, wep), "create", "-f", "-").ok(t)
	return e
}

// table splits a table into rows of fields.
func table(out string) [][]string {
	var rows [][]string
	for _, l := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		rows = append(rows, strings.Fields(l))
	}
	return rows
}

func TestGetTables(t *testing.T) {
	e := seeded(t)
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"get", "ippools"}, "NAME CIDR SELECTOR|pool1 10.1.0.0/16 all()|pool2 10.2.0.0/16 all()"},
		{[]string{"get", "ipp", "-o", "wide"}, "NAME CIDR NAT IPIPMODE VXLANMODE DISABLED DISABLEBGPEXPORT ASSIGNMENTMODE SELECTOR|" +
			"pool1 10.1.0.0/16 true Never Never false false Automatic all()|pool2 10.2.0.0/16 false Never Always false false Automatic all()"},
		{[]string{"get", "IPPool", "pool2"}, "NAME CIDR SELECTOR|pool2 10.2.0.0/16 all()"},
		{[]string{"get", "gnp", "-o", "wide"}, "NAME TIER ORDER SELECTOR|allow-dns default 10 all()"},
		{[]string{"get", "networkpolicy"}, "NAME TIER"},
		{[]string{"get", "networkpolicy", "-n", "shop"}, "NAME TIER|backend default"},
		{[]string{"get", "policy", "-A"}, "NAMESPACE NAME TIER|shop backend default"},
		{[]string{"get", "policies", "-a", "-o", "wide"}, "NAMESPACE NAME TIER ORDER SELECTOR|shop backend default app == 'backend'"},
		{[]string{"get", "wep", "-n", "shop"}, "WORKLOAD NODE NETWORKS INTERFACE|nginx node1 10.1.0.5/32 cali0ef24ba"},
		{[]string{"get", "workloadendpoints", "-A", "-o", "wide"}, "NAMESPACE NAME WORKLOAD NODE NETWORKS INTERFACE PROFILES NATS|" +
			"shop node1-k8s-nginx-eth0 nginx node1 10.1.0.5/32 cali0ef24ba kns.shop 10.1.0.5->172.16.0.5"},
		{[]string{"get", "tiers"}, "NAME ORDER|default 1000000"},
		{[]string{"get", "ippool", "-o", "custom-columns=NAME:.metadata.name,VX:{.spec.vxlanMode},USES:.spec.allowedUses,FIRST:.spec.allowedUses[0],X:.spec.nope"},
			"NAME VX USES FIRST X|pool1 Never Workload,Tunnel Workload <none>|pool2 Always Workload,Tunnel Workload <none>"},
		{[]string{"get", "hostendpoints"}, "NAME NODE"},
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			r := e.run("", tc.args...).ok(t)
			var got []string
			for _, row := range table(r.stdout) {
				got = append(got, strings.Join(row, " "))
			}
			if g := strings.Join(got, "|"); g != tc.want {
				t.Errorf("got\n%s\nwant\n%s\nraw:\n%s", g, tc.want, r.stdout)
			}
		})
	}
}

func TestGetYAMLAndJSON(t *testing.T) {
	e := seeded(t)
	// One name: the object itself.
	r := e.run("", "get", "ippool", "pool1", "-o", "yaml").ok(t)
	var obj map[string]any
	if err := yaml.Unmarshal([]byte(r.stdout), &obj); err != nil {
		t.Fatal(err)
	}
	if obj["kind"] != "IPPool" || obj["apiVersion"] != "projectcalico.org/v3" {
		t.Errorf("single get -o yaml: %v", obj)
	}
	// A kind: its List, with the list revision.
	r = e.run("", "get", "ippool", "-o", "json").ok(t)
	var list struct {
		Kind     string
		Metadata struct{ ResourceVersion string }
		Items    []map[string]any
	}
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil {
		t.Fatal(err)
	}
	if list.Kind != "IPPoolList" || len(list.Items) != 2 || list.Metadata.ResourceVersion == "" {
		t.Errorf("get -o json list: %+v", list)
	}
	// Several names: a List too.
	r = e.run("", "get", "ippool", "pool1", "pool2", "-o", "yaml").ok(t)
	if !strings.Contains(r.stdout, "kind: IPPoolList") || strings.Count(r.stdout, "kind: IPPool\n") != 2 {
		t.Errorf("two names:\n%s", r.stdout)
	}
	// The output is accepted back: delete everything, apply the output.
	r = e.run("", "get", "ippool", "-o", "yaml", "--export").ok(t)
	if strings.Contains(r.stdout, "resourceVersion") || strings.Contains(r.stdout, "uid:") {
		t.Errorf("--export kept datastore fields:\n%s", r.stdout)
	}
	e.run(r.stdout, "delete", "-f", "-").ok(t).stdoutHas(t, "Successfully deleted 2 'IPPool' resource(s)")
	e.run(r.stdout, "create", "-f", "-").ok(t).stdoutHas(t, "Successfully created 2 'IPPool' resource(s)")
	r = e.run("", "get", "ippool", "-o", "json").ok(t)
	e.run(r.stdout, "apply", "-f", "-").ok(t).stdoutHas(t, "Successfully applied 2 'IPPool' resource(s)")
}

func TestGetFromFileMixedKinds(t *testing.T) {
	e := seeded(t)
	in := yamlDocs(pool1, gnpAllowDNS)
	r := e.run(in, "get", "-f", "-", "-o", "yaml").ok(t)
	if !strings.Contains(r.stdout, "kind: List\n") {
		t.Errorf("mixed kinds not a List:\n%s", r.stdout)
	}
	// A generic List is accepted back.
	e.run(r.stdout, "apply", "-f", "-").ok(t).stdoutHas(t, "Successfully applied 2 resource(s)")
	r = e.run(in, "get", "-f", "-").ok(t)
	r.stdoutHas(t, "NAME", "pool1", "allow-dns")
	if strings.Count(r.stdout, "NAME") != 2 {
		t.Errorf("want one table per kind:\n%s", r.stdout)
	}
}

func TestGetOtherFormats(t *testing.T) {
	e := seeded(t)
	e.run("", "get", "ippool", "-o", "name").ok(t).stdoutHas(t, "ippool/pool1\nippool/pool2\n")
	e.run("", "get", "ippool", "-o", `go-template={{range .items}}{{.metadata.name}}={{.spec.cidr}};{{end}}`).ok(t).
		stdoutHas(t, "pool1=10.1.0.0/16;pool2=10.2.0.0/16;")
	tpl := writeFile(t, t.TempDir(), "t.tmpl", `{{.spec.cidr}}`)
	r := e.run("", "get", "ippool", "pool2", "-o", "go-template-file="+tpl).ok(t)
	if r.stdout != "10.2.0.0/16" {
		t.Errorf("go-template-file: %q", r.stdout)
	}
	for _, bad := range []string{"xml", "go-template={{.x", "custom-columns=NAME", "custom-columns=N:spec", "go-template-file=" + filepath.Join(t.TempDir(), "none")} {
		e.run("", "get", "ippool", "-o", bad).fails(t)
	}
}

func TestGetErrors(t *testing.T) {
	e := seeded(t)
	r := e.run("", "get", "ippool", "pool1", "nope").fails(t)
	r.stdoutHas(t, "pool1").stderrHas(t, "Failed to get resources: resource does not exist: IPPool(nope)")
	r = e.run("", "get", "ippool", "nope", "-o", "yaml").fails(t)
	if r.stdout != "" {
		t.Errorf("stdout for a missing resource: %q", r.stdout)
	}
	e.run("", "get").fails(t).stderrHas(t, "Get needs a KIND", "ippool")
	e.run("", "get", "cats").fails(t).stderrHas(t, `Resource type "cats" is not supported`)
	e.run("", "get", "np", "backend", "-A").fails(t).stderrHas(t, "across all namespaces")
}
