package node

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v3 "github.com/calico-go/calico/api/v3"
	"github.com/calico-go/calico/internal/bgp"
	"github.com/calico-go/calico/internal/testutil/etcdtest"
	"github.com/calico-go/calico/internal/testutil/netnstest"
	"github.com/calico-go/calico/pkg/client"
)

const converge = 60 * time.Second

func via(p netip.Prefix, h *host) string { return p.String() + " via " + h.addr.String() }
func hole(p netip.Prefix) string         { return "blackhole " + p.String() }

// TestBGPMesh: three hosts in a full mesh reach Established and each learns
// the others' blocks into its kernel with our protocol number; a route
// deleted by hand is repaired; a fourth host joining and one leaving update
// every routing table.
func TestBGPMesh(t *testing.T) {
	cl := newCluster(t)
	hs := []*host{cl.addHost("host-1", 1), cl.addHost("host-2", 2), cl.addHost("host-3", 3)}
	blocks := make([]netip.Prefix, len(hs))
	for i, h := range hs {
		blocks[i] = cl.claimBlock(h.name)
	}
	start := time.Now()
	for _, h := range hs {
		h.expectEstablished(2, bgp.PeerMesh, converge)
	}
	t.Logf("full mesh established in %v", time.Since(start).Round(time.Millisecond))
	want := func(self int, live []int) []string {
		out := []string{hole(blocks[self])}
		for _, j := range live {
			if j != self {
				out = append(out, via(blocks[j], hs[j]))
			}
		}
		return out
	}
	for i, h := range hs {
		h.expectRoutes(want(i, []int{0, 1, 2}), converge)
	}
	t.Logf("routes converged %v after start", time.Since(start).Round(time.Millisecond))

	// Deleting a learned route by hand: repaired within the refresh
	// interval (1s here).
	dst := netnstest.IPNet(blocks[1])
	if err := hs[0].ns.Handle.RouteDel(&netlink.Route{Dst: dst}); err != nil {
		t.Fatalf("delete route by hand: %v", err)
	}
	repair := time.Now()
	hs[0].expectRoutes(want(0, []int{0, 1, 2}), 10*time.Second)
	t.Logf("hand-deleted route repaired in %v", time.Since(repair).Round(time.Millisecond))

	// Restarting calico-node on host-1 does not flap its routes: the
	// routes stay while the old process stops and the new one's sessions
	// come back.
	stopWatch := make(chan struct{})
	flapped := make(chan string, 1)
	go func() {
		w := want(0, []int{0, 1, 2})
		slices.Sort(w)
		wantNow := strings.Join(w, ",")
		for {
			select {
			case <-stopWatch:
				close(flapped)
				return
			case <-time.After(20 * time.Millisecond):
			}
			if got := strings.Join(hs[0].bgpRoutes(), ","); got != wantNow {
				flapped <- got
				close(flapped)
				return
			}
		}
	}()
	hs[0].stop()
	hs[0].start()
	hs[0].expectEstablished(2, bgp.PeerMesh, converge)
	time.Sleep(5 * time.Second) // past the restart grace's settle time
	close(stopWatch)
	if got, ok := <-flapped; ok {
		t.Fatalf("routes on host-1 changed during its restart: %q", got)
	}
	hs[0].expectRoutes(want(0, []int{0, 1, 2}), converge)

	// A fourth host joins.
	join := time.Now()
	h4 := cl.addHost("host-4", 4)
	hs = append(hs, h4)
	blocks = append(blocks, cl.claimBlock(h4.name))
	for i, h := range hs {
		h.expectRoutes(want(i, []int{0, 1, 2, 3}), converge)
	}
	t.Logf("host-4's block reachable from every host %v after it started", time.Since(join).Round(time.Millisecond))

	// host-2 leaves: its process stops and its Node is deleted.
	hs[1].stop()
	if _, err := cl.c.Delete(context.Background(), client.Key{Kind: v3.KindNode, Name: "host-2"}, ""); err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{0, 2, 3} {
		hs[i].expectRoutes(want(i, []int{0, 2, 3}), converge)
		hs[i].expectEstablished(2, bgp.PeerMesh, converge)
	}
}

// TestBGPRouteReflector: the mesh is off; one route reflector (cluster ID
// set on its Node) peers with two clients by selector, and the clients
// learn each other's blocks through it with the originating node as next
// hop.
func TestBGPRouteReflector(t *testing.T) {
	cl := newCluster(t)
	off := false
	cfg := v3.NewBGPConfiguration()
	cfg.Name = "default"
	cfg.Spec.NodeToNodeMeshEnabled = &off
	cl.create(cfg)
	rrNode := v3.NewNode()
	rrNode.ObjectMeta = metav1.ObjectMeta{Name: "rr-1", Labels: map[string]string{"route-reflector": "true"}}
	rrNode.Spec.BGP = &v3.NodeBGPSpec{IPv4Address: "192.0.2.10/24", RouteReflectorClusterID: "224.0.0.1"}
	cl.create(rrNode)
	toRR := v3.NewBGPPeer()
	toRR.Name = "peer-with-route-reflectors"
	toRR.Spec = v3.BGPPeerSpec{NodeSelector: "all()", PeerSelector: "route-reflector == 'true'"}
	cl.create(toRR)

	rr := cl.addHost("rr-1", 10)
	a, b := cl.addHost("client-a", 1), cl.addHost("client-b", 2)
	ba, bb := cl.claimBlock(a.name), cl.claimBlock(b.name)
	rr.expectEstablished(2, bgp.PeerNode, converge)
	a.expectEstablished(1, bgp.PeerNode, converge)
	a.expectRoutes([]string{hole(ba), via(bb, b)}, converge)
	b.expectRoutes([]string{hole(bb), via(ba, a)}, converge)
	rr.expectRoutes([]string{via(ba, a), via(bb, b)}, converge)
	n, err := client.Get[*v3.Node](context.Background(), cl.c, "", "rr-1")
	if err != nil || n.Spec.BGP.RouteReflectorClusterID != "224.0.0.1" {
		t.Fatalf("start-up lost the route reflector cluster ID: %+v, %v", n, err)
	}
}

// TestBIRDInterop: Debian's BIRD in its own namespace is an external (eBGP,
// TCP MD5) BGPPeer of every node: it learns our blocks, and the route it
// originates reaches our kernels.
func TestBIRDInterop(t *testing.T) {
	birdBin := etcdtest.RequireBinary(t, "bird", "bird2")
	birdc := etcdtest.RequireBinary(t, "birdc", "bird2")
	cl := newCluster(t)
	birdNS, birdAddr := cl.attach("bgpbird", 100)
	peer := v3.NewBGPPeer()
	peer.Name = "tor"
	peer.Spec = v3.BGPPeerSpec{PeerIP: birdAddr.String(), ASNumber: 64513,
		Password: &v3.BGPPassword{SecretKeyRef: &v3.SecretKeySelector{Name: "bgp-secrets", Key: "tor"}}}
	cl.create(peer)

	// BIRD: AS 64513, peers with both nodes, originates 203.0.113.0/24.
	dir := t.TempDir()
	conf := fmt.Sprintf(`router id %s;
protocol device {}
protocol static { ipv4; route 203.0.113.0/24 blackhole; }
template bgp calico { local as 64513; password "s3cret"; ipv4 { import all; export all; }; }
protocol bgp node1 from calico { neighbor 192.0.2.1 as 64512; }
protocol bgp node2 from calico { neighbor 192.0.2.2 as 64512; }
`, birdAddr)
	confPath, sock := filepath.Join(dir, "bird.conf"), filepath.Join(dir, "bird.ctl")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	bird := exec.Command(birdBin, "-f", "-c", confPath, "-s", sock, "-P", filepath.Join(dir, "bird.pid"))
	out, err := os.Create(filepath.Join(dir, "bird.log"))
	if err != nil {
		t.Fatal(err)
	}
	bird.Stdout, bird.Stderr = out, out
	if err := birdNS.Do(bird.Start); err != nil {
		t.Fatalf("start bird: %v", err)
	}
	t.Cleanup(func() { _ = bird.Process.Kill(); _ = bird.Wait(); out.Close() })

	env := "CALICO_BGP_PASSWORD_BGP_SECRETS_TOR=s3cret"
	h1, h2 := cl.addHost("host-1", 1, env), cl.addHost("host-2", 2, env)
	b1, b2 := cl.claimBlock(h1.name), cl.claimBlock(h2.name)
	ext := netip.MustParsePrefix("203.0.113.0/24").String() + " via " + birdAddr.String()
	h1.expectRoutes([]string{hole(b1), via(b2, h2), ext}, converge)
	h2.expectRoutes([]string{hole(b2), via(b1, h1), ext}, converge)
	waitUntil(t, "bird learns both blocks", converge, func() (bool, string) {
		cmd := exec.Command(birdc, "-s", sock, "show", "route")
		o, _ := cmd.CombinedOutput()
		s := string(o)
		return strings.Contains(s, b1.String()) && strings.Contains(s, b2.String()), s
	})
	for _, h := range []*host{h1, h2} {
		var est []string
		for _, p := range h.peers() {
			if p.Address == birdAddr && p.State == bgp.StateEstablished && p.Type == bgp.PeerGlobal {
				est = append(est, p.Name)
			}
		}
		if len(est) != 1 || est[0] != "Global_192_0_2_100" {
			t.Errorf("%s: session with bird: %+v", h.name, h.peers())
		}
	}
}
