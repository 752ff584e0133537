// Command calico-lab builds a multi-host Calico made of network namespaces
// on one Linux machine: the quickstart, the demo and the end-to-end test
// bed. See internal/lab and docs/lab.md.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/calico-go/calico/internal/lab"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := lab.Main(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
