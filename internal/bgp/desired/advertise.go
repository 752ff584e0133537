package desired

import (
	"net/netip"
	"slices"

	v3 "github.com/calico-go/calico/api/v3"
	"github.com/calico-go/calico/internal/bgp"
)

type poolInfo struct {
	cidr     netip.Prefix
	noExport bool
	vxlan    bool
}

func parsePools(in []v3.IPPool) []poolInfo {
	var out []poolInfo
	for i := range in {
		p, err := netip.ParsePrefix(in[i].Spec.CIDR)
		if err != nil {
			continue
		}
		vx := in[i].Spec.VXLANMode == v3.VXLANModeAlways || in[i].Spec.VXLANMode == v3.VXLANModeCrossSubnet
		out = append(out, poolInfo{cidr: p.Masked(), noExport: in[i].Spec.DisableBGPExport, vxlan: vx})
	}
	return out
}

func poolOf(pools []poolInfo, p netip.Prefix) (poolInfo, bool) {
	for _, pl := range pools {
		if pl.cidr.Bits() <= p.Bits() && pl.cidr.Contains(p.Addr()) {
			return pl, true
		}
	}
	return poolInfo{}, false
}

// advertise fills Routes, Exportable, Blackholes and NoKernel.
func (c *computer) advertise() {
	pools := parsePools(c.in.Pools)
	seen := map[netip.Prefix]bool{}
	add := func(p netip.Prefix) {
		p = p.Masked()
		if seen[p] {
			return
		}
		seen[p] = true
		c.st.Routes = append(c.st.Routes, bgp.Route{Prefix: p, Communities: c.communities(p)})
	}
	for _, b := range c.in.Blocks {
		b = b.Masked()
		c.st.Blackholes = append(c.st.Blackholes, b)
		if pl, ok := poolOf(pools, b); ok && pl.noExport {
			continue
		}
		add(b)
	}
	for _, a := range c.in.Borrowed {
		p := netip.PrefixFrom(a, a.BitLen())
		if pl, ok := poolOf(pools, p); ok && pl.noExport {
			continue
		}
		add(p)
	}
	for _, p := range pools {
		if !p.noExport {
			c.st.Exportable = append(c.st.Exportable, p.cidr)
		}
		if p.vxlan {
			c.st.NoKernel = append(c.st.NoKernel, p.cidr)
		}
	}
	for _, svc := range c.serviceCIDRs() {
		add(svc)
		c.st.Exportable = append(c.st.Exportable, svc)
	}
	slices.SortFunc(c.st.Routes, func(a, b bgp.Route) int { return a.Prefix.Compare(b.Prefix) })
	slices.SortFunc(c.st.Blackholes, netip.Prefix.Compare)
	c.st.Blackholes = slices.Compact(c.st.Blackholes)
}

// serviceCIDRs are the service ranges of the default BGPConfiguration. With
// no Kubernetes services to look at, each node advertises the whole ranges.
func (c *computer) serviceCIDRs() []netip.Prefix {
	if c.def == nil {
		return nil
	}
	var raw []string
	for _, b := range c.def.ServiceClusterIPs {
		raw = append(raw, b.CIDR)
	}
	for _, b := range c.def.ServiceExternalIPs {
		raw = append(raw, b.CIDR)
	}
	for _, b := range c.def.ServiceLoadBalancerIPs {
		raw = append(raw, b.CIDR)
	}
	var out []netip.Prefix
	for _, s := range raw {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			c.warn("BGPConfiguration default: service CIDR %q: %v", s, err)
			continue
		}
		if p.Addr().Is4() != c.st.NodeIPv4.IsValid() && p.Addr().Is6() != c.st.NodeIPv6.IsValid() {
			continue
		}
		out = append(out, p.Masked())
	}
	return out
}

// communities are those of every prefixAdvertisement whose CIDR contains p
// (the node's BGPConfiguration replaces the default one's list), names
// resolved through the communities list.
func (c *computer) communities(p netip.Prefix) []string {
	cfg := c.def
	if c.own != nil && len(c.own.PrefixAdvertisements) > 0 {
		cfg = c.own
	}
	if cfg == nil {
		return nil
	}
	named := map[string]string{}
	for _, spec := range []*v3.BGPConfigurationSpec{c.def, c.own} {
		if spec == nil {
			continue
		}
		for _, cm := range spec.Communities {
			named[cm.Name] = cm.Value
		}
	}
	var out []string
	for _, pa := range cfg.PrefixAdvertisements {
		cidr, err := netip.ParsePrefix(pa.CIDR)
		if err != nil || cidr.Addr().Is4() != p.Addr().Is4() || cidr.Bits() > p.Bits() || !cidr.Masked().Contains(p.Addr()) {
			continue
		}
		for _, v := range pa.Communities {
			if val, ok := named[v]; ok {
				v = val
			}
			if !slices.Contains(out, v) {
				out = append(out, v)
			}
		}
	}
	return out
}
