package cni_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"
)

// BenchmarkAddDel measures ADD and DEL of one pod through libcni, as a
// runtime runs them (the calico plugin, host-local IPAM, an etcd
// WorkloadEndpoint write), and reports the latency percentiles. Creating the
// pod's namespace is not timed. Run with -benchtime=100x for stable p99.
func BenchmarkAddDel(b *testing.B) {
	f := newFixture(b)
	list := f.conflist(netSpec{ranges: [][]map[string]string{{{"subnet": "10.246.0.0/16"}}}})
	ctx := context.Background()
	adds := make([]time.Duration, 0, b.N)
	dels := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		p := f.newPod("bench", fmt.Sprintf("pod-%d", i))
		b.StartTimer()
		t0 := time.Now()
		if _, err := f.add(ctx, list, p); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if err := f.del(ctx, list, p); err != nil {
			b.Fatal(err)
		}
		adds = append(adds, t1.Sub(t0))
		dels = append(dels, time.Since(t1))
	}
	b.StopTimer()
	report(b, "add", adds)
	report(b, "del", dels)
}

func report(b *testing.B, what string, d []time.Duration) {
	slices.Sort(d)
	pct := func(p float64) float64 {
		i := int(p * float64(len(d)-1))
		return float64(d[i]) / float64(time.Millisecond)
	}
	b.ReportMetric(pct(0.50), what+"-p50-ms")
	b.ReportMetric(pct(0.99), what+"-p99-ms")
}
