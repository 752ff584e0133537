package felixconfig

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	v3 "github.com/calico-go/calico/api/v3"
	"github.com/calico-go/calico/internal/dpapi"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestDefaults(t *testing.T) {
	for _, p := range params {
		if !p.noDefault {
			p.mustDefault()
		}
	}
	cfg, err := Merge(Sources{NodeName: "n1"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.NodeName != "n1" || !reflect.DeepEqual(cfg.InterfacePrefixes, []string{"cali"}) ||
		cfg.DefaultEndpointToHostAction != "Drop" || cfg.FilterAllowAction != "Accept" ||
		cfg.FilterDenyAction != "Drop" || cfg.MarkMask != 0xffff0000 || cfg.LogPrefix != "calico-packet" ||
		cfg.RefreshInterval != 180*time.Second || !cfg.IPv6Support || cfg.HealthPort != 9099 ||
		cfg.PrometheusMetricsPort != 9091 || cfg.NFTablesMode != "Auto" {
		t.Fatalf("defaults: %+v", cfg)
	}
	if len(cfg.FailsafeInbound) != 9 || cfg.FailsafeInbound[0] != (dpapi.ProtoPort{Protocol: dpapi.ProtoTCP, Port: 22}) ||
		cfg.FailsafeInbound[1] != (dpapi.ProtoPort{Protocol: dpapi.ProtoUDP, Port: 68}) {
		t.Fatalf("failsafe inbound: %+v", cfg.FailsafeInbound)
	}
	if len(cfg.FailsafeOutbound) != 9 || cfg.FailsafeOutbound[0] != (dpapi.ProtoPort{Protocol: dpapi.ProtoUDP, Port: 53}) {
		t.Fatalf("failsafe outbound: %+v", cfg.FailsafeOutbound)
	}
}

func fc(name string, created time.Time, mod func(*v3.FelixConfigurationSpec)) *v3.FelixConfiguration {
	r := v3.NewFelixConfiguration()
	r.Name = name
	r.CreationTimestamp = metav1.NewTime(created)
	mod(&r.Spec)
	return r
}

func ptr[T any](v T) *T { return &v }

func TestLayers(t *testing.T) {
	t0 := time.Unix(1000, 0)
	res := []*v3.FelixConfiguration{
		fc("default", t0, func(s *v3.FelixConfigurationSpec) {
			s.LogPrefix = "from-default"
			s.HealthPort = ptr(1)
			s.PrometheusMetricsPort = ptr(1)
			s.HealthEnabled = ptr(true)
			s.FailsafeInboundHostPorts = &[]v3.ProtoPort{}
			s.DefaultEndpointToHostAction = "Accept"
		}),
		fc("newer", t0.Add(time.Hour), func(s *v3.FelixConfigurationSpec) {
			s.NodeSelector = "role == 'edge'"
			s.HealthPort = ptr(3)
			s.LogPrefix = "from-newer"
		}),
		fc("older", t0, func(s *v3.FelixConfigurationSpec) {
			s.NodeSelector = "all()"
			s.HealthPort = ptr(2)
		}),
		fc("other", t0, func(s *v3.FelixConfigurationSpec) {
			s.NodeSelector = "role == 'core'"
			s.HealthPort = ptr(99)
		}),
		fc("node.n1", t0, func(s *v3.FelixConfigurationSpec) {
			s.PrometheusMetricsPort = ptr(4)
			s.NftablesRefreshInterval = &metav1.Duration{Duration: 7 * time.Second}
			s.FailsafeOutboundHostPorts = &[]v3.ProtoPort{{Protocol: "UDP", Port: 53, Net: "10.0.0.0/8"}}
		}),
		fc("node.n2", t0, func(s *v3.FelixConfigurationSpec) { s.LogPrefix = "not-me" }),
	}
	cfg, err := Merge(Sources{
		NodeName: "n1", NodeLabels: map[string]string{"role": "edge"}, Resources: res,
		File:      map[string]string{"InterfacePrefix": "tap,cali", "NFTablesRefreshInterval": "20"},
		Env:       map[string]string{"INTERFACEPREFIX": "veth", "LOGSEVERITYSCREEN": "debug", "IPV6SUPPORT": "false"},
		Overrides: map[string]string{"ipv6support": "true"},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][2]any{
		"logPrefix (newer selector match)": {cfg.LogPrefix, "from-newer"},
		"healthPort (oldest match wins)":   {cfg.HealthPort, 2},
		"metrics port (node.n1)":           {cfg.PrometheusMetricsPort, 4},
		"health enabled (default)":         {cfg.HealthEnabled, true},
		"refresh (file over node)":         {cfg.RefreshInterval, 20 * time.Second},
		"interface prefix (env)":           {cfg.InterfacePrefixes[0], "veth"},
		"log severity (env, normalised)":   {cfg.LogSeverityScreen, "Debug"},
		"ipv6 (override)":                  {cfg.IPv6Support, true},
		"empty failsafe list":              {len(cfg.FailsafeInbound), 0},
		"endpoint to host (default)":       {cfg.DefaultEndpointToHostAction, "Accept"},
		"failsafe out": {cfg.FailsafeOutbound[0], dpapi.ProtoPort{Protocol: dpapi.ProtoUDP, Port: 53,
			Net: netip.MustParsePrefix("10.0.0.0/8")}},
	}
	for what, gw := range want {
		if !reflect.DeepEqual(gw[0], gw[1]) {
			t.Errorf("%s: got %v, want %v", what, gw[0], gw[1])
		}
	}
}

func TestInvalidValuesIgnored(t *testing.T) {
	res := []*v3.FelixConfiguration{fc("default", time.Time{}, func(s *v3.FelixConfigurationSpec) {
		s.DefaultEndpointToHostAction = "Return"
		s.IptablesFilterDenyAction = "Explode"
	})}
	cfg, err := Merge(Sources{Resources: res, Env: map[string]string{
		"DefaultEndpointToHostAction": "Sometimes", "HealthPort": "x", "FailsafeInboundHostPorts": "tcp:22,icmp:1",
		"NFTablesFilterDenyAction": "reject",
	}})
	if err == nil {
		t.Fatal("no error for invalid values")
	}
	for _, want := range []string{"Sometimes", "healthPort", "icmp", "Explode"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if cfg.DefaultEndpointToHostAction != "Return" || cfg.HealthPort != 9099 || len(cfg.FailsafeInbound) != 9 ||
		cfg.FilterDenyAction != "Reject" {
		t.Fatalf("invalid values not ignored: %+v", cfg)
	}
}

func TestParseFileAndEnviron(t *testing.T) {
	m, err := ParseFile(strings.NewReader("# comment\n[global]\nLogPrefix = hello\nHealthPort: 1\n[other]\nLogPrefix = no\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(m, map[string]string{"LogPrefix": "hello", "HealthPort": "1"}) {
		t.Fatalf("ParseFile = %v", m)
	}
	if _, err := ParseFile(strings.NewReader("[global]\nnonsense\n")); err == nil {
		t.Fatal("no error for a line without =")
	}
	if m, err := ReadFile("/nonexistent/felix.cfg"); m != nil || err != nil {
		t.Fatalf("ReadFile of a missing file = %v, %v", m, err)
	}
	env := FromEnviron([]string{"FELIX_LOGPREFIX=x", "PATH=/bin", "felix_healthport=5", "FELIX_=bad"})
	if !reflect.DeepEqual(env, map[string]string{"LOGPREFIX": "x", "healthport": "5"}) {
		t.Fatalf("FromEnviron = %v", env)
	}
}

func TestPortList(t *testing.T) {
	got, err := parsePortList("22, udp:53, tcp:10.0.0.0/8:179, sctp:[fd00::/8]:9")
	if err != nil {
		t.Fatal(err)
	}
	want := []dpapi.ProtoPort{
		{Protocol: dpapi.ProtoTCP, Port: 22},
		{Protocol: dpapi.ProtoUDP, Port: 53},
		{Protocol: dpapi.ProtoTCP, Port: 179, Net: netip.MustParsePrefix("10.0.0.0/8")},
		{Protocol: dpapi.ProtoSCTP, Port: 9, Net: netip.MustParsePrefix("fd00::/8")},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v", got)
	}
	if got, _ := parsePortList("none"); len(got) != 0 {
		t.Fatalf("none: %v", got)
	}
}
