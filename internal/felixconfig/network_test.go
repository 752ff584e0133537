package felixconfig

import (
	"net/netip"
	"testing"
	"time"

	v3 "github.com/calico-go/calico/api/v3"
)

func TestNetworkParams(t *testing.T) {
	cfg, err := Merge(Sources{NodeName: "n1"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.VXLANPort != 4789 || cfg.VXLANVNI != 4096 || cfg.VXLANMTU != 0 || cfg.NATOutgoingAddress.IsValid() ||
		cfg.NATOutgoingExclusions != "IPPoolsOnly" || cfg.RouteRefreshInterval != 90*time.Second {
		t.Fatalf("defaults: %+v", cfg)
	}
	res := fc("default", time.Unix(1000, 0), func(s *v3.FelixConfigurationSpec) {
		s.NATOutgoingAddress = "192.0.2.9"
		s.NATOutgoingExclusions = "ippoolsandhostips"
		s.VXLANMTU = ptr(1400)
	})
	cfg, err = Merge(Sources{NodeName: "n1", Resources: []*v3.FelixConfiguration{res},
		Env: map[string]string{"VXLANPORT": "4790", "ROUTEREFRESHINTERVAL": "1"}})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.NATOutgoingAddress != netip.MustParseAddr("192.0.2.9") || cfg.NATOutgoingExclusions != "IPPoolsAndHostIPs" ||
		cfg.VXLANMTU != 1400 || cfg.VXLANPort != 4790 || cfg.RouteRefreshInterval != time.Second {
		t.Fatalf("merged: %+v", cfg)
	}
	if _, err := Merge(Sources{NodeName: "n1", Env: map[string]string{"NATOUTGOINGEXCLUSIONS": "Everything"}}); err == nil {
		t.Fatal("a bad natOutgoingExclusions was accepted")
	}
}
