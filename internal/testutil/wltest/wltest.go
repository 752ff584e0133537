// Package wltest attaches workload namespaces to a test host namespace the
// way Calico's CNI plugin does (a veth whose host side is named cali...,
// a /32 address in the workload, a link-local default gateway answered by
// proxy ARP on the host side, and a /32 route on the host), and gives
// tests short-timeout TCP, UDP and ICMP probes between namespaces.
//
// Everything happens inside namespaces made by netnstest; nothing touches
// the test machine's own network.
package wltest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/calico-go/calico/internal/testutil/netnstest"
)

// Gateway is the workloads' default gateway, answered by proxy ARP.
var Gateway = netip.MustParseAddr("169.254.1.1")

// Workload is a namespace attached to a host by a veth.
type Workload struct {
	*netnstest.NS
	// HostIface is the host side of the veth (cali...).
	HostIface string
	// Addr is the workload's address (on its eth0, /32).
	Addr netip.Addr
}

// Add creates a workload namespace with address addr, attached to host by
// a veth whose host side is hostIface.
func Add(tb testing.TB, host *netnstest.NS, hostIface string, addr netip.Addr) *Workload {
	tb.Helper()
	ns := netnstest.New(tb, "wl")
	la := netlink.NewLinkAttrs()
	la.Name = hostIface
	if err := host.Handle.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: "eth0", PeerNamespace: netlink.NsFd(ns.Fd())}); err != nil {
		tb.Fatalf("create veth %s: %v", hostIface, err)
	}
	tb.Cleanup(func() {
		if l, err := host.Handle.LinkByName(hostIface); err == nil {
			_ = host.Handle.LinkDel(l)
		}
	})
	for _, kv := range [][2]string{
		{"net/ipv4/conf/" + hostIface + "/proxy_arp", "1"},
		{"net/ipv4/neigh/" + hostIface + "/proxy_delay", "0"},
		{"net/ipv4/conf/" + hostIface + "/forwarding", "1"},
	} {
		if err := host.Sysctl(kv[0], kv[1]); err != nil {
			tb.Fatalf("sysctl %s: %v", kv[0], err)
		}
	}
	hl, err := host.Handle.LinkByName(hostIface)
	if err != nil {
		tb.Fatal(err)
	}
	if err := host.Handle.LinkSetUp(hl); err != nil {
		tb.Fatal(err)
	}
	if err := host.Handle.RouteAdd(&netlink.Route{LinkIndex: hl.Attrs().Index, Dst: netnstest.IPNet(netip.PrefixFrom(addr, 32)), Scope: netlink.SCOPE_LINK}); err != nil {
		tb.Fatalf("host route to %s: %v", addr, err)
	}
	wl, err := ns.Handle.LinkByName("eth0")
	if err != nil {
		tb.Fatal(err)
	}
	if err := ns.Handle.AddrAdd(wl, &netlink.Addr{IPNet: netnstest.IPNet(netip.PrefixFrom(addr, 32))}); err != nil {
		tb.Fatal(err)
	}
	if err := ns.Handle.LinkSetUp(wl); err != nil {
		tb.Fatal(err)
	}
	gw := netnstest.IPNet(netip.PrefixFrom(Gateway, 32))
	if err := ns.Handle.RouteAdd(&netlink.Route{LinkIndex: wl.Attrs().Index, Dst: gw, Scope: netlink.SCOPE_LINK}); err != nil {
		tb.Fatal(err)
	}
	if err := ns.Handle.RouteAdd(&netlink.Route{LinkIndex: wl.Attrs().Index, Gw: Gateway.AsSlice()}); err != nil {
		tb.Fatal(err)
	}
	return &Workload{NS: ns, HostIface: hostIface, Addr: addr}
}

// AddAddr adds a secondary address to the workload's eth0 (to send from an
// address the endpoint does not own).
func (w *Workload) AddAddr(tb testing.TB, a netip.Addr) {
	tb.Helper()
	l, err := w.Handle.LinkByName("eth0")
	if err != nil {
		tb.Fatal(err)
	}
	if err := w.Handle.AddrAdd(l, &netlink.Addr{IPNet: netnstest.IPNet(netip.PrefixFrom(a, 32))}); err != nil {
		tb.Fatal(err)
	}
}

// Servers runs TCP and UDP echo servers in a namespace until the test
// ends: TCP connections get their first line echoed, UDP datagrams are
// sent back.
func Servers(tb testing.TB, ns *netnstest.NS, addr netip.Addr, tcpPorts, udpPorts []uint16) {
	tb.Helper()
	var wg sync.WaitGroup
	var closers []io.Closer
	for _, p := range tcpPorts {
		l, err := ns.Listen("tcp", netip.AddrPortFrom(addr, p).String())
		if err != nil {
			tb.Fatalf("listen tcp %d in %s: %v", p, ns.Name, err)
		}
		closers = append(closers, l)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				go func() {
					defer c.Close()
					_ = c.SetDeadline(time.Now().Add(30 * time.Second))
					_, _ = io.Copy(c, c)
				}()
			}
		}()
	}
	for _, p := range udpPorts {
		var pc net.PacketConn
		if err := ns.Do(func() error {
			var err error
			pc, err = net.ListenPacket("udp", netip.AddrPortFrom(addr, p).String())
			return err
		}); err != nil {
			tb.Fatalf("listen udp %d in %s: %v", p, ns.Name, err)
		}
		closers = append(closers, pc)
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 2048)
			for {
				n, from, err := pc.ReadFrom(buf)
				if err != nil {
					return
				}
				_, _ = pc.WriteTo(buf[:n], from)
			}
		}()
	}
	tb.Cleanup(func() {
		for _, c := range closers {
			c.Close()
		}
		wg.Wait()
	})
}

// ErrNoAnswer: the probe got no answer within its timeout (dropped).
var ErrNoAnswer = errors.New("no answer")

// TCP connects from ns to dst and exchanges one line; nil means allowed.
func TCP(ns *netnstest.NS, dst netip.AddrPort, timeout time.Duration) error {
	return TCPFrom(ns, netip.Addr{}, dst, timeout)
}

// TCPFrom is TCP with a source address.
func TCPFrom(ns *netnstest.NS, src netip.Addr, dst netip.AddrPort, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var c net.Conn
	err := ns.Do(func() error {
		d := net.Dialer{}
		if src.IsValid() {
			d.LocalAddr = &net.TCPAddr{IP: src.AsSlice()}
		}
		var err error
		c, err = d.DialContext(ctx, "tcp", dst.String())
		return err
	})
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("tcp %s: %w", dst, ErrNoAnswer)
		}
		return fmt.Errorf("tcp %s: %w", dst, err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Write([]byte("ping\n")); err != nil {
		return fmt.Errorf("tcp %s write: %w", dst, err)
	}
	buf := make([]byte, 5)
	if _, err := io.ReadFull(c, buf); err != nil {
		return fmt.Errorf("tcp %s read: %w", dst, err)
	}
	return nil
}

// UDP sends a datagram from ns to dst and waits for the echo.
func UDP(ns *netnstest.NS, dst netip.AddrPort, timeout time.Duration) error {
	var c net.Conn
	if err := ns.Do(func() error {
		var err error
		c, err = net.Dial("udp", dst.String())
		return err
	}); err != nil {
		return fmt.Errorf("udp %s: %w", dst, err)
	}
	defer c.Close()
	deadline := time.Now().Add(timeout)
	_ = c.SetDeadline(deadline)
	buf := make([]byte, 16)
	for time.Now().Before(deadline) {
		if _, err := c.Write([]byte("ping")); err != nil {
			return fmt.Errorf("udp %s write: %w", dst, err)
		}
		_ = c.SetReadDeadline(time.Now().Add(timeout / 3))
		if _, err := c.Read(buf); err == nil {
			return nil
		}
	}
	return fmt.Errorf("udp %s: %w", dst, ErrNoAnswer)
}

// Ping sends ICMP echo requests from ns to dst until one is answered or
// the timeout passes.
func Ping(ns *netnstest.NS, dst netip.Addr, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := ns.Ping(ctx, dst); err != nil {
		return fmt.Errorf("ping %s: %w", dst, ErrNoAnswer)
	}
	return nil
}

// Route adds a route in ns to dst, through gateway gw when valid,
// otherwise directly out of device dev (scope link).
func Route(tb testing.TB, ns *netnstest.NS, dst netip.Prefix, gw netip.Addr, dev string) {
	tb.Helper()
	l, err := ns.Handle.LinkByName(dev)
	if err != nil {
		tb.Fatalf("route to %s: %v", dst, err)
	}
	r := &netlink.Route{LinkIndex: l.Attrs().Index, Dst: netnstest.IPNet(dst)}
	if gw.IsValid() {
		r.Gw = gw.AsSlice()
	} else {
		r.Scope = netlink.SCOPE_LINK
	}
	if err := ns.Handle.RouteAdd(r); err != nil {
		tb.Fatalf("route to %s in %s: %v", dst, ns.Name, err)
	}
}
