package nft

import (
	"context"
	"net/netip"
	"os/exec"
	"strings"
	"testing"

	"github.com/calico-go/calico/internal/testutil/netnstest"
)

// newKernelTable returns a Table working in a fresh namespace.
func newKernelTable(t *testing.T) (*Table, *netnstest.NS) {
	t.Helper()
	netnstest.RequireRoot(t)
	ns := netnstest.New(t, "nft")
	tb := New(Options{NetNSFd: ns.Fd()})
	t.Cleanup(func() { tb.Close() })
	return tb, ns
}

func nftList(t *testing.T, ns *netnstest.NS) string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "exec", ns.Name, "nft", "list", "table", "inet", "calico").CombinedOutput()
	if err != nil {
		t.Fatalf("nft list table: %v\n%s", err, out)
	}
	return string(out)
}

func nftRun(t *testing.T, ns *netnstest.NS, args ...string) {
	t.Helper()
	out, err := exec.Command("ip", append([]string{"netns", "exec", ns.Name, "nft"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("nft %v: %v\n%s", args, err, out)
	}
}

func mustApply(t *testing.T, tb *Table) Stats {
	t.Helper()
	st, err := tb.Apply(context.Background())
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	return st
}

func noDrift(t *testing.T, tb *Table) {
	t.Helper()
	d, err := tb.Drift(context.Background())
	if err != nil {
		t.Fatalf("Drift: %v", err)
	}
	if len(d) > 0 {
		t.Fatalf("drift after Apply:\n%s", strings.Join(d, "\n"))
	}
}

var (
	pfx = netip.MustParsePrefix
)

// everyStatement fills a table with one of each kind of object and
// statement.
func everyStatement(tb *Table) error {
	if err := tb.SetSet("cali40s-abc", SetIPv4, []Member{{Prefix: pfx("10.0.0.0/24")}, {Prefix: pfx("10.0.0.7/32")}, {Prefix: pfx("10.0.1.0/24")}, {Prefix: pfx("192.168.0.1/32")}, {Prefix: pfx("255.255.255.0/24")}}); err != nil {
		return err
	}
	if err := tb.SetSet("cali60s-abc", SetIPv6, []Member{{Prefix: pfx("fd00::/64")}, {Prefix: pfx("fd00:1::5/128")}}); err != nil {
		return err
	}
	if err := tb.SetSet("cali40n-port", SetIPv4Port, []Member{{Prefix: pfx("10.0.0.1/32"), Protocol: 6, Ports: PortRange{80, 80}}, {Prefix: pfx("10.0.0.2/32"), Protocol: 17, Ports: PortRange{53, 53}}}); err != nil {
		return err
	}
	if err := tb.SetSet("cali4-g-grp", SetIPv4PortRanges, []Member{
		{Prefix: pfx("10.0.0.0/24"), Protocol: 6, Ports: PortRange{80, 90}},
		{Prefix: pfx("10.0.0.5/32"), Protocol: 6, Ports: PortRange{85, 100}},
		{Prefix: pfx("10.9.0.0/16"), Protocol: 0, Ports: AnyPort},
	}); err != nil {
		return err
	}
	tb.SetChain(Chain{Name: "cali-tw-cali1", Rules: []Rule{
		R(CTState(CTInvalid), Drop()),
		R(SetMark(0x30000, 0)),
		R(AddrInSet(IPv4, Src, "cali40s-abc"), L4Proto(6), Ports(Dst, PortRange{80, 80}), SetMark(0x10000, 0x10000), Return()),
		R(AddrInSet(IPv6, Src, "cali60s-abc").Not(), Drop()),
		R(AddrProtoPortInSet(IPv4, Dst, Dst, "cali40n-port"), Accept()),
		R(AddrProtoPortInSet(IPv4, Src, Dst, "cali4-g-grp"), SetMark(0x10000, 0x10000), Return()),
		R(Addr(IPv4, Src, pfx("10.1.0.0/16")), Addr(IPv4, Dst, pfx("10.2.0.1/32")).Not(), Accept()),
		R(Addr(IPv4, Src, pfx("10.1.0.0/16"), pfx("10.3.0.0/16")).Not(), L4Proto(17), Ports(Src, PortRange{1, 2}, PortRange{5, 10}).Not(), Drop()),
		R(L4Proto(1), ICMPType(IPv4, 8), Accept()),
		R(L4Proto(58), ICMPTypeCode(IPv6, 1, 4).Not(), Accept()),
		R(Mark(0x20000, 0), Jump("cali-pi-x")),
		R(Mark(0x10000, 0x10000), Return()),
		R(Log("calico-packet: ")),
		R(Counter(), Reject()),
		R(Drop()).WithComment("Drop if no profiles matched"),
	}})
	tb.SetChain(Chain{Name: "cali-pi-x", Rules: []Rule{R(Addr(IPv6, Src, pfx("fd00::/8")), Return())}})
	tb.SetChain(Chain{Name: "cali-from-wl-dispatch", Rules: []Rule{R(IIfNameVMap("cali-from-wl-map")), R(Drop())}})
	tb.SetMap("cali-from-wl-map", map[string]Verdict{"cali1": Goto("cali-tw-cali1")})
	tb.SetChain(Chain{Name: "filter-FORWARD", Base: &BaseChain{Hook: HookForward, Priority: PriorityFilter}, Rules: []Rule{
		R(CTState(CTEstablished|CTRelated), Accept()),
		R(IIfName("cali*"), Jump("cali-from-wl-dispatch")),
		R(OIfName("cali*"), Drop()),
	}})
	tb.SetChain(Chain{Name: "raw-PREROUTING", Base: &BaseChain{Hook: HookPrerouting, Priority: PriorityRaw}, Rules: []Rule{
		R(IIfName("eth0"), Notrack(), Accept()),
	}})
	return nil
}

func TestKernelApplyEverything(t *testing.T) {
	tb, ns := newKernelTable(t)
	if err := everyStatement(tb); err != nil {
		t.Fatal(err)
	}
	st := mustApply(t, tb)
	if st.ChainsWritten != 5 || st.SetsCreated != 5 {
		t.Errorf("stats %+v", st)
	}
	noDrift(t, tb)
	listing := nftList(t, ns)
	for _, want := range []string{"cali:", "10.0.0.0/23", `"cali1" : goto cali-tw-cali1`, "type filter hook forward priority filter; policy accept;", "notrack", `log prefix "calico-packet: "`} {
		if !strings.Contains(listing, want) {
			t.Errorf("nft listing lacks %q:\n%s", want, listing)
		}
	}
	// Nothing changed: nothing sent.
	if st := mustApply(t, tb); !st.Empty() {
		t.Errorf("second Apply sent %+v", st)
	}
	// A fresh Table over the same kernel reads everything back as equal.
	tb2 := New(Options{NetNSFd: ns.Fd()})
	defer tb2.Close()
	if err := everyStatement(tb2); err != nil {
		t.Fatal(err)
	}
	if ok, err := tb2.Load(context.Background()); err != nil || !ok {
		t.Fatalf("Load: %v %v", ok, err)
	}
	if st := mustApply(t, tb2); !st.Empty() {
		t.Errorf("Apply after Load of an equal table sent %+v", st)
	}
}
