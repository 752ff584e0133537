// Package syncer turns a datastore into an ordered stream of updates: a
// snapshot of every resource of the kinds asked for, then the changes as
// they happen, with a sync status alongside (WaitForDatastore, then
// ResyncInProgress, then InSync once every kind has been listed).
//
// Each kind is listed and then watched from the list's revision. When a
// watch breaks, the syncer watches again from the last revision it saw, so
// nothing is missed or repeated. When that revision has been compacted away
// (datastore.ErrCompacted), it lists the kind again and emits only the
// differences from what it had already emitted: updates for resources that
// are new or changed, deletions for those that went away. Consumers
// therefore always see a consistent sequence, as if they had watched
// without interruption. Datastore errors are retried with exponential
// backoff; the status never goes back from InSync.
//
// Callbacks run on the goroutine that called Run, one at a time. Updates of
// one kind arrive in datastore order; updates of different kinds may
// interleave.
//
// Besides the projectcalico.org/v3 kinds, the pseudo-kind affinity.Kind
// follows Calico's IPAM block affinities (/calico/ipam/v2/host/...) in the
// same way, straight from etcd, and emits an affinity.Block for each
// confirmed one, so that calico-node can route every block to its node.
// With a backend that holds no Calico IPAM it is listed empty at once.
package syncer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	v3 "github.com/calico-go/calico/api/v3"
	"github.com/calico-go/calico/internal/datastore"
	"github.com/calico-go/calico/internal/syncer/affinity"
)

// Status is the sync state reported to OnStatus.
type Status int

// Sync states, in the order they are reported.
const (
	// WaitForDatastore: no kind has been listed yet.
	WaitForDatastore Status = iota + 1
	// ResyncInProgress: some kinds have been listed, not all.
	ResyncInProgress
	// InSync: every kind has been listed and its snapshot emitted.
	InSync
)

func (s Status) String() string {
	switch s {
	case WaitForDatastore:
		return "wait-for-datastore"
	case ResyncInProgress:
		return "resync-in-progress"
	case InSync:
		return "in-sync"
	}
	return fmt.Sprintf("Status(%d)", int(s))
}

// Update is one resource that was created, changed or deleted.
type Update struct {
	Key datastore.Key
	// Value is the new value, nil when the resource was deleted.
	Value v3.Resource
	// Revision is the datastore revision of the change.
	Revision string
}

// FelixKinds are the kinds calico-node's calculation graph needs,
// including the IPAM block affinities (affinity.Kind).
var FelixKinds = []string{
	v3.KindClusterInformation, v3.KindFelixConfiguration, v3.KindNode, v3.KindIPPool,
	v3.KindTier, v3.KindProfile,
	v3.KindGlobalNetworkPolicy, v3.KindNetworkPolicy,
	v3.KindStagedGlobalNetworkPolicy, v3.KindStagedNetworkPolicy, v3.KindStagedKubernetesNetworkPolicy,
	v3.KindGlobalNetworkSet, v3.KindNetworkSet,
	v3.KindHostEndpoint, v3.KindWorkloadEndpoint,
	affinity.Kind,
}

// Options configure a Syncer.
type Options struct {
	Backend datastore.Backend
	// Kinds to sync; nil means FelixKinds.
	Kinds []string
	// OnUpdates receives each batch of updates; the slice is the callee's.
	OnUpdates func([]Update)
	// OnStatus receives every status change.
	OnStatus func(Status)
	// Logger; nil discards.
	Logger *slog.Logger
	// MinBackoff and MaxBackoff bound the retry delay after a datastore
	// error (defaults 100ms and 30s).
	MinBackoff, MaxBackoff time.Duration
	// MaxBatch caps the number of updates per OnUpdates call (default 1000).
	MaxBatch int
}

// Syncer lists and watches the datastore. Create it with New and start it
// with Run.
type Syncer struct {
	opts Options
	log  *slog.Logger
}

// New returns a Syncer; it does nothing until Run.
func New(opts Options) *Syncer {
	if opts.Kinds == nil {
		opts.Kinds = FelixKinds
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = 100 * time.Millisecond
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 30 * time.Second
	}
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 1000
	}
	if opts.OnUpdates == nil {
		opts.OnUpdates = func([]Update) {}
	}
	if opts.OnStatus == nil {
		opts.OnStatus = func(Status) {}
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Syncer{opts: opts, log: log}
}

// kindBatch is what a kind's goroutine hands to Run's loop.
type kindBatch struct {
	kind    string
	updates []Update
	listed  bool // the batch completes a (re-)list of the kind
}

// Run syncs until ctx is done, then stops every watch and returns nil.
// It returns an error only for a kind the backend does not know.
func (s *Syncer) Run(ctx context.Context) error {
	for _, k := range s.opts.Kinds {
		if _, ok := v3.LookupKind(k); !ok && k != affinity.Kind {
			return fmt.Errorf("syncer: unknown kind %q", k)
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch := make(chan kindBatch, 2*len(s.opts.Kinds))
	var wg sync.WaitGroup
	defer wg.Wait()
	for _, kind := range s.opts.Kinds {
		if kind == affinity.Kind {
			wg.Go(func() { s.runAffinities(ctx, ch) })
			continue
		}
		wg.Go(func() { s.runKind(ctx, kind, ch) })
	}

	status := WaitForDatastore
	s.opts.OnStatus(status)
	listed := map[string]bool{}
	for {
		var b kindBatch
		select {
		case <-ctx.Done():
			return nil
		case b = <-ch:
		}
		updates, newly := s.drain(b, ch, listed)
		if status == WaitForDatastore && len(listed) > 0 {
			status = ResyncInProgress
			s.opts.OnStatus(status)
		}
		if len(updates) > 0 {
			s.opts.OnUpdates(updates)
		}
		if status != InSync && newly && len(listed) == len(s.opts.Kinds) {
			status = InSync
			s.opts.OnStatus(status)
		}
	}
}

// drain merges b with whatever else is already queued, up to MaxBatch
// updates, and records which kinds have completed their first list.
func (s *Syncer) drain(b kindBatch, ch <-chan kindBatch, listed map[string]bool) ([]Update, bool) {
	updates := b.updates
	newly := false
	for {
		if b.listed && !listed[b.kind] {
			listed[b.kind] = true
			newly = true
		}
		if len(updates) >= s.opts.MaxBatch {
			return updates, newly
		}
		select {
		case b = <-ch:
			updates = append(updates, b.updates...)
		default:
			return updates, newly
		}
	}
}

// errRelist means the watch could not resume: list again.
var errRelist = errors.New("relist")

// runKind lists and watches one kind until ctx is done.
func (s *Syncer) runKind(ctx context.Context, kind string, out chan<- kindBatch) {
	k := &kindSync{s: s, kind: kind, out: out, seen: map[datastore.Key]string{}}
	bo := backoff{min: s.opts.MinBackoff, max: s.opts.MaxBackoff}
	needList := true
	for ctx.Err() == nil {
		if needList {
			if err := k.list(ctx); err != nil {
				s.log.Warn("list failed, will retry", "kind", kind, "error", err, "retry_in", bo.next())
				bo.wait(ctx)
				continue
			}
			needList = false
			bo.reset()
		}
		err := k.watch(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case errors.Is(err, errRelist):
			s.log.Info("watch revision compacted, listing again", "kind", kind, "revision", k.rev)
			needList = true
		case err != nil:
			s.log.Warn("watch failed, will resume", "kind", kind, "revision", k.rev, "error", err, "retry_in", bo.next())
			bo.wait(ctx)
		default:
			bo.reset()
		}
	}
}

// kindSync is the state of one kind's list+watch loop.
type kindSync struct {
	s    *Syncer
	kind string
	out  chan<- kindBatch
	rev  string                   // last revision seen
	seen map[datastore.Key]string // resourceVersion of everything emitted
}

func (k *kindSync) send(ctx context.Context, b kindBatch) bool {
	select {
	case k.out <- b:
		return true
	case <-ctx.Done():
		return false
	}
}

// list lists the kind and emits the differences from what was emitted
// before (everything, the first time).
func (k *kindSync) list(ctx context.Context) error {
	res, err := k.s.opts.Backend.List(ctx, datastore.Key{Kind: k.kind})
	if err != nil {
		return err
	}
	var updates []Update
	present := make(map[datastore.Key]struct{}, len(res.Items))
	for _, r := range res.Items {
		key := datastore.KeyOf(r)
		present[key] = struct{}{}
		rv := r.GetResourceVersion()
		if old, ok := k.seen[key]; ok && old == rv {
			continue
		}
		k.seen[key] = rv
		updates = append(updates, Update{Key: key, Value: r, Revision: rv})
	}
	for key := range k.seen {
		if _, ok := present[key]; !ok {
			delete(k.seen, key)
			updates = append(updates, Update{Key: key, Revision: res.Revision})
		}
	}
	k.rev = res.Revision
	k.send(ctx, kindBatch{kind: k.kind, updates: updates, listed: true})
	return nil
}

// watch watches from k.rev until the watch ends. It returns errRelist when
// the revision has been compacted.
func (k *kindSync) watch(ctx context.Context) error {
	w, err := k.s.opts.Backend.Watch(ctx, datastore.Key{Kind: k.kind}, k.rev)
	if err != nil {
		if errors.Is(err, datastore.ErrCompacted) {
			return errRelist
		}
		return err
	}
	defer w.Stop()
	ch := w.ResultChan()
	for {
		var e datastore.Event
		var ok bool
		select {
		case e, ok = <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
		if !ok {
			return errors.New("watch channel closed")
		}
		updates, err := k.event(e)
		if err != nil {
			return err
		}
		// Take whatever else is ready, so that bursts become one batch.
	more:
		for len(updates) < k.s.opts.MaxBatch {
			select {
			case e, ok = <-ch:
				if !ok {
					break more
				}
				u, err := k.event(e)
				updates = append(updates, u...)
				if err != nil {
					k.send(ctx, kindBatch{kind: k.kind, updates: updates})
					return err
				}
			default:
				break more
			}
		}
		if len(updates) > 0 && !k.send(ctx, kindBatch{kind: k.kind, updates: updates}) {
			return ctx.Err()
		}
		if !ok {
			return errors.New("watch channel closed")
		}
	}
}

// event converts one watch event, updating seen and rev.
func (k *kindSync) event(e datastore.Event) ([]Update, error) {
	switch e.Type {
	case datastore.WatchError:
		if errors.Is(e.Err, datastore.ErrCompacted) {
			return nil, errRelist
		}
		if e.Err == nil {
			return nil, errors.New("watch error without a cause")
		}
		return nil, e.Err
	case datastore.Added, datastore.Modified:
		if e.New == nil {
			return nil, nil
		}
		key := datastore.KeyOf(e.New)
		rv := e.New.GetResourceVersion()
		k.rev = rv
		if k.seen[key] == rv {
			return nil, nil
		}
		k.seen[key] = rv
		return []Update{{Key: key, Value: e.New, Revision: rv}}, nil
	case datastore.Deleted:
		if e.Old == nil {
			return nil, nil
		}
		key := datastore.KeyOf(e.Old)
		rv := e.Old.GetResourceVersion()
		k.rev = rv
		if _, ok := k.seen[key]; !ok {
			return nil, nil
		}
		delete(k.seen, key)
		return []Update{{Key: key, Revision: rv}}, nil
	}
	return nil, nil
}
