package autodetect

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/calico-go/calico/internal/testutil/netnstest"
)

type fakeSys struct {
	ifs []Interface
	src map[string]netip.Addr
}

func (f fakeSys) Interfaces() ([]Interface, error) { return f.ifs, nil }
func (f fakeSys) SourceFor(dest string, v6 bool) (netip.Addr, error) {
	if a, ok := f.src[dest]; ok {
		return a, nil
	}
	return netip.Addr{}, errors.New("network is unreachable")
}

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }

func TestDetect(t *testing.T) {
	sys := fakeSys{
		ifs: []Interface{
			{Name: "lo", Up: true, Addrs: []netip.Prefix{pfx("127.0.0.1/8"), pfx("::1/128")}},
			{Name: "docker0", Up: true, Addrs: []netip.Prefix{pfx("172.17.0.1/16")}},
			{Name: "down0", Up: false, Addrs: []netip.Prefix{pfx("203.0.113.9/24")}},
			{Name: "eth0", Up: true, Addrs: []netip.Prefix{pfx("fe80::1/64"), pfx("192.0.2.10/24"), pfx("2001:db8::10/64")}},
			{Name: "eth1", Up: true, Addrs: []netip.Prefix{pfx("198.51.100.7/25")}},
			{Name: "veth12", Up: true, Addrs: []netip.Prefix{pfx("198.51.100.200/25")}},
		},
		src: map[string]netip.Addr{"198.51.100.1": netip.MustParseAddr("198.51.100.7")},
	}
	tests := []struct {
		method string
		v6     bool
		want   string
		iface  string
		err    error
	}{
		{"", false, "192.0.2.10/24", "eth0", nil},
		{"first-found", true, "2001:db8::10/64", "eth0", nil},
		{"interface=eth1", false, "198.51.100.7/25", "eth1", nil},
		{"interface=nope,eth.*", false, "192.0.2.10/24", "eth0", nil},
		{"interface=eth1", true, "", "", ErrNotFound},
		{"skip-interface=eth0,docker.*", false, "198.51.100.7/25", "eth1", nil},
		{"can-reach=198.51.100.1", false, "198.51.100.7/25", "eth1", nil},
		{"can-reach=203.0.113.1", false, "", "", ErrNotFound},
		{"cidr=198.51.100.128/25", false, "198.51.100.200/25", "veth12", nil},
		{"cidr=10.0.0.0/8,2001:db8::/32", true, "2001:db8::10/64", "eth0", nil},
		{"bogus=1", false, "", "", ErrBadMethod},
		{"interface=(", false, "", "", ErrBadMethod},
	}
	for _, tc := range tests {
		m, err := ParseMethod(tc.method)
		if err == nil {
			var got netip.Prefix
			var ifc Interface
			got, ifc, err = Detect(sys, m, tc.v6)
			if err == nil && (got.String() != tc.want || ifc.Name != tc.iface) {
				t.Errorf("%q v6=%v = %s on %s, want %s on %s", tc.method, tc.v6, got, ifc.Name, tc.want, tc.iface)
			}
		}
		if !errors.Is(err, tc.err) && (err != nil || tc.err != nil) {
			t.Errorf("%q v6=%v: error %v, want %v", tc.method, tc.v6, err, tc.err)
		}
	}
}

// TestDetectInNamespace runs the real System inside a test host namespace.
func TestDetectInNamespace(t *testing.T) {
	netnstest.RequireRoot(t)
	h := netnstest.NewHost(t) // uplink 192.0.2.1/24 and 2001:db8::1/64, default routes via .2
	// A second interface (a veth whose peer sits in the underlay) with a
	// non-default address.
	la := netlink.NewLinkAttrs()
	la.Name = "data0"
	if err := h.Handle.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: "data0p", PeerNamespace: netlink.NsFd(h.Underlay.Fd())}); err != nil {
		t.Fatal(err)
	}
	l, _ := h.Handle.LinkByName("data0")
	if err := h.Handle.AddrAdd(l, &netlink.Addr{IPNet: netnstest.IPNet(pfx("198.51.100.5/28"))}); err != nil {
		t.Fatal(err)
	}
	if err := h.Handle.LinkSetUp(l); err != nil {
		t.Fatal(err)
	}
	cases := map[string]string{
		"first-found":            "192.0.2.1/24",
		"can-reach=203.0.113.50": "192.0.2.1/24", // via the default route
		"can-reach=198.51.100.9": "198.51.100.5/28",
		"interface=data.*":       "198.51.100.5/28",
		"skip-interface=uplink":  "198.51.100.5/28",
		"cidr=198.51.100.0/24":   "198.51.100.5/28",
	}
	for method, want := range cases {
		m, err := ParseMethod(method)
		if err != nil {
			t.Fatal(err)
		}
		var got netip.Prefix
		if err := h.Do(func() error {
			var err error
			got, _, err = Detect(Host{}, m, false)
			return err
		}); err != nil {
			t.Errorf("%s: %v", method, err)
			continue
		}
		if got.String() != want {
			t.Errorf("%s = %s, want %s", method, got, want)
		}
	}
	var v6 netip.Prefix
	var mtu int
	if err := h.Do(func() error {
		var err error
		var ifc Interface
		v6, ifc, err = Detect(Host{}, Method{Kind: "first-found"}, true)
		mtu = ifc.MTU
		return err
	}); err != nil || v6.String() != "2001:db8::1/64" || mtu != 1500 {
		t.Errorf("v6 first-found = %s (mtu %d), %v", v6, mtu, err)
	}
}
