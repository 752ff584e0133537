package cni

import (
	"context"
	"errors"
	"fmt"

	"github.com/containernetworking/cni/pkg/skel"

	v3 "github.com/calico-go/calico/api/v3"
	"github.com/calico-go/calico/internal/cni/veth"
	"github.com/calico-go/calico/pkg/client"
)

// GC removes what this network holds on this node for attachments the
// runtime no longer lists in cni.dev/valid-attachments: each stale
// WorkloadEndpoint (recognised by its node and its AnnotationNetwork), its
// host interface, and its addresses (DEL through the IPAM plugin). Then it
// runs GC of the IPAM plugin itself, which reclaims addresses that never got
// an endpoint.
func (p *Plugin) GC(ctx context.Context, args *skel.CmdArgs) error {
	inv, err := p.begin("GC", args)
	if err != nil {
		return err
	}
	node, err := inv.conf.ResolveNodename()
	if err != nil {
		return err
	}
	valid := map[[2]string]bool{}
	for _, a := range inv.conf.ValidAttachments {
		valid[[2]string{a.ContainerID, a.IfName}] = true
	}
	c, err := p.opts.Connect(ctx, inv.conf)
	if err != nil {
		return err
	}
	defer c.Close()
	weps, err := client.List[*v3.WorkloadEndpoint](ctx, c, "")
	if err != nil {
		return fmt.Errorf("list WorkloadEndpoints: %w", err)
	}
	var errs []error
	removed := 0
	for _, wep := range weps {
		s := wep.Spec
		if s.Node != node || wep.Annotations[AnnotationNetwork] != inv.conf.Name || valid[[2]string{s.ContainerID, s.Endpoint}] {
			continue
		}
		if err := p.collect(ctx, c, inv, wep); err != nil {
			errs = append(errs, err)
			continue
		}
		removed++
	}
	if err := p.opts.IPAM.GC(ctx, inv.conf.IPAM.Type, args.StdinData); err != nil {
		errs = append(errs, fmt.Errorf("GC through IPAM plugin %s: %w", inv.conf.IPAM.Type, err))
	}
	inv.log.Info("garbage collected", "endpoints_removed", removed, "valid_attachments", len(valid))
	return errors.Join(errs...)
}

// collect removes one stale attachment: addresses, host interface, endpoint.
func (p *Plugin) collect(ctx context.Context, c *client.Client, inv *invocation, wep *v3.WorkloadEndpoint) error {
	s := wep.Spec
	att := Attachment{ContainerID: s.ContainerID, IfName: s.Endpoint}
	if s.Orchestrator == v3.OrchestratorKubernetes && s.Pod != "" {
		att.Args = "IgnoreUnknown=1;K8S_POD_NAMESPACE=" + wep.Namespace + ";K8S_POD_NAME=" + s.Pod
	}
	if err := p.opts.IPAM.DelAttachment(ctx, inv.conf.IPAM.Type, inv.args.StdinData, att); err != nil {
		return fmt.Errorf("release addresses of stale attachment %s/%s: %w", s.ContainerID, s.Endpoint, err)
	}
	if s.InterfaceName != "" {
		if err := veth.RemoveHost(s.InterfaceName); err != nil {
			return err
		}
	}
	_, err := c.Delete(ctx, client.Key{Kind: v3.KindWorkloadEndpoint, Namespace: wep.Namespace, Name: wep.Name}, wep.ResourceVersion)
	if err != nil && !errors.Is(err, client.ErrNotFound) {
		return fmt.Errorf("delete stale WorkloadEndpoint %s/%s: %w", wep.Namespace, wep.Name, err)
	}
	inv.log.Info("removed stale attachment", "endpoint", wep.Name, "container_id", s.ContainerID)
	return nil
}
