package dataplane

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/calico-go/calico/internal/dpapi"
	"github.com/calico-go/calico/internal/kernel/nft"
	"github.com/calico-go/calico/internal/kernel/route"
	"github.com/calico-go/calico/internal/kernel/vxlan"
)

// Fixed sets and chains of the networking part of the table (SPEC §7, §8).
const (
	setMasqPools = "masq-ipam-pools"  // pools with natOutgoing
	setAllPools  = "network-ip-pools" // every pool, disabled ones too
	setAllHosts  = "all-hosts-net"    // every node's address (IPPoolsAndHostIPs)
	setVXLANNet  = "all-vxlan-net"    // the addresses of nodes with a VTEP

	chainNATPostrouting = "nat-POSTROUTING"
	chainNATOutgoing    = "cali-nat-outgoing"

	// prioritySrcNAT is nft's "srcnat" priority.
	prioritySrcNAT int32 = 100
)

// routeTable is the kernel route driver (route.Table).
type routeTable interface {
	Set([]route.Route)
	Apply(context.Context) (route.Stats, error)
	Close()
}

// tunnelDriver is the VXLAN device driver (vxlan.Tunnel).
type tunnelDriver interface {
	Set(*vxlan.Device, []vxlan.Peer)
	Apply(context.Context) (vxlan.Stats, error)
	Close()
}

// networkManager holds the networking messages (nodes, pools, routes) and
// programs what they describe: the VXLAN device and its peers, the
// routes (protocol route.ProtocolDataplane), and, in the nft table, NAT
// outgoing and the filter on incoming VXLAN. Routes and the device are
// written after the table, by read-back and diff, whenever something
// changed and every RouteRefreshInterval (which repairs what someone
// deleted); a failure is retried and never counts against the table.
type networkManager struct {
	log    *slog.Logger
	routes routeTable
	tunnel tunnelDriver

	nodes    map[string]dpapi.Node
	pools    map[string]dpapi.IPPool
	dpRoutes map[netip.Prefix]dpapi.Route

	// kernelDirty: routes or the device may need writing; nftDirty: the
	// NAT chains and fixed sets need rendering.
	kernelDirty bool
	nftDirty    bool
	lastErr     string
}

func newNetworkManager(opts Options, log *slog.Logger) (*networkManager, error) {
	m := &networkManager{log: log, nodes: map[string]dpapi.Node{}, pools: map[string]dpapi.IPPool{},
		dpRoutes: map[netip.Prefix]dpapi.Route{}, nftDirty: true}
	if opts.Offline {
		m.routes, m.tunnel = &memRoutes{}, &memTunnel{}
		return m, nil
	}
	rt, err := route.New(route.Options{NetNSFd: opts.NetNSFd, Protocol: route.ProtocolDataplane,
		SkipMissingDevices: true, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("route table: %w", err)
	}
	tun, err := vxlan.New(vxlan.Options{NetNSFd: opts.NetNSFd, Logger: log})
	if err != nil {
		rt.Close()
		return nil, fmt.Errorf("vxlan device: %w", err)
	}
	m.routes, m.tunnel = rt, tun
	return m, nil
}

func (m *networkManager) close() {
	m.routes.Close()
	m.tunnel.Close()
}

// handle applies one networking message; it reports false for other
// messages.
func (m *networkManager) handle(msg dpapi.Message) bool {
	switch msg := msg.(type) {
	case dpapi.NodeUpdate:
		m.nodes[msg.Name] = msg.Node
		m.nftDirty = true
	case dpapi.NodeRemove:
		delete(m.nodes, msg.Name)
		m.nftDirty = true
	case dpapi.IPPoolUpdate:
		m.pools[msg.Name] = msg.Pool
		m.nftDirty = true
	case dpapi.IPPoolRemove:
		delete(m.pools, msg.Name)
		m.nftDirty = true
	case dpapi.RouteUpdate:
		m.dpRoutes[msg.Dst] = msg.Route
	case dpapi.RouteRemove:
		delete(m.dpRoutes, msg.Dst)
	default:
		return false
	}
	m.kernelDirty = true
	return true
}

// vxlanPools reports whether a pool uses VXLAN.
func (m *networkManager) vxlanPools() bool {
	for _, p := range m.pools {
		if p.VXLANMode != dpapi.EncapNever && p.CIDR.Addr().Is4() {
			return true
		}
	}
	return false
}

// active reports whether this node has a VXLAN device: when a pool uses
// VXLAN and this node has a VTEP and an address.
func (m *networkManager) active(cfg dpapi.Config) bool {
	me, ok := m.nodes[cfg.NodeName]
	if !ok || !me.VXLAN.Valid() || !me.IPv4.IsValid() || !m.vxlanPools() {
		return false
	}
	_, err := net.ParseMAC(me.VXLAN.MAC)
	return err == nil
}

// device returns the desired VXLAN device and peers (nil when not
// active).
func (m *networkManager) device(cfg dpapi.Config) (*vxlan.Device, []vxlan.Peer) {
	if !m.active(cfg) {
		return nil, nil
	}
	me := m.nodes[cfg.NodeName]
	mac, _ := net.ParseMAC(me.VXLAN.MAC)
	dev := &vxlan.Device{Name: vxlan.DefaultName, VNI: cmp.Or(cfg.VXLANVNI, vxlan.DefaultVNI), Port: cmp.Or(cfg.VXLANPort, vxlan.DefaultPort),
		MTU: cfg.VXLANMTU, Addr: me.VXLAN.Addr, MAC: mac, ParentAddr: me.IPv4.Addr()}
	var peers []vxlan.Peer
	for _, name := range slices.Sorted(maps.Keys(m.nodes)) {
		n := m.nodes[name]
		if name == cfg.NodeName || !n.VXLAN.Valid() || !n.IPv4.IsValid() {
			continue
		}
		hw, err := net.ParseMAC(n.VXLAN.MAC)
		if err != nil {
			continue
		}
		peers = append(peers, vxlan.Peer{Addr: n.VXLAN.Addr, MAC: hw, NodeAddr: n.IPv4.Addr()})
	}
	return dev, peers
}

// kernelRoutes turns the dpapi routes into kernel routes; routes through
// the VXLAN device only when there is one.
func (m *networkManager) kernelRoutes(cfg dpapi.Config, tunnel bool) []route.Route {
	out := make([]route.Route, 0, len(m.dpRoutes))
	for _, dst := range slices.SortedFunc(maps.Keys(m.dpRoutes), netip.Prefix.Compare) {
		r := m.dpRoutes[dst]
		if dst.Addr().Is6() && !cfg.IPv6Support {
			continue
		}
		switch r.Type {
		case dpapi.RouteLocalWorkload:
			out = append(out, route.Route{Dst: dst, Device: r.Device})
		case dpapi.RouteLocalBlock:
			out = append(out, route.Route{Dst: dst, Type: route.Blackhole})
		case dpapi.RouteRemote:
			switch {
			case !r.VXLAN:
				out = append(out, route.Route{Dst: dst, Gateway: r.Gateway})
			case tunnel:
				out = append(out, route.Route{Dst: dst, Gateway: r.Gateway, Device: vxlan.DefaultName, OnLink: true})
			}
		}
	}
	return out
}

// apply programs the device, then the routes. It logs what changed and
// returns the failures (already logged when new).
func (m *networkManager) apply(ctx context.Context, cfg dpapi.Config) error {
	m.kernelDirty = false
	dev, peers := m.device(cfg)
	m.tunnel.Set(dev, peers)
	tst, terr := m.tunnel.Apply(ctx)
	m.routes.Set(m.kernelRoutes(cfg, dev != nil))
	rst, rerr := m.routes.Apply(ctx)
	if tst.Changed() {
		m.log.Info("vxlan device updated", "device", vxlan.DefaultName, "created", tst.Created, "deleted", tst.Deleted,
			"fixed", tst.Fixed, "neighbours_set", tst.NeighSet, "neighbours_deleted", tst.NeighDel,
			"fdb_set", tst.FDBSet, "fdb_deleted", tst.FDBDel)
	}
	if rst.Added+rst.Replaced+rst.Deleted > 0 {
		m.log.Info("routes updated", "added", rst.Added, "replaced", rst.Replaced, "deleted", rst.Deleted,
			"shared", rst.Shared, "skipped", rst.Skipped)
	}
	err := errors.Join(terr, rerr)
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	if msg != m.lastErr {
		if err != nil {
			m.log.Warn("programming routes failed, will retry", "error", err)
		} else {
			m.log.Info("routes programmed after earlier failures")
		}
		m.lastErr = msg
	}
	return err
}

// inputRules are the filter-INPUT rules for incoming VXLAN: accepted from
// known nodes only (SPEC §7), when VXLAN is in use.
func (m *networkManager) inputRules(c *renderConfig) []nft.Rule {
	if !m.active(c.cfg) {
		return nil
	}
	port := uint16(cmp.Or(c.cfg.VXLANPort, vxlan.DefaultPort))
	udp := []nft.Stmt{nft.L4Proto(dpapi.ProtoUDP), nft.Ports(nft.Dst, nft.PortRange{First: port, Last: port})}
	return []nft.Rule{
		nft.R(append(slices.Clone(udp), nft.AddrInSet(nft.IPv4, nft.Src, ipSetName(setVXLANNet, nft.IPv4)), nft.Accept())...).
			WithComment("VXLAN from known nodes"),
		nft.R(append(udp, nft.Drop())...).WithComment("VXLAN from unknown hosts"),
	}
}

// render writes the fixed sets and the NAT chains into the table (with
// no pool, none of them), when nodes, pools or the configuration changed.
func (m *networkManager) render(t *nft.Table, c *renderConfig) error {
	if !m.nftDirty {
		return nil
	}
	m.nftDirty = false
	fams := c.families()
	want := map[string]bool{}
	var errs []error
	set := func(id string, f nft.Family, members []netip.Prefix) {
		name := ipSetName(id, f)
		want[name] = true
		typ := nft.SetIPv4
		if f == nft.IPv6 {
			typ = nft.SetIPv6
		}
		var ms []nft.Member
		for _, p := range members {
			if familyOf(p) == f {
				ms = append(ms, nft.Member{Prefix: p.Masked()})
			}
		}
		if err := t.SetSet(name, typ, ms); err != nil {
			errs = append(errs, err)
		}
	}
	hostsToo := c.cfg.NATOutgoingExclusions == "IPPoolsAndHostIPs"
	if len(m.pools) > 0 {
		var all, masq, hosts []netip.Prefix
		for _, p := range m.pools {
			all = append(all, p.CIDR)
			if p.NATOutgoing {
				masq = append(masq, p.CIDR)
			}
		}
		for _, n := range m.nodes {
			for _, a := range []netip.Prefix{n.IPv4, n.IPv6} {
				if a.IsValid() {
					hosts = append(hosts, netip.PrefixFrom(a.Addr(), a.Addr().BitLen()))
				}
			}
		}
		var rules []nft.Rule
		for _, f := range fams {
			set(setAllPools, f, all)
			set(setMasqPools, f, masq)
			match := []nft.Stmt{nft.AddrInSet(f, nft.Src, ipSetName(setMasqPools, f)),
				nft.AddrInSet(f, nft.Dst, ipSetName(setAllPools, f)).Not()}
			if hostsToo {
				set(setAllHosts, f, hosts)
				match = append(match, nft.AddrInSet(f, nft.Dst, ipSetName(setAllHosts, f)).Not())
			}
			if a := c.cfg.NATOutgoingAddress; a.IsValid() && (a.Is4() == (f == nft.IPv4)) {
				rules = append(rules, nft.R(append(match, nft.SNAT(a))...).WithComment("NAT outgoing to "+a.String()))
			} else {
				rules = append(rules, nft.R(append(match, nft.Masquerade())...).WithComment("NAT outgoing"))
			}
		}
		t.SetChain(nft.Chain{Name: chainNATOutgoing, Rules: rules})
		t.SetChain(nft.Chain{Name: chainNATPostrouting, Base: &nft.BaseChain{Hook: nft.HookPostrouting, Priority: prioritySrcNAT, Type: "nat"},
			Rules: []nft.Rule{nft.R(nft.Jump(chainNATOutgoing))}})
	} else {
		t.DeleteChain(chainNATPostrouting)
		t.DeleteChain(chainNATOutgoing)
	}
	if m.active(c.cfg) {
		var vteps []netip.Prefix
		for _, n := range m.nodes {
			if n.VXLAN.Valid() && n.IPv4.IsValid() {
				vteps = append(vteps, netip.PrefixFrom(n.IPv4.Addr(), 32))
			}
		}
		set(setVXLANNet, nft.IPv4, vteps)
	}
	for _, id := range []string{setAllPools, setMasqPools, setAllHosts, setVXLANNet} {
		for _, f := range []nft.Family{nft.IPv4, nft.IPv6} {
			if name := ipSetName(id, f); !want[name] && t.HasSet(name) {
				t.DeleteSet(name)
			}
		}
	}
	return errors.Join(errs...)
}

// memRoutes and memTunnel stand in for the kernel drivers offline; they
// keep what was last set, for golden files.
type memRoutes struct{ routes []route.Route }

func (r *memRoutes) Set(rs []route.Route) { r.routes = slices.Clone(rs) }
func (r *memRoutes) Apply(context.Context) (route.Stats, error) {
	return route.Stats{}, nil
}
func (r *memRoutes) Close() {}

type memTunnel struct {
	dev   *vxlan.Device
	peers []vxlan.Peer
}

func (t *memTunnel) Set(d *vxlan.Device, ps []vxlan.Peer) { t.dev, t.peers = d, slices.Clone(ps) }
func (t *memTunnel) Apply(context.Context) (vxlan.Stats, error) {
	return vxlan.Stats{}, nil
}
func (t *memTunnel) Close() {}

// renderKernel describes the desired device, peers and routes, one per
// line (offline dataplanes; for golden files).
func (m *networkManager) renderKernel() string {
	var b strings.Builder
	if t, ok := m.tunnel.(*memTunnel); ok {
		if d := t.dev; d != nil {
			fmt.Fprintf(&b, "device %s vni %d port %d mtu %d addr %s mac %s parent %s\n",
				d.Name, d.VNI, d.Port, d.MTU, d.Addr, d.MAC, d.ParentAddr)
		} else {
			b.WriteString("no device\n")
		}
		for _, p := range t.peers {
			fmt.Fprintf(&b, "peer %s lladdr %s dst %s\n", p.Addr, p.MAC, p.NodeAddr)
		}
	}
	if r, ok := m.routes.(*memRoutes); ok {
		for _, rt := range r.routes {
			s := rt.String()
			if rt.OnLink {
				s += " onlink"
			}
			fmt.Fprintf(&b, "route %s\n", s)
		}
	}
	return b.String()
}
