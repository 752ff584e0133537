// Package cni is the logic of the "calico" CNI plugin: it puts a workload
// on the network the way Project Calico does, for any CNI runtime, CNI spec
// 0.1.0 to 1.1.0.
//
// ADD delegates address assignment to the configured IPAM plugin
// (calico-ipam or host-local), creates the veth pair and routes (package
// veth), writes the WorkloadEndpoint and prints the result; if any step
// fails, everything done so far is undone. DEL removes the interface, the
// endpoint (only when it still belongs to this container) and the
// addresses, and succeeds whatever is already gone. CHECK compares the live
// state with the previous result and reports each difference. STATUS tells
// whether the datastore is reachable and ready. GC removes the endpoints
// and addresses of attachments the runtime no longer lists.
//
// Every failure reaches the runtime as a CNI error (types.Error) whose code
// follows the CNI spec and whose message says what to fix; see Error.
package cni

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"

	v3 "github.com/calico-go/calico/api/v3"
	"github.com/calico-go/calico/internal/cni/netconf"
	"github.com/calico-go/calico/internal/cni/veth"
	"github.com/calico-go/calico/internal/netns"
	"github.com/calico-go/calico/pkg/client"
)

// SupportedVersions are the CNI spec versions the plugin speaks.
var SupportedVersions = version.PluginSupports("0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")

// DefaultTimeout bounds one invocation.
const DefaultTimeout = 90 * time.Second

// Sentinel errors.
var (
	// ErrNotReady: ClusterInformation says the datastore is not ready.
	ErrNotReady = errors.New("calico is not ready: ClusterInformation \"default\" has datastoreReady=false")
	// ErrNoAddress: IPAM returned no address the plugin can use.
	ErrNoAddress = errors.New("IPAM returned no usable address")
	// ErrEndpointMismatch: CHECK found the WorkloadEndpoint missing or
	// different.
	ErrEndpointMismatch = errors.New("workload endpoint differs from the expected state")
	// ErrNoPrevResult: CHECK was called without a previous result.
	ErrNoPrevResult = errors.New("CHECK needs prevResult in the network configuration")
)

// Options configure a Plugin. Zero values pick the production defaults.
type Options struct {
	// Env is where results and the log go and where FELIX_INTERFACEPREFIX,
	// ETCD_* and CNI_PATH are read (default: the process's own).
	netconf.Env
	// MTUFile is read when the configured mtu is 0 (default
	// netconf.DefaultMTUFile).
	MTUFile string
	// Connect opens the datastore (default: pkg/client from the network
	// configuration and the environment).
	Connect func(ctx context.Context, conf *netconf.NetConf) (*client.Client, error)
	// IPAM runs the IPAM plugin (default: exec from CNI_PATH).
	IPAM Delegator
	// Timeout bounds one invocation (default DefaultTimeout).
	Timeout time.Duration
}

// Plugin is the calico CNI plugin.
type Plugin struct {
	opts Options
}

// New returns a plugin with opts, defaults filled in.
func New(opts Options) *Plugin {
	opts.Env = opts.Env.WithDefaults()
	if opts.MTUFile == "" {
		opts.MTUFile = netconf.DefaultMTUFile
	}
	if opts.IPAM == nil {
		opts.IPAM = ExecDelegator{LookupEnv: opts.LookupEnv}
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	p := &Plugin{opts: opts}
	if p.opts.Connect == nil {
		p.opts.Connect = p.connect
	}
	return p
}

// Funcs returns the skel callbacks, each bounded by ctx and the timeout
// and returning a *types.Error (or nil).
func (p *Plugin) Funcs(ctx context.Context) skel.CNIFuncs {
	wrap := func(f func(context.Context, *skel.CmdArgs) error) func(*skel.CmdArgs) error {
		return func(args *skel.CmdArgs) error {
			cctx, cancel := context.WithTimeout(ctx, p.opts.Timeout)
			defer cancel()
			if err := f(cctx, args); err != nil {
				return Error(err)
			}
			return nil
		}
	}
	return skel.CNIFuncs{Add: wrap(p.Add), Del: wrap(p.Del), Check: wrap(p.Check), Status: wrap(p.Status), GC: wrap(p.GC)}
}

// invocation is what every command works out first.
type invocation struct {
	conf *netconf.NetConf
	log  *slog.Logger
	args *skel.CmdArgs
}

func (p *Plugin) begin(cmd string, args *skel.CmdArgs) (*invocation, error) {
	conf, err := netconf.Parse(args.StdinData)
	if err != nil {
		return nil, err
	}
	log, err := conf.Logger(p.opts.Stderr, slog.LevelInfo)
	if err != nil {
		return nil, err
	}
	log = log.With("cmd", cmd, "network", conf.Name)
	if args.ContainerID != "" {
		log = log.With("container_id", args.ContainerID, "ifname", args.IfName)
	}
	return &invocation{conf: conf, log: log, args: args}, nil
}

// workload derives the workload identity (needs the node name).
func (p *Plugin) workload(inv *invocation) (Workload, error) {
	k8s, err := netconf.ParseArgs(inv.args.Args)
	if err != nil {
		return Workload{}, err
	}
	node, err := inv.conf.ResolveNodename()
	if err != nil {
		return Workload{}, err
	}
	return NewWorkload(inv.conf.Name, node, inv.args.ContainerID, inv.args.IfName, k8s), nil
}

func (p *Plugin) hostVeth(w Workload) string {
	env, _ := p.opts.LookupEnv("FELIX_INTERFACEPREFIX")
	return w.HostVethName(interfacePrefix(env))
}

// connect opens the datastore described by the network configuration.
func (p *Plugin) connect(ctx context.Context, conf *netconf.NetConf) (*client.Client, error) {
	cfg, err := conf.ClientConfig(p.opts.LookupEnv)
	if err != nil {
		return nil, err
	}
	c, err := client.New(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to the Calico datastore (etcd %s; check etcd_endpoints and the etcd_*_file settings): %w",
			cfg.Spec.EtcdEndpoints, err)
	}
	return c, nil
}

// checkReady refuses to work while ClusterInformation says the datastore is
// not ready (an upgrade or a migration is in progress). A datastore without
// ClusterInformation is taken as ready.
func checkReady(ctx context.Context, c *client.Client) error {
	ci, err := client.Get[*v3.ClusterInformation](ctx, c, "", "default")
	switch {
	case errors.Is(err, client.ErrNotFound):
		return nil
	case err != nil:
		return fmt.Errorf("read ClusterInformation: %w", err)
	case ci.Spec.DatastoreReady != nil && !*ci.Spec.DatastoreReady:
		return fmt.Errorf("%w; wait until calico-node or the datastore migration marks it ready, then retry", ErrNotReady)
	}
	return nil
}

// Error turns err into the CNI error the runtime sees. An error from a
// delegated plugin keeps that plugin's code; our own sentinels map onto the
// codes of the CNI spec; anything else is ErrInternal (999).
func Error(err error) *types.Error {
	if err == nil {
		return nil
	}
	var te *types.Error
	if errors.As(err, &te) {
		return &types.Error{Code: te.Code, Msg: err.Error(), Details: te.Details}
	}
	var ve *v3.ValidationError
	code := types.ErrInternal
	switch {
	case errors.Is(err, netconf.ErrInvalid), errors.Is(err, client.ErrUnsupportedDatastore), errors.As(err, &ve):
		code = types.ErrInvalidNetworkConfig
	case errors.Is(err, netns.ErrNotExist), errors.Is(err, netns.ErrNotNetNS):
		code = types.ErrInvalidNetNS
	case errors.Is(err, ErrNotReady), errors.Is(err, client.ErrUnavailable):
		code = types.ErrTryAgainLater
	case errors.Is(err, ErrNoPrevResult):
		code = types.ErrDecodingFailure
	case errors.Is(err, veth.ErrMismatch), errors.Is(err, ErrEndpointMismatch):
		code = types.ErrInternal
	}
	return types.NewError(code, err.Error(), "")
}
