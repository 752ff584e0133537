package dataplane

import (
	"net/netip"
	"strconv"
	"testing"

	"github.com/calico-go/calico/internal/dpapi"
	"github.com/calico-go/calico/internal/testutil/wltest"
)

// policyCase is a state change from the base state and the probes that
// must then succeed or fail.
type policyCase struct {
	name   string
	mod    func(w *world, o *objs)
	probes func(w *world) []probe
}

var (
	pol1 = polID("default", "default.p1")
	pol2 = polID("default", "default.p2")
	pol3 = polID("default", "default.p3")
	tp1  = polID("tier1", "tier1.p1")
)

func nets(ps ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, p := range ps {
		out = append(out, pfx(p))
	}
	return out
}

func ports(rs ...uint16) []dpapi.PortRange {
	var out []dpapi.PortRange
	for i := 0; i+1 < len(rs); i += 2 {
		out = append(out, dpapi.PortRange{First: rs[i], Last: rs[i+1]})
	}
	return out
}

// ingress makes the server's ingress go through the given tiers.
func ingress(o *objs, tiers ...dpapi.TierInfo) {
	id := wepID("srv")
	ep := o.weps[id]
	ep.Tiers = tiers
	o.weps[id] = ep
}

func egress(o *objs, who string, tiers ...dpapi.TierInfo) {
	id := wepID(who)
	ep := o.weps[id]
	ep.Tiers = tiers
	o.weps[id] = ep
}

func in(o *objs, id dpapi.PolicyID, rs ...dpapi.Rule) {
	p := o.pols[id]
	p.InboundRules = rs
	o.pols[id] = p
}

func out(o *objs, id dpapi.PolicyID, rs ...dpapi.Rule) {
	p := o.pols[id]
	p.OutboundRules = rs
	o.pols[id] = p
}

func set(o *objs, id string, members ...string) { o.sets[id] = ipsetMsg(id, members...) }

func dtier(ids ...dpapi.PolicyID) dpapi.TierInfo { return tier("default", ids, nil) }

func allowR(r dpapi.Rule) dpapi.Rule { r.Action = dpapi.ActionAllow; return r }
func denyR(r dpapi.Rule) dpapi.Rule  { r.Action = dpapi.ActionDeny; return r }

func tcpP(w *world, from string, port uint16, want bool) probe {
	return probe{from: w.wl(from), kind: "tcp", dst: srvAddr, port: port, want: want}
}
func udpP(w *world, from string, port uint16, want bool) probe {
	return probe{from: w.wl(from), kind: "udp", dst: srvAddr, port: port, want: want}
}
func icmpP(w *world, from string, want bool) probe {
	return probe{from: w.wl(from), kind: "icmp", dst: srvAddr, want: want}
}

func policyCases() []policyCase {
	tcp80 := func(w *world, a, b bool) []probe { return []probe{tcpP(w, "c1", 80, a), tcpP(w, "c2", 80, b)} }
	return []policyCase{
		{"no policy: profile allows all", nil, func(w *world) []probe {
			return []probe{tcpP(w, "c1", 80, true), udpP(w, "c1", 53, true), icmpP(w, "c2", true)}
		}},
		{"policy with no rules denies", func(w *world, o *objs) { in(o, pol1); ingress(o, dtier(pol1)) },
			func(w *world) []probe {
				return []probe{tcpP(w, "c1", 80, false), udpP(w, "c1", 53, false), icmpP(w, "c1", false)}
			}},
		{"allow all", func(w *world, o *objs) { in(o, pol1, allow()); ingress(o, dtier(pol1)) },
			func(w *world) []probe {
				return []probe{tcpP(w, "c1", 80, true), udpP(w, "c2", 5353, true), icmpP(w, "c1", true)}
			}},
		{"nets", func(w *world, o *objs) {
			in(o, pol1, allowR(dpapi.Rule{SrcNets: nets("10.65.0.11/32")}))
			ingress(o, dtier(pol1))
		}, func(w *world) []probe { return tcp80(w, true, false) }},
		{"several nets", func(w *world, o *objs) {
			in(o, pol1, allowR(dpapi.Rule{SrcNets: nets("10.65.0.11/32", "10.65.0.12/31")}))
			ingress(o, dtier(pol1))
		}, func(w *world) []probe { return tcp80(w, true, true) }},
		{"many nets (one rule, anonymous set)", func(w *world, o *objs) {
			var ps []netip.Prefix
			for i := range 20 {
				ps = append(ps, netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 70, byte(i), 0}), 24))
			}
			ps = append(ps, pfx("10.65.0.12/32"))
			in(o, pol1, allowR(dpapi.Rule{SrcNets: ps}))
			ingress(o, dtier(pol1))
		}, func(w *world) []probe { return tcp80(w, false, true) }},
		{"many port ranges (anonymous interval set)", func(w *world, o *objs) {
			in(o, pol1, allowR(dpapi.Rule{Protocol: 6, DstPorts: ports(1, 10, 20, 30, 40, 50, 60, 70, 79, 80, 100, 110, 120, 130, 140, 150,
				160, 170, 180, 190, 200, 210, 220, 230, 240, 250, 260, 270, 280, 290, 300, 310, 320, 330, 340, 350)}))
			ingress(o, dtier(pol1))
		}, func(w *world) []probe { return []probe{tcpP(w, "c1", 80, true), tcpP(w, "c1", 81, false)} }},
		{"several notNets", func(w *world, o *objs) {
			in(o, pol1, allowR(dpapi.Rule{NotSrcNets: nets("10.65.0.11/32", "10.70.0.0/16", "10.65.0.13/32")}))
			ingress(o, dtier(pol1))
		}, func(w *world) []probe { return tcp80(w, false, true) }},
		{"notNets", func(w *world, o *objs) {
			in(o, pol1, allowR(dpapi.Rule{NotSrcNets: nets("10.65.0.11/32")}))
			ingress(o, dtier(pol1))
		}, func(w *world) []probe { return tcp80(w, false, true) }},
		{"nets and notNets", func(w *world, o *objs) {
			in(o, pol1, allowR(dpapi.Rule{SrcNets: nets("10.65.0.0/24"), NotSrcNets: nets("10.65.0.12/32")}))
			ingress(o, dtier(pol1))
		}, func(w *world) []probe { return tcp80(w, true, false) }},
		{"selector (IP set)", func(w *world, o *objs) {
			set(o, "s:c1", "10.65.0.11/32")
			in(o, pol1, allowR(dpapi.Rule{SrcIPSetIDs: []string{"s:c1"}}))
			ingress(o, dtier(pol1))
		}, func(w *world) []probe { return tcp80(w, true, false) }},
		{"selector set holding a CIDR and an overlapping address", func(w *world, o *objs) {
			set(o, "s:net", "10.65.0.0/30", "10.65.0.12/32", "10.65.0.2/32")
			in(o, pol1, allowR(dpapi.Rule{SrcIPSetIDs: []string{"s:net"}}))
			ingress(o, dtier(pol1))
		}, func(w *world) []probe { return tcp80(w, false, true) }},
		{"notSelector", func(w *world, o *objs) {
			set(o, "s:c1", "10.65.0.11/32")
			in(o, pol1, allowR(dpapi.Rule{NotSrcIPSetIDs: []string{"s:c1"}}))
			ingress(o, dtier(pol1))
		}, func(w *world) []probe { return tcp80(w, false, true) }},
		{"two selectors ANDed", func(w *world, o *objs) {
			set(o, "s:a", "10.65.0.11/32", "10.65.0.12/32")
			set(o, "s:b", "10.65.0.12/32")
			in(o, pol1, allowR(dpapi.Rule{SrcIPSetIDs: []string{"s:a", "s:b"}}))
			ingress(o, dtier(pol1))
		}, func(w *world) []probe { return tcp80(w, false, true) }},
		{"destination selector", func(w *world, o *objs) {
			set(o, "s:srv", "10.65.0.10/32")
			in(o, pol1, allowR(dpapi.Rule{DstIPSetIDs: []string{"s:srv"}, Protocol: 6}))
			ingress(o, dtier(pol1))
		}, func(w *world) []probe { return []probe{tcpP(w, "c1", 80, true), udpP(w, "c1", 53, false)} }},
		{"destination port", func(w *world, o *objs) {
			in(o, pol1, allowR(dpapi.Rule{Protocol: 6, DstPorts: ports(80, 80)}))
			ingress(o, dtier(pol1))
		}, func(w *world) []probe { return []probe{tcpP(w, "c1", 80, true), tcpP(w, "c1", 81, false)} }},
		{"port range", func(w *world, o *objs) {
			in(o, pol1, allowR(dpapi.Rule{Protocol: 6, DstPorts: ports(80, 81)}))
			ingress(o, dtier(pol1))
		}, func(w *world) []probe {
			return []probe{tcpP(w, "c1", 80, true), tcpP(w, "c1", 81, true), tcpP(w, "c1", 443, false)}
		}},
		{"several ports", func(w *world, o *objs) {
			in(o, pol1, allowR(dpapi.Rule{Protocol: 6, DstPorts: ports(80, 80, 443, 443)}))
			ingress(o, dtier(pol1))
		}, func(w *world) []probe {
			return []probe{tcpP(w, "c1", 80, true), tcpP(w, "c1", 443, true), tcpP(w, "c1", 81, false)}
		}},
		{"notPorts", func(w *world, o *objs) {
			in(o, pol1, allowR(dpapi.Rule{Protocol: 6, NotDstPorts: ports(80, 80, 5432, 5432)}))
			ingress(o, dtier(pol1))
		}, func(w *world) []probe {
			return []probe{tcpP(w, "c1", 80, false), tcpP(w, "c1", 5432, false), tcpP(w, "c1", 81, true)}
		}},
		{"source ports", func(w *world, o *objs) {
			in(o, pol1, allowR(dpapi.Rule{Protocol: 6, SrcPorts: ports(1, 1023)}))
			ingress(o, dtier(pol1))
		}, func(w *world) []probe { return []probe{tcpP(w, "c1", 80, false)} }},
		{"notSrcPorts", func(w *world, o *objs) {
			in(o, pol1, allowR(dpapi.Rule{Protocol: 6, NotSrcPorts: ports(1, 1023)}))
			ingress(o, dtier(pol1))
		}, func(w *world) []probe { return []probe{tcpP(w, "c1", 80, true)} }},
		{"named port", func(w *world, o *objs) {
			o.sets["n:http"] = namedPortSet("n:http", 6, 8080, "10.65.0.10/32")
			in(o, pol1, allowR(dpapi.Rule{Protocol: 6, DstNamedPortIPSetID: "n:http"}))
			ingress(o, dtier(pol1))
		}, func(w *world) []probe { return []probe{tcpP(w, "c1", 8080, true), tcpP(w, "c1", 80, false)} }},
		{"not named port", func(w *world, o *objs) {
			o.sets["n:http"] = namedPortSet("n:http", 6, 8080, "10.65.0.10/32")
			in(o, pol1, allowR(dpapi.Rule{Protocol: 6, NotDstNamedPortIPSetIDs: []string{"n:http"}}))
			ingress(o, dtier(pol1))
		}, func(w *world) []probe { return []probe{tcpP(w, "c1", 8080, false), tcpP(w, "c1", 80, true)} }},
		{"protocol UDP", func(w *world, o *objs) {
			in(o, pol1, allowR(dpapi.Rule{Protocol: 17}))
			ingress(o, dtier(pol1))
		}, func(w *world) []probe {
			return []probe{udpP(w, "c1", 53, true), tcpP(w, "c1", 80, false), icmpP(w, "c1", false)}
		}},
		{"notProtocol TCP", func(w *world, o *objs) {
			in(o, pol1, allowR(dpapi.Rule{NotProtocol: 6}))
			ingress(o, dtier(pol1))
		}, func(w *world) []probe {
			return []probe{udpP(w, "c1", 53, true), tcpP(w, "c1", 80, false), icmpP(w, "c1", true)}
		}},
		{"ICMP type", func(w *world, o *objs) {
			in(o, pol1, allowR(dpapi.Rule{Protocol: 1, ICMP: &dpapi.ICMPMatch{Type: 8}}))
			ingress(o, dtier(pol1))
		}, func(w *world) []probe { return []probe{icmpP(w, "c1", true), tcpP(w, "c1", 80, false)} }},
		{"ICMP other type", func(w *world, o *objs) {
			in(o, pol1, allowR(dpapi.Rule{Protocol: 1, ICMP: &dpapi.ICMPMatch{Type: 13}}))
			ingress(o, dtier(pol1))
		}, func(w *world) []probe { return []probe{icmpP(w, "c1", false)} }},
		{"ICMP type and code", func(w *world, o *objs) {
			in(o, pol1, allowR(dpapi.Rule{Protocol: 1, ICMP: &dpapi.ICMPMatch{Type: 8, Code: 0, HasCode: true}}))
			ingress(o, dtier(pol1))
		}, func(w *world) []probe { return []probe{icmpP(w, "c1", true)} }},
		{"ICMP type, other code", func(w *world, o *objs) {
			in(o, pol1, allowR(dpapi.Rule{Protocol: 1, ICMP: &dpapi.ICMPMatch{Type: 8, Code: 1, HasCode: true}}))
			ingress(o, dtier(pol1))
		}, func(w *world) []probe { return []probe{icmpP(w, "c1", false)} }},
		{"notICMP", func(w *world, o *objs) {
			in(o, pol1, allowR(dpapi.Rule{Protocol: 1, NotICMP: &dpapi.ICMPMatch{Type: 8}}))
			ingress(o, dtier(pol1))
		}, func(w *world) []probe { return []probe{icmpP(w, "c1", false)} }},
		{"IP version 6 only", func(w *world, o *objs) {
			in(o, pol1, dpapi.Rule{Action: dpapi.ActionAllow, IPVersion: 6})
			ingress(o, dtier(pol1))
		}, func(w *world) []probe { return []probe{tcpP(w, "c1", 80, false)} }},
		{"deny before allow", func(w *world, o *objs) {
			in(o, pol1, denyR(dpapi.Rule{SrcNets: nets("10.65.0.11/32")}), allow())
			ingress(o, dtier(pol1))
		}, func(w *world) []probe { return tcp80(w, false, true) }},
		{"policy order: first policy decides", func(w *world, o *objs) {
			in(o, pol1, denyR(dpapi.Rule{SrcNets: nets("10.65.0.11/32")}))
			in(o, pol2, allow())
			ingress(o, dtier(pol1, pol2))
		}, func(w *world) []probe { return tcp80(w, false, true) }},
		{"policy order reversed", func(w *world, o *objs) {
			in(o, pol1, denyR(dpapi.Rule{SrcNets: nets("10.65.0.11/32")}))
			in(o, pol2, allow())
			ingress(o, dtier(pol2, pol1))
		}, func(w *world) []probe { return tcp80(w, true, true) }},
		{"next policy after one without a match", func(w *world, o *objs) {
			in(o, pol1, allowR(dpapi.Rule{SrcNets: nets("10.99.0.0/16")}))
			in(o, pol2, allowR(dpapi.Rule{SrcNets: nets("10.65.0.12/32")}))
			ingress(o, dtier(pol1, pol2))
		}, func(w *world) []probe { return tcp80(w, false, true) }},
		{"Pass to the next tier", func(w *world, o *objs) {
			in(o, tp1, dpapi.Rule{Action: dpapi.ActionPass, SrcNets: nets("10.65.0.11/32")})
			in(o, pol1, allow())
			ingress(o, tier("tier1", ids(tp1), nil), dtier(pol1))
		}, func(w *world) []probe { return tcp80(w, true, false) }},
		{"Pass skips the rest of the tier", func(w *world, o *objs) {
			in(o, tp1, dpapi.Rule{Action: dpapi.ActionPass})
			in(o, pol3, denyR(dpapi.Rule{}))
			in(o, pol1, allow())
			ingress(o, tier("tier1", ids(tp1, pol3), nil), dtier(pol1))
		}, func(w *world) []probe { return tcp80(w, true, true) }},
		{"tier default Pass", func(w *world, o *objs) {
			in(o, tp1, denyR(dpapi.Rule{SrcNets: nets("10.65.0.12/32")}))
			in(o, pol1, allow())
			ingress(o, dpapi.TierInfo{Name: "tier1", DefaultAction: dpapi.ActionPass, IngressPolicies: ids(tp1)}, dtier(pol1))
		}, func(w *world) []probe { return tcp80(w, true, false) }},
		{"Pass through all tiers reaches the profiles", func(w *world, o *objs) {
			in(o, tp1, dpapi.Rule{Action: dpapi.ActionPass})
			ingress(o, tier("tier1", ids(tp1), nil))
		}, func(w *world) []probe { return tcp80(w, true, true) }},
		{"Log then Allow", func(w *world, o *objs) {
			in(o, pol1, dpapi.Rule{Action: dpapi.ActionLog}, allowR(dpapi.Rule{SrcNets: nets("10.65.0.11/32")}))
			ingress(o, dtier(pol1))
		}, func(w *world) []probe { return tcp80(w, true, false) }},
		{"Log then Deny", func(w *world, o *objs) {
			in(o, pol1, dpapi.Rule{Action: dpapi.ActionLog, Protocol: 6}, denyR(dpapi.Rule{Protocol: 6}), allow())
			ingress(o, dtier(pol1))
		}, func(w *world) []probe { return []probe{tcpP(w, "c1", 80, false), udpP(w, "c1", 53, true)} }},
		{"profile rules", func(w *world, o *objs) {
			prof := dpapi.ProfileID{Name: "web"}
			o.profs[prof] = dpapi.Profile{InboundRules: rules(allowR(dpapi.Rule{Protocol: 6, DstPorts: ports(80, 80)}))}
			ep := o.weps[wepID("srv")]
			ep.ProfileIDs = []dpapi.ProfileID{prof}
			o.weps[wepID("srv")] = ep
		}, func(w *world) []probe { return []probe{tcpP(w, "c1", 80, true), tcpP(w, "c1", 81, false)} }},
		{"profiles in order", func(w *world, o *objs) {
			deny1 := dpapi.ProfileID{Name: "deny-c1"}
			o.profs[deny1] = dpapi.Profile{InboundRules: rules(denyR(dpapi.Rule{SrcNets: nets("10.65.0.11/32")}))}
			ep := o.weps[wepID("srv")]
			ep.ProfileIDs = []dpapi.ProfileID{deny1, allowAllProfile.ID}
			o.weps[wepID("srv")] = ep
		}, func(w *world) []probe { return tcp80(w, false, true) }},
		{"no profile, no policy: drop", func(w *world, o *objs) {
			ep := o.weps[wepID("srv")]
			ep.ProfileIDs = nil
			o.weps[wepID("srv")] = ep
		}, func(w *world) []probe { return []probe{tcpP(w, "c1", 80, false), icmpP(w, "c2", false)} }},
		{"egress policy", func(w *world, o *objs) {
			out(o, pol1, allowR(dpapi.Rule{Protocol: 6, DstPorts: ports(81, 81)}))
			egress(o, "c1", tier("default", nil, ids(pol1)))
		}, func(w *world) []probe {
			return []probe{tcpP(w, "c1", 80, false), tcpP(w, "c1", 81, true), tcpP(w, "c2", 80, true)}
		}},
		{"egress destination selector", func(w *world, o *objs) {
			set(o, "s:srv", "10.65.0.10/32")
			out(o, pol1, allowR(dpapi.Rule{DstIPSetIDs: []string{"s:srv"}}))
			egress(o, "c1", tier("default", nil, ids(pol1)))
		}, func(w *world) []probe {
			return []probe{tcpP(w, "c1", 80, true), {from: w.c1, kind: "tcp", dst: c2Addr, port: 80, want: false}}
		}},
		{"egress destination notNets", func(w *world, o *objs) {
			out(o, pol1, allowR(dpapi.Rule{NotDstNets: nets("10.65.0.10/32")}))
			egress(o, "c1", tier("default", nil, ids(pol1)))
		}, func(w *world) []probe { return []probe{tcpP(w, "c1", 80, false), icmpP(w, "c2", true)} }},
		{"ingress and egress both apply between workloads", func(w *world, o *objs) {
			out(o, pol1, allowR(dpapi.Rule{Protocol: 6}))
			egress(o, "c1", tier("default", nil, ids(pol1)))
			in(o, pol2, allowR(dpapi.Rule{Protocol: 17}), allowR(dpapi.Rule{Protocol: 6, DstPorts: ports(81, 81)}))
			ingress(o, dtier(pol2))
		}, func(w *world) []probe {
			return []probe{tcpP(w, "c1", 80, false), tcpP(w, "c1", 81, true), udpP(w, "c1", 53, false), udpP(w, "c2", 53, true)}
		}},
		{"many policies, the last one matches", func(w *world, o *objs) {
			var all []dpapi.PolicyID
			for i := range 50 {
				id := polID("default", "default.many-"+string(rune('a'+i%26))+string(rune('a'+i/26)))
				set(o, "s:m"+id.Name, "10.99.0."+strconv.Itoa(i)+"/32")
				in(o, id, allowR(dpapi.Rule{Protocol: 6, SrcIPSetIDs: []string{"s:m" + id.Name}, DstPorts: ports(80, 80)}))
				all = append(all, id)
			}
			set(o, "s:last", "10.65.0.11/32")
			in(o, pol1, allowR(dpapi.Rule{Protocol: 6, SrcIPSetIDs: []string{"s:last"}, DstPorts: ports(80, 81)}))
			ingress(o, dtier(append(all, pol1)...))
		}, func(w *world) []probe {
			return []probe{tcpP(w, "c1", 80, true), tcpP(w, "c1", 81, true), tcpP(w, "c1", 443, false), tcpP(w, "c2", 80, false)}
		}},
		{"simple and other policies mixed in a tier", func(w *world, o *objs) {
			in(o, pol1, allowR(dpapi.Rule{Protocol: 6, DstPorts: ports(443, 443)}))
			in(o, pol2, denyR(dpapi.Rule{SrcNets: nets("10.65.0.11/32")}))
			in(o, pol3, allowR(dpapi.Rule{Protocol: 6, SrcNets: nets("10.65.0.0/24"), DstPorts: ports(80, 80)}))
			ingress(o, dtier(pol1, pol2, pol3))
		}, func(w *world) []probe {
			return []probe{tcpP(w, "c1", 443, true), tcpP(w, "c1", 80, false), tcpP(w, "c2", 80, true), tcpP(w, "c2", 81, false)}
		}},
	}
}

func (w *world) wl(name string) *wltest.Workload {
	switch name {
	case "c1":
		return w.c1
	case "c2":
		return w.c2
	}
	return w.srv
}

// TestPolicyCases drives the dataplane through every case, in both rule
// layouts (policy groups folded into sets, and one jump per policy), and
// probes real TCP, UDP and ICMP traffic between workload namespaces.
func TestPolicyCases(t *testing.T) {
	for _, layout := range []struct {
		name string
		opts Options
	}{{"groups", Options{}}, {"jumps", Options{DisablePolicyGroups: true}}} {
		t.Run(layout.name, func(t *testing.T) {
			w := newWorld(t, layout.opts)
			w.start()
			w.warmUp()
			for _, c := range policyCases() {
				t.Run(c.name, func(t *testing.T) {
					o := w.base()
					if c.mod != nil {
						c.mod(w, &o)
					}
					w.sync(o)
					check(t, c.probes(w))
				})
			}
			w.sync(w.base())
		})
	}
}
