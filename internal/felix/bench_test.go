package felix

import (
	"cmp"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/vishvananda/netlink"

	v3 "github.com/calico-go/calico/api/v3"
	"github.com/calico-go/calico/internal/testutil/netnstest"
	"github.com/calico-go/calico/internal/testutil/wltest"
)

// Probe timing for the benchmarks. A dropped SYN gives no answer, so a
// denied attempt lasts dialTimeout. Waiting for "allowed", a new attempt
// starts every allowStep (attempts overlap), so the first success is seen
// at most allowStep (plus one round trip) after the dataplane changes.
// Waiting for "denied", attempts run back to back; an allowed one takes
// about one round trip, and the time reported is the start of the first
// attempt that got no answer.
const (
	dialTimeout = 20 * time.Millisecond
	allowStep   = time.Millisecond
)

// firstAllowed returns when a TCP handshake from ns to dst first succeeds.
func firstAllowed(ns *netnstest.NS, dst netip.AddrPort, limit time.Duration) (time.Time, error) {
	ok := make(chan time.Time, 1)
	tick := time.NewTicker(allowStep)
	defer tick.Stop()
	deadline := time.After(limit)
	for {
		go func() {
			if dialOnce(ns, dst, dialTimeout) == nil {
				select {
				case ok <- time.Now():
				default:
				}
			}
		}()
		select {
		case t := <-ok:
			return t, nil
		case <-deadline:
			return time.Time{}, fmt.Errorf("%s not allowed after %s", dst, limit)
		case <-tick.C:
		}
	}
}

// firstDenied returns the start of the first TCP attempt from ns to dst
// that got no answer (confirmed by a second one).
func firstDenied(ns *netnstest.NS, dst netip.AddrPort, limit time.Duration) (time.Time, error) {
	end := time.Now().Add(limit)
	for time.Now().Before(end) {
		start := time.Now()
		err := dialOnce(ns, dst, dialTimeout)
		if err == nil {
			continue
		}
		if ne := net.Error(nil); !errors.As(err, &ne) || !ne.Timeout() {
			return time.Time{}, fmt.Errorf("probe %s: %w (want a timeout)", dst, err)
		}
		if dialOnce(ns, dst, dialTimeout) != nil {
			return start, nil
		}
	}
	return time.Time{}, fmt.Errorf("%s not denied after %s", dst, limit)
}

// waitGateway waits until the pod has resolved its gateway's link-layer
// address. Right after a veth is created the host side may not transmit
// yet (its qdisc is activated asynchronously once the carrier comes up),
// so the first proxy-ARP reply can be lost and the pod only asks again a
// second later; that kernel delay is not the dataplane's and is kept out
// of the timed part. A dial (dropped: no endpoint yet) asks again.
func waitGateway(tb testing.TB, p *wpod, dst netip.AddrPort) {
	tb.Helper()
	l, err := p.Handle.LinkByName("eth0")
	if err != nil {
		tb.Fatal(err)
	}
	valid := netlink.NUD_REACHABLE | netlink.NUD_STALE | netlink.NUD_DELAY | netlink.NUD_PROBE | netlink.NUD_PERMANENT
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); {
		ns, err := p.Handle.NeighList(l.Attrs().Index, netlink.FAMILY_V4)
		if err != nil {
			tb.Fatal(err)
		}
		state := netlink.NUD_NONE
		for _, n := range ns {
			if wltest.Gateway.Compare(netip.AddrFrom4([4]byte(n.IP.To4()))) == 0 {
				state = n.State
			}
		}
		switch {
		case state&valid != 0:
			return
		case state == netlink.NUD_INCOMPLETE:
			time.Sleep(5 * time.Millisecond)
		default:
			_ = dialOnce(p.NS, dst, 5*time.Millisecond)
		}
	}
	tb.Fatalf("%s: gateway address not resolved after 10s", p.alias)
}

// gauge reads one gauge from a registry.
func gauge(tb testing.TB, reg *prometheus.Registry, name string) float64 {
	mfs, err := reg.Gather()
	if err != nil {
		tb.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) > 0 {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	return -1
}

func reportPercentiles(b *testing.B, what string, ds []time.Duration) {
	if len(ds) == 0 {
		return
	}
	slices.Sort(ds)
	pct := func(p float64) float64 {
		return float64(ds[int(p*float64(len(ds)-1))]) / float64(time.Millisecond)
	}
	b.ReportMetric(pct(0.50), what+"-p50-ms")
	b.ReportMetric(pct(0.99), what+"-p99-ms")
}

// BenchmarkTimeToFirstResponse measures, for each new workload, the time
// from its WorkloadEndpoint write returning (the last step of CNI ADD) to
// its first TCP connection to a server succeeding. The server's policy
// allows only app == 'client', so the new address must reach an IP set as
// well as the endpoint's chains. The namespace and veth are made (and the
// unknown interface checked to drop traffic) outside the timer. One felix
// serves every workload; run with -benchtime=50x.
func BenchmarkTimeToFirstResponse(b *testing.B) {
	cl := newCluster(b)
	cl.namespace("bench", nil)
	srv := cl.attachPod(b, podSpec{alias: "server", ns: "bench", labels: map[string]string{"app": "server"}, tcp: []uint16{80}})
	cl.writeEndpoint(b, srv)
	cl.applyAll(b, cl.decode(b, np("bench/server-in", "app == 'server'",
		"ingress: [{action: Allow, protocol: TCP, source: {selector: \"app == 'client'\"}, destination: {ports: [80]}}]")))
	cl.startFelix(b, true, nil)
	dst := netip.AddrPortFrom(srv.Addr, 80)
	seq := 0
	b.Run("new-workload", func(b *testing.B) {
		var ttfr, writes []time.Duration
		b.ResetTimer()
		for range b.N {
			b.StopTimer()
			seq++
			p := cl.attachPod(b, podSpec{alias: fmt.Sprintf("c%d", seq), ns: "bench", labels: map[string]string{"app": "client"}})
			// Fail closed: an interface without an endpoint gets no traffic.
			if dialOnce(p.NS, dst, 50*time.Millisecond) == nil {
				b.Fatalf("%s reached the server before its endpoint was written", p.HostIface)
			}
			waitGateway(b, p, dst)
			b.StartTimer()
			t0 := time.Now()
			cl.writeEndpoint(b, p)
			t1 := time.Now()
			ok, err := firstAllowed(p.NS, dst, 10*time.Second)
			if err != nil {
				b.Fatal(err)
			}
			writes = append(writes, t1.Sub(t0))
			ttfr = append(ttfr, ok.Sub(t1))
		}
		b.StopTimer()
		reportPercentiles(b, "ttfr", ttfr)
		reportPercentiles(b, "wepwrite", writes)
		if b.N > 1 {
			b.Logf("probe resolution %s: a new TCP attempt (timeout %s) every %s", allowStep, dialTimeout, allowStep)
		}
	})
}

// Load of BenchmarkApplyToProbe.
const (
	loadPolicies   = 1000
	loadEndpoints  = 5000
	loadNamespaces = 10
	loadApps       = 100
)

// load writes loadEndpoints remote WorkloadEndpoints (50 per node, on
// other nodes) and loadPolicies NetworkPolicies whose selectors and rule
// selectors refer to their labels. Ten policies (app-0 in ns-0) select the
// local server, each allowing ingress from 50 remote endpoints.
func (cl *cluster) load(b *testing.B) {
	b.Helper()
	for i := range loadNamespaces {
		cl.namespace(fmt.Sprintf("ns-%d", i), map[string]string{"env": fmt.Sprintf("e%d", i%5)})
	}
	var rs []v3.Resource
	for k := range loadEndpoints {
		ns, node := fmt.Sprintf("ns-%d", k%loadNamespaces), fmt.Sprintf("remote-%d", k/50)
		w := v3.NewWorkloadEndpoint()
		w.Namespace = ns
		w.Name = v3.WorkloadEndpointName(node, "k8s", fmt.Sprintf("pod-%d", k), "eth0")
		w.Labels = map[string]string{v3.LabelNamespace: ns, v3.LabelOrchestrator: v3.OrchestratorKubernetes,
			"app": fmt.Sprintf("app-%d", k%loadApps), "shard": fmt.Sprintf("s%d", k%7)}
		w.Spec = v3.WorkloadEndpointSpec{
			Orchestrator: v3.OrchestratorKubernetes, Node: node, Pod: fmt.Sprintf("pod-%d", k), Endpoint: "eth0",
			InterfaceName: fmt.Sprintf("cali%011d", k), Profiles: []string{"kns." + ns},
			IPNetworks: []string{netip.AddrFrom4([4]byte{10, 100, byte(k / 250), byte(k%250 + 1)}).String() + "/32"},
		}
		rs = append(rs, w)
	}
	for i := range loadPolicies {
		a := func(n int) string { return fmt.Sprintf("app-%d", (i+n)%loadApps) }
		rs = append(rs, cl.decode(b, np(fmt.Sprintf("ns-%d/load-%d", i%loadNamespaces, i), "app == '"+a(0)+"'",
			"types: [Ingress, Egress]",
			fmt.Sprintf("ingress: [{action: Allow, protocol: TCP, source: {selector: \"app == '%s'\", namespaceSelector: all()}, destination: {ports: [%d, '8000:8100']}}]", a(1), 80+i%50),
			fmt.Sprintf("egress: [{action: Allow, destination: {selector: \"app == '%s' && shard != 's3'\", namespaceSelector: \"env == 'e%d'\"}}, {action: Deny, destination: {nets: [10.%d.0.0/16]}}]", a(2), i%5, 110+i%100)))...)
	}
	ch := make(chan v3.Resource)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	for range 8 {
		wg.Go(func() {
			for r := range ch {
				if _, err := cl.c.Create(cl.ctx, r); err != nil {
					mu.Lock()
					firstErr = cmp.Or(firstErr, err)
					mu.Unlock()
				}
			}
		})
	}
	for _, r := range rs {
		ch <- r
	}
	close(ch)
	wg.Wait()
	if firstErr != nil {
		b.Fatalf("load: %v", firstErr)
	}
}

// BenchmarkApplyToProbe measures, with a loaded datastore (1,000 other
// policies, 5,000 remote endpoints), the time from writing one policy to
// the probe result changing: the policy switches a client's access to a
// server from Allow to Deny ("deny") and back ("allow"). Each op is one
// round trip of both; run with -benchtime=50x.
func BenchmarkApplyToProbe(b *testing.B) {
	cl := newCluster(b)
	start := time.Now()
	cl.load(b)
	loaded := time.Since(start)
	srv := cl.attachPod(b, podSpec{alias: "server", ns: "ns-0", labels: map[string]string{"app": "app-0"}, tcp: []uint16{80}})
	cli := cl.attachPod(b, podSpec{alias: "client", ns: "ns-0", labels: map[string]string{"app": "client"}})
	cl.writeEndpoint(b, srv)
	cl.writeEndpoint(b, cli)
	toggle := func(action string) v3.Resource {
		return cl.decode(b, np("ns-0/bench-toggle", "app == 'app-0'", "order: 1",
			"ingress: [{action: "+action+", source: {selector: \"app == 'client'\"}}]"))[0]
	}
	cl.applyAll(b, []v3.Resource{toggle("Allow")})
	start = time.Now()
	reg := prometheus.NewRegistry()
	cl.startFelix(b, true, func(o *Options) { o.Registry = reg })
	synced := time.Since(start)
	dst := netip.AddrPortFrom(srv.Addr, 80)
	if _, err := firstAllowed(cli.NS, dst, 10*time.Second); err != nil {
		b.Fatal(err)
	}
	write := func(action string) {
		if _, err := cl.c.Update(cl.ctx, toggle(action)); err != nil {
			b.Fatal(err)
		}
	}
	b.Run(fmt.Sprintf("%dpol-%dwep", loadPolicies, loadEndpoints), func(b *testing.B) {
		var deny, allow []time.Duration
		b.ResetTimer()
		for range b.N {
			t0 := time.Now()
			write("Deny")
			at, err := firstDenied(cli.NS, dst, 10*time.Second)
			if err != nil {
				b.Fatal(err)
			}
			deny = append(deny, at.Sub(t0))
			t0 = time.Now()
			write("Allow")
			at, err = firstAllowed(cli.NS, dst, 10*time.Second)
			if err != nil {
				b.Fatal(err)
			}
			allow = append(allow, at.Sub(t0))
		}
		b.StopTimer()
		reportPercentiles(b, "deny", deny)
		reportPercentiles(b, "allow", allow)
		if b.N > 1 {
			b.Logf("datastore loaded in %s (%d policies, %d remote endpoints); felix in sync %s after start; "+
				"%v policies active on this host, %v IP set members",
				loaded.Round(time.Millisecond), loadPolicies, loadEndpoints, synced.Round(time.Millisecond),
				gauge(b, reg, "felix_active_local_policies"), gauge(b, reg, "felix_ipset_members"))
			b.Logf("probe resolution: allow %s (a new TCP attempt, timeout %s, every %s); deny one round trip (attempts back to back, first unanswered one counts)",
				allowStep, dialTimeout, allowStep)
		}
	})
}
