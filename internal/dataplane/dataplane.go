package dataplane

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/calico-go/calico/internal/dpapi"
	"github.com/calico-go/calico/internal/kernel/nft"
)

// Options configure a Dataplane.
type Options struct {
	// NetNSFd is the network namespace to program (0: the process's).
	NetNSFd int
	// TableName is the nftables table (family inet); default "calico".
	TableName string
	// Logger; default discards.
	Logger *slog.Logger
	// Registerer receives the dataplane metrics; nil registers nothing.
	Registerer prometheus.Registerer
	// DisablePolicyGroups writes one jump per policy even where a run of
	// simple policies could be folded into set lookups (for comparison).
	DisablePolicyGroups bool
	// Offline renders and diffs without a kernel (tests).
	Offline bool
	// RefreshInterval overrides Config.RefreshInterval when non-zero.
	RefreshInterval time.Duration
	// MaxFailures is how many applies in a row may fail before Run
	// returns an error; default 10.
	MaxFailures int
	// OnApply, when set, is called after every apply attempt.
	OnApply func(ApplyResult)
}

// ApplyResult describes one apply attempt, for Options.OnApply.
type ApplyResult struct {
	Stats    nft.Stats
	Err      error
	InSync   bool
	Duration time.Duration
}

// Dataplane turns dpapi messages into the nftables table. Messages update
// the managers' state (cheap, marks what is dirty); an apply renders what
// is dirty into the table's desired state and sends one transaction.
type Dataplane struct {
	opts    Options
	log     *slog.Logger
	table   *nft.Table
	metrics *metrics

	cfg        *renderConfig
	inSync     bool
	tableFound bool

	ipsets    *ipSetManager
	policies  *policyManager
	groups    *groupManager
	workloads *workloadManager
	hosts     *hostManager
	net       *networkManager
	failures  int
	// netFailures counts route and device applies that failed in a row.
	netFailures int

	// iterHook, when set (tests), is called after each loop iteration
	// with the number of batches it handled.
	iterHook func(batches int)
}

// New returns a Dataplane; nothing touches the kernel before Run.
func New(opts Options) (*Dataplane, error) {
	if opts.MaxFailures == 0 {
		opts.MaxFailures = 10
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, err
	}
	t := nft.New(nft.Options{Name: opts.TableName, NetNSFd: opts.NetNSFd, Offline: opts.Offline, Logger: log})
	d := &Dataplane{opts: opts, log: log, table: t, metrics: m}
	d.ipsets = newIPSetManager(t)
	d.policies = newPolicyManager(t)
	d.groups = newGroupManager(t, d.policies, d.ipsets)
	d.workloads = newWorkloadManager(t, d.policies, d.groups)
	d.hosts = newHostManager(t, d.policies)
	if d.net, err = newNetworkManager(opts, log); err != nil {
		return nil, err
	}
	d.cfg = newRenderConfig(dpapi.Config{}, !opts.DisablePolicyGroups)
	return d, nil
}

// Run programs the dataplane from batches of messages until ctx ends or
// updates is closed. At start it reads the table back: an existing table
// (from a previous run) is left exactly as it is until InSync, so
// established flows and the policy protecting them survive a restart; with
// no table it writes one that drops all traffic to and from workload
// interfaces. At InSync it reads the kernel back again and writes the
// complete state as one transaction holding only the differences.
func (d *Dataplane) Run(ctx context.Context, updates <-chan []dpapi.Message) error {
	defer d.table.Close()
	defer d.net.close()
	if err := d.start(ctx); err != nil {
		return err
	}
	refresh := &ticker{}
	defer refresh.stop()
	routeRefresh := &ticker{}
	defer routeRefresh.stop()
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	netRetry := time.NewTimer(time.Hour)
	netRetry.Stop()
	for {
		// The refresh intervals come with the configuration.
		refresh.every(d.refreshInterval())
		routeRefresh.every(d.cfg.cfg.RouteRefreshInterval)
		n := 0
		select {
		case <-ctx.Done():
			return nil
		case batch, ok := <-updates:
			if !ok {
				return nil
			}
			d.handle(batch)
			n++
			for more := true; more; {
				select {
				case b, ok := <-updates:
					if !ok {
						return nil
					}
					d.handle(b)
					n++
				default:
					more = false
				}
			}
		case <-refresh.c:
			d.table.MarkForResync()
		case <-routeRefresh.c:
			d.net.kernelDirty = true
		case <-retry.C:
		case <-netRetry.C:
			d.net.kernelDirty = true
		}
		err := d.apply(ctx)
		if err != nil {
			if d.failures >= d.opts.MaxFailures {
				return fmt.Errorf("dataplane: %d applies failed in a row: %w", d.failures, err)
			}
			retry.Reset(backoff(d.failures))
		}
		if d.applyNetwork(ctx) != nil {
			netRetry.Reset(backoff(d.netFailures))
		}
		if d.iterHook != nil {
			d.iterHook(n)
		}
	}
}

// ticker is a time.Ticker whose interval can change (0: stopped).
type ticker struct {
	t  *time.Ticker
	c  <-chan time.Time
	iv time.Duration
}

func (t *ticker) every(iv time.Duration) {
	if iv == t.iv {
		return
	}
	t.stop()
	if iv > 0 {
		t.t = time.NewTicker(iv)
		t.c = t.t.C
	}
	t.iv = iv
}

func (t *ticker) stop() {
	if t.t != nil {
		t.t.Stop()
		t.t, t.c = nil, nil
	}
}

// applyNetwork programs routes and the VXLAN device when they may have
// changed, once in sync. Its failures are retried with backoff and do not
// count against the table's.
func (d *Dataplane) applyNetwork(ctx context.Context) error {
	if !d.inSync || !d.net.kernelDirty {
		return nil
	}
	if err := d.net.apply(ctx, d.cfg.cfg); err != nil {
		d.netFailures++
		d.metrics.routeFails.Inc()
		return err
	}
	d.netFailures = 0
	return nil
}

func backoff(failures int) time.Duration {
	d := 50 * time.Millisecond << min(failures, 7)
	return min(d, 5*time.Second)
}

func (d *Dataplane) refreshInterval() time.Duration {
	if d.opts.RefreshInterval != 0 {
		return d.opts.RefreshInterval
	}
	return d.cfg.cfg.RefreshInterval
}

// start reads the table back and writes the fail-closed table when there
// is none.
func (d *Dataplane) start(ctx context.Context) error {
	found, err := d.table.Load(ctx)
	if err != nil {
		return fmt.Errorf("dataplane: read back table: %w", err)
	}
	d.tableFound = found
	if found {
		d.log.Info("existing table kept as it is until in sync", "table", d.table.Name())
		return nil
	}
	renderFailClosed(d.table, d.cfg)
	for {
		err := d.write(ctx)
		if err == nil {
			return nil
		}
		if d.failures >= d.opts.MaxFailures {
			return fmt.Errorf("dataplane: write fail-closed table: %w", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff(d.failures)):
		}
	}
}

// handle applies one batch to the managers' state.
func (d *Dataplane) handle(batch []dpapi.Message) {
	for _, msg := range batch {
		var err error
		switch m := msg.(type) {
		case dpapi.ConfigUpdate:
			d.setConfig(m.Config)
		case dpapi.IPSetUpdate:
			d.ipsets.update(m)
		case dpapi.IPSetDelta:
			err = d.ipsets.delta(m)
		case dpapi.IPSetRemove:
			d.ipsets.remove(m.ID)
		case dpapi.PolicyUpdate:
			d.policies.updatePolicy(m.ID, m.Policy)
		case dpapi.PolicyRemove:
			d.policies.removePolicy(m.ID)
		case dpapi.ProfileUpdate:
			d.policies.updateProfile(m.ID, m.Profile)
		case dpapi.ProfileRemove:
			d.policies.removeProfile(m.ID)
		case dpapi.WorkloadEndpointUpdate:
			d.workloads.update(m.ID, m.Endpoint)
		case dpapi.WorkloadEndpointRemove:
			d.workloads.remove(m.ID)
		case dpapi.HostEndpointUpdate:
			d.hosts.update(m.ID, m.Endpoint)
		case dpapi.HostEndpointRemove:
			d.hosts.remove(m.ID)
		case dpapi.NodeUpdate, dpapi.NodeRemove, dpapi.IPPoolUpdate, dpapi.IPPoolRemove, dpapi.RouteUpdate, dpapi.RouteRemove:
			d.net.handle(m)
		case dpapi.InSync:
			if !d.inSync {
				d.inSync = true
				// The kernel may have changed since start: diff against
				// what it holds now.
				d.table.MarkForResync()
			}
		}
		if err != nil {
			d.log.Error("dataplane message", "type", fmt.Sprintf("%T", msg), "error", err)
		}
		d.metrics.messages.WithLabelValues(fmt.Sprintf("%T", msg)[len("dpapi."):]).Inc()
	}
}

func (d *Dataplane) setConfig(cfg dpapi.Config) {
	old := d.cfg
	d.cfg = newRenderConfig(cfg, !d.opts.DisablePolicyGroups)
	d.policies.markAllDirty()
	d.workloads.markAllDirty()
	d.hosts.markAllDirty()
	d.net.kernelDirty, d.net.nftDirty = true, true
	if old.cfg.IPv6Support != cfg.IPv6Support {
		d.ipsets.markAllDirty()
	}
	if !d.inSync && !d.tableFound && !equalStrings(old.prefixes, d.cfg.prefixes) {
		// Still fail closed, now for the configured prefixes.
		for _, c := range []string{chainFilterInput, chainFilterForward, chainFilterOutput} {
			d.table.DeleteChain(c)
		}
		renderFailClosed(d.table, d.cfg)
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// render writes everything dirty into the table's desired state.
func (d *Dataplane) render() error {
	c := d.cfg
	err := d.ipsets.render(c.families())
	d.groups.setFamilies(c.families())
	changedPol := d.policies.takeChanged()
	changedSets := d.ipsets.takeChanged()
	d.policies.render(c)
	d.workloads.policiesChanged(changedPol)
	d.hosts.policiesChanged(changedPol)
	d.workloads.render(c)
	d.hosts.render(c)
	d.groups.invalidate(changedPol, changedSets)
	d.groups.render()
	if nerr := d.net.render(d.table, c); nerr != nil {
		err = errors.Join(err, nerr)
	}
	renderStatic(d.table, c, d.hosts, d.net.inputRules(c))
	return err
}

// apply renders and writes, once in sync. Before InSync it only writes
// the fail-closed table (when it changed).
func (d *Dataplane) apply(ctx context.Context) error {
	if d.inSync {
		if err := d.render(); err != nil {
			d.log.Error("dataplane render", "error", err)
		}
	}
	if !d.table.Pending() || (!d.inSync && d.tableFound) {
		return nil
	}
	return d.write(ctx)
}

func (d *Dataplane) write(ctx context.Context) error {
	start := time.Now()
	st, err := d.table.Apply(ctx)
	res := ApplyResult{Stats: st, Err: err, InSync: d.inSync, Duration: time.Since(start)}
	d.metrics.applyTime.Observe(res.Duration.Seconds())
	if err != nil {
		d.failures++
		d.metrics.applyFails.Inc()
		d.log.Error("dataplane apply failed", "failures", d.failures, "error", err)
	} else {
		d.failures = 0
		if !st.Empty() {
			d.log.Debug("dataplane applied", "duration", res.Duration, "messages", st.Messages,
				"chains_written", st.ChainsWritten, "elements_added", st.ElementsAdded, "elements_removed", st.ElementsRemoved)
		}
	}
	d.updateGauges()
	if d.opts.OnApply != nil {
		d.opts.OnApply(res)
	}
	return err
}

func (d *Dataplane) updateGauges() {
	sets, members := d.ipsets.stats()
	d.metrics.ipSets.Set(float64(sets))
	d.metrics.ipSetMembers.Set(float64(members))
	d.metrics.endpoints.Set(float64(d.workloads.count()))
	d.metrics.hostEPs.Set(float64(d.hosts.count()))
	d.metrics.policies.Set(float64(len(d.policies.policies)))
	d.metrics.chains.Set(float64(len(d.table.ChainNames())))
	if d.inSync {
		d.metrics.inSync.Set(1)
	}
}

// Render returns the table's desired state in nft syntax (after rendering
// what is pending); for golden tests and debugging.
func (d *Dataplane) Render() string {
	if d.inSync {
		_ = d.render()
	}
	return d.table.Render()
}
