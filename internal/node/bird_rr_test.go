package node

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	v3 "github.com/calico-go/calico/api/v3"
	"github.com/calico-go/calico/internal/bgp"
	"github.com/calico-go/calico/internal/testutil/etcdtest"
)

// TestBIRDRouteReflector: the mesh is off and Debian's BIRD, in its own
// namespace on the underlay, is the route reflector (iBGP, AS 64512, `rr
// client`) of three calico-nodes peering with it by a BGPPeer selecting
// every node (so a Node_ peer on each). Every
// node learns every other node's block through BIRD with the originating
// node as next hop, and BIRD sees all blocks.
func TestBIRDRouteReflector(t *testing.T) {
	birdBin := etcdtest.RequireBinary(t, "bird", "bird2")
	birdc := etcdtest.RequireBinary(t, "birdc", "bird2")
	cl := newCluster(t)
	off := false
	cfg := v3.NewBGPConfiguration()
	cfg.Name = "default"
	cfg.Spec.NodeToNodeMeshEnabled = &off
	cl.create(cfg)
	birdNS, birdAddr := cl.attach("bgprr", 100)
	peer := v3.NewBGPPeer()
	peer.Name = "bird-rr"
	peer.Spec = v3.BGPPeerSpec{NodeSelector: "all()", PeerIP: birdAddr.String(), ASNumber: 64512}
	cl.create(peer)

	// BIRD: AS 64512, route reflector for the three nodes. No kernel
	// protocol: it installs nothing in its namespace's kernel table.
	// The nodes share the underlay with it, hence "direct" (iBGP is
	// multihop by default) and "gateway direct".
	dir := t.TempDir()
	conf := fmt.Sprintf(`router id %s;
protocol device {}
template bgp clients {
	local as 64512;
	direct;
	rr client;
	rr cluster id 10.255.255.1;
	ipv4 { import all; export all; gateway direct; };
}
protocol bgp node1 from clients { neighbor 192.0.2.1 as 64512; }
protocol bgp node2 from clients { neighbor 192.0.2.2 as 64512; }
protocol bgp node3 from clients { neighbor 192.0.2.3 as 64512; }
`, birdAddr)
	confPath, sock := filepath.Join(dir, "bird.conf"), filepath.Join(dir, "bird.ctl")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	bird := exec.Command(birdBin, "-f", "-c", confPath, "-s", sock, "-P", filepath.Join(dir, "bird.pid"))
	logPath := filepath.Join(dir, "bird.log")
	out, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	bird.Stdout, bird.Stderr = out, out
	if err := birdNS.Do(bird.Start); err != nil {
		t.Fatalf("start bird: %v", err)
	}
	t.Cleanup(func() {
		_ = bird.Process.Kill()
		_ = bird.Wait()
		out.Close()
		if t.Failed() {
			if b, err := os.ReadFile(logPath); err == nil && len(b) > 0 {
				t.Logf("bird log:\n%s", b)
			}
			if o, err := exec.Command(birdc, "-s", sock, "show", "protocols", "all").CombinedOutput(); err == nil {
				t.Logf("bird protocols:\n%s", o)
			}
		}
	})

	start := time.Now()
	hs := []*host{cl.addHost("host-1", 1), cl.addHost("host-2", 2), cl.addHost("host-3", 3)}
	blocks := make([]netip.Prefix, len(hs))
	for i, h := range hs {
		blocks[i] = cl.claimBlock(h.name)
	}
	for _, h := range hs {
		h.expectEstablished(1, bgp.PeerNode, converge)
	}
	for i, h := range hs {
		want := []string{hole(blocks[i])}
		for j := range hs {
			if j != i {
				want = append(want, via(blocks[j], hs[j]))
			}
		}
		h.expectRoutes(want, converge)
	}
	t.Logf("routes reflected to every host %v after start", time.Since(start).Round(time.Millisecond))
	waitUntil(t, "bird learns every block", converge, func() (bool, string) {
		o, _ := exec.Command(birdc, "-s", sock, "show", "route").CombinedOutput()
		s := string(o)
		for _, b := range blocks {
			if !strings.Contains(s, b.String()) {
				return false, s
			}
		}
		return true, s
	})
	for _, h := range hs {
		ps := h.peers()
		if len(ps) != 1 || ps[0].Address != birdAddr || ps[0].State != bgp.StateEstablished || ps[0].Type != bgp.PeerNode {
			t.Errorf("%s: sessions: %+v", h.name, ps)
		}
	}
	// No kernel protocol in BIRD: its namespace has no route to any block.
	rs, err := birdNS.Handle.RouteList(nil, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		for _, b := range blocks {
			if r.Dst != nil && r.Dst.String() == b.String() {
				t.Errorf("bird installed %v in its kernel", r)
			}
		}
	}
}
