package ipam

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/calico-go/calico/internal/datastore/embedded"
	"github.com/calico-go/calico/internal/datastore/etcd"
	"github.com/calico-go/calico/pkg/client"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if bench.srv != nil {
		_ = bench.srv.Close()
		_ = os.RemoveAll(bench.dir)
	}
	os.Exit(code)
}

// bench is one embedded etcd shared by the benchmarks (started on first use).
var bench struct {
	once sync.Once
	dir  string
	srv  *embedded.Server
	err  error
}

// benchSetup returns the endpoints of a wiped etcd that holds one IPv4 pool
// (10.128.0.0/12, blocks of 64).
func benchSetup(b *testing.B) []string {
	b.Helper()
	bench.once.Do(func() {
		if bench.dir, bench.err = os.MkdirTemp("", "ipam-bench-"); bench.err != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		bench.srv, bench.err = embedded.Start(ctx, embedded.Options{DataDir: bench.dir, ListenClient: "127.0.0.1:0",
			ListenPeer: "127.0.0.1:0", UnsafeNoFsync: true})
	})
	if bench.err != nil {
		b.Fatal(bench.err)
	}
	eps := bench.srv.Endpoints()
	cl, err := clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: 5 * time.Second})
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	if _, err := cl.Delete(context.Background(), "/calico/", clientv3.WithPrefix()); err != nil {
		b.Fatal(err)
	}
	_, c := connect(b, eps, 0)
	createPool(b, c, "bench", "10.128.0.0/12", 26)
	return eps
}

func benchAllocator(b *testing.B, eps []string) *Allocator {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	be, err := etcd.New(ctx, etcd.Config{Endpoints: eps})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = be.Close() })
	a, err := New(Options{Store: NewEtcdStore(be.Client(), 0), Resources: ClientResources(client.NewFromBackend(be))})
	if err != nil {
		b.Fatal(err)
	}
	return a
}

// benchHost spreads allocations over hosts of 250 addresses each (about
// what a node holds: 110 pods by default), so that a run measures steady
// state, not one host with thousands of addresses.
func benchHost(slot, i int) string { return fmt.Sprintf("node-%d-%d", slot, i/250) }

// BenchmarkAutoAssign: latency of one AutoAssign of one IPv4 address (one
// allocator, new handle each time) against embedded etcd.
func BenchmarkAutoAssign(b *testing.B) {
	a := benchAllocator(b, benchSetup(b))
	ctx := context.Background()
	b.ResetTimer()
	for i := range b.N {
		if _, err := a.AutoAssign(ctx, AutoAssignArgs{Num4: 1, HandleID: fmt.Sprintf("h-%d", i), Hostname: benchHost(0, i)}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReleaseByHandle: latency of releasing one address by handle
// (what CNI DEL does).
func BenchmarkReleaseByHandle(b *testing.B) {
	a := benchAllocator(b, benchSetup(b))
	ctx := context.Background()
	for i := range b.N {
		if _, err := a.AutoAssign(ctx, AutoAssignArgs{Num4: 1, HandleID: fmt.Sprintf("h-%d", i), Hostname: benchHost(0, i)}); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for i := range b.N {
		if err := a.ReleaseByHandle(ctx, fmt.Sprintf("h-%d", i)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReleaseIPs: latency of releasing one address by address.
func BenchmarkReleaseIPs(b *testing.B) {
	a := benchAllocator(b, benchSetup(b))
	ctx := context.Background()
	res := make([]AutoAssignResult, b.N)
	for i := range b.N {
		var err error
		if res[i], err = a.AutoAssign(ctx, AutoAssignArgs{Num4: 1, HandleID: fmt.Sprintf("h-%d", i), Hostname: benchHost(0, i)}); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for i := range b.N {
		if _, err := a.ReleaseIPs(ctx, res[i].IPv4[0].Addr()); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAutoAssign8Hosts4: throughput of 8 concurrent allocators (each
// with its own etcd connection), two per host on 4 hosts; ns/op is wall time
// per allocation across all of them.
func BenchmarkAutoAssign8Hosts4(b *testing.B) {
	eps := benchSetup(b)
	as := make([]*Allocator, 8)
	for i := range as {
		as[i] = benchAllocator(b, eps)
	}
	ctx := context.Background()
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for w, a := range as {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= b.N {
					return
				}
				// 4 hosts at a time, each with 2 allocators.
				host := benchHost(w%4, i/4)
				if _, err := a.AutoAssign(ctx, AutoAssignArgs{Num4: 1, HandleID: fmt.Sprintf("h-%d", i), Hostname: host}); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "allocs/s")
	var conflicts uint64
	for _, a := range as {
		conflicts += a.Stats().Conflicts
	}
	b.ReportMetric(float64(conflicts)/float64(b.N), "conflicts/op")
}
