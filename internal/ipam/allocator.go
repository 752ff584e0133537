package ipam

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	v3 "github.com/calico-go/calico/api/v3"
	"github.com/calico-go/calico/internal/datastore"
)

// Defaults for Options.
const (
	DefaultMaxRetries     = 100
	DefaultResolveTimeout = 30 * time.Second
)

// Options configure an Allocator.
type Options struct {
	// Store holds the IPAM documents. Required.
	Store Store
	// Resources supplies pools and reservations. Required.
	Resources Resources
	// Logger receives debug and warning logs; nil discards.
	Logger *slog.Logger
	// MaxRetries bounds the attempts of one write (default 100).
	MaxRetries int
	// ResolveTimeout bounds how long, after a write failed without a clear
	// answer, the allocator keeps asking the store whether it took effect
	// and undoing what a failed call had allocated. It runs even when the
	// caller's context has ended (default 30s).
	ResolveTimeout time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Allocator allocates and releases addresses. It is safe for concurrent use;
// any number of Allocators (in any number of processes) may share a Store.
type Allocator struct {
	store          Store
	res            Resources
	log            *slog.Logger
	maxRetries     int
	resolveTimeout time.Duration
	now            func() time.Time
	stats          stats
	// full remembers blocks seen full, by CIDR: the revision at which they
	// were full. A block with that revision need not be decoded again.
	full sync.Map
}

// New returns an Allocator.
func New(opts Options) (*Allocator, error) {
	if opts.Store == nil || opts.Resources == nil {
		return nil, fmt.Errorf("ipam: Options.Store and Options.Resources are required: %w", ErrInvalid)
	}
	a := &Allocator{store: opts.Store, res: opts.Resources, log: opts.Logger, maxRetries: opts.MaxRetries,
		resolveTimeout: opts.ResolveTimeout, now: opts.Now}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if a.maxRetries <= 0 {
		a.maxRetries = DefaultMaxRetries
	}
	if a.resolveTimeout <= 0 {
		a.resolveTimeout = DefaultResolveTimeout
	}
	if a.now == nil {
		a.now = time.Now
	}
	return a, nil
}

// Attrs describe the owner of an allocation; they are stored as the
// allocation's secondary attributes.
type Attrs struct {
	// Node defaults to the request's Hostname.
	Node      string
	Pod       string
	Namespace string
	// Type marks tunnel addresses (TypeVXLANTunnel, ...).
	Type string
	// Extra attributes, stored as given.
	Extra map[string]string
}

func (at Attrs) secondary(host string, now time.Time) map[string]string {
	m := map[string]string{}
	for k, v := range at.Extra {
		m[k] = v
	}
	node := at.Node
	if node == "" {
		node = host
	}
	for k, v := range map[string]string{AttrNode: node, AttrPod: at.Pod, AttrNamespace: at.Namespace, AttrType: at.Type} {
		if v != "" {
			m[k] = v
		}
	}
	m[AttrTimestamp] = now.UTC().Format(time.RFC3339Nano)
	return m
}

// AutoAssignArgs is a request for addresses chosen by IPAM.
type AutoAssignArgs struct {
	// Num4 and Num6 are how many IPv4 and IPv6 addresses to allocate.
	Num4, Num6 int
	// HandleID owns the addresses (e.g. "k8s-pod-network.<containerID>").
	HandleID string
	Attrs    Attrs
	// Hostname is the node whose blocks are used. Required.
	Hostname string
	// IPv4Pools and IPv6Pools restrict the pools (names or CIDRs); empty
	// means every enabled Automatic pool that fits.
	IPv4Pools, IPv6Pools []string
	// NodeLabels are matched by the pools' nodeSelector.
	NodeLabels map[string]string
	// NamespaceLabels are matched by the pools' namespaceSelector
	// (projectcalico.org/name is added from Attrs.Namespace). Pools with a
	// namespaceSelector are skipped for requests without a namespace.
	NamespaceLabels map[string]string
	// IntendedUse defaults to Workload.
	IntendedUse v3.IPPoolAllowedUse
}

// AutoAssignResult holds the addresses with their block's prefix length.
type AutoAssignResult struct {
	IPv4, IPv6 []netip.Prefix
}

// allocated is one address this call wrote, with what identifies it.
type allocated struct {
	block netip.Prefix
	ord   int
	seq   uint64
	addr  netip.Addr
}

// AutoAssign allocates args.Num4 IPv4 and args.Num6 IPv6 addresses for
// args.HandleID: from the host's own confirmed blocks first, then from newly
// claimed blocks, then (unless strictAffinity) borrowed from other blocks of
// the same pools. It is all or nothing: on error every address this call
// allocated has been released again (or the error wraps ErrOutcomeUnknown).
func (a *Allocator) AutoAssign(ctx context.Context, args AutoAssignArgs) (_ AutoAssignResult, retErr error) {
	var res AutoAssignResult
	if err := checkHandleID(args.HandleID); err != nil {
		return res, fmt.Errorf("auto-assign: %w", err)
	}
	if args.Hostname == "" || args.Num4 < 0 || args.Num6 < 0 {
		return res, fmt.Errorf("auto-assign: need a hostname and non-negative counts: %w", ErrInvalid)
	}
	env, err := a.loadEnv(ctx)
	if err != nil {
		return res, fmt.Errorf("auto-assign: %w", err)
	}
	attr := Attribute{HandleID: &args.HandleID, Secondary: args.Attrs.secondary(args.Hostname, a.now())}
	var done []allocated
	defer func() {
		if retErr != nil && len(done) > 0 {
			if err := a.undo(ctx, args.HandleID, done); err != nil {
				retErr = fmt.Errorf("%w; undoing the %d addresses already allocated also failed: %w", retErr, len(done), err)
			}
		}
	}()
	for _, fam := range []struct {
		v6    bool
		n     int
		pools []string
		out   *[]netip.Prefix
	}{{false, args.Num4, args.IPv4Pools, &res.IPv4}, {true, args.Num6, args.IPv6Pools, &res.IPv6}} {
		if fam.n == 0 {
			continue
		}
		f := &poolFilter{v6: fam.v6, requested: fam.pools, use: args.IntendedUse, node: args.Hostname,
			nodeLabels: args.NodeLabels, nsLabels: nsLabels(args)}
		if f.use == "" {
			f.use = v3.IPPoolAllowedUseWorkload
		}
		got, err := a.assignFamily(ctx, env, f, fam.n, attr)
		done = append(done, got...)
		if err != nil {
			return AutoAssignResult{}, fmt.Errorf("auto-assign for handle %q: %w", args.HandleID, err)
		}
		for _, g := range got {
			*fam.out = append(*fam.out, netip.PrefixFrom(g.addr, g.block.Bits()))
		}
	}
	a.log.Debug("auto-assigned", "handle", args.HandleID, "host", args.Hostname, "ipv4", res.IPv4, "ipv6", res.IPv6)
	return res, nil
}

func nsLabels(args AutoAssignArgs) map[string]string {
	if args.Attrs.Namespace == "" && args.NamespaceLabels == nil {
		return nil
	}
	m := map[string]string{}
	for k, v := range args.NamespaceLabels {
		m[k] = v
	}
	if args.Attrs.Namespace != "" {
		m["projectcalico.org/name"] = args.Attrs.Namespace
	}
	return m
}

// undo releases what a failed call allocated, even if ctx has ended.
func (a *Allocator) undo(ctx context.Context, handle string, done []allocated) error {
	uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.resolveTimeout)
	defer cancel()
	reqs := make([]releaseReq, len(done))
	for i, d := range done {
		reqs[i] = releaseReq{addr: d.addr, handle: handle, seq: &d.seq, skipStale: true}
	}
	_, err := a.release(uctx, reqs)
	return err
}

// assignFamily allocates n addresses of one family. It returns what it
// allocated even on error, so that the caller can undo it.
func (a *Allocator) assignFamily(ctx context.Context, env *env, f *poolFilter, n int, attr Attribute) ([]allocated, error) {
	pools, err := selectPools(env.pools, f)
	if err != nil {
		return nil, err
	}
	host := f.node
	var got []allocated
	for attempt := 0; ; attempt++ {
		if attempt >= a.maxRetries {
			return got, fmt.Errorf("assign on host %q: %d attempts: %w", host, attempt, ErrTooManyRetries)
		}
		need := n - len(got)
		owned, rev, err := a.ownBlocks(ctx, host, f.v6, pools)
		if err != nil {
			if perr := a.pause(ctx, attempt, err); perr != nil {
				return got, perr
			}
			continue
		}
		// 1. The host's own blocks.
		r, err := a.fromOwnBlocks(ctx, owned, need, attr, host, env.reserved)
		got, need = append(got, r...), need-len(r)
		if err != nil && errors.Is(err, datastore.ErrUnavailable) && len(r) == 0 {
			if perr := a.pause(ctx, attempt, err); perr != nil {
				return got, perr
			}
			continue
		}
		if err != nil || need == 0 {
			return got, err
		}
		// 2. A new block, while the host is below maxBlocksPerHost.
		if env.cfg.autoAllocate && len(owned) < env.cfg.maxBlocks {
			cidr, err := a.claimBlock(ctx, host, f.v6, pools, env.reserved)
			if err == nil {
				a.log.Debug("claimed block", "host", host, "block", cidr)
				continue // allocate from it
			}
			if !errors.Is(err, errNoFreeBlock) {
				return got, err
			}
		}
		// 3. Borrow, while every block the host owns is full (the guard).
		if !env.cfg.strict {
			guard := Op{Type: OpCheckPrefix, Key: hostFamilyPrefix(host, f.v6), Revision: rev}
			r, err := a.borrow(ctx, host, f.v6, pools, need, attr, env.reserved, guard)
			got, need = append(got, r...), need-len(r)
			if errors.Is(err, errAgain) {
				continue
			}
			if err != nil {
				return got, err
			}
			if need == 0 {
				return got, nil
			}
		}
		return got, exhausted(env, f, pools, need, len(owned))
	}
}

// fromOwnBlocks allocates up to need addresses from the host's blocks, in
// CIDR order: it reads them all (and the handle) at once and writes to those
// with room.
func (a *Allocator) fromOwnBlocks(ctx context.Context, owned []netip.Prefix, need int, attr Attribute, host string,
	skip reserved) ([]allocated, error) {
	kvs, err := a.store.Get(ctx, append(blockKeys(owned), HandleKey(*attr.HandleID))...)
	if err != nil {
		return nil, err
	}
	var got []allocated
	hkv := kvs[len(owned)]
	for i, cidr := range owned {
		if a.isFull(cidr, kvs[i], skip) {
			continue
		}
		r, err := a.allocFromBlock(ctx, blockReq{cidr: cidr, n: need - len(got), attr: attr, host: host, skip: skip,
			pre: &[2]KV{kvs[i], hkv}})
		got = append(got, r...)
		if err != nil || len(got) == need {
			return got, err
		}
		if len(r) > 0 {
			hkv = KV{Revision: -1} // the handle changed: read it again
		}
	}
	return got, nil
}

// exhausted explains why a host got no (more) addresses.
func exhausted(env *env, f *poolFilter, pools []*pool, need, owned int) error {
	why := ""
	switch {
	case !env.cfg.autoAllocate:
		why = " (autoAllocateBlocks is off)"
	case owned >= env.cfg.maxBlocks:
		why = fmt.Sprintf(" (host owns %d blocks, maxBlocksPerHost %d)", owned, env.cfg.maxBlocks)
	}
	if env.cfg.strict {
		why += " (strictAffinity: no borrowing)"
	}
	return fmt.Errorf("host %q needs %d more IPv%d address(es) from pools %s%s: %w",
		f.node, need, famNum(f.v6), poolNames(pools), why, ErrNoAddresses)
}

func famNum(v6 bool) int {
	if v6 {
		return 6
	}
	return 4
}

func poolNames(ps []*pool) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.name
	}
	return "[" + strings.Join(s, ", ") + "]"
}

// isFull reports whether the stored block kv has no free address, using the
// cache of blocks already seen full.
func (a *Allocator) isFull(cidr netip.Prefix, kv KV, skip reserved) bool {
	if kv.Revision == 0 {
		return false
	}
	if rev, ok := a.full.Load(cidr); ok && rev.(int64) == kv.Revision {
		return true
	}
	b, err := decodeBlock(cidr, kv.Value)
	if err != nil || b.free(skip) > 0 {
		return false
	}
	a.full.Store(cidr, kv.Revision)
	return true
}

// errAgain tells a caller to start its attempt again from a fresh read.
var errAgain = errors.New("state changed; try again")

// pause waits before another attempt after err: a short random wait after a
// conflict, an exponential back-off while the store is unavailable. It
// returns err (or the context's error) when the call should give up.
func (a *Allocator) pause(ctx context.Context, attempt int, err error) error {
	var d time.Duration
	switch {
	case errors.Is(err, datastore.ErrConflict) || errors.Is(err, errAgain):
		a.stats.conflicts.Add(1)
		if attempt < 2 {
			return nil
		}
		d = time.Duration(rand.Int64N(int64(min(attempt, 20)) * int64(time.Millisecond)))
	case errors.Is(err, datastore.ErrUnavailable):
		a.stats.unavailable.Add(1)
		d = min(25*time.Millisecond<<min(attempt, 6), time.Second)
		d = d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
	default:
		return err
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		if errors.Is(err, datastore.ErrUnavailable) {
			return err
		}
		return fmt.Errorf("%w (while retrying after: %v)", ctx.Err(), err)
	case <-t.C:
		return nil
	}
}

// ownBlocks lists the host's confirmed affinities inside pools, in CIDR
// order, and the store revision of the read.
func (a *Allocator) ownBlocks(ctx context.Context, host string, v6 bool, pools []*pool) ([]netip.Prefix, int64, error) {
	kvs, rev, err := a.store.List(ctx, hostFamilyPrefix(host, v6))
	if err != nil {
		return nil, 0, err
	}
	var out []netip.Prefix
	for _, kv := range kvs {
		h, cidr, ok := parseAffinityKey(kv.Key)
		if !ok || h != host {
			continue
		}
		aff, err := decodeAffinity(kv.Key, kv.Value)
		if err != nil || aff.Deleted || aff.State != StateConfirmed || !inPools(pools, cidr) {
			continue
		}
		out = append(out, cidr)
	}
	sortPrefixes(out)
	return out, rev, nil
}

func inPools(pools []*pool, cidr netip.Prefix) bool {
	for _, p := range pools {
		if contains(p.cidr, cidr) {
			return true
		}
	}
	return false
}

// env is what one call reads before it allocates.
type env struct {
	pools    []*pool
	reserved reserved
	cfg      effectiveConfig
}

type effectiveConfig struct {
	strict       bool
	autoAllocate bool
	maxBlocks    int
}

func (a *Allocator) loadEnv(ctx context.Context) (*env, error) {
	e := &env{}
	for attempt := 0; ; attempt++ {
		err := func() error {
			// Three independent reads: make them at once.
			var ps []v3.IPPool
			var rs []v3.IPReservation
			var spec v3.IPAMConfigurationSpec
			var errs [3]error
			var wg sync.WaitGroup
			wg.Go(func() { ps, errs[0] = a.res.IPPools(ctx) })
			wg.Go(func() { rs, errs[1] = a.res.IPReservations(ctx) })
			spec, errs[2] = a.Config(ctx)
			wg.Wait()
			for _, err := range errs {
				if err != nil {
					return err
				}
			}
			e.pools, e.reserved = parsePools(a.log, ps), parseReservations(a.log, rs)
			e.cfg = effectiveConfig{strict: spec.StrictAffinity, autoAllocate: spec.AutoAllocateBlocks == nil || *spec.AutoAllocateBlocks,
				maxBlocks: int(spec.MaxBlocksPerHost)}
			if e.cfg.maxBlocks <= 0 {
				e.cfg.maxBlocks = v3.DefaultMaxBlocksPerHost
			}
			return nil
		}()
		if err == nil {
			return e, nil
		}
		if attempt+1 >= a.maxRetries || !errors.Is(err, datastore.ErrUnavailable) {
			return nil, err
		}
		if perr := a.pause(ctx, attempt, err); perr != nil {
			return nil, perr
		}
	}
}

// Stats are counters of what an Allocator did, for tests and metrics.
type Stats struct {
	// Txns is how many transactions were attempted.
	Txns uint64
	// Conflicts is how many attempts were repeated after a conflict.
	Conflicts uint64
	// Unavailable is how many attempts waited for the store to come back.
	Unavailable uint64
	// Ambiguous is how many writes failed without a clear answer, and
	// AmbiguousApplied how many of those had in fact taken effect.
	Ambiguous, AmbiguousApplied uint64
	// BlocksClaimed and AddressesBorrowed count claims and borrows.
	BlocksClaimed, AddressesBorrowed uint64
}

type stats struct {
	txns, conflicts, unavailable, ambiguous, ambiguousApplied, claimed, borrowed atomic.Uint64
}

// Stats returns the counters so far.
func (a *Allocator) Stats() Stats {
	s := &a.stats
	return Stats{Txns: s.txns.Load(), Conflicts: s.conflicts.Load(), Unavailable: s.unavailable.Load(),
		Ambiguous: s.ambiguous.Load(), AmbiguousApplied: s.ambiguousApplied.Load(),
		BlocksClaimed: s.claimed.Load(), AddressesBorrowed: s.borrowed.Load()}
}

// txn runs a transaction and counts it.
func (a *Allocator) txn(ctx context.Context, ops ...Op) (int64, error) {
	a.stats.txns.Add(1)
	rev, err := a.store.Txn(ctx, ops...)
	if err != nil && !errors.Is(err, datastore.ErrConflict) {
		a.stats.ambiguous.Add(1)
	}
	return rev, err
}
