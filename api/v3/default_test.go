package v3

import (
	"encoding/json"
	"testing"
)

// defaultJSON decodes d, defaults it, and returns its spec as JSON.
func defaultJSON(t *testing.T, d string) string {
	t.Helper()
	r := decodeOneT(t, d)
	Default(r)
	once, _ := json.Marshal(r)
	Default(r)
	twice, _ := json.Marshal(r)
	if string(once) != string(twice) {
		t.Errorf("Default is not idempotent:\n%s\n%s", once, twice)
	}
	var m struct {
		Spec json.RawMessage `json:"spec"`
	}
	_ = json.Unmarshal(once, &m)
	return string(m.Spec)
}

func TestDefault(t *testing.T) {
	cases := []struct {
		name, doc, want string
	}{
		{"np no rules", doc("NetworkPolicy", "p", "n", "{}"),
			`{"tier":"default","types":["Ingress"]}`},
		{"np ingress only", doc("NetworkPolicy", "p", "n", "{ingress: [{action: Allow}]}"),
			`{"tier":"default","ingress":[{"action":"Allow"}],"types":["Ingress"]}`},
		{"np egress only", doc("NetworkPolicy", "p", "n", "{egress: [{action: Deny}]}"),
			`{"tier":"default","egress":[{"action":"Deny"}],"types":["Egress"]}`},
		{"gnp both", doc("GlobalNetworkPolicy", "p", "", "{tier: t, ingress: [{action: Allow}], egress: [{action: Allow}]}"),
			`{"tier":"t","ingress":[{"action":"Allow"}],"egress":[{"action":"Allow"}],"types":["Ingress","Egress"]}`},
		{"gnp types kept", doc("GlobalNetworkPolicy", "p", "", "{types: [Egress]}"),
			`{"tier":"default","types":["Egress"]}`},
		{"snp", doc("StagedNetworkPolicy", "p", "n", "{egress: [{action: Pass}]}"),
			`{"stagedAction":"Set","tier":"default","egress":[{"action":"Pass"}],"types":["Egress"]}`},
		{"snp delete", doc("StagedNetworkPolicy", "p", "n", "{stagedAction: Delete}"),
			`{"stagedAction":"Delete","tier":"default"}`},
		{"sgnp", doc("StagedGlobalNetworkPolicy", "p", "", "{}"),
			`{"stagedAction":"Set","tier":"default","types":["Ingress"]}`},
		{"sknp", doc("StagedKubernetesNetworkPolicy", "p", "n", "{egress: [{}]}"),
			`{"stagedAction":"Set","podSelector":{},"egress":[{}],"policyTypes":["Ingress","Egress"]}`},
		{"tier", doc("Tier", "t", "", "{order: 10}"), `{"order":10,"defaultAction":"Deny"}`},
		{"tier default", doc("Tier", "default", "", ""), `{"order":1000000,"defaultAction":"Deny"}`},
		{"tier kube-admin", doc("Tier", "kube-admin", "", ""), `{"order":1000,"defaultAction":"Pass"}`},
		{"tier kube-baseline", doc("Tier", "kube-baseline", "", ""), `{"order":10000000,"defaultAction":"Pass"}`},
		{"tier pass kept", doc("Tier", "t", "", "{defaultAction: Pass}"), `{"defaultAction":"Pass"}`},
		{"pool v4", doc("IPPool", "p", "", "{cidr: 10.0.0.0/16}"),
			`{"cidr":"10.0.0.0/16","vxlanMode":"Never","ipipMode":"Never","blockSize":26,"nodeSelector":"all()","allowedUses":["Workload","Tunnel"],"assignmentMode":"Automatic"}`},
		{"pool v6", doc("IPPool", "p", "", `{cidr: "fd00::/48", vxlanMode: Always}`),
			`{"cidr":"fd00::/48","vxlanMode":"Always","ipipMode":"Never","blockSize":122,"nodeSelector":"all()","allowedUses":["Workload","Tunnel"],"assignmentMode":"Automatic"}`},
		{"pool kept", doc("IPPool", "p", "", `{cidr: 10.0.0.0/16, blockSize: 30, nodeSelector: "has(a)", allowedUses: [LoadBalancer], assignmentMode: Manual, ipipMode: Always}`),
			`{"cidr":"10.0.0.0/16","vxlanMode":"Never","ipipMode":"Always","blockSize":30,"nodeSelector":"has(a)","allowedUses":["LoadBalancer"],"assignmentMode":"Manual"}`},
		{"ipam", doc("IPAMConfiguration", "default", "", "{strictAffinity: false}"),
			`{"strictAffinity":false,"autoAllocateBlocks":true}`},
		{"ipam kept", doc("IPAMConfiguration", "default", "", "{strictAffinity: true, autoAllocateBlocks: false}"),
			`{"strictAffinity":true,"autoAllocateBlocks":false}`},
		{"bgp config untouched", doc("BGPConfiguration", "default", "", "{}"), `{}`},
		{"felix untouched", doc("FelixConfiguration", "default", "", "{}"), `{}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := defaultJSON(t, tc.doc); got != tc.want {
				t.Errorf("spec = %s\nwant   %s", got, tc.want)
			}
		})
	}
}

func TestDefaultThenValidateEveryKind(t *testing.T) {
	// Defaulting an object must never make a valid object invalid.
	for _, k := range Kinds() {
		r := k.New()
		r.SetName("default")
		if k.Namespaced {
			r.SetNamespace("ns1")
		}
		switch v := r.(type) {
		case *IPPool:
			v.Spec.CIDR = "10.0.0.0/16"
		case *HostEndpoint:
			v.Spec.Node, v.Spec.InterfaceName = "n1", "eth0"
		}
		Default(r)
		if err := Validate(r); err != nil {
			t.Errorf("%s: %v", k.Kind, err)
		}
	}
}

func TestBGPConfigurationEffective(t *testing.T) {
	var s BGPConfigurationSpec
	if s.EffectiveASNumber() != 64512 || !s.EffectiveNodeToNodeMeshEnabled() || s.EffectiveListenPort() != 179 ||
		s.EffectiveLogSeverityScreen() != "Info" || s.EffectiveBindMode() != BindModeNone ||
		s.EffectiveServiceLoadBalancerAggregation() != ServiceLoadBalancerAggregationEnabled ||
		s.EffectiveProgramClusterRoutes() != ProgramClusterRoutesEnabledNoEncapOnly ||
		s.EffectiveIPv4NormalRoutePriority() != 1024 || s.EffectiveIPv6NormalRoutePriority() != 1024 {
		t.Errorf("defaults wrong for empty spec")
	}
	as, f := ASNumber(65000), false
	s.ASNumber, s.NodeToNodeMeshEnabled, s.ListenPort = &as, &f, 1179
	if s.EffectiveASNumber() != 65000 || s.EffectiveNodeToNodeMeshEnabled() || s.EffectiveListenPort() != 1179 {
		t.Errorf("set values not returned")
	}
}
