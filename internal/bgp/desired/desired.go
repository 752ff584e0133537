// Package desired computes what one node's BGP speaker should do from
// datastore state, the way Calico's confd renders BIRD's configuration:
// which sessions to hold (the node-to-node mesh, BGPPeers by node,
// nodeSelector and peerSelector, route reflector clients), which prefixes to
// originate (a route for each confirmed affine block, /32 and /128 routes for
// borrowed addresses, service ranges, with the communities of
// prefixAdvertisements), which learned prefixes may be passed on, and which
// blackholes to program.
//
// Compute is pure: no I/O, no clock, output depends only on Input, so every
// rule is covered by table tests. internal/bgp/controller feeds it and
// applies the State.
package desired

import (
	"errors"
	"fmt"
	"hash/fnv"
	"net/netip"
	"slices"
	"strings"
	"time"

	v3 "github.com/calico-go/calico/api/v3"
	"github.com/calico-go/calico/internal/bgp"
	"github.com/calico-go/calico/internal/selector"
)

// Errors of Compute.
var (
	// ErrNodeNotFound: there is no Node resource for Input.NodeName (yet).
	ErrNodeNotFound = errors.New("node resource not found")
	// ErrNoBGPAddress: the node has no spec.bgp address, so it cannot
	// speak BGP.
	ErrNoBGPAddress = errors.New("node has no BGP address (spec.bgp.ipv4Address / ipv6Address)")
)

// Input is the datastore state one node's BGP depends on.
type Input struct {
	NodeName string
	Nodes    []v3.Node
	Configs  []v3.BGPConfiguration
	Peers    []v3.BGPPeer
	Filters  []v3.BGPFilter
	Pools    []v3.IPPool
	// Blocks are this node's confirmed affine IPAM blocks.
	Blocks []netip.Prefix
	// Borrowed are addresses of this node's workloads in blocks affine to
	// other nodes (or to none).
	Borrowed []netip.Addr
	// Secret resolves a BGP password's secretKeyRef; nil resolves nothing.
	Secret func(name, key string) (string, bool)
}

// StaticRoute is a kernel route to a peer through a gateway
// (BGPPeer.reachableBy).
type StaticRoute struct {
	Dst     netip.Prefix
	Gateway netip.Addr
}

// State is what the node's speaker and kernel should hold.
type State struct {
	Global bgp.Global
	// NodeIPv4 and NodeIPv6 are the node's BGP addresses (may be invalid).
	NodeIPv4, NodeIPv6 netip.Addr
	Peers              []bgp.Peer
	// Routes are originated; Exportable bounds what may be passed on.
	Routes     []bgp.Route
	Exportable []netip.Prefix
	// Blackholes are programmed for every local block.
	Blackholes []netip.Prefix
	// NoKernel: learned routes inside these prefixes (VXLAN pools, whose
	// routes the VXLAN dataplane programs) stay out of the kernel.
	NoKernel []netip.Prefix
	// Static are kernel routes towards peers (reachableBy).
	Static []StaticRoute
	// Warnings name configuration that was ignored, for the log.
	Warnings []string
}

// Compute derives the State of in.NodeName.
func Compute(in Input) (State, error) {
	var st State
	me, ok := findNode(in.Nodes, in.NodeName)
	if !ok {
		return st, fmt.Errorf("%w: %q", ErrNodeNotFound, in.NodeName)
	}
	if me.Spec.BGP == nil {
		return st, fmt.Errorf("%w: node %q", ErrNoBGPAddress, in.NodeName)
	}
	st.NodeIPv4, st.NodeIPv6 = nodeAddr(me.Spec.BGP.IPv4Address), nodeAddr(me.Spec.BGP.IPv6Address)
	if !st.NodeIPv4.IsValid() && !st.NodeIPv6.IsValid() {
		return st, fmt.Errorf("%w: node %q", ErrNoBGPAddress, in.NodeName)
	}
	def, own := configs(in.Configs, in.NodeName)
	c := &computer{in: in, me: me, st: &st, def: def, own: own, asn: uint32(nodeASN(me, def))}
	st.Global = bgp.Global{ASN: c.asn, RouterID: routerID(st.NodeIPv4, in.NodeName), ListenPort: int32(listenPort(def, own))}
	c.peers()
	c.advertise()
	return st, nil
}

// computer carries the intermediate state of one Compute.
type computer struct {
	in       Input
	me       *v3.Node
	st       *State
	def, own *v3.BGPConfigurationSpec // "default" and "node.<name>" (either may be nil)
	asn      uint32
}

func (c *computer) warn(format string, args ...any) {
	c.st.Warnings = append(c.st.Warnings, fmt.Sprintf(format, args...))
}

func findNode(nodes []v3.Node, name string) (*v3.Node, bool) {
	for i := range nodes {
		if nodes[i].Name == name {
			return &nodes[i], true
		}
	}
	return nil, false
}

// nodeAddr parses a spec.bgp address ("ip/prefix" or a bare ip).
func nodeAddr(s string) netip.Addr {
	if s == "" {
		return netip.Addr{}
	}
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Addr()
	}
	a, _ := netip.ParseAddr(s)
	return a
}

func configs(cs []v3.BGPConfiguration, node string) (def, own *v3.BGPConfigurationSpec) {
	for i := range cs {
		switch cs[i].Name {
		case "default":
			def = &cs[i].Spec
		case "node." + node:
			own = &cs[i].Spec
		}
	}
	return def, own
}

func nodeASN(n *v3.Node, def *v3.BGPConfigurationSpec) v3.ASNumber {
	if n.Spec.BGP != nil && n.Spec.BGP.ASNumber != nil {
		return *n.Spec.BGP.ASNumber
	}
	if def != nil {
		return def.EffectiveASNumber()
	}
	return v3.DefaultASNumber
}

func listenPort(def, own *v3.BGPConfigurationSpec) uint16 {
	if own != nil && own.ListenPort != 0 {
		return own.ListenPort
	}
	if def != nil {
		return def.EffectiveListenPort()
	}
	return v3.DefaultBGPListenPort
}

// routerID is the node's IPv4 address, or for an IPv6-only node a stable
// hash of its name (as Calico does).
func routerID(v4 netip.Addr, name string) netip.Addr {
	if v4.IsValid() {
		return v4
	}
	h := fnv.New32a()
	h.Write([]byte(name))
	s := h.Sum32()
	return netip.AddrFrom4([4]byte{byte(s >> 24), byte(s >> 16), byte(s >> 8), byte(s)})
}

// sessionName is Calico's BIRD protocol name: prefix + the address with
// dots and colons replaced by underscores.
func sessionName(prefix string, a netip.Addr) string {
	return prefix + strings.NewReplacer(".", "_", ":", "_").Replace(a.String())
}

// peers fills st.Peers: explicit BGPPeers first (node specific before
// global), then the mesh; the first peering of an address wins.
func (c *computer) peers() {
	byAddr := map[netip.Addr]bool{}
	add := func(p bgp.Peer) {
		if byAddr[p.Address] || p.Address == c.st.NodeIPv4 || p.Address == c.st.NodeIPv6 {
			return
		}
		byAddr[p.Address] = true
		c.st.Peers = append(c.st.Peers, p)
	}
	explicit := slices.Clone(c.in.Peers)
	slices.SortStableFunc(explicit, func(a, b v3.BGPPeer) int {
		ga, gb := isGlobal(&a), isGlobal(&b)
		switch {
		case ga == gb:
			return strings.Compare(a.Name, b.Name)
		case gb:
			return -1
		}
		return 1
	})
	for i := range explicit {
		for _, p := range c.explicitPeers(&explicit[i]) {
			add(p)
		}
	}
	if c.def == nil || c.def.EffectiveNodeToNodeMeshEnabled() {
		for _, p := range c.meshPeers() {
			add(p)
		}
	}
	slices.SortFunc(c.st.Peers, func(a, b bgp.Peer) int { return a.Address.Compare(b.Address) })
}

func isGlobal(p *v3.BGPPeer) bool { return p.Spec.Node == "" && p.Spec.NodeSelector == "" }

func (c *computer) meshPeers() []bgp.Peer {
	var out []bgp.Peer
	var password string
	var restart time.Duration
	if c.def != nil {
		if c.def.NodeMeshPassword != nil {
			password = c.password(c.def.NodeMeshPassword, "nodeMeshPassword")
		}
		if c.def.NodeMeshMaxRestartTime != nil {
			restart = c.def.NodeMeshMaxRestartTime.Duration
		}
	}
	for i := range c.in.Nodes {
		n := &c.in.Nodes[i]
		if n.Name == c.me.Name || n.Spec.BGP == nil {
			continue
		}
		for _, a := range []netip.Addr{nodeAddr(n.Spec.BGP.IPv4Address), nodeAddr(n.Spec.BGP.IPv6Address)} {
			local := c.localAddr(a)
			if !a.IsValid() || !local.IsValid() {
				continue
			}
			p := bgp.Peer{
				Name: sessionName("Mesh_", a), Type: bgp.PeerMesh, Address: a,
				ASN: uint32(nodeASN(n, c.def)), Password: password, RestartTime: restart,
				Passive: a.String() > local.String(), LocalAddress: local,
			}
			c.reflect(&p, n)
			out = append(out, p)
		}
	}
	return out
}

// localAddr is the node address of a's family (invalid if none).
func (c *computer) localAddr(a netip.Addr) netip.Addr {
	if a.Is4() {
		return c.st.NodeIPv4
	}
	return c.st.NodeIPv6
}

// reflect makes p a route-reflector client when this node is a reflector,
// p is in the same AS, and p is not a reflector of the same cluster.
func (c *computer) reflect(p *bgp.Peer, remote *v3.Node) {
	mine := c.me.Spec.BGP.RouteReflectorClusterID
	if mine == "" {
		return
	}
	local := p.LocalASN
	if local == 0 {
		local = c.asn
	}
	theirs := ""
	if remote != nil && remote.Spec.BGP != nil {
		theirs = remote.Spec.BGP.RouteReflectorClusterID
	}
	if p.ASN == local && theirs != mine {
		p.RRClient, p.RRClusterID = true, mine
	}
}

// appliesHere says whether a BGPPeer's local side selects this node.
func (c *computer) appliesHere(bp *v3.BGPPeer) bool {
	switch {
	case bp.Spec.Node != "":
		return bp.Spec.Node == c.me.Name
	case bp.Spec.NodeSelector != "":
		sel, err := selector.Parse(bp.Spec.NodeSelector)
		if err != nil {
			c.warn("BGPPeer %s: nodeSelector: %v", bp.Name, err)
			return false
		}
		return sel.EvaluateMap(c.me.Labels)
	}
	return true
}

type remote struct {
	addr netip.Addr
	port uint16
	asn  uint32
	node *v3.Node
}

// explicitPeers are the sessions a BGPPeer gives this node: towards its
// remote side when this node is on its local side, and (reversePeering
// Auto, the default) back towards the nodes of its local side when this
// node is one of its remote Calico nodes.
func (c *computer) explicitPeers(bp *v3.BGPPeer) []bgp.Peer {
	if bp.Spec.LocalWorkloadSelector != "" {
		c.warn("BGPPeer %s: localWorkloadSelector is not supported; peering ignored", bp.Name)
		return nil
	}
	prefix, typ := "Node_", bgp.PeerNode
	if isGlobal(bp) {
		prefix, typ = "Global_", bgp.PeerGlobal
	}
	var remotes []remote
	if c.appliesHere(bp) {
		remotes = c.forwardRemotes(bp)
	}
	if bp.Spec.ReversePeering == nil || *bp.Spec.ReversePeering != v3.ReversePeeringManual {
		remotes = append(remotes, c.reverseRemotes(bp)...)
	}
	var out []bgp.Peer
	for _, r := range remotes {
		local := c.localAddr(r.addr)
		if !local.IsValid() {
			continue // no address of the peer's family on this node
		}
		p := bgp.Peer{Name: sessionName(prefix, r.addr), Type: typ, Address: r.addr, Port: r.port, ASN: r.asn}
		c.peerOptions(&p, bp, local)
		if r.node != nil {
			// Both ends are Calico nodes: one active side only.
			p.Passive = r.addr.String() > local.String()
		}
		c.reflect(&p, r.node)
		p.Import, p.Export = c.filters(bp, &p)
		if bp.Spec.ReachableBy != "" {
			c.reachableBy(bp, r.addr)
		}
		out = append(out, p)
	}
	return out
}

func (c *computer) forwardRemotes(bp *v3.BGPPeer) []remote {
	switch {
	case bp.Spec.PeerIP != "":
		a, port, err := parsePeerIP(bp.Spec.PeerIP)
		if err != nil {
			c.warn("BGPPeer %s: %v", bp.Name, err)
			return nil
		}
		return []remote{{addr: a, port: port, asn: uint32(bp.Spec.ASNumber), node: c.nodeWithAddr(a)}}
	case bp.Spec.PeerSelector != "":
		sel, err := selector.Parse(bp.Spec.PeerSelector)
		if err != nil {
			c.warn("BGPPeer %s: peerSelector: %v", bp.Name, err)
			return nil
		}
		return c.nodeRemotes(func(n *v3.Node) bool { return sel.EvaluateMap(n.Labels) })
	}
	c.warn("BGPPeer %s: neither peerIP nor peerSelector; ignored", bp.Name)
	return nil
}

// reverseRemotes: when this node is a remote of bp (selected by its
// peerSelector, or its peerIP is this node's address), the nodes on bp's
// local side.
func (c *computer) reverseRemotes(bp *v3.BGPPeer) []remote {
	switch {
	case bp.Spec.PeerSelector != "":
		sel, err := selector.Parse(bp.Spec.PeerSelector)
		if err != nil || !sel.EvaluateMap(c.me.Labels) {
			return nil
		}
	case bp.Spec.PeerIP != "":
		a, _, err := parsePeerIP(bp.Spec.PeerIP)
		if err != nil || (a != c.st.NodeIPv4 && a != c.st.NodeIPv6) {
			return nil
		}
	default:
		return nil
	}
	var local func(*v3.Node) bool
	switch {
	case bp.Spec.Node != "":
		local = func(n *v3.Node) bool { return n.Name == bp.Spec.Node }
	case bp.Spec.NodeSelector != "":
		sel, err := selector.Parse(bp.Spec.NodeSelector)
		if err != nil {
			return nil
		}
		local = func(n *v3.Node) bool { return sel.EvaluateMap(n.Labels) }
	default:
		local = func(*v3.Node) bool { return true }
	}
	return c.nodeRemotes(local)
}

// nodeRemotes are the addresses of every other BGP node that match.
func (c *computer) nodeRemotes(match func(*v3.Node) bool) []remote {
	var out []remote
	for i := range c.in.Nodes {
		n := &c.in.Nodes[i]
		if n.Name == c.me.Name || n.Spec.BGP == nil || !match(n) {
			continue
		}
		for _, a := range []netip.Addr{nodeAddr(n.Spec.BGP.IPv4Address), nodeAddr(n.Spec.BGP.IPv6Address)} {
			if a.IsValid() {
				out = append(out, remote{addr: a, asn: uint32(nodeASN(n, c.def)), node: n})
			}
		}
	}
	return out
}

func (c *computer) peerOptions(p *bgp.Peer, bp *v3.BGPPeer, local netip.Addr) {
	s := &bp.Spec
	if s.LocalASNumber != nil {
		p.LocalASN = uint32(*s.LocalASNumber)
	}
	if s.SourceAddress != v3.SourceAddressNone {
		p.LocalAddress = local
	}
	if s.Password != nil {
		p.Password = c.password(s.Password, "BGPPeer "+bp.Name)
	}
	if s.MaxRestartTime != nil {
		p.RestartTime = s.MaxRestartTime.Duration
	}
	if s.KeepaliveTime != nil {
		p.KeepaliveTime = s.KeepaliveTime.Duration
	}
	if s.NumAllowedLocalASNumbers != nil && *s.NumAllowedLocalASNumbers > 0 {
		p.AllowOwnAS = uint32(*s.NumAllowedLocalASNumbers)
	}
	if s.TTLSecurity != nil {
		p.TTLSecurity = *s.TTLSecurity
	}
	switch {
	case s.NextHopMode != nil && *s.NextHopMode == v3.NextHopModeSelf:
		p.NextHop = bgp.NextHopSelf
	case s.NextHopMode != nil && *s.NextHopMode == v3.NextHopModeKeep, s.KeepOriginalNextHop:
		p.NextHop = bgp.NextHopKeep
	}
}

func (c *computer) password(pw *v3.BGPPassword, what string) string {
	ref := pw.SecretKeyRef
	if ref == nil {
		return ""
	}
	if c.in.Secret != nil {
		if v, ok := c.in.Secret(ref.Name, ref.Key); ok {
			return v
		}
	}
	c.warn("%s: password secret %s/%s not available; session configured without a password", what, ref.Name, ref.Key)
	return ""
}

func (c *computer) reachableBy(bp *v3.BGPPeer, peer netip.Addr) {
	gw, err := netip.ParseAddr(bp.Spec.ReachableBy)
	if err != nil || gw.Is4() != peer.Is4() {
		c.warn("BGPPeer %s: reachableBy %q is not an address of the peer's family", bp.Name, bp.Spec.ReachableBy)
		return
	}
	c.st.Static = append(c.st.Static, StaticRoute{Dst: netip.PrefixFrom(peer, peer.BitLen()), Gateway: gw})
}

func (c *computer) nodeWithAddr(a netip.Addr) *v3.Node {
	for i := range c.in.Nodes {
		n := &c.in.Nodes[i]
		if n.Spec.BGP != nil && (nodeAddr(n.Spec.BGP.IPv4Address) == a || nodeAddr(n.Spec.BGP.IPv6Address) == a) {
			return n
		}
	}
	return nil
}

// parsePeerIP parses "ip", "ip:port" or "[v6]:port".
func parsePeerIP(s string) (netip.Addr, uint16, error) {
	if a, err := netip.ParseAddr(s); err == nil {
		return a, 0, nil
	}
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return netip.Addr{}, 0, fmt.Errorf("peerIP %q: want ip, ip:port or [ipv6]:port", s)
	}
	return ap.Addr(), ap.Port(), nil
}
