package v3

import (
	"net/netip"
	"strings"
)

var (
	linkLocalV4 = netip.MustParsePrefix("169.254.0.0/16")
	linkLocalV6 = netip.MustParsePrefix("fe80::/10")
)

// effectiveBlockSize is the block size, or the family default when unset.
func effectiveBlockSize(s *IPPoolSpec) int {
	if s.BlockSize != 0 {
		return s.BlockSize
	}
	if p, ok := parseCIDR(s.CIDR, false); ok && p.Addr().Is6() {
		return DefaultBlockSizeV6
	}
	return DefaultBlockSizeV4
}

func (c *checker) ipPool(s *IPPoolSpec) {
	var pool netip.Prefix
	ok := false
	if s.CIDR == "" {
		c.add("spec.cidr", "required")
	} else if pool, ok = c.cidr("spec.cidr", s.CIDR, false, 0); ok {
		if !validPrefixBits(pool) {
			c.add("spec.cidr", "%q has host bits set; use %s", s.CIDR, pool.Masked())
		}
		if pool.Overlaps(linkLocalV4) || pool.Overlaps(linkLocalV6) {
			c.add("spec.cidr", "%q overlaps the link-local range", s.CIDR)
		}
	}
	v6 := ok && pool.Addr().Is6()
	bs := effectiveBlockSize(s)
	switch {
	case !ok:
	case v6 && (bs < 116 || bs > 128):
		c.add("spec.blockSize", "%d is out of range 116-128 for an IPv6 pool", bs)
	case !v6 && (bs < 20 || bs > 32):
		c.add("spec.blockSize", "%d is out of range 20-32 for an IPv4 pool", bs)
	case bs < pool.Bits() && !s.Disabled:
		c.add("spec.blockSize", "%d is larger than the pool (/%d); only allowed on a disabled pool", bs, pool.Bits())
	}
	modes := []string{"Never", "Always", "CrossSubnet"}
	c.enum("spec.ipipMode", string(s.IPIPMode), modes...)
	c.enum("spec.vxlanMode", string(s.VXLANMode), modes...)
	ipip := s.IPIPMode != "" && s.IPIPMode != IPIPModeNever
	vxlan := s.VXLANMode != "" && s.VXLANMode != VXLANModeNever
	if ipip && vxlan {
		c.add("spec.ipipMode", "IPIP and VXLAN cannot both be enabled on one pool")
	}
	if ipip && v6 {
		c.add("spec.ipipMode", "IPIP is not supported on IPv6 pools")
	}
	c.selector("spec.nodeSelector", s.NodeSelector, false)
	c.selector("spec.namespaceSelector", s.NamespaceSelector, false)
	if s.AssignmentMode != nil {
		c.enum("spec.assignmentMode", string(*s.AssignmentMode), string(AssignmentModeAutomatic), string(AssignmentModeManual))
		if *s.AssignmentMode == "" {
			c.add("spec.assignmentMode", "may not be empty")
		}
	}
	c.allowedUses(s, ipip || vxlan)
}

func (c *checker) allowedUses(s *IPPoolSpec, encap bool) {
	seen := map[IPPoolAllowedUse]bool{}
	for i, u := range s.AllowedUses {
		f := idx("spec.allowedUses", i)
		switch {
		case u != IPPoolAllowedUseWorkload && u != IPPoolAllowedUseTunnel && u != IPPoolAllowedUseLoadBalancer:
			c.add(f, "%q is not one of Workload, Tunnel, LoadBalancer", u)
		case seen[u]:
			c.add(f, "%q repeated", u)
		}
		seen[u] = true
	}
	if seen[IPPoolAllowedUseLoadBalancer] {
		if len(s.AllowedUses) > 1 {
			c.add("spec.allowedUses", "LoadBalancer cannot be combined with other uses")
		}
		if encap {
			c.add("spec.allowedUses", "LoadBalancer pools cannot use IPIP or VXLAN")
		}
		if s.DisableBGPExport {
			c.add("spec.disableBGPExport", "not allowed on a LoadBalancer pool")
		}
		if ns := strings.TrimSpace(s.NodeSelector); ns != "" && ns != "all()" {
			c.add("spec.nodeSelector", "must be all() on a LoadBalancer pool")
		}
	}
	tunnel := seen[IPPoolAllowedUseTunnel] || len(s.AllowedUses) == 0
	if tunnel && s.NamespaceSelector != "" {
		c.add("spec.namespaceSelector", "not allowed on a pool used for Tunnel addresses")
	}
}

func (c *checker) ipReservation(s *IPReservationSpec) {
	for i, r := range s.ReservedCIDRs {
		c.cidr(idx("spec.reservedCIDRs", i), r, true, 0)
	}
}

// maxIPCooldownSeconds bounds IPAMConfiguration.ipCooldownSeconds.
const maxIPCooldownSeconds = 1200

func (c *checker) ipamConfiguration(s *IPAMConfigurationSpec) {
	if s.MaxBlocksPerHost < 0 {
		c.add("spec.maxBlocksPerHost", "may not be negative")
	}
	if s.MaxBlocksPerHost > 0 && !s.StrictAffinity {
		c.add("spec.maxBlocksPerHost", "a value above 0 needs strictAffinity: true")
	}
	if s.AutoAllocateBlocks != nil && !*s.AutoAllocateBlocks && !s.StrictAffinity {
		c.add("spec.autoAllocateBlocks", "false needs strictAffinity: true")
	}
	if v := s.IPCooldownSeconds; v != nil && (*v < 0 || *v > maxIPCooldownSeconds) {
		c.add("spec.ipCooldownSeconds", "%d is out of range 0-%d", *v, maxIPCooldownSeconds)
	}
	if p := s.KubeVirtVMAddressPersistence; p != nil {
		c.enum("spec.kubeVirtVMAddressPersistence", string(*p), string(VMAddressPersistenceEnabled), string(VMAddressPersistenceDisabled))
	}
}
