package cni

import (
	"context"
	"fmt"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
)

// Status reports whether the plugin can serve ADD: the datastore must be
// reachable and ready, and the IPAM plugin must say it is available.
// Failures carry code 50 (plugin not available), as the CNI spec asks.
func (p *Plugin) Status(ctx context.Context, args *skel.CmdArgs) error {
	inv, err := p.begin("STATUS", args)
	if err != nil {
		return err
	}
	c, err := p.opts.Connect(ctx, inv.conf)
	if err != nil {
		return types.NewError(types.ErrPluginNotAvailable, err.Error(), "")
	}
	defer c.Close()
	if err := checkReady(ctx, c); err != nil {
		return types.NewError(types.ErrPluginNotAvailable, err.Error(), "")
	}
	if err := p.opts.IPAM.Status(ctx, inv.conf.IPAM.Type, args.StdinData); err != nil {
		return fmt.Errorf("IPAM plugin %s: %w", inv.conf.IPAM.Type, err)
	}
	return nil
}
