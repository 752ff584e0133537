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

// Watch streams the writes to k.Kind (narrowed by k.Namespace) after
// revision, replaying the history first. Events are queued without bound, so
// a slow reader never blocks writers.
func (b *Backend) Watch(ctx context.Context, k datastore.Key, revision string) (datastore.Watcher, error) {
	ki, err := meta.Kind(k, false)
	if err != nil {
		return nil, &datastore.Error{Op: "watch", Key: k, Err: err}
	}
	k = meta.Normalize(k, ki)
	k.Name = ""
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.ready(ctx, "watch", k); err != nil {
		return nil, err
	}
	from := b.rev
	if revision != "" {
		from, err = strconv.ParseInt(revision, 10, 64)
		if err != nil || from < 0 {
			return nil, &datastore.Error{Op: "watch", Key: k, Err: fmt.Errorf("bad revision %q", revision)}
		}
	}
	wctx, cancel := context.WithCancel(ctx)
	w := &watcher{
		b:      b,
		ki:     ki,
		filter: k,
		from:   from,
		cancel: cancel,
		signal: make(chan struct{}, 1),
		out:    make(chan datastore.Event),
		done:   make(chan struct{}),
	}
	if from+1 < b.compacted {
		w.queue = append(w.queue, datastore.Event{Type: datastore.WatchError, Err: &datastore.Error{
			Op: "watch", Key: k, Err: datastore.ErrCompacted,
			Detail: fmt.Sprintf("oldest revision still held is %d; list again", b.compacted)}})
	} else {
		for _, c := range b.history {
			if c.rev > from && matches(c.kind, c.key, k) {
				w.pushLocked(c)
			}
		}
		b.watchers[w] = struct{}{}
	}
	go w.run(wctx)
	return w, nil
}

type watcher struct {
	b      *Backend
	ki     v3.KindInfo
	filter datastore.Key
	from   int64
	cancel context.CancelFunc

	qmu    sync.Mutex
	queue  []datastore.Event
	signal chan struct{} // a token when queue grew

	out  chan datastore.Event
	done chan struct{}
}

func (w *watcher) ResultChan() <-chan datastore.Event { return w.out }

// Stop ends the watch and waits until the channel is closed.
func (w *watcher) Stop() {
	w.cancel()
	<-w.done
}

// stopLocked ends the watch without waiting; b.mu held.
func (w *watcher) stopLocked() { w.cancel() }

// pushLocked queues the event for one change; b.mu held.
func (w *watcher) pushLocked(c change) {
	if c.rev <= w.from {
		return
	}
	var e datastore.Event
	var err error
	switch {
	case c.new == nil:
		e.Type = datastore.Deleted
		e.Old, err = meta.Decode(w.ki, c.key, c.old.value, revString(c.rev))
	case c.old == nil:
		e.Type = datastore.Added
		e.New, err = meta.Decode(w.ki, c.key, c.new.value, revString(c.rev))
	default:
		e.Type = datastore.Modified
		e.Old, err = meta.Decode(w.ki, c.key, c.old.value, revString(c.old.mod))
		if err == nil {
			e.New, err = meta.Decode(w.ki, c.key, c.new.value, revString(c.rev))
		}
	}
	if err != nil { // values were encoded by us: cannot happen
		return
	}
	w.qmu.Lock()
	w.queue = append(w.queue, e)
	w.qmu.Unlock()
	select {
	case w.signal <- struct{}{}:
	default:
	}
}

func (w *watcher) run(ctx context.Context) {
	defer close(w.done)
	defer close(w.out)
	defer func() {
		w.b.mu.Lock()
		delete(w.b.watchers, w)
		w.b.mu.Unlock()
	}()
	for {
		w.qmu.Lock()
		if len(w.queue) > 0 {
			e := w.queue[0]
			w.queue[0] = datastore.Event{}
			w.queue = w.queue[1:]
			w.qmu.Unlock()
			select {
			case w.out <- e:
				if e.Type == datastore.WatchError {
					return
				}
			case <-ctx.Done():
				return
			}
			continue
		}
		w.qmu.Unlock()
		select {
		case <-w.signal:
		case <-ctx.Done():
			return
		}
	}
}
