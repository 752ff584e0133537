package ipamplugin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/containernetworking/cni/pkg/ns"
	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"
	clientv3 "go.etcd.io/etcd/client/v3"

	v3 "github.com/calico-go/calico/api/v3"
	"github.com/calico-go/calico/internal/cni/netconf"
	"github.com/calico-go/calico/internal/datastore"
	"github.com/calico-go/calico/internal/ipam"
	"github.com/calico-go/calico/pkg/client"
)

// SupportedVersions are the CNI spec versions the plugin speaks.
var SupportedVersions = version.PluginSupports("0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")

// Defaults for Options.
const (
	// DefaultTimeout bounds the IPAM work of one invocation once the
	// host-wide lock is held (Calico's 90 s).
	DefaultTimeout = 90 * time.Second
	// DefaultGCGrace spares allocations younger than this from GC, in case
	// the runtime listed its attachments before a concurrent ADD finished.
	DefaultGCGrace = time.Minute
	// releaseTimeout bounds the clean-up after a failed ADD.
	releaseTimeout = 10 * time.Second
)

// Options configure a Plugin. Zero values pick the production defaults.
type Options struct {
	// Env is where results and the log go and where ETCD_ENDPOINTS and
	// the other ETCD_* variables are read (default: the process's own).
	netconf.Env
	// Connect opens the datastore (default: client.New with
	// IPAMConf.ClientConfig).
	Connect func(ctx context.Context, conf *netconf.IPAMConf) (*client.Client, error)
	// Timeout bounds the IPAM work once the lock is held (default
	// DefaultTimeout).
	Timeout time.Duration
	// LockTimeout bounds waiting for the host-wide lock; 0 waits as long as
	// the caller's context allows (the runtime's own timeout).
	LockTimeout time.Duration
	// GCGrace spares young allocations from GC (default DefaultGCGrace;
	// negative means none).
	GCGrace time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Plugin is the calico-ipam CNI plugin.
type Plugin struct {
	opts Options
}

// New returns a plugin with opts, defaults filled in.
func New(opts Options) *Plugin {
	opts.Env = opts.Env.WithDefaults()
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.GCGrace == 0 {
		opts.GCGrace = DefaultGCGrace
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	p := &Plugin{opts: opts}
	if p.opts.Connect == nil {
		p.opts.Connect = p.connect
	}
	return p
}

// Funcs returns the skel callbacks. Each returns a *types.Error (or nil).
func (p *Plugin) Funcs(ctx context.Context) skel.CNIFuncs {
	wrap := func(f func(context.Context, *skel.CmdArgs) error) func(*skel.CmdArgs) error {
		return func(args *skel.CmdArgs) error {
			if err := f(ctx, args); err != nil {
				return Error(err)
			}
			return nil
		}
	}
	return skel.CNIFuncs{Add: wrap(p.Add), Del: wrap(p.Del), Check: wrap(p.Check), Status: wrap(p.Status), GC: wrap(p.GC)}
}

// session is what every command sets up: the configuration, the CNI_ARGS
// (and the address of IP=, if any), a logger, and (when connected) the
// datastore and the allocator.
type session struct {
	conf  *netconf.IPAMConf
	args  netconf.CNIArgs
	ip    netip.Addr
	log   *slog.Logger
	c     *client.Client
	alloc *ipam.Allocator
}

func (s *session) close() {
	if s.c != nil {
		_ = s.c.Close()
	}
}

// begin parses the configuration and CNI_ARGS and builds the logger.
func (p *Plugin) begin(cmd string, args *skel.CmdArgs) (*session, error) {
	conf, err := netconf.ParseIPAM(args.StdinData)
	if err != nil {
		return nil, err
	}
	a, err := netconf.ParseArgs(args.Args)
	if err != nil {
		return nil, err
	}
	ip, err := a.Addr()
	if err != nil {
		return nil, err
	}
	// The default level is WARNING: the runtime shows stderr to users.
	log, err := conf.Logger(p.opts.Stderr, slog.LevelWarn)
	if err != nil {
		return nil, err
	}
	log = log.With("cmd", cmd, "network", conf.Name)
	if args.ContainerID != "" {
		log = log.With("container_id", args.ContainerID)
	}
	return &session{conf: conf, args: a, ip: ip, log: log}, nil
}

// open is begin plus the datastore connection and the allocator.
func (p *Plugin) open(ctx context.Context, cmd string, args *skel.CmdArgs) (*session, error) {
	s, err := p.begin(cmd, args)
	if err != nil {
		return nil, err
	}
	if s.c, err = p.opts.Connect(ctx, s.conf); err != nil {
		return nil, err
	}
	if s.alloc, err = newAllocator(s.c, s.log); err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

// connect opens the datastore described by the configuration.
func (p *Plugin) connect(ctx context.Context, conf *netconf.IPAMConf) (*client.Client, error) {
	cfg, err := conf.ClientConfig(p.opts.LookupEnv)
	if err != nil {
		return nil, err
	}
	c, err := client.New(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to the Calico datastore (etcd at %s; check etcd_endpoints and the etcd_*_file keys "+
			"of the network configuration, or ETCD_ENDPOINTS): %w", cfg.Spec.EtcdEndpoints, err)
	}
	return c, nil
}

// newAllocator runs IPAM on the etcd client of c's backend.
func newAllocator(c *client.Client, log *slog.Logger) (*ipam.Allocator, error) {
	be, ok := c.Backend().(interface{ Client() *clientv3.Client })
	if !ok {
		return nil, fmt.Errorf("%w: the datastore (%T) does not hold Calico IPAM; use datastore_type %q",
			netconf.ErrInvalid, c.Backend(), netconf.DatastoreEtcdV3)
	}
	return ipam.New(ipam.Options{
		Store:     ipam.NewEtcdStore(be.Client(), 0),
		Resources: ipam.ClientResources(c),
		Logger:    log,
	})
}

// checkReady refuses to work while ClusterInformation says the datastore is
// not ready. A datastore without ClusterInformation is taken as ready.
func checkReady(ctx context.Context, c *client.Client) error {
	ci, err := client.Get[*v3.ClusterInformation](ctx, c, "", "default")
	switch {
	case errors.Is(err, client.ErrNotFound):
		return nil
	case err != nil:
		return fmt.Errorf("read ClusterInformation: %w", err)
	case ci.Spec.DatastoreReady != nil && !*ci.Spec.DatastoreReady:
		return fmt.Errorf("%w; retry once the migration or upgrade is done (calicoctl datastore migrate unlock)", ErrNotReady)
	}
	return nil
}

// locked takes the host-wide lock and returns a context whose deadline
// (the IPAM time limit) starts now that the lock is held.
func (p *Plugin) locked(ctx context.Context, s *session) (context.Context, func(), error) {
	lctx, cancelWait := ctx, func() {}
	if p.opts.LockTimeout > 0 {
		lctx, cancelWait = context.WithTimeout(ctx, p.opts.LockTimeout)
	}
	unlock, err := lockHost(lctx, s.conf.IPAMLockFile, s.log)
	cancelWait()
	if err != nil {
		return nil, nil, err
	}
	wctx, cancel := context.WithTimeout(ctx, p.opts.Timeout)
	return wctx, func() { cancel(); unlock() }, nil
}

// Add allocates the container's addresses and prints them.
func (p *Plugin) Add(ctx context.Context, args *skel.CmdArgs) (retErr error) {
	// skel refuses a CNI_NETNS that is the plugin's own namespace, but only
	// after ADD returns: refuse it before anything is allocated.
	if o := strings.ToLower(args.NetnsOverride); o != "true" && o != "1" {
		if same, err := ns.CheckNetNS(args.Netns); err != nil {
			return err
		} else if same {
			return types.NewError(types.ErrInvalidNetNS, "CNI_NETNS is the plugin's own network namespace; pass the container's", "")
		}
	}
	s, err := p.open(ctx, "ADD", args)
	if err != nil {
		return err
	}
	defer s.close()
	node, err := s.conf.ResolveNodename()
	if err != nil {
		return err
	}
	if err := checkReady(ctx, s.c); err != nil {
		return err
	}
	nodeLabels, err := p.nodeLabels(ctx, s.c, node)
	if err != nil {
		return err
	}
	wctx, done, err := p.locked(ctx, s)
	if err != nil {
		return err
	}
	defer done()
	handle := netconf.HandleID(s.conf.Name, args.ContainerID)
	log := s.log.With("handle", handle, "node", node)

	prefixes, reused, err := p.owned(wctx, s, handle)
	if err != nil {
		return err
	}
	if !reused {
		prefixes, err = p.assign(wctx, s, handle, node, nodeLabels)
		if err != nil {
			return err
		}
		defer func() {
			if retErr != nil {
				p.release(ctx, s, handle)
			}
		}()
	}
	res := &types100.Result{CNIVersion: types100.ImplementedSpecVersion}
	for _, pfx := range prefixes {
		res.IPs = append(res.IPs, &types100.IPConfig{
			Address: net.IPNet{IP: pfx.Addr().AsSlice(), Mask: net.CIDRMask(pfx.Bits(), pfx.Addr().BitLen())},
		})
	}
	out, err := res.GetAsVersion(s.conf.CNIVersion)
	if err != nil {
		return types.NewError(types.ErrIncompatibleCNIVersion, fmt.Sprintf("cannot express the result in CNI version %s: %v", s.conf.CNIVersion, err), "")
	}
	if err := out.PrintTo(p.opts.Stdout); err != nil {
		return fmt.Errorf("print result: %w", err)
	}
	log.Info("assigned addresses", "addresses", fmt.Sprint(prefixes), "reused", reused)
	return nil
}

// owned returns what the handle already owns, so that a repeated ADD for
// the same container (a runtime retry) gets the same addresses instead of
// leaking the first ones. reused is false when the handle owns nothing.
func (p *Plugin) owned(ctx context.Context, s *session, handle string) (_ []netip.Prefix, reused bool, _ error) {
	ips, err := s.alloc.IPsByHandle(ctx, handle)
	if errors.Is(err, datastore.ErrNotFound) || (err == nil && len(ips) == 0) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("read the addresses of %s: %w", handle, err)
	}
	var out []netip.Prefix
	var n4, n6 int
	for _, ip := range ips {
		al, err := s.alloc.GetAssignmentAttributes(ctx, ip)
		if err != nil {
			return nil, false, fmt.Errorf("read the allocation of %s: %w", ip, err)
		}
		out = append(out, netip.PrefixFrom(ip, al.Block.Bits()))
		if ip.Is4() {
			n4++
		} else {
			n6++
		}
	}
	want := s.ip
	match := (want.IsValid() && len(ips) == 1 && ips[0] == want) ||
		(!want.IsValid() && (n4 > 0) == s.conf.IPAM.WantIPv4() && (n6 > 0) == s.conf.IPAM.WantIPv6())
	if !match {
		return nil, false, fmt.Errorf("%w: container %s already holds %v under handle %s, which does not fit this request; "+
			"run DEL for the container first", netconf.ErrInvalid, strings.TrimPrefix(handle, s.conf.Name+"."), ips, handle)
	}
	return out, true, nil
}

// assign allocates the request: the address of CNI_ARGS IP=, or one per
// requested family from the configured (or all eligible) pools.
func (p *Plugin) assign(ctx context.Context, s *session, handle, node string, nodeLabels map[string]string) ([]netip.Prefix, error) {
	attrs := ipam.Attrs{Node: node, Pod: s.args.PodName, Namespace: s.args.PodNamespace}
	if ip := s.ip; ip.IsValid() {
		err := s.alloc.AssignIP(ctx, ipam.AssignIPArgs{IP: ip, HandleID: handle, Attrs: attrs, Hostname: node,
			IntendedUse: v3.IPPoolAllowedUseWorkload})
		if err != nil {
			p.cleanUp(ctx, s, handle, err)
			return nil, fmt.Errorf("assign %s (CNI_ARGS IP=) to %s on node %s: %w%s", ip, handle, node, err, hint(err))
		}
		al, err := s.alloc.GetAssignmentAttributes(ctx, ip)
		if err != nil {
			p.release(ctx, s, handle)
			return nil, fmt.Errorf("read the allocation of %s: %w", ip, err)
		}
		return []netip.Prefix{netip.PrefixFrom(ip, al.Block.Bits())}, nil
	}
	req := ipam.AutoAssignArgs{
		HandleID: handle, Attrs: attrs, Hostname: node, NodeLabels: nodeLabels,
		IPv4Pools: s.conf.IPAM.IPv4Pools, IPv6Pools: s.conf.IPAM.IPv6Pools,
		IntendedUse: v3.IPPoolAllowedUseWorkload,
	}
	if s.conf.IPAM.WantIPv4() {
		req.Num4 = 1
	}
	if s.conf.IPAM.WantIPv6() {
		req.Num6 = 1
	}
	res, err := s.alloc.AutoAssign(ctx, req)
	if err != nil {
		p.cleanUp(ctx, s, handle, err)
		return nil, fmt.Errorf("assign %s to %s on node %s: %w%s", families(req), handle, node, err, hint(err))
	}
	if len(res.IPv4) != req.Num4 || len(res.IPv6) != req.Num6 {
		p.release(ctx, s, handle)
		return nil, fmt.Errorf("assign %s to %s on node %s: IPAM returned %v %v", families(req), handle, node, res.IPv4, res.IPv6)
	}
	return append(res.IPv4, res.IPv6...), nil
}

// cleanUp releases the handle after a failed assignment whose outcome is
// unknown (the datastore went away mid-write), so that nothing stays
// allocated. Other failures allocated nothing.
func (p *Plugin) cleanUp(ctx context.Context, s *session, handle string, err error) {
	if errors.Is(err, ipam.ErrOutcomeUnknown) {
		p.release(ctx, s, handle)
	}
}

// release frees the handle after a failure, with a fresh time limit.
func (p *Plugin) release(ctx context.Context, s *session, handle string) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), releaseTimeout)
	defer cancel()
	if err := s.alloc.ReleaseByHandle(rctx, handle); err != nil {
		s.log.Error("release the addresses of a failed ADD; `calicoctl ipam check` will report them as leaked",
			"handle", handle, "error", err)
	}
}

func families(req ipam.AutoAssignArgs) string {
	switch {
	case req.Num4 > 0 && req.Num6 > 0:
		return "an IPv4 and an IPv6 address"
	case req.Num6 > 0:
		return "an IPv6 address"
	}
	return "an IPv4 address"
}

// hint says what to do about an IPAM failure.
func hint(err error) string {
	switch {
	case errors.Is(err, ipam.ErrPoolNotFound):
		return "; fix ipam.ipv4_pools / ipam.ipv6_pools in the network configuration: name existing IPPools by name or CIDR (calicoctl get ippools)"
	case errors.Is(err, ipam.ErrPoolDisabled):
		return "; a pool named in ipam.ipv4_pools / ipam.ipv6_pools is disabled: enable it or name another pool"
	case errors.Is(err, ipam.ErrPoolNotAllowed):
		return "; the pool does not allow workloads on this node: check its nodeSelector, namespaceSelector and allowedUses, or name another pool"
	case errors.Is(err, ipam.ErrNoPools):
		return "; create an enabled IPPool of that IP family whose nodeSelector matches this node and whose allowedUses include Workload " +
			"(calicoctl get ippools -o wide), or fix ipam.ipv4_pools / ipam.ipv6_pools"
	case errors.Is(err, ipam.ErrNoAddresses):
		return "; the eligible pools are exhausted: add an IPPool, or find leaked addresses with `calicoctl ipam check` and release them"
	case errors.Is(err, ipam.ErrAlreadyAssigned):
		return "; another workload holds it: ask for a free address or none"
	case errors.Is(err, ipam.ErrAffinityMismatch):
		return "; its block belongs to another node and strictAffinity is on: ask for an address of this node's blocks"
	case errors.Is(err, ipam.ErrNotInPool):
		return "; ask for an address inside an enabled IPPool that allows workloads"
	case errors.Is(err, ipam.ErrOutcomeUnknown), errors.Is(err, datastore.ErrUnavailable):
		return "; the datastore stopped answering: check etcd and retry"
	}
	return ""
}

// nodeLabels returns the labels of the Calico Node (for the pools'
// nodeSelector); a node not registered yet has none.
func (p *Plugin) nodeLabels(ctx context.Context, c *client.Client, node string) (map[string]string, error) {
	n, err := client.Get[*v3.Node](ctx, c, "", node)
	switch {
	case errors.Is(err, client.ErrNotFound):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("read Node %s: %w", node, err)
	}
	return n.Labels, nil
}
