package ipamplugin_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"

	v3 "github.com/calico-go/calico/api/v3"
	"github.com/calico-go/calico/internal/cni/ipamplugin"
	"github.com/calico-go/calico/internal/cni/netconf"
	"github.com/calico-go/calico/internal/ipam"
	"github.com/calico-go/calico/internal/testutil/etcdtest"
)

// TestAddCheckDel: ADD gives an address of the node's own block with the
// block's prefix length and the pod's attributes, a repeated ADD returns
// the same address, CHECK agrees with the result, DEL twice succeeds, and
// CHECK then fails.
func TestAddCheckDel(t *testing.T) {
	e := newEnv(t)
	e.pool("pool-a", "10.50.0.0/24", 28, nil)
	conf := e.conf(nil)
	podArgs := "IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME=web-0"

	res := e.mustAdd(conf, "c1", podArgs)
	got := addrs(res)
	if len(got) != 1 || got[0].Bits() != 28 || !netip.MustParsePrefix("10.50.0.0/24").Contains(got[0].Addr()) {
		t.Fatalf("ADD result %v, want one address of 10.50.0.0/24 with the block's /28", got)
	}
	ip := got[0].Addr()
	if h := e.blockHost(ip); h != e.node {
		t.Errorf("%s comes from a block of %q, want the node's own", ip, h)
	}
	al, err := e.alloc.GetAssignmentAttributes(ctxT(t), ip)
	if err != nil {
		t.Fatal(err)
	}
	if al.HandleID != "test-net.c1" || al.Attrs[ipam.AttrPod] != "web-0" || al.Attrs[ipam.AttrNamespace] != "shop" ||
		al.Attrs[ipam.AttrNode] != e.node || al.Attrs[ipam.AttrTimestamp] == "" {
		t.Errorf("allocation %+v", al)
	}
	// A runtime retry of the same ADD gets the same address.
	if again := addrs(e.mustAdd(conf, "c1", podArgs)); len(again) != 1 || again[0] != got[0] {
		t.Errorf("repeated ADD: %v, want %v", again, got)
	}
	second := addrs(e.mustAdd(conf, "c2", ""))
	if second[0].Addr() == ip {
		t.Fatalf("two containers got %s", ip)
	}
	e.assertClean(2)

	// CHECK with the previous result.
	prev, _ := json.Marshal(res)
	withPrev := e.conf(map[string]any{"prevResult": json.RawMessage(prev)})
	if err := e.run("CHECK", withPrev, "c1", podArgs); err != nil {
		t.Errorf("CHECK: %v", err)
	}
	if err := e.run("CHECK", withPrev, "c2", ""); err == nil {
		t.Error("CHECK of c2 against c1's result succeeded")
	} else {
		cniErr(t, "CHECK mismatch", err, ipamplugin.CodeCheckFailed, "previous result")
	}

	for i := range 2 {
		if err := e.run("DEL", conf, "c1", podArgs); err != nil {
			t.Fatalf("DEL #%d: %v", i+1, err)
		}
	}
	if err := e.run("CHECK", conf, "c1", podArgs); err == nil {
		t.Error("CHECK after DEL succeeded")
	} else {
		cniErr(t, "CHECK after DEL", err, ipamplugin.CodeCheckFailed, "owns no addresses", "test-net.c1")
	}
	// DEL without CNI_ARGS, and of a container never added.
	if err := e.run("DEL", conf, "c2", ""); err != nil {
		t.Fatal(err)
	}
	if err := e.run("DEL", conf, "never-added", ""); err != nil {
		t.Fatal(err)
	}
	e.assertClean(0)
}

// TestDelLegacyHandle: DEL also releases the "<namespace>.<pod>" handle
// older Calico releases used.
func TestDelLegacyHandle(t *testing.T) {
	e := newEnv(t)
	e.pool("pool-a", "10.51.0.0/24", 28, nil)
	if _, err := e.alloc.AutoAssign(ctxT(t), ipam.AutoAssignArgs{Num4: 1, HandleID: "shop.web-0", Hostname: e.node}); err != nil {
		t.Fatal(err)
	}
	if err := e.run("DEL", e.conf(nil), "c9", "K8S_POD_NAMESPACE=shop;K8S_POD_NAME=web-0"); err != nil {
		t.Fatal(err)
	}
	e.assertClean(0)
}

// TestVersions: every supported CNI version gets its own result format.
func TestVersions(t *testing.T) {
	e := newEnv(t)
	e.pool("pool-a", "10.52.0.0/24", 28, nil)
	for i, v := range []string{"0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"} {
		conf := e.conf(map[string]any{"cniVersion": v})
		id := "v" + strconv.Itoa(i)
		r, err := invoke.ExecPluginWithResult(ctxT(t), pluginBin(t), conf, cniArgs("ADD", id, ""), nil)
		if err != nil {
			t.Fatalf("ADD with %s: %v", v, err)
		}
		if r.Version() != v {
			t.Errorf("result version %s, want %s", r.Version(), v)
		}
		if _, err := types100.NewResultFromResult(r); err != nil {
			t.Errorf("%s result: %v", v, err)
		}
		if err := e.run("DEL", conf, id, ""); err != nil {
			t.Errorf("DEL with %s: %v", v, err)
		}
	}
	info, err := invoke.GetVersionInfo(ctxT(t), pluginBin(t), nil)
	if err != nil || len(info.SupportedVersions()) != 7 {
		t.Errorf("VERSION: %v %v", info, err)
	}
	e.assertClean(0)
}

// TestDualStack: assign_ipv6 gives one address per family; a v6 request
// without a v6 pool fails and leaves nothing allocated.
func TestDualStack(t *testing.T) {
	e := newEnv(t)
	e.pool("v4", "10.53.0.0/24", 28, nil)
	dual := e.conf(map[string]any{"ipam": map[string]any{"assign_ipv4": "true", "assign_ipv6": "true"}})
	_, err := e.add(dual, "d1", "")
	cniErr(t, "dual-stack without a v6 pool", err, ipamplugin.CodeNoPool, "IPv6", "create an enabled IPPool")
	e.assertClean(0)

	e.pool("v6", "fd00:53::/120", 124, nil)
	got := addrs(e.mustAdd(dual, "d1", ""))
	if len(got) != 2 || !got[0].Addr().Is4() || !got[1].Addr().Is6() || got[1].Bits() != 124 {
		t.Fatalf("dual-stack result %v", got)
	}
	v6only := e.conf(map[string]any{"ipam": map[string]any{"assign_ipv4": false, "assign_ipv6": true}})
	if got := addrs(e.mustAdd(v6only, "d2", "")); len(got) != 1 || !got[0].Addr().Is6() {
		t.Errorf("v6-only result %v", got)
	}
	e.assertClean(3)
}

// TestConcurrentAdds: 50 ADDs from 50 processes at once get distinct
// addresses of the node's blocks; after 50 DELs `ipam check` is clean.
func TestConcurrentAdds(t *testing.T) {
	const n = 50
	e := newEnv(t)
	e.pool("pool-a", "10.54.0.0/24", 28, nil)
	conf := e.conf(nil)
	pluginBin(t)
	var wg sync.WaitGroup
	results := make([]netip.Prefix, n)
	errs := make([]error, n)
	start := time.Now()
	for i := range n {
		wg.Go(func() {
			r, err := e.add(conf, fmt.Sprintf("c%02d", i), fmt.Sprintf("K8S_POD_NAMESPACE=ns;K8S_POD_NAME=pod-%d", i))
			if err == nil && len(r.IPs) == 1 {
				results[i] = addrs(r)[0]
			}
			errs[i] = err
		})
	}
	wg.Wait()
	t.Logf("%d concurrent ADDs took %s", n, time.Since(start).Round(time.Millisecond))
	seen := map[netip.Addr]int{}
	for i, err := range errs {
		if err != nil {
			t.Fatalf("ADD c%02d: %v", i, err)
		}
		if j, dup := seen[results[i].Addr()]; dup {
			t.Fatalf("c%02d and c%02d both got %s", i, j, results[i].Addr())
		}
		seen[results[i].Addr()] = i
		if h := e.blockHost(results[i].Addr()); h != e.node {
			t.Errorf("%s from a block of %q", results[i].Addr(), h)
		}
	}
	e.assertClean(n)
	start = time.Now()
	for i := range n {
		wg.Go(func() { errs[i] = e.run("DEL", conf, fmt.Sprintf("c%02d", i), "") })
	}
	wg.Wait()
	t.Logf("%d concurrent DELs took %s", n, time.Since(start).Round(time.Millisecond))
	for i, err := range errs {
		if err != nil {
			t.Errorf("DEL c%02d: %v", i, err)
		}
	}
	e.assertClean(0)
}

// TestExhaustedPool: when the pool is full ADD fails with a CNI error
// saying so, and nothing more is allocated.
func TestExhaustedPool(t *testing.T) {
	e := newEnv(t)
	e.pool("tiny", "10.55.0.0/30", 30, nil)
	conf := e.conf(nil)
	for i := range 4 {
		e.mustAdd(conf, fmt.Sprintf("c%d", i), "")
	}
	_, err := e.add(conf, "c4", "")
	cniErr(t, "ADD into a full pool", err, ipamplugin.CodePoolExhausted, "no free addresses", "add an IPPool", "calicoctl ipam check")
	if _, err := e.alloc.IPsByHandle(ctxT(t), "test-net.c4"); err == nil {
		t.Error("the failed ADD left a handle")
	}
	e.assertClean(4)
}

// TestBadRequests: malformed configurations and impossible requests are
// CNI errors with a code and a message naming what to fix; none allocates.
func TestBadRequests(t *testing.T) {
	e := newEnv(t)
	e.pool("pool-a", "10.56.0.0/24", 28, nil)
	e.pool("off", "10.57.0.0/24", 28, func(p *v3.IPPool) { p.Spec.Disabled = true })
	cases := []struct {
		name string
		conf []byte
		args string
		code uint
		subs []string
	}{
		{"not JSON", []byte(`{"cniVersion": "1.0.0", "name": `), "", types.ErrDecodingFailure, nil},
		{"assign_ipv4 not a boolean", e.conf(map[string]any{"ipam": map[string]any{"assign_ipv4": "yes"}}), "",
			types.ErrInvalidNetworkConfig, []string{"ipam.assign_ipv4", `"true" or "false"`}},
		{"nothing to assign", e.conf(map[string]any{"ipam": map[string]any{"assign_ipv4": "false"}}), "",
			types.ErrInvalidNetworkConfig, []string{"nothing to assign"}},
		{"kubernetes datastore", e.conf(map[string]any{"datastore_type": "kubernetes"}), "",
			types.ErrInvalidNetworkConfig, []string{"datastore_type", "etcdv3"}},
		{"wrong type", e.conf(map[string]any{"nodename": 5}), "",
			types.ErrInvalidNetworkConfig, []string{"nodename"}},
		{"unknown pool", e.conf(map[string]any{"ipam": map[string]any{"ipv4_pools": []string{"nope"}}}), "",
			types.ErrInvalidNetworkConfig, []string{"nope", "ipam.ipv4_pools"}},
		{"disabled pool", e.conf(map[string]any{"ipam": map[string]any{"ipv4_pools": []string{"off"}}}), "",
			ipamplugin.CodeNoPool, []string{"disabled"}},
		{"v6 CIDR in ipv4_pools", e.conf(map[string]any{"ipam": map[string]any{"ipv4_pools": []string{"fd00::/64"}}}), "",
			types.ErrInvalidNetworkConfig, []string{"ipam.ipv4_pools", "not an IPv4 CIDR"}},
		{"missing nodename file", e.conf(map[string]any{"nodename": "", "nodename_file": "/nonexistent/nodename"}), "",
			types.ErrInvalidNetworkConfig, []string{"/nonexistent/nodename", "nodename_file_optional"}},
		{"half a pod", e.conf(nil), "K8S_POD_NAME=web", types.ErrInvalidNetworkConfig, []string{"K8S_POD_NAMESPACE"}},
		{"IP outside pools", e.conf(nil), "IP=192.0.2.1", ipamplugin.CodeAddressNotInPool, []string{"192.0.2.1"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.add(tc.conf, "bad", tc.args)
			cniErr(t, tc.name, err, tc.code, tc.subs...)
		})
	}
	e.assertClean(0)

	// The error reaches the runtime as CNI error JSON on stdout.
	cmd := exec.Command(pluginBin(t))
	cmd.Env = append(os.Environ(), "CNI_COMMAND=ADD", "CNI_CONTAINERID=x", "CNI_NETNS=/var/run/netns/none", "CNI_IFNAME=eth0", "CNI_PATH=/opt/cni/bin")
	cmd.Stdin = bytes.NewReader(e.conf(map[string]any{"ipam": map[string]any{"assign_ipv4": "maybe"}}))
	var out bytes.Buffer
	cmd.Stdout = &out
	if err := cmd.Run(); err == nil {
		t.Fatal("ADD with a bad configuration exited 0")
	}
	var te types.Error
	if err := json.Unmarshal(out.Bytes(), &te); err != nil || te.Code != types.ErrInvalidNetworkConfig || te.Msg == "" {
		t.Errorf("stdout is not CNI error JSON with code 7: %q (%v)", out.String(), err)
	}

	// A specific address: granted once, then refused.
	if got := addrs(e.mustAdd(e.conf(nil), "fixed", "IP=10.56.0.77")); got[0].Addr() != netip.MustParseAddr("10.56.0.77") {
		t.Errorf("IP= gave %v", got)
	}
	_, err := e.add(e.conf(nil), "fixed2", "IP=10.56.0.77")
	cniErr(t, "IP= of a used address", err, ipamplugin.CodeAddressInUse, "10.56.0.77")
	e.assertClean(1)
}

// TestUnreachableDatastore: nothing listens at etcd_endpoints; ADD and DEL
// fail within 10 s with "try again later" naming the endpoint.
func TestUnreachableDatastore(t *testing.T) {
	pluginBin(t)
	e := &env{tb: t, endpoints: []string{"http://127.0.0.1:" + strconv.Itoa(etcdtest.FreePort(t))}, lockFile: t.TempDir() + "/lock", node: "n"}
	for _, cmd := range []string{"ADD", "DEL"} {
		start := time.Now()
		var err error
		if cmd == "ADD" {
			_, err = e.add(e.conf(nil), "c1", "")
		} else {
			err = e.run("DEL", e.conf(nil), "c1", "")
		}
		took := time.Since(start)
		cniErr(t, cmd+" against an unreachable etcd", err, types.ErrTryAgainLater, e.endpoints[0], "etcd_endpoints")
		if took >= 10*time.Second {
			t.Errorf("%s took %s, want < 10s", cmd, took)
		}
		t.Logf("%s failed after %s", cmd, took.Round(time.Millisecond))
	}
}

// TestDatastoreLocked: while ClusterInformation has datastoreReady=false,
// ADD and DEL refuse with "try again later".
func TestDatastoreLocked(t *testing.T) {
	e := newEnv(t)
	e.pool("pool-a", "10.58.0.0/24", 28, nil)
	conf := e.conf(nil)
	e.mustAdd(conf, "c1", "")
	ci := v3.NewClusterInformation()
	ci.Name = "default"
	ready := false
	ci.Spec.DatastoreReady = &ready
	if _, err := e.c.Create(ctxT(t), ci); err != nil {
		t.Fatal(err)
	}
	_, err := e.add(conf, "c2", "")
	cniErr(t, "ADD while locked", err, types.ErrTryAgainLater, "datastoreReady=false", "calicoctl datastore migrate unlock")
	cniErr(t, "DEL while locked", e.run("DEL", conf, "c1", ""), types.ErrTryAgainLater, "datastoreReady=false")
	cniErr(t, "STATUS while locked", e.run("STATUS", e.conf(map[string]any{"cniVersion": "1.1.0"}), "", ""),
		types.ErrPluginNotAvailable, "datastoreReady=false")
	ready = true
	ci.Spec.DatastoreReady = &ready
	if _, err := e.c.Apply(ctxT(t), ci); err != nil {
		t.Fatal(err)
	}
	if err := e.run("DEL", conf, "c1", ""); err != nil {
		t.Fatal(err)
	}
	e.assertClean(0)
}

// TestStatusAndGC: STATUS needs a usable pool; GC releases the addresses
// of containers the runtime no longer lists, but only once they are older
// than the grace period, and only this network's on this node.
func TestStatusAndGC(t *testing.T) {
	e := newEnv(t)
	conf11 := func(extra map[string]any) []byte {
		m := map[string]any{"cniVersion": "1.1.0"}
		for k, v := range extra {
			m[k] = v
		}
		return e.conf(m)
	}
	cniErr(t, "STATUS without pools", e.run("STATUS", conf11(nil), "", ""), types.ErrPluginNotAvailable, "no enabled IPv4 IP pool")
	e.pool("pool-a", "10.59.0.0/24", 28, nil)
	if err := e.run("STATUS", conf11(nil), "", ""); err != nil {
		t.Fatalf("STATUS: %v", err)
	}
	for _, id := range []string{"keep", "stale", "young"} {
		e.mustAdd(conf11(nil), id, "")
	}
	other := e.conf(map[string]any{"cniVersion": "1.1.0", "name": "other-net"})
	e.mustAdd(other, "stale", "")
	backdate(t, e, "test-net.stale", 2*time.Hour)
	backdate(t, e, "other-net.stale", 2*time.Hour)

	valid := []types.GCAttachment{{ContainerID: "keep", IfName: "eth0"}}
	if err := e.run("GC", conf11(map[string]any{"cni.dev/valid-attachments": valid}), "", ""); err != nil {
		t.Fatalf("GC: %v", err)
	}
	for handle, want := range map[string]bool{"test-net.keep": true, "test-net.stale": false, "test-net.young": true, "other-net.stale": true} {
		_, err := e.alloc.IPsByHandle(ctxT(t), handle)
		if (err == nil) != want {
			t.Errorf("after GC, handle %s exists=%v, want %v", handle, err == nil, want)
		}
	}
	e.assertClean(3)
}

// backdate rewrites the timestamp attribute of handle's allocations.
func backdate(t *testing.T, e *env, handle string, age time.Duration) {
	t.Helper()
	ctx := ctxT(t)
	ips, err := e.alloc.IPsByHandle(ctx, handle)
	if err != nil || len(ips) == 0 {
		t.Fatalf("handle %s: %v %v", handle, ips, err)
	}
	al, err := e.alloc.GetAssignmentAttributes(ctx, ips[0])
	if err != nil {
		t.Fatal(err)
	}
	key := ipam.BlockKey(al.Block)
	resp, err := e.etcd.Get(ctx, key)
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatal(resp, err)
	}
	var b ipam.Block
	if err := json.Unmarshal(resp.Kvs[0].Value, &b); err != nil {
		t.Fatal(err)
	}
	for i := range b.Attributes {
		if a := b.Attributes[i]; a.HandleID != nil && *a.HandleID == handle {
			a.Secondary[ipam.AttrTimestamp] = time.Now().Add(-age).UTC().Format(time.RFC3339Nano)
		}
	}
	val, _ := json.Marshal(&b)
	if _, err := e.etcd.Put(ctx, key, string(val)); err != nil {
		t.Fatal(err)
	}
}

// TestLockTimeoutStartsWhenHeld: the IPAM time limit starts once the
// host-wide lock is held, and waiting for the lock is bounded separately.
func TestLockTimeoutStartsWhenHeld(t *testing.T) {
	e := newEnv(t)
	e.pool("pool-a", "10.60.0.0/24", 28, nil)
	release := holdLock(t, e.lockFile)
	var out bytes.Buffer
	p := ipamplugin.New(ipamplugin.Options{Env: netconf.Env{Stdout: &out, Stderr: testWriter{t}}, Timeout: 2 * time.Second, LockTimeout: 300 * time.Millisecond})
	args := cmdArgs(e.conf(nil), "c1", "")
	start := time.Now()
	err := p.Add(context.Background(), args)
	cniErr(t, "ADD while another holds the lock", ipamplugin.Error(err), types.ErrTryAgainLater, "host-wide IPAM lock", e.lockFile)
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("lock wait took %s", d)
	}
	e.assertClean(0)

	// Held for longer than Timeout: ADD still succeeds, because its clock
	// starts when it gets the lock.
	p = ipamplugin.New(ipamplugin.Options{Env: netconf.Env{Stdout: &out, Stderr: testWriter{t}}, Timeout: time.Second})
	go func() { time.Sleep(1500 * time.Millisecond); release() }()
	if err := p.Add(context.Background(), args); err != nil {
		t.Fatalf("ADD after waiting 1.5s for the lock with a 1s limit: %v", err)
	}
	if !strings.Contains(out.String(), "10.60.0.") {
		t.Errorf("result %q", out.String())
	}
	e.assertClean(1)
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
