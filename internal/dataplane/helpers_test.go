package dataplane

import (
	"net/netip"
	"time"

	"github.com/calico-go/calico/internal/dpapi"
)

// Builders for hand-written dpapi message sequences.

func testConfig() dpapi.Config {
	return dpapi.Config{
		NodeName:                    "node1",
		InterfacePrefixes:           []string{"cali"},
		FailsafeInbound:             []dpapi.ProtoPort{{Protocol: 6, Port: 22}, {Protocol: 17, Port: 68}},
		FailsafeOutbound:            []dpapi.ProtoPort{{Protocol: 17, Port: 53}, {Protocol: 6, Port: 2379, Net: netip.MustParsePrefix("192.0.2.0/24")}},
		DefaultEndpointToHostAction: "Drop",
		FilterAllowAction:           "Accept",
		MangleAllowAction:           "Accept",
		FilterDenyAction:            "Drop",
		MarkMask:                    0xffff0000,
		LogPrefix:                   "calico-packet",
		WorkloadSourceSpoofing:      "Disabled",
		RefreshInterval:             90 * time.Second,
		IPv6Support:                 true,
	}
}

func cfgMsg(mod ...func(*dpapi.Config)) dpapi.ConfigUpdate {
	c := testConfig()
	for _, m := range mod {
		m(&c)
	}
	return dpapi.ConfigUpdate{Config: c}
}

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }

func ipsetMsg(id string, members ...string) dpapi.IPSetUpdate {
	u := dpapi.IPSetUpdate{ID: id, Type: dpapi.IPSetNets}
	for _, m := range members {
		u.Members = append(u.Members, dpapi.Member{Prefix: pfx(m)})
	}
	return u
}

func namedPortSet(id string, proto uint8, port uint16, addrs ...string) dpapi.IPSetUpdate {
	u := dpapi.IPSetUpdate{ID: id, Type: dpapi.IPSetIPPorts}
	for _, a := range addrs {
		u.Members = append(u.Members, dpapi.Member{Prefix: pfx(a), Protocol: proto, Port: port})
	}
	return u
}

func polID(tier, name string) dpapi.PolicyID {
	return dpapi.PolicyID{Tier: tier, Name: name, Kind: dpapi.KindGlobalNetworkPolicy}
}

func polMsg(id dpapi.PolicyID, in, out []dpapi.Rule) dpapi.PolicyUpdate {
	return dpapi.PolicyUpdate{ID: id, Policy: dpapi.Policy{InboundRules: in, OutboundRules: out}}
}

func rules(rs ...dpapi.Rule) []dpapi.Rule { return rs }

func allow() dpapi.Rule { return dpapi.Rule{Action: dpapi.ActionAllow} }

var allowAllProfile = dpapi.ProfileUpdate{ID: dpapi.ProfileID{Name: "kns.default"},
	Profile: dpapi.Profile{InboundRules: rules(allow()), OutboundRules: rules(allow())}}

func tier(name string, in, out []dpapi.PolicyID) dpapi.TierInfo {
	return dpapi.TierInfo{Name: name, DefaultAction: dpapi.ActionDeny, IngressPolicies: in, EgressPolicies: out}
}

func ids(ps ...dpapi.PolicyID) []dpapi.PolicyID { return ps }

func wepID(name string) dpapi.WorkloadEndpointID {
	return dpapi.WorkloadEndpointID{Namespace: "default", Name: name}
}

func wepMsg(name, iface, addr string, profiles []string, tiers ...dpapi.TierInfo) dpapi.WorkloadEndpointUpdate {
	ep := dpapi.WorkloadEndpoint{Orchestrator: "k8s", Workload: name, Endpoint: "eth0", InterfaceName: iface, Tiers: tiers}
	a := netip.MustParseAddr(addr)
	if a.Is4() {
		ep.IPv4Nets = []netip.Prefix{netip.PrefixFrom(a, 32)}
	} else {
		ep.IPv6Nets = []netip.Prefix{netip.PrefixFrom(a, 128)}
	}
	for _, p := range profiles {
		ep.ProfileIDs = append(ep.ProfileIDs, dpapi.ProfileID{Name: p})
	}
	return dpapi.WorkloadEndpointUpdate{ID: wepID(name), Endpoint: ep}
}

func batch(ms ...dpapi.Message) []dpapi.Message { return ms }

func dpapiInSync() dpapi.Message { return dpapi.InSync{} }
