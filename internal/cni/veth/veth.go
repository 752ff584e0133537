// Package veth wires a workload into its host the way Calico does, and
// checks and removes that wiring.
//
// The workload gets one veth pair. The host end is named by the caller
// (cali + hash), carries the MAC ee:ee:ee:ee:ee:ee, answers ARP for
// everything through proxy ARP, forwards, and is the target of one /32
// (/128) route per workload address. The container end (eth0) holds the
// workload's /32 and /128 addresses and sends everything to a gateway that
// exists only as an ARP answer: 169.254.1.1 for IPv4, the host end's
// link-local address fe80::ecee:eeff:feee:eeee for IPv6.
//
// All netlink work goes through handles bound to a namespace
// (netlink.NewHandleAt); only per-interface sysctls inside the container
// need a thread switch, which internal/netns does.
package veth

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/vishvananda/netlink"
	vnetns "github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/calico-go/calico/internal/netns"
)

// HostMAC is the MAC of every host-side workload interface.
var HostMAC = net.HardwareAddr{0xee, 0xee, 0xee, 0xee, 0xee, 0xee}

// Gateways the workload routes through.
var (
	GatewayV4 = netip.MustParseAddr("169.254.1.1")
	// GatewayV6 is the EUI-64 link-local address of HostMAC.
	GatewayV6 = netip.MustParseAddr("fe80::ecee:eeff:feee:eeee")
)

// Sentinel errors.
var (
	// ErrRouteConflict: another interface already routes a workload address.
	ErrRouteConflict = errors.New("host route belongs to another interface")
	// ErrInterfaceExists: the container already has an interface by that name.
	ErrInterfaceExists = errors.New("interface already exists in the container")
	// ErrMismatch: Check found the wiring different from what Setup makes.
	ErrMismatch = errors.New("workload wiring differs from the expected state")
)

// Spec describes one workload attachment.
type Spec struct {
	// HostName is the host-side interface name (at most 15 characters).
	HostName string
	// IfName is the container-side name (CNI_IFNAME).
	IfName string
	// ContainerNS is the path of the container's network namespace.
	ContainerNS string
	// MTU of both ends; 0 keeps the kernel default.
	MTU int
	// NumQueues sets the number of TX and RX queues of both ends (0: default).
	NumQueues int
	// Addrs are the workload addresses, each a /32 or /128.
	Addrs []netip.Prefix
	// AllowIPForwarding turns on forwarding inside the container.
	AllowIPForwarding bool
}

func (s Spec) validate() error {
	if s.HostName == "" || len(s.HostName) > 15 {
		return fmt.Errorf("host interface name %q: must be 1-15 characters", s.HostName)
	}
	if s.IfName == "" || len(s.IfName) > 15 {
		return fmt.Errorf("container interface name %q: must be 1-15 characters", s.IfName)
	}
	for _, a := range s.Addrs {
		if !a.IsValid() || a.Bits() != a.Addr().BitLen() {
			return fmt.Errorf("workload address %s: must be a /32 or /128", a)
		}
	}
	return nil
}

func (s Spec) families() (v4, v6 bool) {
	for _, a := range s.Addrs {
		if a.Addr().Is4() {
			v4 = true
		} else {
			v6 = true
		}
	}
	return v4, v6
}

// Attachment is what Setup made.
type Attachment struct {
	// ContainerMAC is the MAC of the container-side interface.
	ContainerMAC net.HardwareAddr
	// HostIndex is the host-side interface index.
	HostIndex int
}

// handles opens the container namespace and netlink handles for the host
// (the calling process's namespace) and the container.
type handles struct {
	ns   *netns.NS
	host *netlink.Handle
	ctr  *netlink.Handle
}

func openHandles(containerNS string) (*handles, error) {
	ns, err := netns.Open(containerNS)
	if err != nil {
		return nil, err
	}
	h := &handles{ns: ns}
	if h.host, err = netlink.NewHandle(); err != nil {
		h.close()
		return nil, fmt.Errorf("netlink handle: %w", err)
	}
	if h.ctr, err = netlink.NewHandleAt(vnetns.NsHandle(ns.Fd())); err != nil {
		h.close()
		return nil, fmt.Errorf("netlink handle in %s: %w", containerNS, err)
	}
	return h, nil
}

func (h *handles) close() {
	if h.ctr != nil {
		h.ctr.Close()
	}
	if h.host != nil {
		h.host.Close()
	}
	h.ns.Close()
}

// Setup creates the veth pair and everything around it. On failure it
// removes what it created, so the host is as before.
func Setup(s Spec) (_ Attachment, retErr error) {
	if err := s.validate(); err != nil {
		return Attachment{}, err
	}
	h, err := openHandles(s.ContainerNS)
	if err != nil {
		return Attachment{}, err
	}
	defer h.close()
	if _, err := h.ctr.LinkByName(s.IfName); err == nil {
		return Attachment{}, fmt.Errorf("%s in %s: %w", s.IfName, s.ContainerNS, ErrInterfaceExists)
	} else if !isNotFound(err) {
		return Attachment{}, fmt.Errorf("look up %s in the container: %w", s.IfName, err)
	}
	// A device left behind by an earlier attachment of the same workload.
	if err := RemoveHost(s.HostName); err != nil {
		return Attachment{}, err
	}
	la := netlink.NewLinkAttrs()
	la.Name = s.HostName
	la.MTU = s.MTU
	la.HardwareAddr = HostMAC
	if s.NumQueues > 0 {
		la.NumTxQueues, la.NumRxQueues = s.NumQueues, s.NumQueues
	}
	v := &netlink.Veth{LinkAttrs: la, PeerName: s.IfName, PeerNamespace: netlink.NsFd(h.ns.Fd())}
	if err := h.host.LinkAdd(v); err != nil {
		return Attachment{}, fmt.Errorf("create veth %s (container side %s): %w", s.HostName, s.IfName, err)
	}
	defer func() {
		if retErr != nil {
			if err := RemoveHost(s.HostName); err != nil {
				retErr = errors.Join(retErr, fmt.Errorf("undo: %w", err))
			}
		}
	}()
	hl, err := h.host.LinkByName(s.HostName)
	if err != nil {
		return Attachment{}, fmt.Errorf("look up %s: %w", s.HostName, err)
	}
	v4, v6 := s.families()
	if err := hostSysctls(s.HostName, v4, v6); err != nil {
		return Attachment{}, err
	}
	if err := h.host.LinkSetUp(hl); err != nil {
		return Attachment{}, fmt.Errorf("set %s up: %w", s.HostName, err)
	}
	mac, err := setupContainer(h, s, v6)
	if err != nil {
		return Attachment{}, err
	}
	for _, a := range s.Addrs {
		if err := addHostRoute(h.host, hl, a); err != nil {
			return Attachment{}, err
		}
	}
	return Attachment{ContainerMAC: mac, HostIndex: hl.Attrs().Index}, nil
}

// setupContainer configures the container end: sysctls, link up, gateway
// routes and addresses.
func setupContainer(h *handles, s Spec, v6 bool) (net.HardwareAddr, error) {
	cl, err := h.ctr.LinkByName(s.IfName)
	if err != nil {
		return nil, fmt.Errorf("look up %s in the container: %w", s.IfName, err)
	}
	if v6 || s.AllowIPForwarding {
		if err := h.ns.Do(func() error { return containerSysctls(s.IfName, v6, s.AllowIPForwarding) }); err != nil {
			return nil, err
		}
	}
	if err := h.ctr.LinkSetUp(cl); err != nil {
		return nil, fmt.Errorf("set %s up in the container: %w", s.IfName, err)
	}
	idx := cl.Attrs().Index
	for _, a := range s.Addrs {
		if !a.Addr().Is4() {
			continue
		}
		// The gateway is on-link; the default route goes through it.
		gw := &netlink.Route{LinkIndex: idx, Dst: ipNet(netip.PrefixFrom(GatewayV4, 32)), Scope: netlink.SCOPE_LINK}
		if err := h.ctr.RouteReplace(gw); err != nil {
			return nil, fmt.Errorf("add route %s dev %s in the container: %w", GatewayV4, s.IfName, err)
		}
		def := &netlink.Route{LinkIndex: idx, Dst: ipNet(netip.MustParsePrefix("0.0.0.0/0")), Gw: GatewayV4.AsSlice()}
		if err := h.ctr.RouteReplace(def); err != nil {
			return nil, fmt.Errorf("add default route via %s in the container: %w", GatewayV4, err)
		}
		// The host end answers ARP for the gateway (proxy ARP), but the
		// kernel may drop the first answer on a brand-new veth, which costs
		// the workload the 1 s ARP retransmit on its first packet. The
		// gateway's MAC is known, so write it down.
		neigh := &netlink.Neigh{LinkIndex: idx, Family: netlink.FAMILY_V4, State: netlink.NUD_PERMANENT,
			IP: GatewayV4.AsSlice(), HardwareAddr: HostMAC}
		if err := h.ctr.NeighSet(neigh); err != nil {
			return nil, fmt.Errorf("add neighbour %s lladdr %s in the container: %w", GatewayV4, HostMAC, err)
		}
		break
	}
	for _, a := range s.Addrs {
		addr := &netlink.Addr{IPNet: ipNet(a)}
		if a.Addr().Is6() {
			addr.Flags = unix.IFA_F_NODAD
		}
		if err := h.ctr.AddrAdd(cl, addr); err != nil {
			return nil, fmt.Errorf("add address %s to %s in the container: %w", a, s.IfName, err)
		}
	}
	if v6 {
		def := &netlink.Route{LinkIndex: idx, Dst: ipNet(netip.MustParsePrefix("::/0")), Gw: GatewayV6.AsSlice()}
		if err := h.ctr.RouteReplace(def); err != nil {
			return nil, fmt.Errorf("add default route via %s in the container: %w", GatewayV6, err)
		}
	}
	cl, err = h.ctr.LinkByName(s.IfName)
	if err != nil {
		return nil, fmt.Errorf("look up %s in the container: %w", s.IfName, err)
	}
	return cl.Attrs().HardwareAddr, nil
}

// addHostRoute routes a workload address to the host end, failing when
// another interface already routes it.
func addHostRoute(h *netlink.Handle, l netlink.Link, a netip.Prefix) error {
	dst := ipNet(a)
	routes, err := listRoutes(h, a, dst)
	if err != nil {
		return fmt.Errorf("list routes to %s: %w", a, err)
	}
	for _, r := range routes {
		if r.LinkIndex != 0 && r.LinkIndex != l.Attrs().Index {
			return fmt.Errorf("route %s already goes to interface %s: %w; another workload may hold this address "+
				"(release it from IPAM or delete the stale interface) or a static route covers it (remove it)",
				a, linkName(h, r.LinkIndex), ErrRouteConflict)
		}
	}
	r := &netlink.Route{LinkIndex: l.Attrs().Index, Dst: dst, Table: unix.RT_TABLE_MAIN}
	if a.Addr().Is4() {
		r.Scope = netlink.SCOPE_LINK
	}
	if err := h.RouteReplace(r); err != nil {
		return fmt.Errorf("add route %s dev %s: %w", a, l.Attrs().Name, err)
	}
	return nil
}

func listRoutes(h *netlink.Handle, a netip.Prefix, dst *net.IPNet) ([]netlink.Route, error) {
	fam := unix.AF_INET
	if a.Addr().Is6() {
		fam = unix.AF_INET6
	}
	filter := &netlink.Route{Dst: dst, Table: unix.RT_TABLE_MAIN}
	return retry(func() ([]netlink.Route, error) {
		return h.RouteListFiltered(fam, filter, netlink.RT_FILTER_DST|netlink.RT_FILTER_TABLE)
	})
}

func linkName(h *netlink.Handle, idx int) string {
	if l, err := h.LinkByIndex(idx); err == nil {
		return l.Attrs().Name
	}
	return fmt.Sprintf("#%d", idx)
}

// Remove deletes the container-side interface ifName inside the namespace
// at containerNS, which takes the host end and its routes with it. A
// namespace or interface that is already gone is not an error.
func Remove(containerNS, ifName string) error {
	if containerNS == "" {
		return nil
	}
	ns, err := netns.Open(containerNS)
	if errors.Is(err, netns.ErrNotExist) || errors.Is(err, netns.ErrNotNetNS) {
		return nil // the namespace is gone, and its interfaces with it
	}
	if err != nil {
		return err
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(vnetns.NsHandle(ns.Fd()))
	if err != nil {
		return fmt.Errorf("netlink handle in %s: %w", containerNS, err)
	}
	defer h.Close()
	l, err := h.LinkByName(ifName)
	if isNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("look up %s in %s: %w", ifName, containerNS, err)
	}
	if err := h.LinkDel(l); err != nil && !isNotFound(err) {
		return fmt.Errorf("delete %s in %s: %w", ifName, containerNS, err)
	}
	return nil
}

// RemoveHost deletes the host-side interface name if it exists.
func RemoveHost(name string) error {
	l, err := netlink.LinkByName(name)
	if isNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("look up %s: %w", name, err)
	}
	if err := netlink.LinkDel(l); err != nil && !isNotFound(err) {
		return fmt.Errorf("delete %s: %w", name, err)
	}
	return nil
}

// HostExists reports whether the host-side interface exists.
func HostExists(name string) (bool, error) {
	_, err := netlink.LinkByName(name)
	if isNotFound(err) {
		return false, nil
	}
	return err == nil, err
}

func isNotFound(err error) bool {
	var nf netlink.LinkNotFoundError
	return errors.As(err, &nf) || errors.Is(err, unix.ENODEV) || errors.Is(err, unix.ENOENT)
}

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// retry repeats a netlink dump that the kernel interrupted because the
// table changed meanwhile.
func retry[T any](f func() (T, error)) (T, error) {
	for i := 0; ; i++ {
		v, err := f()
		if errors.Is(err, netlink.ErrDumpInterrupted) && i < 5 {
			continue
		}
		return v, err
	}
}

// sysctl writes value to /proc/sys/<path> in the calling thread's network
// namespace.
func sysctl(path, value string) error {
	full := filepath.Join("/proc/sys", path)
	if err := os.WriteFile(full, []byte(value), 0o644); err != nil {
		return fmt.Errorf("set sysctl %s=%s: %w", strings.ReplaceAll(path, "/", "."), value, err)
	}
	return nil
}

type setting struct{ path, value string }

// hostSysctls configures the host end (before it is up, so that IPv6
// neither runs DAD nor accepts router advertisements).
func hostSysctls(name string, v4, v6 bool) error {
	var set []setting
	if v4 {
		set = append(set,
			setting{"net/ipv4/conf/" + name + "/route_localnet", "1"},
			setting{"net/ipv4/conf/" + name + "/proxy_arp", "1"},
			setting{"net/ipv4/neigh/" + name + "/proxy_delay", "0"},
			setting{"net/ipv4/conf/" + name + "/forwarding", "1"},
		)
	}
	if v6 {
		set = append(set,
			setting{"net/ipv6/conf/" + name + "/disable_ipv6", "0"},
			setting{"net/ipv6/conf/" + name + "/accept_dad", "0"},
			setting{"net/ipv6/conf/" + name + "/proxy_ndp", "1"},
			setting{"net/ipv6/conf/" + name + "/forwarding", "1"},
		)
	}
	for _, s := range set {
		if err := sysctl(s.path, s.value); err != nil {
			return err
		}
	}
	// Never accept router advertisements on a workload interface; the
	// setting exists only when the kernel has IPv6.
	if err := sysctl("net/ipv6/conf/"+name+"/accept_ra", "0"); err != nil && (v6 || !errors.Is(err, os.ErrNotExist)) {
		return err
	}
	return nil
}

// containerSysctls runs inside the container namespace.
func containerSysctls(ifName string, v6, forward bool) error {
	var set []setting
	if v6 {
		set = append(set,
			setting{"net/ipv6/conf/all/disable_ipv6", "0"},
			setting{"net/ipv6/conf/default/disable_ipv6", "0"},
			setting{"net/ipv6/conf/" + ifName + "/disable_ipv6", "0"},
			setting{"net/ipv6/conf/" + ifName + "/accept_dad", "0"},
		)
	}
	if forward {
		set = append(set, setting{"net/ipv4/ip_forward", "1"})
		if v6 {
			set = append(set, setting{"net/ipv6/conf/all/forwarding", "1"})
		}
	}
	for _, s := range set {
		if err := sysctl(s.path, s.value); err != nil {
			return fmt.Errorf("in the container: %w", err)
		}
	}
	return nil
}
