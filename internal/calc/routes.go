package calc

import (
	"cmp"
	"crypto/sha1"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strings"

	v3 "github.com/calico-go/calico/api/v3"
	"github.com/calico-go/calico/internal/dpapi"
	"github.com/calico-go/calico/internal/syncer/affinity"
)

// network is the route and VTEP resolver: it follows Nodes, IP pools,
// block affinities and workload endpoints, and decides which nodes, pools
// and routes the dataplane gets (see "Networking" in package dpapi).
//
// Work is incremental: every input change marks the destinations it can
// affect dirty (a workload its addresses, an affinity its block and the
// single addresses inside it, a node the destinations it owns, a pool
// those inside it), and flush resolves only the dirty ones. Only a change
// of this node's own Node (its subnet decides CrossSubnet for every
// route) or of a pool re-resolves more than what it touches.
type network struct {
	me string

	nodes map[string]dpapi.Node
	pools map[string]dpapi.IPPool

	// affinities by syncer key name; owners lists each block's nodes
	// (normally one), sorted.
	affinities map[string]affinityRec
	owners     map[netip.Prefix][]string

	weps     map[itemKey]wepRoute
	addrWEPs map[netip.Prefix]map[itemKey]struct{}
	// vteps maps a VTEP address (as a single-address prefix) to the nodes
	// that have it.
	vteps map[netip.Prefix]map[string]struct{}
	// nodeDsts counts, per node, the destinations that belong to it
	// (blocks, workload addresses, VTEP), for fan-out on node changes.
	nodeDsts map[string]map[netip.Prefix]int

	dirtyDsts  map[netip.Prefix]struct{}
	dirtyNodes map[string]struct{}
	dirtyPools map[string]struct{}

	sentRoutes map[netip.Prefix]dpapi.Route
	sentNodes  map[string]dpapi.Node
	sentPools  map[string]dpapi.IPPool
}

type affinityRec struct {
	node string
	cidr netip.Prefix
}

type wepRoute struct {
	node  string
	iface string
	nets  []netip.Prefix
}

func newNetwork(me string) *network {
	return &network{
		me:    me,
		nodes: map[string]dpapi.Node{}, pools: map[string]dpapi.IPPool{},
		affinities: map[string]affinityRec{}, owners: map[netip.Prefix][]string{},
		weps: map[itemKey]wepRoute{}, addrWEPs: map[netip.Prefix]map[itemKey]struct{}{},
		vteps: map[netip.Prefix]map[string]struct{}{}, nodeDsts: map[string]map[netip.Prefix]int{},
		dirtyDsts: map[netip.Prefix]struct{}{}, dirtyNodes: map[string]struct{}{}, dirtyPools: map[string]struct{}{},
		sentRoutes: map[netip.Prefix]dpapi.Route{}, sentNodes: map[string]dpapi.Node{}, sentPools: map[string]dpapi.IPPool{},
	}
}

func (n *network) dirty(dst netip.Prefix) { n.dirtyDsts[dst] = struct{}{} }

func (n *network) ownDst(node string, dst netip.Prefix, delta int) {
	m := n.nodeDsts[node]
	if m == nil {
		m = map[netip.Prefix]int{}
		n.nodeDsts[node] = m
	}
	if m[dst] += delta; m[dst] <= 0 {
		delete(m, dst)
		if len(m) == 0 {
			delete(n.nodeDsts, node)
		}
	}
}

// dirtyAll marks every known destination dirty.
func (n *network) dirtyAll() {
	for dst := range n.owners {
		n.dirty(dst)
	}
	n.dirtySingles(netip.Prefix{})
}

// dirtySingles marks the workload and VTEP addresses inside p dirty (all
// of them when p is the zero Prefix). A small p (a block) is walked address
// by address; a big one by scanning the addresses known.
func (n *network) dirtySingles(p netip.Prefix) {
	if p.IsValid() && p.Addr().BitLen()-p.Bits() <= 8 {
		a := p.Masked().Addr()
		for i := 0; i < 1<<(a.BitLen()-p.Bits()); i++ {
			dst := netip.PrefixFrom(a, a.BitLen())
			if _, ok := n.addrWEPs[dst]; ok {
				n.dirty(dst)
			}
			if _, ok := n.vteps[dst]; ok {
				n.dirty(dst)
			}
			a = a.Next()
		}
		return
	}
	inside := func(dst netip.Prefix) bool {
		return !p.IsValid() || (p.Bits() <= dst.Bits() && p.Contains(dst.Addr()))
	}
	for dst := range n.addrWEPs {
		if inside(dst) {
			n.dirty(dst)
		}
	}
	for dst := range n.vteps {
		if inside(dst) {
			n.dirty(dst)
		}
	}
}

// updateNode handles a Node update (r nil: deleted).
func (n *network) updateNode(name string, r *v3.Node) {
	old, had := n.nodes[name]
	var next dpapi.Node
	if r != nil {
		next = nodeMessage(name, r)
	}
	if (had && r != nil && old == next) || (!had && r == nil) {
		return
	}
	if had && old.VXLAN.Valid() {
		n.vtepRef(name, old.VXLAN.Addr, -1)
	}
	if r == nil {
		delete(n.nodes, name)
	} else {
		n.nodes[name] = next
		if next.VXLAN.Valid() {
			n.vtepRef(name, next.VXLAN.Addr, +1)
		}
	}
	n.dirtyNodes[name] = struct{}{}
	if name == n.me {
		n.dirtyAll()
		return
	}
	for dst := range n.nodeDsts[name] {
		n.dirty(dst)
	}
}

func (n *network) vtepRef(node string, a netip.Addr, delta int) {
	dst := netip.PrefixFrom(a, a.BitLen())
	m := n.vteps[dst]
	if delta > 0 {
		if m == nil {
			m = map[string]struct{}{}
			n.vteps[dst] = m
		}
		m[node] = struct{}{}
	} else {
		delete(m, node)
		if len(m) == 0 {
			delete(n.vteps, dst)
		}
	}
	n.ownDst(node, dst, delta)
	n.dirty(dst)
}

// nodeMessage extracts what the dataplane needs from a Node.
func nodeMessage(name string, r *v3.Node) dpapi.Node {
	var out dpapi.Node
	if r.Spec.BGP != nil {
		out.IPv4, _ = parseNodeAddr(r.Spec.BGP.IPv4Address)
		out.IPv6, _ = parseNodeAddr(r.Spec.BGP.IPv6Address)
	}
	for _, a := range r.Spec.Addresses {
		if a.Type != v3.NodeAddressCalicoNodeIP && a.Type != v3.NodeAddressInternalIP {
			continue
		}
		p, ok := parseNodeAddr(a.Address)
		switch {
		case !ok:
		case p.Addr().Is4() && !out.IPv4.IsValid():
			out.IPv4 = p
		case p.Addr().Is6() && !out.IPv6.IsValid():
			out.IPv6 = p
		}
	}
	if a, err := netip.ParseAddr(r.Spec.IPv4VXLANTunnelAddr); err == nil && a.Is4() && out.IPv4.IsValid() {
		out.VXLAN = dpapi.VTEP{Addr: a, MAC: vtepMAC(name, r.Spec.VXLANTunnelMACAddr)}
	}
	return out
}

// parseNodeAddr parses "addr/prefix" or a bare address (a single-address
// prefix). The address keeps its host bits.
func parseNodeAddr(s string) (netip.Prefix, bool) {
	if s == "" {
		return netip.Prefix{}, false
	}
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		return p, err == nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, false
	}
	return netip.PrefixFrom(a, a.BitLen()), true
}

// vtepMAC is the node's VTEP MAC: the configured one, or 0x66 followed by
// the first five bytes of SHA-1 of the node name (SPEC §7), as Calico
// derives it.
func vtepMAC(node, configured string) string {
	if hw, err := net.ParseMAC(configured); err == nil && len(hw) == 6 {
		return hw.String()
	}
	sum := sha1.Sum([]byte(node))
	return net.HardwareAddr(append([]byte{0x66}, sum[:5]...)).String()
}

// updatePool handles an IPPool update (r nil: deleted). A pool whose CIDR
// does not parse is treated as absent.
func (n *network) updatePool(name string, r *v3.IPPool) {
	old, had := n.pools[name]
	var next dpapi.IPPool
	ok := false
	if r != nil {
		next, ok = poolMessage(r)
	}
	if had == ok && old == next {
		return
	}
	if ok {
		n.pools[name] = next
	} else {
		delete(n.pools, name)
	}
	n.dirtyPools[name] = struct{}{}
	for _, p := range []netip.Prefix{old.CIDR, next.CIDR} {
		if !p.IsValid() {
			continue
		}
		for dst := range n.owners {
			if p.Bits() <= dst.Bits() && p.Contains(dst.Addr()) {
				n.dirty(dst)
			}
		}
		n.dirtySingles(p)
	}
}

func poolMessage(r *v3.IPPool) (dpapi.IPPool, bool) {
	p, err := netip.ParsePrefix(r.Spec.CIDR)
	if err != nil {
		return dpapi.IPPool{}, false
	}
	return dpapi.IPPool{CIDR: p.Masked(), VXLANMode: encapMode(string(r.Spec.VXLANMode)), IPIPMode: encapMode(string(r.Spec.IPIPMode)),
		NATOutgoing: r.Spec.NATOutgoing, Disabled: r.Spec.Disabled}, true
}

func encapMode(s string) dpapi.EncapMode {
	switch s {
	case string(v3.VXLANModeAlways):
		return dpapi.EncapAlways
	case string(v3.VXLANModeCrossSubnet):
		return dpapi.EncapCrossSubnet
	}
	return dpapi.EncapNever
}

// updateAffinity handles a block affinity (r nil: gone).
func (n *network) updateAffinity(name string, r *affinity.Block) {
	if old, ok := n.affinities[name]; ok {
		if r != nil && old == (affinityRec{node: r.Node, cidr: r.CIDR.Masked()}) {
			return
		}
		delete(n.affinities, name)
		n.owners[old.cidr] = slices.DeleteFunc(n.owners[old.cidr], func(s string) bool { return s == old.node })
		if len(n.owners[old.cidr]) == 0 {
			delete(n.owners, old.cidr)
		}
		n.ownDst(old.node, old.cidr, -1)
		n.dirtyBlock(old.cidr)
	}
	if r == nil || !r.CIDR.IsValid() {
		return
	}
	rec := affinityRec{node: r.Node, cidr: r.CIDR.Masked()}
	n.affinities[name] = rec
	owners := append(n.owners[rec.cidr], rec.node)
	slices.Sort(owners)
	n.owners[rec.cidr] = owners
	n.ownDst(rec.node, rec.cidr, +1)
	n.dirtyBlock(rec.cidr)
}

// dirtyBlock marks a block and the single addresses inside it (their
// routes depend on who owns the block) dirty.
func (n *network) dirtyBlock(cidr netip.Prefix) {
	n.dirty(cidr)
	n.dirtySingles(cidr)
}

// updateWEP handles a workload endpoint anywhere in the cluster (r nil:
// deleted).
func (n *network) updateWEP(key itemKey, r *v3.WorkloadEndpoint) {
	old, had := n.weps[key]
	var next wepRoute
	if r != nil {
		next = wepRoute{node: r.Spec.Node, iface: r.Spec.InterfaceName}
		for _, s := range r.Spec.IPNetworks {
			if p, ok := parseNet(s); ok {
				next.nets = append(next.nets, p)
			}
		}
	}
	if had && r != nil && old.node == next.node && old.iface == next.iface && slices.Equal(old.nets, next.nets) {
		return
	}
	if had {
		for _, p := range old.nets {
			if m := n.addrWEPs[p]; m != nil {
				delete(m, key)
				if len(m) == 0 {
					delete(n.addrWEPs, p)
				}
			}
			n.ownDst(old.node, p, -1)
			n.dirty(p)
		}
		delete(n.weps, key)
	}
	if r == nil {
		return
	}
	n.weps[key] = next
	for _, p := range next.nets {
		m := n.addrWEPs[p]
		if m == nil {
			m = map[itemKey]struct{}{}
			n.addrWEPs[p] = m
		}
		m[key] = struct{}{}
		n.ownDst(next.node, p, +1)
		n.dirty(p)
	}
}

// poolOf returns the pool holding dst (the first by name if pools
// overlap).
func (n *network) poolOf(dst netip.Prefix) (dpapi.IPPool, bool) {
	var best dpapi.IPPool
	bestName, found := "", false
	for name, p := range n.pools {
		if p.CIDR.Bits() <= dst.Bits() && p.CIDR.Contains(dst.Addr()) && (!found || name < bestName) {
			best, bestName, found = p, name, true
		}
	}
	return best, found
}

// inBlockOf reports whether a is inside a block affine to node.
func (n *network) inBlockOf(a netip.Addr, node string) bool {
	for bits := 0; bits <= a.BitLen(); bits++ {
		p, _ := a.Prefix(bits)
		if slices.Contains(n.owners[p], node) {
			return true
		}
	}
	return false
}

// resolve decides the route to dst, if the dataplane programs one.
func (n *network) resolve(dst netip.Prefix) (dpapi.Route, bool) {
	single := dst.IsSingleIP()
	wepKeys := slices.SortedFunc(maps.Keys(n.addrWEPs[dst]), compareItemKeys)
	for _, k := range wepKeys {
		if w := n.weps[k]; w.node == n.me && w.iface != "" {
			return dpapi.Route{Type: dpapi.RouteLocalWorkload, Device: w.iface}, true
		}
	}
	pool, ok := n.poolOf(dst)
	if !ok || pool.VXLANMode == dpapi.EncapNever {
		return dpapi.Route{}, false
	}
	if owners := n.owners[dst]; len(owners) > 0 {
		if owners[0] == n.me {
			return dpapi.Route{Type: dpapi.RouteLocalBlock}, true
		}
		return n.remote(owners[0], pool)
	}
	if !single {
		return dpapi.Route{}, false
	}
	// A remote workload or VTEP address outside its node's blocks.
	var candidates []string
	for _, k := range wepKeys {
		candidates = append(candidates, n.weps[k].node)
	}
	candidates = append(candidates, slices.Sorted(maps.Keys(n.vteps[dst]))...)
	for _, node := range candidates {
		if node != n.me && node != "" && !n.inBlockOf(dst.Addr(), node) {
			return n.remote(node, pool)
		}
	}
	return dpapi.Route{}, false
}

// remote routes to node: straight to its address in a CrossSubnet pool
// when it shares this node's subnet, else through its VTEP.
func (n *network) remote(node string, pool dpapi.IPPool) (dpapi.Route, bool) {
	dn, ok := n.nodes[node]
	if !ok || !pool.CIDR.Addr().Is4() {
		return dpapi.Route{}, false
	}
	if me, ok := n.nodes[n.me]; ok && pool.VXLANMode == dpapi.EncapCrossSubnet &&
		me.IPv4.IsValid() && dn.IPv4.IsValid() && me.IPv4.Masked().Contains(dn.IPv4.Addr()) {
		return dpapi.Route{Type: dpapi.RouteRemote, Node: node, Gateway: dn.IPv4.Addr()}, true
	}
	if !dn.VXLAN.Valid() {
		return dpapi.Route{}, false
	}
	return dpapi.Route{Type: dpapi.RouteRemote, Node: node, VXLAN: true, Gateway: dn.VXLAN.Addr}, true
}

// flush appends the networking messages of a batch (contract rule 7:
// pool and node updates, route updates, route removals, node and pool
// removals).
func (n *network) flush(msgs []dpapi.Message) []dpapi.Message {
	var removes []dpapi.Message
	for _, name := range sortedKeys(n.dirtyPools) {
		if p, ok := n.pools[name]; ok {
			if old, sent := n.sentPools[name]; !sent || old != p {
				msgs = append(msgs, dpapi.IPPoolUpdate{Name: name, Pool: p})
				n.sentPools[name] = p
			}
		} else if _, sent := n.sentPools[name]; sent {
			removes = append(removes, dpapi.IPPoolRemove{Name: name})
			delete(n.sentPools, name)
		}
	}
	n.dirtyPools = emptied(n.dirtyPools)
	for _, name := range sortedKeys(n.dirtyNodes) {
		if nd, ok := n.nodes[name]; ok {
			if old, sent := n.sentNodes[name]; !sent || old != nd {
				msgs = append(msgs, dpapi.NodeUpdate{Name: name, Node: nd})
				n.sentNodes[name] = nd
			}
		} else if _, sent := n.sentNodes[name]; sent {
			removes = append(removes, dpapi.NodeRemove{Name: name})
			delete(n.sentNodes, name)
		}
	}
	n.dirtyNodes = emptied(n.dirtyNodes)
	var routeRemoves []dpapi.Message
	for _, dst := range slices.SortedFunc(maps.Keys(n.dirtyDsts), netip.Prefix.Compare) {
		r, ok := n.resolve(dst)
		old, sent := n.sentRoutes[dst]
		switch {
		case ok && (!sent || old != r):
			msgs = append(msgs, dpapi.RouteUpdate{Dst: dst, Route: r})
			n.sentRoutes[dst] = r
		case !ok && sent:
			routeRemoves = append(routeRemoves, dpapi.RouteRemove{Dst: dst})
			delete(n.sentRoutes, dst)
		}
	}
	n.dirtyDsts = emptied(n.dirtyDsts)
	msgs = append(msgs, routeRemoves...)
	// Node removals before pool removals, each sorted.
	slices.SortStableFunc(removes, func(a, b dpapi.Message) int {
		_, an := a.(dpapi.NodeRemove)
		_, bn := b.(dpapi.NodeRemove)
		return cmp.Compare(boolInt(!an), boolInt(!bn))
	})
	return append(msgs, removes...)
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
