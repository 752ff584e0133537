package nft

import (
	"context"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"
)

func TestMergeRanges(t *testing.T) {
	ms := map[Member]struct{}{}
	for _, p := range []string{"10.0.0.0/24", "10.0.0.5/32", "10.0.1.0/24", "10.0.3.0/24", "10.0.2.255/32", "0.0.0.0/1", "255.255.255.255/32"} {
		ms[Member{Prefix: pfx(p)}] = struct{}{}
	}
	got := sortElements(SetIPv4, SetIPv4.elements(ms))
	want := []string{"0.0.0.0/1", "255.255.255.255"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("merged %v, want %v", got, want)
	}
	delete(ms, Member{Prefix: pfx("0.0.0.0/1")})
	got = sortElements(SetIPv4, SetIPv4.elements(ms))
	want = []string{"10.0.0.0/23", "10.0.2.255-10.0.3.255", "255.255.255.255"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("merged %v, want %v", got, want)
	}
}

func TestMemberChecks(t *testing.T) {
	tb := New(Options{Offline: true})
	for _, tc := range []struct {
		typ SetType
		m   Member
	}{
		{SetIPv4, Member{Prefix: pfx("fd00::/64")}},
		{SetIPv6, Member{Prefix: pfx("10.0.0.0/8")}},
		{SetIPv4, Member{Prefix: pfx("10.0.0.1/32"), Protocol: 6}},
		{SetIPv4Port, Member{Prefix: pfx("10.0.0.0/24"), Protocol: 6, Ports: PortRange{80, 80}}},
		{SetIPv4Port, Member{Prefix: pfx("10.0.0.1/32"), Protocol: 6, Ports: PortRange{80, 81}}},
		{SetIPv4PortRanges, Member{Prefix: pfx("10.0.0.1/32"), Protocol: 6, Ports: PortRange{81, 80}}},
	} {
		if err := tb.SetSet("s", tc.typ, []Member{tc.m}); err == nil {
			t.Errorf("%v accepted in a %v set", tc.m, tc.typ)
		}
	}
}

// TestBoxElementsDisjointAndEquivalent checks on random points that the
// elements of a port-range set cover exactly the union of its members and
// never overlap.
func TestBoxElementsDisjointAndEquivalent(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	addr := func() netip.Addr { return netip.AddrFrom4([4]byte{10, 0, byte(r.IntN(4)), byte(r.IntN(256))}) }
	for round := range 50 {
		ms := map[Member]struct{}{}
		for range 1 + r.IntN(12) {
			bits := 22 + r.IntN(11)
			proto := []uint8{0, 6, 6, 17}[r.IntN(4)]
			lo := uint16(r.IntN(40))
			hi := lo + uint16(r.IntN(20))
			ports := PortRange{lo, hi}
			if proto == 0 && r.IntN(2) == 0 {
				ports = AnyPort
			}
			ms[Member{Prefix: netip.PrefixFrom(addr(), bits).Masked(), Protocol: proto, Ports: ports}] = struct{}{}
		}
		es := SetIPv4PortRanges.elements(ms)
		for range 2000 {
			a, proto, port := addr(), []uint8{1, 6, 17}[r.IntN(3)], uint16(r.IntN(70))
			in := false
			for m := range ms {
				if m.Prefix.Contains(a) && (m.Protocol == 0 || m.Protocol == proto) && m.Ports.First <= port && port <= m.Ports.Last {
					in = true
				}
			}
			key := concatKey(a, proto, port)
			hits := 0
			for _, e := range es {
				if e.key <= key && key <= e.keyEnd && boxContains(e, a, proto, port) {
					hits++
				}
			}
			if hits > 1 || (hits == 1) != in {
				t.Fatalf("round %d: point %s/%d/%d: in members %v, in %d elements\nmembers %v", round, a, proto, port, in, hits, ms)
			}
		}
	}
}

// boxContains checks each field of a concatenated range separately.
func boxContains(e element, a netip.Addr, proto uint8, port uint16) bool {
	lo, plo, qlo := splitConcat(e.key)
	hi, phi, qhi := splitConcat(e.keyEnd)
	return lo.Compare(a) <= 0 && a.Compare(hi) <= 0 && plo <= proto && proto <= phi && qlo <= port && port <= qhi
}

func TestOfflineApplySendsOnlyChanges(t *testing.T) {
	ctx := context.Background()
	tb := New(Options{Offline: true})
	if err := tb.SetSet("s", SetIPv4, []Member{{Prefix: pfx("10.0.0.1/32")}, {Prefix: pfx("10.0.0.3/32")}}); err != nil {
		t.Fatal(err)
	}
	tb.SetChain(Chain{Name: "a", Rules: []Rule{R(AddrInSet(IPv4, Src, "s"), Accept())}})
	tb.SetChain(Chain{Name: "b", Rules: []Rule{R(Jump("a"))}})
	st, err := tb.Apply(ctx)
	if err != nil || st.ChainsWritten != 2 || st.SetsCreated != 1 || st.ElementsAdded != 2 {
		t.Fatalf("first %+v %v", st, err)
	}
	tb.SetChain(Chain{Name: "a", Rules: []Rule{R(AddrInSet(IPv4, Src, "s"), Accept())}})
	if st, _ := tb.Apply(ctx); !st.Empty() {
		t.Errorf("unchanged chain sent %+v", st)
	}
	if err := tb.AddMembers("s", Member{Prefix: pfx("10.0.0.2/32")}); err != nil {
		t.Fatal(err)
	}
	if st, _ := tb.Apply(ctx); st.ElementsAdded != 1 || st.ElementsRemoved != 2 || st.ChainsWritten != 0 {
		t.Errorf("merge %+v", st)
	}
	tb.DeleteChain("a")
	if _, err := tb.Apply(ctx); err == nil {
		t.Errorf("deleting a chain another jumps to was not refused")
	}
	tb.SetChain(Chain{Name: "b", Rules: []Rule{R(Drop())}})
	if st, err := tb.Apply(ctx); err != nil || st.ChainsDeleted != 1 || st.ChainsWritten != 1 {
		t.Errorf("delete %+v %v", st, err)
	}
	r := tb.Render()
	for _, want := range []string{"set s {", "10.0.0.1-10.0.0.3", "chain b {", "\t\tdrop\n"} {
		if !strings.Contains(r, want) {
			t.Errorf("render lacks %q:\n%s", want, r)
		}
	}
}
