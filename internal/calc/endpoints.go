package calc

import (
	v3 "github.com/calico-go/calico/api/v3"
	"github.com/calico-go/calico/internal/dpapi"
)

// wepMessage describes a local workload endpoint, without its tiers.
func (g *Graph) wepMessage(r *v3.WorkloadEndpoint, it *item) *dpapi.WorkloadEndpoint {
	s := &r.Spec
	ep := &dpapi.WorkloadEndpoint{
		Orchestrator:  s.Orchestrator,
		Workload:      s.Workload,
		Endpoint:      s.Endpoint,
		InterfaceName: s.InterfaceName,
		MAC:           s.MAC,
		ProfileIDs:    profileIDs(s.Profiles),
	}
	if s.Pod != "" {
		ep.Workload = s.Pod
	}
	for _, n := range it.nets {
		if n.Addr().Is4() {
			ep.IPv4Nets = append(ep.IPv4Nets, n)
		} else {
			ep.IPv6Nets = append(ep.IPv6Nets, n)
		}
	}
	ep.AllowSpoofedSourcePrefixes = g.parseNets(s.AllowSpoofedSourcePrefixes, "workload endpoint "+r.Namespace+"/"+r.Name)
	return ep
}

// hepMessage describes a local host endpoint, without its tiers.
func hepMessage(r *v3.HostEndpoint, it *item) *dpapi.HostEndpoint {
	ep := &dpapi.HostEndpoint{InterfaceName: r.Spec.InterfaceName, ProfileIDs: profileIDs(r.Spec.Profiles)}
	for _, n := range it.nets {
		if n.Addr().Is4() {
			ep.ExpectedIPv4Addrs = append(ep.ExpectedIPv4Addrs, n.Addr())
		} else {
			ep.ExpectedIPv6Addrs = append(ep.ExpectedIPv6Addrs, n.Addr())
		}
	}
	return ep
}

func profileIDs(names []string) []dpapi.ProfileID {
	var out []dpapi.ProfileID
	for _, n := range names {
		out = append(out, dpapi.ProfileID{Name: n})
	}
	return out
}

// endpointMessage returns the update for a local endpoint, with its tiers
// resolved from the policies that select it now.
func (g *Graph) endpointMessage(it *item) dpapi.Message {
	pols := g.sortedPolicies(it)
	if w := it.local.wep; w != nil {
		ep := *w
		ep.Tiers = g.tiersFor(pols, stageNormal)
		return dpapi.WorkloadEndpointUpdate{ID: dpapi.WorkloadEndpointID{Namespace: it.key.ns, Name: it.key.name}, Endpoint: ep}
	}
	ep := *it.local.hep
	ep.Tiers = g.tiersFor(pols, stageNormal)
	if ep.InterfaceName != "*" { // doNotTrack is not supported on "*" host endpoints
		ep.UntrackedTiers = g.tiersFor(pols, stageUntracked)
	}
	ep.PreDNATTiers = g.tiersFor(pols, stagePreDNAT)
	ep.ForwardTiers = g.tiersFor(pols, stageForward)
	return dpapi.HostEndpointUpdate{ID: dpapi.HostEndpointID{Name: it.key.name}, Endpoint: ep}
}
