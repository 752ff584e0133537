package cni

import (
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"reflect"
	"testing"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"

	v3 "github.com/calico-go/calico/api/v3"
	"github.com/calico-go/calico/internal/cni/netconf"
	"github.com/calico-go/calico/internal/cni/veth"
	"github.com/calico-go/calico/internal/netns"
	"github.com/calico-go/calico/pkg/client"
)

func TestPodIdentity(t *testing.T) {
	w := NewWorkload("k8s-pod-network", "node-1", "c0ffee", "eth0", netconf.CNIArgs{PodNamespace: "shop", PodName: "web-0"})
	sum := sha1.Sum([]byte("shop.web-0"))
	if got, want := w.HostVethName("cali"), "cali"+hex.EncodeToString(sum[:])[:11]; got != want {
		t.Errorf("veth %q, want %q", got, want)
	}
	if got := w.EndpointName(); got != "node--1-k8s-web--0-eth0" {
		t.Errorf("endpoint name %q", got)
	}
	if w.EndpointNamespace() != "shop" {
		t.Errorf("namespace %q", w.EndpointNamespace())
	}
	if got := w.Profiles(); !reflect.DeepEqual(got, []string{"kns.shop"}) {
		t.Errorf("profiles %v", got)
	}
	w.ServiceAccount = "api"
	if got := w.Profiles(); !reflect.DeepEqual(got, []string{"kns.shop", "ksa.shop.api"}) {
		t.Errorf("profiles with SA %v", got)
	}
	labels := w.Labels(map[string]string{"app": "web", v3.LabelOrchestrator: "spoofed"})
	want := map[string]string{"app": "web", v3.LabelNamespace: "shop", v3.LabelOrchestrator: "k8s", v3.LabelServiceAccount: "api"}
	if !reflect.DeepEqual(labels, want) {
		t.Errorf("labels %v, want %v", labels, want)
	}
	wep := w.Endpoint("calixyz", "aa:bb:cc:dd:ee:ff", []string{"10.0.0.2/32", "10.0.0.1/32"}, nil)
	if wep.Spec.Pod != "web-0" || wep.Spec.Workload != "" || wep.Spec.ServiceAccountName != "api" ||
		wep.Spec.Orchestrator != "k8s" || wep.Spec.Node != "node-1" || wep.Spec.ContainerID != "c0ffee" ||
		wep.Spec.Endpoint != "eth0" || wep.Spec.InterfaceName != "calixyz" || wep.Annotations[AnnotationNetwork] != "k8s-pod-network" {
		t.Errorf("endpoint %+v", wep)
	}
	if !reflect.DeepEqual(wep.Spec.IPNetworks, []string{"10.0.0.1/32", "10.0.0.2/32"}) {
		t.Errorf("ipNetworks %v", wep.Spec.IPNetworks)
	}
	v3.Default(wep)
	if err := v3.Validate(wep); err != nil {
		t.Errorf("endpoint does not validate: %v", err)
	}
}

func TestCNIIdentity(t *testing.T) {
	w := NewWorkload("mynet", "n1", "abc-123", "net1", netconf.CNIArgs{})
	sum := sha1.Sum([]byte("abc-123.net1"))
	if got, want := w.HostVethName("cali"), "cali"+hex.EncodeToString(sum[:])[:11]; got != want {
		t.Errorf("veth %q, want %q", got, want)
	}
	if got := w.HostVethName("averylongprefix"); len(got) != 15 {
		t.Errorf("long prefix: %q is not cut to 15", got)
	}
	if got := w.EndpointName(); got != "n1-cni-abc--123-net1" || w.EndpointNamespace() != "default" {
		t.Errorf("endpoint %s/%s", w.EndpointNamespace(), got)
	}
	if got := w.Profiles(); !reflect.DeepEqual(got, []string{"mynet"}) {
		t.Errorf("profiles %v", got)
	}
	wep := w.Endpoint("cali1", "", []string{"fd00::1/128"}, map[string]string{"role": "db"})
	if wep.Spec.Workload != "abc-123" || wep.Spec.Pod != "" || wep.Labels["role"] != "db" || wep.Labels[v3.LabelOrchestrator] != "cni" ||
		wep.Labels[v3.LabelNamespace] != "default" {
		t.Errorf("endpoint %+v", wep)
	}
	if p := interfacePrefix("tap, cali"); p != "tap" {
		t.Errorf("prefix %q", p)
	}
	if p := interfacePrefix(""); p != "cali" {
		t.Errorf("default prefix %q", p)
	}
}

func TestWorkloadAddrs(t *testing.T) {
	res := &types100.Result{IPs: []*types100.IPConfig{
		{Address: mustCIDR("10.1.0.5/26")},
		{Address: mustCIDR("10.1.0.5/26")},
		{Address: mustCIDR("fd00::5/122")},
	}}
	conf := &netconf.NetConf{IPAM: netconf.IPAM{Type: netconf.IPAMCalico, AssignIPv6: json.RawMessage(`"true"`)}}
	got, err := workloadAddrs(res, conf)
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.Prefix{netip.MustParsePrefix("10.1.0.5/32"), netip.MustParsePrefix("fd00::5/128")}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("addrs %v, want %v", got, want)
	}
	res.IPs = res.IPs[:1]
	if _, err := workloadAddrs(res, conf); !errors.Is(err, ErrNoAddress) {
		t.Errorf("dual stack with one family: %v", err)
	}
	conf.IPAM.Type = netconf.IPAMHostLocal
	if _, err := workloadAddrs(res, conf); err != nil {
		t.Errorf("host-local ignores assign_ipv6: %v", err)
	}
	if _, err := workloadAddrs(&types100.Result{}, conf); !errors.Is(err, ErrNoAddress) {
		t.Errorf("no addresses: %v", err)
	}
}

func TestBuildResultAndPrevAddrs(t *testing.T) {
	conf := &netconf.NetConf{IncludeDefaultRoutes: true}
	args := &skel.CmdArgs{IfName: "eth0", Netns: "/run/netns/x"}
	mac, _ := net.ParseMAC("02:00:00:00:00:01")
	addrs := []netip.Prefix{netip.MustParsePrefix("10.0.0.1/32"), netip.MustParsePrefix("fd00::1/128")}
	res := buildResult(conf, args, "cali1", veth.Attachment{ContainerMAC: mac}, 1400, addrs, types.DNS{})
	if len(res.Interfaces) != 2 || res.Interfaces[1].Sandbox != "/run/netns/x" || res.Interfaces[1].Mtu != 1400 ||
		res.Interfaces[1].Mac != "02:00:00:00:00:01" || len(res.IPs) != 2 || *res.IPs[0].Interface != 1 || len(res.Routes) != 2 {
		t.Fatalf("result %+v", res)
	}
	if got := prevAddrs(res, args); !reflect.DeepEqual(got, addrs) {
		t.Errorf("prevAddrs %v, want %v", got, addrs)
	}
	for _, v := range []string{"0.3.1", "0.4.0", "1.0.0", "1.1.0"} {
		if _, err := res.GetAsVersion(v); err != nil {
			t.Errorf("result as %s: %v", v, err)
		}
	}
}

func TestErrorCodes(t *testing.T) {
	cases := []struct {
		err  error
		code uint
	}{
		{fmt.Errorf("x: %w", netconf.ErrInvalid), types.ErrInvalidNetworkConfig},
		{fmt.Errorf("x: %w", netns.ErrNotExist), types.ErrInvalidNetNS},
		{fmt.Errorf("x: %w", ErrNotReady), types.ErrTryAgainLater},
		{fmt.Errorf("x: %w", client.ErrUnavailable), types.ErrTryAgainLater},
		{fmt.Errorf("ipam: %w", types.NewError(types.ErrTryAgainLater, "pool busy", "d")), types.ErrTryAgainLater},
		{&v3.ValidationError{Kind: "WorkloadEndpoint"}, types.ErrInvalidNetworkConfig},
		{errors.New("boom"), types.ErrInternal},
	}
	for _, tc := range cases {
		e := Error(tc.err)
		if e.Code != tc.code || e.Msg != tc.err.Error() {
			t.Errorf("Error(%v) = %+v, want code %d", tc.err, e, tc.code)
		}
	}
	if Error(nil) != nil {
		t.Error("Error(nil) != nil")
	}
}

func mustCIDR(s string) net.IPNet {
	ip, n, err := net.ParseCIDR(s)
	if err != nil {
		panic(err)
	}
	n.IP = ip
	return *n
}
