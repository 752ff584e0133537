package ipamplugin_test

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkAddDel measures one ADD and one DEL through the calico-ipam
// binary (process start, datastore connection, host lock, one etcd
// transaction each) against an embedded etcd.
func BenchmarkAddDel(b *testing.B) {
	e := newEnv(b)
	e.pool("bench", "10.90.0.0/16", 26, nil)
	conf := e.conf(nil)
	pluginBin(b)
	var add, del time.Duration
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		id := fmt.Sprintf("bench-%d", i)
		start := time.Now()
		if _, err := e.add(conf, id, ""); err != nil {
			b.Fatal(err)
		}
		mid := time.Now()
		if err := e.run("DEL", conf, id, ""); err != nil {
			b.Fatal(err)
		}
		add += mid.Sub(start)
		del += time.Since(mid)
	}
	b.ReportMetric(float64(add.Microseconds())/float64(b.N)/1000, "add-ms/op")
	b.ReportMetric(float64(del.Microseconds())/float64(b.N)/1000, "del-ms/op")
}
