package lab

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/calico-go/calico/internal/netns"
)

// Defaults of UpOptions.
const (
	DefaultHosts            = 3
	DefaultWorkloadsPerHost = 2
	DefaultDataplane        = "nftables"
	DefaultTimeout          = 2 * time.Minute
)

// Default address ranges: the pool is Kubernetes' usual pod range; the
// underlay is in the benchmarking range (RFC 2544), never routed outside.
var (
	DefaultPool     = netip.MustParsePrefix("10.244.0.0/16")
	DefaultUnderlay = netip.MustParsePrefix("198.18.0.0/24")
)

// UpOptions configure Up.
type UpOptions struct {
	Name             string
	Hosts            int
	WorkloadsPerHost int
	Backend          string // BackendBGP or BackendVXLAN
	Dataplane        string // only "nftables"
	Pool, Underlay   netip.Prefix
	// Example, when set, adds the example's workloads and applies its
	// policies.
	Example string
	// EtcdEndpoints use an external etcd instead of the lab's own.
	EtcdEndpoints []string
	// BinDir holds calico-node, calico, calico-ipam and calicoctl (default:
	// next to calico-lab, else they are built).
	BinDir string
	// Timeout bounds each wait for readiness (default DefaultTimeout).
	Timeout time.Duration
	// KeepOnFailure leaves a lab that failed to get ready in place, logs
	// and all, for inspection.
	KeepOnFailure bool
}

// DefaultUpOptions are the options of a bare `calico-lab up`.
func DefaultUpOptions() UpOptions {
	return UpOptions{Name: DefaultName, Hosts: DefaultHosts, WorkloadsPerHost: DefaultWorkloadsPerHost,
		Backend: BackendBGP, Dataplane: DefaultDataplane, Pool: DefaultPool, Underlay: DefaultUnderlay, Timeout: DefaultTimeout}
}

// Check validates the options without touching the system.
func (o *UpOptions) Check() error {
	if err := CheckLabName(o.Name); err != nil {
		return err
	}
	if o.Hosts < 1 || o.Hosts > 250 {
		return fmt.Errorf("--hosts %d: want 1-250: %w", o.Hosts, ErrInvalid)
	}
	if o.WorkloadsPerHost < 0 || o.WorkloadsPerHost > 100 {
		return fmt.Errorf("--workloads-per-host %d: want 0-100: %w", o.WorkloadsPerHost, ErrInvalid)
	}
	switch o.Backend {
	case BackendBGP, BackendVXLAN:
	default:
		return fmt.Errorf("--backend %q: want bgp or vxlan: %w", o.Backend, ErrInvalid)
	}
	if o.Dataplane != DefaultDataplane {
		return fmt.Errorf("--dataplane %q: only nftables is supported: %w", o.Dataplane, ErrInvalid)
	}
	if !o.Pool.IsValid() || !o.Pool.Addr().Is4() || o.Pool.Bits() > 26 || o.Pool != o.Pool.Masked() {
		return fmt.Errorf("--pool %s: want an IPv4 network of /26 or larger, such as 10.244.0.0/16: %w", o.Pool, ErrInvalid)
	}
	if !o.Underlay.IsValid() || !o.Underlay.Addr().Is4() || o.Underlay.Bits() > 29 || o.Underlay != o.Underlay.Masked() {
		return fmt.Errorf("--underlay %s: want an IPv4 network of /29 or larger: %w", o.Underlay, ErrInvalid)
	}
	if o.Pool.Overlaps(o.Underlay) {
		return fmt.Errorf("--pool %s overlaps --underlay %s: %w", o.Pool, o.Underlay, ErrInvalid)
	}
	if size := 1 << (32 - o.Underlay.Bits()); o.Hosts > size-3 {
		return fmt.Errorf("--underlay %s holds at most %d hosts: %w", o.Underlay, size-3, ErrInvalid)
	}
	for _, ep := range o.EtcdEndpoints {
		if u, err := url.Parse(ep); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("--etcd-endpoints %q: want http(s)://host:port: %w", ep, ErrInvalid)
		}
	}
	if o.Example != "" && !slices.Contains(Examples(), o.Example) {
		return fmt.Errorf("--example %q: known examples are %s: %w", o.Example, strings.Join(Examples(), ", "), ErrInvalid)
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	return nil
}

// Up builds a lab and waits until it is ready: nodes registered, policy
// engines in sync, BGP sessions established, every workload reachable (and
// with an example, its policies in force; the final matrix is returned).
// Nothing is made before every check has passed; after a failure (or an
// interrupt) everything made is removed.
func Up(ctx context.Context, env Env, o UpOptions) (_ *Matrix, retErr error) {
	began := time.Now()
	env, err := env.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := o.Check(); err != nil {
		return nil, err
	}
	if err := requireRoot(); err != nil {
		return nil, err
	}
	var ex *Example
	if o.Example != "" {
		if ex, err = LoadExample(o.Example); err != nil {
			return nil, err
		}
	}
	out := newProgress(env.Out)
	out.say("Bringing up lab %q: %s, %s per host, backend %s, pool %s, underlay %s",
		o.Name, plural(o.Hosts, "host"), plural(o.WorkloadsPerHost, "workload"), o.Backend, o.Pool, o.Underlay)
	dir := filepath.Join(env.RunDir, o.Name)
	t := time.Now()
	binDir, src, err := preflight(o, env, dir)
	if err != nil {
		return nil, err
	}
	out.done(t, "checks: root, name free, kernel features, no overlap with the host's routes")

	// From here on everything made is removed again on failure.
	if err := makeLabDir(env.RunDir, dir); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("%w: %q (state in %s)", ErrExists, o.Name, dir)
		}
		return nil, err
	}
	st := store{dir: dir}
	unlock, err := st.lock()
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	l := &Lab{env: env, st: st, out: out, unlock: unlock}
	defer func() {
		if retErr != nil {
			retErr = l.abandon(ctx, o, retErr)
		}
		l.Close()
	}()
	m, err := l.build(ctx, o, ex, binDir, src)
	if err != nil {
		return nil, err
	}
	l.summary(began)
	return m, nil
}

// build makes the lab in its fresh directory: binaries if needed, the
// datastore, the hosts, the workloads, the example.
func (l *Lab) build(ctx context.Context, o UpOptions, ex *Example, binDir, src string) (*Matrix, error) {
	if src != "" {
		t := time.Now()
		binDir = filepath.Join(l.st.dir, "bin")
		l.out.say("  … calico-node, calico, calico-ipam and calicoctl are not next to %s: building them from %s into %s (go build; slow the first time)", l.env.Self, src, binDir)
		if err := buildBinaries(ctx, src, binDir, l.env.Out); err != nil {
			return nil, err
		}
		l.out.done(t, "binaries built")
	}
	l.state = &State{Name: o.Name, Backend: o.Backend, Dataplane: o.Dataplane, Pool: o.Pool, Underlay: o.Underlay,
		Gateway: o.Underlay.Addr().Next(), External: len(o.EtcdEndpoints) > 0, BinDir: binDir,
		Example: o.Example, Hosts: []Host{}, Workloads: []Workload{}}
	if err := l.save(); err != nil {
		return nil, err
	}
	if err := l.startDatastore(ctx, o.EtcdEndpoints); err != nil {
		return nil, err
	}
	if err := l.startHosts(ctx, o.Hosts, o.Timeout); err != nil {
		return nil, err
	}
	if err := l.addWorkloads(ctx, l.upWorkloads(o, ex)); err != nil {
		return nil, err
	}
	if err := l.checkConnectivity(ctx, o.Timeout); err != nil {
		return nil, err
	}
	if ex == nil {
		return nil, nil
	}
	return l.applyExample(ctx, ex, o.Timeout)
}

// upWorkloads are the workloads up adds: pod-H-K in namespace default on
// every host, then the example's.
func (l *Lab) upWorkloads(o UpOptions, ex *Example) []WorkloadSpec {
	var specs []WorkloadSpec
	for h := 1; h <= o.Hosts; h++ {
		for k := 1; k <= o.WorkloadsPerHost; k++ {
			specs = append(specs, WorkloadSpec{Namespace: "default", Name: fmt.Sprintf("pod-%d-%d", h, k),
				Host: fmt.Sprintf("host-%d", h), Labels: map[string]string{"app": "demo"}})
		}
	}
	if ex != nil {
		hosts := make([]string, len(l.state.Hosts))
		for i, h := range l.state.Hosts {
			hosts[i] = h.Name
		}
		for _, s := range ex.Workloads {
			s.Host = placeOn(s.Host, hosts)
			specs = append(specs, s)
		}
	}
	return specs
}

// abandon handles a failed up: it removes everything made (or, with
// KeepOnFailure, says where the lab was left) and returns the error to
// report.
func (l *Lab) abandon(ctx context.Context, o UpOptions, err error) error {
	if ctx.Err() != nil {
		err = fmt.Errorf("interrupted: %w", ctx.Err())
	}
	if o.KeepOnFailure {
		return fmt.Errorf("lab %q not ready (kept for inspection: logs in %s; remove it with `calico-lab down --name %s`): %w", o.Name, l.st.dir, o.Name, err)
	}
	l.out.say("  ✗ failed; removing everything lab %q made (--keep-on-failure keeps it for inspection)", o.Name)
	var ext *Lab
	if l.state != nil && l.state.External {
		ext = l
	}
	if cerr := teardown(context.WithoutCancel(ctx), o.Name, l.st.dir, ext); cerr != nil {
		err = errors.Join(err, fmt.Errorf("clean-up: %w", cerr))
	}
	return fmt.Errorf("lab %q not started: %w", o.Name, err)
}

// makeLabDir creates the lab's directory, and the run directory above it,
// which a lab being removed at the same moment may remove when it was the
// last one.
func makeLabDir(runDir, dir string) error {
	for i := 0; ; i++ {
		if err := os.MkdirAll(runDir, 0o755); err != nil {
			return err
		}
		err := os.Mkdir(dir, 0o755)
		if err == nil || !errors.Is(err, fs.ErrNotExist) || i == 3 {
			return err
		}
	}
}

// preflight checks everything Up needs before it makes anything, and
// finds the binaries: binDir when they exist, else src, the source tree
// to build them from.
func preflight(o UpOptions, env Env, dir string) (binDir, src string, err error) {
	if err := checkFree(o.Name, dir); err != nil {
		return "", "", err
	}
	if err := checkRoutes(map[string]netip.Prefix{"the pool (--pool)": o.Pool, "the underlay (--underlay)": o.Underlay}); err != nil {
		return "", "", err
	}
	if err := probeKernel(o.Name, o.Backend == BackendVXLAN); err != nil {
		return "", "", err
	}
	binDir, ok := findBinaries(o.BinDir, env.Self)
	if ok {
		return binDir, "", nil
	}
	if o.BinDir != "" {
		return "", "", fmt.Errorf("--bin-dir %s must hold %s: %w", o.BinDir, strings.Join(binaries, ", "), ErrNoBinaries)
	}
	src, ok = sourceTree(env.Self)
	if !ok {
		return "", "", fmt.Errorf("%s are not next to %s, and no source tree of %s is here to build them: run `make build` and use bin/calico-lab, or pass --bin-dir: %w",
			strings.Join(binaries, ", "), env.Self, modulePath, ErrNoBinaries)
	}
	return "", src, nil
}

// checkFree fails when the lab exists or left something behind.
func checkFree(name, dir string) error {
	if _, err := os.Stat(dir); err == nil {
		return fmt.Errorf("%w: %q (state in %s); choose another --name, or remove it with `calico-lab down --name %s`", ErrExists, name, dir, name)
	}
	if ns := labSpaces(name); len(ns) > 0 {
		return fmt.Errorf("%w: %q left namespaces %s behind; remove them with `calico-lab down --name %s`", ErrExists, name, strings.Join(ns, ", "), name)
	}
	if pids := labProcesses(name); len(pids) > 0 {
		return fmt.Errorf("%w: %q left processes %v running; end them with `calico-lab down --name %s`", ErrExists, name, pids, name)
	}
	return nil
}

// startDatastore makes the underlay and starts the datastore process (the
// embedded etcd, or a relay to the external one).
func (l *Lab) startDatastore(ctx context.Context, external []string) error {
	t := time.Now()
	s := l.state
	ul, err := makeUnderlay(s.Name, netip.PrefixFrom(s.Gateway, s.Underlay.Bits()))
	if err != nil {
		return err
	}
	ul.Close()
	relay := netip.AddrPortFrom(s.Gateway, relayPort).String()
	argv := []string{l.env.Self, "datastore", "--dir", l.st.dir, "--underlay-netns", filepath.Join(netns.Dir, underlayNS(s.Name)), "--relay", relay}
	if len(external) > 0 {
		argv = append(argv, "--etcd-endpoints", strings.Join(external, ","))
	}
	d, err := startDaemon(daemonSpec{lab: s.Name, argv: argv, env: []string{"PATH=" + os.Getenv("PATH")}, log: filepath.Join(l.st.dir, "datastore.log")})
	if err != nil {
		return fmt.Errorf("datastore: %w", err)
	}
	s.DatastorePID = d.pid
	info, err := readDatastoreInfo(ctx, l.st.dir, d)
	if err != nil {
		return err
	}
	scheme := "http"
	if u, err := url.Parse(info.Endpoints[0]); err == nil {
		scheme = u.Scheme
	}
	s.Endpoints, s.HostEndpoints = info.Endpoints, []string{scheme + "://" + relay}
	if err := l.save(); err != nil {
		return err
	}
	kind := "embedded etcd"
	if s.External {
		kind = "external etcd"
	}
	l.out.done(t, "datastore: %s at %s, reached from the hosts at %s", kind, strings.Join(s.Endpoints, ","), s.HostEndpoints[0])
	return nil
}

// startHosts starts host-1..host-n and waits until they are ready.
func (l *Lab) startHosts(ctx context.Context, n int, timeout time.Duration) error {
	t := time.Now()
	daemons := map[string]*daemon{}
	for i := 1; i <= n; i++ {
		name := fmt.Sprintf("host-%d", i)
		d, err := l.startHost(name)
		if err != nil {
			return err
		}
		daemons[name] = d
	}
	if err := l.save(); err != nil {
		return err
	}
	l.out.done(t, "%s on the underlay bridge, calico-node started in each", plural(n, "host"))
	t = time.Now()
	if err := l.waitHosts(ctx, daemons, timeout); err != nil {
		return err
	}
	if err := l.save(); err != nil { // restarted nodes have new pids
		return err
	}
	what := "registered, policy engine in sync"
	if l.state.Backend == BackendBGP {
		what += fmt.Sprintf(", BGP full mesh established (%d sessions)", n*(n-1))
	}
	l.out.done(t, "nodes ready: %s", what)
	return nil
}

// addWorkloads adds the workloads a few at a time (the CNI plugins are
// processes; each host serialises its IPAM calls anyway).
func (l *Lab) addWorkloads(ctx context.Context, specs []WorkloadSpec) error {
	if len(specs) == 0 {
		return nil
	}
	t := time.Now()
	sem := make(chan struct{}, 4)
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
		done int
	)
	for _, s := range specs {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			_, err := l.addWorkload(ctx, s)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			done++
			l.out.waiting("workloads attached %d/%d", done, len(specs))
		}()
	}
	wg.Wait()
	if err := errors.Join(append(errs, l.save())...); err != nil {
		return err
	}
	l.out.done(t, "%s attached by the calico CNI plugin (calico-ipam), echo servers started", plural(len(specs), "workload"))
	return nil
}

// summary prints how to go on.
func (l *Lab) summary(began time.Time) {
	s := l.state
	flag := ""
	if s.Name != DefaultName {
		flag = " --name " + s.Name
	}
	l.out.say("\nLab %q is up in %s: %s, %s, backend %s, pool %s.", s.Name,
		time.Since(began).Round(100*time.Millisecond), plural(len(s.Hosts), "host"), plural(len(s.Workloads), "workload"), s.Backend, s.Pool)
	cmds := [][2]string{
		{`eval "$(calico-lab env` + flag + `)"`, "point calicoctl at the lab (from this machine)"},
		{"calico-lab status" + flag, "hosts, workloads, BGP sessions, agent health"},
		{"calico-lab matrix" + flag, "who reaches whom, probed with real connections"},
		{"calicoctl get workloadendpoints -A -o wide", ""},
		{"calico-lab down" + flag, "remove everything"},
	}
	width := 0
	for _, c := range cmds {
		if c[1] != "" {
			width = max(width, len(c[0]))
		}
	}
	l.out.say("")
	for _, c := range cmds {
		if c[1] == "" {
			l.out.say("  %s", c[0])
			continue
		}
		l.out.say("  %-*s  # %s", width, c[0], c[1])
	}
}
