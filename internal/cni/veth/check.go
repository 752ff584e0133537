package veth

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Check compares the live wiring with what Setup(s) makes and returns every
// difference, each wrapping ErrMismatch (errors.Join). A missing namespace
// or interface is a difference too.
func Check(s Spec) error {
	if err := s.validate(); err != nil {
		return err
	}
	h, err := openHandles(s.ContainerNS)
	if err != nil {
		return mismatch("container network namespace %s: %v", s.ContainerNS, err)
	}
	defer h.close()
	var errs []error
	hl, err := h.host.LinkByName(s.HostName)
	if err != nil {
		errs = append(errs, mismatch("host interface %s is missing: %v", s.HostName, err))
	} else {
		errs = append(errs, checkHost(h.host, hl, s)...)
	}
	cl, err := h.ctr.LinkByName(s.IfName)
	if err != nil {
		errs = append(errs, mismatch("container interface %s is missing: %v", s.IfName, err))
	} else {
		if hl != nil && cl.Attrs().ParentIndex != hl.Attrs().Index {
			errs = append(errs, mismatch("container interface %s is not the peer of host interface %s", s.IfName, s.HostName))
		}
		errs = append(errs, checkContainer(h.ctr, cl, s)...)
	}
	return errors.Join(errs...)
}

func mismatch(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMismatch, fmt.Sprintf(format, args...))
}

func checkHost(h *netlink.Handle, l netlink.Link, s Spec) []error {
	var errs []error
	a := l.Attrs()
	if l.Type() != "veth" {
		errs = append(errs, mismatch("host interface %s is a %s, not a veth", s.HostName, l.Type()))
	}
	if !bytes.Equal(a.HardwareAddr, HostMAC) {
		errs = append(errs, mismatch("host interface %s has MAC %s, want %s", s.HostName, a.HardwareAddr, HostMAC))
	}
	if a.Flags&net.FlagUp == 0 {
		errs = append(errs, mismatch("host interface %s is down", s.HostName))
	}
	if s.MTU != 0 && a.MTU != s.MTU {
		errs = append(errs, mismatch("host interface %s has MTU %d, want %d", s.HostName, a.MTU, s.MTU))
	}
	for _, p := range s.Addrs {
		routes, err := listRoutes(h, p, ipNet(p))
		if err != nil {
			errs = append(errs, fmt.Errorf("list host routes to %s: %w", p, err))
			continue
		}
		found := false
		for _, r := range routes {
			if r.LinkIndex == a.Index {
				found = true
			} else {
				errs = append(errs, mismatch("host route %s goes to %s, want %s", p, linkName(h, r.LinkIndex), s.HostName))
			}
		}
		if !found && len(routes) == 0 {
			errs = append(errs, mismatch("host route %s dev %s is missing", p, s.HostName))
		}
	}
	return errs
}

func checkContainer(h *netlink.Handle, l netlink.Link, s Spec) []error {
	var errs []error
	a := l.Attrs()
	if a.Flags&net.FlagUp == 0 {
		errs = append(errs, mismatch("container interface %s is down", s.IfName))
	}
	if s.MTU != 0 && a.MTU != s.MTU {
		errs = append(errs, mismatch("container interface %s has MTU %d, want %d", s.IfName, a.MTU, s.MTU))
	}
	addrs, err := retry(func() ([]netlink.Addr, error) { return h.AddrList(l, unix.AF_UNSPEC) })
	if err != nil {
		return append(errs, fmt.Errorf("list addresses of %s in the container: %w", s.IfName, err))
	}
	have := map[netip.Prefix]bool{}
	for _, ad := range addrs {
		p, ok := prefixOf(ad.IPNet)
		if !ok || p.Addr().IsLinkLocalUnicast() {
			continue
		}
		have[p] = true
	}
	want := map[netip.Prefix]bool{}
	for _, p := range s.Addrs {
		want[p] = true
		if !have[p] {
			errs = append(errs, mismatch("container interface %s lacks address %s", s.IfName, p))
		}
	}
	for p := range have {
		if !want[p] {
			errs = append(errs, mismatch("container interface %s has unexpected address %s", s.IfName, p))
		}
	}
	v4, v6 := s.families()
	if v4 && !hasDefaultVia(h, a.Index, unix.AF_INET, GatewayV4) {
		errs = append(errs, mismatch("container has no default route via %s dev %s", GatewayV4, s.IfName))
	}
	if v6 && !hasDefaultVia(h, a.Index, unix.AF_INET6, GatewayV6) {
		errs = append(errs, mismatch("container has no default route via %s dev %s", GatewayV6, s.IfName))
	}
	return errs
}

func hasDefaultVia(h *netlink.Handle, idx, family int, gw netip.Addr) bool {
	routes, err := retry(func() ([]netlink.Route, error) {
		return h.RouteListFiltered(family, &netlink.Route{LinkIndex: idx, Table: unix.RT_TABLE_MAIN},
			netlink.RT_FILTER_OIF|netlink.RT_FILTER_TABLE)
	})
	if err != nil {
		return false
	}
	for _, r := range routes {
		if r.Dst != nil {
			if ones, _ := r.Dst.Mask.Size(); ones != 0 {
				continue
			}
		}
		if g, ok := netip.AddrFromSlice(r.Gw); ok && g.Unmap() == gw {
			return true
		}
	}
	return false
}

func prefixOf(n *net.IPNet) (netip.Prefix, bool) {
	if n == nil {
		return netip.Prefix{}, false
	}
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, _ := n.Mask.Size()
	return netip.PrefixFrom(a.Unmap(), ones), true
}
