package ipam

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
)

var discard = slog.New(slog.DiscardHandler)

// ReleaseAffinity gives up host's claim on the block cidr: the affinity goes
// to pendingDeletion, the block is deleted if empty (two steps: marked
// deleted, then deleted by revision) or else kept without affinity, and the
// affinity is deleted by revision. An absent affinity is not an error.
func (a *Allocator) ReleaseAffinity(ctx context.Context, host string, cidr netip.Prefix) error {
	akey, bkey := AffinityKey(host, cidr), BlockKey(cidr)
	for attempt := 0; attempt < a.maxRetries; attempt++ {
		kvs, err := a.store.Get(ctx, akey, bkey)
		if err != nil {
			if perr := a.pause(ctx, attempt, err); perr != nil {
				return fmt.Errorf("release affinity of %s for %q: %w", cidr, host, perr)
			}
			continue
		}
		akv, bkv := kvs[0], kvs[1]
		if akv.Revision == 0 {
			return nil
		}
		aff, err := decodeAffinity(akey, akv.Value)
		if err != nil {
			return err
		}
		var b *Block
		if bkv.Revision != 0 {
			if b, err = decodeBlock(cidr, bkv.Value); err != nil {
				return err
			}
		}
		var ops []Op
		switch {
		case aff.State != StatePendingDeletion:
			aff.State = StatePendingDeletion
			ops = []Op{{Type: OpPut, Key: akey, Value: mustJSON(aff), Revision: akv.Revision}}
		case b != nil && b.Host() == host && b.Deleted:
			ops = []Op{{Type: OpDelete, Key: bkey, Revision: bkv.Revision}}
		case b != nil && b.Host() == host && b.Empty():
			b.Deleted = true
			ops = []Op{{Type: OpPut, Key: bkey, Value: b.encodeNext(), Revision: bkv.Revision}}
		case b != nil && b.Host() == host:
			b.Affinity, b.HostAffinity, b.AffinityClaimTime = nil, nil, nil
			ops = []Op{{Type: OpPut, Key: bkey, Value: b.encodeNext(), Revision: bkv.Revision}}
		default: // the block is gone or someone else's: drop the affinity
			ops = []Op{{Type: OpDelete, Key: akey, Revision: akv.Revision}}
		}
		_, err = a.txn(ctx, ops...)
		if err == nil && ops[0].Type == OpDelete && ops[0].Key == akey {
			return nil
		}
		if err == nil {
			attempt = -1 // one step done; the next read shows the next one
			continue
		}
		if perr := a.pause(ctx, attempt, err); perr != nil {
			return fmt.Errorf("release affinity of %s for %q: %w", cidr, host, perr)
		}
	}
	return fmt.Errorf("release affinity of %s for %q: %w", cidr, host, ErrTooManyRetries)
}

// ReleaseHostAffinities releases every affinity of host (a node that is
// gone). Blocks that still hold addresses keep them, without affinity.
func (a *Allocator) ReleaseHostAffinities(ctx context.Context, host string) error {
	if host == "" {
		return fmt.Errorf("release host affinities: no host: %w", ErrInvalid)
	}
	for _, v6 := range []bool{false, true} {
		kvs, _, err := a.store.List(ctx, hostFamilyPrefix(host, v6))
		if err != nil {
			return fmt.Errorf("list affinities of %q: %w", host, err)
		}
		for _, kv := range kvs {
			h, cidr, ok := parseAffinityKey(kv.Key)
			if !ok || h != host {
				continue
			}
			if err := a.ReleaseAffinity(ctx, host, cidr); err != nil {
				return err
			}
		}
	}
	return nil
}
