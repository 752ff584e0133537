package cni_test

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/vishvananda/netlink"

	v3 "github.com/calico-go/calico/api/v3"
	"github.com/calico-go/calico/internal/testutil/netnstest"
	"github.com/calico-go/calico/pkg/client"
)

// TestPortmapChain chains the reference portmap plugin after ours: a
// connection from the underlay to the host's port reaches the pod.
func TestPortmapChain(t *testing.T) {
	f := newFixture(t)
	list := f.conflist(netSpec{portmap: true, ranges: [][]map[string]string{{{"subnet": "10.244.3.0/24"}}}})
	p := f.newPod("shop", "hostport")
	p.capArgs = map[string]any{"portMappings": []map[string]any{{"hostPort": 18080, "containerPort": 8080, "protocol": "tcp"}}}
	res := f.mustAdd(list, p)
	ip := podAddr(t, res, false)
	l, err := p.ns.Listen("tcp", net.JoinHostPort(ip.String(), "8080"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 5)
				if _, err := c.Read(buf); err == nil {
					_, _ = c.Write(buf)
				}
			}()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := echo(ctx, f.host.Underlay, net.JoinHostPort(f.host.Addr.String(), "18080")); err != nil {
		t.Errorf("underlay -> host:18080 -> pod:8080: %v", err)
	}
	if err := f.check(list, p); err != nil {
		t.Errorf("CHECK of the chain: %v", err)
	}
	f.mustDel(list, p)
	dctx, dcancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer dcancel()
	if err := echo(dctx, f.host.Underlay, net.JoinHostPort(f.host.Addr.String(), "18080")); err == nil {
		t.Error("host port still forwards after DEL")
	}
}

// TestCheck: CHECK passes on a healthy pod and reports what was broken.
func TestCheck(t *testing.T) {
	f := newFixture(t)
	list := f.conflist(netSpec{ranges: [][]map[string]string{{{"subnet": "10.244.4.0/24"}}}})
	p := f.newPod("shop", "checked")
	res := f.mustAdd(list, p)
	if err := f.check(list, p); err != nil {
		t.Fatalf("CHECK on a healthy pod: %v", err)
	}
	ip := podAddr(t, res, false)
	routes := f.hostRoutes(ip)
	if len(routes) != 1 {
		t.Fatalf("host routes to %s: %v", ip, routes)
	}
	if err := f.host.Handle.RouteDel(&routes[0]); err != nil {
		t.Fatal(err)
	}
	err := f.check(list, p)
	if err == nil || !strings.Contains(err.Error(), "host route "+ip.String()+"/32 dev "+f.hostVeth(p, list)+" is missing") {
		t.Errorf("CHECK after removing the host route: %v", err)
	}
	// A wrong address in the pod is reported too.
	l, _ := p.ns.Handle.LinkByName("eth0")
	if err := p.ns.Handle.AddrAdd(l, &netlink.Addr{IPNet: netnstest.IPNet(netip.MustParsePrefix("10.99.0.1/32"))}); err != nil {
		t.Fatal(err)
	}
	if err := f.check(list, p); err == nil || !strings.Contains(err.Error(), "unexpected address 10.99.0.1/32") {
		t.Errorf("CHECK with a stray address: %v", err)
	}
	// And a missing veth.
	if err := f.host.Handle.LinkDel(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: f.hostVeth(p, list)}}); err != nil {
		t.Fatal(err)
	}
	if err := f.check(list, p); err == nil || !strings.Contains(err.Error(), "is missing") {
		t.Errorf("CHECK without the veth: %v", err)
	} else {
		cniCode(t, err)
	}
	f.mustDel(list, p)
}

// TestDelIdempotent: DEL twice, after the namespace is gone, after the
// endpoint was deleted, and for a container never added all succeed and
// leave nothing behind.
func TestDelIdempotent(t *testing.T) {
	f := newFixture(t)
	list := f.conflist(netSpec{ranges: [][]map[string]string{{{"subnet": "10.244.5.0/24"}}}})

	twice := f.newPod("shop", "twice")
	f.mustAdd(list, twice)
	f.mustDel(list, twice)
	f.mustDel(list, twice)

	gone := f.newPod("shop", "netns-gone")
	f.mustAdd(list, gone)
	gone.ns.Remove(t)
	f.mustDel(list, gone)
	f.mustDel(list, gone)

	noWEP := f.newPod("shop", "wep-gone")
	f.mustAdd(list, noWEP)
	w := noWEP.workload(f.node, list.Name)
	if _, err := f.client.Delete(context.Background(), client.Key{Kind: v3.KindWorkloadEndpoint, Namespace: w.EndpointNamespace(), Name: w.EndpointName()}, ""); err != nil {
		t.Fatal(err)
	}
	f.mustDel(list, noWEP)

	never := f.newPod("", "")
	f.mustDel(list, never)

	deadline := time.Now().Add(5 * time.Second)
	for len(f.calicoLinks()) != 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond) // a destroyed namespace takes its veth asynchronously
	}
	if links := f.calicoLinks(); len(links) != 0 {
		t.Errorf("host veths left: %v", links)
	}
	if r := f.reservations(list.Name); len(r) != 0 {
		t.Errorf("addresses left: %v", r)
	}
	weps, err := client.List[*v3.WorkloadEndpoint](context.Background(), f.client, "")
	if err != nil || len(weps) != 0 {
		t.Errorf("endpoints left: %d, %v", len(weps), err)
	}
}

// TestDelKeepsNewerIncarnation: DEL of an old container of a pod must not
// touch the endpoint of the pod's new container.
func TestDelKeepsNewerIncarnation(t *testing.T) {
	f := newFixture(t)
	list := f.conflist(netSpec{ranges: [][]map[string]string{{{"subnet": "10.244.6.0/24"}}}})
	old := f.newPod("shop", "sts-0")
	f.mustAdd(list, old)
	old.ns.Remove(t)
	renewed := f.newPod("shop", "sts-0")
	f.mustAdd(list, renewed)
	f.mustDel(list, old)
	wep := f.endpoint(renewed, list.Name)
	if wep == nil || wep.Spec.ContainerID != renewed.id {
		t.Fatalf("endpoint after DEL of the old container: %+v", wep)
	}
	if err := f.check(list, renewed); err != nil {
		t.Errorf("CHECK of the new container: %v", err)
	}
	f.mustDel(list, renewed)
}

// TestConcurrentAddDel runs 50 ADDs at once (distinct addresses), then 50
// DELs at once, and checks that nothing is left.
func TestConcurrentAddDel(t *testing.T) {
	f := newFixture(t)
	list := f.conflist(netSpec{ranges: [][]map[string]string{{{"subnet": "10.244.16.0/22"}}}})
	concurrentAddDel(t, f, list, 50, nil)
	if r := f.reservations(list.Name); len(r) != 0 {
		t.Errorf("addresses left: %v", r)
	}
}

// concurrentAddDel adds n pods at once, checks them (and calls whileUp,
// when set), deletes them at once and checks that no veth or endpoint is
// left.
func concurrentAddDel(t *testing.T, f *fixture, list *libcni.NetworkConfigList, n int, whileUp func()) {
	t.Helper()
	pods := make([]*pod, n)
	for i := range pods {
		pods[i] = f.newPod("load", fmt.Sprintf("pod-%d", i))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	addrs := make([]netip.Addr, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i, p := range pods {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := f.add(ctx, list, p)
			if err == nil && len(res.IPs) > 0 {
				addrs[i], _ = netip.AddrFromSlice(res.IPs[0].Address.IP)
				addrs[i] = addrs[i].Unmap()
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	seen := map[netip.Addr]int{}
	for i, err := range errs {
		if err != nil {
			t.Errorf("ADD %d: %v", i, err)
			continue
		}
		if j, dup := seen[addrs[i]]; dup {
			t.Errorf("pods %d and %d both got %s", j, i, addrs[i])
		}
		seen[addrs[i]] = i
	}
	if t.Failed() {
		return
	}
	weps, err := client.List[*v3.WorkloadEndpoint](ctx, f.client, "load")
	if err != nil || len(weps) != n {
		t.Errorf("endpoints after %d ADDs: %d, %v", n, len(weps), err)
	}
	if links := f.calicoLinks(); len(links) != n {
		t.Errorf("host veths after %d ADDs: %d", n, len(links))
	}
	// Spot-check connectivity between the first and the last pod.
	pctx, pcancel := context.WithTimeout(ctx, 10*time.Second)
	assertPing(pctx, t, pods[0].ns, addrs[n-1])
	pcancel()
	if whileUp != nil {
		whileUp()
	}
	for i, p := range pods {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = f.del(ctx, list, p)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("DEL %d: %v", i, err)
		}
	}
	if links := f.calicoLinks(); len(links) != 0 {
		t.Errorf("host veths left: %v", links)
	}
	if weps, err := client.List[*v3.WorkloadEndpoint](ctx, f.client, ""); err != nil || len(weps) != 0 {
		t.Errorf("endpoints left: %d, %v", len(weps), err)
	}
}

// TestFailedAddLeavesNothing makes ADD fail at each stage and checks that
// no veth, route, address or endpoint remains.
func TestFailedAddLeavesNothing(t *testing.T) {
	f := newFixture(t)
	one := func(addr string) [][]map[string]string {
		return [][]map[string]string{{{"subnet": "10.244.8.0/24", "rangeStart": addr, "rangeEnd": addr}}}
	}
	assertClean := func(t *testing.T, list *libcni.NetworkConfigList, p *pod, keep ...string) {
		t.Helper()
		if name := f.hostVeth(p, list); f.hostLinkExists(name) {
			t.Errorf("veth %s left behind", name)
		}
		if _, err := p.ns.Handle.LinkByName(p.ifName); err == nil {
			t.Errorf("%s left in the pod", p.ifName)
		}
		if f.endpoint(p, list.Name) != nil {
			t.Errorf("endpoint left behind")
		}
		if r := f.reservations(list.Name); strings.Join(r, ",") != strings.Join(keep, ",") {
			t.Errorf("reservations %v, want %v", r, keep)
		}
	}

	t.Run("exhausted pool", func(t *testing.T) {
		f := f.with(t)
		list := f.conflist(netSpec{name: "tiny", ranges: one("10.244.8.10")})
		first, second := f.newPod("shop", "first"), f.newPod("shop", "second")
		f.mustAdd(list, first)
		_, err := f.add(context.Background(), list, second)
		if err == nil {
			t.Fatal("ADD from an exhausted pool succeeded")
		}
		t.Logf("code %d: %v", cniCode(t, err).Code, err)
		assertClean(t, list, second, "10.244.8.10")
		f.mustDel(list, second)
		f.mustDel(list, first)
		assertClean(t, list, first)
	})

	t.Run("host route conflict", func(t *testing.T) {
		f := f.with(t)
		list := f.conflist(netSpec{name: "squatted", ranges: one("10.244.8.20")})
		la := netlink.NewLinkAttrs()
		la.Name = "squat0"
		if err := f.host.Handle.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: "squat1"}); err != nil {
			t.Fatal(err)
		}
		sq, _ := f.host.Handle.LinkByName("squat0")
		if err := f.host.Handle.LinkSetUp(sq); err != nil {
			t.Fatal(err)
		}
		if err := f.host.Handle.RouteAdd(&netlink.Route{LinkIndex: sq.Attrs().Index, Dst: netnstest.IPNet(netip.MustParsePrefix("10.244.8.20/32")), Scope: netlink.SCOPE_LINK}); err != nil {
			t.Fatal(err)
		}
		p := f.newPod("shop", "victim")
		_, err := f.add(context.Background(), list, p)
		if err == nil || !strings.Contains(err.Error(), "squat0") {
			t.Fatalf("ADD with a conflicting route: %v", err)
		}
		t.Logf("code %d: %v", cniCode(t, err).Code, err)
		assertClean(t, list, p)
		if routes := f.hostRoutes(netip.MustParseAddr("10.244.8.20")); len(routes) != 1 || routes[0].LinkIndex != sq.Attrs().Index {
			t.Errorf("the other interface's route was touched: %+v", routes)
		}
		f.mustDel(list, p)
	})

	t.Run("endpoint rejected", func(t *testing.T) {
		f := f.with(t)
		list := f.conflist(netSpec{name: "badlabels", ranges: one("10.244.8.30"),
			extra: map[string]any{"args": map[string]any{"cni": map[string]any{"labels": []map[string]string{{"key": "app", "value": "not a valid label!"}}}}}})
		p := f.newPod("", "")
		_, err := f.add(context.Background(), list, p)
		if err == nil {
			t.Fatal("ADD with an invalid label succeeded")
		}
		if e := cniCode(t, err); e.Code != types.ErrInvalidNetworkConfig || !strings.Contains(e.Msg, "labels") {
			t.Errorf("error %+v: want code 7 naming the label", e)
		}
		assertClean(t, list, p)
	})

	t.Run("no namespace", func(t *testing.T) {
		f := f.with(t)
		list := f.conflist(netSpec{name: "nons", ranges: one("10.244.8.40")})
		p := f.newPod("shop", "nons")
		p.ns.Remove(t)
		_, err := f.add(context.Background(), list, p)
		if err == nil {
			t.Fatal("ADD into a missing namespace succeeded")
		}
		if r := f.reservations(list.Name); len(r) != 0 {
			t.Errorf("reservations left: %v", r)
		}
	})
}
