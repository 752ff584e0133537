package dataplane

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/calico-go/calico/internal/dpapi"
	"github.com/calico-go/calico/internal/testutil/wltest"
)

const sinkPort = 5001

// costTarget is a server workload selected by n policies.
type costTarget struct {
	wl     *wltest.Workload
	n      int
	counts chan int64
	conns  float64 // connections made
	connT  time.Duration
	bytes  float64
	bytesT time.Duration
	// per-slice rates, for median ratios
	connRates, tputRates []float64
}

// costState is the base state plus, for each target, n policies selecting
// it: the first n-1 allow TCP from a set of ten addresses that are not
// the client, the last allows the client.
func costState(w *world, targets []*costTarget) objs {
	o := w.base()
	set(&o, "s:client", c1Addr.String()+"/32")
	for _, tg := range targets {
		name := "w-" + tg.wl.HostIface
		ep := dpapi.WorkloadEndpoint{InterfaceName: tg.wl.HostIface, IPv4Nets: []netip.Prefix{netip.PrefixFrom(tg.wl.Addr, 32)},
			ProfileIDs: []dpapi.ProfileID{allowAllProfile.ID}}
		if tg.n > 0 {
			var all []dpapi.PolicyID
			for i := range tg.n - 1 {
				id := polID("default", fmt.Sprintf("default.cost-%d-%d", tg.n, i))
				var ms []string
				for j := range 10 {
					k := i*10 + j
					ms = append(ms, fmt.Sprintf("10.99.%d.%d/32", k/250, k%250+1))
				}
				sid := "s:cost" + strconv.Itoa(i)
				set(&o, sid, ms...)
				in(&o, id, allowR(dpapi.Rule{Protocol: 6, SrcIPSetIDs: []string{sid}, DstPorts: ports(80, 80, sinkPort, sinkPort)}))
				all = append(all, id)
			}
			last := polID("default", fmt.Sprintf("default.cost-%d-last", tg.n))
			in(&o, last, allowR(dpapi.Rule{Protocol: 6, SrcIPSetIDs: []string{"s:client"}, DstPorts: ports(80, 80, sinkPort, sinkPort)}))
			ep.Tiers = []dpapi.TierInfo{dtier(append(all, last)...)}
		}
		o.weps[wepID(name)] = ep
	}
	return o
}

// connSlice opens and resets TCP connections from c to dst for d (bounded
// by time and count) and returns how many it made.
func connSlice(tb testing.TB, c *wltest.Workload, dst netip.AddrPort, d time.Duration) (int, time.Duration) {
	var n, fails int
	start := time.Now()
	err := c.Do(func() error {
		deadline := start.Add(d)
		for time.Now().Before(deadline) && n < 10_000_000 {
			conn, err := net.DialTimeout("tcp", dst.String(), time.Second)
			if err != nil {
				if fails++; fails > 100 {
					return err
				}
				continue
			}
			_ = conn.(*net.TCPConn).SetLinger(0) // reset: no TIME_WAIT
			conn.Close()
			n++
		}
		return nil
	})
	if err != nil {
		tb.Fatalf("connection loop: %v", err)
	}
	return n, time.Since(start)
}

// sink accepts connections on the target and reports the bytes each one
// carried.
func sink(tb testing.TB, tg *costTarget) {
	l, err := tg.wl.Listen("tcp", netip.AddrPortFrom(tg.wl.Addr, sinkPort).String())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { l.Close() })
	tg.counts = make(chan int64, 1)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			n, _ := io.Copy(io.Discard, c)
			c.Close()
			tg.counts <- n
		}
	}()
}

// streamSlice sends one TCP stream for d and returns the bytes received.
func streamSlice(tb testing.TB, c *wltest.Workload, tg *costTarget, d time.Duration) (int64, time.Duration) {
	var conn net.Conn
	if err := c.Do(func() error {
		var err error
		conn, err = net.DialTimeout("tcp", netip.AddrPortFrom(tg.wl.Addr, sinkPort).String(), time.Second)
		return err
	}); err != nil {
		tb.Fatal(err)
	}
	buf := make([]byte, 128<<10)
	start := time.Now()
	for time.Since(start) < d {
		if _, err := conn.Write(buf); err != nil {
			tb.Fatal(err)
		}
	}
	_ = conn.(*net.TCPConn).CloseWrite()
	n := <-tg.counts
	conn.Close()
	return n, time.Since(start)
}

// BenchmarkDataplaneCost measures, in one run, new TCP connections per
// second and single-stream TCP throughput from a client workload to three
// server workloads on the same host: one with no policy, one selected by
// 100 policies and one by 1,000 (all but the last not matching the
// client). All three are programmed at once and measured in short
// alternating slices, so the load of a shared machine falls on all of them
// alike; ratios are to the no-policy server. It runs with the group
// layout, then with one jump per policy.
func BenchmarkDataplaneCost(b *testing.B) {
	const (
		slices    = 12
		connSlc   = 300 * time.Millisecond
		streamSlc = 300 * time.Millisecond
	)
	w := newWorld(b, Options{})
	w.v4only = true // an IPv4 cluster
	targets := []*costTarget{
		{wl: wltest.Add(b, w.host.NS, "calis0", netip.MustParseAddr("10.65.1.1")), n: 0},
		{wl: wltest.Add(b, w.host.NS, "calis100", netip.MustParseAddr("10.65.1.2")), n: 100},
		{wl: wltest.Add(b, w.host.NS, "calis1000", netip.MustParseAddr("10.65.1.3")), n: 1000},
	}
	for _, tg := range targets {
		wltest.Servers(b, tg.wl.NS, tg.wl.Addr, []uint16{80}, nil)
		sink(b, tg)
	}
	for b.Loop() {
		for _, layout := range []struct {
			name string
			opts Options
		}{{"groups", Options{}}, {"jumps", Options{DisablePolicyGroups: true}}} {
			w.stop()
			w.opts = layout.opts
			w.inSync = false
			w.cur = newObjs()
			w.start()
			start := time.Now()
			w.sync(costState(w, targets))
			b.Logf("%s: state with 1,100 policies programmed in %v", layout.name, time.Since(start).Round(time.Millisecond))
			for _, kv := range [][2]string{{"net/netfilter/nf_conntrack_tcp_timeout_close", "1"}, {"net/netfilter/nf_conntrack_tcp_timeout_time_wait", "1"}} {
				if err := w.host.Sysctl(kv[0], kv[1]); err != nil {
					b.Fatal(err)
				}
			}
			for _, tg := range targets {
				tg.conns, tg.connT, tg.bytes, tg.bytesT = 0, 0, 0, 0
				tg.connRates, tg.tputRates = nil, nil
				if err := wltest.TCP(w.c1.NS, netip.AddrPortFrom(tg.wl.Addr, 80), 2*time.Second); err != nil {
					b.Fatalf("client cannot reach %s: %v", tg.wl.HostIface, err)
				}
			}
			for s := range slices {
				for i := range targets {
					tg := targets[(i+s)%len(targets)] // rotate the order
					n, d := connSlice(b, w.c1, netip.AddrPortFrom(tg.wl.Addr, 80), connSlc)
					tg.conns += float64(n)
					tg.connT += d
					tg.connRates = append(tg.connRates, float64(n)/d.Seconds())
					by, d := streamSlice(b, w.c1, tg, streamSlc)
					tg.bytes += float64(by)
					tg.bytesT += d
					tg.tputRates = append(tg.tputRates, float64(by)/d.Seconds())
				}
			}
			base := targets[0]
			rate := func(tg *costTarget) float64 { return tg.conns / tg.connT.Seconds() }
			gbps := func(tg *costTarget) float64 { return tg.bytes * 8 / tg.bytesT.Seconds() / 1e9 }
			for _, tg := range targets {
				b.Logf("%s %4d policies: %6.0f conn/s (%.2f, median of slices %.2f)  %5.2f Gbit/s (%.2f, median %.2f)", layout.name, tg.n,
					rate(tg), rate(tg)/rate(base), medianRatio(tg.connRates, base.connRates),
					gbps(tg), gbps(tg)/gbps(base), medianRatio(tg.tputRates, base.tputRates))
			}
			b.ReportMetric(rate(base), layout.name+"-conn/s")
			b.ReportMetric(gbps(base), layout.name+"-Gbit/s")
			for _, tg := range targets[1:] {
				b.ReportMetric(rate(tg)/rate(base), fmt.Sprintf("%s-conn-ratio-%d", layout.name, tg.n))
				b.ReportMetric(gbps(tg)/gbps(base), fmt.Sprintf("%s-tput-ratio-%d", layout.name, tg.n))
			}
		}
	}
}

// medianRatio is the median over slices of a[i]/base[i]: each slice of a
// target ran next to the base's slice, under the same machine load.
func medianRatio(a, base []float64) float64 {
	var rs []float64
	for i := range min(len(a), len(base)) {
		if base[i] > 0 {
			rs = append(rs, a[i]/base[i])
		}
	}
	if len(rs) == 0 {
		return 0
	}
	sort.Float64s(rs)
	return rs[len(rs)/2]
}
