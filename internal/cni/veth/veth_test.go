package veth_test

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/calico-go/calico/internal/cni/veth"
	"github.com/calico-go/calico/internal/testutil/netnstest"
)

// Setup, Check and the Remove functions act on the calling thread's
// namespace as the host, so the tests run them inside host.Do.

func TestSetupCheckRemove(t *testing.T) {
	netnstest.RequireRoot(t)
	host := netnstest.NewHost(t)
	pod := netnstest.New(t, "vethpod")
	spec := veth.Spec{HostName: "calitest0", IfName: "eth0", ContainerNS: pod.Path(), MTU: 1450,
		Addrs: []netip.Prefix{netip.MustParsePrefix("10.250.0.2/32"), netip.MustParsePrefix("fd00:250::2/128")}}
	var att veth.Attachment
	if err := host.Do(func() error {
		var err error
		att, err = veth.Setup(spec)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if len(att.ContainerMAC) != 6 || att.HostIndex == 0 {
		t.Errorf("attachment %+v", att)
	}
	if err := host.Do(func() error { return veth.Check(spec) }); err != nil {
		t.Fatalf("Check after Setup: %v", err)
	}
	routes, err := host.Handle.RouteListFiltered(unix.AF_INET6, &netlink.Route{Dst: netnstest.IPNet(spec.Addrs[1])}, netlink.RT_FILTER_DST)
	if err != nil || len(routes) != 1 {
		t.Fatalf("IPv6 host route: %v %v", routes, err)
	}
	if err := host.Handle.RouteDel(&routes[0]); err != nil {
		t.Fatal(err)
	}
	other := spec
	other.MTU = 1500
	err = host.Do(func() error { return veth.Check(other) })
	if !errors.Is(err, veth.ErrMismatch) || !strings.Contains(err.Error(), "host route fd00:250::2/128 dev calitest0 is missing") ||
		!strings.Contains(err.Error(), "MTU 1450, want 1500") {
		t.Errorf("Check after breaking things: %v", err)
	}
	for i := 0; i < 2; i++ {
		if err := veth.Remove(pod.Path(), "eth0"); err != nil {
			t.Fatalf("Remove #%d: %v", i+1, err)
		}
	}
	if _, err := host.Handle.LinkByName("calitest0"); err == nil {
		t.Error("host end survived Remove")
	}
	if err := veth.Remove("/run/netns/does-not-exist", "eth0"); err != nil {
		t.Errorf("Remove in a missing namespace: %v", err)
	}
}

func TestSetupUndo(t *testing.T) {
	netnstest.RequireRoot(t)
	host := netnstest.NewHost(t)
	pod := netnstest.New(t, "vethpod")
	la := netlink.NewLinkAttrs()
	la.Name = "eth0"
	if err := pod.Handle.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: "eth0peer"}); err != nil {
		t.Fatal(err)
	}
	spec := veth.Spec{HostName: "calitest1", IfName: "eth0", ContainerNS: pod.Path(), Addrs: []netip.Prefix{netip.MustParsePrefix("10.250.0.3/32")}}
	err := host.Do(func() error { _, err := veth.Setup(spec); return err })
	if !errors.Is(err, veth.ErrInterfaceExists) {
		t.Errorf("Setup with eth0 taken: %v", err)
	}
	// A route to the address through another interface: Setup fails late
	// and must remove the veth it made.
	spec.IfName = "eth1"
	up, err := host.Handle.LinkByName("uplink")
	if err != nil {
		t.Fatal(err)
	}
	if err := host.Handle.RouteAdd(&netlink.Route{LinkIndex: up.Attrs().Index, Dst: netnstest.IPNet(spec.Addrs[0]), Scope: netlink.SCOPE_LINK}); err != nil {
		t.Fatal(err)
	}
	err = host.Do(func() error { _, err := veth.Setup(spec); return err })
	if !errors.Is(err, veth.ErrRouteConflict) || !strings.Contains(err.Error(), "uplink") {
		t.Errorf("Setup with a conflicting route: %v", err)
	}
	if _, err := host.Handle.LinkByName("calitest1"); err == nil {
		t.Error("failed Setup left its host end")
	}
	if _, err := pod.Handle.LinkByName("eth1"); err == nil {
		t.Error("failed Setup left its container end")
	}
	if err := veth.Check(veth.Spec{HostName: "x", IfName: "y", ContainerNS: "/run/netns/does-not-exist"}); !errors.Is(err, veth.ErrMismatch) {
		t.Errorf("Check of a missing namespace: %v", err)
	}
}
