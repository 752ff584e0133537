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
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	v3 "github.com/calico-go/calico/api/v3"
	"github.com/calico-go/calico/internal/datastore"
	"github.com/calico-go/calico/internal/kernel/route"
	"github.com/calico-go/calico/internal/kernel/vxlan"
	"github.com/calico-go/calico/internal/testutil/netnstest"
)

// Helpers for the networking tests: a cluster whose pool uses VXLAN (or
// not), hosts running calico-node with the policy engine, pods attached
// by the real calico CNI plugin, and readers of what the hosts' kernels
// hold.

// A second underlay subnet, routed by the underlay namespace.
const (
	subnet2GW = "198.51.100.254"
	vxlanMTU  = 1500 - vxlan.Overhead
)

// vnet is a cluster with a CNI build, its hosts and pods.
type vnet struct {
	*cluster
	bin   string
	hosts []*host
	pods  []vpod
}

type vpod struct {
	ns    *netnstest.NS
	addr  netip.Addr
	host  *host
	block netip.Prefix
}

// newVNet makes a cluster whose pool has the given VXLAN mode and
// natOutgoing on, and a profile that lets the pods (CNI workloads of
// network k8s-pod-network) talk to anything.
func newVNet(t *testing.T, mode v3.VXLANMode) *vnet {
	cl := newCluster(t)
	ctx := context.Background()
	got, err := cl.c.Get(ctx, datastore.Key{Kind: v3.KindIPPool, Name: "test-pool"})
	if err != nil {
		t.Fatal(err)
	}
	pool := got.(*v3.IPPool)
	pool.Spec.VXLANMode = mode
	if _, err := cl.c.Update(ctx, pool); err != nil {
		t.Fatal(err)
	}
	prof := v3.NewProfile()
	prof.Name = "k8s-pod-network"
	prof.Spec.Ingress = []v3.Rule{{Action: v3.Allow}}
	prof.Spec.Egress = []v3.Rule{{Action: v3.Allow}}
	cl.create(prof)
	return &vnet{cluster: cl, bin: cniPlugins(t)}
}

// addSubnet gives the underlay a second subnet and makes it route
// between the two.
func (v *vnet) addSubnet() {
	t := v.t
	br, err := v.ul.Handle.LinkByName("br0")
	if err != nil {
		t.Fatal(err)
	}
	if err := v.ul.Handle.AddrAdd(br, &netlink.Addr{IPNet: netnstest.IPNet(netip.MustParsePrefix(subnet2GW + "/24"))}); err != nil {
		t.Fatal(err)
	}
	if err := v.ul.Sysctl("net.ipv4.ip_forward", "1"); err != nil {
		t.Fatal(err)
	}
}

// host starts calico-node with the policy engine on a new host at addr
// and waits for its start-up (the node name file and a VXLAN tunnel
// address when the pool uses VXLAN).
func (v *vnet) host(name string, addr netip.Prefix, gw string, env ...string) *host {
	v.t.Helper()
	h := v.addHostAt(name, addr, netip.MustParseAddr(gw), append([]string{policyEnv + "=1"}, env...)...)
	file := filepath.Join(v.dir, name+".nodename")
	waitUntil(v.t, name+" start-up", 30*time.Second, func() (bool, string) {
		_, err := os.Stat(file)
		return err == nil, fmt.Sprint(err)
	})
	v.hosts = append(v.hosts, h)
	return h
}

// vtep returns the host's VXLAN tunnel address from its Node.
func (v *vnet) vtep(h *host) netip.Addr {
	v.t.Helper()
	var a netip.Addr
	waitUntil(v.t, h.name+" tunnel address", 30*time.Second, func() (bool, string) {
		got, err := v.c.Get(context.Background(), datastore.Key{Kind: v3.KindNode, Name: h.name})
		if err != nil {
			return false, err.Error()
		}
		a, err = netip.ParseAddr(got.(*v3.Node).Spec.IPv4VXLANTunnelAddr)
		return err == nil, fmt.Sprint(err)
	})
	return a
}

// pod claims a block for the host and attaches a pod in it.
func (v *vnet) pod(h *host) vpod {
	v.t.Helper()
	block := v.claimBlock(h.name)
	n := 0
	for _, p := range v.pods {
		if p.host == h {
			n++
		}
	}
	ns, a := h.addPodMTU(v.t, v.bin, block, n, vxlanMTU)
	p := vpod{ns: ns, addr: a, host: h, block: block}
	v.pods = append(v.pods, p)
	return p
}

// addPodMTU is addPod with a pod MTU (host-local IPAM on the block, at
// the block's address n+2).
func (h *host) addPodMTU(t *testing.T, bin string, block netip.Prefix, n, mtu int) (*netnstest.NS, netip.Addr) {
	t.Helper()
	pod := netnstest.New(t, "vxpod")
	addr := block.Addr()
	for i := 0; i < n+2; i++ {
		addr = addr.Next()
	}
	conf := map[string]any{
		"cniVersion": "1.0.0", "name": "k8s-pod-network", "type": "calico",
		"etcd_endpoints": h.etcdURL, "nodename_file": filepath.Join(h.cl.dir, h.name+".nodename"), "mtu": mtu,
		"ipam": map[string]any{"type": "host-local", "dataDir": filepath.Join(h.cl.dir, h.name+"-ipam"),
			"ranges": [][]map[string]string{{{"subnet": block.String(), "rangeStart": addr.String(), "rangeEnd": addr.String()}}}},
	}
	stdin, _ := json.Marshal(conf)
	id := fmt.Sprintf("%s-vxpod%d", h.name, n)
	run := func(cmd string) ([]byte, error) {
		c := exec.Command(filepath.Join(bin, "calico"))
		c.Env = []string{"CNI_COMMAND=" + cmd, "CNI_CONTAINERID=" + id, "CNI_NETNS=" + pod.Path(), "CNI_IFNAME=eth0", "CNI_PATH=" + bin}
		c.Stdin = bytes.NewReader(stdin)
		var out, errb bytes.Buffer
		c.Stdout, c.Stderr = &out, &errb
		err := h.ns.Do(c.Run)
		if err != nil {
			err = fmt.Errorf("%w\n%s\n%s", err, out.String(), errb.String())
		}
		return out.Bytes(), err
	}
	out, err := run("ADD")
	if err != nil {
		t.Fatalf("CNI ADD on %s: %v", h.name, err)
	}
	t.Cleanup(func() { _, _ = run("DEL") })
	var res struct {
		IPs []struct{ Address string } `json:"ips"`
	}
	if err := json.Unmarshal(out, &res); err != nil || len(res.IPs) != 1 ||
		netip.MustParsePrefix(res.IPs[0].Address).Addr() != addr {
		t.Fatalf("CNI result %s (%v), want address %s", out, err, addr)
	}
	return pod, addr
}

// dataplaneRoutes lists the host's routes with the dataplane's protocol,
// but for workload routes (the CNI plugin's copy is usually the one in
// the kernel). Blackholes are left out unless withHoles (with BGP
// running, BGP's copy may be the one in the kernel).
func (h *host) dataplaneRoutes(withHoles bool) []string {
	rs, err := h.ns.Handle.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Protocol: route.ProtocolDataplane, Table: route.MainTable},
		netlink.RT_FILTER_PROTOCOL|netlink.RT_FILTER_TABLE)
	if err != nil {
		h.cl.t.Fatal(err)
	}
	var out []string
	for _, r := range rs {
		switch {
		case r.Type == syscall.RTN_BLACKHOLE:
			if withHoles {
				out = append(out, "blackhole "+r.Dst.String())
			}
		case r.Gw != nil:
			s := r.Dst.String() + " via " + r.Gw.String()
			if r.Flags&int(netlink.FLAG_ONLINK) != 0 {
				s += " onlink " + linkName(h, r.LinkIndex)
			}
			out = append(out, s)
		default:
			if dev := linkName(h, r.LinkIndex); !strings.HasPrefix(dev, "cali") {
				out = append(out, r.Dst.String()+" dev "+dev)
			}
		}
	}
	slices.Sort(out)
	return out
}

func linkName(h *host, idx int) string {
	l, err := h.ns.Handle.LinkByIndex(idx)
	if err != nil {
		return fmt.Sprint(idx)
	}
	return l.Attrs().Name
}

// expectDataplaneRoutes waits until the host's dataplane routes are want.
func (h *host) expectDataplaneRoutes(want []string, withHoles bool, d time.Duration) {
	h.cl.t.Helper()
	want = slices.Clone(want)
	slices.Sort(want)
	waitUntil(h.cl.t, h.name+" dataplane routes", d, func() (bool, string) {
		got := h.dataplaneRoutes(withHoles)
		return slices.Equal(got, want), fmt.Sprintf("got %q, want %q", got, want)
	})
}

// tunnelPeers lists the permanent neighbour and FDB entries of the host's
// vxlan.calico as "<vtep> <mac>" and "fdb <mac> <node address>".
func (h *host) tunnelPeers() []string {
	l, err := h.ns.Handle.LinkByName(vxlan.DefaultName)
	if err != nil {
		return []string{"no device"}
	}
	var out []string
	ns, _ := h.ns.Handle.NeighList(l.Attrs().Index, netlink.FAMILY_V4)
	for _, n := range ns {
		if n.State&netlink.NUD_PERMANENT != 0 {
			out = append(out, n.IP.String()+" "+n.HardwareAddr.String())
		}
	}
	fdb, _ := h.ns.Handle.NeighList(l.Attrs().Index, syscall.AF_BRIDGE)
	for _, n := range fdb {
		out = append(out, "fdb "+n.HardwareAddr.String()+" "+n.IP.String())
	}
	slices.Sort(out)
	return out
}

// tunnel returns the host's vxlan.calico (nil when absent).
func (h *host) tunnel() *netlink.Vxlan {
	l, err := h.ns.Handle.LinkByName(vxlan.DefaultName)
	if err != nil {
		return nil
	}
	vx, _ := l.(*netlink.Vxlan)
	return vx
}

// reachAll checks ICMP between every pair of pods and TCP from each pod
// to the next.
func reachAll(t *testing.T, pods []vpod, d time.Duration) {
	t.Helper()
	start := time.Now()
	for i, src := range pods {
		for j, dst := range pods {
			if i == j {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), d)
			err := src.ns.Ping(ctx, dst.addr)
			cancel()
			if err != nil {
				t.Fatalf("ICMP pod %s (%s) -> pod %s (%s): %v\nroutes on %s: %q", src.addr, src.host.name, dst.addr, dst.host.name,
					err, src.host.name, src.host.dataplaneRoutes(true))
			}
		}
	}
	t.Logf("ICMP between %d pods ok after %v", len(pods), time.Since(start).Round(time.Millisecond))
	for i, src := range pods {
		dst := pods[(i+1)%len(pods)]
		if err := tcpEcho(src.ns, dst, 8090+i); err != nil {
			t.Fatalf("TCP %s -> %s: %v", src.addr, dst.addr, err)
		}
	}
}

// tcpEcho runs an echo server in dst and exchanges a message with it.
func tcpEcho(from *netnstest.NS, dst vpod, port int) error {
	l, err := dst.ns.Listen("tcp", net.JoinHostPort(dst.addr.String(), fmt.Sprint(port)))
	if err != nil {
		return err
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err == nil {
			_, _ = io.Copy(c, c)
			c.Close()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := from.Dial(ctx, "tcp", net.JoinHostPort(dst.addr.String(), fmt.Sprint(port)))
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	msg := bytes.Repeat([]byte("pod to pod "), 400) // larger than one segment
	if _, err := c.Write(msg); err != nil {
		return err
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil {
		return err
	}
	if !bytes.Equal(buf, msg) {
		return fmt.Errorf("echo differs")
	}
	return nil
}

// internet is a namespace outside the cluster, routed by the underlay,
// with a server that answers each connection with the source address it
// saw. It has no route to the pools: pods reach it only through NAT.
func (v *vnet) internet() netip.AddrPort {
	t := v.t
	t.Helper()
	inet := netnstest.New(t, "inet")
	la := netlink.NewLinkAttrs()
	la.Name = "eth0"
	if err := inet.Handle.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: "inet0", PeerNamespace: netlink.NsFd(v.ul.Fd())}); err != nil {
		t.Fatal(err)
	}
	for _, side := range []struct {
		ns   *netnstest.NS
		name string
		addr string
	}{{inet, "eth0", "203.0.113.10/24"}, {v.ul, "inet0", "203.0.113.1/24"}} {
		l, err := side.ns.Handle.LinkByName(side.name)
		if err != nil {
			t.Fatal(err)
		}
		if err := side.ns.Handle.AddrAdd(l, &netlink.Addr{IPNet: netnstest.IPNet(netip.MustParsePrefix(side.addr))}); err != nil {
			t.Fatal(err)
		}
		if err := side.ns.Handle.LinkSetUp(l); err != nil {
			t.Fatal(err)
		}
	}
	l, _ := inet.Handle.LinkByName("eth0")
	if err := inet.Handle.RouteAdd(&netlink.Route{LinkIndex: l.Attrs().Index, Dst: netnstest.IPNet(netip.MustParsePrefix("192.0.2.0/24")),
		Gw: netip.MustParseAddr("203.0.113.1").AsSlice()}); err != nil {
		t.Fatal(err)
	}
	if err := v.ul.Sysctl("net.ipv4.ip_forward", "1"); err != nil {
		t.Fatal(err)
	}
	srv := netip.MustParseAddrPort("203.0.113.10:7000")
	ln, err := inet.Listen("tcp", srv.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			host, _, _ := net.SplitHostPort(c.RemoteAddr().String())
			_, _ = io.WriteString(c, host)
			c.Close()
		}
	}()
	return srv
}

// seenAs connects from ns to srv and returns the source the server saw.
func seenAs(ns *netnstest.NS, srv netip.AddrPort) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	c, err := ns.Dial(ctx, "tcp", srv.String())
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(3 * time.Second))
	b, err := io.ReadAll(c)
	return strings.TrimSpace(string(b)), err
}
