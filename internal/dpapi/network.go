package dpapi

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Networking messages: the cluster's nodes and IP pools, and the routes
// this node programs (see "Networking" in the package documentation).

// VTEP is a node's VXLAN tunnel endpoint.
type VTEP struct {
	// Addr is the tunnel address (Node spec.ipv4VXLANTunnelAddr); the zero
	// Addr means the node has no VTEP.
	Addr netip.Addr
	// MAC is the tunnel device's MAC address in canonical form
	// ("66:0f:..."): spec.vxlanTunnelMACAddr, or the one Calico derives
	// from the node name.
	MAC string
}

// Valid reports whether the node has a VTEP.
func (v VTEP) Valid() bool { return v.Addr.IsValid() }

// Node is one node of the cluster as the dataplane needs it.
type Node struct {
	// IPv4 and IPv6 are the node's addresses with the prefix of their
	// subnet (spec.bgp.ipv4Address / ipv6Address); the zero Prefix when
	// unset.
	IPv4 netip.Prefix
	IPv6 netip.Prefix
	// VXLAN is the node's IPv4 VXLAN tunnel endpoint, if any.
	VXLAN VTEP
}

// NodeUpdate creates or replaces a node. Every node of the cluster is
// sent, this one included (its Name is Config.NodeName).
type NodeUpdate struct {
	Name string
	Node Node
}

// NodeRemove forgets a node.
type NodeRemove struct {
	Name string
}

// EncapMode is an IP pool's VXLAN (or IP-in-IP) mode.
type EncapMode uint8

// Encapsulation modes of a pool.
const (
	EncapNever EncapMode = iota
	EncapAlways
	// EncapCrossSubnet encapsulates only towards nodes in another subnet.
	EncapCrossSubnet
)

func (m EncapMode) String() string {
	switch m {
	case EncapNever:
		return "Never"
	case EncapAlways:
		return "Always"
	case EncapCrossSubnet:
		return "CrossSubnet"
	}
	return "EncapMode(" + strconv.Itoa(int(m)) + ")"
}

// IPPool is an IP pool as the dataplane needs it. Disabled pools are sent
// too: they still count as pool addresses (NAT outgoing exclusions).
type IPPool struct {
	CIDR        netip.Prefix
	VXLANMode   EncapMode
	IPIPMode    EncapMode
	NATOutgoing bool
	Disabled    bool
}

// IPPoolUpdate creates or replaces a pool; Name is the IPPool's name.
type IPPoolUpdate struct {
	Name string
	Pool IPPool
}

// IPPoolRemove forgets a pool.
type IPPoolRemove struct {
	Name string
}

// RouteType says what a route's destination is.
type RouteType uint8

// Route types.
const (
	// RouteLocalWorkload: Dst is an address of a local workload, routed
	// to its interface ("<Dst> dev <Device> scope link").
	RouteLocalWorkload RouteType = iota + 1
	// RouteLocalBlock: Dst is an IPAM block of this node in a VXLAN pool;
	// what no workload route covers is dropped ("blackhole <Dst>").
	RouteLocalBlock
	// RouteRemote: Dst lives on another node (its block, an address it
	// borrowed from another block, its VTEP address outside its blocks),
	// reached through Gateway.
	RouteRemote
)

func (t RouteType) String() string {
	switch t {
	case RouteLocalWorkload:
		return "local-workload"
	case RouteLocalBlock:
		return "local-block"
	case RouteRemote:
		return "remote"
	}
	return "RouteType(" + strconv.Itoa(int(t)) + ")"
}

// Route is one route this node's dataplane programs. Calc sends only what
// the dataplane itself must program: workload routes, and the blocks of
// VXLAN pools (routes in other pools are BGP's).
type Route struct {
	Type RouteType
	// Device is the workload interface (RouteLocalWorkload).
	Device string
	// Node is the node Dst lives on (RouteRemote).
	Node string
	// VXLAN says how a remote route goes: true through the VXLAN device
	// to the node's VTEP ("<Dst> via <Gateway> dev vxlan.calico onlink"),
	// false straight to the node's address ("<Dst> via <Gateway>": a
	// CrossSubnet pool and a node in this node's subnet).
	VXLAN bool
	// Gateway is the next hop of a remote route: the node's VTEP address
	// with VXLAN, its address without.
	Gateway netip.Addr
}

// RouteUpdate creates or replaces the route to Dst (a masked prefix).
type RouteUpdate struct {
	Dst   netip.Prefix
	Route Route
}

// RouteRemove deletes the route to Dst.
type RouteRemove struct {
	Dst netip.Prefix
}

func (NodeUpdate) isMessage()   {}
func (NodeRemove) isMessage()   {}
func (IPPoolUpdate) isMessage() {}
func (IPPoolRemove) isMessage() {}
func (RouteUpdate) isMessage()  {}
func (RouteRemove) isMessage()  {}

func (n Node) String() string {
	var parts []string
	if n.IPv4.IsValid() {
		parts = append(parts, "ipv4="+n.IPv4.String())
	}
	if n.IPv6.IsValid() {
		parts = append(parts, "ipv6="+n.IPv6.String())
	}
	if n.VXLAN.Valid() {
		parts = append(parts, "vtep="+n.VXLAN.Addr.String()+","+n.VXLAN.MAC)
	}
	return "{" + strings.Join(parts, " ") + "}"
}

func (p IPPool) String() string {
	return fmt.Sprintf("{%s vxlan=%s ipip=%s nat=%v disabled=%v}", p.CIDR, p.VXLANMode, p.IPIPMode, p.NATOutgoing, p.Disabled)
}

func (r Route) String() string {
	switch r.Type {
	case RouteLocalWorkload:
		return "dev " + r.Device
	case RouteLocalBlock:
		return "blackhole"
	case RouteRemote:
		if r.VXLAN {
			return "via " + r.Gateway.String() + " vxlan node " + r.Node
		}
		return "via " + r.Gateway.String() + " node " + r.Node
	}
	return r.Type.String()
}

// applyNetwork applies a networking message to the State.
func (s *State) applyNetwork(m Message) error {
	switch m := m.(type) {
	case NodeUpdate:
		s.Nodes[m.Name] = m.Node
	case NodeRemove:
		if _, ok := s.Nodes[m.Name]; !ok {
			return fmt.Errorf("remove of unknown node %s", m.Name)
		}
		delete(s.Nodes, m.Name)
	case IPPoolUpdate:
		if !m.Pool.CIDR.IsValid() || m.Pool.CIDR != m.Pool.CIDR.Masked() {
			return fmt.Errorf("IP pool %s: CIDR %s is not a masked prefix", m.Name, m.Pool.CIDR)
		}
		s.IPPools[m.Name] = m.Pool
	case IPPoolRemove:
		if _, ok := s.IPPools[m.Name]; !ok {
			return fmt.Errorf("remove of unknown IP pool %s", m.Name)
		}
		delete(s.IPPools, m.Name)
	case RouteUpdate:
		if !m.Dst.IsValid() || m.Dst != m.Dst.Masked() {
			return fmt.Errorf("route to %s: not a masked prefix", m.Dst)
		}
		s.Routes[m.Dst] = m.Route
	case RouteRemove:
		if _, ok := s.Routes[m.Dst]; !ok {
			return fmt.Errorf("remove of unknown route %s", m.Dst)
		}
		delete(s.Routes, m.Dst)
	}
	return nil
}

// checkRoutes checks contract rule 9: every route is complete, and every
// remote route names a known node and goes through that node's current
// VTEP or address.
func (s *State) checkRoutes() error {
	var errs []error
	for dst, r := range s.Routes {
		switch r.Type {
		case RouteLocalWorkload:
			if r.Device == "" {
				errs = append(errs, fmt.Errorf("route %s: local workload route without a device", dst))
			}
		case RouteLocalBlock:
		case RouteRemote:
			n, ok := s.Nodes[r.Node]
			switch {
			case !ok:
				errs = append(errs, fmt.Errorf("route %s: unknown node %q", dst, r.Node))
			case r.VXLAN && r.Gateway != n.VXLAN.Addr:
				errs = append(errs, fmt.Errorf("route %s: gateway %s is not the VTEP of node %s (%s)", dst, r.Gateway, r.Node, n.VXLAN.Addr))
			case !r.VXLAN && r.Gateway != n.IPv4.Addr() && r.Gateway != n.IPv6.Addr():
				errs = append(errs, fmt.Errorf("route %s: gateway %s is not an address of node %s", dst, r.Gateway, r.Node))
			case r.Gateway.Is4() != dst.Addr().Is4():
				errs = append(errs, fmt.Errorf("route %s: gateway %s of another family", dst, r.Gateway))
			}
		default:
			errs = append(errs, fmt.Errorf("route %s: unknown type %d", dst, r.Type))
		}
	}
	return errors.Join(errs...)
}
