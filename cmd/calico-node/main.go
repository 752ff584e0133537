// Command calico-node is the per-host agent: it registers the Node, runs
// the policy engine (nftables) and BGP, and can serve the embedded
// single-node datastore (--embedded-datastore).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/calico-go/calico/internal/buildinfo"
	"github.com/calico-go/calico/internal/datastore/embedded"
	"github.com/calico-go/calico/internal/node"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	fs := flag.NewFlagSet("calico-node", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `Usage: calico-node [flags]

Runs the Calico agent on this host: registers the Node (NODENAME, IP,
IP_AUTODETECTION_METHOD, AS, CALICO_IPV4POOL_*), runs the policy engine
(FELIX_* settings, /etc/calico/felix.cfg) and, with
CALICO_NETWORKING_BACKEND=bird (the default), BGP. With --embedded-datastore it
also serves a single-node etcd (the one-host default); otherwise it uses the
datastore named by DATASTORE_TYPE / ETCD_ENDPOINTS (and the other ETCD_*
variables). --datastore-only skips everything but the datastore.

Flags:
`)
		fs.PrintDefaults()
	}
	var (
		opts     node.Options
		logLevel = fs.String("log-level", "info", "log level: debug, info, warn or error")
		version  = fs.Bool("version", false, "print the version and exit")
		dsOnly   = fs.Bool("datastore-only", false, "only serve/prepare the datastore: no node registration, policy engine or BGP")
	)
	fs.BoolVar(&opts.EmbeddedDatastore, "embedded-datastore", false, "serve a single-node etcd in this process and use it")
	fs.StringVar(&opts.Embedded.ListenClient, "etcd-listen-client", embedded.DefaultListenClient, "host:port the embedded etcd serves clients on")
	fs.StringVar(&opts.Embedded.ListenPeer, "etcd-listen-peer", embedded.DefaultListenPeer, "host:port of the embedded etcd's peer listener")
	fs.StringVar(&opts.Embedded.DataDir, "etcd-data-dir", embedded.DefaultDataDir, "directory of the embedded etcd's data")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *version {
		fmt.Printf("calico-node %s (git commit %s)\n", buildinfo.Version, buildinfo.GitCommit)
		return 0
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintf(os.Stderr, "calico-node: --log-level: %v\n", err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	opts.Logger = log
	envOpts, err := node.OptionsFromEnv()
	if err != nil {
		log.Error("configuration", "error", err)
		return 1
	}
	opts.Datastore = envOpts.Datastore
	if !*dsOnly && envOpts.Node != nil {
		opts.Node = envOpts.Node
		p := node.PolicyOptionsFromEnv()
		opts.Policy = &p
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := node.Run(ctx, opts); err != nil {
		log.Error("calico-node failed", "error", err)
		return 1
	}
	return 0
}
