package nft

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
)

func hostMembers(n int, base netip.Addr) []Member {
	out := make([]Member, n)
	a := base
	for i := range out {
		out[i] = Member{Prefix: netip.PrefixFrom(a, a.BitLen())}
		a = a.Next().Next() // not adjacent: no merging
	}
	return out
}

func TestKernelIncrementalAndChunked(t *testing.T) {
	tb, _ := newKernelTable(t)
	big := hostMembers(5000, netip.MustParseAddr("10.0.0.0"))
	if err := tb.SetSet("big", SetIPv4, big); err != nil {
		t.Fatal(err)
	}
	tb.SetChain(Chain{Name: "c", Rules: []Rule{R(AddrInSet(IPv4, Src, "big"), Accept())}})
	st := mustApply(t, tb)
	if st.ElementsAdded != 5000 || st.Messages < 5 {
		t.Errorf("first apply %+v: want 5000 elements in >= 5 chunks", st)
	}
	noDrift(t, tb)

	// A delta sends only the delta.
	if err := tb.AddMembers("big", Member{Prefix: pfx("11.0.0.1/32")}); err != nil {
		t.Fatal(err)
	}
	tb.RemoveMembers("big", big[:3]...)
	st = mustApply(t, tb)
	if st.ElementsAdded != 1 || st.ElementsRemoved != 3 || st.RulesWritten != 0 {
		t.Errorf("delta apply %+v", st)
	}
	noDrift(t, tb)

	// Adding an address adjacent to a member merges the two intervals.
	if err := tb.AddMembers("big", Member{Prefix: pfx("10.0.0.7/32")}); err != nil { // next to .6
		t.Fatal(err)
	}
	st = mustApply(t, tb)
	if st.ElementsAdded != 1 || st.ElementsRemoved != 2 { // .6 .8 -> .6-.8
		t.Errorf("merge apply %+v", st)
	}
	noDrift(t, tb)

	// A chain change rewrites only that chain.
	tb.SetChain(Chain{Name: "d", Rules: []Rule{R(Drop())}})
	tb.SetChain(Chain{Name: "c", Rules: []Rule{R(AddrInSet(IPv4, Src, "big"), Drop())}})
	st = mustApply(t, tb)
	if st.ChainsWritten != 2 || st.RulesWritten != 2 || st.ElementsAdded != 0 {
		t.Errorf("chain apply %+v", st)
	}
	noDrift(t, tb)

	// Deleting a chain and a set.
	tb.DeleteChain("c")
	tb.DeleteSet("big")
	st = mustApply(t, tb)
	if st.ChainsDeleted != 1 || st.SetsDeleted != 1 {
		t.Errorf("delete apply %+v", st)
	}
	noDrift(t, tb)
}

func TestKernelRepair(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		damage []string
	}{
		{"flush table", []string{"flush table inet calico"}},
		{"delete table", []string{"delete table inet calico"}},
		{"foreign rule", []string{"insert rule inet calico cali-pi-x accept"}},
		{"deleted element", []string{"delete element inet calico cali40s-abc { 192.168.0.1 }"}},
		{"added element", []string{"add element inet calico cali40n-port { 10.1.1.1 . tcp . 22 }"}},
		{"map entry", []string{"delete element inet calico cali-from-wl-map { \"cali1\" }"}},
		{"extra chain", []string{"add chain inet calico intruder"}},
		{"flushed chain", []string{"flush chain inet calico filter-FORWARD"}},
		{"deleted base chain", []string{"delete chain inet calico raw-PREROUTING"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tb, ns := newKernelTable(t)
			if err := everyStatement(tb); err != nil {
				t.Fatal(err)
			}
			mustApply(t, tb)
			for _, cmd := range tc.damage {
				nftRun(t, ns, strings.Fields(cmd)...)
			}
			d, err := tb.Drift(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(d) == 0 {
				t.Fatalf("no drift detected after %q", tc.damage)
			}
			tb.MarkForResync()
			st := mustApply(t, tb)
			if !st.ReadBack || st.Empty() {
				t.Errorf("repair apply %+v", st)
			}
			noDrift(t, tb)
		})
	}
}

func TestKernelFailedTransactionChangesNothing(t *testing.T) {
	tb, ns := newKernelTable(t)
	tb.SetChain(Chain{Name: "a", Rules: []Rule{R(Accept())}})
	mustApply(t, tb)
	before := nftList(t, ns)
	// A rule naming a set that does not exist fails the whole transaction.
	tb.SetChain(Chain{Name: "a", Rules: []Rule{R(AddrInSet(IPv4, Src, "missing"), Drop())}})
	tb.SetChain(Chain{Name: "b", Rules: []Rule{R(Drop())}})
	_, err := tb.Apply(context.Background())
	if !errors.Is(err, ErrTransaction) {
		t.Fatalf("Apply = %v, want ErrTransaction", err)
	}
	if after := nftList(t, ns); after != before {
		t.Fatalf("failed transaction changed the table:\n%s", after)
	}
	// Fix the desired state: the next Apply reads back and converges.
	if err := tb.SetSet("missing", SetIPv4, nil); err != nil {
		t.Fatal(err)
	}
	if st := mustApply(t, tb); !st.ReadBack {
		t.Errorf("Apply after failure did not read back: %+v", st)
	}
	noDrift(t, tb)
}

func TestKernelJumpToMissingChainRefused(t *testing.T) {
	tb, _ := newKernelTable(t)
	tb.SetChain(Chain{Name: "a", Rules: []Rule{R(Jump("nowhere"))}})
	if _, err := tb.Apply(context.Background()); err == nil || !strings.Contains(err.Error(), "nowhere") {
		t.Fatalf("Apply = %v, want an error naming the missing chain", err)
	}
}

func TestKernelSetTypeChange(t *testing.T) {
	tb, _ := newKernelTable(t)
	if err := tb.SetSet("s", SetIPv4, []Member{{Prefix: pfx("10.0.0.1/32")}}); err != nil {
		t.Fatal(err)
	}
	tb.SetChain(Chain{Name: "c", Rules: []Rule{R(AddrInSet(IPv4, Src, "s"), Accept())}})
	mustApply(t, tb)
	if err := tb.SetSet("s", SetIPv6, []Member{{Prefix: pfx("fd00::1/128")}}); err != nil {
		t.Fatal(err)
	}
	tb.SetChain(Chain{Name: "c", Rules: []Rule{R(AddrInSet(IPv6, Src, "s"), Accept())}})
	mustApply(t, tb)
	noDrift(t, tb)
}

func TestKernelLoadSweepsStale(t *testing.T) {
	tb, ns := newKernelTable(t)
	if err := everyStatement(tb); err != nil {
		t.Fatal(err)
	}
	mustApply(t, tb)
	// A new Table (a restarted agent) wants less: Load then Apply deletes
	// the rest, in one transaction.
	tb2 := New(Options{NetNSFd: ns.Fd()})
	defer tb2.Close()
	tb2.SetChain(Chain{Name: "filter-FORWARD", Base: &BaseChain{Hook: HookForward}, Rules: []Rule{R(OIfName("cali*"), Drop())}})
	if ok, err := tb2.Load(context.Background()); err != nil || !ok {
		t.Fatalf("Load = %v, %v", ok, err)
	}
	st := mustApply(t, tb2)
	if st.ChainsDeleted != 4 || st.SetsDeleted != 5 || st.ChainsWritten != 1 {
		t.Errorf("sweep %+v", st)
	}
	noDrift(t, tb2)
	if l := nftList(t, ns); strings.Contains(l, "cali-tw-cali1") {
		t.Errorf("stale chain left:\n%s", l)
	}
}

func TestKernelManySetsAndChains(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	tb, _ := newKernelTable(t)
	fillBench(tb, 200, 100, 200, 10)
	st := mustApply(t, tb)
	if st.ChainsWritten != 200 || st.SetsCreated != 200 {
		t.Errorf("stats %+v", st)
	}
	noDrift(t, tb)
}

// fillBench makes nSets sets of nMembers addresses and nChains chains of
// nRules rules each naming a set.
func fillBench(tb *Table, nSets, nMembers, nChains, nRules int) {
	for i := range nSets {
		base := netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), 0})
		ms := make([]Member, nMembers)
		for j := range ms {
			a := base.As4()
			a[3] = byte(j)
			ms[j] = Member{Prefix: netip.PrefixFrom(netip.AddrFrom4(a), 32)}
		}
		if err := tb.SetSet(fmt.Sprintf("cali40s-set%d", i), SetIPv4, ms); err != nil {
			panic(err)
		}
	}
	for i := range nChains {
		tb.SetChain(benchChain(i, nSets, nRules, 0))
	}
}

func benchChain(i, nSets, nRules, gen int) Chain {
	c := Chain{Name: fmt.Sprintf("cali-pi-policy%d", i)}
	for j := range nRules {
		c.Rules = append(c.Rules, R(
			AddrInSet(IPv4, Src, fmt.Sprintf("cali40s-set%d", (i+j)%nSets)),
			L4Proto(6), Ports(Dst, PortRange{uint16(1000 + j + gen), uint16(1000 + j + gen)}),
			SetMark(0x10000, 0x10000), Return()))
	}
	return c
}
