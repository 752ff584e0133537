package cni_test

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	v3 "github.com/calico-go/calico/api/v3"
	"github.com/calico-go/calico/internal/ipam"
	"github.com/calico-go/calico/internal/testutil/netnstest"
	"github.com/calico-go/calico/pkg/client"
)

// TestCalicoIPAM runs the plugin with calico-ipam (skipped until
// cmd/calico-ipam exists): two pods talk, 50 concurrent ADDs and DELs, a
// failed ADD, and `ipam check` is clean after each step.
func TestCalicoIPAM(t *testing.T) {
	netnstest.RequireRoot(t)
	if pluginDir(t); !calicoIPAM {
		t.Fatal("the calico-ipam plugin was not built (cmd/calico-ipam)")
	}
	f := newFixture(t)
	f.useCalicoIPAM("10.245.0.0/16")
	list := f.conflist(netSpec{})
	a, b := f.newPod("shop", "web"), f.newPod("shop", "db")
	resA, resB := f.mustAdd(list, a), f.mustAdd(list, b)
	ipA, ipB := podAddr(t, resA, false), podAddr(t, resB, false)
	f.assertWired(t, list, a, resA, []netip.Addr{ipA}, 1500)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	assertPing(ctx, t, a.ns, ipB)
	assertTCP(ctx, t, b.ns, a.ns, ipA)
	if err := f.check(list, a); err != nil {
		t.Errorf("CHECK: %v", err)
	}
	f.assertIPAMClean(t, 2)
	f.mustDel(list, a)
	f.mustDel(list, a)
	b.ns.Remove(t)
	f.mustDel(list, b)
	f.assertIPAMClean(t, 0)

	concurrentAddDel(t, f, list, 50, func() { f.assertIPAMClean(t, 50) })
	f.assertIPAMClean(t, 0)

	bad := f.conflist(netSpec{name: "badlabels",
		extra: map[string]any{"args": map[string]any{"cni": map[string]any{"labels": map[string]string{"app": "not valid!"}}}}})
	if _, err := f.add(context.Background(), bad, f.newPod("", "")); err == nil {
		t.Error("ADD with an invalid label succeeded")
	}
	f.assertIPAMClean(t, 0)
}

// assertIPAMClean runs `ipam check` against the datastore, with the
// addresses of every WorkloadEndpoint as in use, and wants no problem and
// exactly allocations addresses allocated.
func (f *fixture) assertIPAMClean(t *testing.T, allocations int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{f.etcdDirect}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	alloc, err := ipam.New(ipam.Options{Store: ipam.NewEtcdStore(cli, 10*time.Second), Resources: ipam.ClientResources(f.client)})
	if err != nil {
		t.Fatal(err)
	}
	weps, err := client.List[*v3.WorkloadEndpoint](ctx, f.client, "")
	if err != nil {
		t.Fatal(err)
	}
	var inUse []ipam.InUse
	for _, w := range weps {
		for _, n := range w.Spec.IPNetworks {
			p, err := netip.ParsePrefix(n)
			if err != nil {
				t.Fatal(err)
			}
			inUse = append(inUse, ipam.InUse{IP: p.Addr(), Owner: w.Namespace + "/" + w.Name})
		}
	}
	r, err := alloc.Check(ctx, ipam.CheckOptions{Nodes: []string{f.node}, InUse: inUse})
	if err != nil {
		t.Fatal(err)
	}
	if !r.Clean() || r.Allocations != allocations {
		var b strings.Builder
		for _, l := range r.Leaked {
			b.WriteString(" leaked " + l.IP.String())
		}
		t.Errorf("ipam check: %d problems (%s), %d allocations, want clean with %d: %+v", r.Problems(), b.String(), r.Allocations, allocations, r)
	}
}
