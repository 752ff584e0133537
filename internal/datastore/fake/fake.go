// Package fake is an in-memory datastore.Backend for unit tests of other
// packages. It keeps the same contract as the etcd backend (checked by the
// shared conformance suite): one revision counter for all writes, values
// stored as JSON, optimistic concurrency, list revisions, watches that resume
// from any revision still in the history, and compaction.
package fake

import (
	"context"
	"fmt"
	"strconv"
	"sync"

	v3 "github.com/calico-go/calico/api/v3"
	"github.com/calico-go/calico/internal/datastore"
	"github.com/calico-go/calico/internal/datastore/internal/meta"
)

// ErrorFunc decides whether an operation fails; see Backend.InjectError.
type ErrorFunc func(op string, k datastore.Key) error

// Backend is the in-memory datastore. The zero value is not usable; call New.
type Backend struct {
	mu        sync.Mutex
	rev       int64            // revision of the last write
	compacted int64            // history before this revision is gone
	items     map[string]*item // by path
	history   []change         // writes after compacted, in revision order
	watchers  map[*watcher]struct{}
	inject    ErrorFunc
	closed    bool
}

type item struct {
	kind    v3.KindInfo
	key     datastore.Key
	value   []byte
	created int64
	mod     int64
}

// change is one write in the history.
type change struct {
	rev  int64
	kind string
	key  datastore.Key
	old  *item // nil for a create
	new  *item // nil for a delete
}

var _ datastore.Backend = (*Backend)(nil)

// New returns an empty datastore at revision 1.
func New() *Backend {
	return &Backend{rev: 1, items: map[string]*item{}, watchers: map[*watcher]struct{}{}}
}

// InjectError makes every later operation ask fn first: a non-nil result is
// returned as the operation's error. op is one of "create", "update",
// "delete", "get", "list", "watch". Pass nil to stop.
func (b *Backend) InjectError(fn ErrorFunc) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.inject = fn
}

// Revision returns the revision of the last write.
func (b *Backend) Revision() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return revString(b.rev)
}

// Compact drops the history before revision, as etcd does: a watch from
// resourceVersion R replays the writes after R, so it fails with
// datastore.ErrCompacted when R+1 < revision.
func (b *Backend) Compact(_ context.Context, revision string) error {
	rev, err := strconv.ParseInt(revision, 10, 64)
	if err != nil {
		return fmt.Errorf("compact: bad revision %q: %w", revision, err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if rev > b.rev {
		return fmt.Errorf("compact: revision %d is in the future (current %d)", rev, b.rev)
	}
	if rev <= b.compacted { // already compacted
		return nil
	}
	i := 0
	for i < len(b.history) && b.history[i].rev < rev {
		i++
	}
	b.history = append([]change(nil), b.history[i:]...)
	b.compacted = rev
	return nil
}

// Close stops every watch. Later calls fail with ErrUnavailable.
func (b *Backend) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	for w := range b.watchers {
		w.stopLocked()
	}
	return nil
}

// check runs the closed test and the injected error; b.mu held.
func (b *Backend) check(op string, k datastore.Key) error {
	if b.closed {
		return &datastore.Error{Op: op, Key: k, Err: datastore.ErrUnavailable, Detail: "fake datastore closed"}
	}
	if b.inject != nil {
		if err := b.inject(op, k); err != nil {
			return err
		}
	}
	return nil
}

func path(ki v3.KindInfo, k datastore.Key) string {
	return ki.Plural + "/" + k.Namespace + "/" + k.Name
}

func revString(rev int64) string { return strconv.FormatInt(rev, 10) }

// Create stores r if its key is free.
func (b *Backend) Create(ctx context.Context, r v3.Resource) (v3.Resource, error) {
	k, ki, err := meta.KeyOf(r)
	if err != nil {
		return nil, &datastore.Error{Op: "create", Key: k, Err: err}
	}
	obj := meta.Copy(r, ki)
	meta.StampCreate(obj)
	val, err := meta.Encode(obj)
	if err != nil {
		return nil, &datastore.Error{Op: "create", Key: k, Err: err}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.ready(ctx, "create", k); err != nil {
		return nil, err
	}
	p := path(ki, k)
	if _, ok := b.items[p]; ok {
		return nil, &datastore.Error{Op: "create", Key: k, Err: datastore.ErrAlreadyExists}
	}
	it := b.writeLocked(p, ki, k, val, nil)
	return decode(it, "create")
}

// Update replaces a stored resource, keeping its uid and creationTimestamp.
func (b *Backend) Update(ctx context.Context, r v3.Resource) (v3.Resource, error) {
	k, ki, err := meta.KeyOf(r)
	if err != nil {
		return nil, &datastore.Error{Op: "update", Key: k, Err: err}
	}
	obj := meta.Copy(r, ki)
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.ready(ctx, "update", k); err != nil {
		return nil, err
	}
	p := path(ki, k)
	cur, ok := b.items[p]
	if !ok {
		return nil, &datastore.Error{Op: "update", Key: k, Err: datastore.ErrNotFound}
	}
	if rv := obj.GetResourceVersion(); rv != "" && rv != revString(cur.mod) {
		return nil, &datastore.Error{Op: "update", Key: k, Err: datastore.ErrConflict,
			Detail: fmt.Sprintf("resourceVersion %s, stored %d", rv, cur.mod)}
	}
	if stored, err := meta.Decode(ki, k, cur.value, ""); err == nil {
		meta.KeepImmutable(obj, stored)
	}
	val, err := meta.Encode(obj)
	if err != nil {
		return nil, &datastore.Error{Op: "update", Key: k, Err: err}
	}
	it := b.writeLocked(p, ki, k, val, cur)
	return decode(it, "update")
}

// Delete removes a resource; the result carries the deletion revision.
func (b *Backend) Delete(ctx context.Context, k datastore.Key, resourceVersion string) (v3.Resource, error) {
	ki, err := meta.Kind(k, true)
	if err != nil {
		return nil, &datastore.Error{Op: "delete", Key: k, Err: err}
	}
	k = meta.Normalize(k, ki)
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.ready(ctx, "delete", k); err != nil {
		return nil, err
	}
	p := path(ki, k)
	cur, ok := b.items[p]
	if !ok {
		return nil, &datastore.Error{Op: "delete", Key: k, Err: datastore.ErrNotFound}
	}
	if resourceVersion != "" && resourceVersion != revString(cur.mod) {
		return nil, &datastore.Error{Op: "delete", Key: k, Err: datastore.ErrConflict,
			Detail: "resourceVersion " + resourceVersion}
	}
	b.rev++
	delete(b.items, p)
	b.recordLocked(change{rev: b.rev, kind: ki.Kind, key: k, old: cur})
	return meta.DecodeOrError("delete", ki, k, cur.value, revString(b.rev))
}

// Get reads one resource.
func (b *Backend) Get(ctx context.Context, k datastore.Key) (v3.Resource, error) {
	ki, err := meta.Kind(k, true)
	if err != nil {
		return nil, &datastore.Error{Op: "get", Key: k, Err: err}
	}
	k = meta.Normalize(k, ki)
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.ready(ctx, "get", k); err != nil {
		return nil, err
	}
	cur, ok := b.items[path(ki, k)]
	if !ok {
		return nil, &datastore.Error{Op: "get", Key: k, Err: datastore.ErrNotFound}
	}
	return decode(cur, "get")
}

// List returns a kind (narrowed to k.Namespace), sorted, with the current
// revision.
func (b *Backend) List(ctx context.Context, k datastore.Key) (datastore.ListResult, error) {
	ki, err := meta.Kind(k, false)
	if err != nil {
		return datastore.ListResult{}, &datastore.Error{Op: "list", Key: k, Err: err}
	}
	k = meta.Normalize(k, ki)
	k.Name = ""
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.ready(ctx, "list", k); err != nil {
		return datastore.ListResult{}, err
	}
	items := []v3.Resource{}
	for _, it := range b.items {
		if !matches(it.kind.Kind, it.key, k) {
			continue
		}
		r, err := decode(it, "list")
		if err != nil {
			return datastore.ListResult{}, err
		}
		items = append(items, r)
	}
	meta.Sort(items)
	return datastore.ListResult{Items: items, Revision: revString(b.rev)}, nil
}

// ready checks the context, closure and injected errors; b.mu held.
func (b *Backend) ready(ctx context.Context, op string, k datastore.Key) error {
	if err := ctx.Err(); err != nil {
		return &datastore.Error{Op: op, Key: k, Err: context.Cause(ctx)}
	}
	return b.check(op, k)
}

// writeLocked stores a create (cur nil) or update at a new revision.
func (b *Backend) writeLocked(p string, ki v3.KindInfo, k datastore.Key, val []byte, cur *item) *item {
	b.rev++
	it := &item{kind: ki, key: k, value: val, created: b.rev, mod: b.rev}
	if cur != nil {
		it.created = cur.created
	}
	b.items[p] = it
	b.recordLocked(change{rev: b.rev, kind: ki.Kind, key: k, old: cur, new: it})
	return it
}

func (b *Backend) recordLocked(c change) {
	b.history = append(b.history, c)
	for w := range b.watchers {
		if matches(c.kind, c.key, w.filter) {
			w.pushLocked(c)
		}
	}
}

// matches says whether a resource of kind at key falls under a list/watch
// filter.
func matches(kind string, key, filter datastore.Key) bool {
	return kind == filter.Kind && (filter.Namespace == "" || filter.Namespace == key.Namespace)
}

func decode(it *item, op string) (v3.Resource, error) {
	return meta.DecodeOrError(op, it.kind, it.key, it.value, revString(it.mod))
}
