package ipam

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"testing"

	v3 "github.com/calico-go/calico/api/v3"
	"github.com/calico-go/calico/internal/datastore"
)

func TestAutoAssignBasic(t *testing.T) {
	a, st := newTest(t, StaticResources{Pools: []v3.IPPool{mkPool("p", "10.0.0.0/24", 26)}})
	ctx := ctxT(t)
	res, err := a.AutoAssign(ctx, AutoAssignArgs{Num4: 3, HandleID: "k8s-pod-network.c1", Hostname: "n1",
		Attrs: Attrs{Pod: "p1", Namespace: "default"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.IPv4) != 3 || res.IPv4[0].Bits() != 26 {
		t.Fatalf("got %v", res.IPv4)
	}
	block := blockFor(res.IPv4[0].Addr(), 26)
	for i, p := range res.IPv4 {
		if p.Addr() != addOffset(block.Addr(), uint64(i)) {
			t.Fatalf("addresses not taken from the head of the block: %v", res.IPv4)
		}
	}
	s := mustClean(t, a, CheckOptions{Nodes: []string{"n1"}})
	if len(s.Affinities) != 1 || s.Affinities[0].State != StateConfirmed || s.Affinities[0].Host != "n1" || s.Affinities[0].CIDR != block {
		t.Fatalf("affinities %+v", s.Affinities)
	}
	if len(s.Handles) != 1 || s.Handles[0].Handle.Block[block.String()] != 3 {
		t.Fatalf("handles %+v", s.Handles[0].Handle)
	}
	al, err := a.GetAssignmentAttributes(ctx, res.IPv4[1].Addr())
	if err != nil || al.HandleID != "k8s-pod-network.c1" || al.Attrs[AttrPod] != "p1" || al.Attrs[AttrNode] != "n1" || al.BlockHost != "n1" {
		t.Fatalf("attributes %+v %v", al, err)
	}
	ips, err := a.IPsByHandle(ctx, "k8s-pod-network.c1")
	if err != nil || len(ips) != 3 {
		t.Fatalf("IPsByHandle %v %v", ips, err)
	}
	// The next request on the same host uses the same block.
	more := assign4(t, a, "n1", "h2", 1)
	if !block.Contains(more[0].Addr()) {
		t.Fatalf("second allocation %v not from the host's block %s", more, block)
	}
	if _, err := a.IPsByHandle(ctx, "nope"); !errors.Is(err, datastore.ErrNotFound) {
		t.Fatalf("IPsByHandle(unknown) = %v", err)
	}
	before := st.Txns()
	if _, err := a.AutoAssign(ctx, AutoAssignArgs{Num4: 1, HandleID: "bad/handle", Hostname: "n1"}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad handle: %v", err)
	}
	if st.Txns() != before {
		t.Fatal("a rejected request wrote")
	}
}

func TestPoolFiltering(t *testing.T) {
	manual := v3.AssignmentModeManual
	pools := []v3.IPPool{
		mkPool("off", "10.1.0.0/24", 26, func(s *v3.IPPoolSpec) { s.Disabled = true }),
		mkPool("tunnel", "10.2.0.0/24", 26, func(s *v3.IPPoolSpec) { s.AllowedUses = []v3.IPPoolAllowedUse{v3.IPPoolAllowedUseTunnel} }),
		mkPool("rack-a", "10.3.0.0/24", 26, func(s *v3.IPPoolSpec) { s.NodeSelector = "rack == 'a'" }),
		mkPool("team", "10.4.0.0/24", 26, func(s *v3.IPPoolSpec) { s.NamespaceSelector = "team == 'blue'" }),
		mkPool("manual", "10.5.0.0/24", 26, func(s *v3.IPPoolSpec) { s.AssignmentMode = &manual }),
		mkPool("v6", "fd00::/120", 122),
	}
	for _, tc := range []struct {
		name    string
		args    AutoAssignArgs
		pool    string // the pool the address must come from
		wantErr error
	}{
		{"automatic pools only", AutoAssignArgs{Num4: 1}, "10.3.0.0/24", nil},
		{"node selector excludes", AutoAssignArgs{Num4: 1, NodeLabels: map[string]string{"rack": "b"}}, "", ErrNoPools},
		{"namespace selector matches", AutoAssignArgs{Num4: 1, IPv4Pools: []string{"team"},
			Attrs: Attrs{Namespace: "ns1"}, NamespaceLabels: map[string]string{"team": "blue"}}, "10.4.0.0/24", nil},
		{"namespace selector by implicit name label", AutoAssignArgs{Num4: 1, IPv4Pools: []string{"10.4.0.0/24"},
			Attrs: Attrs{Namespace: "ns1"}, NamespaceLabels: map[string]string{"team": "red"}}, "", ErrPoolNotAllowed},
		{"namespace selector without namespace", AutoAssignArgs{Num4: 1, IPv4Pools: []string{"team"}}, "", ErrPoolNotAllowed},
		{"manual pool when requested", AutoAssignArgs{Num4: 1, IPv4Pools: []string{"manual"}}, "10.5.0.0/24", nil},
		{"requested by CIDR", AutoAssignArgs{Num4: 1, IPv4Pools: []string{"10.3.0.0/24"}}, "10.3.0.0/24", nil},
		{"requested disabled", AutoAssignArgs{Num4: 1, IPv4Pools: []string{"off"}}, "", ErrPoolDisabled},
		{"requested unknown", AutoAssignArgs{Num4: 1, IPv4Pools: []string{"gone"}}, "", ErrPoolNotFound},
		{"requested wrong family", AutoAssignArgs{Num4: 1, IPv4Pools: []string{"v6"}}, "", ErrPoolNotAllowed},
		{"requested disallowed use", AutoAssignArgs{Num4: 1, IPv4Pools: []string{"tunnel"}}, "", ErrPoolNotAllowed},
		{"tunnel use", AutoAssignArgs{Num4: 1, IntendedUse: v3.IPPoolAllowedUseTunnel, IPv4Pools: []string{"tunnel"},
			Attrs: Attrs{Type: TypeVXLANTunnel}}, "10.2.0.0/24", nil},
		{"requested node mismatch", AutoAssignArgs{Num4: 1, IPv4Pools: []string{"rack-a"}, NodeLabels: map[string]string{"rack": "b"}}, "", ErrPoolNotAllowed},
		{"ipv6", AutoAssignArgs{Num6: 1}, "fd00::/120", nil},
		{"load balancer use has no pool", AutoAssignArgs{Num4: 1, IntendedUse: v3.IPPoolAllowedUseLoadBalancer}, "", ErrNoPools},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, st := newTest(t, StaticResources{Pools: pools})
			tc.args.HandleID, tc.args.Hostname = "h", "n1"
			if tc.args.NodeLabels == nil {
				tc.args.NodeLabels = map[string]string{"rack": "a"}
			}
			res, err := a.AutoAssign(ctxT(t), tc.args)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				if st.Txns() != 0 {
					t.Fatalf("a refused request wrote %d transactions", st.Txns())
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			all := append(res.IPv4, res.IPv6...)
			if len(all) != 1 || !netip.MustParsePrefix(tc.pool).Contains(all[0].Addr()) {
				t.Fatalf("got %v, want one address from %s", all, tc.pool)
			}
		})
	}
}

// Two blocks of 4 addresses: host a fills one, b takes the other, then a
// needs more.
func TestBorrowVersusStrictAffinity(t *testing.T) {
	for _, strict := range []bool{false, true} {
		t.Run(fmt.Sprintf("strict=%v", strict), func(t *testing.T) {
			a, _ := newTest(t, StaticResources{Pools: []v3.IPPool{mkPool("p", "10.0.0.0/29", 30)}})
			ctx := ctxT(t)
			if err := a.SetConfig(ctx, v3.IPAMConfigurationSpec{StrictAffinity: strict}); err != nil {
				t.Fatal(err)
			}
			ownA := blockFor(assign4(t, a, "a", "a1", 4)[0].Addr(), 30)
			ownB := blockFor(assign4(t, a, "b", "b1", 1)[0].Addr(), 30)
			if ownA == ownB {
				t.Fatal("both hosts in one block")
			}
			res, err := a.AutoAssign(ctx, AutoAssignArgs{Num4: 2, HandleID: "a2", Hostname: "a"})
			if strict {
				if !errors.Is(err, ErrNoAddresses) {
					t.Fatalf("strict: err = %v", err)
				}
				if _, err := a.IPsByHandle(ctx, "a2"); !errors.Is(err, datastore.ErrNotFound) {
					t.Fatalf("strict: the failed request left a handle: %v", err)
				}
			} else {
				if err != nil {
					t.Fatal(err)
				}
				for _, p := range res.IPv4 {
					if !ownB.Contains(p.Addr()) {
						t.Fatalf("borrowed %v, want from %s", res.IPv4, ownB)
					}
				}
				if a.Stats().AddressesBorrowed != 2 {
					t.Fatalf("stats %+v", a.Stats())
				}
				al, _ := a.GetAssignmentAttributes(ctx, res.IPv4[0].Addr())
				if !al.Borrowed() {
					t.Fatalf("not marked borrowed: %+v", al)
				}
			}
			mustClean(t, a, CheckOptions{Nodes: []string{"a", "b"}})
		})
	}
}

func TestBlockLimits(t *testing.T) {
	pools := []v3.IPPool{mkPool("p", "10.0.0.0/28", 30)}
	t.Run("maxBlocksPerHost", func(t *testing.T) {
		a, _ := newTest(t, StaticResources{Pools: pools})
		if err := a.SetConfig(ctxT(t), v3.IPAMConfigurationSpec{StrictAffinity: true, MaxBlocksPerHost: 2}); err != nil {
			t.Fatal(err)
		}
		assign4(t, a, "a", "a1", 8)
		_, err := a.AutoAssign(ctxT(t), AutoAssignArgs{Num4: 1, HandleID: "a2", Hostname: "a"})
		if !errors.Is(err, ErrNoAddresses) {
			t.Fatalf("err = %v", err)
		}
		assign4(t, a, "b", "b1", 8) // the other two blocks are still free for b
	})
	t.Run("autoAllocateBlocks off", func(t *testing.T) {
		a, _ := newTest(t, StaticResources{Pools: pools})
		if err := a.SetConfig(ctxT(t), v3.IPAMConfigurationSpec{StrictAffinity: true, AutoAllocateBlocks: ptr(false)}); err != nil {
			t.Fatal(err)
		}
		if _, err := a.AutoAssign(ctxT(t), AutoAssignArgs{Num4: 1, HandleID: "a1", Hostname: "a"}); !errors.Is(err, ErrNoAddresses) {
			t.Fatalf("err = %v", err)
		}
		// A block the host already has is still used.
		if err := a.AssignIP(ctxT(t), AssignIPArgs{IP: netip.MustParseAddr("10.0.0.5"), HandleID: "x", Hostname: "a"}); err != nil {
			t.Fatal(err)
		}
		if got := assign4(t, a, "a", "a1", 1); got[0].Addr() != netip.MustParseAddr("10.0.0.4") {
			t.Fatalf("got %v", got)
		}
	})
}

func TestReservations(t *testing.T) {
	a, _ := newTest(t, StaticResources{
		Pools:        []v3.IPPool{mkPool("p", "10.0.0.0/29", 30)},
		Reservations: []v3.IPReservation{mkReservation("r", "10.0.0.0/31", "10.0.0.4/30")},
	})
	// The block 10.0.0.4/30 is wholly reserved: never claimed. In 10.0.0.0/30
	// only .2 and .3 can be allocated.
	got := assign4(t, a, "a", "h", 2)
	if strs(got)[0] != "10.0.0.2/30" || strs(got)[1] != "10.0.0.3/30" {
		t.Fatalf("got %v", got)
	}
	if _, err := a.AutoAssign(ctxT(t), AutoAssignArgs{Num4: 1, HandleID: "h2", Hostname: "a"}); !errors.Is(err, ErrNoAddresses) {
		t.Fatalf("err = %v", err)
	}
	s := mustClean(t, a, CheckOptions{})
	if len(s.Blocks) != 1 {
		t.Fatalf("blocks %d", len(s.Blocks))
	}
}

// A request that cannot be met leaves nothing allocated, even when part of it
// was (another block, the other family).
func TestAllOrNothing(t *testing.T) {
	a, _ := newTest(t, StaticResources{Pools: []v3.IPPool{mkPool("p", "10.0.0.0/29", 30), mkPool("v6", "fd00::/126", 126)}})
	ctx := ctxT(t)
	for _, args := range []AutoAssignArgs{
		{Num4: 9, HandleID: "big", Hostname: "a"},
		{Num4: 2, Num6: 5, HandleID: "dual", Hostname: "a"},
	} {
		if _, err := a.AutoAssign(ctx, args); !errors.Is(err, ErrNoAddresses) {
			t.Fatalf("%+v: err = %v", args, err)
		}
		if _, err := a.IPsByHandle(ctx, args.HandleID); !errors.Is(err, datastore.ErrNotFound) {
			t.Fatalf("%s left a handle (%v)", args.HandleID, err)
		}
		s := mustClean(t, a, CheckOptions{})
		if n := len(s.Allocations()); n != 0 {
			t.Fatalf("%s left %d allocations", args.HandleID, n)
		}
	}
	// The full pool is usable afterwards.
	assign4(t, a, "a", "all", 8)
}

func TestAssignIP(t *testing.T) {
	tunnelOnly := mkPool("t", "10.9.0.0/24", 26, func(s *v3.IPPoolSpec) { s.AllowedUses = []v3.IPPoolAllowedUse{v3.IPPoolAllowedUseTunnel} })
	a, _ := newTest(t, StaticResources{Pools: []v3.IPPool{mkPool("p", "10.0.0.0/24", 26), tunnelOnly}})
	ctx := ctxT(t)
	ip := netip.MustParseAddr("10.0.0.70")
	if err := a.AssignIP(ctx, AssignIPArgs{IP: ip, HandleID: "h1", Hostname: "n1", Attrs: Attrs{Pod: "p"}}); err != nil {
		t.Fatal(err)
	}
	if err := a.AssignIP(ctx, AssignIPArgs{IP: ip, HandleID: "h2", Hostname: "n1"}); !errors.Is(err, ErrAlreadyAssigned) {
		t.Fatalf("second assign: %v", err)
	}
	if err := a.AssignIP(ctx, AssignIPArgs{IP: netip.MustParseAddr("192.168.1.1"), HandleID: "h3", Hostname: "n1"}); !errors.Is(err, ErrNotInPool) {
		t.Fatalf("outside pools: %v", err)
	}
	if err := a.AssignIP(ctx, AssignIPArgs{IP: netip.MustParseAddr("10.9.0.1"), HandleID: "h3", Hostname: "n1"}); !errors.Is(err, ErrPoolNotAllowed) {
		t.Fatalf("tunnel-only pool: %v", err)
	}
	// The block was claimed for n1; without strictAffinity n2 may use it.
	if err := a.AssignIP(ctx, AssignIPArgs{IP: netip.MustParseAddr("10.0.0.71"), HandleID: "h4", Hostname: "n2"}); err != nil {
		t.Fatal(err)
	}
	if err := a.SetConfig(ctx, v3.IPAMConfigurationSpec{StrictAffinity: true}); err != nil {
		t.Fatal(err)
	}
	if err := a.AssignIP(ctx, AssignIPArgs{IP: netip.MustParseAddr("10.0.0.72"), HandleID: "h5", Hostname: "n2"}); !errors.Is(err, ErrAffinityMismatch) {
		t.Fatalf("strict: %v", err)
	}
	al, err := a.GetAssignmentAttributes(ctx, ip)
	if err != nil || al.HandleID != "h1" || al.BlockHost != "n1" || al.Block.String() != "10.0.0.64/26" {
		t.Fatalf("%+v %v", al, err)
	}
	mustClean(t, a, CheckOptions{Nodes: []string{"n1", "n2"}})
}

func TestReleaseIdempotent(t *testing.T) {
	a, _ := newTest(t, StaticResources{Pools: []v3.IPPool{mkPool("p", "10.0.0.0/24", 26)}})
	ctx := ctxT(t)
	got := assign4(t, a, "n1", "h1", 2)
	other := assign4(t, a, "n1", "h2", 1)
	un, err := a.ReleaseIPs(ctx, got[0].Addr())
	if err != nil || len(un) != 0 {
		t.Fatalf("release: %v %v", un, err)
	}
	un, err = a.ReleaseIPs(ctx, got[0].Addr(), netip.MustParseAddr("192.168.0.1"))
	if err != nil || len(un) != 2 {
		t.Fatalf("second release: %v %v", un, err)
	}
	ips, _ := a.IPsByHandle(ctx, "h1")
	if len(ips) != 1 || ips[0] != got[1].Addr() {
		t.Fatalf("h1 owns %v", ips)
	}
	for range 2 {
		if err := a.ReleaseByHandle(ctx, "h1"); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.ReleaseByHandle(ctx, "never-existed"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.IPsByHandle(ctx, "h1"); !errors.Is(err, datastore.ErrNotFound) {
		t.Fatalf("h1 still exists: %v", err)
	}
	if _, err := a.GetAssignmentAttributes(ctx, got[1].Addr()); !errors.Is(err, ErrNotAssigned) {
		t.Fatalf("attrs of released: %v", err)
	}
	s := mustClean(t, a, CheckOptions{})
	if len(s.Handles) != 1 || s.Handles[0].ID != "h2" {
		t.Fatalf("handles %+v", s.Handles)
	}
	// Released addresses went to the tail: the next allocation is new.
	if next := assign4(t, a, "n1", "h3", 1); next[0].Addr() == got[0].Addr() || next[0].Addr() == other[0].Addr() {
		t.Fatalf("reused %v at once", next)
	}
}

func TestReleasePreconditions(t *testing.T) {
	a, _ := newTest(t, StaticResources{Pools: []v3.IPPool{mkPool("p", "10.0.0.0/24", 26)}})
	ctx := ctxT(t)
	ip := netip.MustParseAddr("10.0.0.9")
	if err := a.AssignIP(ctx, AssignIPArgs{IP: ip, HandleID: "old", Hostname: "n"}); err != nil {
		t.Fatal(err)
	}
	seen, _ := a.GetAssignmentAttributes(ctx, ip)
	if _, err := a.ReleaseIPs(ctx, ip); err != nil {
		t.Fatal(err)
	}
	if err := a.AssignIP(ctx, AssignIPArgs{IP: ip, HandleID: "new", Hostname: "n"}); err != nil {
		t.Fatal(err)
	}
	// A collector acting on what it saw before must not free the new owner.
	seq := seen.SequenceNumber
	if _, err := a.Release(ctx, ReleaseOptions{IP: ip, SequenceNumber: &seq}); !errors.Is(err, ErrBadSequenceNumber) || !errors.Is(err, datastore.ErrConflict) {
		t.Fatalf("stale sequence: %v", err)
	}
	if _, err := a.Release(ctx, ReleaseOptions{IP: ip, HandleID: "old"}); !errors.Is(err, ErrHandleMismatch) {
		t.Fatalf("wrong handle: %v", err)
	}
	now, _ := a.GetAssignmentAttributes(ctx, ip)
	if now.HandleID != "new" || now.SequenceNumber == seq {
		t.Fatalf("allocation %+v", now)
	}
	seq = now.SequenceNumber
	if _, err := a.Release(ctx, ReleaseOptions{IP: ip, HandleID: "new", SequenceNumber: &seq}); err != nil {
		t.Fatal(err)
	}
	mustClean(t, a, CheckOptions{})
}

// A write whose reply is lost is resolved by reading the block back.
func TestLostReply(t *testing.T) {
	for _, applied := range []bool{true, false} {
		t.Run(fmt.Sprintf("applied=%v", applied), func(t *testing.T) {
			a, st := newTest(t, StaticResources{Pools: []v3.IPPool{mkPool("p", "10.0.0.0/24", 26)}})
			assign4(t, a, "n", "warm", 1) // the block exists
			var once sync.Once
			st.SetTxnHook(func(ops []Op) (bool, error) {
				fail := false
				once.Do(func() { fail = true })
				if !fail {
					return false, nil
				}
				return applied, fmt.Errorf("connection lost: %w", datastore.ErrUnavailable)
			})
			got := assign4(t, a, "n", "h", 2)
			st.SetTxnHook(nil)
			ips, err := a.IPsByHandle(ctxT(t), "h")
			if err != nil || len(ips) != 2 || ips[0] != got[0].Addr() || ips[1] != got[1].Addr() {
				t.Fatalf("handle owns %v (%v), call returned %v", ips, err, got)
			}
			if s := a.Stats(); s.Ambiguous != 1 || (s.AmbiguousApplied == 1) != applied {
				t.Fatalf("stats %+v", s)
			}
			mustClean(t, a, CheckOptions{})
		})
	}
}

func TestReleaseLostReply(t *testing.T) {
	a, st := newTest(t, StaticResources{Pools: []v3.IPPool{mkPool("p", "10.0.0.0/30", 30)}})
	ctx := ctxT(t)
	got := assign4(t, a, "n", "h", 1)
	var once sync.Once
	// The release applies but its reply is lost; before the retry someone
	// else gets the same address. The retry must leave them alone.
	st.SetTxnHook(func(ops []Op) (bool, error) {
		fail := false
		once.Do(func() { fail = true })
		if !fail {
			return false, nil
		}
		return true, fmt.Errorf("timeout: %w", datastore.ErrUnavailable)
	})
	done := make(chan error, 1)
	go func() {
		_, err := a.ReleaseIPs(ctx, got[0].Addr())
		done <- err
	}()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	st.SetTxnHook(nil)
	if err := a.AssignIP(ctx, AssignIPArgs{IP: got[0].Addr(), HandleID: "new", Hostname: "n"}); err != nil {
		t.Fatal(err)
	}
	if al, err := a.GetAssignmentAttributes(ctx, got[0].Addr()); err != nil || al.HandleID != "new" {
		t.Fatalf("%+v %v", al, err)
	}
	mustClean(t, a, CheckOptions{})
}

func TestConcurrentGoroutines(t *testing.T) {
	a, _ := newTest(t, StaticResources{Pools: []v3.IPPool{mkPool("p", "10.0.0.0/23", 28)}})
	var mu sync.Mutex
	seen := map[netip.Addr]string{}
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			host := fmt.Sprintf("n%d", w%4)
			for i := range 50 {
				h := fmt.Sprintf("w%d-%d", w, i)
				res, err := a.AutoAssign(ctxT(t), AutoAssignArgs{Num4: 1, HandleID: h, Hostname: host})
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if prev, dup := seen[res.IPv4[0].Addr()]; dup {
					t.Errorf("%s handed out to %s and %s", res.IPv4[0], prev, h)
				}
				seen[res.IPv4[0].Addr()] = h
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	s := mustClean(t, a, CheckOptions{Nodes: []string{"n0", "n1", "n2", "n3"}})
	if n := len(s.Allocations()); n != 400 {
		t.Fatalf("%d allocations", n)
	}
	keys := slices.Collect(func(yield func(netip.Addr) bool) {
		for k := range seen {
			if !yield(k) {
				return
			}
		}
	})
	un, err := a.ReleaseIPs(ctxT(t), keys...)
	if err != nil || len(un) != 0 {
		t.Fatalf("release all: %v %v", un, err)
	}
	s = mustClean(t, a, CheckOptions{})
	if len(s.Handles) != 0 || len(s.Allocations()) != 0 {
		t.Fatalf("left %d handles", len(s.Handles))
	}
}
