// Command calico is Calico's CNI network plugin ("type": "calico"). A CNI
// runtime runs it with CNI_COMMAND and the network configuration on stdin;
// see internal/cni.
package main

import (
	"context"
	"os/signal"
	"syscall"

	"github.com/containernetworking/cni/pkg/skel"

	"github.com/calico-go/calico/internal/buildinfo"
	"github.com/calico-go/calico/internal/cni"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	p := cni.New(cni.Options{})
	skel.PluginMainFuncs(p.Funcs(ctx), cni.SupportedVersions, "Calico CNI plugin "+buildinfo.Version)
}
