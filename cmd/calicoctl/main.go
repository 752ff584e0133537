// Command calicoctl manages Calico resources in the Calico datastore: create,
// apply, replace, delete, get, label, patch and validate resources, and show
// the client and cluster versions. See internal/ctl for the commands.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/calico-go/calico/internal/ctl"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := ctl.Run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
