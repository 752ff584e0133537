package ipamplugin

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"

	v3 "github.com/calico-go/calico/api/v3"
	"github.com/calico-go/calico/internal/cni/netconf"
	"github.com/calico-go/calico/internal/datastore"
	"github.com/calico-go/calico/internal/ipam"
	"github.com/calico-go/calico/pkg/client"
)

// Del releases the container's addresses: the handle "<network>.<id>",
// then the legacy handle. Handles that do not exist are not an error, so
// DEL can be repeated. It fails (and the runtime retries) when the
// datastore is unreachable or locked, because succeeding then would leak
// the addresses.
func (p *Plugin) Del(ctx context.Context, args *skel.CmdArgs) error {
	s, err := p.open(ctx, "DEL", args)
	if err != nil {
		return err
	}
	defer s.close()
	if err := checkReady(ctx, s.c); err != nil {
		return err
	}
	wctx, done, err := p.locked(ctx, s)
	if err != nil {
		return err
	}
	defer done()
	handles := []string{netconf.HandleID(s.conf.Name, args.ContainerID)}
	if legacy := s.args.LegacyHandleID(args.ContainerID); legacy != "" && legacy != handles[0] {
		handles = append(handles, legacy)
	}
	for _, h := range handles {
		if err := s.alloc.ReleaseByHandle(wctx, h); err != nil && !errors.Is(err, datastore.ErrNotFound) {
			return fmt.Errorf("release the addresses of handle %s: %w%s", h, err, hint(err))
		}
	}
	s.log.Info("released addresses", "handles", strings.Join(handles, ","))
	return nil
}

// Check verifies that the container's handle owns addresses and, when the
// runtime passes the previous result, exactly the addresses it lists.
func (p *Plugin) Check(ctx context.Context, args *skel.CmdArgs) error {
	s, err := p.open(ctx, "CHECK", args)
	if err != nil {
		return err
	}
	defer s.close()
	handle := netconf.HandleID(s.conf.Name, args.ContainerID)
	ips, err := s.alloc.IPsByHandle(ctx, handle)
	if errors.Is(err, datastore.ErrNotFound) || (err == nil && len(ips) == 0) {
		return fmt.Errorf("%w: container %s owns no addresses in Calico IPAM (handle %s does not exist); "+
			"it was never added, or its addresses were released: run DEL and ADD again", ErrCheck, args.ContainerID, handle)
	}
	if err != nil {
		return fmt.Errorf("read the addresses of handle %s: %w", handle, err)
	}
	if len(s.conf.PrevResult) == 0 {
		return nil
	}
	prev, err := prevAddrs(s.conf)
	if err != nil {
		return err
	}
	for _, ip := range prev {
		if !slices.Contains(ips, ip) {
			return fmt.Errorf("%w: the previous result lists %s, but IPAM does not hold it for handle %s (it holds %v)",
				ErrCheck, ip, handle, ips)
		}
	}
	for _, ip := range ips {
		if !slices.Contains(prev, ip) {
			return fmt.Errorf("%w: handle %s holds %s, which the previous result does not list", ErrCheck, handle, ip)
		}
	}
	return nil
}

// prevAddrs reads the addresses of prevResult.
func prevAddrs(conf *netconf.IPAMConf) ([]netip.Addr, error) {
	r, err := version.NewResult(conf.CNIVersion, conf.PrevResult)
	if err != nil {
		return nil, types.NewError(types.ErrDecodingFailure, fmt.Sprintf("decode prevResult: %v", err), "")
	}
	res, err := types100.NewResultFromResult(r)
	if err != nil {
		return nil, types.NewError(types.ErrDecodingFailure, fmt.Sprintf("convert prevResult: %v", err), "")
	}
	var out []netip.Addr
	for _, ipc := range res.IPs {
		if a, ok := netip.AddrFromSlice(ipc.Address.IP); ok {
			out = append(out, a.Unmap())
		}
	}
	return out, nil
}

// Status reports whether ADD can succeed: the datastore answers and is not
// locked, and an enabled pool exists for each requested family (and for the
// pools the configuration names). Failures carry code 50, as the CNI spec
// asks.
func (p *Plugin) Status(ctx context.Context, args *skel.CmdArgs) error {
	notAvailable := func(err error) error {
		return types.NewError(types.ErrPluginNotAvailable, err.Error(), "")
	}
	s, err := p.begin("STATUS", args)
	if err != nil {
		return err
	}
	c, err := p.opts.Connect(ctx, s.conf)
	if err != nil {
		return notAvailable(err)
	}
	defer c.Close()
	if err := checkReady(ctx, c); err != nil {
		return notAvailable(err)
	}
	pools, err := client.List[*v3.IPPool](ctx, c, "")
	if err != nil {
		return notAvailable(fmt.Errorf("list IP pools: %w", err))
	}
	for _, fam := range []struct {
		want  bool
		v6    bool
		names []string
		key   string
	}{
		{s.conf.IPAM.WantIPv4(), false, s.conf.IPAM.IPv4Pools, "ipam.ipv4_pools"},
		{s.conf.IPAM.WantIPv6(), true, s.conf.IPAM.IPv6Pools, "ipam.ipv6_pools"},
	} {
		if !fam.want {
			continue
		}
		if !usablePool(pools, fam.v6, fam.names) {
			what := fmt.Sprintf("no enabled IPv%d IP pool", map[bool]int{false: 4, true: 6}[fam.v6])
			if len(fam.names) > 0 {
				what += fmt.Sprintf(" among %s %v", fam.key, fam.names)
			}
			return notAvailable(fmt.Errorf("%s: create one (calicoctl apply -f pool.yaml) or enable one", what))
		}
	}
	return nil
}

// usablePool reports whether an enabled pool of the family exists (among
// names, when given: pool names or CIDRs).
func usablePool(pools []*v3.IPPool, v6 bool, names []string) bool {
	for _, pl := range pools {
		pfx, err := netip.ParsePrefix(pl.Spec.CIDR)
		if err != nil || pfx.Addr().Is6() != v6 || pl.Spec.Disabled || pl.DeletionTimestamp != nil {
			continue
		}
		if len(names) == 0 || slices.Contains(names, pl.Name) || slices.Contains(names, pl.Spec.CIDR) {
			return true
		}
	}
	return false
}

// GC releases the addresses this network holds on this node for
// containers the runtime does not list as valid. Allocations younger than
// the grace period are kept: an ADD may have finished after the runtime
// made its list. Garbage collection is per network (the CNI spec): only
// handles "<network>.<id>" are considered.
func (p *Plugin) GC(ctx context.Context, args *skel.CmdArgs) error {
	s, err := p.open(ctx, "GC", args)
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
	wctx, done, err := p.locked(ctx, s)
	if err != nil {
		return err
	}
	defer done()
	snap, err := s.alloc.Snapshot(wctx)
	if err != nil {
		return fmt.Errorf("read IPAM: %w", err)
	}
	valid := s.conf.Valid()
	prefix := s.conf.Name + "."
	now := p.opts.Now()
	var stale []string
	kept := 0
	for _, al := range snap.Allocations() {
		id, ok := strings.CutPrefix(al.HandleID, prefix)
		if !ok || id == "" || al.Attrs[ipam.AttrNode] != node || valid[id] {
			continue
		}
		if young(al.Attrs[ipam.AttrTimestamp], now, p.opts.GCGrace) {
			kept++
			continue
		}
		if !slices.Contains(stale, al.HandleID) {
			stale = append(stale, al.HandleID)
		}
	}
	slices.Sort(stale)
	var errs []error
	for _, h := range stale {
		if err := s.alloc.ReleaseByHandle(wctx, h); err != nil && !errors.Is(err, datastore.ErrNotFound) {
			errs = append(errs, fmt.Errorf("release %s: %w", h, err))
		}
	}
	s.log.Info("garbage collected", "node", node, "released_handles", len(stale)-len(errs), "kept_young", kept,
		"valid_attachments", len(valid))
	return errors.Join(errs...)
}

// young reports whether the allocation timestamp ts (ours: RFC 3339;
// Calico's: Go's time.Time.String form) is within grace of now. An
// unreadable or missing timestamp counts as old.
func young(ts string, now time.Time, grace time.Duration) bool {
	if grace <= 0 || ts == "" {
		return false
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02 15:04:05.999999999 -0700 MST"} {
		if t, err := time.Parse(layout, ts); err == nil {
			return now.Sub(t) < grace
		}
	}
	return false
}
