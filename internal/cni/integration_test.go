package cni_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	v3 "github.com/calico-go/calico/api/v3"
	"github.com/calico-go/calico/internal/cni/veth"
	"github.com/calico-go/calico/internal/testutil/netnstest"
)

// TestTwoPodsTalk adds two Kubernetes pods for every supported CNI version
// and checks the addresses, routes and neighbour entries on both sides, the
// WorkloadEndpoints, and real ICMP and TCP between the pods and the host.
func TestTwoPodsTalk(t *testing.T) {
	f := newFixture(t)
	for _, version := range []string{"0.3.1", "0.4.0", "1.0.0", "1.1.0"} {
		t.Run(version, func(t *testing.T) {
			f := f.with(t)
			list := f.conflist(netSpec{cniVersion: version, mtu: 1400})
			a, b := f.newPod("shop", "web-"+version), f.newPod("shop", "db-"+version)
			resA, resB := f.mustAdd(list, a), f.mustAdd(list, b)
			ipA, ipB := podAddr(t, resA, false), podAddr(t, resB, false)
			if ipA == ipB {
				t.Fatalf("both pods got %s", ipA)
			}
			for _, p := range []struct {
				pod *pod
				res *types100.Result
				ip  netip.Addr
			}{{a, resA, ipA}, {b, resB, ipB}} {
				f.assertWired(t, list, p.pod, p.res, []netip.Addr{p.ip}, 1400)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			assertPing(ctx, t, a.ns, ipB)
			assertPing(ctx, t, b.ns, ipA)
			assertPing(ctx, t, a.ns, f.host.Addr)
			assertTCP(ctx, t, b.ns, a.ns, ipA)
			assertTCP(ctx, t, a.ns, b.ns, ipB)
			assertTCP(ctx, t, a.ns, f.host.NS, f.host.Addr)
			assertTCP(ctx, t, f.host.NS, a.ns, ipA)
			assertGatewayNeighbour(t, a)
			assertGatewayNeighbour(t, b)
			f.mustDel(list, a)
			f.mustDel(list, b)
			for _, p := range []*pod{a, b} {
				if name := f.hostVeth(p, list); f.hostLinkExists(name) {
					t.Errorf("%s still exists after DEL", name)
				}
				if f.endpoint(p, list.Name) != nil {
					t.Errorf("endpoint of %s still exists after DEL", p.name)
				}
			}
			if r := f.reservations(list.Name); len(r) != 0 {
				t.Errorf("addresses still reserved after DEL: %v", r)
			}
		})
	}
}

// TestDualStack gives pods an IPv4 and an IPv6 address and checks IPv6
// routes and traffic.
func TestDualStack(t *testing.T) {
	f := newFixture(t)
	list := f.conflist(netSpec{ranges: [][]map[string]string{{{"subnet": "10.244.2.0/24"}}, {{"subnet": "fd00:10:244:2::/64"}}}})
	a, b := f.newPod("shop", "v6-a"), f.newPod("shop", "v6-b")
	resA, resB := f.mustAdd(list, a), f.mustAdd(list, b)
	a4, a6, b6 := podAddr(t, resA, false), podAddr(t, resA, true), podAddr(t, resB, true)
	f.assertWired(t, list, a, resA, []netip.Addr{a4, a6}, 1500)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	assertPing(ctx, t, a.ns, b6)
	assertPing(ctx, t, b.ns, a6)
	assertTCP(ctx, t, a.ns, b.ns, b6)
	assertTCP(ctx, t, a.ns, f.host.NS, f.host.Addr6)
	if err := f.check(list, a); err != nil {
		t.Errorf("CHECK: %v", err)
	}
	f.mustDel(list, a)
	f.mustDel(list, b)
	if r := f.reservations(list.Name); len(r) != 0 {
		t.Errorf("addresses still reserved: %v", r)
	}
}

// assertWired checks one pod's wiring against what Calico makes.
func (f *fixture) assertWired(t *testing.T, list *libcni.NetworkConfigList, p *pod, res *types100.Result, ips []netip.Addr, mtu int) {
	t.Helper()
	hostName := f.hostVeth(p, list)
	if len(res.Interfaces) != 2 || res.Interfaces[0].Name != hostName || res.Interfaces[1].Name != p.ifName ||
		res.Interfaces[1].Sandbox != p.ns.Path() {
		t.Errorf("result interfaces %+v", res.Interfaces)
	}
	hl, err := f.host.Handle.LinkByName(hostName)
	if err != nil {
		t.Fatalf("host veth %s: %v", hostName, err)
	}
	if hl.Attrs().HardwareAddr.String() != "ee:ee:ee:ee:ee:ee" || hl.Attrs().MTU != mtu || hl.Attrs().Flags&net.FlagUp == 0 {
		t.Errorf("host veth %s: mac %s mtu %d flags %v", hostName, hl.Attrs().HardwareAddr, hl.Attrs().MTU, hl.Attrs().Flags)
	}
	for _, s := range []string{"ipv4/conf/" + hostName + "/proxy_arp", "ipv4/neigh/" + hostName + "/proxy_delay",
		"ipv4/conf/" + hostName + "/forwarding", "ipv4/conf/" + hostName + "/route_localnet"} {
		want := "1"
		if strings.Contains(s, "proxy_delay") {
			want = "0"
		}
		if got := readSysctl(t, f.host.NS, "net/"+s); got != want {
			t.Errorf("host sysctl %s = %s, want %s", s, got, want)
		}
	}
	cl, err := p.ns.Handle.LinkByName(p.ifName)
	if err != nil {
		t.Fatalf("container %s: %v", p.ifName, err)
	}
	if cl.Attrs().MTU != mtu || cl.Attrs().HardwareAddr.String() != res.Interfaces[1].Mac {
		t.Errorf("container %s: mtu %d mac %s (result mac %s)", p.ifName, cl.Attrs().MTU, cl.Attrs().HardwareAddr, res.Interfaces[1].Mac)
	}
	addrs, err := p.ns.Handle.AddrList(cl, unix.AF_UNSPEC)
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, a := range addrs {
		have[a.IPNet.String()] = true
	}
	var nets []string
	for _, ip := range ips {
		want := netip.PrefixFrom(ip, ip.BitLen()).String()
		nets = append(nets, want)
		if !have[want] {
			t.Errorf("container lacks %s (has %v)", want, have)
		}
		routes := f.hostRoutes(ip)
		if len(routes) != 1 || routes[0].LinkIndex != hl.Attrs().Index {
			t.Errorf("host routes to %s: %+v, want one via %s", ip, routes, hostName)
		} else if ip.Is4() && routes[0].Scope != netlink.SCOPE_LINK {
			t.Errorf("host route %s scope %v, want link", ip, routes[0].Scope)
		}
		gw := veth.GatewayV4
		fam := unix.AF_INET
		if ip.Is6() {
			gw, fam = veth.GatewayV6, unix.AF_INET6
		}
		if !hasRoute(t, p.ns, fam, "", gw) {
			t.Errorf("container has no default route via %s", gw)
		}
		if ip.Is4() && !hasRoute(t, p.ns, fam, "169.254.1.1/32", netip.Addr{}) {
			t.Errorf("container has no route 169.254.1.1/32 scope link")
		}
	}
	wep := f.endpoint(p, list.Name)
	if wep == nil {
		t.Fatalf("no WorkloadEndpoint for %s", p.id)
	}
	if wep.Spec.InterfaceName != hostName || wep.Spec.ContainerID != p.id || wep.Spec.Node != f.node ||
		wep.Spec.MAC != res.Interfaces[1].Mac || strings.Join(wep.Spec.IPNetworks, ",") != strings.Join(sorted(nets), ",") {
		t.Errorf("endpoint spec %+v", wep.Spec)
	}
	if p.name != "" {
		if wep.Namespace != p.namespace || wep.Spec.Pod != p.name || wep.Spec.Orchestrator != "k8s" ||
			wep.Labels[v3.LabelNamespace] != p.namespace || wep.Labels[v3.LabelOrchestrator] != "k8s" ||
			strings.Join(wep.Spec.Profiles, ",") != "kns."+p.namespace {
			t.Errorf("k8s endpoint %s/%s: %+v labels %v", wep.Namespace, wep.Name, wep.Spec, wep.Labels)
		}
		if want := v3.WorkloadEndpointName(f.node, "k8s", p.name, p.ifName); wep.Name != want {
			t.Errorf("endpoint name %q, want %q", wep.Name, want)
		}
	}
}

func sorted(s []string) []string {
	out := append([]string(nil), s...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

func readSysctl(t *testing.T, ns *netnstest.NS, path string) string {
	t.Helper()
	var out []byte
	if err := ns.Do(func() error {
		var err error
		out, err = readFile("/proc/sys/" + path)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(out))
}

// hasRoute reports whether the namespace's main table has a route to dst
// ("" for the default route) via gw (invalid: no gateway).
func hasRoute(t *testing.T, ns *netnstest.NS, family int, dst string, gw netip.Addr) bool {
	t.Helper()
	routes, err := ns.Handle.RouteList(nil, family)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range routes {
		d := ""
		if r.Dst != nil {
			if ones, _ := r.Dst.Mask.Size(); ones != 0 {
				d = r.Dst.String()
			}
		}
		g, _ := netip.AddrFromSlice(r.Gw)
		if d == dst && g.Unmap() == gw {
			if dst != "" && !gw.IsValid() && r.Scope != netlink.SCOPE_LINK {
				continue
			}
			return true
		}
	}
	return false
}

func assertPing(ctx context.Context, t *testing.T, from *netnstest.NS, to netip.Addr) {
	t.Helper()
	if err := from.Ping(ctx, to); err != nil {
		t.Errorf("ping %s from %s: %v", to, from.Name, err)
	}
}

// assertTCP listens in server on addr and connects from client, checking
// that bytes go both ways.
func assertTCP(ctx context.Context, t *testing.T, client, server *netnstest.NS, addr netip.Addr) {
	t.Helper()
	l, err := server.Listen("tcp", net.JoinHostPort(addr.String(), "0"))
	if err != nil {
		t.Errorf("listen on %s in %s: %v", addr, server.Name, err)
		return
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = io.Copy(c, io.LimitReader(c, 5))
	}()
	if err := echo(ctx, client, l.Addr().String()); err != nil {
		t.Errorf("TCP %s -> %s: %v", client.Name, l.Addr(), err)
	}
}

// echo sends "hello" to an echo server at addr from ns and reads it back.
func echo(ctx context.Context, ns *netnstest.NS, addr string) error {
	c, err := ns.Dial(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte("hello")); err != nil {
		return err
	}
	buf := make([]byte, 5)
	if _, err := io.ReadFull(c, buf); err != nil {
		return err
	}
	if !bytes.Equal(buf, []byte("hello")) {
		return fmt.Errorf("echo returned %q", buf)
	}
	return nil
}

// assertGatewayNeighbour checks that the pod resolved its gateway to the
// host end's MAC through proxy ARP.
func assertGatewayNeighbour(t *testing.T, p *pod) {
	t.Helper()
	l, err := p.ns.Handle.LinkByName(p.ifName)
	if err != nil {
		t.Fatal(err)
	}
	neighs, err := p.ns.Handle.NeighList(l.Attrs().Index, unix.AF_INET)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range neighs {
		if n.IP.Equal(veth.GatewayV4.AsSlice()) && n.HardwareAddr.String() == "ee:ee:ee:ee:ee:ee" {
			return
		}
	}
	t.Errorf("pod %s has no neighbour entry 169.254.1.1 -> ee:ee:ee:ee:ee:ee: %+v", p.name, neighs)
}
