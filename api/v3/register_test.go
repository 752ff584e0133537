package v3

import (
	"strings"
	"testing"
)

func TestRegistry(t *testing.T) {
	wantPlural := map[string]string{
		"NetworkPolicy": "networkpolicies", "GlobalNetworkPolicy": "globalnetworkpolicies",
		"StagedNetworkPolicy": "stagednetworkpolicies", "StagedGlobalNetworkPolicy": "stagedglobalnetworkpolicies",
		"StagedKubernetesNetworkPolicy": "stagedkubernetesnetworkpolicies", "Tier": "tiers",
		"NetworkSet": "networksets", "GlobalNetworkSet": "globalnetworksets", "HostEndpoint": "hostendpoints",
		"WorkloadEndpoint": "workloadendpoints", "Profile": "profiles", "IPPool": "ippools",
		"IPReservation": "ipreservations", "IPAMConfiguration": "ipamconfigurations",
		"BGPConfiguration": "bgpconfigurations", "BGPPeer": "bgppeers", "BGPFilter": "bgpfilters",
		"FelixConfiguration": "felixconfigurations", "KubeControllersConfiguration": "kubecontrollersconfigurations",
		"ClusterInformation": "clusterinformations", "Node": "nodes",
	}
	namespaced := map[string]bool{
		"NetworkPolicy": true, "StagedNetworkPolicy": true, "StagedKubernetesNetworkPolicy": true,
		"NetworkSet": true, "WorkloadEndpoint": true,
	}
	ks := Kinds()
	if len(ks) != len(wantPlural) {
		t.Errorf("%d kinds registered, want %d", len(ks), len(wantPlural))
	}
	for _, k := range ks {
		if wantPlural[k.Kind] != k.Plural {
			t.Errorf("%s: plural %q, want %q", k.Kind, k.Plural, wantPlural[k.Kind])
		}
		if k.Namespaced != namespaced[k.Kind] {
			t.Errorf("%s: namespaced = %v", k.Kind, k.Namespaced)
		}
		if k.ListKind != k.Kind+"List" {
			t.Errorf("%s: list kind %q", k.Kind, k.ListKind)
		}
		r := k.New()
		if tm := r.GetObjectKind().GroupVersionKind(); tm.Kind != k.Kind || tm.GroupVersion().String() != APIVersion {
			t.Errorf("%s: New() TypeMeta = %v", k.Kind, tm)
		}
		if l := k.NewList(); l.GetObjectKind().GroupVersionKind().Kind != k.ListKind {
			t.Errorf("%s: NewList() kind = %v", k.Kind, l.GetObjectKind().GroupVersionKind())
		}
		if got, ok := KindOf(r); !ok || got.Kind != k.Kind {
			t.Errorf("%s: KindOf = %v, %v", k.Kind, got.Kind, ok)
		}
		for _, n := range []string{k.Kind, strings.ToLower(k.Kind), k.Plural, k.ListKind} {
			if got, ok := LookupKind(n); !ok || got.Kind != k.Kind {
				t.Errorf("LookupKind(%q) = %v, %v", n, got.Kind, ok)
			}
		}
	}
}

func TestAliases(t *testing.T) {
	aliases := map[string]string{
		"gnp": "GlobalNetworkPolicy", "np": "NetworkPolicy", "policy": "NetworkPolicy",
		"hep": "HostEndpoint", "wep": "WorkloadEndpoint", "ipp": "IPPool", "pool": "IPPool",
		"bgpconfig": "BGPConfiguration", "bgpp": "BGPPeer", "bp": "BGPPeer", "bgpf": "BGPFilter",
		"felixconfig": "FelixConfiguration", "gnetsets": "GlobalNetworkSet", "gns": "GlobalNetworkSet",
		"netsets": "NetworkSet", "sgnp": "StagedGlobalNetworkPolicy", "snp": "StagedNetworkPolicy",
		"sknp": "StagedKubernetesNetworkPolicy", "ipamconfig": "IPAMConfiguration",
		"reservation": "IPReservation", "pro": "Profile", "no": "Node", "tier": "Tier",
		"GNP": "GlobalNetworkPolicy", "IPPools": "IPPool",
	}
	for a, want := range aliases {
		if got, ok := LookupKind(a); !ok || got.Kind != want {
			t.Errorf("LookupKind(%q) = %q, %v; want %q", a, got.Kind, ok, want)
		}
	}
	if _, ok := LookupKind("pod"); ok {
		t.Error("LookupKind(pod) found a kind")
	}
}

func TestListItems(t *testing.T) {
	l := NewIPPoolList()
	a, b := NewIPPool(), NewIPPool()
	a.Name, b.Name = "a", "b"
	if err := l.SetItems([]Resource{a, b}); err != nil {
		t.Fatal(err)
	}
	items := l.GetItems()
	if len(items) != 2 || items[0].GetName() != "a" || items[1].GetName() != "b" {
		t.Fatalf("GetItems = %v", items)
	}
	items[0].SetName("changed")
	if l.Items[0].Name != "a" {
		t.Error("GetItems must return copies")
	}
	if err := l.SetItems([]Resource{NewTier()}); err == nil {
		t.Error("SetItems with a Tier: want error")
	}
	if err := l.SetItems([]Resource{(*IPPool)(nil)}); err == nil {
		t.Error("SetItems with nil: want error")
	}
	for _, k := range Kinds() {
		l := k.NewList()
		if err := l.SetItems([]Resource{k.New()}); err != nil || len(l.GetItems()) != 1 {
			t.Errorf("%s: SetItems/GetItems: %v", k.ListKind, err)
		}
	}
}

func TestDeepCopy(t *testing.T) {
	p := NewGlobalNetworkPolicy()
	o := 1.0
	p.Spec.Order = &o
	p.Spec.Ingress = []Rule{{Action: Allow, Source: EntityRule{Ports: []Port{SinglePort(1)}}}}
	c := p.DeepCopy()
	*c.Spec.Order = 2
	c.Spec.Ingress[0].Source.Ports[0] = SinglePort(2)
	if *p.Spec.Order != 1 || p.Spec.Ingress[0].Source.Ports[0] != SinglePort(1) {
		t.Error("DeepCopy shares memory")
	}
}

func TestWorkloadEndpointName(t *testing.T) {
	cases := []struct{ node, orch, workload, endpoint, want string }{
		{"n1", "k8s", "my-pod", "eth0", "n1-k8s-my--pod-eth0"},
		{"node-a.example", "cni", "abc", "eth0", "node--a.example-cni-abc-eth0"},
	}
	for _, tc := range cases {
		if got := WorkloadEndpointName(tc.node, tc.orch, tc.workload, tc.endpoint); got != tc.want {
			t.Errorf("WorkloadEndpointName(%q, %q, %q, %q) = %q, want %q", tc.node, tc.orch, tc.workload, tc.endpoint, got, tc.want)
		}
	}
}

func TestNilResources(t *testing.T) {
	var p *IPPool
	Default(p)
	if err := Validate(p); err == nil {
		t.Error("Validate(nil IPPool): want error")
	}
	if err := Validate(nil); err == nil {
		t.Error("Validate(nil): want error")
	}
	if err := ValidateUpdate(p, NewIPPool()); err == nil {
		t.Error("ValidateUpdate(nil, ...): want error")
	}
}
