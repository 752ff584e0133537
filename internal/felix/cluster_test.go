package felix

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	v3 "github.com/calico-go/calico/api/v3"
	"github.com/calico-go/calico/internal/dataplane"
	"github.com/calico-go/calico/internal/datastore"
	"github.com/calico-go/calico/internal/datastore/etcd"
	"github.com/calico-go/calico/internal/k8sconv"
	"github.com/calico-go/calico/internal/testutil/etcdtest"
	"github.com/calico-go/calico/internal/testutil/netnstest"
	"github.com/calico-go/calico/internal/testutil/wltest"
	"github.com/calico-go/calico/pkg/client"
)

// cluster is one host namespace (with its underlay, which stands for
// everything outside the cluster), an embedded etcd, and workload
// namespaces attached the way the calico CNI plugin attaches them. Felix
// runs against it and can be stopped and started again.
type cluster struct {
	tb   testing.TB
	ctx  context.Context
	be   datastore.Backend
	c    *client.Client
	host *netnstest.Host
	node string

	mu   sync.Mutex // guards pods and ips
	pods map[string]*wpod
	ips  int

	barrierGen int
}

// podCIDR holds every workload address; the underlay routes it to the host.
var podCIDR = netip.MustParsePrefix("10.65.0.0/16")

func newCluster(tb testing.TB) *cluster {
	tb.Helper()
	netnstest.RequireRoot(tb)
	eps := etcdtest.Embedded(tb)
	ctx, cancel := context.WithCancel(context.Background())
	tb.Cleanup(cancel)
	be, err := etcd.New(ctx, etcd.Config{Endpoints: eps})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { be.Close() })
	host := netnstest.NewHost(tb)
	wltest.Route(tb, host.Underlay, podCIDR, host.Addr, "uplink")
	return &cluster{tb: tb, ctx: ctx, be: be, c: client.NewFromBackend(be), host: host, node: node, pods: map[string]*wpod{}}
}

// agent is one running felix.
type agent struct {
	cancel context.CancelFunc
	done   chan error
	ready  chan struct{}
	once   sync.Once
	err    error
}

// startFelix runs felix against the cluster's datastore and host
// namespace; with wait it returns once the dataplane is in sync.
func (cl *cluster) startFelix(tb testing.TB, wait bool, edit func(*Options)) *agent {
	tb.Helper()
	ctx, cancel := context.WithCancel(cl.ctx)
	a := &agent{cancel: cancel, done: make(chan error, 1), ready: make(chan struct{})}
	opts := Options{
		NodeName:  cl.node,
		Backend:   cl.be,
		Dataplane: dataplane.Options{NetNSFd: cl.host.Fd()},
		OnReady:   func() { close(a.ready) },
		Logger:    testLogger(),
	}
	if edit != nil {
		edit(&opts)
	}
	go func() { a.done <- Run(ctx, opts) }()
	tb.Cleanup(func() {
		if err := a.stop(); err != nil {
			tb.Errorf("felix: %v", err)
		}
	})
	if wait {
		a.waitReady(tb)
	}
	return a
}

func (a *agent) waitReady(tb testing.TB) {
	tb.Helper()
	select {
	case <-a.ready:
	case err := <-a.done:
		a.done <- err
		tb.Fatalf("felix exited before it was ready: %v", err)
	case <-time.After(30 * time.Second):
		tb.Fatal("felix not ready after 30s")
	}
}

// stop cancels felix and waits for Run to return; it is idempotent.
func (a *agent) stop() error {
	a.once.Do(func() {
		a.cancel()
		select {
		case a.err = <-a.done:
		case <-time.After(20 * time.Second):
			a.err = errors.New("felix did not stop within 20s of cancel")
		}
	})
	return a.err
}

// testLogger logs felix's warnings to stderr when CALICO_TEST_LOG is set.
func testLogger() *slog.Logger {
	if os.Getenv("CALICO_TEST_LOG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// namespace writes the kns.<ns> profile: allow everything, and the
// namespace's labels as pcns.* labels (as Calico's Kubernetes sync does).
func (cl *cluster) namespace(name string, labels map[string]string) {
	p := v3.NewProfile()
	p.Name = "kns." + name
	p.Spec.Ingress = []v3.Rule{{Action: v3.Allow}}
	p.Spec.Egress = []v3.Rule{{Action: v3.Allow}}
	p.Spec.LabelsToApply = map[string]string{
		v3.NamespaceLabelPrefix + v3.LabelName:                  name,
		v3.NamespaceLabelPrefix + "kubernetes.io/metadata.name": name,
	}
	for k, v := range labels {
		p.Spec.LabelsToApply[v3.NamespaceLabelPrefix+k] = v
	}
	cl.create(p)
}

// serviceAccount writes the ksa.<ns>.<sa> profile: no rules, the service
// account's labels as pcsa.* labels.
func (cl *cluster) serviceAccount(ns, name string, labels map[string]string) {
	p := v3.NewProfile()
	p.Name = "ksa." + ns + "." + name
	p.Spec.LabelsToApply = map[string]string{v3.ServiceAccountLabelPrefix + v3.LabelName: name}
	for k, v := range labels {
		p.Spec.LabelsToApply[v3.ServiceAccountLabelPrefix+k] = v
	}
	cl.create(p)
}

func (cl *cluster) create(r v3.Resource) v3.Resource {
	cl.tb.Helper()
	out, err := cl.c.Create(cl.ctx, r)
	if err != nil {
		cl.tb.Fatalf("create %s: %v", datastore.KeyOf(r), err)
	}
	return out
}

// wpod is a workload namespace and the WorkloadEndpoint describing it.
type wpod struct {
	*wltest.Workload
	alias, ns   string
	labels      map[string]string
	sa          string
	ports       []v3.WorkloadEndpointPort
	noProfiles  bool
	extraLabels map[string]string
}

// podSpec describes a pod to attach.
type podSpec struct {
	alias, ns  string
	labels     map[string]string
	sa         string
	ports      []v3.WorkloadEndpointPort
	noProfiles bool
	// tcp and udp are the ports its echo servers listen on.
	tcp, udp []uint16
}

// attachPod creates the pod's namespace and veth (as CNI ADD does) and
// starts its servers; the WorkloadEndpoint is written by writeEndpoint.
func (cl *cluster) attachPod(tb testing.TB, s podSpec) *wpod {
	tb.Helper()
	cl.mu.Lock()
	cl.ips++
	n := cl.ips
	cl.mu.Unlock()
	addr := netip.AddrFrom4([4]byte{10, 65, byte(n / 200), byte(10 + n%200)})
	iface := fmt.Sprintf("cali%07x%s", n, strings.ReplaceAll(s.alias, "-", ""))
	if len(iface) > 15 {
		iface = iface[:15]
	}
	wl := wltest.Add(tb, cl.host.NS, iface, addr)
	if len(s.tcp)+len(s.udp) > 0 {
		wltest.Servers(tb, wl.NS, addr, s.tcp, s.udp)
	}
	p := &wpod{Workload: wl, alias: s.alias, ns: s.ns, labels: s.labels, sa: s.sa, ports: s.ports, noProfiles: s.noProfiles}
	cl.mu.Lock()
	cl.pods[s.alias] = p
	cl.mu.Unlock()
	return p
}

// endpoint is the pod's WorkloadEndpoint as the CNI plugin writes it.
func (cl *cluster) endpoint(p *wpod) *v3.WorkloadEndpoint {
	w := v3.NewWorkloadEndpoint()
	w.Namespace = p.ns
	w.Name = v3.WorkloadEndpointName(cl.node, "k8s", p.alias, "eth0")
	w.Labels = map[string]string{v3.LabelNamespace: p.ns, v3.LabelOrchestrator: v3.OrchestratorKubernetes}
	if p.sa != "" {
		w.Labels[v3.LabelServiceAccount] = p.sa
	}
	for _, m := range []map[string]string{p.labels, p.extraLabels} {
		for k, v := range m {
			w.Labels[k] = v
		}
	}
	w.Spec = v3.WorkloadEndpointSpec{
		Orchestrator: v3.OrchestratorKubernetes, Node: cl.node, Pod: p.alias, Endpoint: "eth0",
		ServiceAccountName: p.sa, InterfaceName: p.HostIface, Ports: p.ports,
		IPNetworks: []string{netip.PrefixFrom(p.Addr, 32).String()},
	}
	if !p.noProfiles {
		w.Spec.Profiles = []string{"kns." + p.ns}
		if p.sa != "" {
			w.Spec.Profiles = append(w.Spec.Profiles, "ksa."+p.ns+"."+p.sa)
		}
	}
	return w
}

func (cl *cluster) writeEndpoint(tb testing.TB, p *wpod) {
	tb.Helper()
	if _, err := cl.c.Apply(cl.ctx, cl.endpoint(p)); err != nil {
		tb.Fatalf("write endpoint of %s: %v", p.alias, err)
	}
}

func (cl *cluster) pod(alias string) *wpod {
	cl.mu.Lock()
	p, ok := cl.pods[alias]
	cl.mu.Unlock()
	if !ok {
		panic(fmt.Sprintf("no pod %q", alias))
	}
	return p
}

// addr returns the address of a pod alias, or of "out" (the underlay).
func (cl *cluster) addr(alias string) netip.Addr {
	if alias == "out" {
		return cl.host.UnderlayAddr
	}
	return cl.pod(alias).Addr
}

func (cl *cluster) nsOf(alias string) *netnstest.NS {
	if alias == "out" {
		return cl.host.Underlay
	}
	return cl.pod(alias).NS
}

// expand replaces $alias with the alias's address, longest alias first.
func (cl *cluster) expand(s string) string {
	addrs := map[string]netip.Addr{"out": cl.host.UnderlayAddr}
	cl.mu.Lock()
	for a, p := range cl.pods {
		addrs[a] = p.Addr
	}
	cl.mu.Unlock()
	aliases := slices.Collect(maps.Keys(addrs))
	slices.SortFunc(aliases, func(a, b string) int { return len(b) - len(a) })
	var pairs []string
	for _, a := range aliases {
		pairs = append(pairs, "$"+a, addrs[a].String())
	}
	return strings.NewReplacer(pairs...).Replace(s)
}

// decode reads YAML documents separated by "---", after replacing $alias
// with the alias's address. Documents carry no apiVersion: they are
// projectcalico.org/v3, except those starting with the line "k8s: true",
// which are networking.k8s.io/v1 NetworkPolicies (without apiVersion and
// kind) converted through k8sconv, as calicoctl stores them.
func (cl *cluster) decode(tb testing.TB, docs string) []v3.Resource {
	tb.Helper()
	rs, err := cl.tryDecode(docs)
	if err != nil {
		tb.Fatal(err)
	}
	return rs
}

func (cl *cluster) tryDecode(docs string) ([]v3.Resource, error) {
	var out []v3.Resource
	for _, doc := range strings.Split(cl.expand(docs), "\n---\n") {
		doc = strings.TrimSpace(doc)
		if doc == "" {
			continue
		}
		if rest, ok := strings.CutPrefix(doc, "k8s: true\n"); ok {
			nps, err := k8sconv.Decode([]byte("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n" + rest))
			if err != nil {
				return nil, fmt.Errorf("decode %s: %w", rest, err)
			}
			for _, np := range nps {
				r, err := k8sconv.NetworkPolicy(np)
				if err != nil {
					return nil, fmt.Errorf("convert %s: %w", np.Name, err)
				}
				out = append(out, r)
			}
			continue
		}
		rs, err := v3.Decode([]byte("apiVersion: projectcalico.org/v3\n" + doc))
		if err != nil {
			return nil, fmt.Errorf("decode %s: %w", doc, err)
		}
		out = append(out, rs...)
	}
	return out, nil
}

// applyAll writes resources in order and returns their keys.
func (cl *cluster) applyAll(tb testing.TB, rs []v3.Resource) []datastore.Key {
	tb.Helper()
	var keys []datastore.Key
	for _, r := range rs {
		if _, err := cl.c.Apply(cl.ctx, r); err != nil {
			tb.Fatalf("apply %s: %v", datastore.KeyOf(r), err)
		}
		keys = append(keys, datastore.KeyOf(r))
	}
	return keys
}

// deleteAll deletes resources in the reverse order of keys.
func (cl *cluster) deleteAll(tb testing.TB, keys []datastore.Key) {
	tb.Helper()
	for i := len(keys) - 1; i >= 0; i-- {
		if _, err := cl.c.Delete(cl.ctx, keys[i], ""); err != nil && !errors.Is(err, client.ErrNotFound) {
			tb.Fatalf("delete %s: %v", keys[i], err)
		}
	}
}

// The barrier: a pod selected only by a policy in tier "barrier" (order
// 1, before every other tier) that lets the underlay reach TCP port
// barrierPort + gen%2. Bumping gen and waiting until the new port answers
// proves the dataplane has applied every GlobalNetworkPolicy write made
// before the bump (one kind is delivered in datastore order; other kinds
// may interleave, so probes still retry briefly).
const barrierPort = 7000

func (cl *cluster) setupBarrier(tb testing.TB) {
	tb.Helper()
	p := cl.attachPod(tb, podSpec{alias: "barrier", ns: "infra", labels: map[string]string{"barrier": "true"},
		noProfiles: true, tcp: []uint16{barrierPort, barrierPort + 1}})
	cl.writeEndpoint(tb, p)
	t := v3.NewTier()
	t.Name = "barrier"
	t.Spec.Order = ptr(1.0)
	cl.create(t)
	cl.writeBarrier(tb)
}

func (cl *cluster) writeBarrier(tb testing.TB) {
	tb.Helper()
	gnp := v3.NewGlobalNetworkPolicy()
	gnp.Name = "barrier"
	gnp.Spec.Tier = "barrier"
	gnp.Spec.Selector = "barrier == 'true'"
	gnp.Spec.Types = []v3.PolicyType{v3.PolicyTypeIngress}
	gnp.Spec.Ingress = []v3.Rule{{
		Action: v3.Allow, Protocol: ptr(v3.ProtocolFromString("TCP")),
		Source:      v3.EntityRule{Nets: []string{cl.host.UnderlayAddr.String() + "/32"}},
		Destination: v3.EntityRule{Ports: []v3.Port{v3.SinglePort(uint16(barrierPort + cl.barrierGen%2))}},
	}}
	if _, err := cl.c.Apply(cl.ctx, gnp); err != nil {
		tb.Fatalf("write barrier: %v", err)
	}
}

// sync bumps the barrier and waits until the dataplane shows it.
func (cl *cluster) sync(tb testing.TB) time.Duration {
	tb.Helper()
	start := time.Now()
	cl.barrierGen++
	cl.writeBarrier(tb)
	dst := netip.AddrPortFrom(cl.addr("barrier"), uint16(barrierPort+cl.barrierGen%2))
	for time.Since(start) < 15*time.Second {
		if dialOnce(cl.host.Underlay, dst, 50*time.Millisecond) == nil {
			return time.Since(start)
		}
	}
	tb.Fatalf("barrier %d not applied after 15s", cl.barrierGen)
	return 0
}

// dialOnce opens (and closes) one TCP connection: nil means the
// handshake completed.
func dialOnce(ns *netnstest.NS, dst netip.AddrPort, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c, err := ns.Dial(ctx, "tcp", dst.String())
	if err != nil {
		return err
	}
	return c.Close()
}

// probe is one connectivity check: from and to are pod aliases or "out".
type probe struct {
	from, to string
	proto    string // tcp, udp or icmp
	port     uint16
	want     bool
}

func (p probe) String() string {
	s := p.from + " -> " + p.to + " " + p.proto
	if p.port != 0 {
		s += "/" + strconv.Itoa(int(p.port))
	}
	return s
}

// parseProbe reads "from to proto[/port] +|-".
func parseProbe(s string) (probe, error) {
	f := strings.Fields(s)
	if len(f) != 4 || (f[3] != "+" && f[3] != "-") {
		return probe{}, fmt.Errorf("probe %q: want \"from to proto[/port] +|-\"", s)
	}
	p := probe{from: f[0], to: f[1], want: f[3] == "+"}
	proto, port, hasPort := strings.Cut(f[2], "/")
	p.proto = proto
	if hasPort {
		n, err := strconv.ParseUint(port, 10, 16)
		if err != nil {
			return probe{}, fmt.Errorf("probe %q: %w", s, err)
		}
		p.port = uint16(n)
	}
	if (p.proto == "icmp") == hasPort || !slices.Contains([]string{"tcp", "udp", "icmp"}, p.proto) {
		return probe{}, fmt.Errorf("probe %q: tcp/N, udp/N or icmp", s)
	}
	return p, nil
}

const probeTimeout = 250 * time.Millisecond

func (cl *cluster) run(p probe) error {
	from, dst := cl.nsOf(p.from), cl.addr(p.to)
	switch p.proto {
	case "tcp":
		return wltest.TCP(from, netip.AddrPortFrom(dst, p.port), probeTimeout)
	case "udp":
		return wltest.UDP(from, netip.AddrPortFrom(dst, p.port), probeTimeout)
	default:
		return wltest.Ping(from, dst, probeTimeout)
	}
}

// check runs the probes in parallel, again until every outcome is as
// expected or the deadline passes, and returns how many rounds it took.
func (cl *cluster) check(tb testing.TB, specs []string, deadline time.Duration) int {
	tb.Helper()
	probes := make([]probe, len(specs))
	for i, s := range specs {
		p, err := parseProbe(s)
		if err != nil {
			tb.Fatal(err)
		}
		probes[i] = p
	}
	start := time.Now()
	for round := 1; ; round++ {
		errs := make([]error, len(probes))
		var wg sync.WaitGroup
		for i, p := range probes {
			wg.Go(func() { errs[i] = cl.run(p) })
		}
		wg.Wait()
		var bad []string
		for i, p := range probes {
			if got := errs[i] == nil; got != p.want {
				bad = append(bad, fmt.Sprintf("%s: allowed=%v, want %v (%v)", p, got, p.want, errs[i]))
			}
		}
		if len(bad) == 0 {
			return round
		}
		if time.Since(start) > deadline {
			tb.Errorf("after %d rounds in %s:\n  %s", round, time.Since(start).Round(time.Millisecond), strings.Join(bad, "\n  "))
			return round
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// echoServer accepts TCP connections on addr in ns and echoes what it
// reads, without any deadline (for long-lived connections).
func echoServer(tb testing.TB, ns *netnstest.NS, addr netip.AddrPort) {
	tb.Helper()
	l, err := ns.Listen("tcp", addr.String())
	if err != nil {
		tb.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	tb.Cleanup(func() {
		l.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() { _, _ = io.Copy(c, c) })
		}
	})
}

// dialEcho opens a TCP connection from p to an echo server.
func dialEcho(tb testing.TB, p *wpod, dst netip.AddrPort) net.Conn {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	c, err := p.NS.Dial(ctx, "tcp", dst.String())
	if err != nil {
		tb.Fatalf("dial %s from %s: %v", dst, p.alias, err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}
