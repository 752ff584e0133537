// Package netnstest gives privileged tests network namespaces of their own:
// uniquely named, removed at the end of the test, with helpers to run code,
// open sockets and send TCP and ICMP probes inside them. NewHost builds a
// "host" namespace with an uplink to an "underlay" namespace and default
// routes through it (proxy ARP answers only when the host has a route).
//
// Tests that need root call RequireRoot: it skips when not root, and fails
// instead under CALICO_TEST_PRIVILEGED=1 (CI).
package netnstest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	vnetns "github.com/vishvananda/netns"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"

	"github.com/calico-go/calico/internal/netns"
)

// RequireRoot skips the test unless it runs as root; under
// CALICO_TEST_PRIVILEGED=1 it fails instead.
func RequireRoot(tb testing.TB) {
	tb.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CALICO_TEST_PRIVILEGED") == "1" {
		tb.Fatal("this test needs root (CALICO_TEST_PRIVILEGED=1 is set)")
	}
	tb.Skip("needs root to create network namespaces")
}

var seq atomic.Int64

// NS is a network namespace made for one test.
type NS struct {
	*netns.NS
	Name string
	// Handle is a netlink handle bound to the namespace.
	Handle *netlink.Handle
}

// New creates a namespace named "<prefix>-<pid>-<n>" with loopback up and
// removes it at the end of the test.
func New(tb testing.TB, prefix string) *NS {
	tb.Helper()
	name := fmt.Sprintf("%s-%d-%d", prefix, os.Getpid(), seq.Add(1))
	ns, err := netns.Create(name)
	if err != nil {
		tb.Fatalf("create namespace: %v", err)
	}
	h, err := netlink.NewHandleAt(vnetns.NsHandle(ns.Fd()))
	if err != nil {
		ns.Close()
		_ = netns.Remove(name)
		tb.Fatalf("netlink handle in %s: %v", name, err)
	}
	n := &NS{NS: ns, Name: name, Handle: h}
	tb.Cleanup(func() {
		h.Close()
		ns.Close()
		if err := netns.Remove(name); err != nil {
			tb.Errorf("remove namespace %s: %v", name, err)
		}
	})
	lo, err := h.LinkByName("lo")
	if err == nil {
		err = h.LinkSetUp(lo)
	}
	if err != nil {
		tb.Fatalf("loopback up in %s: %v", name, err)
	}
	return n
}

// Remove deletes the namespace's name early (simulating a runtime that
// destroyed the sandbox). The namespace itself dies once nothing holds it.
func (n *NS) Remove(tb testing.TB) {
	tb.Helper()
	n.Handle.Close()
	n.NS.Close()
	if err := netns.Remove(n.Name); err != nil {
		tb.Fatalf("remove namespace %s: %v", n.Name, err)
	}
}

// Sysctl writes a sysctl (dotted or slash form) inside the namespace.
func (n *NS) Sysctl(key, value string) error {
	path := filepath.Join("/proc/sys", strings.ReplaceAll(key, ".", "/"))
	return n.Do(func() error { return os.WriteFile(path, []byte(value), 0o644) })
}

// Listen opens a listener inside the namespace.
func (n *NS) Listen(network, addr string) (net.Listener, error) {
	var l net.Listener
	err := n.Do(func() error {
		var err error
		l, err = net.Listen(network, addr)
		return err
	})
	return l, err
}

// Dial connects from inside the namespace.
func (n *NS) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var c net.Conn
	err := n.Do(func() error {
		var err error
		var d net.Dialer
		c, err = d.DialContext(ctx, network, addr)
		return err
	})
	return c, err
}

// Forward listens on 127.0.0.1 inside the namespace and relays every
// connection to target, dialled from the caller's namespace; it returns the
// listening address. It lets processes in the namespace reach a server (an
// embedded etcd) that runs in the test's own namespace. It stops at the end
// of the test.
func (n *NS) Forward(tb testing.TB, target string) string {
	tb.Helper()
	l, err := n.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("forwarder in %s: %v", n.Name, err)
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	tb.Cleanup(func() {
		close(done)
		l.Close()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			in, err := l.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				relay(in, target, done)
			}()
		}
	}()
	return l.Addr().String()
}

func relay(in net.Conn, target string, done <-chan struct{}) {
	defer in.Close()
	out, err := net.Dial("tcp", target)
	if err != nil {
		return
	}
	defer out.Close()
	finished := make(chan struct{}, 2)
	cp := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		if tc, ok := dst.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
		finished <- struct{}{}
	}
	go cp(out, in)
	go cp(in, out)
	for i := 0; i < 2; i++ {
		select {
		case <-finished:
		case <-done:
			return
		}
	}
}

// Ping sends ICMP echo requests from inside the namespace until dst
// answers or ctx ends.
func (n *NS) Ping(ctx context.Context, dst netip.Addr) error {
	var conn *icmp.PacketConn
	network, laddr := "ip4:icmp", "0.0.0.0"
	var typ icmp.Type = ipv4.ICMPTypeEcho
	proto := 1
	if dst.Is6() {
		network, laddr, typ, proto = "ip6:ipv6-icmp", "::", ipv6.ICMPTypeEchoRequest, 58
	}
	if err := n.Do(func() error {
		var err error
		conn, err = icmp.ListenPacket(network, laddr)
		return err
	}); err != nil {
		return fmt.Errorf("icmp socket in %s: %w", n.Name, err)
	}
	defer conn.Close()
	id := int(seq.Add(1) & 0xffff)
	for i := 1; ; i++ {
		msg := icmp.Message{Type: typ, Body: &icmp.Echo{ID: id, Seq: i, Data: []byte("calico-netnstest")}}
		b, err := msg.Marshal(nil)
		if err != nil {
			return err
		}
		if _, err := conn.WriteTo(b, &net.IPAddr{IP: dst.AsSlice()}); err != nil {
			return fmt.Errorf("send echo to %s from %s: %w", dst, n.Name, err)
		}
		if ok, err := awaitReply(conn, proto, dst, id); ok || err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("no echo reply from %s to %s: %w", dst, n.Name, ctx.Err())
		default:
		}
	}
}

func awaitReply(conn *icmp.PacketConn, proto int, dst netip.Addr, id int) (bool, error) {
	buf := make([]byte, 1500)
	deadline := time.Now().Add(300 * time.Millisecond)
	for {
		_ = conn.SetReadDeadline(deadline)
		nr, from, err := conn.ReadFrom(buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return false, nil
			}
			return false, err
		}
		src, _ := netip.AddrFromSlice(from.(*net.IPAddr).IP)
		if src.Unmap() != dst {
			continue
		}
		m, err := icmp.ParseMessage(proto, buf[:nr])
		if err != nil {
			continue
		}
		if e, ok := m.Body.(*icmp.Echo); ok && e.ID == id && (m.Type == ipv4.ICMPTypeEchoReply || m.Type == ipv6.ICMPTypeEchoReply) {
			return true, nil
		}
	}
}

// Host is a "host" namespace wired to an "underlay" namespace by a veth
// pair, with default routes (IPv4 and IPv6) towards the underlay and
// forwarding on, the way calico-node leaves a host.
type Host struct {
	*NS
	Underlay *NS
	// Addr and Addr6 are the host's uplink addresses; UnderlayAddr and
	// UnderlayAddr6 the underlay's (the default gateway).
	Addr, Addr6                 netip.Addr
	UnderlayAddr, UnderlayAddr6 netip.Addr
}

// NewHost builds a Host. Addresses come from the documentation ranges
// (192.0.2.0/24, 2001:db8::/64); nothing leaves the two namespaces.
func NewHost(tb testing.TB) *Host {
	tb.Helper()
	h := &Host{
		NS:            New(tb, "cnihost"),
		Underlay:      New(tb, "cniul"),
		Addr:          netip.MustParseAddr("192.0.2.1"),
		UnderlayAddr:  netip.MustParseAddr("192.0.2.2"),
		Addr6:         netip.MustParseAddr("2001:db8::1"),
		UnderlayAddr6: netip.MustParseAddr("2001:db8::2"),
	}
	la := netlink.NewLinkAttrs()
	la.Name = "uplink"
	if err := h.Handle.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: "uplink", PeerNamespace: netlink.NsFd(h.Underlay.Fd())}); err != nil {
		tb.Fatalf("create uplink: %v", err)
	}
	for _, side := range []struct {
		ns       *NS
		a4, a6   netip.Addr
		gw4, gw6 netip.Addr
	}{{h.NS, h.Addr, h.Addr6, h.UnderlayAddr, h.UnderlayAddr6}, {h.Underlay, h.UnderlayAddr, h.UnderlayAddr6, netip.Addr{}, netip.Addr{}}} {
		if err := side.ns.Sysctl("net/ipv6/conf/uplink/accept_dad", "0"); err != nil {
			tb.Fatalf("uplink sysctl: %v", err)
		}
		l, err := side.ns.Handle.LinkByName("uplink")
		if err != nil {
			tb.Fatal(err)
		}
		for _, a := range []netip.Prefix{netip.PrefixFrom(side.a4, 24), netip.PrefixFrom(side.a6, 64)} {
			if err := side.ns.Handle.AddrAdd(l, &netlink.Addr{IPNet: IPNet(a)}); err != nil {
				tb.Fatalf("address %s in %s: %v", a, side.ns.Name, err)
			}
		}
		if err := side.ns.Handle.LinkSetUp(l); err != nil {
			tb.Fatal(err)
		}
		for _, gw := range []netip.Addr{side.gw4, side.gw6} {
			if !gw.IsValid() {
				continue
			}
			if err := side.ns.Handle.RouteAdd(&netlink.Route{LinkIndex: l.Attrs().Index, Gw: gw.AsSlice()}); err != nil {
				tb.Fatalf("default route via %s in %s: %v", gw, side.ns.Name, err)
			}
		}
	}
	for _, kv := range [][2]string{{"net/ipv4/ip_forward", "1"}, {"net/ipv6/conf/all/forwarding", "1"}} {
		if err := h.Sysctl(kv[0], kv[1]); err != nil {
			tb.Fatalf("sysctl %s in host: %v", kv[0], err)
		}
	}
	return h
}

// IPNet converts a prefix to a *net.IPNet (address bits kept).
func IPNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}
