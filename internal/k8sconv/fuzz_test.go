package k8sconv

import (
	"errors"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	v3 "github.com/calico-go/calico/api/v3"
)

// FuzzNetworkPolicy decodes arbitrary documents as Kubernetes policies and
// converts them: nothing may panic, every error about a decoded policy is
// ErrInvalid, and every converted policy validates.
func FuzzNetworkPolicy(f *testing.F) {
	const head = "{\"apiVersion\": \"networking.k8s.io/v1\", \"kind\": \"NetworkPolicy\", \"metadata\": {\"name\": \"np\", \"namespace\": \"ns\"}, \"spec\": "
	for _, spec := range []string{
		`{}`,
		`{"podSelector": {"matchLabels": {"app": "db"}, "matchExpressions": [{"key": "a", "operator": "In", "values": ["x", "y"]}, {"key": "b", "operator": "DoesNotExist"}]}, "policyTypes": ["Ingress", "Egress"]}`,
		`{"ingress": [{"from": [{"namespaceSelector": {}, "podSelector": {"matchLabels": {"a": "b"}}}], "ports": [{"port": 80}, {"port": 81, "endPort": 90}, {"port": "http"}, {"protocol": "UDP"}]}]}`,
		`{"egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}}], "ports": [{"protocol": "SCTP", "port": 9}]}]}`,
		`{"ingress": [{"from": [{}]}]}`,
		`{"ingress": [{"ports": [{"port": 70000, "endPort": 5}]}]}`,
		`{"egress": [{"to": [{"ipBlock": {"cidr": "::ffff:10.0.0.0/104", "except": ["10.1.0.0/16"]}}]}]}`,
	} {
		f.Add([]byte(head + spec + "}"))
	}
	f.Add([]byte(`{"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicyList", "items": [{"metadata": {"name": "a"}}]}`))
	f.Add([]byte("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: x}\nspec:\n  ingress: [{}]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		nps, err := Decode(data)
		if err != nil {
			return
		}
		for _, np := range nps {
			out, err := NetworkPolicy(np)
			if err != nil {
				if !errors.Is(err, ErrInvalid) {
					t.Fatalf("error is not ErrInvalid: %v", err)
				}
				continue
			}
			if err := v3.Validate(out); err != nil {
				t.Fatalf("converted policy invalid: %v", err)
			}
			if !strings.HasPrefix(out.Name, NamePrefix) || out.Spec.Order == nil || *out.Spec.Order != Order ||
				!strings.HasPrefix(out.Spec.Selector, OrchestratorSelector) || len(out.Spec.Types) == 0 {
				t.Fatalf("converted policy malformed: %+v", out)
			}
		}
	})
}

// FuzzNetworkPolicyFields builds policies from fuzzed field values, which
// reaches the conversion far more often than whole documents do.
func FuzzNetworkPolicyFields(f *testing.F) {
	f.Add("np", "app", "db", "In", "x", "TCP", int32(80), int32(0), "", "10.0.0.0/8", "10.1.0.0/16", true)
	f.Add("a.b", "k8s.io/app", "", "Exists", "", "UDP", int32(0), int32(0), "dns", "fd00::/64", "", false)
	f.Add("np", "a", "b", "NotIn", "c", "", int32(1), int32(65535), "", "", "", true)
	f.Fuzz(func(t *testing.T, name, key, value, op, opValue, proto string, port, endPort int32, portName, cidr, except string, ingress bool) {
		np := &networkingv1.NetworkPolicy{}
		np.Name, np.Namespace = name, "ns"
		np.Spec.PodSelector = metav1.LabelSelector{
			MatchLabels:      map[string]string{key: value},
			MatchExpressions: []metav1.LabelSelectorRequirement{{Key: key, Operator: metav1.LabelSelectorOperator(op), Values: []string{opValue}}},
		}
		var p networkingv1.NetworkPolicyPort
		if proto != "" {
			pr := corev1.Protocol(proto)
			p.Protocol = &pr
		}
		switch {
		case portName != "":
			v := intstr.FromString(portName)
			p.Port = &v
		case port != 0:
			v := intstr.FromInt32(port)
			p.Port = &v
		}
		if endPort != 0 {
			p.EndPort = &endPort
		}
		peers := []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{key: value}}, NamespaceSelector: &metav1.LabelSelector{}}}
		if cidr != "" {
			b := &networkingv1.IPBlock{CIDR: cidr}
			if except != "" {
				b.Except = []string{except}
			}
			peers = append(peers, networkingv1.NetworkPolicyPeer{IPBlock: b})
		}
		if ingress {
			np.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{{Ports: []networkingv1.NetworkPolicyPort{p}, From: peers}}
		} else {
			np.Spec.Egress = []networkingv1.NetworkPolicyEgressRule{{Ports: []networkingv1.NetworkPolicyPort{p}, To: peers}}
		}
		out, err := NetworkPolicy(np)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error is not ErrInvalid: %v", err)
			}
			return
		}
		if err := v3.Validate(out); err != nil {
			t.Fatalf("converted policy invalid: %v", err)
		}
	})
}
