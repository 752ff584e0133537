package cni

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/containernetworking/cni/pkg/skel"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"

	v3 "github.com/calico-go/calico/api/v3"
	"github.com/calico-go/calico/internal/cni/veth"
	"github.com/calico-go/calico/pkg/client"
)

// Check compares the live state with the previous result: the veth pair,
// the addresses and routes on both sides, the WorkloadEndpoint, and (through
// the IPAM plugin) the address assignment. Every difference is reported.
func (p *Plugin) Check(ctx context.Context, args *skel.CmdArgs) error {
	inv, err := p.begin("CHECK", args)
	if err != nil {
		return err
	}
	w, err := p.workload(inv)
	if err != nil {
		return err
	}
	mtu, err := inv.conf.ResolveMTU(p.opts.MTUFile)
	if err != nil {
		return err
	}
	if inv.conf.RawPrevResult == nil {
		return ErrNoPrevResult
	}
	if err := version.ParsePrevResult(&inv.conf.PluginConf); err != nil {
		return fmt.Errorf("%w: %v", ErrNoPrevResult, err)
	}
	prev, err := types100.NewResultFromResult(inv.conf.PrevResult)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrNoPrevResult, err)
	}
	addrs := prevAddrs(prev, args)
	hostName := p.hostVeth(w)

	var errs []error
	if err := veth.Check(veth.Spec{HostName: hostName, IfName: args.IfName, ContainerNS: args.Netns, MTU: mtu, Addrs: addrs}); err != nil {
		errs = append(errs, err)
	}
	c, err := p.opts.Connect(ctx, inv.conf)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	defer c.Close()
	if err := checkEndpoint(ctx, c, w, hostName, addrs); err != nil {
		errs = append(errs, err)
	}
	if err := p.opts.IPAM.Check(ctx, inv.conf.IPAM.Type, args.StdinData); err != nil {
		errs = append(errs, fmt.Errorf("IPAM plugin %s: %w", inv.conf.IPAM.Type, err))
	}
	return errors.Join(errs...)
}

// prevAddrs are the previous result's addresses on the container interface
// (or on no interface in particular), as /32 and /128.
func prevAddrs(prev *types100.Result, args *skel.CmdArgs) []netip.Prefix {
	var out []netip.Prefix
	for _, ip := range prev.IPs {
		if ip.Interface != nil {
			i := *ip.Interface
			if i < 0 || i >= len(prev.Interfaces) || prev.Interfaces[i].Name != args.IfName {
				continue
			}
		}
		if a, ok := netip.AddrFromSlice(ip.Address.IP); ok {
			a = a.Unmap()
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
		}
	}
	return out
}

func checkEndpoint(ctx context.Context, c *client.Client, w Workload, hostName string, addrs []netip.Prefix) error {
	wep, err := client.Get[*v3.WorkloadEndpoint](ctx, c, w.EndpointNamespace(), w.EndpointName())
	if errors.Is(err, client.ErrNotFound) {
		return fmt.Errorf("%w: WorkloadEndpoint %s/%s does not exist", ErrEndpointMismatch, w.EndpointNamespace(), w.EndpointName())
	}
	if err != nil {
		return fmt.Errorf("read WorkloadEndpoint %s/%s: %w", w.EndpointNamespace(), w.EndpointName(), err)
	}
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: WorkloadEndpoint %s/%s: %s", ErrEndpointMismatch, wep.Namespace, wep.Name, fmt.Sprintf(format, args...)))
	}
	if wep.Spec.ContainerID != w.ContainerID {
		bad("containerID is %q, want %q", wep.Spec.ContainerID, w.ContainerID)
	}
	if wep.Spec.InterfaceName != hostName {
		bad("interfaceName is %q, want %q", wep.Spec.InterfaceName, hostName)
	}
	want := make([]string, len(addrs))
	for i, a := range addrs {
		want[i] = a.String()
	}
	slices.Sort(want)
	have := slices.Clone(wep.Spec.IPNetworks)
	slices.Sort(have)
	if !slices.Equal(have, want) {
		bad("ipNetworks are %v, want %v", have, want)
	}
	return errors.Join(errs...)
}
