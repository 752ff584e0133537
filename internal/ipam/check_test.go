package ipam

import (
	"encoding/json"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	v3 "github.com/calico-go/calico/api/v3"
)

func TestCheckAndRepair(t *testing.T) {
	a, st := newTest(t, StaticResources{Pools: []v3.IPPool{mkPool("p", "10.0.0.0/24", 28)}})
	ctx := ctxT(t)
	keep := assign4(t, a, "n1", "keep", 2)
	leak := assign4(t, a, "n1", "leak", 1)
	assign4(t, a, "gone", "gone-pod", 1)
	// Break things the way a crashed foreign writer could.
	st.Delete(HandleKey("leak")) // address without its handle
	st.Put(HandleKey("ghost"), mustJSON(Handle{Block: map[string]int{"10.0.0.0/28": 1}}))
	st.Put(HandleKey("keep"), mustJSON(Handle{Block: map[string]int{"10.0.0.0/28": 5}}))
	snap, err := a.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var unused []netip.Prefix
	for i := range uint64(16) {
		c := nthBlock(netip.MustParsePrefix("10.0.0.0/24"), 28, i)
		if !slices.ContainsFunc(snap.Blocks, func(b BlockInfo) bool { return b.Block.CIDR == c }) {
			unused = append(unused, c)
		}
	}
	stale, orphan := unused[0], unused[1]
	st.Put(AffinityKey("n1", stale), mustJSON(Affinity{State: StatePending}))
	st.Put(BlockKey(orphan), mustJSON(newBlock(orphan, "n1", time.Now())))

	nodes := CheckOptions{Nodes: []string{"n1"}, InUse: []InUse{
		{IP: keep[0].Addr(), Owner: "ns/a"}, {IP: keep[0].Addr(), Owner: "ns/b"},
		{IP: netip.MustParseAddr("10.0.0.200"), Owner: "ns/c"},
	}}
	r, err := a.Check(ctx, nodes)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Leaked) != 1 || r.Leaked[0].IP != leak[0].Addr() || r.Leaked[0].HandleID != "leak" {
		t.Errorf("leaked %+v", r.Leaked)
	}
	if len(r.EmptyHandles) != 1 || r.EmptyHandles[0].ID != "ghost" {
		t.Errorf("empty handles %+v", r.EmptyHandles)
	}
	if len(r.HandleMismatches) != 1 || r.HandleMismatches[0].Recorded != 5 || r.HandleMismatches[0].Actual != 2 {
		t.Errorf("mismatches %+v", r.HandleMismatches)
	}
	if len(r.StaleAffinities) != 1 || r.StaleAffinities[0].CIDR != stale {
		t.Errorf("stale affinities %+v", r.StaleAffinities)
	}
	if len(r.OrphanBlocks) != 1 || r.OrphanBlocks[0].CIDR != orphan {
		t.Errorf("orphan blocks %+v", r.OrphanBlocks)
	}
	if len(r.VanishedNodeAffinities) != 1 || r.VanishedNodeAffinities[0].Host != "gone" || len(r.VanishedNodeAllocations) != 1 {
		t.Errorf("vanished %+v %+v", r.VanishedNodeAffinities, r.VanishedNodeAllocations)
	}
	if len(r.MultipleOwners) != 1 || len(r.NotAllocated) != 1 {
		t.Errorf("in-use problems %+v %+v", r.MultipleOwners, r.NotAllocated)
	}
	// The report survives a round trip through JSON (calicoctl -o report,
	// then release --from-report).
	data, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), `"leaked":[{"ip":"`+leak[0].Addr().String()) {
		t.Errorf("report JSON %s", data)
	}
	res, err := a.Repair(ctx, &back, RepairOptions{ReleaseVanishedNodes: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Released != 2 || res.HandlesDeleted != 1 || res.HandlesFixed != 1 || res.AffinitiesFixed != 3 || res.Skipped != 0 {
		t.Errorf("repair %+v", res)
	}
	r, err = a.Check(ctx, CheckOptions{Nodes: []string{"n1"}})
	if err != nil {
		t.Fatal(err)
	}
	if !r.Clean() {
		t.Fatalf("after repair: %+v", r)
	}
	if ips, _ := a.IPsByHandle(ctx, "keep"); len(ips) != 2 {
		t.Fatalf("repair touched a good handle: %v", ips)
	}
	// A stale report repairs nothing that changed since.
	if _, err := a.ReleaseIPs(ctx, keep[0].Addr()); err != nil {
		t.Fatal(err)
	}
	if err := a.AssignIP(ctx, AssignIPArgs{IP: keep[0].Addr(), HandleID: "reused", Hostname: "n1"}); err != nil {
		t.Fatal(err)
	}
	old := Report{Leaked: []Allocation{{IP: keep[0].Addr(), HandleID: "keep", SequenceNumber: 1}}}
	if res, err := a.Repair(ctx, &old, RepairOptions{}); err != nil || res.Skipped != 1 || res.Released != 0 {
		t.Fatalf("stale repair %+v %v", res, err)
	}
}

// TestRepairAlreadyFree: a leaked address that was released between the
// check and the repair is counted as already free, not as released, and a
// second repair with the same report releases nothing either.
func TestRepairAlreadyFree(t *testing.T) {
	a, st := newTest(t, StaticResources{Pools: []v3.IPPool{mkPool("p", "10.0.0.0/24", 28)}})
	ctx := ctxT(t)
	leak := assign4(t, a, "n1", "leak", 2)
	st.Delete(HandleKey("leak"))
	r, err := a.Check(ctx, CheckOptions{Nodes: []string{"n1"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Leaked) != 2 {
		t.Fatalf("leaked %+v", r.Leaked)
	}
	// Someone else frees the first one after the check.
	if _, err := a.ReleaseIPs(ctx, leak[0].Addr()); err != nil {
		t.Fatal(err)
	}
	res, err := a.Repair(ctx, r, RepairOptions{})
	if err != nil || res != (RepairResult{Released: 1, AlreadyFree: 1}) {
		t.Fatalf("repair %+v %v; want Released 1, AlreadyFree 1", res, err)
	}
	res, err = a.Repair(ctx, r, RepairOptions{})
	if err != nil || res != (RepairResult{AlreadyFree: 2}) {
		t.Fatalf("second repair %+v %v; want AlreadyFree 2", res, err)
	}
	mustClean(t, a, CheckOptions{Nodes: []string{"n1"}})
}

func TestReleaseAffinity(t *testing.T) {
	a, _ := newTest(t, StaticResources{Pools: []v3.IPPool{mkPool("p", "10.0.0.0/24", 28)}})
	ctx := ctxT(t)
	full := assign4(t, a, "n1", "h1", 16)
	empty := assign4(t, a, "n1", "h2", 1)
	if err := a.ReleaseByHandle(ctx, "h2"); err != nil {
		t.Fatal(err)
	}
	if err := a.ReleaseHostAffinities(ctx, "n1"); err != nil {
		t.Fatal(err)
	}
	s := mustClean(t, a, CheckOptions{})
	if len(s.Affinities) != 0 || len(s.Blocks) != 1 {
		t.Fatalf("affinities %v, %d blocks", s.Affinities, len(s.Blocks))
	}
	b := s.Blocks[0].Block
	if b.CIDR != blockFor(full[0].Addr(), 28) || b.Affinity != nil || b.InUse() != 16 {
		t.Fatalf("kept block %s affinity %v in use %d", b.CIDR, b.Affinity, b.InUse())
	}
	if blockFor(empty[0].Addr(), 28) == b.CIDR {
		t.Fatal("empty block not deleted")
	}
	// The unaffine block's addresses can still be released by handle.
	if err := a.ReleaseByHandle(ctx, "h1"); err != nil {
		t.Fatal(err)
	}
	mustClean(t, a, CheckOptions{})
}

func TestConfig(t *testing.T) {
	a, st := newTest(t, StaticResources{})
	ctx := ctxT(t)
	spec, err := a.Config(ctx)
	if err != nil || spec.StrictAffinity || spec.AutoAllocateBlocks == nil || !*spec.AutoAllocateBlocks {
		t.Fatalf("default %+v %v", spec, err)
	}
	if err := a.SetConfig(ctx, v3.IPAMConfigurationSpec{MaxBlocksPerHost: 4}); err == nil {
		t.Fatal("maxBlocksPerHost without strictAffinity accepted")
	}
	if err := a.UpdateConfig(ctx, func(s *v3.IPAMConfigurationSpec) error {
		s.StrictAffinity, s.MaxBlocksPerHost = true, 4
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	kvs, _ := st.Get(ctx, ConfigKey)
	if got := string(kvs[0].Value); got != `{"strict_affinity":true,"auto_allocate_blocks":true,"maxBlocksPerHost":4}` {
		t.Fatalf("stored %s", got)
	}
	// Calico's own document: a missing auto_allocate_blocks means false.
	st.Put(ConfigKey, []byte(`{"strict_affinity":true}`))
	if spec, _ := a.Config(ctx); *spec.AutoAllocateBlocks || !spec.StrictAffinity {
		t.Fatalf("decoded %+v", spec)
	}
}

// TestConfigKeepsMetadata: SetConfig and UpdateConfig write the resource
// metadata the datastore backend stores in the document back unchanged
// (labels set with calicoctl apply survive calicoctl ipam configure).
func TestConfigKeepsMetadata(t *testing.T) {
	a, st := newTest(t, StaticResources{})
	ctx := ctxT(t)
	meta := `{"uid":"u-1","creationTimestamp":"2024-01-02T03:04:05Z","labels":{"team":"net"},"annotations":{"a":"b"}}`
	st.Put(ConfigKey, []byte(`{"strict_affinity":false,"auto_allocate_blocks":true,"metadata":`+meta+`}`))
	stored := func() StoredConfig {
		t.Helper()
		kvs, err := st.Get(ctx, ConfigKey)
		if err != nil {
			t.Fatal(err)
		}
		var sc StoredConfig
		if err := json.Unmarshal(kvs[0].Value, &sc); err != nil {
			t.Fatal(err)
		}
		return sc
	}
	if err := a.SetConfig(ctx, v3.IPAMConfigurationSpec{StrictAffinity: true}); err != nil {
		t.Fatal(err)
	}
	if sc := stored(); !sc.StrictAffinity || string(sc.Metadata) != meta {
		t.Fatalf("after SetConfig: %+v metadata %s, want %s", sc, sc.Metadata, meta)
	}
	if err := a.UpdateConfig(ctx, func(s *v3.IPAMConfigurationSpec) error { s.MaxBlocksPerHost = 3; return nil }); err != nil {
		t.Fatal(err)
	}
	if sc := stored(); !sc.StrictAffinity || sc.MaxBlocksPerHost != 3 || string(sc.Metadata) != meta {
		t.Fatalf("after UpdateConfig: %+v metadata %s, want %s", sc, sc.Metadata, meta)
	}
}

// Claims scan from a host-dependent start, the same every time.
func TestClaimOrder(t *testing.T) {
	first := func(host string) netip.Prefix {
		a, _ := newTest(t, StaticResources{Pools: []v3.IPPool{mkPool("p", "10.0.0.0/16", 26)}})
		return blockFor(assign4(t, a, host, "h", 1)[0].Addr(), 26)
	}
	if first("node-a") != first("node-a") {
		t.Fatal("claim order is not deterministic")
	}
	distinct := map[netip.Prefix]bool{}
	for _, h := range []string{"node-a", "node-b", "node-c", "node-d"} {
		distinct[first(h)] = true
	}
	if len(distinct) < 3 {
		t.Fatalf("hosts start their scans at the same blocks: %v", distinct)
	}
}

func TestIPv6(t *testing.T) {
	a, _ := newTest(t, StaticResources{Pools: []v3.IPPool{mkPool("p4", "10.0.0.0/24", 26), mkPool("p6", "fd00:1::/64", 122)}})
	ctx := ctxT(t)
	res, err := a.AutoAssign(ctx, AutoAssignArgs{Num4: 1, Num6: 2, HandleID: "dual", Hostname: "n"})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.IPv4) != 1 || len(res.IPv6) != 2 || res.IPv6[0].Bits() != 122 || !netip.MustParsePrefix("fd00:1::/64").Contains(res.IPv6[1].Addr()) {
		t.Fatalf("got %+v", res)
	}
	if ips, _ := a.IPsByHandle(ctx, "dual"); len(ips) != 3 {
		t.Fatalf("handle owns %v", ips)
	}
	if err := a.ReleaseByHandle(ctx, "dual"); err != nil {
		t.Fatal(err)
	}
	s := mustClean(t, a, CheckOptions{})
	if len(s.Affinities) != 2 || len(s.Handles) != 0 {
		t.Fatalf("%+v", s)
	}
	u := s.Usage(netip.MustParsePrefix("10.0.0.0/24"), []v3.IPReservation{mkReservation("r", "10.0.0.0/30")})
	if u.Total != 256 || u.InUse != 0 || u.Reserved != 4 {
		t.Fatalf("usage %+v", u)
	}
}
