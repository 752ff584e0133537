package ipam

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sort"

	"github.com/calico-go/calico/internal/datastore"
)

// ReleaseOptions names one address to release and, optionally, what must
// still be true of its allocation.
type ReleaseOptions struct {
	IP netip.Addr
	// HandleID, when set, must own the address (else ErrHandleMismatch).
	HandleID string
	// SequenceNumber, when set, must match the allocation's (else
	// ErrBadSequenceNumber): a garbage collector passes what it saw so that
	// it never frees an address that was released and reused since.
	SequenceNumber *uint64
}

// releaseReq is one address to free. Once the allocation has been read, its
// handle and sequence number are pinned (skipStale): a retry that finds them
// changed knows the address was already freed (perhaps by our own write
// whose reply was lost) and leaves the new owner alone.
type releaseReq struct {
	addr      netip.Addr
	handle    string
	seq       *uint64
	skipStale bool
}

// ReleaseIPs releases addresses, whoever owns them, and returns those that
// were not allocated.
func (a *Allocator) ReleaseIPs(ctx context.Context, ips ...netip.Addr) ([]netip.Addr, error) {
	opts := make([]ReleaseOptions, len(ips))
	for i, ip := range ips {
		opts[i] = ReleaseOptions{IP: ip}
	}
	return a.Release(ctx, opts...)
}

// Release releases addresses and returns those that were not allocated. A
// failed precondition (handle or sequence number) fails the request for the
// addresses of that block; addresses of other blocks may have been released.
func (a *Allocator) Release(ctx context.Context, opts ...ReleaseOptions) ([]netip.Addr, error) {
	reqs := make([]releaseReq, len(opts))
	for i, o := range opts {
		if !o.IP.IsValid() {
			return nil, fmt.Errorf("release: invalid address: %w", ErrInvalid)
		}
		reqs[i] = releaseReq{addr: o.IP.Unmap(), handle: o.HandleID, seq: o.SequenceNumber}
	}
	return a.release(ctx, reqs)
}

func (a *Allocator) release(ctx context.Context, reqs []releaseReq) ([]netip.Addr, error) {
	byBlock := map[netip.Prefix][]releaseReq{}
	var unalloc []netip.Addr
	for _, r := range reqs {
		cidr, ok, err := a.findBlock(ctx, r.addr)
		if err != nil {
			return unalloc, fmt.Errorf("release %s: %w", r.addr, err)
		}
		if !ok {
			unalloc = append(unalloc, r.addr)
			continue
		}
		byBlock[cidr] = append(byBlock[cidr], r)
	}
	cidrs := make([]netip.Prefix, 0, len(byBlock))
	for c := range byBlock {
		cidrs = append(cidrs, c)
	}
	sortPrefixes(cidrs)
	for _, c := range cidrs {
		u, err := a.releaseFromBlock(ctx, c, byBlock[c])
		unalloc = append(unalloc, u...)
		if err != nil {
			return unalloc, err
		}
	}
	return unalloc, nil
}

// findBlock returns the existing block that contains addr: the block of
// the address's pool if it exists, else any stored block containing it.
func (a *Allocator) findBlock(ctx context.Context, addr netip.Addr) (netip.Prefix, bool, error) {
	var guess netip.Prefix
	for attempt := 0; ; attempt++ {
		err := func() error {
			ps, err := a.res.IPPools(ctx)
			if err != nil {
				return err
			}
			if p := poolFor(parsePools(a.log, ps), addr); p != nil {
				guess = blockFor(addr, p.blockSize)
				kvs, err := a.store.Get(ctx, BlockKey(guess))
				if err != nil {
					return err
				}
				if kvs[0].Revision != 0 {
					return nil
				}
			}
			guess = netip.Prefix{}
			kvs, _, err := a.store.List(ctx, blockFamilyPrefix(addr.Is6()))
			if err != nil {
				return err
			}
			for _, kv := range kvs {
				if c, ok := parseBlockKey(kv.Key); ok && c.Contains(addr) {
					guess = c
					return nil
				}
			}
			return nil
		}()
		if err == nil {
			return guess, guess.IsValid(), nil
		}
		if perr := a.pause(ctx, attempt, err); perr != nil || attempt+1 >= a.maxRetries {
			return netip.Prefix{}, false, err
		}
	}
}

// releaseFromBlock frees the requested addresses of one block and updates
// their handles in the same transaction.
func (a *Allocator) releaseFromBlock(ctx context.Context, cidr netip.Prefix, reqs []releaseReq) ([]netip.Addr, error) {
	bkey := BlockKey(cidr)
	lost := false // a write failed without an answer
	for attempt := 0; attempt < a.maxRetries; attempt++ {
		kvs, err := a.store.Get(ctx, bkey)
		if err != nil {
			if perr := a.pause(ctx, attempt, err); perr != nil {
				return nil, fmt.Errorf("release from block %s: %w", cidr, perr)
			}
			continue
		}
		if kvs[0].Revision == 0 {
			return addrsOf(reqs), nil
		}
		b, err := decodeBlock(cidr, kvs[0].Value)
		if err != nil {
			return nil, err
		}
		var unalloc []netip.Addr
		var ords []int
		seen := map[int]bool{}
		for i := range reqs {
			r := &reqs[i]
			ord, _ := b.Ordinal(r.addr)
			h, used := b.HandleOf(ord)
			seq := b.SeqFor(ord)
			switch {
			case !used || seen[ord]:
				if !seen[ord] {
					unalloc = append(unalloc, r.addr)
				}
				continue
			case r.seq != nil && *r.seq != seq:
				if r.skipStale {
					unalloc = append(unalloc, r.addr)
					continue
				}
				return nil, fmt.Errorf("release %s: asked for sequence number %d, allocation has %d: %w", r.addr, *r.seq, seq, ErrBadSequenceNumber)
			case r.handle != "" && r.handle != h:
				if r.skipStale {
					unalloc = append(unalloc, r.addr)
					continue
				}
				return nil, fmt.Errorf("release %s: asked for handle %q, owned by %q: %w", r.addr, r.handle, h, ErrHandleMismatch)
			}
			// Pin what we saw, for the retries.
			r.handle, r.seq, r.skipStale = h, &seq, true
			seen[ord] = true
			ords = append(ords, ord)
		}
		if len(ords) == 0 {
			if lost {
				// Our lost write may have marked handles deleted: finish.
				a.finishHandleDeletes(ctx, reqs)
			}
			return unalloc, nil
		}
		byHandle := b.release(ords)
		ops := []Op{{Type: OpPut, Key: bkey, Value: b.encodeNext(), Revision: kvs[0].Revision}}
		hops, gone, err := a.handleOps(ctx, cidr, byHandle, false)
		if err != nil {
			if perr := a.pause(ctx, attempt, err); perr != nil {
				return nil, fmt.Errorf("release from block %s: %w", cidr, perr)
			}
			continue
		}
		rev, err := a.txn(ctx, append(ops, hops...)...)
		if err != nil {
			// Conflict or no answer: the pinned handle and sequence numbers
			// make the next attempt safe either way.
			lost = lost || !errors.Is(err, datastore.ErrConflict)
			if perr := a.pause(ctx, attempt, err); perr != nil {
				return nil, fmt.Errorf("release from block %s: %w", cidr, perr)
			}
			continue
		}
		for _, id := range gone {
			a.deleteHandle(ctx, id, rev)
		}
		return unalloc, nil
	}
	return nil, fmt.Errorf("release from block %s: %w", cidr, ErrTooManyRetries)
}

func addrsOf(reqs []releaseReq) []netip.Addr {
	out := make([]netip.Addr, len(reqs))
	for i, r := range reqs {
		out[i] = r.addr
	}
	return out
}

// handleOps reads the handles and returns the writes that take count
// addresses of block cidr off each (all of them when all is set), marking a
// handle deleted when it owns nothing more; gone lists those handles.
// Missing handles are skipped (a leak being repaired).
func (a *Allocator) handleOps(ctx context.Context, cidr netip.Prefix, counts map[string]int, all bool) ([]Op, []string, error) {
	ids := make([]string, 0, len(counts))
	for id := range counts {
		if checkHandleID(id) == nil {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return nil, nil, nil
	}
	sort.Strings(ids)
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = HandleKey(id)
	}
	kvs, err := a.store.Get(ctx, keys...)
	if err != nil {
		return nil, nil, err
	}
	var ops []Op
	var gone []string
	for i, id := range ids {
		if kvs[i].Revision == 0 {
			continue
		}
		h, err := decodeHandle(id, kvs[i].Value)
		if err != nil {
			return nil, nil, err
		}
		c := cidr.String()
		if all {
			delete(h.Block, c)
		} else if h.Block[c] -= counts[id]; h.Block[c] <= 0 {
			delete(h.Block, c)
		}
		if len(h.Block) == 0 {
			h.Deleted = true
			gone = append(gone, id)
		}
		ops = append(ops, Op{Type: OpPut, Key: keys[i], Value: mustJSON(h), Revision: kvs[i].Revision})
	}
	return ops, gone, nil
}

// finishHandleDeletes deletes the handles of reqs that are marked deleted.
func (a *Allocator) finishHandleDeletes(ctx context.Context, reqs []releaseReq) {
	done := map[string]bool{}
	for _, r := range reqs {
		if r.handle == "" || done[r.handle] || checkHandleID(r.handle) != nil {
			continue
		}
		done[r.handle] = true
		kvs, err := a.store.Get(ctx, HandleKey(r.handle))
		if err != nil || kvs[0].Revision == 0 {
			continue
		}
		if h, err := decodeHandle(r.handle, kvs[0].Value); err == nil && h.Deleted && len(h.Block) == 0 {
			a.deleteHandle(ctx, r.handle, kvs[0].Revision)
		}
	}
}

// deleteHandle is the second step of a handle's deletion: it removes the
// handle marked deleted at revision rev, unless it changed since.
func (a *Allocator) deleteHandle(ctx context.Context, id string, rev int64) {
	for attempt := 0; attempt < a.maxRetries; attempt++ {
		_, err := a.txn(ctx, Op{Type: OpDelete, Key: HandleKey(id), Revision: rev})
		if err == nil || errors.Is(err, datastore.ErrConflict) {
			return // gone, or reused (or already deleted by our lost reply)
		}
		if perr := a.pause(ctx, attempt, err); perr != nil {
			a.log.Warn("handle left marked deleted", "handle", id, "error", err)
			return
		}
	}
}

// ReleaseByHandle releases every address of a handle and deletes it. A
// handle that does not exist is not an error.
func (a *Allocator) ReleaseByHandle(ctx context.Context, handleID string) error {
	if err := checkHandleID(handleID); err != nil {
		return fmt.Errorf("release handle: %w", err)
	}
	hkey := HandleKey(handleID)
	for attempt := 0; attempt < a.maxRetries; attempt++ {
		kvs, err := a.store.Get(ctx, hkey)
		if err != nil {
			if perr := a.pause(ctx, attempt, err); perr != nil {
				return fmt.Errorf("release handle %q: %w", handleID, perr)
			}
			continue
		}
		if kvs[0].Revision == 0 {
			return nil
		}
		h, err := decodeHandle(handleID, kvs[0].Value)
		if err != nil {
			return err
		}
		if h.Deleted || len(h.Block) == 0 {
			_, err := a.txn(ctx, Op{Type: OpDelete, Key: hkey, Revision: kvs[0].Revision})
			if err == nil {
				return nil
			}
			if perr := a.pause(ctx, attempt, err); perr != nil {
				return fmt.Errorf("release handle %q: %w", handleID, perr)
			}
			continue
		}
		c, err := firstBlock(h)
		if err != nil {
			return fmt.Errorf("release handle %q: %w", handleID, err)
		}
		if err := a.releaseHandleFromBlock(ctx, handleID, c); err != nil {
			return fmt.Errorf("release handle %q: %w", handleID, err)
		}
		// Progress made: the next read sees one block fewer.
		attempt = -1
	}
	return fmt.Errorf("release handle %q: %w", handleID, ErrTooManyRetries)
}

// firstBlock returns the handle's block with the lowest CIDR.
func firstBlock(h *Handle) (netip.Prefix, error) {
	var cs []netip.Prefix
	for s := range h.Block {
		c, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("handle names bad block %q: %w", s, err)
		}
		cs = append(cs, c)
	}
	sortPrefixes(cs)
	return cs[0], nil
}

// releaseHandleFromBlock frees every address of the handle in one block and
// removes the block from the handle, in one transaction.
func (a *Allocator) releaseHandleFromBlock(ctx context.Context, handleID string, cidr netip.Prefix) error {
	bkey := BlockKey(cidr)
	for attempt := 0; attempt < a.maxRetries; attempt++ {
		kvs, err := a.store.Get(ctx, bkey)
		if err != nil {
			if perr := a.pause(ctx, attempt, err); perr != nil {
				return perr
			}
			continue
		}
		var ops []Op
		if kvs[0].Revision != 0 {
			b, err := decodeBlock(cidr, kvs[0].Value)
			if err != nil {
				return err
			}
			if ords := b.ordinalsOf(handleID); len(ords) > 0 {
				b.release(ords)
				ops = append(ops, Op{Type: OpPut, Key: bkey, Value: b.encodeNext(), Revision: kvs[0].Revision})
			}
		}
		hops, gone, err := a.handleOps(ctx, cidr, map[string]int{handleID: 0}, true)
		if err == nil {
			var rev int64
			if rev, err = a.txn(ctx, append(ops, hops...)...); err == nil {
				for _, id := range gone {
					a.deleteHandle(ctx, id, rev)
				}
				return nil
			}
		}
		if perr := a.pause(ctx, attempt, err); perr != nil {
			return perr
		}
	}
	return ErrTooManyRetries
}
