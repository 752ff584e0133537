package dataplane

import (
	"net/netip"
	"testing"

	"github.com/calico-go/calico/internal/dpapi"
	"github.com/calico-go/calico/internal/testutil/netnstest"
	"github.com/calico-go/calico/internal/testutil/wltest"
)

var (
	loopback = netip.MustParseAddr("127.0.0.1")
	hepID    = dpapi.HostEndpointID{Name: "uplink"}
	hp1      = polID("default", "default.host1")
	hp2      = polID("default", "default.host2")
)

// hostWorld adds servers on the host and in the underlay, and a route from
// the underlay to the workloads through the host.
func hostWorld(t *testing.T) *world {
	w := newWorld(t, Options{})
	wltest.Servers(t, w.host.NS, w.host.Addr, []uint16{22, 8000, 8001}, nil)
	wltest.Servers(t, w.host.NS, loopback, []uint16{8001}, nil)
	wltest.Servers(t, w.host.Underlay, w.host.UnderlayAddr, []uint16{2379, 9000}, nil)
	wltest.Route(t, w.host.Underlay, pfx("10.65.0.0/16"), w.host.Addr, "uplink")
	return w
}

// nsProbe probes from any namespace.
func nsProbe(ns *netnstest.NS, kind string, dst netip.Addr, port uint16, want bool) probe {
	return probe{from: &wltest.Workload{NS: ns, HostIface: ns.Name}, kind: kind, dst: dst, port: port, want: want}
}

func hep(o *objs, e dpapi.HostEndpoint) { o.heps[hepID] = e }

func TestHostEndpointCases(t *testing.T) {
	w := hostWorld(t)
	w.start()
	w.warmUp()
	ul := w.host.Underlay
	h := w.host.NS
	toHost := func(port uint16, want bool) probe { return nsProbe(ul, "tcp", w.host.Addr, port, want) }
	fromHost := func(port uint16, want bool) probe { return nsProbe(h, "tcp", w.host.UnderlayAddr, port, want) }
	toSrv := func(port uint16, want bool) probe { return nsProbe(ul, "tcp", srvAddr, port, want) }
	defaultAllow := dpapi.ProfileID{Name: "projectcalico-default-allow"}
	cases := []policyCase{
		{"no host endpoint: host not policed", nil, func(*world) []probe {
			return []probe{toHost(8000, true), fromHost(9000, true)}
		}},
		{"host endpoint without policy: default deny, failsafe open", func(w *world, o *objs) {
			hep(o, dpapi.HostEndpoint{InterfaceName: "uplink"})
		}, func(*world) []probe {
			return []probe{toHost(8000, false), toHost(22, true), fromHost(9000, false), fromHost(2379, true),
				nsProbe(h, "tcp", loopback, 8001, true)}
		}},
		{"normal policy", func(w *world, o *objs) {
			in(o, hp1, allowR(dpapi.Rule{Protocol: 6, DstPorts: ports(8000, 8000)}))
			out(o, hp1, allow())
			hep(o, dpapi.HostEndpoint{InterfaceName: "uplink", Tiers: []dpapi.TierInfo{tier("default", ids(hp1), ids(hp1))}})
		}, func(*world) []probe { return []probe{toHost(8000, true), toHost(8001, false), fromHost(9000, true)} }},
		{"* host endpoint", func(w *world, o *objs) {
			in(o, hp1, allowR(dpapi.Rule{Protocol: 6, DstPorts: ports(8000, 8000)}))
			hep(o, dpapi.HostEndpoint{InterfaceName: "*", Tiers: []dpapi.TierInfo{tier("default", ids(hp1), nil)}})
		}, func(*world) []probe {
			return []probe{toHost(8000, true), toHost(8001, false), toHost(22, true), fromHost(9000, false),
				nsProbe(h, "tcp", loopback, 8001, true)}
		}},
		{"default-allow profile", func(w *world, o *objs) {
			o.profs[defaultAllow] = dpapi.Profile{InboundRules: rules(allow()), OutboundRules: rules(allow())}
			hep(o, dpapi.HostEndpoint{InterfaceName: "uplink", ProfileIDs: []dpapi.ProfileID{defaultAllow}})
		}, func(*world) []probe { return []probe{toHost(8001, true), fromHost(9000, true)} }},
		{"preDNAT deny overrides normal allow", func(w *world, o *objs) {
			in(o, hp1, allowR(dpapi.Rule{Protocol: 6}))
			o.pols[hp2] = dpapi.Policy{PreDNAT: true, ApplyOnForward: true, InboundRules: rules(denyR(dpapi.Rule{Protocol: 6, DstPorts: ports(8000, 8000)}))}
			hep(o, dpapi.HostEndpoint{InterfaceName: "uplink", Tiers: []dpapi.TierInfo{tier("default", ids(hp1), nil)},
				PreDNATTiers: []dpapi.TierInfo{tier("default", ids(hp2), nil)}})
		}, func(*world) []probe { return []probe{toHost(8000, false), toHost(8001, true)} }},
		{"preDNAT allow skips normal policy", func(w *world, o *objs) {
			in(o, hp1, allowR(dpapi.Rule{Protocol: 6, DstPorts: ports(8000, 8000)}))
			o.pols[hp2] = dpapi.Policy{PreDNAT: true, ApplyOnForward: true, InboundRules: rules(allowR(dpapi.Rule{Protocol: 6, DstPorts: ports(8001, 8001)}))}
			hep(o, dpapi.HostEndpoint{InterfaceName: "uplink", Tiers: []dpapi.TierInfo{tier("default", ids(hp1), nil)},
				PreDNATTiers: []dpapi.TierInfo{tier("default", ids(hp2), nil)}})
		}, func(*world) []probe { return []probe{toHost(8000, true), toHost(8001, true), toHost(22, true)} }},
		{"preDNAT deny of forwarded traffic", func(w *world, o *objs) {
			o.pols[hp2] = dpapi.Policy{PreDNAT: true, ApplyOnForward: true, InboundRules: rules(denyR(dpapi.Rule{Protocol: 6, DstPorts: ports(81, 81)}))}
			hep(o, dpapi.HostEndpoint{InterfaceName: "uplink", PreDNATTiers: []dpapi.TierInfo{tier("default", ids(hp2), nil)}})
		}, func(*world) []probe { return []probe{toSrv(80, true), toSrv(81, false)} }},
		{"doNotTrack allow in both directions", func(w *world, o *objs) {
			o.pols[hp2] = dpapi.Policy{Untracked: true, ApplyOnForward: true,
				InboundRules:  rules(allowR(dpapi.Rule{Protocol: 6, DstPorts: ports(8001, 8001)})),
				OutboundRules: rules(allowR(dpapi.Rule{Protocol: 6, SrcPorts: ports(8001, 8001)}))}
			hep(o, dpapi.HostEndpoint{InterfaceName: "uplink", UntrackedTiers: []dpapi.TierInfo{tier("default", ids(hp2), ids(hp2))}})
		}, func(*world) []probe { return []probe{toHost(8001, true), toHost(8000, false)} }},
		{"doNotTrack deny", func(w *world, o *objs) {
			in(o, hp1, allow())
			o.pols[hp2] = dpapi.Policy{Untracked: true, ApplyOnForward: true, InboundRules: rules(denyR(dpapi.Rule{Protocol: 6, DstPorts: ports(8000, 8000)}))}
			hep(o, dpapi.HostEndpoint{InterfaceName: "uplink", Tiers: []dpapi.TierInfo{tier("default", ids(hp1), nil)},
				UntrackedTiers: []dpapi.TierInfo{tier("default", ids(hp2), nil)}})
		}, func(*world) []probe { return []probe{toHost(8000, false), toHost(8001, true), toHost(22, true)} }},
		{"forwarded traffic allowed without applyOnForward policy", func(w *world, o *objs) {
			hep(o, dpapi.HostEndpoint{InterfaceName: "uplink"})
		}, func(*world) []probe { return []probe{toSrv(80, true), toHost(8000, false)} }},
		{"applyOnForward policy", func(w *world, o *objs) {
			o.pols[hp1] = dpapi.Policy{ApplyOnForward: true, InboundRules: rules(denyR(dpapi.Rule{Protocol: 6, DstPorts: ports(80, 80)}), allow())}
			ti := []dpapi.TierInfo{tier("default", ids(hp1), nil)}
			hep(o, dpapi.HostEndpoint{InterfaceName: "uplink", Tiers: ti, ForwardTiers: ti})
		}, func(*world) []probe { return []probe{toSrv(80, false), toSrv(81, true), toHost(8000, true)} }},
		{"forwarded traffic also needs the workload's policy", func(w *world, o *objs) {
			in(o, pol1, allowR(dpapi.Rule{SrcNets: nets("10.65.0.0/16")}))
			ingress(o, dtier(pol1))
		}, func(*world) []probe { return []probe{toSrv(80, false), tcpP(w, "c1", 80, true)} }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := w.base()
			if c.mod != nil {
				c.mod(w, &o)
			}
			w.sync(o)
			check(t, c.probes(w))
		})
	}
}

// TestWorkloadHostCases covers traffic between workloads and their host,
// anti-spoofing and unknown interfaces.
func TestWorkloadHostCases(t *testing.T) {
	w := hostWorld(t)
	unknown := wltest.Add(t, w.host.NS, "caliunknown", netip.MustParseAddr("10.65.0.20"))
	wltest.Servers(t, unknown.NS, unknown.Addr, []uint16{80}, nil)
	spoofed := netip.MustParseAddr("10.65.0.99")
	w.c1.AddAddr(t, spoofed)
	wltest.Route(t, w.host.NS, netip.PrefixFrom(spoofed, 32), netip.Addr{}, "calic1")
	w.start()
	w.warmUp()
	toHost := func(from *wltest.Workload, want bool) probe {
		return probe{from: from, kind: "tcp", dst: w.host.Addr, port: 8000, want: want}
	}
	h := w.host.NS
	cases := []policyCase{
		{"workload to host dropped by default", nil, func(*world) []probe {
			return []probe{toHost(w.c1, false), tcpP(w, "c1", 80, true)}
		}},
		{"DefaultEndpointToHostAction Accept", func(w *world, o *objs) { o.cfg.DefaultEndpointToHostAction = "Accept" },
			func(*world) []probe { return []probe{toHost(w.c1, true)} }},
		{"DefaultEndpointToHostAction Return", func(w *world, o *objs) { o.cfg.DefaultEndpointToHostAction = "Return" },
			func(*world) []probe { return []probe{toHost(w.c1, true)} }},
		{"workload egress policy applies before the host action", func(w *world, o *objs) {
			o.cfg.DefaultEndpointToHostAction = "Accept"
			out(o, pol1, allowR(dpapi.Rule{DstNets: nets("10.65.0.0/16")}))
			egress(o, "c1", tier("default", nil, ids(pol1)))
		}, func(*world) []probe { return []probe{toHost(w.c1, false), toHost(w.c2, true), tcpP(w, "c1", 80, true)} }},
		{"host to its workloads always allowed", func(w *world, o *objs) {
			in(o, pol1)
			ingress(o, dtier(pol1))
		}, func(*world) []probe {
			return []probe{nsProbe(h, "tcp", srvAddr, 80, true), nsProbe(h, "icmp", srvAddr, 0, true), tcpP(w, "c1", 80, false)}
		}},
		{"anti-spoofing", nil, func(*world) []probe {
			return []probe{{from: w.c1, src: spoofed, kind: "tcp", dst: srvAddr, port: 80, want: false}, tcpP(w, "c1", 80, true)}
		}},
		{"allowSpoofedSourcePrefixes needs workloadSourceSpoofing Any", func(w *world, o *objs) {
			ep := o.weps[wepID("c1")]
			ep.AllowSpoofedSourcePrefixes = nets("10.65.0.99/32")
			o.weps[wepID("c1")] = ep
		}, func(*world) []probe {
			return []probe{{from: w.c1, src: spoofed, kind: "tcp", dst: srvAddr, port: 80, want: false}}
		}},
		{"allowSpoofedSourcePrefixes", func(w *world, o *objs) {
			o.cfg.WorkloadSourceSpoofing = "Any"
			ep := o.weps[wepID("c1")]
			ep.AllowSpoofedSourcePrefixes = nets("10.65.0.99/32")
			o.weps[wepID("c1")] = ep
		}, func(*world) []probe {
			return []probe{{from: w.c1, src: spoofed, kind: "tcp", dst: srvAddr, port: 80, want: true}}
		}},
		{"unknown cali interface gets no traffic", nil, func(*world) []probe {
			return []probe{{from: w.c1, kind: "tcp", dst: unknown.Addr, port: 80, want: false},
				{from: unknown, kind: "tcp", dst: srvAddr, port: 80, want: false},
				{from: unknown, kind: "icmp", dst: w.host.Addr, want: false}}
		}},
		{"Reject answers at once", func(w *world, o *objs) {
			o.cfg.FilterDenyAction = "Reject"
			in(o, pol1)
			ingress(o, dtier(pol1))
		}, func(*world) []probe {
			p := tcpP(w, "c1", 80, false)
			p.refused = true
			return []probe{p, {from: w.c1, kind: "icmp", dst: srvAddr, want: false}}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := w.base()
			if c.mod != nil {
				c.mod(w, &o)
			}
			w.sync(o)
			check(t, c.probes(w))
		})
	}
}
