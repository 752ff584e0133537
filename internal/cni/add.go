package cni

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"

	v3 "github.com/calico-go/calico/api/v3"
	"github.com/calico-go/calico/internal/cni/netconf"
	"github.com/calico-go/calico/internal/cni/veth"
	"github.com/calico-go/calico/pkg/client"
)

// undoTimeout bounds the clean-up of a failed ADD, which runs even when the
// invocation's own deadline has passed.
const undoTimeout = 30 * time.Second

// Add puts the workload on the network and prints the CNI result.
func (p *Plugin) Add(ctx context.Context, args *skel.CmdArgs) error {
	inv, err := p.begin("ADD", args)
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
	c, err := p.opts.Connect(ctx, inv.conf)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := checkReady(ctx, c); err != nil {
		return err
	}
	return p.attach(ctx, inv, c, w, mtu)
}

// attach assigns addresses, wires the veth, writes the endpoint and prints
// the result. When a step fails it undoes the steps before it.
func (p *Plugin) attach(ctx context.Context, inv *invocation, c *client.Client, w Workload, mtu int) (retErr error) {
	args := inv.args
	hostName := p.hostVeth(w)
	log := inv.log.With("endpoint", w.EndpointName(), "host_veth", hostName)
	undo := func(what string, f func(context.Context) error) {
		if retErr == nil {
			return
		}
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), undoTimeout)
		defer cancel()
		if err := f(uctx); err != nil {
			retErr = errors.Join(retErr, fmt.Errorf("undo: %s: %w", what, err))
		}
	}

	ipamType := inv.conf.IPAM.Type
	raw, err := p.opts.IPAM.Add(ctx, ipamType, args.StdinData)
	if err != nil {
		return fmt.Errorf("IPAM plugin %s: %w", ipamType, err)
	}
	defer undo("release addresses through "+ipamType, func(ctx context.Context) error {
		return p.opts.IPAM.Del(ctx, ipamType, args.StdinData)
	})
	ipamRes, err := types100.NewResultFromResult(raw)
	if err != nil {
		return fmt.Errorf("IPAM plugin %s returned a result this plugin cannot read: %w", ipamType, err)
	}
	addrs, err := workloadAddrs(ipamRes, inv.conf)
	if err != nil {
		return err
	}
	log.Debug("addresses assigned", "addrs", addrs)

	att, err := veth.Setup(veth.Spec{
		HostName: hostName, IfName: args.IfName, ContainerNS: args.Netns, MTU: mtu, NumQueues: inv.conf.NumQueues,
		Addrs: addrs, AllowIPForwarding: inv.conf.ContainerSettings.AllowIPForwarding,
	})
	if err != nil {
		return fmt.Errorf("wire %s into the host: %w", args.IfName, err)
	}
	defer undo("remove "+hostName, func(context.Context) error { return veth.RemoveHost(hostName) })

	nets := make([]string, len(addrs))
	for i, a := range addrs {
		nets[i] = a.String()
	}
	wep := w.Endpoint(hostName, att.ContainerMAC.String(), nets, inv.conf.Labels())
	if _, err := c.Apply(ctx, wep); err != nil {
		return fmt.Errorf("write WorkloadEndpoint %s/%s: %w", wep.Namespace, wep.Name, err)
	}
	defer undo("delete the WorkloadEndpoint", func(ctx context.Context) error {
		_, err := deleteEndpoint(ctx, c, w)
		return err
	})

	res := buildResult(inv.conf, args, hostName, att, mtu, addrs, ipamRes.DNS)
	out, err := res.GetAsVersion(resultVersion(inv.conf))
	if err != nil {
		return fmt.Errorf("convert the result to CNI version %s: %w", resultVersion(inv.conf), err)
	}
	if err := out.PrintTo(p.opts.Stdout); err != nil {
		return fmt.Errorf("print result: %w", err)
	}
	log.Info("workload added", "addrs", nets, "mtu", mtu)
	return nil
}

func resultVersion(conf *netconf.NetConf) string {
	if conf.CNIVersion == "" {
		return "0.1.0"
	}
	return conf.CNIVersion
}

// workloadAddrs narrows the IPAM addresses to /32 and /128 and checks that
// the requested families were all assigned.
func workloadAddrs(res *types100.Result, conf *netconf.NetConf) ([]netip.Prefix, error) {
	var out []netip.Prefix
	seen := map[netip.Addr]bool{}
	var v4, v6 bool
	for _, ip := range res.IPs {
		a, ok := netip.AddrFromSlice(ip.Address.IP)
		if !ok {
			continue
		}
		a = a.Unmap()
		if seen[a] {
			continue
		}
		seen[a] = true
		v4 = v4 || a.Is4()
		v6 = v6 || a.Is6()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: the %s result has no IP addresses; check the IPAM configuration", ErrNoAddress, conf.IPAM.Type)
	}
	if conf.IPAM.Type == netconf.IPAMCalico {
		if conf.IPAM.WantIPv4() && !v4 {
			return nil, fmt.Errorf("%w: IPv4 was requested (ipam.assign_ipv4) but none was assigned; is there an enabled IPv4 IPPool for this node?", ErrNoAddress)
		}
		if conf.IPAM.WantIPv6() && !v6 {
			return nil, fmt.Errorf("%w: IPv6 was requested (ipam.assign_ipv6) but none was assigned; is there an enabled IPv6 IPPool for this node?", ErrNoAddress)
		}
	}
	return out, nil
}

// buildResult is the CNI result: the host interface, the container
// interface, the addresses on it, and (include_default_routes) the default
// routes through the gateways.
func buildResult(conf *netconf.NetConf, args *skel.CmdArgs, hostName string, att veth.Attachment, mtu int,
	addrs []netip.Prefix, dns types.DNS) *types100.Result {
	res := &types100.Result{
		CNIVersion: types100.ImplementedSpecVersion,
		Interfaces: []*types100.Interface{
			{Name: hostName},
			{Name: args.IfName, Mac: att.ContainerMAC.String(), Mtu: mtu, Sandbox: args.Netns},
		},
		DNS: dns,
	}
	var v4, v6 bool
	for _, a := range addrs {
		res.IPs = append(res.IPs, &types100.IPConfig{
			Interface: types100.Int(1),
			Address:   net.IPNet{IP: a.Addr().AsSlice(), Mask: net.CIDRMask(a.Bits(), a.Addr().BitLen())},
		})
		v4 = v4 || a.Addr().Is4()
		v6 = v6 || a.Addr().Is6()
	}
	if conf.IncludeDefaultRoutes {
		if v4 {
			res.Routes = append(res.Routes, &types.Route{Dst: net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}, GW: veth.GatewayV4.AsSlice()})
		}
		if v6 {
			res.Routes = append(res.Routes, &types.Route{Dst: net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)}, GW: veth.GatewayV6.AsSlice()})
		}
	}
	return res
}

// deleteEndpoint deletes the workload's endpoint if it still belongs to
// this container (its containerID matches or is empty) and returns the host
// interface it named. Gone is fine.
func deleteEndpoint(ctx context.Context, c *client.Client, w Workload) (hostIface string, _ error) {
	for attempt := 0; ; attempt++ {
		wep, err := client.Get[*v3.WorkloadEndpoint](ctx, c, w.EndpointNamespace(), w.EndpointName())
		if errors.Is(err, client.ErrNotFound) {
			return "", nil
		}
		if err != nil {
			return "", fmt.Errorf("read WorkloadEndpoint %s/%s: %w", w.EndpointNamespace(), w.EndpointName(), err)
		}
		if wep.Spec.ContainerID != "" && wep.Spec.ContainerID != w.ContainerID {
			return "", nil // a newer incarnation of the workload owns it
		}
		_, err = c.Delete(ctx, client.Key{Kind: v3.KindWorkloadEndpoint, Namespace: wep.Namespace, Name: wep.Name}, wep.ResourceVersion)
		switch {
		case err == nil, errors.Is(err, client.ErrNotFound):
			return wep.Spec.InterfaceName, nil
		case errors.Is(err, client.ErrConflict) && attempt < 3:
			continue // changed since we read it: look again
		default:
			return "", fmt.Errorf("delete WorkloadEndpoint %s/%s: %w", wep.Namespace, wep.Name, err)
		}
	}
}
