package v3

import (
	"net"
	"regexp"
	"strconv"
	"strings"
)

// logLevels are the accepted log severities (any case).
var logLevels = []string{"Trace", "Debug", "Info", "Warning", "Error", "Fatal", "Panic", "None"}

const maxRoutePriority = 2147483646

func (c *checker) bgpConfiguration(name string, s *BGPConfigurationSpec) {
	c.enumFold("spec.logSeverityScreen", s.LogSeverityScreen, logLevels...)
	if name != "default" {
		if s.NodeToNodeMeshEnabled != nil {
			c.add("spec.nodeToNodeMeshEnabled", "may only be set in the default BGPConfiguration")
		}
		if s.ASNumber != nil {
			c.add("spec.asNumber", "may only be set in the default BGPConfiguration")
		}
	}
	for i, b := range s.ServiceClusterIPs {
		c.cidr(idx("spec.serviceClusterIPs", i)+".cidr", b.CIDR, false, 0)
	}
	for i, b := range s.ServiceExternalIPs {
		c.cidr(idx("spec.serviceExternalIPs", i)+".cidr", b.CIDR, false, 0)
	}
	for i, b := range s.ServiceLoadBalancerIPs {
		c.cidr(idx("spec.serviceLoadBalancerIPs", i)+".cidr", b.CIDR, false, 0)
	}
	c.communities(s)
	if s.NodeMeshPassword != nil {
		if !s.EffectiveNodeToNodeMeshEnabled() {
			c.add("spec.nodeMeshPassword", "only allowed while nodeToNodeMeshEnabled is true")
		}
		c.password("spec.nodeMeshPassword", s.NodeMeshPassword)
	}
	c.duration("spec.nodeMeshMaxRestartTime", s.NodeMeshMaxRestartTime)
	if s.BindMode != nil {
		c.enum("spec.bindMode", string(*s.BindMode), string(BindModeNone), string(BindModeNodeIP))
	}
	for i, iface := range s.IgnoredInterfaces {
		if iface == "" {
			c.add(idx("spec.ignoredInterfaces", i), "may not be empty")
		}
	}
	if s.LocalWorkloadPeeringIPV4 != "" {
		c.ip("spec.localWorkloadPeeringIPV4", s.LocalWorkloadPeeringIPV4, 4)
	}
	if s.LocalWorkloadPeeringIPV6 != "" {
		c.ip("spec.localWorkloadPeeringIPV6", s.LocalWorkloadPeeringIPV6, 6)
	}
	if a := s.ServiceLoadBalancerAggregation; a != nil {
		c.enum("spec.serviceLoadBalancerAggregation", string(*a),
			string(ServiceLoadBalancerAggregationEnabled), string(ServiceLoadBalancerAggregationDisabled))
	}
	if p := s.ProgramClusterRoutes; p != nil {
		c.programClusterRoutes("spec.programClusterRoutes", string(*p))
	}
	c.intRange("spec.ipv4NormalRoutePriority", s.IPv4NormalRoutePriority, 1, maxRoutePriority)
	c.intRange("spec.ipv6NormalRoutePriority", s.IPv6NormalRoutePriority, 1, maxRoutePriority)
	c.intRange("spec.ipv4ElevatedRoutePriority", s.IPv4ElevatedRoutePriority, 1, maxRoutePriority)
	c.intRange("spec.ipv6ElevatedRoutePriority", s.IPv6ElevatedRoutePriority, 1, maxRoutePriority)
}

func (c *checker) programClusterRoutes(field, v string) {
	c.enum(field, v, string(ProgramClusterRoutesEnabled), string(ProgramClusterRoutesDisabled),
		string(ProgramClusterRoutesEnabledNoEncapOnly), string(ProgramClusterRoutesEnabledIPIPOnly))
}

// communities checks community names and values, that every community is
// used by a prefix advertisement, and that advertisements name only known
// communities or literal values.
func (c *checker) communities(s *BGPConfigurationSpec) {
	byName := map[string]bool{}
	for i, cm := range s.Communities {
		f := idx("spec.communities", i)
		if cm.Name == "" {
			c.add(f+".name", "required")
		} else if byName[cm.Name] {
			c.add(f+".name", "%q repeated", cm.Name)
		}
		byName[cm.Name] = true
		if !validCommunity(cm.Value) {
			c.add(f+".value", "%q is not aa:nn (16-bit parts) or aa:nn:mm (32-bit parts)", cm.Value)
		}
	}
	used := map[string]bool{}
	for i, pa := range s.PrefixAdvertisements {
		f := idx("spec.prefixAdvertisements", i)
		c.cidr(f+".cidr", pa.CIDR, false, 0)
		for j, v := range pa.Communities {
			used[v] = true
			if !byName[v] && !validCommunity(v) {
				c.add(idx(f+".communities", j), "%q is neither a defined community name nor a community value", v)
			}
		}
	}
	for i, cm := range s.Communities {
		if cm.Name != "" && !used[cm.Name] {
			c.add(idx("spec.communities", i), "community %q is not used by any prefixAdvertisement", cm.Name)
		}
	}
}

// validCommunity accepts "aa:nn" (standard, 16-bit parts) or "aa:nn:mm"
// (large, 32-bit parts).
func validCommunity(v string) bool {
	parts := strings.Split(v, ":")
	bits := 0
	switch len(parts) {
	case 2:
		bits = 16
	case 3:
		bits = 32
	default:
		return false
	}
	for _, p := range parts {
		if !isDigits(p) {
			return false
		}
		if _, err := strconv.ParseUint(p, 10, bits); err != nil {
			return false
		}
	}
	return true
}

func (c *checker) password(field string, p *BGPPassword) {
	if p.SecretKeyRef == nil {
		return
	}
	if p.SecretKeyRef.Name == "" {
		c.add(field+".secretKeyRef.name", "required")
	}
	if p.SecretKeyRef.Key == "" {
		c.add(field+".secretKeyRef.key", "required")
	}
}

func (c *checker) bgpPeer(s *BGPPeerSpec) {
	if s.Node != "" {
		c.resourceName("spec.node", s.Node)
		if s.NodeSelector != "" {
			c.add("spec.nodeSelector", "cannot be combined with node")
		}
	}
	c.selector("spec.nodeSelector", s.NodeSelector, false)
	c.selector("spec.peerSelector", s.PeerSelector, false)
	c.selector("spec.localWorkloadSelector", s.LocalWorkloadSelector, false)
	var peerFamily int
	if s.PeerIP != "" {
		peerFamily = c.peerIP("spec.peerIP", s.PeerIP)
		if s.PeerSelector != "" {
			c.add("spec.peerSelector", "cannot be combined with peerIP")
		}
	}
	if s.PeerSelector != "" && s.ASNumber != 0 {
		c.add("spec.asNumber", "must be empty with peerSelector; the remote node's AS number is used")
	}
	if s.LocalWorkloadSelector != "" {
		if s.ASNumber == 0 {
			c.add("spec.asNumber", "required with localWorkloadSelector")
		}
		if s.PeerIP != "" {
			c.add("spec.peerIP", "cannot be combined with localWorkloadSelector")
		}
		if s.PeerSelector != "" {
			c.add("spec.peerSelector", "cannot be combined with localWorkloadSelector")
		}
	}
	if s.Password != nil {
		c.password("spec.password", s.Password)
	}
	c.enum("spec.sourceAddress", string(s.SourceAddress), string(SourceAddressUseNodeIP), string(SourceAddressNone))
	c.duration("spec.maxRestartTime", s.MaxRestartTime)
	c.duration("spec.keepaliveTime", s.KeepaliveTime)
	if n := s.NumAllowedLocalASNumbers; n != nil && *n < 0 {
		c.add("spec.numAllowedLocalASNumbers", "may not be negative")
	}
	c.bgpPeerNextHop(s, peerFamily)
	for i, f := range s.Filters {
		c.resourceName(idx("spec.filters", i), f)
	}
	if rp := s.ReversePeering; rp != nil {
		c.enum("spec.reversePeering", string(*rp), string(ReversePeeringAuto), string(ReversePeeringManual))
	}
}

// bgpPeerNextHop checks nextHopMode and reachableBy.
func (c *checker) bgpPeerNextHop(s *BGPPeerSpec, peerFamily int) {
	if m := s.NextHopMode; m != nil {
		c.enum("spec.nextHopMode", string(*m), string(NextHopModeAuto), string(NextHopModeSelf), string(NextHopModeKeep))
		if s.KeepOriginalNextHop {
			c.add("spec.nextHopMode", "cannot be combined with keepOriginalNextHop")
		}
	}
	if s.ReachableBy != "" {
		if a, ok := c.ip("spec.reachableBy", s.ReachableBy, 0); ok {
			switch {
			case s.PeerIP == "":
				c.add("spec.reachableBy", "needs peerIP")
			case peerFamily != 0 && familyOf(a) != peerFamily:
				c.add("spec.reachableBy", "must be of the same address family as peerIP")
			}
		}
	}
}

// peerIP checks "ip", "ip:port" or "[v6]:port" and returns the family.
func (c *checker) peerIP(field, s string) int {
	if a, ok := parseIP(s); ok {
		return familyOf(a)
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		c.add(field, "%q is not ip, ip:port or [ipv6]:port", s)
		return 0
	}
	a, ok := parseIP(host)
	if !ok {
		c.add(field, "%q is not ip, ip:port or [ipv6]:port", s)
		return 0
	}
	if a.Is6() && !strings.HasPrefix(s, "[") {
		c.add(field, "%q: an IPv6 address with a port must be written [ip]:port", s)
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 || !isDigits(port) {
		c.add(field, "%q: port must be 1-65535", s)
	}
	return familyOf(a)
}

var bgpFilterInterfaceRE = regexp.MustCompile(`^[a-zA-Z0-9_.*-]{1,15}$`)

func (c *checker) bgpFilter(s *BGPFilterSpec) {
	for i := range s.ExportV4 {
		c.bgpFilterRule(idx("spec.exportV4", i), s.ExportV4[i], 4)
	}
	for i := range s.ImportV4 {
		c.bgpFilterRule(idx("spec.importV4", i), s.ImportV4[i], 4)
	}
	for i := range s.ExportV6 {
		c.bgpFilterRule(idx("spec.exportV6", i), BGPFilterRuleV4(s.ExportV6[i]), 6)
	}
	for i := range s.ImportV6 {
		c.bgpFilterRule(idx("spec.importV6", i), BGPFilterRuleV4(s.ImportV6[i]), 6)
	}
}

// bgpFilterRule checks one rule; the V6 type converts to the V4 type as
// they share their fields.
func (c *checker) bgpFilterRule(field string, r BGPFilterRuleV4, family int) {
	switch r.Action {
	case "":
		c.add(field+".action", "required")
	case BGPFilterAccept, BGPFilterReject:
	default:
		c.add(field+".action", "%q is not one of Accept, Reject", r.Action)
	}
	c.enum(field+".matchOperator", string(r.MatchOperator), string(MatchOperatorEqual),
		string(MatchOperatorNotEqual), string(MatchOperatorIn), string(MatchOperatorNotIn))
	maxBits := 32
	if family == 6 {
		maxBits = 128
	}
	cidrBits := -1
	if r.CIDR != "" {
		if p, ok := c.cidr(field+".cidr", r.CIDR, false, family); ok {
			cidrBits = p.Bits()
		}
		if r.MatchOperator == "" {
			c.add(field+".matchOperator", "required with cidr")
		}
	} else if r.MatchOperator != "" {
		c.add(field+".cidr", "required with matchOperator")
	}
	if pl := r.PrefixLength; pl != nil {
		if r.CIDR == "" {
			c.add(field+".prefixLength", "needs cidr")
		}
		c.prefixLength(field+".prefixLength", pl, cidrBits, maxBits)
	}
	c.enum(field+".source", string(r.Source), string(BGPFilterSourceRemotePeers))
	if r.Interface != "" && !bgpFilterInterfaceRE.MatchString(r.Interface) {
		c.add(field+".interface", "%q must be 1-15 characters of [a-zA-Z0-9_.*-]", r.Interface)
	}
	c.enum(field+".peerType", string(r.PeerType), string(BGPFilterPeerTypeEBGP), string(BGPFilterPeerTypeIBGP))
	if cm := r.Communities; cm != nil {
		if len(cm.Values) != 1 {
			c.add(field+".communities.values", "exactly one value is supported (have %d)", len(cm.Values))
		}
		for j, v := range cm.Values {
			if !validCommunity(v) {
				c.add(idx(field+".communities.values", j), "%q is not aa:nn or aa:nn:mm", v)
			}
		}
	}
	c.intRange(field+".priority", r.Priority, 1, maxRoutePriority)
	c.bgpFilterOperations(field+".operations", r.Operations, r.Action)
}

// prefixLength checks min/max against the family and the rule's CIDR
// (cidrBits < 0 when there is none).
func (c *checker) prefixLength(field string, pl *BGPFilterPrefixLength, cidrBits, maxBits int) {
	for _, b := range []struct {
		name string
		v    *int32
	}{{"min", pl.Min}, {"max", pl.Max}} {
		if b.v != nil && (*b.v < 0 || int(*b.v) > maxBits) {
			c.add(field+"."+b.name, "%d is out of range 0-%d", *b.v, maxBits)
		}
	}
	if pl.Min != nil && pl.Max != nil && *pl.Min > *pl.Max {
		c.add(field, "min is above max")
	}
	if pl.Min != nil && cidrBits >= 0 && int(*pl.Min) < cidrBits {
		c.add(field+".min", "is shorter than the cidr's prefix /%d", cidrBits)
	}
}

func (c *checker) bgpFilterOperations(field string, ops []BGPFilterOperation, action BGPFilterAction) {
	if len(ops) == 0 {
		return
	}
	if action != BGPFilterAccept {
		c.add(field, "only allowed with action Accept")
	}
	if len(ops) > 10 {
		c.add(field, "at most 10 entries allowed (have %d)", len(ops))
	}
	for i, op := range ops {
		f := idx(field, i)
		n := 0
		if op.AddCommunity != nil {
			n++
			if !validCommunity(op.AddCommunity.Value) {
				c.add(f+".addCommunity.value", "%q is not aa:nn or aa:nn:mm", op.AddCommunity.Value)
			}
		}
		if op.PrependASPath != nil {
			n++
			if l := len(op.PrependASPath.Prefix); l < 1 || l > 10 {
				c.add(f+".prependASPath.prefix", "needs 1-10 AS numbers (have %d)", l)
			}
		}
		if op.SetPriority != nil {
			n++
			v := op.SetPriority.Value
			c.intRange(f+".setPriority.value", &v, 1, maxRoutePriority)
		}
		if n != 1 {
			c.add(f, "exactly one operation must be set (have %d)", n)
		}
	}
}
