package ipam

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sort"

	v3 "github.com/calico-go/calico/api/v3"
	"github.com/calico-go/calico/internal/datastore"
)

// CheckOptions is what Check compares the IPAM state with.
type CheckOptions struct {
	// Nodes are the nodes that exist; nil skips the vanished-node checks.
	Nodes []string
	// InUse are the addresses endpoints use (from WorkloadEndpoints);
	// optional.
	InUse []InUse
}

// InUse is an address an endpoint uses.
type InUse struct {
	IP netip.Addr `json:"ip"`
	// Owner names the endpoint, e.g. "ns/pod" or a WEP name.
	Owner string `json:"owner"`
}

// HandleMismatch is a handle whose count for a block differs from the
// allocations the block holds for it.
type HandleMismatch struct {
	ID       string       `json:"handle"`
	Block    netip.Prefix `json:"block"`
	Recorded int          `json:"recorded"`
	Actual   int          `json:"actual"`
	// Revision is the handle's revision when checked; Repair only touches
	// the handle if it is unchanged.
	Revision int64 `json:"revision"`
}

// HandleRef names a stored handle.
type HandleRef struct {
	ID       string `json:"handle"`
	Revision int64  `json:"revision"`
}

// Duplicate is an address allocated, or used, more than once.
type Duplicate struct {
	IP          netip.Addr   `json:"ip"`
	Allocations []Allocation `json:"allocations,omitempty"`
	Owners      []string     `json:"owners,omitempty"`
}

// BlockRef names a stored block.
type BlockRef struct {
	CIDR     netip.Prefix `json:"cidr"`
	Host     string       `json:"host"`
	Revision int64        `json:"revision"`
}

// Report is the result of Check. It is JSON so that calicoctl can save it
// and release from it later (Repair).
type Report struct {
	Revision    int64 `json:"revision"`
	Blocks      int   `json:"blocks"`
	Allocations int   `json:"allocations"`
	Handles     int   `json:"handles"`
	// Leaked addresses have no handle, or a handle that does not exist.
	Leaked []Allocation `json:"leaked,omitempty"`
	// Duplicates are addresses allocated in more than one (overlapping)
	// block, and MultipleOwners addresses used by more than one endpoint.
	Duplicates     []Duplicate `json:"duplicates,omitempty"`
	MultipleOwners []Duplicate `json:"multipleOwners,omitempty"`
	// NotAllocated are addresses endpoints use that IPAM did not allocate.
	NotAllocated []InUse `json:"notAllocated,omitempty"`
	// OutsidePools are allocations outside every IP pool.
	OutsidePools []Allocation `json:"outsidePools,omitempty"`
	// EmptyHandles own no address (including handles left marked deleted).
	EmptyHandles []HandleRef `json:"emptyHandles,omitempty"`
	// HandleMismatches are handles whose counts disagree with the blocks.
	HandleMismatches []HandleMismatch `json:"handleMismatches,omitempty"`
	// StaleAffinities are pending or pendingDeletion leftovers, and
	// confirmed affinities whose block is missing or someone else's.
	StaleAffinities []AffinityInfo `json:"staleAffinities,omitempty"`
	// OrphanBlocks are affine to a host that has no affinity for them.
	OrphanBlocks []BlockRef `json:"orphanBlocks,omitempty"`
	// VanishedNodeAffinities and VanishedNodeAllocations belong to nodes
	// not in CheckOptions.Nodes.
	VanishedNodeAffinities  []AffinityInfo `json:"vanishedNodeAffinities,omitempty"`
	VanishedNodeAllocations []Allocation   `json:"vanishedNodeAllocations,omitempty"`
	// Unreadable are keys whose documents did not decode.
	Unreadable []string `json:"unreadable,omitempty"`
}

// Problems counts the findings.
func (r *Report) Problems() int {
	return len(r.Leaked) + len(r.Duplicates) + len(r.MultipleOwners) + len(r.NotAllocated) + len(r.OutsidePools) +
		len(r.EmptyHandles) + len(r.HandleMismatches) + len(r.StaleAffinities) + len(r.OrphanBlocks) +
		len(r.VanishedNodeAffinities) + len(r.VanishedNodeAllocations) + len(r.Unreadable)
}

// Clean reports whether the check found nothing.
func (r *Report) Clean() bool { return r.Problems() == 0 }

// Check reads a snapshot and the pools and reports what is wrong.
func (a *Allocator) Check(ctx context.Context, opts CheckOptions) (*Report, error) {
	s, err := a.Snapshot(ctx)
	if err != nil {
		return nil, fmt.Errorf("check: %w", err)
	}
	pools, err := a.res.IPPools(ctx)
	if err != nil {
		return nil, fmt.Errorf("check: %w", err)
	}
	return CheckSnapshot(s, pools, opts), nil
}

// CheckSnapshot is Check on a snapshot already read.
func CheckSnapshot(s *Snapshot, pools []v3.IPPool, opts CheckOptions) *Report {
	r := &Report{Revision: s.Revision, Blocks: len(s.Blocks), Handles: len(s.Handles), Unreadable: s.Unreadable}
	ps := parsePools(discard, pools)
	var nodes map[string]bool
	if opts.Nodes != nil {
		nodes = map[string]bool{}
		for _, n := range opts.Nodes {
			nodes[n] = true
		}
	}
	handles := map[string]HandleInfo{}
	for _, h := range s.Handles {
		handles[h.ID] = h
	}
	// actual[handle][block] counts allocations.
	actual := map[string]map[netip.Prefix]int{}
	byIP := map[netip.Addr][]Allocation{}
	for _, al := range s.Allocations() {
		r.Allocations++
		byIP[al.IP] = append(byIP[al.IP], al)
		if poolFor(ps, al.IP) == nil {
			r.OutsidePools = append(r.OutsidePools, al)
		}
		if n := al.Attrs[AttrNode]; nodes != nil && n != "" && !nodes[n] {
			r.VanishedNodeAllocations = append(r.VanishedNodeAllocations, al)
		}
		h, ok := handles[al.HandleID]
		if al.HandleID == "" || !ok || h.Handle.Deleted {
			r.Leaked = append(r.Leaked, al)
			continue
		}
		if actual[al.HandleID] == nil {
			actual[al.HandleID] = map[netip.Prefix]int{}
		}
		actual[al.HandleID][al.Block]++
	}
	for ip, als := range byIP {
		if len(als) > 1 {
			r.Duplicates = append(r.Duplicates, Duplicate{IP: ip, Allocations: als})
		}
	}
	for _, h := range s.Handles {
		if len(actual[h.ID]) == 0 {
			r.EmptyHandles = append(r.EmptyHandles, HandleRef{ID: h.ID, Revision: h.Revision})
			continue
		}
		seen := map[netip.Prefix]bool{}
		for c, n := range h.Handle.Block {
			cidr, err := netip.ParsePrefix(c)
			if err == nil {
				seen[cidr] = true
			}
			if got := actual[h.ID][cidr]; err != nil || got != n {
				r.HandleMismatches = append(r.HandleMismatches, HandleMismatch{ID: h.ID, Block: cidr, Recorded: n, Actual: got, Revision: h.Revision})
			}
		}
		for cidr, n := range actual[h.ID] {
			if !seen[cidr] {
				r.HandleMismatches = append(r.HandleMismatches, HandleMismatch{ID: h.ID, Block: cidr, Actual: n, Revision: h.Revision})
			}
		}
	}
	checkAffinities(s, r, nodes)
	checkInUse(r, byIP, opts.InUse)
	r.sort()
	return r
}

func checkAffinities(s *Snapshot, r *Report, nodes map[string]bool) {
	blocks := map[netip.Prefix]*Block{}
	for _, bi := range s.Blocks {
		blocks[bi.Block.CIDR] = bi.Block
	}
	confirmed := map[netip.Prefix]bool{}
	for _, af := range s.Affinities {
		b := blocks[af.CIDR]
		ok := af.State == StateConfirmed && !af.Deleted && b != nil && b.Host() == af.Host
		if ok {
			confirmed[af.CIDR] = true
		}
		switch {
		case nodes != nil && !nodes[af.Host]:
			r.VanishedNodeAffinities = append(r.VanishedNodeAffinities, af)
		case !ok:
			r.StaleAffinities = append(r.StaleAffinities, af)
		}
	}
	for _, bi := range s.Blocks {
		b := bi.Block
		if h := b.Host(); h != "" && !b.Deleted && !confirmed[b.CIDR] && (nodes == nil || nodes[h]) {
			r.OrphanBlocks = append(r.OrphanBlocks, BlockRef{CIDR: b.CIDR, Host: h, Revision: bi.Revision})
		}
	}
}

func checkInUse(r *Report, byIP map[netip.Addr][]Allocation, inUse []InUse) {
	owners := map[netip.Addr][]string{}
	for _, u := range inUse {
		ip := u.IP.Unmap()
		if len(owners[ip]) == 0 && len(byIP[ip]) == 0 {
			r.NotAllocated = append(r.NotAllocated, u)
		}
		owners[ip] = append(owners[ip], u.Owner)
	}
	for ip, os := range owners {
		sort.Strings(os)
		uniq := os[:0]
		for i, o := range os {
			if i == 0 || o != os[i-1] {
				uniq = append(uniq, o)
			}
		}
		if len(uniq) > 1 {
			r.MultipleOwners = append(r.MultipleOwners, Duplicate{IP: ip, Owners: uniq})
		}
	}
}

func (r *Report) sort() {
	byAddr := func(s []Allocation) {
		sort.Slice(s, func(i, j int) bool { return s[i].IP.Less(s[j].IP) })
	}
	byAddr(r.Leaked)
	byAddr(r.OutsidePools)
	byAddr(r.VanishedNodeAllocations)
	sort.Slice(r.Duplicates, func(i, j int) bool { return r.Duplicates[i].IP.Less(r.Duplicates[j].IP) })
	sort.Slice(r.MultipleOwners, func(i, j int) bool { return r.MultipleOwners[i].IP.Less(r.MultipleOwners[j].IP) })
	sort.Slice(r.HandleMismatches, func(i, j int) bool {
		a, b := r.HandleMismatches[i], r.HandleMismatches[j]
		return a.ID < b.ID || (a.ID == b.ID && a.Block.Addr().Less(b.Block.Addr()))
	})
}

// RepairOptions choose what Repair may do beyond fixing bookkeeping.
type RepairOptions struct {
	// ReleaseVanishedNodes releases the affinities and addresses of nodes
	// that no longer exist.
	ReleaseVanishedNodes bool
}

// RepairResult counts what Repair did. Released counts the addresses
// Repair itself freed. AlreadyFree counts listed addresses that were no
// longer allocated at all (released since the check); Skipped counts the
// other findings that changed since the check (an address released and
// given to a new owner, a handle or affinity rewritten), which were left
// alone.
type RepairResult struct {
	Released, AlreadyFree, HandlesFixed, HandlesDeleted, AffinitiesFixed, Skipped int
}

// Repair fixes what a Report lists, comparing revisions and sequence numbers
// so that nothing that changed since the check is touched: leaked addresses
// are released, empty handles deleted, handle counts rewritten from the
// blocks, stale affinities deleted, orphan blocks given their affinity back
// and (with ReleaseVanishedNodes) the leftovers of vanished nodes released.
// Duplicates, addresses outside pools and endpoint problems need a human.
func (a *Allocator) Repair(ctx context.Context, r *Report, opts RepairOptions) (RepairResult, error) {
	var res RepairResult
	release := func(als []Allocation) error {
		for _, al := range als {
			seq := al.SequenceNumber
			free, err := a.Release(ctx, ReleaseOptions{IP: al.IP, HandleID: al.HandleID, SequenceNumber: &seq})
			switch {
			case err == nil && len(free) > 0:
				res.AlreadyFree++
			case err == nil:
				res.Released++
			case errors.Is(err, ErrBadSequenceNumber) || errors.Is(err, ErrHandleMismatch):
				res.Skipped++
			default:
				return fmt.Errorf("repair: %w", err)
			}
		}
		return nil
	}
	if err := release(r.Leaked); err != nil {
		return res, err
	}
	for _, h := range r.EmptyHandles {
		ok, err := a.deleteAt(ctx, HandleKey(h.ID), h.Revision, mustJSON(Handle{Block: map[string]int{}, Deleted: true}))
		if err != nil {
			return res, fmt.Errorf("repair: %w", err)
		}
		res.HandlesDeleted, res.Skipped = res.HandlesDeleted+b2i(ok), res.Skipped+b2i(!ok)
	}
	fixed := map[string]bool{}
	for _, m := range r.HandleMismatches {
		if fixed[m.ID] {
			continue
		}
		fixed[m.ID] = true
		h := &Handle{Block: map[string]int{}}
		for _, o := range r.HandleMismatches {
			if o.ID == m.ID && o.Actual > 0 {
				h.Block[o.Block.String()] = o.Actual
			}
		}
		ok, err := a.casPut(ctx, HandleKey(m.ID), m.Revision, mustJSON(h), true)
		if err != nil {
			return res, fmt.Errorf("repair: %w", err)
		}
		res.HandlesFixed, res.Skipped = res.HandlesFixed+b2i(ok), res.Skipped+b2i(!ok)
	}
	for _, af := range r.StaleAffinities {
		ok, err := a.casDelete(ctx, AffinityKey(af.Host, af.CIDR), af.Revision)
		if err != nil {
			return res, fmt.Errorf("repair: %w", err)
		}
		res.AffinitiesFixed, res.Skipped = res.AffinitiesFixed+b2i(ok), res.Skipped+b2i(!ok)
	}
	for _, b := range r.OrphanBlocks {
		ok, err := a.casPut(ctx, AffinityKey(b.Host, b.CIDR), 0, mustJSON(Affinity{State: StateConfirmed}), false)
		if err != nil {
			return res, fmt.Errorf("repair: %w", err)
		}
		res.AffinitiesFixed, res.Skipped = res.AffinitiesFixed+b2i(ok), res.Skipped+b2i(!ok)
	}
	if opts.ReleaseVanishedNodes {
		if err := release(r.VanishedNodeAllocations); err != nil {
			return res, err
		}
		for _, af := range r.VanishedNodeAffinities {
			if err := a.ReleaseAffinity(ctx, af.Host, af.CIDR); err != nil {
				return res, fmt.Errorf("repair: %w", err)
			}
			res.AffinitiesFixed++
		}
	}
	return res, nil
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// casPut writes key if its revision is rev; false if it changed. For a
// handle (handle set) that owns nothing the handle is deleted instead.
func (a *Allocator) casPut(ctx context.Context, key string, rev int64, value []byte, handle bool) (bool, error) {
	if handle {
		if h, err := decodeHandle(key, value); err == nil && len(h.Block) == 0 {
			return a.deleteAt(ctx, key, rev, mustJSON(Handle{Block: map[string]int{}, Deleted: true}))
		}
	}
	return a.casOnce(ctx, Op{Type: OpPut, Key: key, Value: value, Revision: rev})
}

func (a *Allocator) casDelete(ctx context.Context, key string, rev int64) (bool, error) {
	return a.casOnce(ctx, Op{Type: OpDelete, Key: key, Revision: rev})
}

// deleteAt deletes key in two steps (mark with marked, then delete by
// revision) if its revision is still rev.
func (a *Allocator) deleteAt(ctx context.Context, key string, rev int64, marked []byte) (bool, error) {
	ok, err := a.casOnce(ctx, Op{Type: OpPut, Key: key, Value: marked, Revision: rev})
	if !ok || err != nil {
		return ok, err
	}
	kvs, err := a.store.Get(ctx, key)
	if err != nil {
		return false, err
	}
	if kvs[0].Revision == 0 {
		return true, nil
	}
	return a.casOnce(ctx, Op{Type: OpDelete, Key: key, Revision: kvs[0].Revision})
}

// casOnce applies one compared write, waiting out an unavailable store; it
// reports false on a conflict.
func (a *Allocator) casOnce(ctx context.Context, op Op) (bool, error) {
	for attempt := 0; attempt < a.maxRetries; attempt++ {
		_, err := a.txn(ctx, op)
		switch {
		case err == nil:
			return true, nil
		case errors.Is(err, datastore.ErrConflict):
			if attempt == 0 {
				return false, nil
			}
			// An earlier attempt failed without an answer: did it apply?
			kvs, gerr := a.store.Get(ctx, op.Key)
			if gerr != nil {
				err = gerr
				break
			}
			if op.Type == OpDelete {
				return kvs[0].Revision == 0, nil
			}
			return string(kvs[0].Value) == string(op.Value), nil
		}
		if perr := a.pause(ctx, attempt, err); perr != nil {
			return false, perr
		}
	}
	return false, ErrTooManyRetries
}
