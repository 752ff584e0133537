// Package vxlan programs Calico's VXLAN tunnel device (vxlan.calico) and
// its per-peer forwarding state, by read-back and diff.
//
// The device has VNI 4096 and UDP port 4789 by default, learning off, and
// the node's underlay address as its source, on the interface that holds
// that address (the parent); its MTU is the parent's less 50 unless set.
// Each remote tunnel endpoint (VTEP) gets a permanent neighbour entry
// (VTEP address → VTEP MAC) and a permanent FDB entry (AF_BRIDGE,
// NTF_SELF: VTEP MAC → the remote node's underlay address). Routes through
// the device ("<block> via <VTEP address> dev vxlan.calico onlink") are
// programmed by package route.
//
// Set records the desired device and peers; Apply makes the kernel match:
// the device is created, or deleted and created again when a parameter
// that cannot change in place (VNI, port, learning, parent, source)
// differs; MTU, MAC, address and up state are fixed in place; neighbour
// and FDB entries are added, replaced and deleted so that exactly the
// desired ones remain. Everything on the device is ours (its name is), so
// Apply is idempotent and cheap when nothing changed (a few dumps), and
// callers run it periodically to repair what someone changed or deleted:
// a device deleted by hand comes back with all its entries. With no
// device desired (Set(nil, nil)), Apply deletes the device if it exists.
package vxlan

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Defaults (SPEC §7).
const (
	DefaultName = "vxlan.calico"
	DefaultVNI  = 4096
	DefaultPort = 4789
	// Overhead is what VXLAN over IPv4 adds to a packet.
	Overhead = 50
)

// ErrNoParent: no interface holds the device's ParentAddr.
var ErrNoParent = errors.New("no interface holds the VXLAN parent address")

// Device is the desired tunnel device.
type Device struct {
	Name string // default DefaultName
	VNI  int    // default DefaultVNI
	Port int    // default DefaultPort
	// MTU is the device MTU; 0 means the parent's MTU less Overhead.
	MTU int
	// Addr is this node's VTEP address, assigned as a single-address
	// prefix.
	Addr netip.Addr
	MAC  net.HardwareAddr
	// ParentAddr is this node's underlay address: the source of the
	// encapsulated packets; the interface holding it is the parent.
	ParentAddr netip.Addr
}

// Peer is a remote tunnel endpoint.
type Peer struct {
	// Addr is the remote VTEP address, MAC its MAC.
	Addr netip.Addr
	MAC  net.HardwareAddr
	// NodeAddr is the remote node's underlay address.
	NodeAddr netip.Addr
}

// Options configure a Tunnel.
type Options struct {
	// NetNSFd is the network namespace to program (0: the caller's).
	NetNSFd int
	Logger  *slog.Logger
}

// Stats says what one Apply did.
type Stats struct {
	// Created is set when the device was (re)created; Fixed counts
	// attributes fixed in place (MTU, MAC, up, address).
	Created  bool
	Deleted  bool
	Fixed    int
	NeighSet int
	NeighDel int
	FDBSet   int
	FDBDel   int
}

// Changed reports whether Apply wrote anything.
func (s Stats) Changed() bool {
	return s.Created || s.Deleted || s.Fixed+s.NeighSet+s.NeighDel+s.FDBSet+s.FDBDel > 0
}

// Tunnel owns the VXLAN device of one network namespace.
type Tunnel struct {
	h   *netlink.Handle
	log *slog.Logger

	mu    sync.Mutex
	dev   *Device
	peers []Peer
	name  string // the name of the device last desired
}

// New opens a netlink handle in the namespace; nothing is written before
// Apply.
func New(opts Options) (*Tunnel, error) {
	var h *netlink.Handle
	var err error
	if opts.NetNSFd != 0 {
		h, err = netlink.NewHandleAt(netns.NsHandle(opts.NetNSFd), unix.NETLINK_ROUTE)
	} else {
		h, err = netlink.NewHandle(unix.NETLINK_ROUTE)
	}
	if err != nil {
		return nil, fmt.Errorf("open netlink handle: %w", err)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Tunnel{h: h, log: log, name: DefaultName}, nil
}

// Close releases the netlink handle.
func (t *Tunnel) Close() { t.h.Close() }

// Set records the desired device and peers (dev nil: no device). Peers
// whose address family differs from the device's are ignored.
func (t *Tunnel) Set(dev *Device, peers []Peer) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if dev == nil {
		t.dev, t.peers = nil, nil
		return
	}
	d := *dev
	if d.Name == "" {
		d.Name = DefaultName
	}
	if d.VNI == 0 {
		d.VNI = DefaultVNI
	}
	if d.Port == 0 {
		d.Port = DefaultPort
	}
	t.dev, t.peers, t.name = &d, slices.Clone(peers), d.Name
}

// Apply makes the kernel match the desired state.
func (t *Tunnel) Apply(ctx context.Context) (Stats, error) {
	var st Stats
	if err := ctx.Err(); err != nil {
		return st, err
	}
	t.mu.Lock()
	dev, peers, name := t.dev, t.peers, t.name
	t.mu.Unlock()
	if dev == nil {
		l, err := t.h.LinkByName(name)
		if err != nil {
			return st, nil // nothing to delete
		}
		if err := t.h.LinkDel(l); err != nil {
			return st, fmt.Errorf("delete %s: %w", name, err)
		}
		st.Deleted = true
		return st, nil
	}
	link, err := t.ensureDevice(dev, &st)
	if err != nil {
		return st, err
	}
	var errs []error
	if err := t.ensureAddr(link, dev.Addr, &st); err != nil {
		errs = append(errs, err)
	}
	if err := t.syncNeighbours(link, dev, peers, &st); err != nil {
		errs = append(errs, err)
	}
	if err := t.syncFDB(link, dev, peers, &st); err != nil {
		errs = append(errs, err)
	}
	return st, errors.Join(errs...)
}

// parent finds the interface holding addr.
func (t *Tunnel) parent(addr netip.Addr) (netlink.Link, error) {
	fam := netlink.FAMILY_V4
	if addr.Is6() {
		fam = netlink.FAMILY_V6
	}
	addrs, err := t.h.AddrList(nil, fam)
	if err != nil {
		return nil, fmt.Errorf("list addresses: %w", err)
	}
	for _, a := range addrs {
		if ip, ok := netip.AddrFromSlice(a.IP); ok && ip.Unmap() == addr {
			return t.h.LinkByIndex(a.LinkIndex)
		}
	}
	return nil, fmt.Errorf("%w: %s", ErrNoParent, addr)
}

// ensureDevice creates the device or fixes it.
func (t *Tunnel) ensureDevice(dev *Device, st *Stats) (netlink.Link, error) {
	parent, err := t.parent(dev.ParentAddr)
	if err != nil {
		return nil, err
	}
	mtu := dev.MTU
	if mtu <= 0 {
		mtu = parent.Attrs().MTU - Overhead
	}
	want := &netlink.Vxlan{
		LinkAttrs:    netlink.LinkAttrs{Name: dev.Name, MTU: mtu, HardwareAddr: dev.MAC},
		VxlanId:      dev.VNI,
		VtepDevIndex: parent.Attrs().Index,
		SrcAddr:      dev.ParentAddr.AsSlice(),
		Port:         dev.Port,
		Learning:     false,
	}
	l, err := t.h.LinkByName(dev.Name)
	if err == nil {
		if have, ok := l.(*netlink.Vxlan); ok && sameTunnel(want, have) {
			return t.fixLink(have, want, st)
		}
		t.log.Info("vxlan device differs: re-creating it", "device", dev.Name)
		if err := t.h.LinkDel(l); err != nil {
			return nil, fmt.Errorf("delete %s: %w", dev.Name, err)
		}
	}
	if err := t.h.LinkAdd(want); err != nil {
		return nil, fmt.Errorf("create %s: %w", dev.Name, err)
	}
	st.Created = true
	l, err = t.h.LinkByName(dev.Name)
	if err != nil {
		return nil, fmt.Errorf("read back %s: %w", dev.Name, err)
	}
	if err := t.h.LinkSetUp(l); err != nil {
		return nil, fmt.Errorf("set %s up: %w", dev.Name, err)
	}
	return l, nil
}

// sameTunnel compares what cannot change in place.
func sameTunnel(want, have *netlink.Vxlan) bool {
	return have.VxlanId == want.VxlanId && have.Port == want.Port && !have.Learning &&
		have.VtepDevIndex == want.VtepDevIndex && net.IP(have.SrcAddr).Equal(want.SrcAddr)
}

func (t *Tunnel) fixLink(have, want *netlink.Vxlan, st *Stats) (netlink.Link, error) {
	a := have.Attrs()
	if a.MTU != want.MTU {
		if err := t.h.LinkSetMTU(have, want.MTU); err != nil {
			return nil, fmt.Errorf("set %s MTU: %w", a.Name, err)
		}
		st.Fixed++
	}
	if want.HardwareAddr != nil && a.HardwareAddr.String() != want.HardwareAddr.String() {
		if err := t.h.LinkSetHardwareAddr(have, want.HardwareAddr); err != nil {
			return nil, fmt.Errorf("set %s MAC: %w", a.Name, err)
		}
		st.Fixed++
	}
	if a.Flags&net.FlagUp == 0 {
		if err := t.h.LinkSetUp(have); err != nil {
			return nil, fmt.Errorf("set %s up: %w", a.Name, err)
		}
		st.Fixed++
	}
	return have, nil
}

// ensureAddr leaves exactly the VTEP address on the device (IPv6
// link-local addresses excepted).
func (t *Tunnel) ensureAddr(l netlink.Link, want netip.Addr, st *Stats) error {
	addrs, err := t.h.AddrList(l, netlink.FAMILY_ALL)
	if err != nil {
		return fmt.Errorf("list addresses of %s: %w", l.Attrs().Name, err)
	}
	found := false
	var errs []error
	for _, a := range addrs {
		ip, _ := netip.AddrFromSlice(a.IP)
		ip = ip.Unmap()
		ones, _ := a.Mask.Size()
		switch {
		case ip == want && ones == want.BitLen():
			found = true
		case ip.IsLinkLocalUnicast():
		default:
			if err := t.h.AddrDel(l, &a); err != nil {
				errs = append(errs, fmt.Errorf("delete address %s: %w", a.IPNet, err))
			}
			st.Fixed++
		}
	}
	if !found && want.IsValid() {
		ipn := &net.IPNet{IP: want.AsSlice(), Mask: net.CIDRMask(want.BitLen(), want.BitLen())}
		if err := t.h.AddrAdd(l, &netlink.Addr{IPNet: ipn}); err != nil {
			errs = append(errs, fmt.Errorf("add address %s to %s: %w", want, l.Attrs().Name, err))
		}
		st.Fixed++
	}
	return errors.Join(errs...)
}

// syncNeighbours leaves exactly one permanent neighbour entry per peer.
func (t *Tunnel) syncNeighbours(l netlink.Link, dev *Device, peers []Peer, st *Stats) error {
	fam := netlink.FAMILY_V4
	if dev.Addr.Is6() {
		fam = netlink.FAMILY_V6
	}
	idx := l.Attrs().Index
	have, err := t.h.NeighList(idx, fam)
	if err != nil {
		return fmt.Errorf("list neighbours of %s: %w", l.Attrs().Name, err)
	}
	want := map[netip.Addr]net.HardwareAddr{}
	for _, p := range peers {
		if p.Addr.IsValid() && p.Addr.Is4() == dev.Addr.Is4() && len(p.MAC) > 0 {
			want[p.Addr] = p.MAC
		}
	}
	var errs []error
	for _, n := range have {
		ip, _ := netip.AddrFromSlice(n.IP)
		ip = ip.Unmap()
		permanent := n.State&netlink.NUD_PERMANENT != 0
		if mac, ok := want[ip]; ok {
			if permanent && n.HardwareAddr.String() == mac.String() {
				delete(want, ip)
			}
			continue // else replaced below
		}
		if !permanent {
			continue // the kernel's own (failed or stale resolution)
		}
		if err := t.h.NeighDel(&n); err != nil && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("delete neighbour %s: %w", ip, err))
			continue
		}
		st.NeighDel++
	}
	for ip, mac := range want {
		n := &netlink.Neigh{LinkIndex: idx, Family: fam, State: netlink.NUD_PERMANENT, IP: ip.AsSlice(), HardwareAddr: mac}
		if err := t.h.NeighSet(n); err != nil {
			errs = append(errs, fmt.Errorf("set neighbour %s: %w", ip, err))
			continue
		}
		st.NeighSet++
	}
	return errors.Join(errs...)
}

// syncFDB leaves exactly one permanent FDB entry per peer: its MAC to its
// node's address.
func (t *Tunnel) syncFDB(l netlink.Link, dev *Device, peers []Peer, st *Stats) error {
	idx := l.Attrs().Index
	have, err := t.h.NeighList(idx, unix.AF_BRIDGE)
	if err != nil {
		return fmt.Errorf("list FDB of %s: %w", l.Attrs().Name, err)
	}
	want := map[string]netip.Addr{}
	for _, p := range peers {
		if p.NodeAddr.IsValid() && len(p.MAC) > 0 && p.Addr.Is4() == dev.Addr.Is4() {
			want[p.MAC.String()] = p.NodeAddr
		}
	}
	var errs []error
	for _, n := range have {
		mac := n.HardwareAddr.String()
		dst, _ := netip.AddrFromSlice(n.IP)
		dst = dst.Unmap()
		if w, ok := want[mac]; ok && w == dst && n.State&netlink.NUD_PERMANENT != 0 {
			delete(want, mac)
			continue
		}
		if _, ok := want[mac]; ok {
			continue // rewritten below (replace)
		}
		if err := t.h.NeighDel(&netlink.Neigh{LinkIndex: idx, Family: unix.AF_BRIDGE, Flags: netlink.NTF_SELF,
			HardwareAddr: n.HardwareAddr, IP: n.IP}); err != nil && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("delete FDB entry %s: %w", mac, err))
			continue
		}
		st.FDBDel++
	}
	for mac, dst := range want {
		hw, _ := net.ParseMAC(mac)
		n := &netlink.Neigh{LinkIndex: idx, Family: unix.AF_BRIDGE, Flags: netlink.NTF_SELF, State: netlink.NUD_PERMANENT,
			IP: dst.AsSlice(), HardwareAddr: hw}
		if err := t.h.NeighSet(n); err != nil {
			errs = append(errs, fmt.Errorf("set FDB entry %s → %s: %w", mac, dst, err))
			continue
		}
		st.FDBSet++
	}
	return errors.Join(errs...)
}
