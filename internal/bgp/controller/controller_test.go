package controller

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v3 "github.com/calico-go/calico/api/v3"
	"github.com/calico-go/calico/internal/bgp"
	"github.com/calico-go/calico/internal/bgp/desired"
	"github.com/calico-go/calico/internal/datastore/fake"
	"github.com/calico-go/calico/internal/kernel/route"
	"github.com/calico-go/calico/pkg/client"
)

func TestKernelRoutes(t *testing.T) {
	st := desired.State{
		NodeIPv4:   netip.MustParseAddr("192.0.2.1"),
		Blackholes: []netip.Prefix{netip.MustParsePrefix("198.19.0.0/26")},
		Routes:     []bgp.Route{{Prefix: netip.MustParsePrefix("198.19.0.0/26")}, {Prefix: netip.MustParsePrefix("203.0.113.0/24")}},
		NoKernel:   []netip.Prefix{netip.MustParsePrefix("198.18.0.0/16")},
		Static:     []desired.StaticRoute{{Dst: netip.MustParsePrefix("192.0.2.200/32"), Gateway: netip.MustParseAddr("192.0.2.254")}},
	}
	nh := netip.MustParseAddr("192.0.2.2")
	learned := []bgp.LearnedRoute{
		{Prefix: netip.MustParsePrefix("198.19.0.64/26"), NextHop: nh},                              // kept
		{Prefix: netip.MustParsePrefix("198.19.0.5/32"), NextHop: nh},                               // borrowed from our block: kept
		{Prefix: netip.MustParsePrefix("198.19.0.0/26"), NextHop: nh},                               // ours
		{Prefix: netip.MustParsePrefix("203.0.113.0/24"), NextHop: nh},                              // we originate it too
		{Prefix: netip.MustParsePrefix("198.18.1.0/26"), NextHop: nh},                               // VXLAN pool
		{Prefix: netip.MustParsePrefix("198.19.1.0/26"), NextHop: netip.MustParseAddr("192.0.2.1")}, // via ourselves
		{Prefix: netip.MustParsePrefix("2001:db8:1::/64"), NextHop: nh},                             // wrong family next hop
	}
	var got []string
	for _, r := range KernelRoutes(st, learned) {
		got = append(got, r.String())
	}
	want := []string{"blackhole 198.19.0.0/26", "192.0.2.200/32 via 192.0.2.254", "198.19.0.64/26 via 192.0.2.2", "198.19.0.5/32 via 192.0.2.2"}
	if !slices.Equal(got, want) {
		t.Fatalf("kernel routes:\n got %q\nwant %q", got, want)
	}
}

// fakeSpeaker records what the controller asks for.
type fakeSpeaker struct {
	mu      sync.Mutex
	started bool
	global  bgp.Global
	peers   []bgp.Peer
	routes  []bgp.Route
	learned []bgp.LearnedRoute
	changed chan struct{}
}

func (f *fakeSpeaker) Start(_ context.Context, g bgp.Global) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.started, f.global = true, g
	return nil
}
func (f *fakeSpeaker) Stop(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.started, f.peers, f.routes = false, nil, nil
	return nil
}
func (f *fakeSpeaker) SetPeers(_ context.Context, p []bgp.Peer) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.peers = p
	return nil
}
func (f *fakeSpeaker) SetRoutes(_ context.Context, r []bgp.Route) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.routes = r
	return nil
}
func (f *fakeSpeaker) SetExportable(context.Context, []netip.Prefix) error { return nil }
func (f *fakeSpeaker) Learned(context.Context) ([]bgp.LearnedRoute, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.learned), nil
}
func (f *fakeSpeaker) Peers(context.Context) ([]bgp.PeerStatus, error) { return nil, nil }
func (f *fakeSpeaker) Changed() <-chan struct{}                        { return f.changed }

func (f *fakeSpeaker) learn(ls []bgp.LearnedRoute) {
	f.mu.Lock()
	f.learned = ls
	f.mu.Unlock()
	f.changed <- struct{}{}
}

type fakeTable struct {
	mu      sync.Mutex
	desired []route.Route
	applied []route.Route
}

func (f *fakeTable) Set(r []route.Route) { f.mu.Lock(); f.desired = r; f.mu.Unlock() }
func (f *fakeTable) Apply(context.Context) (route.Stats, error) {
	f.mu.Lock()
	f.applied = slices.Clone(f.desired)
	f.mu.Unlock()
	return route.Stats{}, nil
}
func (f *fakeTable) List() ([]route.Route, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.applied), nil
}
func (f *fakeTable) snapshot() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, r := range f.applied {
		out = append(out, r.String())
	}
	return out
}

type fakeIPAM struct {
	mu     sync.Mutex
	blocks []netip.Prefix
}

func (f *fakeIPAM) Local(context.Context, string) ([]netip.Prefix, []netip.Addr, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.blocks), nil, nil
}

func eventually(t *testing.T, what string, f func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		ok, s := f()
		if ok {
			return
		}
		last = s
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s: last %s", what, last)
}

// TestControllerConverges drives the controller over the fake datastore: it
// waits for its Node, peers with nodes as they appear and go, advertises and
// blackholes new blocks, and programs learned routes.
func TestControllerConverges(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := client.NewFromBackend(fake.New())
	sp := &fakeSpeaker{changed: make(chan struct{}, 1)}
	tbl := &fakeTable{}
	ip := &fakeIPAM{}
	ipamChanged := make(chan struct{}, 1)
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{NodeName: "a", Client: c, IPAM: ip, IPAMChanged: ipamChanged, Speaker: sp, Routes: tbl,
			RefreshInterval: 50 * time.Millisecond})
	}()
	mkNode := func(name, addr string) {
		n := v3.NewNode()
		n.ObjectMeta = metav1.ObjectMeta{Name: name}
		n.Spec.BGP = &v3.NodeBGPSpec{IPv4Address: addr}
		if _, err := c.Create(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(100 * time.Millisecond)
	if sp.started {
		t.Fatal("speaker started before the node exists")
	}
	mkNode("a", "192.0.2.1/24")
	mkNode("b", "192.0.2.2/24")
	eventually(t, "mesh peer b", func() (bool, string) {
		sp.mu.Lock()
		defer sp.mu.Unlock()
		return sp.started && len(sp.peers) == 1 && sp.peers[0].Name == "Mesh_192_0_2_2", fmt.Sprint(sp.peers)
	})
	ip.mu.Lock()
	ip.blocks = []netip.Prefix{netip.MustParsePrefix("198.19.0.0/26")}
	ip.mu.Unlock()
	ipamChanged <- struct{}{}
	eventually(t, "block advertised and blackholed", func() (bool, string) {
		sp.mu.Lock()
		n := len(sp.routes)
		sp.mu.Unlock()
		got := tbl.snapshot()
		return n == 1 && slices.Equal(got, []string{"blackhole 198.19.0.0/26"}), fmt.Sprint(got)
	})
	sp.learn([]bgp.LearnedRoute{{Prefix: netip.MustParsePrefix("198.19.0.64/26"), NextHop: netip.MustParseAddr("192.0.2.2")}})
	eventually(t, "learned route programmed", func() (bool, string) {
		got := tbl.snapshot()
		return len(got) == 2 && got[1] == "198.19.0.64/26 via 192.0.2.2", fmt.Sprint(got)
	})
	if _, err := c.Delete(ctx, client.Key{Kind: v3.KindNode, Name: "b"}, ""); err != nil {
		t.Fatal(err)
	}
	eventually(t, "peer b removed", func() (bool, string) {
		sp.mu.Lock()
		defer sp.mu.Unlock()
		return len(sp.peers) == 0, fmt.Sprint(sp.peers)
	})
	// Our own Node going away stops BGP and removes our routes.
	if _, err := c.Delete(ctx, client.Key{Kind: v3.KindNode, Name: "a"}, ""); err != nil {
		t.Fatal(err)
	}
	eventually(t, "speaker stopped, routes removed", func() (bool, string) {
		sp.mu.Lock()
		started := sp.started
		sp.mu.Unlock()
		return !started && len(tbl.snapshot()) == 0, fmt.Sprint(tbl.snapshot())
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
