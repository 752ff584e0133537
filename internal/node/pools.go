package node

import (
	"context"
	"crypto/rand"
	"crypto/sha1"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	v3 "github.com/calico-go/calico/api/v3"
	"github.com/calico-go/calico/internal/autodetect"
	"github.com/calico-go/calico/internal/datastore"
	"github.com/calico-go/calico/internal/ipam"
	"github.com/calico-go/calico/internal/selector"
	"github.com/calico-go/calico/pkg/client"
)

// Encapsulation overheads subtracted from the host MTU.
const (
	OverheadVXLANv4 = 50
	OverheadVXLANv6 = 70
	OverheadIPIP    = 20
	fallbackMTU     = 1500
)

// ensureDefaultPools creates the default pool of each family that has no
// pool yet: IPv4 always, IPv6 when the node has an IPv6 address or a v6
// CIDR is configured.
func ensureDefaultPools(ctx context.Context, c *client.Client, n *NodeOptions, hasV6 bool, log *slog.Logger) error {
	if n.Pools.NoDefaultPools {
		return nil
	}
	pools, err := client.List[*v3.IPPool](ctx, c, "")
	if err != nil {
		return fmt.Errorf("list IPPools: %w", err)
	}
	have4, have6 := false, false
	for _, p := range pools {
		if pfx, err := netip.ParsePrefix(p.Spec.CIDR); err == nil {
			if pfx.Addr().Is4() {
				have4 = true
			} else {
				have6 = true
			}
		}
	}
	for _, fam := range []struct {
		v6   bool
		have bool
		spec PoolSpec
		name string
	}{{false, have4, n.Pools.V4, DefaultPoolNameV4}, {true, have6, n.Pools.V6, DefaultPoolNameV6}} {
		if fam.have || (fam.v6 && !hasV6 && fam.spec.CIDR == "") {
			continue
		}
		pool, err := defaultPool(fam.name, fam.spec, fam.v6, n.Backend)
		if err != nil {
			return err
		}
		if _, err := c.Create(ctx, pool); err != nil && !errors.Is(err, datastore.ErrAlreadyExists) {
			return fmt.Errorf("create default pool %s (%s): %w", pool.Name, pool.Spec.CIDR, err)
		}
		log.Info("default pool created", "pool", pool.Name, "cidr", pool.Spec.CIDR,
			"vxlan_mode", string(pool.Spec.VXLANMode), "nat_outgoing", pool.Spec.NATOutgoing)
	}
	return nil
}

func defaultPool(name string, s PoolSpec, v6 bool, backend string) (*v3.IPPool, error) {
	p := v3.NewIPPool()
	p.Name = name
	cidr := s.CIDR
	if cidr == "" && !v6 {
		cidr = DefaultPoolV4
	}
	if cidr == "" {
		ula, err := randomULA()
		if err != nil {
			return nil, err
		}
		cidr = ula
	}
	pfx, err := netip.ParsePrefix(cidr)
	if err != nil || pfx.Addr().Is6() != v6 {
		return nil, fmt.Errorf("default pool CIDR %q: not an IPv%s CIDR", cidr, map[bool]string{false: "4", true: "6"}[v6])
	}
	p.Spec.CIDR = pfx.Masked().String()
	p.Spec.BlockSize = s.BlockSize
	ipip, vxlan := poolMode(s.IPIPMode), poolMode(s.VXLANMode)
	if ipip == "" && vxlan == "" && backend == BackendVXLAN {
		vxlan = "Always"
	}
	if ipip == "" {
		ipip = "Never"
	}
	if vxlan == "" {
		vxlan = "Never"
	}
	p.Spec.IPIPMode, p.Spec.VXLANMode = v3.IPIPMode(ipip), v3.VXLANMode(vxlan)
	p.Spec.NATOutgoing = s.NATOutgoing == nil || *s.NATOutgoing
	p.Spec.NodeSelector = s.NodeSelector
	if p.Spec.NodeSelector == "" {
		p.Spec.NodeSelector = "all()"
	}
	return p, nil
}

// poolMode normalises Always / CrossSubnet / Never (any case, "off" and
// "false" for Never).
func poolMode(s string) string {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "":
		return ""
	case "always", "true", "on":
		return "Always"
	case "crosssubnet", "cross-subnet":
		return "CrossSubnet"
	}
	return "Never"
}

func randomULA() (string, error) {
	b := make([]byte, 5)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate ULA: %w", err)
	}
	a := netip.AddrFrom16([16]byte{0xfd, b[0], b[1], b[2], b[3], b[4]})
	return netip.PrefixFrom(a, 48).String(), nil
}

// tunnel describes one kind of tunnel address kept on the Node.
type tunnel struct {
	handlePrefix string
	attrType     string
	v6           bool
	wantPool     func(*v3.IPPool) bool
	get          func(*v3.Node) string
	set          func(*v3.Node, string)
}

var tunnels = []tunnel{{
	handlePrefix: "vxlan-tunnel-addr-", attrType: ipam.TypeVXLANTunnel,
	wantPool: func(p *v3.IPPool) bool {
		return p.Spec.VXLANMode == v3.VXLANModeAlways || p.Spec.VXLANMode == v3.VXLANModeCrossSubnet
	},
	get: func(n *v3.Node) string { return n.Spec.IPv4VXLANTunnelAddr },
	set: func(n *v3.Node, a string) { n.Spec.IPv4VXLANTunnelAddr = a },
}, {
	handlePrefix: "vxlan-v6-tunnel-addr-", attrType: ipam.TypeVXLANV6Tunnel, v6: true,
	wantPool: func(p *v3.IPPool) bool {
		return p.Spec.VXLANMode == v3.VXLANModeAlways || p.Spec.VXLANMode == v3.VXLANModeCrossSubnet
	},
	get: func(n *v3.Node) string { return n.Spec.IPv6VXLANTunnelAddr },
	set: func(n *v3.Node, a string) { n.Spec.IPv6VXLANTunnelAddr = a },
}, {
	handlePrefix: "ipip-tunnel-addr-", attrType: ipam.TypeIPIPTunnel,
	wantPool: func(p *v3.IPPool) bool {
		return p.Spec.IPIPMode == v3.IPIPModeAlways || p.Spec.IPIPMode == "CrossSubnet"
	},
	get: func(n *v3.Node) string {
		if n.Spec.BGP == nil {
			return ""
		}
		return n.Spec.BGP.IPv4IPIPTunnelAddr
	},
	set: func(n *v3.Node, a string) {
		if n.Spec.BGP != nil {
			n.Spec.BGP.IPv4IPIPTunnelAddr = a
		}
	},
}}

// ensureTunnelAddrs allocates (or keeps, or releases) the node's VXLAN and
// IPIP tunnel addresses from enabled pools of that encapsulation that allow
// the Tunnel use and select the node, and fills in the VXLAN MAC when unset.
// It returns whether the Node changed.
func ensureTunnelAddrs(ctx context.Context, alloc *ipam.Allocator, pools []*v3.IPPool, node *v3.Node, log *slog.Logger) (bool, error) {
	changed := false
	for _, t := range tunnels {
		if t.attrType == ipam.TypeIPIPTunnel && node.Spec.BGP == nil {
			continue
		}
		var names []string
		var cidrs []netip.Prefix
		for _, p := range pools {
			pfx, err := netip.ParsePrefix(p.Spec.CIDR)
			if err != nil || pfx.Addr().Is6() != t.v6 || p.Spec.Disabled || !t.wantPool(p) ||
				!slices.Contains(p.Spec.AllowedUses, v3.IPPoolAllowedUseTunnel) || !selects(p.Spec.NodeSelector, node.Labels) {
				continue
			}
			names, cidrs = append(names, p.Name), append(cidrs, pfx)
		}
		handle := t.handlePrefix + node.Name
		cur := t.get(node)
		if len(names) == 0 {
			if cur != "" {
				if err := alloc.ReleaseByHandle(ctx, handle); err != nil {
					return changed, fmt.Errorf("release tunnel address %s: %w", cur, err)
				}
				t.set(node, "")
				changed = true
				log.Info("tunnel address released", "handle", handle, "address", cur)
			}
			continue
		}
		if keepTunnelAddr(ctx, alloc, cur, handle, cidrs) {
			continue
		}
		if cur != "" {
			if err := alloc.ReleaseByHandle(ctx, handle); err != nil {
				return changed, fmt.Errorf("release tunnel address %s: %w", cur, err)
			}
		}
		args := ipam.AutoAssignArgs{HandleID: handle, Hostname: node.Name, NodeLabels: node.Labels,
			IntendedUse: v3.IPPoolAllowedUseTunnel, Attrs: ipam.Attrs{Node: node.Name, Type: t.attrType}}
		if t.v6 {
			args.Num6, args.IPv6Pools = 1, names
		} else {
			args.Num4, args.IPv4Pools = 1, names
		}
		res, err := alloc.AutoAssign(ctx, args)
		if err != nil {
			return changed, fmt.Errorf("allocate tunnel address (%s): %w", handle, err)
		}
		got := append(res.IPv4, res.IPv6...)
		if len(got) != 1 {
			return changed, fmt.Errorf("allocate tunnel address (%s): got %d addresses", handle, len(got))
		}
		t.set(node, got[0].Addr().String())
		changed = true
		log.Info("tunnel address allocated", "handle", handle, "address", got[0].Addr().String())
	}
	if node.Spec.IPv4VXLANTunnelAddr != "" && node.Spec.VXLANTunnelMACAddr == "" {
		node.Spec.VXLANTunnelMACAddr = VXLANMAC(node.Name)
		changed = true
	}
	if node.Spec.IPv6VXLANTunnelAddr != "" && node.Spec.VXLANTunnelMACAddrV6 == "" {
		node.Spec.VXLANTunnelMACAddrV6 = VXLANMAC(node.Name + "-v6")
		changed = true
	}
	return changed, nil
}

// keepTunnelAddr says whether the node's current tunnel address is still
// good: inside one of the pools and allocated to the handle.
func keepTunnelAddr(ctx context.Context, alloc *ipam.Allocator, cur, handle string, cidrs []netip.Prefix) bool {
	a, err := netip.ParseAddr(cur)
	if err != nil || !slices.ContainsFunc(cidrs, func(p netip.Prefix) bool { return p.Contains(a) }) {
		return false
	}
	al, err := alloc.GetAssignmentAttributes(ctx, a)
	return err == nil && al.HandleID == handle
}

func selects(sel string, labels map[string]string) bool {
	s, err := selector.Parse(sel)
	return err == nil && s.EvaluateMap(labels)
}

// VXLANMAC is Calico's VTEP MAC for a node without vxlanTunnelMACAddr: 66
// followed by the first five bytes of SHA-1(name) (locally administered,
// unicast).
func VXLANMAC(name string) string {
	sum := sha1.Sum([]byte(name))
	return net.HardwareAddr(append([]byte{0x66}, sum[:5]...)).String()
}

// podMTU is the MTU of the interface holding the node address minus the
// largest overhead of the enabled encapsulations.
func podMTU(sys autodetect.System, nodeIP netip.Addr, pools []*v3.IPPool) int {
	mtu := fallbackMTU
	if nodeIP.IsValid() {
		if _, ifc, err := autodetect.InterfaceOf(sys, nodeIP); err == nil && ifc.MTU > 0 {
			mtu = ifc.MTU
		}
	}
	overhead := 0
	for _, p := range pools {
		pfx, err := netip.ParsePrefix(p.Spec.CIDR)
		if err != nil || p.Spec.Disabled {
			continue
		}
		o := 0
		switch {
		case p.Spec.VXLANMode == v3.VXLANModeAlways || p.Spec.VXLANMode == v3.VXLANModeCrossSubnet:
			o = OverheadVXLANv4
			if pfx.Addr().Is6() {
				o = OverheadVXLANv6
			}
		case p.Spec.IPIPMode == v3.IPIPModeAlways || p.Spec.IPIPMode == "CrossSubnet":
			o = OverheadIPIP
		}
		overhead = max(overhead, o)
	}
	return mtu - overhead
}

func mtuFileContent(mtu int) []byte { return []byte(strconv.Itoa(mtu) + "\n") }
