package node

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	v3 "github.com/calico-go/calico/api/v3"
	"github.com/calico-go/calico/internal/bgp/controller"
	"github.com/calico-go/calico/internal/bgp/gobgp"
	"github.com/calico-go/calico/internal/ipam"
	"github.com/calico-go/calico/internal/kernel/route"
	"github.com/calico-go/calico/pkg/client"
)

// Started describes a registered node.
type Started struct {
	Node *v3.Node
	// MTU is the pod MTU written to the MTU file.
	MTU int
}

// Startup registers this host: writes the node name file, creates or
// updates the Node (addresses, AS number), creates the default pools when
// none exist, allocates tunnel addresses, and writes the pod MTU. It is
// idempotent: a restart converges to the same state.
func Startup(ctx context.Context, c *client.Client, n NodeOptions, log *slog.Logger) (Started, error) {
	var out Started
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := n.setDefaults(); err != nil {
		return out, err
	}
	if err := writeFile(n.NodenameFile, []byte(n.Name)); err != nil {
		return out, fmt.Errorf("node name file: %w", err)
	}
	node, err := registerNode(ctx, c, &n, log)
	if err != nil {
		return out, err
	}
	hasV6 := node.Spec.BGP != nil && node.Spec.BGP.IPv6Address != ""
	if err := ensureDefaultPools(ctx, c, &n, hasV6, log); err != nil {
		return out, err
	}
	pools, err := client.List[*v3.IPPool](ctx, c, "")
	if err != nil {
		return out, fmt.Errorf("list IPPools: %w", err)
	}
	alloc, err := newAllocator(c, log)
	if err != nil {
		return out, err
	}
	changed, err := ensureTunnelAddrs(ctx, alloc, pools, node, log)
	if err != nil {
		return out, err
	}
	if changed {
		res, err := c.Update(ctx, node)
		if err != nil {
			return out, fmt.Errorf("write tunnel addresses to Node %s: %w", node.Name, err)
		}
		node = res.(*v3.Node)
	}
	out.Node = node
	out.MTU = n.MTU
	if out.MTU == 0 {
		out.MTU = podMTU(n.System, nodeIP(node), pools)
	}
	if err := writeFile(n.MTUFile, mtuFileContent(out.MTU)); err != nil {
		return out, fmt.Errorf("MTU file: %w", err)
	}
	log.Info("node start-up complete", "node", node.Name, "mtu", out.MTU, "backend", n.Backend)
	return out, nil
}

func nodeIP(n *v3.Node) netip.Addr {
	if n.Spec.BGP == nil {
		return netip.Addr{}
	}
	for _, s := range []string{n.Spec.BGP.IPv4Address, n.Spec.BGP.IPv6Address} {
		if p, err := netip.ParsePrefix(s); err == nil {
			return p.Addr()
		}
	}
	return netip.Addr{}
}

type etcdBackend interface{ Client() *clientv3.Client }

// newAllocator runs IPAM on the etcd client of c's backend.
func newAllocator(c *client.Client, log *slog.Logger) (*ipam.Allocator, error) {
	be, ok := c.Backend().(etcdBackend)
	if !ok {
		return nil, fmt.Errorf("the datastore (%T) does not hold Calico IPAM: use the etcdv3 datastore", c.Backend())
	}
	return ipam.New(ipam.Options{Store: ipam.NewEtcdStore(be.Client(), 0), Resources: ipam.ClientResources(c), Logger: log})
}

// runBGP runs the BGP controller with an embedded GoBGP speaker and the
// kernel route driver in the calling process's network namespace.
func runBGP(ctx context.Context, c *client.Client, n NodeOptions, log *slog.Logger) error {
	alloc, err := newAllocator(c, log)
	if err != nil {
		return err
	}
	tbl, err := route.New(route.Options{Logger: log})
	if err != nil {
		return err
	}
	defer tbl.Close()
	sock := n.BGPStatusSocket
	if sock == "-" {
		sock = ""
	}
	changed := make(chan struct{}, 1)
	if be, ok := c.Backend().(etcdBackend); ok {
		go watchIPAM(ctx, be.Client(), changed)
	}
	return controller.Run(ctx, controller.Options{
		NodeName:        n.Name,
		Client:          c,
		IPAM:            ipamSource{alloc},
		IPAMChanged:     changed,
		Speaker:         gobgp.New(gobgp.Options{Logger: log}),
		Routes:          tbl,
		Secret:          n.secret,
		RefreshInterval: n.RouteRefreshInterval,
		StatusSocket:    sock,
		Logger:          log,
	})
}

// ipamSource reads a node's blocks and borrowed addresses from one IPAM
// snapshot.
type ipamSource struct{ alloc *ipam.Allocator }

func (s ipamSource) Local(ctx context.Context, node string) ([]netip.Prefix, []netip.Addr, error) {
	snap, err := s.alloc.Snapshot(ctx)
	if err != nil {
		return nil, nil, err
	}
	return LocalRoutes(snap, node)
}

// LocalRoutes picks out of a snapshot the node's blocks (affine to it, with
// a confirmed affinity) and the addresses its workloads hold in blocks of
// other nodes.
func LocalRoutes(snap *ipam.Snapshot, node string) ([]netip.Prefix, []netip.Addr, error) {
	confirmed := map[netip.Prefix]bool{}
	for _, a := range snap.Affinities {
		if a.Host == node && a.State == ipam.StateConfirmed && !a.Deleted {
			confirmed[a.CIDR] = true
		}
	}
	var blocks []netip.Prefix
	var borrowed []netip.Addr
	for _, bi := range snap.Blocks {
		b := bi.Block
		if b == nil || b.Deleted {
			continue
		}
		host := b.Host()
		if host == node && confirmed[b.CIDR] {
			blocks = append(blocks, b.CIDR)
			continue
		}
		for _, al := range b.AllocationList() {
			if al.Attrs[ipam.AttrNode] == node && host != node {
				borrowed = append(borrowed, al.IP)
			}
		}
	}
	return blocks, borrowed, nil
}

// watchIPAM signals changed whenever anything under Calico's IPAM prefix
// changes, so that new blocks are advertised without waiting for the poll.
func watchIPAM(ctx context.Context, cli *clientv3.Client, changed chan<- struct{}) {
	for ctx.Err() == nil {
		wch := cli.Watch(clientv3.WithRequireLeader(ctx), ipam.Prefix, clientv3.WithPrefix(), clientv3.WithKeysOnly())
		for resp := range wch {
			if resp.Err() != nil {
				break
			}
			select {
			case changed <- struct{}{}:
			default:
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}
