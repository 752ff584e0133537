package cni

import (
	"context"
	"errors"
	"fmt"

	"github.com/containernetworking/cni/pkg/skel"

	"github.com/calico-go/calico/internal/cni/veth"
)

// Del takes the workload off the network. It succeeds whatever is already
// gone (the namespace, the interface, the endpoint, the addresses) and
// reports only real failures, after trying every step.
func (p *Plugin) Del(ctx context.Context, args *skel.CmdArgs) error {
	inv, err := p.begin("DEL", args)
	if err != nil {
		return err
	}
	w, err := p.workload(inv)
	if err != nil {
		return err
	}
	var errs []error
	// Deleting the container end removes the pair and the host routes.
	if err := veth.Remove(args.Netns, args.IfName); err != nil {
		errs = append(errs, fmt.Errorf("remove %s: %w", args.IfName, err))
	}
	if c, err := p.opts.Connect(ctx, inv.conf); err != nil {
		errs = append(errs, err)
	} else {
		hostIface, err := deleteEndpoint(ctx, c, w)
		if err != nil {
			errs = append(errs, err)
		}
		// The endpoint was this container's, so is its host interface, in
		// case the namespace went away without taking it along.
		if hostIface != "" {
			if err := veth.RemoveHost(hostIface); err != nil {
				errs = append(errs, err)
			}
		}
		c.Close()
	}
	if err := p.opts.IPAM.Del(ctx, inv.conf.IPAM.Type, args.StdinData); err != nil {
		errs = append(errs, fmt.Errorf("release addresses through IPAM plugin %s: %w", inv.conf.IPAM.Type, err))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	inv.log.Info("workload deleted", "endpoint", w.EndpointName())
	return nil
}
