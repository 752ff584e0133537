package dataplane

import (
	"context"
	"errors"
	"maps"
	"net/netip"
	"reflect"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/calico-go/calico/internal/dpapi"
	"github.com/calico-go/calico/internal/testutil/netnstest"
	"github.com/calico-go/calico/internal/testutil/wltest"
)

// objs is a complete dataplane state, from which the harness derives
// contract-ordered message batches.
type objs struct {
	cfg   dpapi.Config
	sets  map[string]dpapi.IPSetUpdate
	pols  map[dpapi.PolicyID]dpapi.Policy
	profs map[dpapi.ProfileID]dpapi.Profile
	weps  map[dpapi.WorkloadEndpointID]dpapi.WorkloadEndpoint
	heps  map[dpapi.HostEndpointID]dpapi.HostEndpoint
}

func newObjs() objs {
	return objs{cfg: testConfig(), sets: map[string]dpapi.IPSetUpdate{}, pols: map[dpapi.PolicyID]dpapi.Policy{},
		profs: map[dpapi.ProfileID]dpapi.Profile{}, weps: map[dpapi.WorkloadEndpointID]dpapi.WorkloadEndpoint{},
		heps: map[dpapi.HostEndpointID]dpapi.HostEndpoint{}}
}

func (o objs) clone() objs {
	return objs{cfg: o.cfg, sets: maps.Clone(o.sets), pols: maps.Clone(o.pols), profs: maps.Clone(o.profs),
		weps: maps.Clone(o.weps), heps: maps.Clone(o.heps)}
}

// diffBatch returns the messages taking a dataplane from old to new, in
// the order of the dpapi contract (rule 7).
func diffBatch(old, new objs) []dpapi.Message {
	var out []dpapi.Message
	if !reflect.DeepEqual(old.cfg, new.cfg) {
		out = append(out, dpapi.ConfigUpdate{Config: new.cfg})
	}
	for _, id := range slices.Sorted(maps.Keys(new.sets)) {
		if o, ok := old.sets[id]; !ok || !reflect.DeepEqual(o, new.sets[id]) {
			out = append(out, new.sets[id])
		}
	}
	for _, id := range slices.SortedFunc(maps.Keys(new.profs), func(a, b dpapi.ProfileID) int { return cmpStr(a.Name, b.Name) }) {
		if o, ok := old.profs[id]; !ok || !reflect.DeepEqual(o, new.profs[id]) {
			out = append(out, dpapi.ProfileUpdate{ID: id, Profile: new.profs[id]})
		}
	}
	for _, id := range slices.SortedFunc(maps.Keys(new.pols), dpapi.ComparePolicyIDs) {
		if o, ok := old.pols[id]; !ok || !reflect.DeepEqual(o, new.pols[id]) {
			out = append(out, dpapi.PolicyUpdate{ID: id, Policy: new.pols[id]})
		}
	}
	for _, id := range slices.SortedFunc(maps.Keys(new.weps), func(a, b dpapi.WorkloadEndpointID) int { return cmpStr(a.String(), b.String()) }) {
		if o, ok := old.weps[id]; !ok || !reflect.DeepEqual(o, new.weps[id]) {
			out = append(out, dpapi.WorkloadEndpointUpdate{ID: id, Endpoint: new.weps[id]})
		}
	}
	for _, id := range slices.SortedFunc(maps.Keys(new.heps), func(a, b dpapi.HostEndpointID) int { return cmpStr(a.Name, b.Name) }) {
		if o, ok := old.heps[id]; !ok || !reflect.DeepEqual(o, new.heps[id]) {
			out = append(out, dpapi.HostEndpointUpdate{ID: id, Endpoint: new.heps[id]})
		}
	}
	for id := range old.weps {
		if _, ok := new.weps[id]; !ok {
			out = append(out, dpapi.WorkloadEndpointRemove{ID: id})
		}
	}
	for id := range old.heps {
		if _, ok := new.heps[id]; !ok {
			out = append(out, dpapi.HostEndpointRemove{ID: id})
		}
	}
	for id := range old.pols {
		if _, ok := new.pols[id]; !ok {
			out = append(out, dpapi.PolicyRemove{ID: id})
		}
	}
	for id := range old.profs {
		if _, ok := new.profs[id]; !ok {
			out = append(out, dpapi.ProfileRemove{ID: id})
		}
	}
	for id := range old.sets {
		if _, ok := new.sets[id]; !ok {
			out = append(out, dpapi.IPSetRemove{ID: id})
		}
	}
	return out
}

func cmpStr(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// world is a host namespace with workloads and a running dataplane.
type world struct {
	t        testing.TB
	host     *netnstest.Host
	srv      *wltest.Workload
	c1, c2   *wltest.Workload
	dp       *Dataplane
	updates  chan []dpapi.Message
	iters    chan int
	cancel   context.CancelFunc
	done     chan error
	cur      objs
	inSync   bool
	opts     Options
	applyErr error
	applies  chan ApplyResult
	mu       sync.Mutex
	// v4only turns IPv6Support off in base().
	v4only bool
}

var (
	srvAddr = netip.MustParseAddr("10.65.0.10")
	c1Addr  = netip.MustParseAddr("10.65.0.11")
	c2Addr  = netip.MustParseAddr("10.65.0.12")
)

// Server ports.
var (
	srvTCP = []uint16{80, 81, 443, 5432, 8080}
	srvUDP = []uint16{53, 5353}
)

// newWorld builds the namespaces and workloads (no dataplane yet).
func newWorld(t testing.TB, opts Options) *world {
	t.Helper()
	netnstest.RequireRoot(t)
	w := &world{t: t, opts: opts, cur: newObjs()}
	w.host = netnstest.NewHost(t)
	w.srv = wltest.Add(t, w.host.NS, "calisrv", srvAddr)
	w.c1 = wltest.Add(t, w.host.NS, "calic1", c1Addr)
	w.c2 = wltest.Add(t, w.host.NS, "calic2", c2Addr)
	wltest.Servers(t, w.srv.NS, srvAddr, srvTCP, srvUDP)
	return w
}

// start runs a dataplane in the host namespace.
func (w *world) start() {
	w.t.Helper()
	opts := w.opts
	opts.NetNSFd = w.host.Fd()
	w.applies = make(chan ApplyResult, 1000)
	opts.OnApply = func(r ApplyResult) {
		w.mu.Lock()
		w.applyErr = r.Err
		w.mu.Unlock()
		select {
		case w.applies <- r:
		default:
		}
	}
	dp, err := New(opts)
	if err != nil {
		w.t.Fatal(err)
	}
	w.dp = dp
	w.iters = make(chan int, 100)
	dp.iterHook = func(n int) { w.iters <- n }
	w.updates = make(chan []dpapi.Message)
	ctx, cancel := context.WithCancel(context.Background())
	w.cancel = cancel
	w.done = make(chan error, 1)
	go func() { w.done <- dp.Run(ctx, w.updates) }()
	w.t.Cleanup(w.stop)
}

// stop ends the dataplane (the table stays in the kernel).
func (w *world) stop() {
	if w.cancel == nil {
		return
	}
	w.cancel()
	if err := <-w.done; err != nil {
		w.t.Errorf("dataplane Run: %v", err)
	}
	w.cancel = nil
}

// send sends one batch and waits until the dataplane applied it.
func (w *world) send(b []dpapi.Message) {
	w.t.Helper()
	select {
	case w.updates <- b:
	case err := <-w.done:
		w.t.Fatalf("dataplane stopped: %v", err)
	}
	deadline := time.After(10 * time.Second)
	for {
		select {
		case n := <-w.iters:
			if n > 0 {
				w.mu.Lock()
				err := w.applyErr
				w.mu.Unlock()
				if err != nil {
					w.t.Fatalf("apply: %v", err)
				}
				return
			}
		case <-deadline:
			w.t.Fatal("dataplane did not apply the batch")
		}
	}
}

// sync brings the dataplane to state next (sending InSync the first time).
func (w *world) sync(next objs) {
	w.t.Helper()
	b := diffBatch(w.cur, next)
	if !w.inSync {
		b = append([]dpapi.Message{dpapi.ConfigUpdate{Config: next.cfg}}, b...)
		b = append(b, dpapi.InSync{})
		w.inSync = true
	}
	w.cur = next.clone()
	w.send(b)
}

// base is the starting state: the three workloads, each with an
// allow-all profile and no policy.
func (w *world) base() objs {
	o := newObjs()
	o.cfg.IPv6Support = !w.v4only
	o.profs[allowAllProfile.ID] = allowAllProfile.Profile
	for _, wl := range []struct {
		name  string
		iface string
		addr  netip.Addr
	}{{"srv", "calisrv", srvAddr}, {"c1", "calic1", c1Addr}, {"c2", "calic2", c2Addr}} {
		m := wepMsg(wl.name, wl.iface, wl.addr.String(), []string{"kns.default"})
		o.weps[m.ID] = m.Endpoint
	}
	return o
}

// probe is one connectivity check and its expected outcome.
type probe struct {
	from *wltest.Workload
	src  netip.Addr // optional source address
	kind string     // tcp, udp, icmp
	dst  netip.Addr
	port uint16
	want bool
	// refused: a failure must come as an answer (reject), not a timeout.
	refused bool
}

func (p probe) String() string {
	s := p.kind
	if p.port != 0 {
		s += ":" + strconv.Itoa(int(p.port))
	}
	return p.from.HostIface + "→" + p.dst.String() + " " + s
}

const probeTimeout = 300 * time.Millisecond

func (p probe) run() error {
	switch p.kind {
	case "tcp":
		return wltest.TCPFrom(p.from.NS, p.src, netip.AddrPortFrom(p.dst, p.port), probeTimeout)
	case "udp":
		return wltest.UDP(p.from.NS, netip.AddrPortFrom(p.dst, p.port), probeTimeout)
	default:
		return wltest.Ping(p.from.NS, p.dst, probeTimeout)
	}
}

// check runs probes in parallel and reports those with the wrong outcome.
func check(t *testing.T, probes []probe) {
	t.Helper()
	errs := make([]error, len(probes))
	var wg sync.WaitGroup
	for i, p := range probes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = p.run()
		}()
	}
	wg.Wait()
	for i, p := range probes {
		if got := errs[i] == nil; got != p.want {
			t.Errorf("%s: allowed=%v, want %v (%v)", p, got, p.want, errs[i])
		} else if p.refused && errors.Is(errs[i], wltest.ErrNoAnswer) {
			t.Errorf("%s: dropped silently, want it rejected (%v)", p, errs[i])
		}
	}
}

// warmUp syncs the base state and waits until every workload reaches the
// server (neighbour entries resolved), so the first case does not pay for
// ARP on a busy machine.
func (w *world) warmUp() {
	w.t.Helper()
	w.sync(w.base())
	deadline := time.Now().Add(10 * time.Second)
	for _, c := range []*wltest.Workload{w.c1, w.c2} {
		for {
			err := wltest.TCP(c.NS, netip.AddrPortFrom(srvAddr, 80), time.Second)
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				w.t.Fatalf("%s cannot reach the server: %v", c.HostIface, err)
			}
		}
	}
}
