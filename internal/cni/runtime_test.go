package cni_test

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"

	v3 "github.com/calico-go/calico/api/v3"
)

// TestCNIOrchestrator: a workload without Kubernetes arguments gets the
// "cni" orchestrator, the network as profile, and labels from the CNI args
// convention (network config) and the runtime config.
func TestCNIOrchestrator(t *testing.T) {
	f := newFixture(t)
	list := f.conflist(netSpec{name: "plain", ranges: [][]map[string]string{{{"subnet": "10.244.10.0/24"}}},
		extra: map[string]any{
			"capabilities":       map[string]bool{"labels": true},
			"container_settings": map[string]bool{"allow_ip_forwarding": true},
			"args":               map[string]any{"cni": map[string]any{"labels": []map[string]string{{"key": "app", "value": "web"}, {"key": "tier", "value": "front"}}}},
		}})
	p := f.newPod("", "")
	p.capArgs = map[string]any{"labels": map[string]string{"tier": "back"}}
	res := f.mustAdd(list, p)
	f.assertWired(t, list, p, res, []netip.Addr{podAddr(t, res, false)}, 1500)
	wep := f.endpoint(p, "plain")
	if wep == nil {
		t.Fatal("no endpoint")
	}
	if want := v3.WorkloadEndpointName(f.node, "cni", p.id, "eth0"); wep.Name != want || wep.Namespace != "default" {
		t.Errorf("endpoint %s/%s, want default/%s", wep.Namespace, wep.Name, want)
	}
	if wep.Spec.Orchestrator != "cni" || wep.Spec.Workload != p.id || strings.Join(wep.Spec.Profiles, ",") != "plain" {
		t.Errorf("spec %+v", wep.Spec)
	}
	if wep.Labels["app"] != "web" || wep.Labels["tier"] != "back" || wep.Labels[v3.LabelOrchestrator] != "cni" {
		t.Errorf("labels %v", wep.Labels)
	}
	if got := readSysctl(t, p.ns, "net/ipv4/ip_forward"); got != "1" {
		t.Errorf("allow_ip_forwarding: ip_forward in the container is %s", got)
	}
	if err := f.check(list, p); err != nil {
		t.Errorf("CHECK: %v", err)
	}
	f.mustDel(list, p)
	if f.endpoint(p, "plain") != nil {
		t.Error("endpoint left after DEL")
	}
}

// TestNotReady: with ClusterInformation datastoreReady=false, ADD and STATUS
// refuse with a clear error and ADD leaves nothing; once ready they work.
func TestNotReady(t *testing.T) {
	f := newFixture(t)
	list := f.conflist(netSpec{ranges: [][]map[string]string{{{"subnet": "10.244.11.0/24"}}}})
	ctx := context.Background()
	ci := v3.NewClusterInformation()
	ci.Name = "default"
	notReady := false
	ci.Spec.DatastoreReady = &notReady
	if _, err := f.client.Apply(ctx, ci); err != nil {
		t.Fatal(err)
	}
	p := f.newPod("shop", "early")
	_, err := f.add(ctx, list, p)
	if err == nil {
		t.Fatal("ADD succeeded while the datastore is not ready")
	}
	if e := cniCode(t, err); e.Code != types.ErrTryAgainLater || !strings.Contains(e.Msg, "datastoreReady=false") {
		t.Errorf("ADD error %+v", e)
	}
	if r := f.reservations(list.Name); len(r) != 0 {
		t.Errorf("reservations after refused ADD: %v", r)
	}
	err = f.inHost(func() error { return f.cni.GetStatusNetworkList(ctx, list) })
	if e := cniCode(t, err); e.Code != types.ErrPluginNotAvailable {
		t.Errorf("STATUS error %+v, want code 50", e)
	}
	ready := true
	ci.Spec.DatastoreReady = &ready
	if _, err := f.client.Apply(ctx, ci); err != nil {
		t.Fatal(err)
	}
	if err := f.inHost(func() error { return f.cni.GetStatusNetworkList(ctx, list) }); err != nil {
		t.Errorf("STATUS when ready: %v", err)
	}
	f.mustAdd(list, p)
	f.mustDel(list, p)
}

// TestGC: GC with a valid-attachments list removes the endpoint, veth and
// addresses of every other attachment of the network on this node.
func TestGC(t *testing.T) {
	f := newFixture(t)
	list := f.conflist(netSpec{ranges: [][]map[string]string{{{"subnet": "10.244.12.0/24"}}}})
	keep, drop := f.newPod("shop", "keep"), f.newPod("shop", "drop")
	f.mustAdd(list, keep)
	f.mustAdd(list, drop)
	// A runtime that lost its cache: libcni issues no DEL of its own, so
	// only the plugins' GC can find the stale attachment.
	fresh := newRuntime(f.bin, t.TempDir())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := f.inHost(func() error {
		return fresh.GCNetworkList(ctx, list, &libcni.GCArgs{ValidAttachments: []types.GCAttachment{{ContainerID: keep.id, IfName: "eth0"}}})
	})
	if err != nil {
		t.Fatalf("GC: %v", err)
	}
	if f.endpoint(drop, list.Name) != nil {
		t.Error("stale endpoint survived GC")
	}
	if f.hostLinkExists(f.hostVeth(drop, list)) {
		t.Error("stale veth survived GC")
	}
	if r := f.reservations(list.Name); len(r) != 1 {
		t.Errorf("reservations after GC: %v, want only the kept pod's", r)
	}
	if err := f.check(list, keep); err != nil {
		t.Errorf("CHECK of the kept pod after GC: %v", err)
	}
	f.mustDel(list, keep)
	f.mustDel(list, drop)
}

// TestErrors: failures reach the runtime as CNI errors with a code and a
// message that says what to fix; VERSION lists the supported versions.
func TestErrors(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	cases := []struct {
		name string
		spec netSpec
		code uint
		msg  string
	}{
		{"no ipam type", netSpec{ipamExtra: map[string]any{"type": ""}}, types.ErrInvalidNetworkConfig, `"ipam" needs a "type"`},
		{"unknown ipam plugin", netSpec{ipamExtra: map[string]any{"type": "no-such-ipam"}}, types.ErrInvalidNetworkConfig, "not found in CNI_PATH"},
		{"bad mtu", netSpec{mtu: 30}, types.ErrInvalidNetworkConfig, "mtu 30 is too small"},
		{"kubernetes datastore", netSpec{extra: map[string]any{"datastore_type": "kubernetes"}}, types.ErrInvalidNetworkConfig, "etcdv3"},
		{"etcd down", netSpec{extra: map[string]any{"etcd_endpoints": "http://127.0.0.1:1"}}, types.ErrTryAgainLater, "check etcd_endpoints"},
		{"no nodename", netSpec{extra: map[string]any{"nodename": "", "nodename_file": "/nonexistent/nodename"}}, types.ErrInvalidNetworkConfig, "nodename_file_optional"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := f.with(t)
			list := f.conflist(tc.spec)
			_, err := f.add(ctx, list, f.newPod("shop", "err"))
			if err == nil {
				t.Fatal("ADD succeeded")
			}
			e := cniCode(t, err)
			t.Logf("code %d: %s", e.Code, e.Msg)
			if e.Code != tc.code || !strings.Contains(e.Msg, tc.msg) {
				t.Errorf("error %+v, want code %d and %q", e, tc.code, tc.msg)
			}
		})
	}
	var info []string
	if err := f.inHost(func() error {
		vi, err := f.cni.GetVersionInfo(ctx, "calico")
		if err == nil {
			info = vi.SupportedVersions()
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(info, ","); !strings.Contains(got, "0.3.1") || !strings.Contains(got, "1.1.0") {
		t.Errorf("VERSION: %s", got)
	}
}
