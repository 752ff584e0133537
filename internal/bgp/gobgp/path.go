package gobgp

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	api "github.com/osrg/gobgp/v3/api"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/calico-go/calico/internal/bgp"
)

var (
	familyV4 = &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST}
	familyV6 = &api.Family{Afi: api.Family_AFI_IP6, Safi: api.Family_SAFI_UNICAST}
)

func family(p netip.Prefix) *api.Family {
	if p.Addr().Is6() {
		return familyV6
	}
	return familyV4
}

func anyOf(m proto.Message) *anypb.Any {
	a, err := anypb.New(m)
	if err != nil {
		panic(fmt.Sprintf("marshal %T: %v", m, err)) // only our own well-formed messages get here
	}
	return a
}

// apiPath builds the GoBGP path that originates r: origin IGP, the given
// next hop (or the session's own address), communities.
func apiPath(r bgp.Route) (*api.Path, error) {
	nlri := anyOf(&api.IPAddressPrefix{Prefix: r.Prefix.Addr().String(), PrefixLen: uint32(r.Prefix.Bits())})
	attrs := []*anypb.Any{anyOf(&api.OriginAttribute{Origin: 0})}
	if r.Prefix.Addr().Is6() {
		nh := "::"
		if r.NextHop.IsValid() {
			nh = r.NextHop.String()
		}
		attrs = append(attrs, anyOf(&api.MpReachNLRIAttribute{Family: familyV6, NextHops: []string{nh}, Nlris: []*anypb.Any{nlri}}))
	} else {
		nh := "0.0.0.0"
		if r.NextHop.IsValid() {
			nh = r.NextHop.String()
		}
		attrs = append(attrs, anyOf(&api.NextHopAttribute{NextHop: nh}))
	}
	var std []uint32
	var large []*api.LargeCommunity
	for _, c := range r.Communities {
		v, l, err := parseCommunity(c)
		if err != nil {
			return nil, fmt.Errorf("route %s: %w", r.Prefix, err)
		}
		if l != nil {
			large = append(large, l)
		} else {
			std = append(std, v)
		}
	}
	if len(std) > 0 {
		attrs = append(attrs, anyOf(&api.CommunitiesAttribute{Communities: std}))
	}
	if len(large) > 0 {
		attrs = append(attrs, anyOf(&api.LargeCommunitiesAttribute{Communities: large}))
	}
	return &api.Path{Family: family(r.Prefix), Nlri: nlri, Pattrs: attrs}, nil
}

var errCommunity = errors.New("community must be aa:nn or aa:nn:mm")

// parseCommunity parses "aa:nn" (16-bit parts) or "aa:nn:mm" (32-bit parts).
func parseCommunity(s string) (uint32, *api.LargeCommunity, error) {
	parts := strings.Split(s, ":")
	bits := 16
	if len(parts) == 3 {
		bits = 32
	} else if len(parts) != 2 {
		return 0, nil, fmt.Errorf("%q: %w", s, errCommunity)
	}
	var v [3]uint32
	for i, p := range parts {
		n, err := strconv.ParseUint(p, 10, bits)
		if err != nil {
			return 0, nil, fmt.Errorf("%q: %w", s, errCommunity)
		}
		v[i] = uint32(n)
	}
	if bits == 32 {
		return 0, &api.LargeCommunity{GlobalAdmin: v[0], LocalData1: v[1], LocalData2: v[2]}, nil
	}
	return v[0]<<16 | v[1], nil, nil
}

// learnedFrom picks the best path of a destination when it was learned from
// a peer (not originated here).
func learnedFrom(d *api.Destination) (bgp.LearnedRoute, bool) {
	pfx, err := netip.ParsePrefix(d.Prefix)
	if err != nil {
		return bgp.LearnedRoute{}, false
	}
	for _, p := range d.Paths {
		if !p.Best || p.IsWithdraw {
			continue
		}
		peer, err := netip.ParseAddr(p.NeighborIp)
		if err != nil || peer.IsUnspecified() {
			return bgp.LearnedRoute{}, false // ours
		}
		nh, ok := nextHop(p)
		if !ok {
			return bgp.LearnedRoute{}, false
		}
		return bgp.LearnedRoute{Prefix: pfx.Masked(), NextHop: nh, Peer: peer, Stale: p.Stale}, true
	}
	return bgp.LearnedRoute{}, false
}

func nextHop(p *api.Path) (netip.Addr, bool) {
	for _, a := range p.Pattrs {
		var nh api.NextHopAttribute
		if a.MessageIs(&nh) && a.UnmarshalTo(&nh) == nil {
			addr, err := netip.ParseAddr(nh.NextHop)
			return addr, err == nil
		}
		var mp api.MpReachNLRIAttribute
		if a.MessageIs(&mp) && a.UnmarshalTo(&mp) == nil && len(mp.NextHops) > 0 {
			addr, err := netip.ParseAddr(mp.NextHops[0])
			return addr, err == nil
		}
	}
	return netip.Addr{}, false
}

func joinErrs(errs []error) error { return errors.Join(errs...) }
