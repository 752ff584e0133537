package lab

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
	vnetns "github.com/vishvananda/netns"

	"github.com/calico-go/calico/internal/netns"
)

// bridgeName is the underlay bridge inside the underlay namespace.
const bridgeName = "underlay"

// ErrKernel: the kernel lacks a feature the lab needs.
var ErrKernel = errors.New("missing kernel feature")

// ErrOverlap: an address range of the lab overlaps the machine's own
// routes.
var ErrOverlap = errors.New("address range overlaps the host's routes")

// space is an open namespace with a netlink handle in it.
type space struct {
	*netns.NS
	name string
	h    *netlink.Handle
}

// createSpace makes a named namespace with loopback up.
func createSpace(name string) (_ *space, retErr error) {
	ns, err := netns.Create(name)
	if err != nil {
		return nil, err
	}
	defer func() {
		if retErr != nil {
			ns.Close()
			_ = netns.Remove(name)
		}
	}()
	sp, err := wrapSpace(ns, name)
	if err != nil {
		return nil, err
	}
	lo, err := sp.h.LinkByName("lo")
	if err == nil {
		err = sp.h.LinkSetUp(lo)
	}
	if err != nil {
		sp.h.Close()
		return nil, fmt.Errorf("loopback up in %s: %w", name, err)
	}
	return sp, nil
}

// openSpace opens an existing named namespace.
func openSpace(name string) (*space, error) {
	ns, err := netns.Open(filepath.Join(netns.Dir, name))
	if err != nil {
		return nil, err
	}
	sp, err := wrapSpace(ns, name)
	if err != nil {
		ns.Close()
		return nil, err
	}
	return sp, nil
}

func wrapSpace(ns *netns.NS, name string) (*space, error) {
	h, err := netlink.NewHandleAt(vnetns.NsHandle(ns.Fd()))
	if err != nil {
		return nil, fmt.Errorf("netlink in %s: %w", name, err)
	}
	return &space{NS: ns, name: name, h: h}, nil
}

func (s *space) Close() error {
	s.h.Close()
	return s.NS.Close()
}

// sysctl writes a sysctl (dotted form) inside the namespace.
func (s *space) sysctl(key, value string) error {
	path := filepath.Join("/proc/sys", strings.ReplaceAll(key, ".", "/"))
	return s.Do(func() error { return os.WriteFile(path, []byte(value), 0o644) })
}

// labSpaces lists the namespaces under netns.Dir that belong to the lab.
func labSpaces(lab string) []string {
	ents, err := os.ReadDir(netns.Dir)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), nsPrefix(lab)) {
			out = append(out, e.Name())
		}
	}
	return out
}

// makeUnderlay creates the underlay namespace with its bridge holding the
// gateway address.
func makeUnderlay(lab string, gw netip.Prefix) (*space, error) {
	sp, err := createSpace(underlayNS(lab))
	if err != nil {
		return nil, fmt.Errorf("underlay: %w", err)
	}
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: bridgeName}}
	if err := sp.h.LinkAdd(br); err != nil {
		sp.Close()
		return nil, fmt.Errorf("underlay bridge: %w", err)
	}
	err = errors.Join(
		sp.h.LinkSetAlias(br, linkAlias(lab)),
		sp.h.AddrAdd(br, &netlink.Addr{IPNet: ipNet(gw)}),
		sp.h.LinkSetUp(br),
	)
	if err != nil {
		sp.Close()
		return nil, fmt.Errorf("underlay bridge: %w", err)
	}
	return sp, nil
}

// attachHost gives the host namespace an eth0 on the underlay bridge with
// addr, a default route through the gateway and IP forwarding. The
// underlay end is named after the address's offset in the underlay.
func attachHost(lab string, ul, host *space, addr, gw netip.Prefix) error {
	peer := underlayPort(addr)
	la := netlink.NewLinkAttrs()
	la.Name = "eth0"
	if err := host.h.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: peer, PeerNamespace: netlink.NsFd(ul.Fd())}); err != nil {
		return fmt.Errorf("veth to the underlay: %w", err)
	}
	pl, err := ul.h.LinkByName(peer)
	if err != nil {
		return fmt.Errorf("underlay port %s: %w", peer, err)
	}
	br, err := ul.h.LinkByName(bridgeName)
	if err != nil {
		return fmt.Errorf("underlay bridge: %w", err)
	}
	if err := errors.Join(ul.h.LinkSetAlias(pl, linkAlias(lab)), ul.h.LinkSetMaster(pl, br), ul.h.LinkSetUp(pl)); err != nil {
		return fmt.Errorf("underlay port %s: %w", peer, err)
	}
	l, err := host.h.LinkByName("eth0")
	if err != nil {
		return fmt.Errorf("eth0: %w", err)
	}
	err = errors.Join(
		host.h.LinkSetAlias(l, linkAlias(lab)),
		host.h.AddrAdd(l, &netlink.Addr{IPNet: ipNet(addr)}),
		host.h.LinkSetUp(l),
	)
	if err != nil {
		return fmt.Errorf("eth0: %w", err)
	}
	if err := host.h.RouteAdd(&netlink.Route{LinkIndex: l.Attrs().Index, Gw: gw.Addr().AsSlice()}); err != nil {
		return fmt.Errorf("default route: %w", err)
	}
	return host.sysctl("net.ipv4.ip_forward", "1")
}

// underlayPort names a host's port on the bridge: "h" and the host
// address's offset in the underlay.
func underlayPort(addr netip.Prefix) string {
	a, base := addr.Addr().As4(), addr.Masked().Addr().As4()
	off := (uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])) -
		(uint32(base[0])<<24 | uint32(base[1])<<16 | uint32(base[2])<<8 | uint32(base[3]))
	return fmt.Sprintf("h%d", off)
}

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// probeKernel checks, in a throwaway namespace, that the kernel can make
// what the lab needs: a bridge, a veth pair, nftables tables and (for the
// vxlan backend) a VXLAN device.
func probeKernel(lab string, vxlan bool) (retErr error) {
	name := nsPrefix(lab) + "preflight"
	_ = netns.Remove(name)
	sp, err := createSpace(name)
	if err != nil {
		if errors.Is(err, fs.ErrPermission) {
			return fmt.Errorf("create a network namespace: %w", err)
		}
		return fmt.Errorf("network namespaces: %v: %w", err, ErrKernel)
	}
	defer func() {
		sp.Close()
		if err := netns.Remove(name); err != nil && retErr == nil {
			retErr = err
		}
	}()
	if err := sp.h.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "probe-br"}}); err != nil {
		return fmt.Errorf("bridge devices: %v: %w", err, ErrKernel)
	}
	if err := sp.h.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "probe-a"}, PeerName: "probe-b"}); err != nil {
		return fmt.Errorf("veth devices: %v: %w", err, ErrKernel)
	}
	if vxlan {
		if err := sp.h.LinkAdd(&netlink.Vxlan{LinkAttrs: netlink.LinkAttrs{Name: "probe-vx"}, VxlanId: 4096, Port: 4789}); err != nil {
			return fmt.Errorf("VXLAN devices (needed by --backend vxlan): %v: %w", err, ErrKernel)
		}
	}
	conn, err := nftables.New(nftables.WithNetNSFd(sp.Fd()))
	if err == nil {
		conn.AddTable(&nftables.Table{Family: nftables.TableFamilyINet, Name: "calico-lab-probe"})
		err = conn.Flush()
	}
	if err != nil {
		return fmt.Errorf("nftables (inet tables, needed by the policy engine): %v: %w", err, ErrKernel)
	}
	return nil
}

// checkRoutes fails when one of the ranges overlaps a route of the
// machine's own namespace (the main table, the default route aside) or an
// address on one of its interfaces.
func checkRoutes(ranges map[string]netip.Prefix) error {
	routes, err := netlink.RouteList(nil, netlink.FAMILY_V4)
	if err != nil {
		return fmt.Errorf("list the host's routes: %w", err)
	}
	type owned struct {
		p    netip.Prefix
		desc string
	}
	var have []owned
	for _, r := range routes {
		if r.Dst == nil {
			continue
		}
		p, ok := prefixOf(r.Dst)
		if !ok || p.Bits() == 0 {
			continue
		}
		p = p.Masked()
		dev := ""
		if l, err := netlink.LinkByIndex(r.LinkIndex); err == nil {
			dev = " dev " + l.Attrs().Name
		}
		have = append(have, owned{p, "route " + p.String() + dev})
	}
	addrs, err := netlink.AddrList(nil, netlink.FAMILY_V4)
	if err == nil {
		for _, a := range addrs {
			if p, ok := prefixOf(a.IPNet); ok && !p.Addr().IsLoopback() {
				have = append(have, owned{netip.PrefixFrom(p.Addr(), 32), "address " + p.String()})
			}
		}
	}
	for what, want := range ranges {
		for _, h := range have {
			if h.p.Overlaps(want) {
				return fmt.Errorf("%s %s overlaps the host's %s; choose another range: %w", what, want, h.desc, ErrOverlap)
			}
		}
	}
	return nil
}

func prefixOf(n *net.IPNet) (netip.Prefix, bool) {
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, _ := n.Mask.Size()
	return netip.PrefixFrom(a.Unmap(), ones), true
}
