package fake_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	v3 "github.com/calico-go/calico/api/v3"
	"github.com/calico-go/calico/internal/datastore"
	"github.com/calico-go/calico/internal/datastore/conformance"
	"github.com/calico-go/calico/internal/datastore/fake"
)

func newFake(t *testing.T) datastore.Backend {
	b := fake.New()
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func TestConformance(t *testing.T) {
	conformance.Run(t, newFake)
}

func pool(t *testing.T, name string) v3.Resource {
	t.Helper()
	ki, ok := v3.LookupKind("IPPool")
	if !ok {
		t.Fatal("IPPool not registered")
	}
	r := ki.New()
	r.SetName(name)
	return r
}

func TestInjectError(t *testing.T) {
	ctx := context.Background()
	b := fake.New()
	boom := &datastore.Error{Op: "create", Err: datastore.ErrUnavailable}
	b.InjectError(func(op string, k datastore.Key) error {
		if op == "create" && k.Name == "bad" {
			return boom
		}
		return nil
	})
	if _, err := b.Create(ctx, pool(t, "bad")); !errors.Is(err, datastore.ErrUnavailable) {
		t.Fatalf("Create bad: %v, want ErrUnavailable", err)
	}
	if _, err := b.Create(ctx, pool(t, "good")); err != nil {
		t.Fatalf("Create good: %v", err)
	}
	b.InjectError(nil)
	if _, err := b.Create(ctx, pool(t, "bad")); err != nil {
		t.Fatalf("Create after clearing: %v", err)
	}
}

func TestCloseEndsWatchesAndCalls(t *testing.T) {
	ctx := context.Background()
	b := fake.New()
	w, err := b.Watch(ctx, datastore.Key{Kind: "IPPool"}, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case _, ok := <-w.ResultChan():
		if ok {
			t.Fatal("event after Close")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("watch not closed by Close")
	}
	if _, err := b.Get(ctx, datastore.Key{Kind: "IPPool", Name: "x"}); !errors.Is(err, datastore.ErrUnavailable) {
		t.Fatalf("Get after Close: %v, want ErrUnavailable", err)
	}
}

// A watcher nobody reads must not block writers.
func TestSlowReaderDoesNotBlockWriters(t *testing.T) {
	ctx := context.Background()
	b := fake.New()
	w, err := b.Watch(ctx, datastore.Key{Kind: "IPPool"}, "")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 1000 {
			if _, err := b.Create(ctx, pool(t, fmt.Sprintf("p%d", i))); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("writers blocked by an unread watch")
	}
	n := 0
	for n < 1000 {
		select {
		case <-w.ResultChan():
			n++
		case <-time.After(5 * time.Second):
			t.Fatalf("got %d of 1000 queued events", n)
		}
	}
}

func TestCompactFuture(t *testing.T) {
	b := fake.New()
	if err := b.Compact(context.Background(), "100"); err == nil {
		t.Fatal("Compact of a future revision succeeded")
	}
	if b.Revision() != "1" {
		t.Fatalf("fresh Revision %s, want 1", b.Revision())
	}
}
