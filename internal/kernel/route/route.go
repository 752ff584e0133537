// Package route programs the routes one component owns into a kernel routing
// table, by read-back and diff.
//
// Every route a Table writes carries the Table's route protocol number
// (Options.Protocol), and Apply only ever replaces or deletes routes with
// that number in its table: routes of other owners (the kernel's own
// connected routes, CNI workload routes, the operator's static routes) are
// never touched, and a restart needs no flush. The BGP speaker's routes use
// ProtocolBGP (12, which iproute2 names "bird", as Calico's BIRD does), so
// `ip route show proto bird` lists exactly them; the policy engine's
// dataplane (workload, VXLAN and blackhole routes) uses ProtocolDataplane
// (80, Felix's default).
//
// Owners share: a desired route that another owner already holds in the
// same form (same destination, type, gateway, and device when the desired
// route names one) is left to that owner and not written again (counted
// in Stats.Shared). So the routes the CNI plugin creates for workloads, or
// the blackholes BGP writes for local blocks, are adopted as they are,
// without a flap, and if that owner removes its copy the next Apply writes
// ours. A different route of another owner to the same destination is
// never replaced: writing ours fails and is reported.
//
// Set records the desired routes; Apply makes the kernel match: missing or
// different routes are written, routes of ours that are not desired are
// deleted. Apply is idempotent and cheap when nothing changed (one dump per
// family), so callers run it periodically to repair routes that someone
// removed by hand.
package route

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

// ProtocolBGP is the route protocol number of routes the BGP speaker
// programs (learned routes and the blackholes of local blocks): RTPROT_BIRD,
// what Calico's BIRD uses. Felix-style dataplane routes use other numbers.
const ProtocolBGP = unix.RTPROT_BIRD

// ProtocolDataplane is the route protocol number of the routes the policy
// engine's dataplane programs (workload, VXLAN and blackhole routes): 80,
// Felix's default for the routes it owns.
const ProtocolDataplane netlink.RouteProtocol = 80

// ErrNoDevice is wrapped by errors about a route whose device does not
// exist.
var ErrNoDevice = errors.New("no such device")

// MainTable is the kernel's main routing table.
const MainTable = unix.RT_TABLE_MAIN

// Type is a route's kind.
type Type int

// Route types.
const (
	// Unicast forwards to Gateway (and/or out of Device).
	Unicast Type = iota
	// Blackhole drops silently.
	Blackhole
)

func (t Type) String() string {
	if t == Blackhole {
		return "blackhole"
	}
	return "unicast"
}

// Route is one desired route. Dst identifies it: a Table holds at most one
// route per destination.
type Route struct {
	Dst  netip.Prefix
	Type Type
	// Gateway is the next hop of a unicast route.
	Gateway netip.Addr
	// Device, when non-empty, pins the outgoing interface (needed with
	// OnLink).
	Device string
	// OnLink treats Gateway as directly reachable on Device.
	OnLink bool
	// Metric is the route priority (0: the kernel default).
	Metric int
}

func (r Route) String() string {
	if r.Type == Blackhole {
		return "blackhole " + r.Dst.String()
	}
	s := r.Dst.String()
	if r.Gateway.IsValid() {
		s += " via " + r.Gateway.String()
	}
	if r.Device != "" {
		s += " dev " + r.Device
	}
	return s
}

// Options configure a Table.
type Options struct {
	// Handle is the netlink handle of the namespace to program; nil opens
	// one in the calling thread's namespace.
	Handle *netlink.Handle
	// Protocol marks our routes (default ProtocolBGP).
	Protocol netlink.RouteProtocol
	// NetNSFd, when Handle is nil and NetNSFd is non-zero, is the network
	// namespace to program (a handle is opened in it).
	NetNSFd int
	// Table is the routing table (default MainTable).
	Table int
	// SkipMissingDevices leaves desired routes whose device does not
	// exist out of Apply (counted in Stats.Skipped) instead of reporting
	// them as failures: for routes to interfaces that come and go, such
	// as workload interfaces.
	SkipMissingDevices bool
	// Logger receives per-route failures at debug level; nil discards.
	Logger *slog.Logger
}

// Stats says what one Apply did. Shared counts desired routes another
// owner holds in the same form; Skipped those left out because their
// device is missing (Options.SkipMissingDevices).
type Stats struct {
	Added, Replaced, Deleted, Failed, Shared, Skipped int
}

// Table owns the routes with its protocol number in one kernel table.
type Table struct {
	h         *netlink.Handle
	ownsH     bool
	protocol  netlink.RouteProtocol
	table     int
	skipNoDev bool
	log       *slog.Logger

	mu      sync.Mutex
	desired map[netip.Prefix]Route
}

// New returns a Table with nothing desired: an Apply before the first Set
// deletes every route of ours in the table.
func New(opts Options) (*Table, error) {
	t := &Table{h: opts.Handle, protocol: opts.Protocol, table: opts.Table, skipNoDev: opts.SkipMissingDevices,
		log: opts.Logger, desired: map[netip.Prefix]Route{}}
	if t.h == nil {
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
		t.h, t.ownsH = h, true
	}
	if t.protocol == 0 {
		t.protocol = ProtocolBGP
	}
	if t.table == 0 {
		t.table = MainTable
	}
	if t.log == nil {
		t.log = slog.New(slog.DiscardHandler)
	}
	return t, nil
}

// Close releases the netlink handle New opened (not one passed in).
func (t *Table) Close() {
	if t.ownsH {
		t.h.Close()
	}
}

// Set replaces the desired routes. A later route for the same destination
// wins. Nothing is written until Apply.
func (t *Table) Set(routes []Route) {
	m := make(map[netip.Prefix]Route, len(routes))
	for _, r := range routes {
		r.Dst = r.Dst.Masked()
		m[r.Dst] = r
	}
	t.mu.Lock()
	t.desired = m
	t.mu.Unlock()
}

// Desired returns a copy of the desired routes, sorted by destination.
func (t *Table) Desired() []Route {
	t.mu.Lock()
	out := make([]Route, 0, len(t.desired))
	for _, r := range t.desired {
		out = append(out, r)
	}
	t.mu.Unlock()
	slices.SortFunc(out, func(a, b Route) int { return a.Dst.Compare(b.Dst) })
	return out
}

// List reads back the routes of ours in the table.
func (t *Table) List() ([]Route, error) {
	live, _, err := t.dump(nil)
	if err != nil {
		return nil, err
	}
	out := make([]Route, 0, len(live))
	for _, ls := range live {
		for _, l := range ls {
			out = append(out, l.route)
		}
	}
	slices.SortFunc(out, func(a, b Route) int { return a.Dst.Compare(b.Dst) })
	return out, nil
}

type liveRoute struct {
	route Route
	nl    netlink.Route
}

// dump reads the table: our routes by destination and, for the
// destinations in foreignFor, the routes of other owners.
func (t *Table) dump(foreignFor map[netip.Prefix]Route) (map[netip.Prefix][]liveRoute, map[netip.Prefix][]Route, error) {
	filter := &netlink.Route{Table: t.table, Protocol: t.protocol}
	mask := uint64(netlink.RT_FILTER_TABLE | netlink.RT_FILTER_PROTOCOL)
	if len(foreignFor) > 0 {
		mask = netlink.RT_FILTER_TABLE
	}
	live := map[netip.Prefix][]liveRoute{}
	foreign := map[netip.Prefix][]Route{}
	names := &linkNames{h: t.h}
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		rs, err := t.h.RouteListFiltered(fam, filter, mask)
		if err != nil {
			return nil, nil, fmt.Errorf("list routes (protocol %d, table %d): %w", t.protocol, t.table, err)
		}
		for _, nl := range rs {
			ours := nl.Protocol == t.protocol
			if !ours && (nl.Dst == nil || nl.Table != t.table) {
				continue
			}
			if !ours {
				if p, ok := prefixOf(nl.Dst); !ok || !hasKey(foreignFor, p) {
					continue
				}
			}
			r, ok := t.fromNetlink(nl, fam, names)
			if !ok {
				continue
			}
			if ours {
				live[r.Dst] = append(live[r.Dst], liveRoute{route: r, nl: nl})
			} else {
				foreign[r.Dst] = append(foreign[r.Dst], r)
			}
		}
	}
	return live, foreign, nil
}

func hasKey(m map[netip.Prefix]Route, p netip.Prefix) bool {
	_, ok := m[p]
	return ok
}

// linkNames resolves interface indexes to names, listing the links once.
type linkNames struct {
	h      *netlink.Handle
	names  map[int]string
	listed bool
}

func (n *linkNames) name(idx int) string {
	if name, ok := n.names[idx]; ok || n.listed {
		return name
	}
	n.listed = true
	n.names = map[int]string{}
	if links, err := n.h.LinkList(); err == nil {
		for _, l := range links {
			n.names[l.Attrs().Index] = l.Attrs().Name
		}
	}
	return n.names[idx]
}

func (t *Table) fromNetlink(nl netlink.Route, fam int, names *linkNames) (Route, bool) {
	var r Route
	if nl.Dst == nil {
		bits := 32
		if fam == netlink.FAMILY_V6 {
			bits = 128
		}
		r.Dst = netip.PrefixFrom(zeroAddr(bits), 0)
	} else {
		p, ok := prefixOf(nl.Dst)
		if !ok {
			return r, false
		}
		r.Dst = p
	}
	if nl.Type == unix.RTN_BLACKHOLE {
		r.Type = Blackhole
	}
	if nl.Gw != nil {
		if a, ok := netip.AddrFromSlice(nl.Gw); ok {
			r.Gateway = a.Unmap()
			if fam == netlink.FAMILY_V6 {
				r.Gateway = a
			}
		}
	}
	r.OnLink = nl.Flags&int(netlink.FLAG_ONLINK) != 0
	r.Metric = nl.Priority
	if nl.LinkIndex > 0 {
		r.Device = names.name(nl.LinkIndex)
	}
	return r, true
}

// Apply makes the kernel table match the desired routes and returns what it
// did. It keeps going past failures (an unreachable gateway, a missing
// device) and returns them joined; the next Apply retries them.
func (t *Table) Apply(ctx context.Context) (Stats, error) {
	var st Stats
	if err := ctx.Err(); err != nil {
		return st, err
	}
	t.mu.Lock()
	desired := make([]Route, 0, len(t.desired))
	byDst := make(map[netip.Prefix]Route, len(t.desired))
	for _, r := range t.desired {
		desired = append(desired, r)
		byDst[r.Dst] = r
	}
	t.mu.Unlock()
	slices.SortFunc(desired, func(a, b Route) int { return a.Dst.Compare(b.Dst) })
	live, foreign, err := t.dump(byDst)
	if err != nil {
		return st, err
	}

	var errs []error
	for _, want := range desired {
		have := live[want.Dst]
		delete(live, want.Dst)
		if len(have) == 1 && t.same(want, have[0].route) {
			continue
		}
		shared := slices.ContainsFunc(foreign[want.Dst], func(f Route) bool { return t.same(want, f) })
		var nl *netlink.Route
		var nlErr error
		if !shared {
			nl, nlErr = t.toNetlink(want)
			if errors.Is(nlErr, ErrNoDevice) && t.skipNoDev {
				st.Skipped++
				shared = true // nothing to write; stale copies of ours still go
			}
		}
		// Remove any stale copies (other metrics, duplicates), then write.
		for _, h := range have {
			if err := t.h.RouteDel(&h.nl); err != nil && !errors.Is(err, unix.ESRCH) {
				errs = append(errs, fmt.Errorf("delete route %s: %w", h.route, err))
			} else if shared {
				st.Deleted++
			}
		}
		if shared {
			if nlErr == nil {
				st.Shared++
			}
			continue
		}
		err := nlErr
		if err == nil {
			err = t.h.RouteAdd(nl)
		}
		if err != nil {
			st.Failed++
			t.log.Debug("route write failed", "route", want.String(), "error", err)
			errs = append(errs, fmt.Errorf("add route %s: %w", want, err))
			continue
		}
		if len(have) > 0 {
			st.Replaced++
		} else {
			st.Added++
		}
	}
	for _, rs := range live {
		for _, h := range rs {
			if err := t.h.RouteDel(&h.nl); err != nil && !errors.Is(err, unix.ESRCH) {
				st.Failed++
				errs = append(errs, fmt.Errorf("delete route %s: %w", h.route, err))
				continue
			}
			st.Deleted++
		}
	}
	return st, errors.Join(errs...)
}

// same compares a desired route with a live one. A live route's device is
// only compared when the desired route names one (the kernel fills in the
// device of a gateway route).
func (t *Table) same(want, have Route) bool {
	metric := want.Metric
	if metric == 0 && want.Dst.Addr().Is6() {
		metric = 1024 // the kernel's default for IPv6
	}
	if want.Type != have.Type || metric != have.Metric || want.Gateway != have.Gateway {
		return false
	}
	if want.Device != "" && (want.Device != have.Device || want.OnLink != have.OnLink) {
		return false
	}
	return true
}

func (t *Table) toNetlink(r Route) (*netlink.Route, error) {
	nl := &netlink.Route{
		Dst:      ipNet(r.Dst),
		Table:    t.table,
		Protocol: t.protocol,
		Priority: r.Metric,
	}
	if r.Dst.Addr().Is6() {
		nl.Family = netlink.FAMILY_V6
	} else {
		nl.Family = netlink.FAMILY_V4
	}
	if r.Type == Blackhole {
		nl.Type = unix.RTN_BLACKHOLE
		return nl, nil
	}
	nl.Scope = netlink.SCOPE_UNIVERSE
	if r.Gateway.IsValid() {
		nl.Gw = r.Gateway.AsSlice()
	}
	if r.Device != "" {
		l, err := t.h.LinkByName(r.Device)
		if err != nil {
			var nf netlink.LinkNotFoundError
			if errors.As(err, &nf) {
				return nil, fmt.Errorf("device %s: %w", r.Device, ErrNoDevice)
			}
			return nil, fmt.Errorf("device %s: %w", r.Device, err)
		}
		nl.LinkIndex = l.Attrs().Index
		if !r.Gateway.IsValid() {
			nl.Scope = netlink.SCOPE_LINK
		}
	}
	if r.OnLink {
		nl.Flags |= int(netlink.FLAG_ONLINK)
	}
	return nl, nil
}

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

func prefixOf(n *net.IPNet) (netip.Prefix, bool) {
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, bits := n.Mask.Size()
	if bits == 32 {
		a = a.Unmap()
	}
	return netip.PrefixFrom(a, ones).Masked(), true
}

func zeroAddr(bits int) netip.Addr {
	if bits == 32 {
		return netip.IPv4Unspecified()
	}
	return netip.IPv6Unspecified()
}
