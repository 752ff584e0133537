// Package controller runs one node's BGP: it watches the datastore (Nodes,
// BGPConfigurations, BGPPeers, BGPFilters, IPPools) and the node's IPAM
// blocks, computes the desired speaker state (internal/bgp/desired), applies
// it to the Speaker, and programs the kernel: a blackhole for each local
// block and a route for each learned prefix, owned by one route protocol
// number and reconciled by read-back and diff (internal/kernel/route).
//
// Everything converges on one goroutine: datastore and IPAM changes
// recompute the desired state, speaker changes recompute the kernel routes,
// and a refresh timer re-applies both (repairing routes deleted by hand and
// retrying anything that failed). Sessions that go away take their routes
// with them: the speaker forgets them and the next kernel apply deletes
// them. On shutdown the kernel routes are left in place, so a restart does
// not flap them; the next start reconciles.
package controller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"time"

	v3 "github.com/calico-go/calico/api/v3"
	"github.com/calico-go/calico/internal/bgp"
	"github.com/calico-go/calico/internal/bgp/desired"
	"github.com/calico-go/calico/internal/bgp/status"
	"github.com/calico-go/calico/internal/kernel/route"
	"github.com/calico-go/calico/pkg/client"
)

// Defaults for Options.
const (
	DefaultRefreshInterval = 10 * time.Second
	DefaultIPAMInterval    = 3 * time.Second
	DefaultRestartGrace    = 60 * time.Second
	// settle is how long after every session is established inherited
	// routes are still kept (the peers' initial updates are in flight).
	settle = 3 * time.Second
)

// IPAM reports a node's IPAM state.
type IPAM interface {
	// Local returns the node's confirmed affine blocks and the addresses
	// its workloads borrowed from other blocks.
	Local(ctx context.Context, node string) (blocks []netip.Prefix, borrowed []netip.Addr, err error)
}

// RouteTable is the kernel route driver (route.Table).
type RouteTable interface {
	Set(routes []route.Route)
	Apply(ctx context.Context) (route.Stats, error)
	// List reads back the routes of ours in the kernel.
	List() ([]route.Route, error)
}

// Options configure Run.
type Options struct {
	NodeName string
	Client   *client.Client
	IPAM     IPAM
	// IPAMChanged, when set, signals that IPAM may have changed; IPAM is
	// also polled every IPAMInterval.
	IPAMChanged  <-chan struct{}
	IPAMInterval time.Duration
	Speaker      bgp.Speaker
	Routes       RouteTable
	// Secret resolves BGP password secretKeyRefs.
	Secret func(name, key string) (string, bool)
	// RefreshInterval re-applies kernel routes and retries failures.
	RefreshInterval time.Duration
	// StatusSocket, when set, serves the session states for calicoctl.
	StatusSocket string
	// RestartGrace bounds how long learned routes found in the kernel at
	// start (left by the previous run) are kept while sessions come back;
	// they go earlier, once every session is established and has had
	// time to send its routes (default 60s).
	RestartGrace time.Duration
	Logger       *slog.Logger
}

// Run runs until ctx ends. It returns an error only for bad options or a
// status socket that cannot be served.
func Run(ctx context.Context, opts Options) error {
	if opts.NodeName == "" || opts.Client == nil || opts.IPAM == nil || opts.Speaker == nil || opts.Routes == nil {
		return errors.New("bgp controller: NodeName, Client, IPAM, Speaker and Routes are required")
	}
	if opts.RefreshInterval <= 0 {
		opts.RefreshInterval = DefaultRefreshInterval
	}
	if opts.IPAMInterval <= 0 {
		opts.IPAMInterval = DefaultIPAMInterval
	}
	if opts.RestartGrace <= 0 {
		opts.RestartGrace = DefaultRestartGrace
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	c := &controller{opts: opts, log: opts.Logger, cache: newCache(), dirty: make(chan struct{}, 1),
		graceEnd: time.Now().Add(opts.RestartGrace)}
	if live, err := opts.Routes.List(); err == nil {
		for _, r := range live {
			if r.Type != route.Blackhole {
				c.inherited = append(c.inherited, r)
			}
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 1)
	if opts.StatusSocket != "" {
		go func() {
			if err := status.Serve(ctx, opts.StatusSocket, c.report, c.log); err != nil {
				errc <- err
				cancel()
			}
		}()
	}
	for _, kind := range watchedKinds {
		go c.watch(ctx, kind)
	}
	c.loop(ctx)
	stopCtx, stop := context.WithTimeout(context.Background(), 5*time.Second)
	defer stop()
	if err := opts.Speaker.Stop(stopCtx); err != nil {
		c.log.Warn("stop bgp speaker", "error", err)
	}
	select {
	case err := <-errc:
		return err
	default:
		return nil
	}
}

type controller struct {
	opts  Options
	log   *slog.Logger
	cache *cache
	dirty chan struct{}

	// Owned by the loop goroutine.
	started  bool
	global   bgp.Global
	state    desired.State
	haveDesc bool
	blocks   []netip.Prefix
	borrowed []netip.Addr
	warned   map[string]bool
	failing  bool // the last speaker apply failed: retry on refresh
	// inherited are learned routes a previous run left in the kernel,
	// kept until graceEnd so that a restart does not flap them.
	inherited  []route.Route
	graceEnd   time.Time
	allUpSince time.Time
}

func (c *controller) markDirty() {
	select {
	case c.dirty <- struct{}{}:
	default:
	}
}

func (c *controller) loop(ctx context.Context) {
	refresh := time.NewTicker(c.opts.RefreshInterval)
	defer refresh.Stop()
	ipamTick := time.NewTicker(c.opts.IPAMInterval)
	defer ipamTick.Stop()
	c.pollIPAM(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.dirty:
			c.reconcile(ctx)
		case <-c.opts.IPAMChanged:
			if c.pollIPAM(ctx) {
				c.reconcile(ctx)
			}
		case <-ipamTick.C:
			if c.pollIPAM(ctx) {
				c.reconcile(ctx)
			}
		case <-c.opts.Speaker.Changed():
			c.programKernel(ctx)
		case <-refresh.C:
			if c.failing {
				c.reconcile(ctx)
			} else {
				c.programKernel(ctx)
			}
		}
	}
}

// pollIPAM reloads the node's blocks and borrowed addresses and says
// whether they changed.
func (c *controller) pollIPAM(ctx context.Context) bool {
	blocks, borrowed, err := c.opts.IPAM.Local(ctx, c.opts.NodeName)
	if err != nil {
		if ctx.Err() == nil {
			c.log.Warn("read IPAM blocks", "error", err)
		}
		return false
	}
	slices.SortFunc(blocks, netip.Prefix.Compare)
	slices.SortFunc(borrowed, netip.Addr.Compare)
	if slices.Equal(blocks, c.blocks) && slices.Equal(borrowed, c.borrowed) && c.haveDesc {
		return false
	}
	c.blocks, c.borrowed = blocks, borrowed
	return true
}

// reconcile recomputes the desired state and applies it.
func (c *controller) reconcile(ctx context.Context) {
	if !c.cache.synced() {
		return // nothing is touched before every kind was listed once
	}
	in := c.cache.input(c.opts.NodeName)
	in.Blocks, in.Borrowed, in.Secret = c.blocks, c.borrowed, c.opts.Secret
	st, err := desired.Compute(in)
	if err != nil {
		c.failing = false
		if c.started {
			c.log.Warn("bgp stopped: no desired state", "error", err)
			c.stopSpeaker(ctx)
		} else {
			c.logOnce("bgp waiting: " + err.Error())
		}
		return
	}
	for _, w := range st.Warnings {
		c.logOnce(w)
	}
	c.state, c.haveDesc = st, true
	c.failing = c.applySpeaker(ctx, st) != nil
	c.programKernel(ctx)
}

func (c *controller) logOnce(msg string) {
	if c.warned == nil {
		c.warned = map[string]bool{}
	}
	if !c.warned[msg] {
		c.warned[msg] = true
		c.log.Warn(msg)
	}
}

func (c *controller) applySpeaker(ctx context.Context, st desired.State) error {
	if c.started && !globalEqual(c.global, st.Global) {
		c.log.Info("bgp identity changed: restarting speaker", "asn", st.Global.ASN, "router_id", st.Global.RouterID.String())
		c.stopSpeaker(ctx)
	}
	if !c.started {
		if err := c.opts.Speaker.Start(ctx, st.Global); err != nil {
			c.log.Error("start bgp speaker", "error", err)
			return err
		}
		c.started, c.global = true, st.Global
	}
	var errs []error
	if err := c.opts.Speaker.SetExportable(ctx, st.Exportable); err != nil {
		errs = append(errs, err)
	}
	if err := c.opts.Speaker.SetRoutes(ctx, st.Routes); err != nil {
		errs = append(errs, err)
	}
	if err := c.opts.Speaker.SetPeers(ctx, st.Peers); err != nil {
		errs = append(errs, err)
	}
	err := errors.Join(errs...)
	if err != nil {
		c.log.Warn("apply bgp configuration", "error", err)
	}
	return err
}

func (c *controller) stopSpeaker(ctx context.Context) {
	if err := c.opts.Speaker.Stop(ctx); err != nil {
		c.log.Warn("stop bgp speaker", "error", err)
	}
	c.started, c.haveDesc = false, false
	c.state = desired.State{}
	c.inherited = nil
	// Our routes go with the speaker.
	c.opts.Routes.Set(nil)
	if _, err := c.opts.Routes.Apply(ctx); err != nil {
		c.log.Warn("remove bgp routes", "error", err)
	}
}

// programKernel writes blackholes and learned routes.
func (c *controller) programKernel(ctx context.Context) {
	if !c.haveDesc {
		return
	}
	var learned []bgp.LearnedRoute
	if c.started {
		var err error
		learned, err = c.opts.Speaker.Learned(ctx)
		if err != nil {
			c.log.Warn("read learned routes", "error", err)
			return
		}
	}
	routes := KernelRoutes(c.state, learned)
	routes = c.withInherited(ctx, routes)
	c.opts.Routes.Set(routes)
	st, err := c.opts.Routes.Apply(ctx)
	if err != nil {
		c.log.Warn("program kernel routes", "error", err)
	}
	if st.Added+st.Replaced+st.Deleted > 0 {
		c.log.Info("kernel routes updated", "added", st.Added, "replaced", st.Replaced, "deleted", st.Deleted)
	}
}

// withInherited adds the routes a previous run left in the kernel while
// the restart grace lasts: until every session has been established for
// a moment, or RestartGrace passed.
func (c *controller) withInherited(ctx context.Context, routes []route.Route) []route.Route {
	if len(c.inherited) == 0 {
		return routes
	}
	now := time.Now()
	if len(c.state.Peers) == 0 {
		c.graceEnd = now
	}
	if c.started && now.Before(c.graceEnd) {
		peers, err := c.opts.Speaker.Peers(ctx)
		allUp := err == nil && len(peers) > 0
		for _, p := range peers {
			allUp = allUp && p.State == bgp.StateEstablished
		}
		switch {
		case !allUp:
			c.allUpSince = time.Time{}
		case c.allUpSince.IsZero():
			c.allUpSince = now
		case now.Sub(c.allUpSince) > settle:
			c.graceEnd = now
		}
	}
	if !now.Before(c.graceEnd) {
		c.log.Info("restart grace over: routes of the previous run no longer kept", "routes", len(c.inherited))
		c.inherited = nil
		return routes
	}
	have := make(map[netip.Prefix]bool, len(routes))
	for _, r := range routes {
		have[r.Dst] = true
	}
	for _, r := range c.inherited {
		if !have[r.Dst] {
			routes = append(routes, r)
		}
	}
	return routes
}

// KernelRoutes are the routes the node's kernel should hold for BGP: a
// blackhole for each local block, the reachableBy static routes, and the
// best learned route of each prefix, except prefixes this node originates
// itself, prefixes inside State.NoKernel, and routes whose next hop is this
// node.
func KernelRoutes(st desired.State, learned []bgp.LearnedRoute) []route.Route {
	var out []route.Route
	own := map[netip.Prefix]bool{}
	for _, b := range st.Blackholes {
		own[b] = true
		out = append(out, route.Route{Dst: b, Type: route.Blackhole})
	}
	for _, r := range st.Routes {
		own[r.Prefix] = true
	}
	for _, s := range st.Static {
		own[s.Dst] = true
		out = append(out, route.Route{Dst: s.Dst, Gateway: s.Gateway})
	}
	for _, l := range learned {
		if own[l.Prefix] || !l.NextHop.IsValid() || l.NextHop == st.NodeIPv4 || l.NextHop == st.NodeIPv6 ||
			l.NextHop.IsUnspecified() || l.NextHop.Is4() != l.Prefix.Addr().Is4() {
			continue
		}
		if slices.ContainsFunc(st.NoKernel, func(p netip.Prefix) bool { return p.Bits() <= l.Prefix.Bits() && p.Contains(l.Prefix.Addr()) }) {
			continue
		}
		out = append(out, route.Route{Dst: l.Prefix, Gateway: l.NextHop})
	}
	return out
}

func globalEqual(a, b bgp.Global) bool {
	return a.ASN == b.ASN && a.RouterID == b.RouterID && a.ListenPort == b.ListenPort && slices.Equal(a.ListenAddrs, b.ListenAddrs)
}

// report is the status socket's Source.
func (c *controller) report(ctx context.Context) (status.Report, error) {
	peers, err := c.opts.Speaker.Peers(ctx)
	if errors.Is(err, bgp.ErrNotStarted) {
		return status.Report{Node: c.opts.NodeName, Time: time.Now()}, nil
	}
	if err != nil {
		return status.Report{}, fmt.Errorf("bgp peers: %w", err)
	}
	return status.Report{Node: c.opts.NodeName, Peers: peers, Time: time.Now()}, nil
}

var watchedKinds = []string{v3.KindNode, v3.KindBGPConfiguration, v3.KindBGPPeer, v3.KindBGPFilter, v3.KindIPPool}
