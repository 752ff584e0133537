package syncer_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	v3 "github.com/calico-go/calico/api/v3"
	"github.com/calico-go/calico/internal/datastore"
	"github.com/calico-go/calico/internal/datastore/fake"
	"github.com/calico-go/calico/internal/syncer"
)

// consumer applies the syncer's stream to a model of the datastore and
// checks that the stream is consistent: no update repeats the value the
// model already has, no delete names something absent.
type consumer struct {
	mu       sync.Mutex
	state    map[datastore.Key]string // resourceVersion
	statuses []syncer.Status
	updates  []syncer.Update
	errs     []error
	changed  chan struct{}
}

func newConsumer() *consumer {
	return &consumer{state: map[datastore.Key]string{}, changed: make(chan struct{}, 1)}
}

func (c *consumer) onUpdates(us []syncer.Update) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, u := range us {
		c.updates = append(c.updates, u)
		old, had := c.state[u.Key]
		switch {
		case u.Value == nil && !had:
			c.errs = append(c.errs, fmt.Errorf("delete of absent %s", u.Key))
		case u.Value == nil:
			delete(c.state, u.Key)
		case had && old == u.Value.GetResourceVersion():
			c.errs = append(c.errs, fmt.Errorf("repeated update of %s at %s", u.Key, old))
		default:
			c.state[u.Key] = u.Value.GetResourceVersion()
		}
	}
	c.signal()
}

func (c *consumer) onStatus(s syncer.Status) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.statuses = append(c.statuses, s)
	c.signal()
}

func (c *consumer) signal() {
	select {
	case c.changed <- struct{}{}:
	default:
	}
}

// waitFor polls cond (under the lock) until it holds or 10s pass.
func (c *consumer) waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		c.mu.Lock()
		ok := cond()
		c.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-c.changed:
		case <-time.After(20 * time.Millisecond):
		case <-deadline:
			c.mu.Lock()
			defer c.mu.Unlock()
			t.Fatalf("timed out waiting for %s; statuses %v, state %v", what, c.statuses, c.state)
		}
	}
}

func (c *consumer) inSync() bool {
	return len(c.statuses) > 0 && c.statuses[len(c.statuses)-1] == syncer.InSync
}

// waitMatches waits until the model equals what the backend lists now.
func (c *consumer) waitMatches(t *testing.T, b datastore.Backend, kinds []string) {
	t.Helper()
	want := map[datastore.Key]string{}
	for _, k := range kinds {
		res, err := b.List(context.Background(), datastore.Key{Kind: k})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range res.Items {
			want[datastore.KeyOf(r)] = r.GetResourceVersion()
		}
	}
	c.waitFor(t, "the model to match the datastore", func() bool { return maps.Equal(c.state, want) })
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := errors.Join(c.errs...); err != nil {
		t.Fatal(err)
	}
}

func start(t *testing.T, b datastore.Backend, kinds []string) *consumer {
	t.Helper()
	c := newConsumer()
	s := syncer.New(syncer.Options{
		Backend: b, Kinds: kinds, OnUpdates: c.onUpdates, OnStatus: c.onStatus,
		MinBackoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond,
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return c
}

var testKinds = []string{v3.KindGlobalNetworkSet, v3.KindNetworkSet, v3.KindTier}

func gns(name, cidr string) *v3.GlobalNetworkSet {
	r := v3.NewGlobalNetworkSet()
	r.Name = name
	r.Spec.Nets = []string{cidr}
	return r
}

func mustCreate(t *testing.T, b datastore.Backend, r v3.Resource) v3.Resource {
	t.Helper()
	out, err := b.Create(context.Background(), r)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func mustUpdate(t *testing.T, b datastore.Backend, r v3.Resource) {
	t.Helper()
	r.SetResourceVersion("")
	if _, err := b.Update(context.Background(), r); err != nil {
		t.Fatal(err)
	}
}

func mustDelete(t *testing.T, b datastore.Backend, kind, name string) {
	t.Helper()
	if _, err := b.Delete(context.Background(), datastore.Key{Kind: kind, Name: name}, ""); err != nil {
		t.Fatal(err)
	}
}

func TestSnapshotDeltasInSync(t *testing.T) {
	b := fake.New()
	for i := range 5 {
		mustCreate(t, b, gns(fmt.Sprintf("s%d", i), fmt.Sprintf("10.%d.0.0/16", i)))
	}
	c := start(t, b, testKinds)
	c.waitFor(t, "InSync", c.inSync)
	c.mu.Lock()
	if want := []syncer.Status{syncer.WaitForDatastore, syncer.ResyncInProgress, syncer.InSync}; !slices.Equal(c.statuses, want) {
		t.Errorf("statuses %v, want %v", c.statuses, want)
	}
	if len(c.state) != 5 {
		t.Errorf("snapshot has %d resources, want 5", len(c.state))
	}
	c.mu.Unlock()

	mustCreate(t, b, gns("new", "10.9.0.0/16"))
	mustUpdate(t, b, gns("s1", "10.1.1.0/24"))
	mustDelete(t, b, v3.KindGlobalNetworkSet, "s2")
	c.waitMatches(t, b, testKinds)
}

// TestWatchErrorResumes breaks every watch while writes happen: the syncer
// resumes from its revision and delivers each change exactly once.
func TestWatchErrorResumes(t *testing.T) {
	b := newBreakable(fake.New())
	c := start(t, b, testKinds)
	c.waitFor(t, "InSync", c.inSync)
	for i := range 20 {
		mustCreate(t, b, gns(fmt.Sprintf("s%d", i), "10.0.0.0/8"))
		if i%3 == 0 {
			b.breakWatches()
		}
	}
	c.waitMatches(t, b, testKinds)
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.updates) != 20 {
		t.Fatalf("got %d updates for 20 writes", len(c.updates))
	}
}

// TestCompactedRelistsDifferences: while the watch is down, resources are
// created, changed, deleted, created-and-deleted, and history is compacted.
// The syncer lists again and emits exactly the differences.
func TestCompactedRelistsDifferences(t *testing.T) {
	fb := fake.New()
	b := newBreakable(fb)
	for _, n := range []string{"keep", "change", "gone"} {
		mustCreate(t, b, gns(n, "10.0.0.0/8"))
	}
	c := start(t, b, testKinds)
	c.waitFor(t, "InSync", c.inSync)
	c.mu.Lock()
	c.updates = nil
	c.mu.Unlock()

	fb.InjectError(func(op string, _ datastore.Key) error {
		if op == "watch" {
			return &datastore.Error{Op: op, Err: datastore.ErrUnavailable}
		}
		return nil
	})
	b.breakWatches()
	mustCreate(t, b, gns("added", "10.1.0.0/16"))
	mustUpdate(t, b, gns("change", "10.2.0.0/16"))
	mustDelete(t, b, v3.KindGlobalNetworkSet, "gone")
	mustCreate(t, b, gns("transient", "10.3.0.0/16"))
	mustDelete(t, b, v3.KindGlobalNetworkSet, "transient")
	if err := fb.Compact(context.Background(), fb.Revision()); err != nil {
		t.Fatal(err)
	}
	var lists sync.Map
	fb.InjectError(func(op string, k datastore.Key) error {
		if op == "list" {
			lists.Store(k.Kind, true)
		}
		return nil
	})
	c.waitMatches(t, b, testKinds)
	if _, ok := lists.Load(v3.KindGlobalNetworkSet); !ok {
		t.Fatal("the syncer did not list again after compaction")
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	var got []string
	for _, u := range c.updates {
		op := "set"
		if u.Value == nil {
			op = "del"
		}
		got = append(got, op+" "+u.Key.Name)
	}
	slices.Sort(got)
	if want := []string{"del gone", "set added", "set change"}; !slices.Equal(got, want) {
		t.Fatalf("after re-list got %v, want %v", got, want)
	}
}

// TestListErrorsBackOff: failing lists are retried; the status stays
// WaitForDatastore until a list succeeds.
func TestListErrorsBackOff(t *testing.T) {
	fb := fake.New()
	mustCreate(t, fb, gns("a", "10.0.0.0/8"))
	var mu sync.Mutex
	fails := 0
	fb.InjectError(func(op string, k datastore.Key) error {
		mu.Lock()
		defer mu.Unlock()
		if op == "list" && fails < 9 {
			fails++
			return &datastore.Error{Op: op, Key: k, Err: datastore.ErrUnavailable}
		}
		return nil
	})
	c := start(t, fb, testKinds)
	c.waitFor(t, "InSync", c.inSync)
	c.waitMatches(t, fb, testKinds)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.statuses[0] != syncer.WaitForDatastore {
		t.Fatalf("statuses %v", c.statuses)
	}
}

func TestUnknownKind(t *testing.T) {
	s := syncer.New(syncer.Options{Backend: fake.New(), Kinds: []string{"Nope"}})
	if err := s.Run(context.Background()); err == nil {
		t.Fatal("Run with an unknown kind succeeded")
	}
}

// breakable wraps a backend so that tests can break running watches, as a
// lost connection would.
type breakable struct {
	datastore.Backend
	mu       sync.Mutex
	watchers map[*breakableWatcher]struct{}
	gate     chan struct{} // when set, Watch waits for it to close
}

// blockWatches makes new Watch calls wait until gate is closed.
func (b *breakable) blockWatches(gate chan struct{}) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.gate = gate
}

func newBreakable(b datastore.Backend) *breakable {
	return &breakable{Backend: b, watchers: map[*breakableWatcher]struct{}{}}
}

type breakableWatcher struct {
	inner datastore.Watcher
	out   chan datastore.Event
	kill  chan struct{}
	stop  chan struct{}
	once  sync.Once
	done  chan struct{}
}

func (b *breakable) Watch(ctx context.Context, k datastore.Key, rev string) (datastore.Watcher, error) {
	b.mu.Lock()
	gate := b.gate
	b.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	inner, err := b.Backend.Watch(ctx, k, rev)
	if err != nil {
		return nil, err
	}
	w := &breakableWatcher{inner: inner, out: make(chan datastore.Event), kill: make(chan struct{}),
		stop: make(chan struct{}), done: make(chan struct{})}
	b.mu.Lock()
	b.watchers[w] = struct{}{}
	b.mu.Unlock()
	go func() {
		defer func() {
			b.mu.Lock()
			delete(b.watchers, w)
			b.mu.Unlock()
			inner.Stop()
			close(w.out)
			close(w.done)
		}()
		in := inner.ResultChan()
		for {
			select {
			case e, ok := <-in:
				if !ok {
					return
				}
				select {
				case w.out <- e:
				case <-w.stop:
					return
				}
			case <-w.kill:
				select {
				case w.out <- datastore.Event{Type: datastore.WatchError, Err: &datastore.Error{Op: "watch", Err: datastore.ErrUnavailable}}:
				case <-w.stop:
				}
				return
			case <-w.stop:
				return
			}
		}
	}()
	return w, nil
}

func (w *breakableWatcher) ResultChan() <-chan datastore.Event { return w.out }

func (w *breakableWatcher) Stop() {
	w.once.Do(func() { close(w.stop) })
	<-w.done
}

func (b *breakable) breakWatches() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for w := range b.watchers {
		select {
		case <-w.kill:
		default:
			close(w.kill)
		}
	}
}
