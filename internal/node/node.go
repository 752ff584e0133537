// Package node is calico-node's start-up: it optionally serves the embedded
// datastore, connects to the datastore and makes sure the cluster-wide
// objects every other component expects exist (ClusterInformation "default"
// and the "default" tier). With Options.Node it also registers this host
// (Startup: the Node resource with autodetected addresses, default pools,
// tunnel addresses, the node name and MTU files for the CNI plugin) and,
// with the bird backend, runs BGP (internal/bgp/controller with an embedded
// GoBGP) until the context ends. OptionsFromEnv reads calico-node's
// environment variables.
package node

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	v3 "github.com/calico-go/calico/api/v3"
	"github.com/calico-go/calico/internal/buildinfo"
	"github.com/calico-go/calico/internal/datastore"
	"github.com/calico-go/calico/internal/datastore/embedded"
	"github.com/calico-go/calico/pkg/client"
)

// Options configure Run.
type Options struct {
	// EmbeddedDatastore serves a single-node etcd in this process and uses it
	// as the datastore; Embedded says where.
	EmbeddedDatastore bool
	Embedded          embedded.Options
	// Datastore is used when EmbeddedDatastore is false.
	Datastore client.Config
	// Node, when set, registers this host and runs its networking; nil
	// only prepares the cluster-wide objects.
	Node *NodeOptions
	// Policy, when set together with Node, runs the policy engine (felix)
	// for this node.
	Policy *PolicyOptions
	// Ready, when set, is called once start-up has finished, with the
	// datastore endpoints in use.
	Ready  func(endpoints []string)
	Logger *slog.Logger
}

// Run starts calico-node and blocks until ctx ends.
func Run(ctx context.Context, opts Options) (retErr error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg := opts.Datastore
	if opts.EmbeddedDatastore {
		emb := opts.Embedded
		if emb.Logger == nil {
			emb.Logger = log
		}
		srv, err := embedded.Start(ctx, emb)
		if err != nil {
			return fmt.Errorf("start embedded datastore: %w", err)
		}
		defer func() {
			if err := srv.Close(); err != nil && retErr == nil {
				retErr = fmt.Errorf("stop embedded datastore: %w", err)
			}
		}()
		cfg = client.Config{Spec: client.ConfigSpec{DatastoreType: client.EtcdV3}}
		cfg.Spec.EtcdEndpoints = strings.Join(srv.Endpoints(), ",")
		log.Info("embedded datastore serving", "endpoints", cfg.Spec.EtcdEndpoints, "data_dir", emb.DataDir)
	}
	c, err := client.New(ctx, cfg)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := EnsureClusterObjects(ctx, c); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	parts := 0
	done := make(chan error, 2)
	if opts.Node != nil {
		n := *opts.Node
		if _, err := Startup(ctx, c, n, log); err != nil {
			return err
		}
		if err := n.setDefaults(); err != nil {
			return err
		}
		if opts.Policy != nil {
			parts++
			go goRun(done, "policy engine", func() error {
				return runPolicy(ctx, c, n.Name, *opts.Policy, log.With("component", "felix"))
			})
		}
		if n.Backend == BackendBird {
			parts++
			go goRun(done, "bgp", func() error { return runBGP(ctx, c, n, log) })
		}
	}
	log.Info("calico-node started", "version", buildinfo.Version, "datastore", cfg.Spec.EtcdEndpoints)
	if opts.Ready != nil {
		opts.Ready(cfg.Spec.Endpoints())
	}
	// Run until ctx ends or a part stops; then stop every part and wait.
	var first error
	for i := 0; i < parts; i++ {
		err := <-done
		if err != nil && ctx.Err() == nil && first == nil {
			first = err
		}
		cancel()
	}
	if first != nil {
		return first
	}
	<-ctx.Done()
	log.Info("calico-node stopping")
	return nil
}

// goRun runs fn and delivers its error, named, on done.
func goRun(done chan<- error, name string, fn func() error) {
	if err := fn(); err != nil {
		done <- fmt.Errorf("%s: %w", name, err)
		return
	}
	done <- nil
}

// EnsureClusterObjects creates ClusterInformation "default" (with a new
// cluster GUID and datastoreReady true) and the "default" tier when they are
// missing. Existing objects are left as they are, except that an empty
// calicoVersion is filled in.
func EnsureClusterObjects(ctx context.Context, c *client.Client) error {
	key := datastore.Key{Kind: v3.KindClusterInformation, Name: "default"}
	got, err := c.Get(ctx, key)
	switch {
	case errors.Is(err, datastore.ErrNotFound):
		ci := v3.NewClusterInformation()
		ci.Name = "default"
		guid, err := newGUID()
		if err != nil {
			return err
		}
		ready := true
		ci.Spec = v3.ClusterInformationSpec{
			ClusterGUID:    guid,
			ClusterType:    "calico-go",
			CalicoVersion:  buildinfo.Version,
			DatastoreReady: &ready,
		}
		if _, err := c.Create(ctx, ci); err != nil && !errors.Is(err, datastore.ErrAlreadyExists) {
			return fmt.Errorf("create ClusterInformation default: %w", err)
		}
	case err != nil:
		return fmt.Errorf("read ClusterInformation default: %w", err)
	default:
		ci := got.(*v3.ClusterInformation)
		if ci.Spec.CalicoVersion == "" {
			ci.Spec.CalicoVersion = buildinfo.Version
			if _, err := c.Update(ctx, ci); err != nil && !errors.Is(err, datastore.ErrConflict) {
				return fmt.Errorf("update ClusterInformation default: %w", err)
			}
		}
	}
	if _, err := c.Create(ctx, client.DefaultTier()); err != nil && !errors.Is(err, datastore.ErrAlreadyExists) {
		return fmt.Errorf("create the default tier: %w", err)
	}
	return nil
}

func newGUID() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate cluster GUID: %w", err)
	}
	return hex.EncodeToString(b), nil
}
