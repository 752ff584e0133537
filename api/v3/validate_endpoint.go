package v3

import (
	"encoding/base64"
	"net"
	"regexp"
)

var interfaceNameRE = regexp.MustCompile(`^[a-zA-Z0-9_.-]{1,15}$`)

// dscpNames are the DSCP class names accepted instead of a number.
var dscpNames = []string{
	"DF", "EF", "CS0", "CS1", "CS2", "CS3", "CS4", "CS5", "CS6", "CS7",
	"AF11", "AF12", "AF13", "AF21", "AF22", "AF23", "AF31", "AF32", "AF33", "AF41", "AF42", "AF43",
}

func (c *checker) interfaceName(field, s string, wildcard bool) {
	if wildcard && s == "*" {
		return
	}
	if !interfaceNameRE.MatchString(s) {
		c.add(field, "%q must be 1-15 characters of [a-zA-Z0-9_.-]", s)
	}
}

func (c *checker) hostEndpoint(s *HostEndpointSpec) {
	if s.Node == "" {
		c.add("spec.node", "required")
	} else {
		c.resourceName("spec.node", s.Node)
	}
	if s.InterfaceName == "" && len(s.ExpectedIPs) == 0 {
		c.add("spec", "at least one of interfaceName and expectedIPs is required")
	}
	if s.InterfaceName != "" {
		c.interfaceName("spec.interfaceName", s.InterfaceName, true)
	}
	for i, ip := range s.ExpectedIPs {
		c.ip(idx("spec.expectedIPs", i), ip, 0)
	}
	c.profileNames("spec.profiles", s.Profiles)
	for i, p := range s.Ports {
		c.endpointPort(idx("spec.ports", i), p.Name, p.Protocol, p.Port)
	}
}

func (c *checker) profileNames(field string, names []string) {
	for i, p := range names {
		c.resourceName(idx(field, i), p)
	}
}

// endpointPort checks a named port of an endpoint.
func (c *checker) endpointPort(field, name string, proto Protocol, port uint16) {
	if name == "" {
		c.add(field+".name", "required")
	} else {
		c.portName(field+".name", name)
	}
	if c.protocol(field+".protocol", proto) && !proto.SupportsPorts() {
		c.add(field+".protocol", "%s has no ports; must be TCP, UDP or SCTP", proto)
	}
	if port == 0 {
		c.add(field+".port", "must be 1-65535")
	}
}

func (c *checker) workloadEndpoint(s *WorkloadEndpointSpec) {
	if s.Node != "" {
		c.resourceName("spec.node", s.Node)
	}
	for i, n := range s.IPNetworks {
		f := idx("spec.ipNetworks", i)
		if p, ok := c.cidr(f, n, true, 0); ok && p.Bits() != p.Addr().BitLen() {
			c.add(f, "%q must be a /32 or /128", n)
		}
	}
	for i, nat := range s.IPNATs {
		f := idx("spec.ipNATs", i)
		c.ip(f+".internalIP", nat.InternalIP, 0)
		c.ip(f+".externalIP", nat.ExternalIP, 0)
	}
	if s.IPv4Gateway != "" {
		c.ip("spec.ipv4Gateway", s.IPv4Gateway, 4)
	}
	if s.IPv6Gateway != "" {
		c.ip("spec.ipv6Gateway", s.IPv6Gateway, 6)
	}
	c.profileNames("spec.profiles", s.Profiles)
	if s.InterfaceName != "" {
		c.interfaceName("spec.interfaceName", s.InterfaceName, false)
	}
	if s.MAC != "" {
		c.mac("spec.mac", s.MAC)
	}
	for i, p := range s.Ports {
		f := idx("spec.ports", i)
		c.endpointPort(f, p.Name, p.Protocol, p.Port)
		if p.HostIP != "" {
			c.ip(f+".hostIP", p.HostIP, 0)
		}
	}
	for i, n := range s.AllowSpoofedSourcePrefixes {
		c.cidr(idx("spec.allowSpoofedSourcePrefixes", i), n, true, 0)
	}
	if q := s.QoSControls; q != nil {
		c.qos(q)
	}
}

func (c *checker) mac(field, s string) {
	if _, err := net.ParseMAC(s); err != nil {
		c.add(field, "%q is not a MAC address", s)
	}
}

func (c *checker) qos(q *QoSControls) {
	vals := []struct {
		name string
		v    int64
	}{
		{"ingressBandwidth", q.IngressBandwidth}, {"egressBandwidth", q.EgressBandwidth},
		{"ingressBurst", q.IngressBurst}, {"egressBurst", q.EgressBurst},
		{"ingressPeakrate", q.IngressPeakrate}, {"egressPeakrate", q.EgressPeakrate},
		{"ingressMinburst", q.IngressMinburst}, {"egressMinburst", q.EgressMinburst},
		{"ingressPacketRate", q.IngressPacketRate}, {"egressPacketRate", q.EgressPacketRate},
		{"ingressPacketBurst", q.IngressPacketBurst}, {"egressPacketBurst", q.EgressPacketBurst},
		{"ingressMaxConnections", q.IngressMaxConnections}, {"egressMaxConnections", q.EgressMaxConnections},
	}
	for _, v := range vals {
		if v.v < 0 {
			c.add("spec.qosControls."+v.name, "may not be negative")
		}
	}
	if d := q.DSCP; d != nil {
		if d.Type == 0 {
			if d.IntVal < 0 || d.IntVal > 63 {
				c.add("spec.qosControls.dscp", "%d is out of range 0-63", d.IntVal)
			}
		} else {
			c.enumFold("spec.qosControls.dscp", d.StrVal, dscpNames...)
		}
	}
}

func (c *checker) networkSet(labels map[string]string, nets []string) {
	if _, ok := labels[LabelNamespace]; ok {
		c.add("metadata.labels", "label %q is reserved", LabelNamespace)
	}
	for i, n := range nets {
		c.cidr(idx("spec.nets", i), n, true, 0)
	}
}

func (c *checker) node(n *Node) {
	s := &n.Spec
	if b := s.BGP; b != nil {
		if *b == (NodeBGPSpec{}) {
			c.add("spec.bgp", "may not be empty; omit it instead")
		}
		if b.IPv4Address != "" {
			c.cidr("spec.bgp.ipv4Address", b.IPv4Address, true, 4)
		}
		if b.IPv6Address != "" {
			c.cidr("spec.bgp.ipv6Address", b.IPv6Address, true, 6)
		}
		if b.IPv4IPIPTunnelAddr != "" {
			c.ip("spec.bgp.ipv4IPIPTunnelAddr", b.IPv4IPIPTunnelAddr, 4)
		}
		if b.RouteReflectorClusterID != "" {
			c.ip("spec.bgp.routeReflectorClusterID", b.RouteReflectorClusterID, 4)
		}
	}
	if s.IPv4VXLANTunnelAddr != "" {
		c.ip("spec.ipv4VXLANTunnelAddr", s.IPv4VXLANTunnelAddr, 4)
	}
	if s.IPv6VXLANTunnelAddr != "" {
		c.ip("spec.ipv6VXLANTunnelAddr", s.IPv6VXLANTunnelAddr, 6)
	}
	if s.VXLANTunnelMACAddr != "" {
		c.mac("spec.vxlanTunnelMACAddr", s.VXLANTunnelMACAddr)
	}
	if s.VXLANTunnelMACAddrV6 != "" {
		c.mac("spec.vxlanTunnelMACAddrV6", s.VXLANTunnelMACAddrV6)
	}
	if w := s.Wireguard; w != nil {
		if w.InterfaceIPv4Address != "" {
			c.ip("spec.wireguard.interfaceIPv4Address", w.InterfaceIPv4Address, 4)
		}
		if w.InterfaceIPv6Address != "" {
			c.ip("spec.wireguard.interfaceIPv6Address", w.InterfaceIPv6Address, 6)
		}
	}
	for i, a := range s.Addresses {
		f := idx("spec.addresses", i)
		c.cidr(f+".address", a.Address, true, 0)
		c.enum(f+".type", string(a.Type), string(NodeAddressCalicoNodeIP),
			string(NodeAddressInternalIP), string(NodeAddressExternalIP))
	}
	for i, r := range s.OrchRefs {
		if r.Orchestrator == "" {
			c.add(idx("spec.orchRefs", i)+".orchestrator", "required")
		}
	}
	c.wireguardKey("status.wireguardPublicKey", n.Status.WireguardPublicKey)
	c.wireguardKey("status.wireguardPublicKeyV6", n.Status.WireguardPublicKeyV6)
	for i, p := range n.Status.PodCIDRs {
		c.cidr(idx("status.podCIDRs", i), p, false, 0)
	}
}

func (c *checker) wireguardKey(field, key string) {
	if key == "" {
		return
	}
	if b, err := base64.StdEncoding.DecodeString(key); err != nil || len(b) != 32 {
		c.add(field, "must be a base64-encoded 32-byte key")
	}
}

func (c *checker) kubeControllersConfiguration(k *KubeControllersConfiguration) {
	s := &k.Spec
	c.enumFold("spec.logSeverityScreen", s.LogSeverityScreen, logLevels...)
	modes := []string{string(ControllerEnabled), string(ControllerDisabled)}
	c.enum("spec.healthChecks", string(s.HealthChecks), modes...)
	c.duration("spec.etcdV3CompactionPeriod", s.EtcdV3CompactionPeriod)
	c.intRange("spec.prometheusMetricsPort", s.PrometheusMetricsPort, 0, 65535)
	if p := s.DebugProfilePort; p != nil && (*p < 0 || *p > 65535) {
		c.add("spec.debugProfilePort", "%d is out of range 0-65535", *p)
	}
	cc := &s.Controllers
	if n := cc.Node; n != nil {
		c.duration("spec.controllers.node.reconcilerPeriod", n.ReconcilerPeriod)
		c.duration("spec.controllers.node.leakGracePeriod", n.LeakGracePeriod)
		c.enum("spec.controllers.node.syncLabels", string(n.SyncLabels), modes...)
		if h := n.HostEndpoint; h != nil {
			c.enum("spec.controllers.node.hostEndpoint.autoCreate", string(h.AutoCreate), modes...)
			c.enum("spec.controllers.node.hostEndpoint.createDefaultHostEndpoint", string(h.CreateDefaultHostEndpoint), modes...)
		}
	}
	if p := cc.Policy; p != nil {
		c.duration("spec.controllers.policy.reconcilerPeriod", p.ReconcilerPeriod)
	}
	if p := cc.WorkloadEndpoint; p != nil {
		c.duration("spec.controllers.workloadEndpoint.reconcilerPeriod", p.ReconcilerPeriod)
	}
	if p := cc.ServiceAccount; p != nil {
		c.duration("spec.controllers.serviceAccount.reconcilerPeriod", p.ReconcilerPeriod)
	}
	if p := cc.Namespace; p != nil {
		c.duration("spec.controllers.namespace.reconcilerPeriod", p.ReconcilerPeriod)
	}
	if lb := cc.LoadBalancer; lb != nil {
		c.enum("spec.controllers.loadBalancer.assignIPs", lb.AssignIPs, "AllServices", "RequestedServicesOnly")
	}
}
