// Command calico-ipam is Calico's CNI IPAM plugin: it assigns addresses to
// containers from Calico's IP pools. A CNI runtime (or the calico plugin)
// runs it with CNI_COMMAND and the network configuration on stdin; see
// package ipamplugin. "calico-ipam -v" prints the version.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/containernetworking/cni/pkg/skel"

	"github.com/calico-go/calico/internal/buildinfo"
	"github.com/calico-go/calico/internal/cni/ipamplugin"
)

func main() {
	if len(os.Args) == 2 && (os.Args[1] == "-v" || os.Args[1] == "--version") {
		fmt.Println(buildinfo.Version)
		return
	}
	p := ipamplugin.New(ipamplugin.Options{})
	if err := skel.PluginMainFuncsWithError(p.Funcs(context.Background()), ipamplugin.SupportedVersions,
		"Calico CNI IPAM plugin "+buildinfo.Version); err != nil {
		if perr := err.Print(); perr != nil {
			fmt.Fprintln(os.Stderr, err.Error())
		}
		os.Exit(1)
	}
}
