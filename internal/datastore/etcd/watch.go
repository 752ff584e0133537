package etcd

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	v3 "github.com/calico-go/calico/api/v3"
	"github.com/calico-go/calico/internal/datastore"
	"github.com/calico-go/calico/internal/datastore/internal/meta"
)

// watchBuffer is the capacity of a watcher's result channel.
const watchBuffer = 64

// Watch streams the changes of k.Kind (narrowed by k.Namespace) made after
// revision. An empty revision means "after the current revision", which is
// read first so that nothing written after Watch returns is missed.
func (b *Backend) Watch(ctx context.Context, k datastore.Key, revision string) (datastore.Watcher, error) {
	ki, err := meta.Kind(k, false)
	if err != nil {
		return nil, &datastore.Error{Op: "watch", Key: k, Err: err}
	}
	k = meta.Normalize(k, ki)
	k.Name = ""
	var rev int64
	if revision == "" {
		rctx, cancel := b.reqCtx(ctx)
		resp, err := b.client.Get(rctx, Prefix, clientv3.WithKeysOnly(), clientv3.WithLimit(1))
		cancel()
		if err != nil {
			return nil, b.fail(ctx, "watch", k, err)
		}
		rev = resp.Header.Revision
	} else {
		rev, err = strconv.ParseInt(revision, 10, 64)
		if err != nil || rev < 0 {
			return nil, &datastore.Error{Op: "watch", Key: k, Err: fmt.Errorf("bad revision %q", revision)}
		}
	}

	wctx, cancel := context.WithCancel(ctx)
	w := &watcher{
		b:      b,
		ki:     ki,
		key:    k,
		cancel: cancel,
		out:    make(chan datastore.Event, watchBuffer),
		done:   make(chan struct{}),
	}
	wch := b.client.Watch(clientv3.WithRequireLeader(wctx), kindPrefix(ki, k.Namespace),
		clientv3.WithPrefix(), clientv3.WithRev(rev+1), clientv3.WithPrevKV())
	go w.run(wctx, wch)
	return w, nil
}

type watcher struct {
	b      *Backend
	ki     v3.KindInfo
	key    datastore.Key
	cancel context.CancelFunc
	out    chan datastore.Event
	done   chan struct{}
}

func (w *watcher) ResultChan() <-chan datastore.Event { return w.out }

// Stop ends the watch and waits until its goroutine has closed the channel.
func (w *watcher) Stop() {
	w.cancel()
	<-w.done
}

func (w *watcher) run(ctx context.Context, wch clientv3.WatchChan) {
	defer close(w.done)
	defer close(w.out)
	defer w.cancel()
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.b.ctx.Done():
			return
		case resp, ok := <-wch:
			if !ok {
				if ctx.Err() == nil && w.b.ctx.Err() == nil {
					w.send(ctx, datastore.Event{Type: datastore.WatchError, Err: w.b.fail(ctx, "watch", w.key,
						fmt.Errorf("%w: etcd watch channel closed", rpctypes.ErrStopped))})
				}
				return
			}
			if err := resp.Err(); err != nil {
				if ctx.Err() != nil || w.b.ctx.Err() != nil {
					return // stopped: no error event
				}
				w.send(ctx, datastore.Event{Type: datastore.WatchError, Err: w.watchErr(ctx, resp, err)})
				return
			}
			for _, ev := range resp.Events {
				e, ok := w.convert(ev)
				if !ok {
					continue
				}
				if !w.send(ctx, e) {
					return
				}
			}
		}
	}
}

func (w *watcher) watchErr(ctx context.Context, resp clientv3.WatchResponse, err error) error {
	if resp.CompactRevision != 0 || errors.Is(err, rpctypes.ErrCompacted) {
		return &datastore.Error{Op: "watch", Key: w.key, Err: fmt.Errorf("%w: %w", datastore.ErrCompacted, err),
			Detail: fmt.Sprintf("oldest revision still held is %d; list again", resp.CompactRevision)}
	}
	return w.b.fail(ctx, "watch", w.key, err)
}

func (w *watcher) send(ctx context.Context, e datastore.Event) bool {
	select {
	case w.out <- e:
		return true
	case <-ctx.Done():
		return false
	case <-w.b.ctx.Done():
		return false
	}
}

// convert turns one etcd event into a datastore event; ok is false for keys
// or values that do not decode (logged and skipped, as List does).
func (w *watcher) convert(ev *clientv3.Event) (datastore.Event, bool) {
	key := string(ev.Kv.Key)
	k, ok := parsePath(w.ki, key)
	if !ok {
		w.b.log.Warn("watch: skipping key outside the resource layout", "key", key)
		return datastore.Event{}, false
	}
	var prev v3.Resource
	if ev.PrevKv != nil {
		rev := ev.PrevKv.ModRevision
		if ev.Type == mvccpb.DELETE {
			rev = ev.Kv.ModRevision
		}
		r, err := decodeValue(w.ki, k, ev.PrevKv.Value, revString(rev))
		if err != nil {
			w.b.log.Warn("watch: previous value does not decode", "key", key, "error", err)
		} else {
			prev = r
		}
	}
	switch ev.Type {
	case mvccpb.DELETE:
		if prev == nil { // no previous value: report the key alone
			prev = w.ki.New()
			meta.SetTypeMeta(prev, w.ki)
			prev.SetName(k.Name)
			prev.SetNamespace(k.Namespace)
			prev.SetResourceVersion(revString(ev.Kv.ModRevision))
		}
		return datastore.Event{Type: datastore.Deleted, Old: prev}, true
	default:
		r, err := decodeValue(w.ki, k, ev.Kv.Value, revString(ev.Kv.ModRevision))
		if err != nil {
			w.b.log.Warn("watch: skipping value that does not decode", "key", key, "error", err)
			return datastore.Event{}, false
		}
		if ev.IsCreate() {
			return datastore.Event{Type: datastore.Added, New: r}, true
		}
		return datastore.Event{Type: datastore.Modified, Old: prev, New: r}, true
	}
}
