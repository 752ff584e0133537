package felix

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	v3 "github.com/calico-go/calico/api/v3"
	"github.com/calico-go/calico/internal/dataplane"
	"github.com/calico-go/calico/internal/datastore"
	"github.com/calico-go/calico/internal/datastore/etcd"
	"github.com/calico-go/calico/internal/testutil/etcdtest"
	"github.com/calico-go/calico/internal/testutil/netnstest"
	"github.com/calico-go/calico/pkg/client"
)

const node = "felix-node"

// pod is a workload namespace attached to the host the way the calico CNI
// plugin does it: a cali veth, a /32 host route, proxy ARP on the host side
// and a default route via 169.254.1.1 in the pod.
type pod struct {
	ns   *netnstest.NS
	addr netip.Addr
	name string
	veth string
}

func attach(t *testing.T, host *netnstest.Host, name string, addr netip.Addr) *pod {
	t.Helper()
	p := &pod{ns: netnstest.New(t, "fpod"), addr: addr, name: name, veth: fmt.Sprintf("calif%08x", time.Now().UnixNano()&0xffffffff)}
	la := netlink.NewLinkAttrs()
	la.Name = p.veth
	if err := host.Handle.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: "eth0", PeerNamespace: netlink.NsFd(p.ns.Fd())}); err != nil {
		t.Fatalf("veth for %s: %v", name, err)
	}
	hl, err := host.Handle.LinkByName(p.veth)
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range [][2]string{{"proxy_arp", "1"}, {"forwarding", "1"}} {
		if err := host.Sysctl("net/ipv4/conf/"+p.veth+"/"+kv[0], kv[1]); err != nil {
			t.Fatal(err)
		}
	}
	if err := host.Sysctl("net/ipv4/neigh/"+p.veth+"/proxy_delay", "0"); err != nil {
		t.Fatal(err)
	}
	if err := host.Handle.LinkSetUp(hl); err != nil {
		t.Fatal(err)
	}
	if err := host.Handle.RouteAdd(&netlink.Route{LinkIndex: hl.Attrs().Index, Dst: netnstest.IPNet(netip.PrefixFrom(addr, 32)), Scope: netlink.SCOPE_LINK}); err != nil {
		t.Fatalf("host route to %s: %v", addr, err)
	}
	pl, err := p.ns.Handle.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	if err := p.ns.Handle.AddrAdd(pl, &netlink.Addr{IPNet: netnstest.IPNet(netip.PrefixFrom(addr, 32))}); err != nil {
		t.Fatal(err)
	}
	if err := p.ns.Handle.LinkSetUp(pl); err != nil {
		t.Fatal(err)
	}
	gw := netip.MustParseAddr("169.254.1.1")
	if err := p.ns.Handle.RouteAdd(&netlink.Route{LinkIndex: pl.Attrs().Index, Dst: netnstest.IPNet(netip.PrefixFrom(gw, 32)), Scope: netlink.SCOPE_LINK}); err != nil {
		t.Fatal(err)
	}
	if err := p.ns.Handle.RouteAdd(&netlink.Route{LinkIndex: pl.Attrs().Index, Gw: gw.AsSlice()}); err != nil {
		t.Fatal(err)
	}
	return p
}

func (p *pod) endpoint(labels map[string]string) *v3.WorkloadEndpoint {
	w := v3.NewWorkloadEndpoint()
	w.Namespace = "shop"
	w.Name = v3.WorkloadEndpointName(node, "k8s", p.name, "eth0")
	w.Labels = map[string]string{"projectcalico.org/namespace": "shop", "projectcalico.org/orchestrator": "k8s"}
	for k, v := range labels {
		w.Labels[k] = v
	}
	w.Spec = v3.WorkloadEndpointSpec{
		Orchestrator: "k8s", Workload: "", Node: node, Pod: p.name, Endpoint: "eth0",
		InterfaceName: p.veth, IPNetworks: []string{netip.PrefixFrom(p.addr, 32).String()},
		Profiles: []string{"kns.shop"},
	}
	return w
}

// serve accepts TCP connections on port in the pod and writes "ok".
func (p *pod) serve(t *testing.T, port int) {
	t.Helper()
	l, err := p.ns.Listen("tcp", net.JoinHostPort(p.addr.String(), strconv.Itoa(port)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write([]byte("ok"))
			c.Close()
		}
	}()
}

// connects reports whether a TCP connection from p to dst succeeds and
// the server answers.
func (p *pod) connects(dst netip.Addr, port int) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	c, err := p.ns.Dial(ctx, "tcp", net.JoinHostPort(dst.String(), strconv.Itoa(port)))
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	b, err := io.ReadAll(c)
	return err == nil && string(b) == "ok"
}

// waitFor polls cond until it holds or 10 s pass, and returns how long it took.
func waitFor(t *testing.T, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for time.Since(start) < 10*time.Second {
		if cond() {
			return time.Since(start)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
	return 0
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestEndToEnd runs the whole engine (etcd → syncer → calc → nftables) in a
// host namespace with two pods and checks that policy written to the
// datastore decides real TCP connections, and that health and metrics are
// served.
func TestEndToEnd(t *testing.T) {
	netnstest.RequireRoot(t)
	eps := etcdtest.Embedded(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	be, err := etcd.New(ctx, etcd.Config{Endpoints: eps})
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	c := client.NewFromBackend(be)

	host := netnstest.NewHost(t)
	clientPod := attach(t, host, "client", netip.MustParseAddr("10.65.0.2"))
	serverPod := attach(t, host, "server", netip.MustParseAddr("10.65.0.3"))
	serverPod.serve(t, 8080)

	prof := v3.NewProfile()
	prof.Name = "kns.shop"
	prof.Spec.Ingress = []v3.Rule{{Action: v3.Allow}}
	prof.Spec.Egress = []v3.Rule{{Action: v3.Allow}}
	for _, r := range []v3.Resource{prof, clientPod.endpoint(map[string]string{"role": "client"}), serverPod.endpoint(map[string]string{"role": "server"})} {
		if _, err := c.Create(ctx, r); err != nil {
			t.Fatalf("create %s: %v", r.GetName(), err)
		}
	}

	healthPort, metricsPort := etcdtest.FreePort(t), etcdtest.FreePort(t)
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{
			NodeName:  node,
			Backend:   be,
			Dataplane: dataplane.Options{NetNSFd: host.Fd()},
			ConfigEnv: map[string]string{
				"HEALTHENABLED": "true", "HEALTHHOST": "127.0.0.1", "HEALTHPORT": strconv.Itoa(healthPort),
				"PROMETHEUSMETRICSENABLED": "true", "PROMETHEUSMETRICSHOST": "127.0.0.1",
				"PROMETHEUSMETRICSPORT": strconv.Itoa(metricsPort),
			},
			OnReady: func() { close(ready) },
		})
	}()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("felix exited before it was ready: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("felix not ready after 30s")
	}

	// No policy: the namespace profile allows everything.
	waitFor(t, "client reaches server with only the profile", func() bool {
		return clientPod.connects(serverPod.addr, 8080)
	})

	// A policy selecting the server that allows only role == 'monitor':
	// the client is now denied.
	np := v3.NewNetworkPolicy()
	np.Namespace, np.Name = "shop", "server-ingress"
	np.Spec.Selector = "role == 'server'"
	np.Spec.Ingress = []v3.Rule{{Action: v3.Allow, Protocol: ptr(v3.ProtocolFromString("TCP")), Source: v3.EntityRule{Selector: "role == 'monitor'"}}}
	start := time.Now()
	if _, err := c.Create(ctx, np); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "client denied by policy", func() bool { return !clientPod.connects(serverPod.addr, 8080) })
	t.Logf("apply -> deny took %s", time.Since(start))
	for i := 0; i < 5; i++ {
		if clientPod.connects(serverPod.addr, 8080) {
			t.Fatal("denied connection got through")
		}
	}

	// Allow the client's role: traffic flows again.
	got := must(c.Get(ctx, datastore.Key{Kind: v3.KindNetworkPolicy, Namespace: "shop", Name: "server-ingress"})).(*v3.NetworkPolicy)
	got.Spec.Ingress[0].Source.Selector = "role in {'monitor', 'client'}"
	start = time.Now()
	if _, err := c.Update(ctx, got); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "client allowed again", func() bool { return clientPod.connects(serverPod.addr, 8080) })
	t.Logf("apply -> allow took %s", time.Since(start))

	// Health and metrics.
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/readiness", healthPort))
	if err != nil {
		t.Fatalf("readiness: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Errorf("readiness = %d, want 204", resp.StatusCode)
	}
	resp, err = http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", metricsPort))
	if err != nil {
		t.Fatalf("metrics: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, m := range []string{"felix_active_local_endpoints 2", "felix_int_dataplane_apply_time_seconds_count", "felix_active_local_policies 1"} {
		if !strings.Contains(string(body), m) {
			t.Errorf("metrics lack %q", m)
		}
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run returned %v after cancel", err)
		}
	case <-time.After(10 * time.Second):
		t.Error("Run did not return after cancel")
	}
}

func ptr[T any](v T) *T { return &v }
