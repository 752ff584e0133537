package dataplane

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/calico-go/calico/internal/dpapi"
	"github.com/calico-go/calico/internal/testutil/golden"
)

type step struct {
	name string
	msgs []dpapi.Message
}

// runGolden feeds the steps to an offline dataplane and renders the
// desired table and the transaction's statistics after each.
func runGolden(t *testing.T, file string, opts Options, steps []step) {
	t.Helper()
	opts.Offline = true
	var last ApplyResult
	opts.OnApply = func(r ApplyResult) { last = r }
	d, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := d.start(ctx); err != nil {
		t.Fatal(err)
	}
	var sb strings.Builder
	for _, s := range steps {
		last = ApplyResult{}
		d.handle(s.msgs)
		if err := d.apply(ctx); err != nil {
			t.Fatalf("step %s: %v", s.name, err)
		}
		st := last.Stats
		fmt.Fprintf(&sb, "### %s\n# transaction: %d messages, chains +%d/-%d (%d rules), sets +%d/-%d, elements +%d/-%d\n",
			s.name, st.Messages, st.ChainsWritten, st.ChainsDeleted, st.RulesWritten, st.SetsCreated, st.SetsDeleted, st.ElementsAdded, st.ElementsRemoved)
		sb.WriteString(d.table.Render())
	}
	golden.Check(t, "testdata/"+file+".golden", sb.String())
}

var (
	polA = polID("default", "default.allow-web")
	polB = polID("default", "default.allow-db")
	polC = polID("default", "default.deny-and-log")
	polS = polID("security", "security.pass-internal")
)

func everyRuleField() []dpapi.Rule {
	icmp := &dpapi.ICMPMatch{Type: 8}
	return rules(
		dpapi.Rule{Action: dpapi.ActionAllow, Protocol: 6, SrcIPSetIDs: []string{"s:clients"}, DstPorts: []dpapi.PortRange{{First: 80, Last: 80}, {First: 8000, Last: 8080}}, RuleID: "r0"},
		dpapi.Rule{Action: dpapi.ActionDeny, SrcNets: []netip.Prefix{pfx("10.9.0.0/16"), pfx("10.8.0.0/16")}, NotSrcNets: []netip.Prefix{pfx("10.9.9.0/24")}, RuleID: "r1"},
		dpapi.Rule{Action: dpapi.ActionLog, Protocol: 17, NotSrcPorts: []dpapi.PortRange{{First: 53, Last: 53}}, RuleID: "r2"},
		dpapi.Rule{Action: dpapi.ActionAllow, Protocol: 1, ICMP: icmp, RuleID: "r3"},
		dpapi.Rule{Action: dpapi.ActionAllow, Protocol: 58, NotICMP: &dpapi.ICMPMatch{Type: 128, Code: 0, HasCode: true}, RuleID: "r4"},
		dpapi.Rule{Action: dpapi.ActionPass, NotProtocol: 6, NotSrcIPSetIDs: []string{"s:clients"}, RuleID: "r5"},
		dpapi.Rule{Action: dpapi.ActionAllow, Protocol: 6, DstNamedPortIPSetID: "n:http", RuleID: "r6"},
		dpapi.Rule{Action: dpapi.ActionDeny, IPVersion: 6, DstNets: []netip.Prefix{pfx("fd00::/8")}, RuleID: "r7"},
	)
}

func TestGoldenWorkloads(t *testing.T) {
	w1 := wepMsg("w1", "cali1111", "10.65.0.1", []string{"kns.default"})
	w1WithPolicy := wepMsg("w1", "cali1111", "10.65.0.1", []string{"kns.default"},
		tier("default", ids(polA, polB), ids(polA)))
	runGolden(t, "workloads", Options{}, []step{
		{"config only, before InSync (fail closed)", batch(cfgMsg())},
		{"InSync with one endpoint and its profile", batch(allowAllProfile, w1, dpapi.InSync{})},
		{"two simple policies select it: one group", batch(
			ipsetMsg("s:clients", "10.65.0.2/32", "10.65.1.0/24"),
			polMsg(polA, rules(dpapi.Rule{Action: dpapi.ActionAllow, Protocol: 6, SrcIPSetIDs: []string{"s:clients"}, DstPorts: []dpapi.PortRange{{First: 80, Last: 80}}}),
				rules(dpapi.Rule{Action: dpapi.ActionAllow, DstNets: []netip.Prefix{pfx("0.0.0.0/0")}})),
			polMsg(polB, rules(dpapi.Rule{Action: dpapi.ActionAllow, Protocol: 6, SrcNets: []netip.Prefix{pfx("10.65.2.0/24")}, DstPorts: []dpapi.PortRange{{First: 5432, Last: 5432}}}), nil),
			w1WithPolicy)},
		{"IP set delta: only the elements change", batch(dpapi.IPSetDelta{ID: "s:clients",
			Added: []dpapi.Member{{Prefix: pfx("10.65.0.3/32")}}, Removed: []dpapi.Member{{Prefix: pfx("10.65.0.2/32")}}})},
		{"a policy with every rule field breaks the group", batch(
			namedPortSet("n:http", 6, 8080, "10.65.0.1/32"),
			polMsg(polB, everyRuleField(), nil))},
		{"second tier with Pass default, second endpoint", batch(
			polMsg(polS, rules(dpapi.Rule{Action: dpapi.ActionPass, SrcNets: []netip.Prefix{pfx("10.0.0.0/8")}}), nil),
			wepMsg("w1", "cali1111", "10.65.0.1", []string{"kns.default"},
				dpapi.TierInfo{Name: "security", DefaultAction: dpapi.ActionPass, IngressPolicies: ids(polS)},
				tier("default", ids(polA, polB), ids(polA))),
			wepMsg("w2", "cali2222", "fd00::2", nil))},
		{"endpoint removed, then its policies and sets", batch(
			dpapi.WorkloadEndpointRemove{ID: wepID("w1")},
			dpapi.PolicyRemove{ID: polA}, dpapi.PolicyRemove{ID: polB}, dpapi.PolicyRemove{ID: polS},
			dpapi.IPSetRemove{ID: "s:clients"}, dpapi.IPSetRemove{ID: "n:http"})},
	})
}

func TestGoldenConfig(t *testing.T) {
	w1 := wepMsg("w1", "tap0001", "10.65.0.1", []string{"kns.default"}, tier("default", ids(polC), nil))
	runGolden(t, "config", Options{DisablePolicyGroups: true}, []step{
		{"prefix tap, before InSync", batch(cfgMsg(func(c *dpapi.Config) { c.InterfacePrefixes = []string{"tap"} }))},
		{"in sync", batch(allowAllProfile,
			polMsg(polC, rules(dpapi.Rule{Action: dpapi.ActionLog}, dpapi.Rule{Action: dpapi.ActionDeny, Protocol: 6}), nil),
			w1, dpapi.InSync{})},
		{"Reject, Accept to host, invalid allowed, spoofing, log prefix", batch(
			cfgMsg(func(c *dpapi.Config) {
				c.InterfacePrefixes = []string{"tap"}
				c.FilterDenyAction = "Reject"
				c.DefaultEndpointToHostAction = "Accept"
				c.DisableConntrackInvalidCheck = true
				c.WorkloadSourceSpoofing = "Any"
				c.LogPrefix = "%t/%k/%n:"
			}),
			func() dpapi.Message {
				m := w1
				m.Endpoint.AllowSpoofedSourcePrefixes = []netip.Prefix{pfx("10.99.0.0/16")}
				return m
			}())},
		{"IPv6 off: IPv6 halves of sets and rules go", batch(
			cfgMsg(func(c *dpapi.Config) {
				c.InterfacePrefixes = []string{"tap"}
				c.IPv6Support = false
			}),
			ipsetMsg("s:mixed", "10.0.0.0/8", "fd00::/8"),
			polMsg(polC, rules(dpapi.Rule{Action: dpapi.ActionLog}, dpapi.Rule{Action: dpapi.ActionDeny, SrcIPSetIDs: []string{"s:mixed"}},
				dpapi.Rule{Action: dpapi.ActionAllow, IPVersion: 6}), nil))},
	})
}

func TestGoldenHostEndpoints(t *testing.T) {
	pNormal := polID("default", "default.host-ssh")
	pFwd := polID("default", "default.fwd")
	pUntracked := polID("default", "default.untracked")
	pPreDNAT := polID("default", "default.prednat")
	hep := dpapi.HostEndpoint{
		InterfaceName:  "eth1",
		ProfileIDs:     []dpapi.ProfileID{{Name: "projectcalico-default-allow"}},
		Tiers:          []dpapi.TierInfo{tier("default", ids(pNormal, pFwd), ids(pNormal))},
		ForwardTiers:   []dpapi.TierInfo{tier("default", ids(pFwd), nil)},
		UntrackedTiers: []dpapi.TierInfo{tier("default", ids(pUntracked), ids(pUntracked))},
		PreDNATTiers:   []dpapi.TierInfo{tier("default", ids(pPreDNAT), nil)},
	}
	star := dpapi.HostEndpoint{InterfaceName: "*", Tiers: []dpapi.TierInfo{tier("default", ids(pNormal), nil)}}
	runGolden(t, "hosts", Options{}, []step{
		{"in sync, no host endpoints", batch(cfgMsg(), dpapi.InSync{})},
		{"named host endpoint with every stage", batch(
			dpapi.ProfileUpdate{ID: dpapi.ProfileID{Name: "projectcalico-default-allow"}, Profile: dpapi.Profile{InboundRules: rules(allow()), OutboundRules: rules(allow())}},
			polMsg(pNormal, rules(dpapi.Rule{Action: dpapi.ActionAllow, Protocol: 6, DstPorts: []dpapi.PortRange{{First: 22, Last: 22}}}), rules(allow())),
			dpapi.PolicyUpdate{ID: pFwd, Policy: dpapi.Policy{ApplyOnForward: true, InboundRules: rules(dpapi.Rule{Action: dpapi.ActionDeny, Protocol: 17})}},
			dpapi.PolicyUpdate{ID: pUntracked, Policy: dpapi.Policy{Untracked: true, InboundRules: rules(dpapi.Rule{Action: dpapi.ActionAllow, Protocol: 17, DstPorts: []dpapi.PortRange{{First: 53, Last: 53}}}),
				OutboundRules: rules(dpapi.Rule{Action: dpapi.ActionAllow, Protocol: 17, SrcPorts: []dpapi.PortRange{{First: 53, Last: 53}}})}},
			dpapi.PolicyUpdate{ID: pPreDNAT, Policy: dpapi.Policy{PreDNAT: true, InboundRules: rules(dpapi.Rule{Action: dpapi.ActionDeny, Protocol: 6, DstPorts: []dpapi.PortRange{{First: 30080, Last: 30080}}})}},
			dpapi.HostEndpointUpdate{ID: dpapi.HostEndpointID{Name: "eth1"}, Endpoint: hep})},
		{"a * host endpoint", batch(dpapi.HostEndpointUpdate{ID: dpapi.HostEndpointID{Name: "all"}, Endpoint: star})},
		{"named endpoint removed", batch(dpapi.HostEndpointRemove{ID: dpapi.HostEndpointID{Name: "eth1"}},
			dpapi.PolicyRemove{ID: pFwd}, dpapi.PolicyRemove{ID: pUntracked}, dpapi.PolicyRemove{ID: pPreDNAT})},
	})
}
