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

// blockReq asks allocFromBlock for up to n addresses of one block.
type blockReq struct {
	cidr netip.Prefix
	n    int
	attr Attribute
	host string
	// borrow: the block need not be affine to host (and is not created).
	borrow bool
	// guard is compared in the same transaction (nil: none).
	guard *Op
	skip  reserved
	// pre is the block and handle as already read, used by the first
	// attempt; a Revision of -1 means "not read".
	pre *[2]KV
}

func blockKeys(cidrs []netip.Prefix) []string {
	keys := make([]string, len(cidrs))
	for i, c := range cidrs {
		keys[i] = BlockKey(c)
	}
	return keys
}

// allocFromBlock allocates up to r.n free addresses of one block to the
// handle, writing block and handle in one transaction. An affine block that
// is missing is created (its confirmed affinity is repaired). It returns
// errAgain when the guard failed.
func (a *Allocator) allocFromBlock(ctx context.Context, r blockReq) ([]allocated, error) {
	handle := *r.attr.HandleID
	bkey, hkey := BlockKey(r.cidr), HandleKey(handle)
	for attempt := 0; attempt < a.maxRetries; attempt++ {
		var kvs []KV
		if attempt == 0 && r.pre != nil && r.pre[0].Revision >= 0 && r.pre[1].Revision >= 0 {
			kvs = r.pre[:]
		} else {
			var err error
			if kvs, err = a.store.Get(ctx, bkey, hkey); err != nil {
				if perr := a.pause(ctx, attempt, err); perr != nil {
					return nil, fmt.Errorf("read block %s: %w", r.cidr, perr)
				}
				continue
			}
		}
		bkv, hkv := kvs[0], kvs[1]
		var b *Block
		if bkv.Revision == 0 {
			if r.borrow {
				return nil, nil
			}
			a.log.Info("repairing confirmed affinity without its block", "host", r.host, "block", r.cidr)
			b = newBlock(r.cidr, r.host, a.now())
			bkv.Value = mustJSON(b) // what a fence writes
		} else {
			var err error
			if b, err = decodeBlock(r.cidr, bkv.Value); err != nil {
				a.log.Warn("skipping unreadable block", "block", r.cidr, "error", err)
				return nil, nil
			}
			if b.Deleted || (!r.borrow && b.Host() != r.host) {
				return nil, nil
			}
		}
		ords := b.take(r.n, r.attr, r.skip)
		if len(ords) == 0 {
			return nil, nil
		}
		seq := b.SequenceNumber
		h := &Handle{Block: map[string]int{}}
		if hkv.Revision != 0 {
			var err error
			if h, err = decodeHandle(handle, hkv.Value); err != nil {
				return nil, err
			}
			if h.Deleted {
				h = &Handle{Block: map[string]int{}}
			}
		}
		h.Block[r.cidr.String()] += len(ords)
		ops := []Op{{Type: OpPut, Key: bkey, Value: b.encodeNext(), Revision: bkv.Revision},
			{Type: OpPut, Key: hkey, Value: mustJSON(h), Revision: hkv.Revision}}
		if r.guard != nil {
			ops = append(ops, *r.guard)
		}
		_, err := a.txn(ctx, ops...)
		switch {
		case err == nil:
		case errors.Is(err, datastore.ErrConflict):
			if r.guard != nil {
				return nil, errAgain
			}
			if perr := a.pause(ctx, attempt, err); perr != nil {
				return nil, perr
			}
			continue
		default:
			applied, rerr := a.resolveAlloc(ctx, r.cidr, bkv, ords, handle, seq)
			if rerr != nil {
				return nil, fmt.Errorf("allocate from block %s: %w: %w (then: %v)", r.cidr, ErrOutcomeUnknown, err, rerr)
			}
			if !applied {
				if perr := a.pause(ctx, attempt, err); perr != nil {
					return nil, perr
				}
				continue
			}
			a.stats.ambiguousApplied.Add(1)
		}
		out := make([]allocated, len(ords))
		for i, o := range ords {
			out[i] = allocated{block: r.cidr, ord: o, seq: seq, addr: b.Addr(o)}
		}
		if r.borrow {
			a.stats.borrowed.Add(uint64(len(ords)))
		}
		return out, nil
	}
	return nil, fmt.Errorf("allocate from block %s: %w", r.cidr, ErrTooManyRetries)
}

// resolveAlloc finds out whether a write that failed without an answer
// allocated ords of block cidr to handle with sequence number seq. The write
// compared the block's revision with base.Revision, so it first fences: it
// writes base back under the same comparison. If that succeeds the lost
// write did not apply and never can (the revision moved on); if it
// conflicts, the block changed and a read tells whether the change was ours.
// It keeps trying, even after ctx ends, for up to ResolveTimeout.
func (a *Allocator) resolveAlloc(ctx context.Context, cidr netip.Prefix, base KV, ords []int, handle string, seq uint64) (bool, error) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.resolveTimeout)
	defer cancel()
	key := BlockKey(cidr)
	for attempt := 0; ; attempt++ {
		_, err := a.txn(rctx, Op{Type: OpPut, Key: key, Value: base.Value, Revision: base.Revision})
		if err == nil {
			return false, nil
		}
		if !errors.Is(err, datastore.ErrConflict) {
			if perr := a.pause(rctx, attempt, err); perr != nil {
				return false, perr
			}
			continue
		}
		kvs, err := a.store.Get(rctx, key)
		if err != nil {
			if perr := a.pause(rctx, attempt, err); perr != nil {
				return false, perr
			}
			continue
		}
		if kvs[0].Revision == 0 {
			return false, nil
		}
		b, err := decodeBlock(cidr, kvs[0].Value)
		if err != nil {
			return false, err
		}
		for _, o := range ords {
			if h, ok := b.HandleOf(o); !ok || h != handle || b.SeqFor(o) != seq {
				return false, nil
			}
		}
		return true, nil
	}
}

// borrow allocates from blocks of the pools that are not the host's, in an
// order seeded by the host name. guard must still hold at every write.
func (a *Allocator) borrow(ctx context.Context, host string, v6 bool, pools []*pool, need int, attr Attribute,
	skip reserved, guard Op) ([]allocated, error) {
	kvs, _, err := a.store.List(ctx, blockFamilyPrefix(v6))
	if err != nil {
		return nil, fmt.Errorf("list blocks: %w", err)
	}
	var cands []netip.Prefix
	for _, kv := range kvs {
		cidr, ok := parseBlockKey(kv.Key)
		if !ok || !inPools(pools, cidr) {
			continue
		}
		if a.isFull(cidr, kv, skip) {
			continue
		}
		b, err := decodeBlock(cidr, kv.Value)
		if err != nil || b.Deleted || b.Host() == host {
			continue
		}
		cands = append(cands, cidr)
	}
	var got []allocated
	if len(cands) == 0 {
		return nil, nil
	}
	start := int(hostHash(host) % uint64(len(cands)))
	for i := range cands {
		cidr := cands[(start+i)%len(cands)]
		r, err := a.allocFromBlock(ctx, blockReq{cidr: cidr, n: need - len(got), attr: attr, host: host, borrow: true,
			guard: &guard, skip: skip})
		got = append(got, r...)
		if err != nil || len(got) == need {
			return got, err
		}
	}
	return got, nil
}

// errNoFreeBlock: every block of the pools exists (or is reserved).
var errNoFreeBlock = errors.New("no free block left in the pools")

// scanLimit bounds the block scan of a huge pool beyond the existing blocks.
const scanLimit = 1 << 16

// claimBlock claims a free block of the pools for host, scanning each pool's
// blocks from a start point derived from the host name.
func (a *Allocator) claimBlock(ctx context.Context, host string, v6 bool, pools []*pool, skip reserved) (netip.Prefix, error) {
	kvs, _, err := a.store.List(ctx, blockFamilyPrefix(v6))
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("list blocks: %w", err)
	}
	existing := map[netip.Prefix]bool{}
	var all []netip.Prefix
	for _, kv := range kvs {
		if cidr, ok := parseBlockKey(kv.Key); ok {
			existing[cidr] = true
			all = append(all, cidr)
		}
	}
	for _, p := range pools {
		// Blocks of another size (an older pool) that overlap this pool.
		var odd []netip.Prefix
		for _, c := range all {
			if c.Bits() != p.blockSize && c.Overlaps(p.cidr) {
				odd = append(odd, c)
			}
		}
		nb := numBlocks(p.cidr, p.blockSize)
		limit := nb
		if nb > 1<<20 {
			limit = uint64(len(all)) + scanLimit
		}
		start := hostHash(host) % nb
		for k := uint64(0); k < limit; k++ {
			cidr := nthBlock(p.cidr, p.blockSize, (start+k)%nb)
			if existing[cidr] || skip.covers(cidr) || overlapsAny(odd, cidr) {
				continue
			}
			ok, err := a.claim(ctx, host, cidr)
			if err != nil {
				return netip.Prefix{}, err
			}
			if ok {
				return cidr, nil
			}
		}
	}
	return netip.Prefix{}, errNoFreeBlock
}

func overlapsAny(ps []netip.Prefix, c netip.Prefix) bool {
	for _, p := range ps {
		if p.Overlaps(c) {
			return true
		}
	}
	return false
}

// claim makes cidr host's block: a pending affinity first, then the block and
// the confirmed affinity in one transaction. It reports false when another
// host got the block first (and removes its own pending affinity).
func (a *Allocator) claim(ctx context.Context, host string, cidr netip.Prefix) (bool, error) {
	akey, bkey := AffinityKey(host, cidr), BlockKey(cidr)
	confirmed := mustJSON(Affinity{State: StateConfirmed})
	for attempt := 0; attempt < a.maxRetries; attempt++ {
		kvs, err := a.store.Get(ctx, akey, bkey)
		if err != nil {
			if perr := a.pause(ctx, attempt, err); perr != nil {
				return false, fmt.Errorf("claim block %s: %w", cidr, perr)
			}
			continue
		}
		akv, bkv := kvs[0], kvs[1]
		var aff *Affinity
		if akv.Revision != 0 {
			if aff, err = decodeAffinity(akey, akv.Value); err != nil {
				return false, err
			}
		}
		var werr error
		switch {
		case bkv.Revision != 0:
			b, err := decodeBlock(cidr, bkv.Value)
			if err != nil || b.Deleted || b.Host() != host {
				// Another host's block: drop our pending affinity, if any.
				if aff != nil && aff.State == StatePending {
					_, _ = a.txn(ctx, Op{Type: OpDelete, Key: akey, Revision: akv.Revision})
				}
				return false, nil
			}
			if aff != nil && aff.State == StateConfirmed && !aff.Deleted {
				return true, nil // a sibling (or our earlier attempt) won
			}
			_, werr = a.txn(ctx, Op{Type: OpPut, Key: akey, Value: confirmed, Revision: akv.Revision},
				Op{Type: OpCheck, Key: bkey, Revision: bkv.Revision})
			if werr == nil {
				return true, nil
			}
		case aff == nil || aff.Deleted || aff.State == StatePendingDeletion:
			_, werr = a.txn(ctx, Op{Type: OpPut, Key: akey, Value: mustJSON(Affinity{State: StatePending}), Revision: akv.Revision})
			if werr == nil {
				continue // read the pending affinity's revision back
			}
		default: // pending (or confirmed without a block)
			_, werr = a.txn(ctx, Op{Type: OpPut, Key: bkey, Value: mustJSON(newBlock(cidr, host, a.now())), Revision: 0},
				Op{Type: OpPut, Key: akey, Value: confirmed, Revision: akv.Revision})
			if werr == nil {
				a.stats.claimed.Add(1)
				return true, nil
			}
		}
		// Conflict or no answer: read again and decide from what is stored.
		if perr := a.pause(ctx, attempt, werr); perr != nil {
			return false, fmt.Errorf("claim block %s: %w", cidr, perr)
		}
	}
	return false, fmt.Errorf("claim block %s: %w", cidr, ErrTooManyRetries)
}

// AssignIPArgs is a request for one specific address.
type AssignIPArgs struct {
	IP       netip.Addr
	HandleID string
	Attrs    Attrs
	// Hostname claims the block for this host if it does not exist yet.
	Hostname string
	// IntendedUse defaults to Workload; the address's pool must allow it.
	IntendedUse v3.IPPoolAllowedUse
}

// AssignIP allocates one specific address to a handle. The address must be
// in a pool that allows the intended use (reservations and the pool's
// selectors do not apply: the address was asked for by name). With
// strictAffinity the block must be unclaimed or the host's own.
func (a *Allocator) AssignIP(ctx context.Context, args AssignIPArgs) error {
	if err := checkHandleID(args.HandleID); err != nil {
		return fmt.Errorf("assign %s: %w", args.IP, err)
	}
	if !args.IP.IsValid() {
		return fmt.Errorf("assign: no address given: %w", ErrInvalid)
	}
	ip := args.IP.Unmap()
	env, err := a.loadEnv(ctx)
	if err != nil {
		return fmt.Errorf("assign %s: %w", ip, err)
	}
	use := args.IntendedUse
	if use == "" {
		use = v3.IPPoolAllowedUseWorkload
	}
	p := poolFor(env.pools, ip)
	if p == nil {
		return fmt.Errorf("assign %s: %w", ip, ErrNotInPool)
	}
	if !p.uses[use] {
		return fmt.Errorf("assign %s: pool %s does not allow use %s: %w", ip, p, use, ErrPoolNotAllowed)
	}
	cidr := blockFor(ip, p.blockSize)
	attr := Attribute{HandleID: &args.HandleID, Secondary: args.Attrs.secondary(args.Hostname, a.now())}
	bkey, hkey := BlockKey(cidr), HandleKey(args.HandleID)
	for attempt := 0; attempt < a.maxRetries; attempt++ {
		kvs, err := a.store.Get(ctx, bkey, hkey)
		if err != nil {
			if perr := a.pause(ctx, attempt, err); perr != nil {
				return fmt.Errorf("assign %s: %w", ip, perr)
			}
			continue
		}
		if kvs[0].Revision == 0 {
			if args.Hostname == "" {
				return fmt.Errorf("assign %s: block %s does not exist and no hostname was given to claim it: %w", ip, cidr, ErrInvalid)
			}
			if _, err := a.claim(ctx, args.Hostname, cidr); err != nil {
				return fmt.Errorf("assign %s: %w", ip, err)
			}
			continue
		}
		b, err := decodeBlock(cidr, kvs[0].Value)
		if err != nil {
			return fmt.Errorf("assign %s: %w", ip, err)
		}
		if b.Deleted {
			if perr := a.pause(ctx, attempt, errAgain); perr != nil {
				return fmt.Errorf("assign %s: %w", ip, perr)
			}
			continue
		}
		if env.cfg.strict && b.Host() != args.Hostname {
			return fmt.Errorf("assign %s: block %s is affine to %q: %w", ip, cidr, b.Host(), ErrAffinityMismatch)
		}
		ord, _ := b.Ordinal(ip)
		if h, used := b.HandleOf(ord); used {
			return fmt.Errorf("assign %s: in use by handle %q: %w", ip, h, ErrAlreadyAssigned)
		}
		seq := b.SequenceNumber
		b.assign(ord, attr)
		h := &Handle{Block: map[string]int{}}
		if kvs[1].Revision != 0 {
			if h, err = decodeHandle(args.HandleID, kvs[1].Value); err != nil {
				return fmt.Errorf("assign %s: %w", ip, err)
			}
			if h.Deleted {
				h = &Handle{Block: map[string]int{}}
			}
		}
		h.Block[cidr.String()]++
		_, err = a.txn(ctx, Op{Type: OpPut, Key: bkey, Value: b.encodeNext(), Revision: kvs[0].Revision},
			Op{Type: OpPut, Key: hkey, Value: mustJSON(h), Revision: kvs[1].Revision})
		if err == nil {
			return nil
		}
		if !errors.Is(err, datastore.ErrConflict) {
			applied, rerr := a.resolveAlloc(ctx, cidr, kvs[0], []int{ord}, args.HandleID, seq)
			if rerr != nil {
				return fmt.Errorf("assign %s: %w: %w (then: %v)", ip, ErrOutcomeUnknown, err, rerr)
			}
			if applied {
				a.stats.ambiguousApplied.Add(1)
				return nil
			}
		}
		if perr := a.pause(ctx, attempt, err); perr != nil {
			return fmt.Errorf("assign %s: %w", ip, perr)
		}
	}
	return fmt.Errorf("assign %s: %w", ip, ErrTooManyRetries)
}

// sortPrefixes sorts CIDRs by address then length.
func sortPrefixes(ps []netip.Prefix) {
	sort.Slice(ps, func(i, j int) bool {
		if c := ps[i].Addr().Compare(ps[j].Addr()); c != 0 {
			return c < 0
		}
		return ps[i].Bits() < ps[j].Bits()
	})
}
