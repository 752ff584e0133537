package dpapi

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func TestStateApplyContract(t *testing.T) {
	pol := PolicyID{Tier: "default", Name: "p", Kind: KindGlobalNetworkPolicy}
	m1 := Member{Prefix: netip.MustParsePrefix("10.0.0.1/32")}
	rule := Rule{Action: ActionAllow, SrcIPSetIDs: []string{"s:a"}}
	wep := WorkloadEndpointID{Namespace: "ns", Name: "w"}
	ep := WorkloadEndpoint{InterfaceName: "cali1", Tiers: []TierInfo{{Name: "default", DefaultAction: ActionDeny, IngressPolicies: []PolicyID{pol}}}}
	good := [][]Message{
		{ConfigUpdate{}, IPSetUpdate{ID: "s:a", Type: IPSetNets, Members: []Member{m1}},
			PolicyUpdate{ID: pol, Policy: Policy{InboundRules: []Rule{rule}}},
			WorkloadEndpointUpdate{ID: wep, Endpoint: ep}, InSync{}},
		{IPSetDelta{ID: "s:a", Removed: []Member{m1}}},
		{WorkloadEndpointRemove{ID: wep}, PolicyRemove{ID: pol}, IPSetRemove{ID: "s:a"}},
	}
	s := NewState()
	for i, b := range good {
		if err := s.Apply(b); err != nil {
			t.Fatalf("batch %d: %v", i, err)
		}
	}
	if !s.InSync || len(s.IPSets)+len(s.Policies)+len(s.WorkloadEndpoints) != 0 {
		t.Fatalf("unexpected final state:\n%s", s)
	}

	bad := []struct {
		name  string
		batch []Message
		want  string
	}{
		{"no config first", []Message{IPSetUpdate{ID: "x"}}, "before the first ConfigUpdate"},
		{"policy before set", []Message{ConfigUpdate{}, PolicyUpdate{ID: pol, Policy: Policy{InboundRules: []Rule{rule}}}}, "unknown IP set"},
		{"group order", []Message{ConfigUpdate{}, PolicyUpdate{ID: pol}, IPSetUpdate{ID: "s:a"}}, "after a later group"},
		{"endpoint before policy", []Message{ConfigUpdate{}, WorkloadEndpointUpdate{ID: wep, Endpoint: ep}}, "unknown policy"},
		{"policy removed while used", []Message{ConfigUpdate{}, PolicyUpdate{ID: pol}, WorkloadEndpointUpdate{ID: wep, Endpoint: ep}, PolicyRemove{ID: pol}}, "while workload endpoint"},
		{"set removed while used", []Message{ConfigUpdate{}, IPSetUpdate{ID: "s:a"}, PolicyUpdate{ID: pol, Policy: Policy{InboundRules: []Rule{rule}}}, IPSetRemove{ID: "s:a"}}, "while policy"},
		{"delta absent", []Message{ConfigUpdate{}, IPSetUpdate{ID: "s:a"}, IPSetDelta{ID: "s:a", Removed: []Member{m1}}}, "removing absent"},
		{"double in-sync", []Message{ConfigUpdate{}, InSync{}, InSync{}}, "second InSync"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			err := NewState().Apply(tc.batch)
			if !errors.Is(err, ErrContract) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Apply = %v, want an ErrContract containing %q", err, tc.want)
			}
		})
	}
}

func TestMemberString(t *testing.T) {
	m := Member{Prefix: netip.MustParsePrefix("10.0.0.1/32"), Protocol: ProtoTCP, Port: 80}
	if got := m.String(); got != "10.0.0.1,tcp:80" {
		t.Fatalf("got %q", got)
	}
	if got := (PolicyID{Kind: KindNetworkPolicy, Namespace: "ns", Name: "a"}).String(); got != "np/ns/a" {
		t.Fatalf("got %q", got)
	}
}
