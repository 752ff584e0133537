// Package conformance is the behaviour every datastore.Backend must show,
// written once and run against each backend (the fake, embedded etcd, an
// external etcd server), so that they provably behave the same. Only tests
// import it.
package conformance

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"

	v3 "github.com/calico-go/calico/api/v3"
	"github.com/calico-go/calico/internal/datastore"
)

// Compactor is implemented by backends that can discard history; Run then
// checks that resuming a watch from a compacted revision fails with
// datastore.ErrCompacted.
type Compactor interface {
	Compact(ctx context.Context, revision string) error
}

// Timeouts used while waiting for watch events.
const (
	eventTimeout = 10 * time.Second
	quietPeriod  = 300 * time.Millisecond
)

// Run runs the suite. newBackend is called once per subtest and must return
// a backend over a datastore holding no v3 resources; it owns closing it
// (t.Cleanup).
func Run(t *testing.T, newBackend func(t *testing.T) datastore.Backend) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s *suite)
	}{
		{"CreateGet", testCreateGet},
		{"CreateAlreadyExists", testCreateAlreadyExists},
		{"NotFound", testNotFound},
		{"InvalidKeys", testInvalidKeys},
		{"Update", testUpdate},
		{"UpdateConflict", testUpdateConflict},
		{"Delete", testDelete},
		{"Namespaces", testNamespaces},
		{"ListSorted", testListSorted},
		{"WatchFromListRevision", testWatchFromList},
		{"WatchNarrowing", testWatchNarrowing},
		{"WatchResume", testWatchResume},
		{"WatchFromNow", testWatchFromNow},
		{"WatchStop", testWatchStop},
		{"Compaction", testCompaction},
		{"ConcurrentUpdates", testConcurrentUpdates},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			s := &suite{t: t, ctx: ctx, b: newBackend(t)}
			s.pool = s.kind("IPPool")
			s.np = s.kind("NetworkPolicy")
			tc.fn(t, s)
		})
	}
}

type suite struct {
	t    *testing.T
	ctx  context.Context
	b    datastore.Backend
	pool v3.KindInfo // cluster-scoped
	np   v3.KindInfo // namespaced
}

func (s *suite) kind(name string) v3.KindInfo {
	s.t.Helper()
	ki, ok := v3.LookupKind(name)
	if !ok {
		s.t.Fatalf("kind %s is not registered in api/v3", name)
	}
	return ki
}

// obj builds a resource with a "v" label, the field tests change.
func obj(ki v3.KindInfo, ns, name, v string) v3.Resource {
	r := ki.New()
	r.SetName(name)
	r.SetNamespace(ns)
	r.SetLabels(map[string]string{"v": v})
	return r
}

func key(ki v3.KindInfo, ns, name string) datastore.Key {
	return datastore.Key{Kind: ki.Kind, Namespace: ns, Name: name}
}

func (s *suite) create(r v3.Resource) v3.Resource {
	s.t.Helper()
	out, err := s.b.Create(s.ctx, r)
	if err != nil {
		s.t.Fatalf("Create %s: %v", r.GetName(), err)
	}
	return out
}

func (s *suite) update(r v3.Resource) v3.Resource {
	s.t.Helper()
	out, err := s.b.Update(s.ctx, r)
	if err != nil {
		s.t.Fatalf("Update %s: %v", r.GetName(), err)
	}
	return out
}

func (s *suite) get(k datastore.Key) v3.Resource {
	s.t.Helper()
	out, err := s.b.Get(s.ctx, k)
	if err != nil {
		s.t.Fatalf("Get %s: %v", k, err)
	}
	return out
}

func (s *suite) list(k datastore.Key) datastore.ListResult {
	s.t.Helper()
	l, err := s.b.List(s.ctx, k)
	if err != nil {
		s.t.Fatalf("List %s: %v", k, err)
	}
	return l
}

func (s *suite) watch(k datastore.Key, rev string) datastore.Watcher {
	s.t.Helper()
	w, err := s.b.Watch(s.ctx, k, rev)
	if err != nil {
		s.t.Fatalf("Watch %s from %q: %v", k, rev, err)
	}
	s.t.Cleanup(w.Stop)
	return w
}

// wantErr checks that err is a *datastore.Error wrapping want.
func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: got error %v, want %v", what, err, want)
	}
	var de *datastore.Error
	if !errors.As(err, &de) {
		t.Fatalf("%s: error %v (%T) is not a *datastore.Error", what, err, err)
	}
}

// same checks that r is the resource named by k with label v=want and the
// given resourceVersion (if non-empty).
func same(t *testing.T, what string, r v3.Resource, ki v3.KindInfo, ns, name, v, rv string) {
	t.Helper()
	if r == nil {
		t.Fatalf("%s: nil resource", what)
	}
	if got, ok := v3.KindOf(r); !ok || got.Kind != ki.Kind {
		t.Fatalf("%s: resource of type %T, want kind %s", what, r, ki.Kind)
	}
	gvk := r.GetObjectKind().GroupVersionKind()
	if gvk.Kind != ki.Kind || gvk.GroupVersion().String() != v3.APIVersion {
		t.Errorf("%s: TypeMeta %v, want %s %s", what, gvk, v3.APIVersion, ki.Kind)
	}
	if r.GetNamespace() != ns || r.GetName() != name {
		t.Errorf("%s: got %s/%s, want %s/%s", what, r.GetNamespace(), r.GetName(), ns, name)
	}
	if got := r.GetLabels()["v"]; got != v {
		t.Errorf("%s: label v=%q, want %q", what, got, v)
	}
	if rv != "" && r.GetResourceVersion() != rv {
		t.Errorf("%s: resourceVersion %q, want %q", what, r.GetResourceVersion(), rv)
	}
}

func revLess(t *testing.T, a, b string) {
	t.Helper()
	x, errA := strconv.ParseInt(a, 10, 64)
	y, errB := strconv.ParseInt(b, 10, 64)
	if errA != nil || errB != nil {
		if a == b {
			t.Errorf("revisions %q and %q should differ", a, b)
		}
		return
	}
	if x >= y {
		t.Errorf("revision %s should be before %s", a, b)
	}
}

// next waits for one event.
func next(t *testing.T, w datastore.Watcher) datastore.Event {
	t.Helper()
	select {
	case e, ok := <-w.ResultChan():
		if !ok {
			t.Fatalf("watch channel closed, want an event")
		}
		return e
	case <-time.After(eventTimeout):
		t.Fatalf("no watch event within %s", eventTimeout)
	}
	return datastore.Event{}
}

// quiet checks that no event arrives for a while.
func quiet(t *testing.T, w datastore.Watcher) {
	t.Helper()
	select {
	case e, ok := <-w.ResultChan():
		if ok {
			t.Fatalf("unexpected event %s %s", e.Type, describe(e))
		}
		t.Fatalf("watch channel closed unexpectedly")
	case <-time.After(quietPeriod):
	}
}

func describe(e datastore.Event) string {
	r := e.New
	if r == nil {
		r = e.Old
	}
	if r == nil {
		return fmt.Sprint(e.Err)
	}
	return fmt.Sprintf("%s/%s rv=%s", r.GetNamespace(), r.GetName(), r.GetResourceVersion())
}

// closed waits for the channel to close, ignoring events still queued.
func closed(t *testing.T, w datastore.Watcher) {
	t.Helper()
	deadline := time.After(eventTimeout)
	for {
		select {
		case _, ok := <-w.ResultChan():
			if !ok {
				return
			}
		case <-deadline:
			t.Fatalf("watch channel not closed within %s", eventTimeout)
		}
	}
}

func testCreateGet(t *testing.T, s *suite) {
	in := obj(s.pool, "", "pool-1", "1")
	inCopy := in.DeepCopyObject()
	out := s.create(in)
	if !equalObjects(in, inCopy.(v3.Resource)) {
		t.Errorf("Create modified its argument")
	}
	same(t, "Create result", out, s.pool, "", "pool-1", "1", "")
	if out.GetResourceVersion() == "" || out.GetUID() == "" || out.GetCreationTimestamp().Time.IsZero() {
		t.Errorf("Create result lacks resourceVersion/uid/creationTimestamp: rv=%q uid=%q ts=%v",
			out.GetResourceVersion(), out.GetUID(), out.GetCreationTimestamp())
	}
	got := s.get(key(s.pool, "", "pool-1"))
	same(t, "Get", got, s.pool, "", "pool-1", "1", out.GetResourceVersion())
	if got.GetUID() != out.GetUID() || !sameTime(got, out) {
		t.Errorf("Get uid/ts %s/%v, Create gave %s/%v", got.GetUID(), got.GetCreationTimestamp(), out.GetUID(), out.GetCreationTimestamp())
	}
	if !equalObjects(got, out) {
		t.Errorf("Get returned %+v, Create returned %+v", got, out)
	}
	// The caller owns what it gets: changing it does not change the store.
	got.SetLabels(map[string]string{"v": "changed"})
	same(t, "Get after changing a returned object", s.get(key(s.pool, "", "pool-1")), s.pool, "", "pool-1", "1", "")

	// A second resource gets a later revision and another uid.
	out2 := s.create(obj(s.pool, "", "pool-2", "1"))
	revLess(t, out.GetResourceVersion(), out2.GetResourceVersion())
	if out2.GetUID() == out.GetUID() {
		t.Errorf("two resources share uid %s", out.GetUID())
	}
}

func testCreateAlreadyExists(t *testing.T, s *suite) {
	first := s.create(obj(s.pool, "", "p", "1"))
	_, err := s.b.Create(s.ctx, obj(s.pool, "", "p", "2"))
	wantErr(t, "second Create", err, datastore.ErrAlreadyExists)
	same(t, "Get after failed Create", s.get(key(s.pool, "", "p")), s.pool, "", "p", "1", first.GetResourceVersion())
}

func testNotFound(t *testing.T, s *suite) {
	_, err := s.b.Get(s.ctx, key(s.pool, "", "nope"))
	wantErr(t, "Get", err, datastore.ErrNotFound)
	_, err = s.b.Update(s.ctx, obj(s.pool, "", "nope", "1"))
	wantErr(t, "Update", err, datastore.ErrNotFound)
	r := obj(s.pool, "", "nope", "1")
	r.SetResourceVersion("5")
	_, err = s.b.Update(s.ctx, r)
	wantErr(t, "Update with resourceVersion", err, datastore.ErrNotFound)
	_, err = s.b.Delete(s.ctx, key(s.pool, "", "nope"), "")
	wantErr(t, "Delete", err, datastore.ErrNotFound)
	_, err = s.b.Delete(s.ctx, key(s.pool, "", "nope"), "5")
	wantErr(t, "Delete with resourceVersion", err, datastore.ErrNotFound)
	_, err = s.b.Get(s.ctx, key(s.np, "ns1", "nope"))
	wantErr(t, "Get namespaced", err, datastore.ErrNotFound)
}

func testInvalidKeys(t *testing.T, s *suite) {
	bad := []datastore.Key{
		{Kind: "NoSuchKind", Name: "x"},
		{Kind: s.pool.Kind},              // no name
		{Kind: s.np.Kind, Name: "x"},     // namespaced without namespace
		{Kind: s.pool.Kind, Name: "a/b"}, // would escape the key layout
		{Kind: s.np.Kind, Namespace: "a/b", Name: "x"},
	}
	for _, k := range bad {
		_, err := s.b.Get(s.ctx, k)
		var de *datastore.Error
		if err == nil || !errors.As(err, &de) {
			t.Errorf("Get %+v: got %v, want a *datastore.Error", k, err)
		}
		if errors.Is(err, datastore.ErrNotFound) {
			t.Errorf("Get %+v: got ErrNotFound, want an invalid-key error", k)
		}
	}
	if _, err := s.b.Create(s.ctx, obj(s.np, "", "x", "1")); err == nil {
		t.Errorf("Create of a namespaced resource without namespace succeeded")
	}
	if _, err := s.b.List(s.ctx, datastore.Key{Kind: "NoSuchKind"}); err == nil {
		t.Errorf("List of an unknown kind succeeded")
	}
	if _, err := s.b.Watch(s.ctx, datastore.Key{Kind: "NoSuchKind"}, ""); err == nil {
		t.Errorf("Watch of an unknown kind succeeded")
	}
}

func testUpdate(t *testing.T, s *suite) {
	created := s.create(obj(s.pool, "", "p", "1"))

	// With the current resourceVersion.
	in := created.DeepCopyObject().(v3.Resource)
	in.SetLabels(map[string]string{"v": "2"})
	inCopy := in.DeepCopyObject().(v3.Resource)
	up := s.update(in)
	if !equalObjects(in, inCopy) {
		t.Errorf("Update modified its argument")
	}
	same(t, "Update result", up, s.pool, "", "p", "2", "")
	revLess(t, created.GetResourceVersion(), up.GetResourceVersion())
	same(t, "Get after Update", s.get(key(s.pool, "", "p")), s.pool, "", "p", "2", up.GetResourceVersion())

	// Without resourceVersion, uid or creationTimestamp (calicoctl replace
	// from a file): accepted, and uid and creationTimestamp are kept.
	bare := obj(s.pool, "", "p", "3")
	up3 := s.update(bare)
	same(t, "unconditional Update", up3, s.pool, "", "p", "3", "")
	if up3.GetUID() != created.GetUID() || !sameTime(up3, created) {
		t.Errorf("Update changed uid/creationTimestamp: %s/%v, created %s/%v",
			up3.GetUID(), up3.GetCreationTimestamp(), created.GetUID(), created.GetCreationTimestamp())
	}
	// A caller cannot change them either.
	forged := up3.DeepCopyObject().(v3.Resource)
	forged.SetUID("forged")
	up4 := s.update(forged)
	if up4.GetUID() != created.GetUID() {
		t.Errorf("Update accepted a new uid %s", up4.GetUID())
	}
	if got := s.get(key(s.pool, "", "p")); got.GetUID() != created.GetUID() {
		t.Errorf("stored uid %s, want %s", got.GetUID(), created.GetUID())
	}
}

func testUpdateConflict(t *testing.T, s *suite) {
	v1 := s.create(obj(s.pool, "", "p", "1"))
	v2in := v1.DeepCopyObject().(v3.Resource)
	v2in.SetLabels(map[string]string{"v": "2"})
	v2 := s.update(v2in)

	stale := v1.DeepCopyObject().(v3.Resource)
	stale.SetLabels(map[string]string{"v": "stale"})
	_, err := s.b.Update(s.ctx, stale)
	wantErr(t, "Update with stale resourceVersion", err, datastore.ErrConflict)
	if errors.Is(err, datastore.ErrNotFound) {
		t.Errorf("conflict also reported as not found")
	}
	stale.SetResourceVersion("not-a-revision")
	_, err = s.b.Update(s.ctx, stale)
	wantErr(t, "Update with a malformed resourceVersion", err, datastore.ErrConflict)
	same(t, "Get after conflicts", s.get(key(s.pool, "", "p")), s.pool, "", "p", "2", v2.GetResourceVersion())
}

func testDelete(t *testing.T, s *suite) {
	v1 := s.create(obj(s.pool, "", "p", "1"))
	v2in := v1.DeepCopyObject().(v3.Resource)
	v2in.SetLabels(map[string]string{"v": "2"})
	v2 := s.update(v2in)

	_, err := s.b.Delete(s.ctx, key(s.pool, "", "p"), v1.GetResourceVersion())
	wantErr(t, "Delete with stale resourceVersion", err, datastore.ErrConflict)
	s.get(key(s.pool, "", "p"))

	old, err := s.b.Delete(s.ctx, key(s.pool, "", "p"), v2.GetResourceVersion())
	if err != nil {
		t.Fatalf("Delete: %v", err)
	}
	same(t, "Delete result", old, s.pool, "", "p", "2", "")
	revLess(t, v2.GetResourceVersion(), old.GetResourceVersion()) // the deletion revision
	if old.GetUID() != v1.GetUID() {
		t.Errorf("Delete result uid %s, want %s", old.GetUID(), v1.GetUID())
	}
	_, err = s.b.Get(s.ctx, key(s.pool, "", "p"))
	wantErr(t, "Get after Delete", err, datastore.ErrNotFound)
	_, err = s.b.Delete(s.ctx, key(s.pool, "", "p"), "")
	wantErr(t, "second Delete", err, datastore.ErrNotFound)

	// Unconditional delete; then the name can be reused with a new uid.
	r := s.create(obj(s.pool, "", "q", "1"))
	if _, err := s.b.Delete(s.ctx, key(s.pool, "", "q"), ""); err != nil {
		t.Fatalf("unconditional Delete: %v", err)
	}
	again := s.create(obj(s.pool, "", "q", "2"))
	if again.GetUID() == r.GetUID() {
		t.Errorf("re-created resource kept the old uid")
	}
}

func testNamespaces(t *testing.T, s *suite) {
	a := s.create(obj(s.np, "ns1", "pol", "a"))
	b := s.create(obj(s.np, "ns2", "pol", "b"))
	same(t, "ns1", s.get(key(s.np, "ns1", "pol")), s.np, "ns1", "pol", "a", a.GetResourceVersion())
	same(t, "ns2", s.get(key(s.np, "ns2", "pol")), s.np, "ns2", "pol", "b", b.GetResourceVersion())
	if _, err := s.b.Delete(s.ctx, key(s.np, "ns1", "pol"), ""); err != nil {
		t.Fatalf("Delete ns1/pol: %v", err)
	}
	same(t, "ns2 after deleting ns1", s.get(key(s.np, "ns2", "pol")), s.np, "ns2", "pol", "b", b.GetResourceVersion())
}

func testListSorted(t *testing.T, s *suite) {
	empty := s.list(datastore.Key{Kind: s.np.Kind})
	if len(empty.Items) != 0 || empty.Revision == "" {
		t.Fatalf("List of an empty kind: %d items, revision %q", len(empty.Items), empty.Revision)
	}
	// Created out of order; namespaces chosen so that key-byte order
	// ("a-b/" < "a/") differs from namespace-then-name order.
	for _, nn := range [][2]string{{"b", "x"}, {"a-b", "y"}, {"a", "z"}, {"a", "c"}, {"a-b", "a"}, {"b", "a"}} {
		s.create(obj(s.np, nn[0], nn[1], nn[0]+"."+nn[1]))
	}
	s.create(obj(s.pool, "", "pool-b", "1"))
	last := s.create(obj(s.pool, "", "pool-a", "1"))

	all := s.list(datastore.Key{Kind: s.np.Kind})
	want := []string{"a/c", "a/z", "a-b/a", "a-b/y", "b/a", "b/x"}
	if got := names(all.Items); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("List order %v, want %v", got, want)
	}
	for _, r := range all.Items {
		same(t, "List item", r, s.np, r.GetNamespace(), r.GetName(), r.GetNamespace()+"."+r.GetName(), "")
		if r.GetResourceVersion() == "" {
			t.Errorf("List item %s without resourceVersion", r.GetName())
		}
	}
	if all.Revision != last.GetResourceVersion() {
		t.Errorf("List revision %s, want the last write's %s", all.Revision, last.GetResourceVersion())
	}
	ns := s.list(datastore.Key{Kind: s.np.Kind, Namespace: "a"})
	if got := names(ns.Items); fmt.Sprint(got) != fmt.Sprint([]string{"a/c", "a/z"}) {
		t.Errorf("List in namespace a: %v", got)
	}
	pools := s.list(datastore.Key{Kind: s.pool.Kind})
	if got := names(pools.Items); fmt.Sprint(got) != fmt.Sprint([]string{"/pool-a", "/pool-b"}) {
		t.Errorf("List pools: %v", got)
	}
	none := s.list(datastore.Key{Kind: s.np.Kind, Namespace: "nothing-here"})
	if len(none.Items) != 0 {
		t.Errorf("List in an empty namespace: %v", names(none.Items))
	}
}

func names(items []v3.Resource) []string {
	out := make([]string, len(items))
	for i, r := range items {
		out[i] = r.GetNamespace() + "/" + r.GetName()
	}
	return out
}

func testWatchFromList(t *testing.T, s *suite) {
	s.create(obj(s.pool, "", "before", "0"))
	l := s.list(datastore.Key{Kind: s.pool.Kind})
	w := s.watch(datastore.Key{Kind: s.pool.Kind}, l.Revision)

	a1 := s.create(obj(s.pool, "", "a", "1"))
	a2in := a1.DeepCopyObject().(v3.Resource)
	a2in.SetLabels(map[string]string{"v": "2"})
	a2 := s.update(a2in)
	b1 := s.create(obj(s.pool, "", "b", "1"))
	del, err := s.b.Delete(s.ctx, key(s.pool, "", "a"), "")
	if err != nil {
		t.Fatalf("Delete: %v", err)
	}

	e := next(t, w)
	if e.Type != datastore.Added || e.Old != nil {
		t.Fatalf("event 1: %s (old %v), want Added", e.Type, e.Old)
	}
	same(t, "event 1", e.New, s.pool, "", "a", "1", a1.GetResourceVersion())
	e = next(t, w)
	if e.Type != datastore.Modified {
		t.Fatalf("event 2: %s, want Modified", e.Type)
	}
	same(t, "event 2 new", e.New, s.pool, "", "a", "2", a2.GetResourceVersion())
	same(t, "event 2 old", e.Old, s.pool, "", "a", "1", a1.GetResourceVersion())
	e = next(t, w)
	if e.Type != datastore.Added {
		t.Fatalf("event 3: %s, want Added", e.Type)
	}
	same(t, "event 3", e.New, s.pool, "", "b", "1", b1.GetResourceVersion())
	e = next(t, w)
	if e.Type != datastore.Deleted || e.New != nil {
		t.Fatalf("event 4: %s (new %v), want Deleted", e.Type, e.New)
	}
	same(t, "event 4 old", e.Old, s.pool, "", "a", "2", del.GetResourceVersion())
	if e.Old.GetUID() != a1.GetUID() {
		t.Errorf("Deleted event old uid %s, want %s", e.Old.GetUID(), a1.GetUID())
	}
	quiet(t, w)
}

func testWatchNarrowing(t *testing.T, s *suite) {
	w := s.watch(datastore.Key{Kind: s.np.Kind, Namespace: "ns1"}, "")
	wAll := s.watch(datastore.Key{Kind: s.np.Kind}, "")
	s.create(obj(s.np, "ns2", "other-ns", "1"))
	s.create(obj(s.np, "ns10", "prefix-ns", "1")) // "ns1" is a prefix of "ns10"
	s.create(obj(s.pool, "", "other-kind", "1"))
	mine := s.create(obj(s.np, "ns1", "mine", "1"))

	e := next(t, w)
	if e.Type != datastore.Added {
		t.Fatalf("got %s, want Added", e.Type)
	}
	same(t, "narrowed watch", e.New, s.np, "ns1", "mine", "1", mine.GetResourceVersion())
	quiet(t, w)

	var got []string
	for range 3 {
		got = append(got, names([]v3.Resource{next(t, wAll).New})...)
	}
	if want := []string{"ns2/other-ns", "ns10/prefix-ns", "ns1/mine"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("all-namespace watch saw %v, want %v", got, want)
	}
	quiet(t, wAll)
}

func testWatchResume(t *testing.T, s *suite) {
	a1 := s.create(obj(s.pool, "", "a", "1"))
	a2in := a1.DeepCopyObject().(v3.Resource)
	a2in.SetLabels(map[string]string{"v": "2"})
	a2 := s.update(a2in)
	b1 := s.create(obj(s.pool, "", "b", "1"))

	// From the first write's resourceVersion: everything after it, once.
	w := s.watch(datastore.Key{Kind: s.pool.Kind}, a1.GetResourceVersion())
	e := next(t, w)
	if e.Type != datastore.Modified {
		t.Fatalf("got %s, want Modified", e.Type)
	}
	same(t, "resumed event 1", e.New, s.pool, "", "a", "2", a2.GetResourceVersion())
	e = next(t, w)
	if e.Type != datastore.Added {
		t.Fatalf("got %s, want Added", e.Type)
	}
	same(t, "resumed event 2", e.New, s.pool, "", "b", "1", b1.GetResourceVersion())
	// And then live changes.
	c1 := s.create(obj(s.pool, "", "c", "1"))
	same(t, "live event after resume", next(t, w).New, s.pool, "", "c", "1", c1.GetResourceVersion())
	quiet(t, w)

	// From the last revision: nothing old.
	w2 := s.watch(datastore.Key{Kind: s.pool.Kind}, c1.GetResourceVersion())
	quiet(t, w2)
}

func testWatchFromNow(t *testing.T, s *suite) {
	s.create(obj(s.pool, "", "old", "1"))
	w := s.watch(datastore.Key{Kind: s.pool.Kind}, "")
	n := s.create(obj(s.pool, "", "new", "1"))
	e := next(t, w)
	same(t, "watch from now", e.New, s.pool, "", "new", "1", n.GetResourceVersion())
	quiet(t, w)
}

func testWatchStop(t *testing.T, s *suite) {
	w, err := s.b.Watch(s.ctx, datastore.Key{Kind: s.pool.Kind}, "")
	if err != nil {
		t.Fatal(err)
	}
	s.create(obj(s.pool, "", "a", "1")) // an event nobody reads
	w.Stop()
	closed(t, w)
	w.Stop() // idempotent

	ctx, cancel := context.WithCancel(s.ctx)
	w2, err := s.b.Watch(ctx, datastore.Key{Kind: s.pool.Kind}, "")
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	closed(t, w2)
	w2.Stop()
}

func testCompaction(t *testing.T, s *suite) {
	c, ok := s.b.(Compactor)
	if !ok {
		t.Skipf("%T cannot compact", s.b)
	}
	first := s.create(obj(s.pool, "", "a", "0"))
	cur := first
	for i := 1; i <= 5; i++ {
		in := cur.DeepCopyObject().(v3.Resource)
		in.SetLabels(map[string]string{"v": strconv.Itoa(i)})
		cur = s.update(in)
	}
	if err := c.Compact(s.ctx, cur.GetResourceVersion()); err != nil {
		t.Fatalf("Compact: %v", err)
	}
	w := s.watch(datastore.Key{Kind: s.pool.Kind}, first.GetResourceVersion())
	e := next(t, w)
	if e.Type != datastore.WatchError {
		t.Fatalf("got %s %s, want WatchError", e.Type, describe(e))
	}
	wantErr(t, "watch from a compacted revision", e.Err, datastore.ErrCompacted)
	closed(t, w)

	// Watching from the compaction revision itself still works.
	w2 := s.watch(datastore.Key{Kind: s.pool.Kind}, cur.GetResourceVersion())
	n := s.create(obj(s.pool, "", "b", "1"))
	same(t, "watch after compaction", next(t, w2).New, s.pool, "", "b", "1", n.GetResourceVersion())
}

// testConcurrentUpdates runs read-modify-write loops in parallel: optimistic
// concurrency must lose no increment.
func testConcurrentUpdates(t *testing.T, s *suite) {
	const workers, perWorker = 4, 10
	s.create(obj(s.pool, "", "counter", "0"))
	var wg sync.WaitGroup
	errc := make(chan error, workers)
	for range workers {
		wg.Go(func() {
			for done := 0; done < perWorker; {
				r, err := s.b.Get(s.ctx, key(s.pool, "", "counter"))
				if err != nil {
					errc <- err
					return
				}
				n, _ := strconv.Atoi(r.GetLabels()["v"])
				labels := maps.Clone(r.GetLabels())
				labels["v"] = strconv.Itoa(n + 1)
				r.SetLabels(labels)
				if _, err := s.b.Update(s.ctx, r); errors.Is(err, datastore.ErrConflict) {
					continue
				} else if err != nil {
					errc <- err
					return
				}
				done++
			}
		})
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatalf("worker: %v", err)
	}
	same(t, "counter", s.get(key(s.pool, "", "counter")), s.pool, "", "counter", strconv.Itoa(workers*perWorker), "")
}

func equalObjects(a, b v3.Resource) bool { return equality.Semantic.DeepEqual(a, b) }

func sameTime(a, b v3.Resource) bool {
	return a.GetCreationTimestamp().Time.Equal(b.GetCreationTimestamp().Time)
}
