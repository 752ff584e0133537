package v3

import (
	"regexp"
	"strings"
)

// Routing tables the kernel reserves (local, main, default).
const (
	firstReservedTable = 253
	lastReservedTable  = 255
	maxRouteTable      = 0xffffffff
)

func (c *checker) felixConfiguration(s *FelixConfigurationSpec) {
	c.selector("spec.nodeSelector", s.NodeSelector, false)
	c.felixEnums(s)
	c.protoPorts("spec.failsafeInboundHostPorts", s.FailsafeInboundHostPorts)
	c.protoPorts("spec.failsafeOutboundHostPorts", s.FailsafeOutboundHostPorts)
	if s.LogPrefix != "" && strings.ContainsAny(s.LogPrefix, "\n\"") {
		c.add("spec.logPrefix", "may not contain quotes or newlines")
	}
	c.felixDurations(s)
	c.felixNumbers(s)
	c.felixAddresses(s)
	c.felixPatterns(s)
	for i, r := range s.RouteTableRanges {
		f := idx("spec.routeTableRanges", i)
		switch {
		case r.Min < 1 || r.Max > maxRouteTable || r.Min > r.Max:
			c.add(f, "%d-%d must satisfy 1 <= min <= max <= %d", r.Min, r.Max, maxRouteTable)
		case r.Min <= lastReservedTable && r.Max >= firstReservedTable:
			c.add(f, "%d-%d overlaps the kernel's reserved tables 253-255", r.Min, r.Max)
		}
	}
	if p := s.BPFPSNATPorts; p != nil {
		c.port("spec.bpfPSNATPorts", *p)
	}
	if p := s.NATPortRange; p != nil {
		c.port("spec.natPortRange", *p)
	}
	if l := s.KubeNodePortRanges; l != nil {
		for i, p := range *l {
			c.port(idx("spec.kubeNodePortRanges", i), p)
		}
	}
}

func (c *checker) felixEnums(s *FelixConfigurationSpec) {
	c.enum("spec.defaultEndpointToHostAction", s.DefaultEndpointToHostAction, "Drop", "Return", "Accept")
	c.enum("spec.chainInsertMode", s.ChainInsertMode, "Insert", "Append")
	c.enum("spec.iptablesFilterAllowAction", s.IptablesFilterAllowAction, "Accept", "Return")
	c.enum("spec.iptablesMangleAllowAction", s.IptablesMangleAllowAction, "Accept", "Return")
	c.enum("spec.iptablesFilterDenyAction", s.IptablesFilterDenyAction, "Drop", "Reject")
	c.enum("spec.nftablesFilterAllowAction", s.NftablesFilterAllowAction, "Accept", "Return")
	c.enum("spec.nftablesMangleAllowAction", s.NftablesMangleAllowAction, "Accept", "Return")
	c.enum("spec.nftablesFilterDenyAction", s.NftablesFilterDenyAction, "Drop", "Reject")
	c.enumFold("spec.iptablesBackend", s.IptablesBackend, "Auto", "Legacy", "NFT")
	c.enum("spec.nftablesMode", s.NFTablesMode, "Auto", "Enabled", "Disabled")
	c.enum("spec.routeSource", s.RouteSource, "CalicoIPAM", "WorkloadIPs")
	c.enum("spec.natOutgoingExclusions", s.NATOutgoingExclusions, "IPPoolsOnly", "IPPoolsAndHostIPs")
	c.enum("spec.serviceLoopPrevention", s.ServiceLoopPrevention, "Drop", "Reject", "Disabled")
	c.enum("spec.workloadSourceSpoofing", s.WorkloadSourceSpoofing, "Disabled", "Any")
	c.enum("spec.bpfExternalServiceMode", s.BPFExternalServiceMode, "Tunnel", "DSR")
	c.enum("spec.bpfConnectTimeLoadBalancing", s.BPFConnectTimeLoadBalancing, "TCP", "Enabled", "Disabled")
	c.enum("spec.bpfEnforceRPF", s.BPFEnforceRPF, "Disabled", "Strict", "Loose")
	c.enumFold("spec.bpfLogLevel", s.BPFLogLevel, "Off", "Info", "Debug")
	c.enumFold("spec.logSeverityScreen", s.LogSeverityScreen, logLevels...)
	c.enumFold("spec.logSeverityFile", s.LogSeverityFile, logLevels...)
	c.enumFold("spec.logSeveritySys", s.LogSeveritySys, logLevels...)
	if p := s.ProgramClusterRoutes; p != nil {
		c.programClusterRoutes("spec.programClusterRoutes", *p)
	}
}

func (c *checker) protoPorts(field string, pps *[]ProtoPort) {
	if pps == nil {
		return
	}
	for i, pp := range *pps {
		f := idx(field, i)
		c.enumFold(f+".protocol", pp.Protocol, "TCP", "UDP", "SCTP")
		if pp.Port == 0 {
			c.add(f+".port", "must be 1-65535")
		}
		if pp.Net != "" {
			c.cidr(f+".net", pp.Net, true, 0)
		}
	}
}

func (c *checker) felixDurations(s *FelixConfigurationSpec) {
	c.duration("spec.iptablesRefreshInterval", s.IptablesRefreshInterval)
	c.duration("spec.nftablesRefreshInterval", s.NftablesRefreshInterval)
	c.duration("spec.ipsetsRefreshInterval", s.IpsetsRefreshInterval)
	c.duration("spec.routeRefreshInterval", s.RouteRefreshInterval)
	c.duration("spec.interfaceRefreshInterval", s.InterfaceRefreshInterval)
	c.duration("spec.iptablesPostWriteCheckInterval", s.IptablesPostWriteCheckInterval)
	c.duration("spec.iptablesLockTimeout", s.IptablesLockTimeout)
	c.duration("spec.iptablesLockProbeInterval", s.IptablesLockProbeInterval)
	c.duration("spec.netlinkTimeout", s.NetlinkTimeout)
	c.duration("spec.wireguardKeepAlive", s.WireguardKeepAlive)
	c.duration("spec.bpfKubeProxyMinSyncPeriod", s.BPFKubeProxyMinSyncPeriod)
	c.duration("spec.reportingInterval", s.ReportingInterval)
	c.duration("spec.reportingTTL", s.ReportingTTL)
	c.duration("spec.endpointReportingDelay", s.EndpointReportingDelay)
	c.duration("spec.usageReportingInitialDelay", s.UsageReportingInitialDelay)
	c.duration("spec.usageReportingInterval", s.UsageReportingInterval)
}

func (c *checker) felixNumbers(s *FelixConfigurationSpec) {
	const maxInt = int(^uint32(0) >> 1)
	ports := []struct {
		name string
		v    *int
	}{
		{"vxlanPort", s.VXLANPort}, {"healthPort", s.HealthPort}, {"prometheusMetricsPort", s.PrometheusMetricsPort},
		{"wireguardListeningPort", s.WireguardListeningPort}, {"wireguardListeningPortV6", s.WireguardListeningPortV6},
	}
	for _, p := range ports {
		c.intRange("spec."+p.name, p.v, 1, 65535)
	}
	nonNeg := []struct {
		name string
		v    *int
	}{
		{"ipipMTU", s.IPIPMTU}, {"vxlanMTU", s.VXLANMTU}, {"vxlanMTUV6", s.VXLANMTUV6},
		{"wireguardMTU", s.WireguardMTU}, {"wireguardMTUV6", s.WireguardMTUV6}, {"vxlanVNI", s.VXLANVNI},
		{"maxIpsetSize", s.MaxIpsetSize}, {"wireguardRoutingRulePriority", s.WireguardRoutingRulePriority},
		{"bpfMapSizeConntrack", s.BPFMapSizeConntrack}, {"bpfMapSizeNATFrontend", s.BPFMapSizeNATFrontend},
		{"bpfMapSizeNATBackend", s.BPFMapSizeNATBackend}, {"bpfMapSizeRoute", s.BPFMapSizeRoute},
		{"bpfMapSizeIPSets", s.BPFMapSizeIPSets},
	}
	for _, n := range nonNeg {
		c.intRange("spec."+n.name, n.v, 0, maxInt)
	}
	c.intRange("spec.deviceRouteProtocol", s.DeviceRouteProtocol, 0, 255)
	if m := s.IptablesMarkMask; m != nil && *m == 0 {
		c.add("spec.iptablesMarkMask", "may not be 0")
	}
	if m := s.NftablesMarkMask; m != nil && *m == 0 {
		c.add("spec.nftablesMarkMask", "may not be 0")
	}
	if len(s.WireguardInterfaceName) > 15 {
		c.add("spec.wireguardInterfaceName", "at most 15 characters")
	}
	if len(s.WireguardInterfaceNameV6) > 15 {
		c.add("spec.wireguardInterfaceNameV6", "at most 15 characters")
	}
}

func (c *checker) felixAddresses(s *FelixConfigurationSpec) {
	if s.NATOutgoingAddress != "" {
		c.ip("spec.natOutgoingAddress", s.NATOutgoingAddress, 0)
	}
	if s.DeviceRouteSourceAddress != "" {
		c.ip("spec.deviceRouteSourceAddress", s.DeviceRouteSourceAddress, 4)
	}
	if s.DeviceRouteSourceAddressIPv6 != "" {
		c.ip("spec.deviceRouteSourceAddressIPv6", s.DeviceRouteSourceAddressIPv6, 6)
	}
	if l := s.ExternalNodesCIDRList; l != nil {
		for i, n := range *l {
			c.cidr(idx("spec.externalNodesCIDRList", i), n, true, 0)
		}
	}
}

// felixPatterns checks the regular-expression settings compile.
func (c *checker) felixPatterns(s *FelixConfigurationSpec) {
	for _, p := range []struct{ name, v string }{
		{"mtuIfacePattern", s.MTUIfacePattern},
		{"bpfDataIfacePattern", s.BPFDataIfacePattern},
		{"logDebugFilenameRegex", s.LogDebugFilenameRegex},
	} {
		if _, err := regexp.Compile(p.v); err != nil {
			c.add("spec."+p.name, "invalid regular expression: %v", err)
		}
	}
	if s.InterfaceExclude != "" {
		for i, e := range strings.Split(s.InterfaceExclude, ",") {
			if re, ok := strings.CutPrefix(e, "/"); ok {
				re, ok = strings.CutSuffix(re, "/")
				if _, err := regexp.Compile(re); !ok || err != nil {
					c.add("spec.interfaceExclude", "entry %d: %q is not a valid /regex/", i, e)
				}
			} else if e == "" {
				c.add("spec.interfaceExclude", "entry %d is empty", i)
			}
		}
	}
}
