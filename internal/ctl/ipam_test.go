package ctl

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	v3 "github.com/calico-go/calico/api/v3"
	"github.com/calico-go/calico/internal/ipam"
	"github.com/calico-go/calico/internal/testutil/etcdtest"
	"github.com/calico-go/calico/pkg/client"
)

// ipamEnv is calicoctl against an embedded etcd, with an allocator on the
// same etcd to set the scene.
type ipamEnv struct {
	*testEnv
	c     *client.Client
	etcd  *clientv3.Client
	alloc *ipam.Allocator
}

func newIPAMEnv(t *testing.T) *ipamEnv {
	t.Helper()
	endpoints := etcdtest.Embedded(t)
	e := &ipamEnv{testEnv: realEnv(t, map[string]string{"ETCD_ENDPOINTS": strings.Join(endpoints, ",")})}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var err error
	e.c, err = client.New(ctx, client.Config{Spec: client.ConfigSpec{DatastoreType: client.EtcdV3, EtcdEndpoints: strings.Join(endpoints, ",")}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.c.Close() })
	e.etcd = e.c.Backend().(interface{ Client() *clientv3.Client }).Client()
	e.alloc, err = ipam.New(ipam.Options{Store: ipam.NewEtcdStore(e.etcd, 0), Resources: ipam.ClientResources(e.c)})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *ipamEnv) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	e.t.Cleanup(cancel)
	return ctx
}

func (e *ipamEnv) autoAssign(handle, node, pod string) netip.Addr {
	e.t.Helper()
	res, err := e.alloc.AutoAssign(e.ctx(), ipam.AutoAssignArgs{Num4: 1, HandleID: handle, Hostname: node,
		Attrs: ipam.Attrs{Pod: pod, Namespace: "shop"}})
	if err != nil {
		e.t.Fatal(err)
	}
	return res.IPv4[0].Addr()
}

const ipamPools = `apiVersion: projectcalico.org/v3
kind: IPPool
metadata:
  name: pool-a
spec:
  cidr: 10.70.0.0/24
  blockSize: 28
---
apiVersion: projectcalico.org/v3
kind: IPReservation
metadata:
  name: reserved
spec:
  reservedCIDRs: [10.70.0.240/28]
`

// TestIPAMShow: the usage, block, borrowed, address and configuration
// views.
func TestIPAMShow(t *testing.T) {
	e := newIPAMEnv(t)
	e.run(ipamPools, "apply", "-f", "-").ok(t)
	ip1 := e.autoAssign("net.c1", "node-a", "web-0")
	e.autoAssign("net.c2", "node-a", "web-1")
	e.autoAssign("net.c3", "node-b", "db-0")
	// node-b uses an address of node-a's block: borrowed.
	al, err := e.alloc.GetAssignmentAttributes(e.ctx(), ip1)
	if err != nil {
		t.Fatal(err)
	}
	blockA := al.Block
	borrowed := blockA.Addr().Next().Next().Next().Next().Next().Next().Next().Next().Next()
	if err := e.alloc.AssignIP(e.ctx(), ipam.AssignIPArgs{IP: borrowed, HandleID: "net.c4", Hostname: "node-b",
		Attrs: ipam.Attrs{Pod: "db-1", Namespace: "shop"}}); err != nil {
		t.Fatal(err)
	}

	r := e.run("", "ipam", "show").ok(t)
	want := `+----------+--------------+-----------+------------+--------------+-----------+
| GROUPING |     CIDR     | IPS TOTAL | IPS IN USE | IPS RESERVED | IPS FREE  |
+----------+--------------+-----------+------------+--------------+-----------+
| IP Pool  | 10.70.0.0/24 |       256 | 4 (2%)     | 16 (6%)      | 236 (92%) |
+----------+--------------+-----------+------------+--------------+-----------+
`
	if r.stdout != want {
		t.Errorf("ipam show:\n%s\nwant:\n%s", r.stdout, want)
	}
	blocks := e.run("", "ipam", "show", "--show-blocks").ok(t)
	if n := strings.Count(blocks.stdout, "| Block "); n != 2 {
		t.Errorf("want 2 block rows (node-a's and node-b's):\n%s", blocks.stdout)
	}
	blocks.stdoutHas(t, "| IP Pool  |", fmt.Sprintf("| Block    | %-13s |        16 | 3 (19%%)", blockA))
	e.run("", "ipam", "show", "--show-borrowed").ok(t).stdoutHas(t,
		"BORROWING-NODE", "BLOCK OWNER", "ALLOCATED-TO",
		fmt.Sprintf("| %s | node-b         | %s | node-a      | pod  | shop/db-1    |", borrowed, blockA))
	e.run("", "ipam", "show", "--ip="+ip1.String()).ok(t).stdoutHas(t,
		"IP "+ip1.String()+" is in use\n", "Handle ID: net.c1\n", "Attributes:\n", "  namespace: shop\n", "  node: node-a\n", "  pod: web-0\n")
	e.run("", "ipam", "show", "--ip=10.70.0.200").ok(t).stdoutHas(t, "10.70.0.200 is not assigned\n")
	e.run("", "ipam", "show", "--ip=banana").fails(t).stderrHas(t, `Invalid IP address "banana"`)
	e.run("", "ipam", "show", "--show-configuration").ok(t).stdoutHas(t,
		"|           PROPERTY           |  VALUE  |", "| StrictAffinity               | false   |", "| MaxBlocksPerHost             | 20      |",
		"| KubeVirtVMAddressPersistence | Enabled |")
	e.run("", "ipam").fails(t).stderrHas(t, "Calicoctl ipam needs a subcommand: check, configure, release, show, split")
	e.run("", "ipam", "frob").fails(t).stderrHas(t, `Unknown command "frob" for "calicoctl ipam"`)

	// The IPAM commands need the etcd datastore.
	fake := newTestEnv(t)
	fake.run("", "ipam", "show").fails(t).stderrHas(t, "needs the etcdv3 datastore")
}

// TestIPAMConfigure: ipam configure, ipam show --show-configuration,
// get/apply ipamconfiguration and the allocator all see one configuration.
func TestIPAMConfigure(t *testing.T) {
	e := newIPAMEnv(t)
	e.run("", "ipam", "configure", "--strictaffinity=true", "--max-blocks-per-host=4").ok(t).stdoutHas(t,
		"Successfully set StrictAffinity to: true\n", "Successfully set MaxBlocksPerHost to: 4\n")
	cfg, err := e.alloc.Config(e.ctx())
	if err != nil || !cfg.StrictAffinity || cfg.MaxBlocksPerHost != 4 {
		t.Fatalf("allocator sees %+v %v", cfg, err)
	}
	e.run("", "get", "ipamconfiguration", "default", "-o", "yaml").ok(t).stdoutHas(t, "strictAffinity: true", "maxBlocksPerHost: 4")
	apply := `apiVersion: projectcalico.org/v3
kind: IPAMConfiguration
metadata:
  name: default
  labels: {owner: net}
spec:
  strictAffinity: true
  maxBlocksPerHost: 4
  ipCooldownSeconds: 30
`
	e.run(apply, "apply", "-f", "-").ok(t)
	if cfg, _ := e.alloc.Config(e.ctx()); cfg.IPCooldownSeconds == nil || *cfg.IPCooldownSeconds != 30 {
		t.Errorf("allocator after apply: %+v", cfg)
	}
	e.run("", "ipam", "configure", "--kubevirt-ip-persistence=Disabled", "--ip-cooldown-seconds=60").ok(t).stdoutHas(t,
		"Successfully set IPCooldownSeconds to: 60", "Successfully set KubeVirtVMAddressPersistence to: Disabled")
	e.run("", "ipam", "show", "--show-configuration").ok(t).stdoutHas(t,
		"| StrictAffinity               | true     |", "| MaxBlocksPerHost             | 4        |",
		"| IPCooldownSeconds            | 60       |", "| KubeVirtVMAddressPersistence | Disabled |")
	// configure kept the labels apply set.
	e.run("", "get", "ipamconfiguration", "default", "-o", "yaml").ok(t).stdoutHas(t, "owner: net", "ipCooldownSeconds: 60")

	e.run("", "ipam", "configure", "--strictaffinity=false").fails(t).stderrHas(t, "maxBlocksPerHost", "strictAffinity")
	e.run("", "ipam", "configure").fails(t).stderrHas(t, "At least one configuration option must be specified")
	e.run("", "ipam", "configure", "--strictaffinity=maybe").fails(t).stderrHas(t, "Use true or false")
	e.run("", "ipam", "configure", "--ip-cooldown-seconds=5000").fails(t).stderrHas(t, "0 to 1200")
	e.run("", "ipam", "configure", "--kubevirt-ip-persistence=sometimes").fails(t).stderrHas(t, "Use Enabled or Disabled")
}

// TestIPAMCheckRelease: check finds a leak made by deleting a handle key,
// release --from-report repairs it once the datastore is locked, and
// release --ip frees one address.
func TestIPAMCheckRelease(t *testing.T) {
	e := newIPAMEnv(t)
	e.run(ipamPools, "apply", "-f", "-").ok(t)
	ip1 := e.autoAssign("net.c1", "node-a", "web-0")
	ip2 := e.autoAssign("net.c2", "node-a", "web-1")
	e.run("", "ipam", "check").ok(t).stdoutHas(t, "Checking IPAM for inconsistencies...", "Found 1 IPAM blocks.",
		"IPAM blocks record 2 allocations.", "Found 1 active IP pools.", "node-a has 2 allocations", "Check complete; found 0 problems.")

	// The leak: the handle of c2 disappears (a crash of an old writer).
	if _, err := e.etcd.Delete(e.ctx(), ipam.HandleKey("net.c2")); err != nil {
		t.Fatal(err)
	}
	e.run("", "ipam", "check", "--show-problem-ips").ok(t).stdoutHas(t,
		"  "+ip2.String()+" leaked; handle net.c2;", "Found 1 IPs that are allocated in IPAM but leaked.", "Check complete; found 1 problems.")

	dir := t.TempDir()
	report := filepath.Join(dir, "report.json")
	e.run("", "ipam", "check", "-o", report).ok(t).stdoutHas(t, "the datastore is not locked")
	e.run("", "ipam", "release", "--from-report="+report).fails(t).stderrHas(t, "Data store is not locked")

	e.run("", "datastore", "migrate", "lock").ok(t).stdoutHas(t, "Datastore locked.\n")
	ci, err := client.Get[*v3.ClusterInformation](e.ctx(), e.c, "", "default")
	if err != nil || ci.Spec.DatastoreReady == nil || *ci.Spec.DatastoreReady || ci.Spec.ClusterGUID == "" {
		t.Fatalf("ClusterInformation after lock: %+v %v", ci, err)
	}
	e.run("", "ipam", "check", "-o", report).ok(t)
	data, err := os.ReadFile(report)
	if err != nil || !strings.Contains(string(data), `"datastoreLocked": true`) || !strings.Contains(string(data), `"leaked"`) ||
		!strings.Contains(string(data), ip2.String()) {
		t.Fatalf("report: %s %v", data, err)
	}
	e.run("", "ipam", "release", "--from-report="+report, "--from-report="+report).ok(t).stdoutHas(t,
		"Releasing 1 leaked IPs", "Released 1 IPs;", "You may now unlock the data store.")
	e.run("", "ipam", "check").ok(t).stdoutHas(t, "IPAM blocks record 1 allocations.", "Check complete; found 0 problems.")
	// The same report again: nothing left to do, the change is skipped.
	e.run("", "ipam", "release", "--from-report="+report).ok(t).stdoutHas(t,
		"1 addresses marked as leaked in the report had already been cleaned up.", "Released 0 IPs;")
	// A report of another cluster is refused, --force or not.
	other := strings.Replace(string(data), `"clusterGUID": "`, `"clusterGUID": "x`, 1)
	otherFile := filepath.Join(dir, "other.json")
	if err := os.WriteFile(otherFile, []byte(other), 0o644); err != nil {
		t.Fatal(err)
	}
	e.run("", "ipam", "release", "--from-report="+otherFile, "--force").fails(t).stderrHas(t, "mismatched cluster GUID")

	e.run("", "datastore", "migrate", "unlock").ok(t).stdoutHas(t, "Datastore unlocked.\n")
	e.run("", "ipam", "check", "-o", report).ok(t)
	e.run("", "ipam", "release", "--from-report="+report).fails(t).stderrHas(t, "Data store is not locked", "--force")
	e.run("", "ipam", "release", "--from-report="+report, "--force").ok(t).stdoutHas(t, "WARNING: Data store is not locked")
	stale := filepath.Join(dir, "stale.json")
	e.run("", "ipam", "check", "-o", stale).ok(t)
	e.run("", "datastore", "migrate", "lock").ok(t)
	e.run("", "ipam", "release", "--from-report="+stale).fails(t).stderrHas(t, "reports are all stale")
	e.run("", "datastore", "migrate", "unlock").ok(t)

	e.run("", "ipam", "release", "--ip="+ip1.String()).ok(t).stdoutHas(t, "Successfully released IP address "+ip1.String()+"\n")
	e.run("", "ipam", "release", "--ip="+ip1.String()).fails(t).stderrHas(t, "IP address "+ip1.String()+" is not assigned")
	e.run("", "ipam", "release").fails(t).stderrHas(t, "needs --ip=IP or --from-report=FILE")
	e.run("", "ipam", "release", "--from-report="+filepath.Join(dir, "missing.json")).fails(t).stderrHas(t, "Failed to read the report")
	e.run("", "ipam", "check").ok(t).stdoutHas(t, "IPAM blocks record 0 allocations.", "found 0 problems.")
}

// TestIPAMSplit: split needs the lock and a power of 2, keeps whole
// blocks, and replaces the pool by split-<name>-<i> with the same
// settings; allocations stay valid.
func TestIPAMSplit(t *testing.T) {
	e := newIPAMEnv(t)
	e.run(`apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: pool-a}
spec: {cidr: 10.70.0.0/24, blockSize: 28, natOutgoing: true, vxlanMode: Always}
`, "apply", "-f", "-").ok(t)
	e.autoAssign("net.c1", "node-a", "web-0")
	e.run("", "ipam", "split", "2", "--cidr=10.70.0.0/24").fails(t).stderrHas(t, "Datastore is not locked", "calicoctl datastore migrate lock")
	e.run("", "datastore", "migrate", "lock").ok(t)
	e.run("", "ipam", "split", "3", "--name=pool-a").fails(t).stderrHas(t, "not a valid power of 2: 3")
	e.run("", "ipam", "split", "32", "--name=pool-a").fails(t).stderrHas(t, "each would be a /29, smaller than the pool's blocks (/28)", "at most 16")
	e.run("", "ipam", "split", "2", "--name=nope").fails(t).stderrHas(t, "Unable to find IP pool with name nope")
	e.run("", "ipam", "split", "2").fails(t).stderrHas(t, "No name or CIDR provided")
	e.run("", "ipam", "split", "two", "--name=pool-a").fails(t).stderrHas(t, "two is not a valid number")

	e.run("", "ipam", "split", "2", "--cidr=10.70.0.0/24").ok(t).stdoutHas(t,
		"IP pool pool-a was successfully split into 2 smaller pools.\n",
		"Created split-pool-a-0 with CIDR 10.70.0.0/25.\n", "Created split-pool-a-1 with CIDR 10.70.0.128/25.\n")
	r := e.run("", "get", "ippools", "-o", "wide").ok(t).stdoutHas(t, "split-pool-a-0", "10.70.0.0/25", "split-pool-a-1", "10.70.0.128/25", "Always")
	if strings.Contains(r.stdout, "pool-a ") || strings.Contains(r.stdout, "true ") && strings.Contains(r.stdout, "DISABLED") && strings.Count(r.stdout, "true") > 2 {
		t.Errorf("old pool left or new pools disabled:\n%s", r.stdout)
	}
	e.run("", "ipam", "check").ok(t).stdoutHas(t, "Found 2 active IP pools.", "found 0 problems.")
	e.run("", "ipam", "show").ok(t).stdoutHas(t, "| IP Pool  | 10.70.0.0/25   |       128 | 1 (1%)")

	// A block bigger than the new pools (left from an older pool with
	// larger blocks) cannot be split.
	e.run(`apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: big-blocks}
spec: {cidr: 10.80.0.0/24, blockSize: 26}
`, "apply", "-f", "-").ok(t)
	e.autoAssign("net.big", "node-z", "big-0")
	e.run("", "delete", "ippool", "big-blocks").ok(t)
	e.run(`apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: small-blocks}
spec: {cidr: 10.80.0.0/24, blockSize: 28}
`, "apply", "-f", "-").ok(t)
	e.run("", "ipam", "split", "8", "--name=small-blocks").fails(t).stderrHas(t, "Cannot split: block 10.80.0.", "/26 (1 addresses in use) would span more than one of the new pools")
	if p, err := client.Get[*v3.IPPool](e.ctx(), e.c, "", "small-blocks"); err != nil || p.Spec.Disabled {
		t.Errorf("the refused split changed the pool: %+v %v", p, err)
	}
	e.run("", "datastore", "migrate", "unlock").ok(t)
}

func TestDatastoreMigrateLock(t *testing.T) {
	e := newIPAMEnv(t)
	e.run("", "datastore", "migrate", "unlock").ok(t).stdoutHas(t, "Datastore unlocked.")
	e.run("", "datastore", "migrate", "lock").ok(t).stdoutHas(t, "Datastore locked.")
	ci, err := client.Get[*v3.ClusterInformation](e.ctx(), e.c, "", "default")
	if err != nil || ci.Spec.DatastoreReady == nil || *ci.Spec.DatastoreReady {
		t.Fatalf("after lock: %+v %v", ci, err)
	}
	guid := ci.Spec.ClusterGUID
	e.run("", "datastore", "migrate", "unlock").ok(t)
	ci, _ = client.Get[*v3.ClusterInformation](e.ctx(), e.c, "", "default")
	if ci.Spec.DatastoreReady == nil || !*ci.Spec.DatastoreReady || ci.Spec.ClusterGUID != guid {
		t.Errorf("after unlock: %+v", ci.Spec)
	}
	e.run("", "datastore").fails(t).stderrHas(t, "needs a subcommand: migrate")
	e.run("", "datastore", "migrate").fails(t).stderrHas(t, "needs a subcommand: lock, unlock")
	e.run("", "datastore", "migrate", "lock", "extra").fails(t)
}
