package node

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/calico-go/calico/internal/testutil/netnstest"
)

var (
	cniOnce sync.Once
	cniDir  string
	cniErr  error
)

// cniPlugins builds the calico CNI plugin and host-local once per test run.
func cniPlugins(t *testing.T) string {
	t.Helper()
	cniOnce.Do(func() {
		dir, err := os.MkdirTemp("", "calico-node-test-cni-")
		if err != nil {
			cniErr = err
			return
		}
		cniDir = dir
		cmd := exec.Command("go", "build", "-o", dir+"/", "github.com/calico-go/calico/cmd/calico",
			"github.com/containernetworking/plugins/plugins/ipam/host-local")
		if out, err := cmd.CombinedOutput(); err != nil {
			cniErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if cniErr != nil {
		t.Fatal(cniErr)
	}
	return cniDir
}

// addPod attaches a new pod namespace to the host with the real calico CNI
// plugin (host-local IPAM on the host's block, the node name read from the
// file calico-node wrote) and returns the pod and its address.
func (h *host) addPod(t *testing.T, bin string, block netip.Prefix, n int) (*netnstest.NS, netip.Addr) {
	t.Helper()
	pod := netnstest.New(t, "bgppod")
	addr := block.Addr()
	for i := 0; i < n+2; i++ {
		addr = addr.Next()
	}
	conf := map[string]any{
		"cniVersion": "1.0.0", "name": "k8s-pod-network", "type": "calico",
		"etcd_endpoints": h.etcdURL, "nodename_file": filepath.Join(h.cl.dir, h.name+".nodename"), "mtu": 1500,
		"ipam": map[string]any{"type": "host-local", "dataDir": filepath.Join(h.cl.dir, h.name+"-ipam"),
			"ranges": [][]map[string]string{{{"subnet": block.String(), "rangeStart": addr.String(), "rangeEnd": addr.String()}}}},
	}
	stdin, _ := json.Marshal(conf)
	id := fmt.Sprintf("%s-pod%d", h.name, n)
	cmd := exec.Command(filepath.Join(bin, "calico"))
	cmd.Env = []string{"CNI_COMMAND=ADD", "CNI_CONTAINERID=" + id, "CNI_NETNS=" + pod.Path(), "CNI_IFNAME=eth0", "CNI_PATH=" + bin}
	cmd.Stdin = bytes.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := h.ns.Do(cmd.Run); err != nil {
		t.Fatalf("CNI ADD on %s: %v\n%s\n%s", h.name, err, out.String(), errb.String())
	}
	var res struct {
		IPs []struct{ Address string } `json:"ips"`
	}
	if err := json.Unmarshal(out.Bytes(), &res); err != nil || len(res.IPs) != 1 {
		t.Fatalf("CNI result %s: %v", out.String(), err)
	}
	got := netip.MustParsePrefix(res.IPs[0].Address).Addr()
	if got != addr {
		t.Fatalf("pod address %s, want %s", got, addr)
	}
	t.Cleanup(func() {
		del := exec.Command(filepath.Join(bin, "calico"))
		del.Env = []string{"CNI_COMMAND=DEL", "CNI_CONTAINERID=" + id, "CNI_NETNS=" + pod.Path(), "CNI_IFNAME=eth0", "CNI_PATH=" + bin}
		del.Stdin = bytes.NewReader(stdin)
		_ = h.ns.Do(del.Run)
	})
	return pod, got
}

// TestPodToPodOverBGP: pods attached by the real calico CNI plugin on three
// hosts reach each other (ICMP and TCP) over the routes BGP learned. No
// policy dataplane runs, so nothing filters.
func TestPodToPodOverBGP(t *testing.T) {
	cl := newCluster(t)
	bin := cniPlugins(t)
	hs := []*host{cl.addHost("host-1", 1), cl.addHost("host-2", 2), cl.addHost("host-3", 3)}
	// The CNI plugin needs the node name file that start-up writes.
	for _, h := range hs {
		file := filepath.Join(cl.dir, h.name+".nodename")
		waitUntil(t, h.name+" start-up", 30*time.Second, func() (bool, string) {
			_, err := os.Stat(file)
			return err == nil, fmt.Sprint(err)
		})
	}
	type podInfo struct {
		ns   *netnstest.NS
		addr netip.Addr
	}
	var pods []podInfo
	for _, h := range hs {
		block := cl.claimBlock(h.name)
		ns, a := h.addPod(t, bin, block, 0)
		pods = append(pods, podInfo{ns, a})
	}
	for _, h := range hs {
		h.expectEstablished(2, "node-to-node mesh", converge)
	}
	for i, src := range pods {
		for j, dst := range pods {
			if i == j {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), converge)
			start := time.Now()
			if err := src.ns.Ping(ctx, dst.addr); err != nil {
				cancel()
				t.Fatalf("pod %s (host-%d) -> pod %s (host-%d): %v\nroutes on host-%d: %q", src.addr, i+1, dst.addr, j+1, err, i+1, hs[i].bgpRoutes())
			}
			cancel()
			t.Logf("ICMP %s -> %s ok after %v", src.addr, dst.addr, time.Since(start).Round(time.Millisecond))
		}
	}
	// TCP from each pod to the next host's pod.
	for i, src := range pods {
		dst := pods[(i+1)%len(pods)]
		l, err := dst.ns.Listen("tcp", net.JoinHostPort(dst.addr.String(), "8080"))
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			c, err := l.Accept()
			if err == nil {
				_, _ = io.Copy(c, c)
				c.Close()
			}
		}()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		c, err := src.ns.Dial(ctx, "tcp", net.JoinHostPort(dst.addr.String(), "8080"))
		cancel()
		if err != nil {
			t.Fatalf("TCP %s -> %s: %v", src.addr, dst.addr, err)
		}
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		msg := []byte("hello over bgp")
		if _, err := c.Write(msg); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, len(msg))
		if _, err := io.ReadFull(c, buf); err != nil || !bytes.Equal(buf, msg) {
			t.Fatalf("TCP echo %s -> %s: %q, %v", src.addr, dst.addr, buf, err)
		}
		c.Close()
		l.Close()
	}
}
