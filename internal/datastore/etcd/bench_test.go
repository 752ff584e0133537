package etcd_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/calico-go/calico/internal/datastore"
	"github.com/calico-go/calico/internal/datastore/etcd"
)

// Benchmarks run against the shared embedded etcd (UnsafeNoFsync: they
// measure the backend and etcd's request path, not the disk).

func benchBackend(b *testing.B) *etcd.Backend {
	b.Helper()
	return newBackend(b, etcd.Config{Endpoints: sharedEmbedded(b).Endpoints()})
}

func BenchmarkCreate(b *testing.B) {
	be := benchBackend(b)
	ctx := context.Background()
	p := newPool(b, "x", "10.0.0.0/26")
	for i := 0; b.Loop(); i++ {
		p.SetName(fmt.Sprintf("pool-%d", i))
		if _, err := be.Create(ctx, p); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGet(b *testing.B) {
	be := benchBackend(b)
	ctx := context.Background()
	if _, err := be.Create(ctx, newPool(b, "p", "10.0.0.0/26")); err != nil {
		b.Fatal(err)
	}
	k := datastore.Key{Kind: "IPPool", Name: "p"}
	for b.Loop() {
		if _, err := be.Get(ctx, k); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkUpdate is a compare-and-swap update with the resourceVersion of
// the previous write (read of the stored value + txn).
func BenchmarkUpdate(b *testing.B) {
	be := benchBackend(b)
	ctx := context.Background()
	cur, err := be.Create(ctx, newPool(b, "p", "10.0.0.0/26"))
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; b.Loop(); i++ {
		cur.SetLabels(map[string]string{"i": fmt.Sprint(i)})
		if cur, err = be.Update(ctx, cur); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkList1000(b *testing.B) {
	be := benchBackend(b)
	ctx := context.Background()
	for i := range 1000 {
		if _, err := be.Create(ctx, newPool(b, fmt.Sprintf("pool-%04d", i), fmt.Sprintf("10.%d.%d.0/26", i/256, i%256))); err != nil {
			b.Fatal(err)
		}
	}
	for b.Loop() {
		l, err := be.List(ctx, datastore.Key{Kind: "IPPool"})
		if err != nil {
			b.Fatal(err)
		}
		if len(l.Items) != 1000 {
			b.Fatalf("listed %d", len(l.Items))
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1000, "ns/item")
}

// BenchmarkWatchLatency measures from the start of an Update to the
// Modified event arriving on a watch; write-to-event reports the part after
// Update has returned.
func BenchmarkWatchLatency(b *testing.B) {
	be := benchBackend(b)
	ctx := context.Background()
	cur, err := be.Create(ctx, newPool(b, "p", "10.0.0.0/26"))
	if err != nil {
		b.Fatal(err)
	}
	w, err := be.Watch(ctx, datastore.Key{Kind: "IPPool"}, cur.GetResourceVersion())
	if err != nil {
		b.Fatal(err)
	}
	defer w.Stop()
	var afterWrite time.Duration
	for i := 0; b.Loop(); i++ {
		cur.SetLabels(map[string]string{"i": fmt.Sprint(i)})
		if cur, err = be.Update(ctx, cur); err != nil {
			b.Fatal(err)
		}
		written := time.Now()
		for {
			e := <-w.ResultChan()
			if e.Type == datastore.WatchError {
				b.Fatal(e.Err)
			}
			if e.New != nil && e.New.GetResourceVersion() == cur.GetResourceVersion() {
				break
			}
		}
		afterWrite += time.Since(written)
	}
	b.ReportMetric(float64(afterWrite.Nanoseconds())/float64(b.N), "ns-write-to-event/op")
}
