package ipam

import (
	"net/netip"
	"testing"
	"time"

	v3 "github.com/calico-go/calico/api/v3"
)

// A confirmed affinity whose block is missing gets its block back; a pending
// affinity left by a crashed claim is finished by the next claim.
func TestAffinityLeftovers(t *testing.T) {
	a, st := newTest(t, StaticResources{Pools: []v3.IPPool{mkPool("p", "10.0.0.0/24", 28)}})
	lost := netip.MustParsePrefix("10.0.0.48/28")
	st.Put(AffinityKey("n1", lost), mustJSON(Affinity{State: StateConfirmed}))
	if got := assign4(t, a, "n1", "h1", 1); !lost.Contains(got[0].Addr()) {
		t.Fatalf("got %v, want from %s", got, lost)
	}
	mustClean(t, a, CheckOptions{})

	// n2's claim crashed after writing its pending affinity for the block
	// its scan starts at.
	b, _ := newTest(t, StaticResources{Pools: []v3.IPPool{mkPool("p", "10.0.0.0/24", 28)}})
	start := nthBlock(netip.MustParsePrefix("10.0.0.0/24"), 28, hostHash("n2")%16)
	b.store.(*MemStore).Put(AffinityKey("n2", start), mustJSON(Affinity{State: StatePending}))
	if r, _ := b.Check(ctxT(t), CheckOptions{}); len(r.StaleAffinities) != 1 {
		t.Fatalf("pending leftover not reported: %+v", r)
	}
	if got := assign4(t, b, "n2", "h1", 1); !start.Contains(got[0].Addr()) {
		t.Fatalf("got %v, want from %s", got, start)
	}
	mustClean(t, b, CheckOptions{})
}

// A host borrows only while every block it owns is full: if one of its
// blocks appears while it is about to borrow, it uses that block instead.
func TestBorrowGuard(t *testing.T) {
	a, st := newTest(t, StaticResources{Pools: []v3.IPPool{mkPool("p", "10.0.0.0/29", 30)}})
	assign4(t, a, "a", "a1", 4)
	other := blockFor(assign4(t, a, "b", "b1", 1)[0].Addr(), 30)
	// The pool grows to /28 and c owns both new blocks, so a must borrow.
	a.res = StaticResources{Pools: []v3.IPPool{mkPool("p", "10.0.0.0/28", 30)}}
	last := netip.MustParsePrefix("10.0.0.12/30")
	for _, c := range []netip.Prefix{netip.MustParsePrefix("10.0.0.8/30"), last} {
		st.Put(BlockKey(c), mustJSON(newBlock(c, "c", time.Now())))
		st.Put(AffinityKey("c", c), mustJSON(Affinity{State: StateConfirmed}))
	}
	// Just before a's borrow commits, one of c's empty blocks becomes a's
	// (as a sibling's claim would make it).
	fired := false
	st.SetTxnHook(func(ops []Op) (bool, error) {
		for _, op := range ops {
			if op.Type == OpCheckPrefix && !fired {
				fired = true
				nb := newBlock(last, "a", time.Now())
				st.rev++
				st.data[BlockKey(last)] = KV{Key: BlockKey(last), Value: mustJSON(nb), Revision: st.rev}
				delete(st.data, AffinityKey("c", last))
				st.data[AffinityKey("a", last)] = KV{Key: AffinityKey("a", last), Value: mustJSON(Affinity{State: StateConfirmed}), Revision: st.rev}
			}
		}
		return false, nil
	})
	got := assign4(t, a, "a", "a2", 1)
	st.SetTxnHook(nil)
	if !fired {
		t.Fatal("a never tried to borrow")
	}
	if !last.Contains(got[0].Addr()) || other.Contains(got[0].Addr()) {
		t.Fatalf("got %v: want from a's new block %s, not borrowed", got, last)
	}
	mustClean(t, a, CheckOptions{})
}
