package node

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	v3 "github.com/calico-go/calico/api/v3"
	"github.com/calico-go/calico/internal/datastore"
	"github.com/calico-go/calico/internal/datastore/embedded"
	"github.com/calico-go/calico/pkg/client"
)

// startNode runs Run with an embedded datastore in dir and returns its
// endpoints and a function that stops it and returns Run's error.
func startNode(t *testing.T, dir string) ([]string, func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan []string, 1)
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{
			EmbeddedDatastore: true,
			Embedded: embedded.Options{
				DataDir: dir, ListenClient: "127.0.0.1:0", ListenPeer: "127.0.0.1:0", UnsafeNoFsync: true,
			},
			Ready:  func(eps []string) { ready <- eps },
			Logger: slog.New(slog.DiscardHandler),
		})
	}()
	stop := func() error { cancel(); return <-done }
	select {
	case eps := <-ready:
		return eps, stop
	case err := <-done:
		cancel()
		t.Fatalf("calico-node exited during start-up: %v", err)
	case <-time.After(60 * time.Second):
		cancel()
		t.Fatal("calico-node not ready after 60s")
	}
	return nil, nil
}

func connect(t *testing.T, eps []string) *client.Client {
	t.Helper()
	cfg := client.Config{Spec: client.ConfigSpec{DatastoreType: client.EtcdV3}}
	cfg.Spec.EtcdEndpoints = strings.Join(eps, ",")
	c, err := client.New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("connect to %v: %v", eps, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestRunEmbeddedCreatesClusterObjects starts calico-node with its embedded
// datastore twice on the same data directory: the first start creates
// ClusterInformation and the default tier, the second keeps the same
// cluster GUID (the data persisted).
func TestRunEmbeddedCreatesClusterObjects(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()

	eps, stop := startNode(t, dir)
	c := connect(t, eps)
	ci, err := client.Get[*v3.ClusterInformation](ctx, c, "", "default")
	if err != nil {
		t.Fatalf("get ClusterInformation: %v", err)
	}
	if ci.Spec.ClusterGUID == "" || ci.Spec.DatastoreReady == nil || !*ci.Spec.DatastoreReady {
		t.Fatalf("ClusterInformation not initialised: %+v", ci.Spec)
	}
	tier, err := client.Get[*v3.Tier](ctx, c, "", "default")
	if err != nil {
		t.Fatalf("get default tier: %v", err)
	}
	if tier.Spec.Order == nil || *tier.Spec.Order != 1e6 {
		t.Errorf("default tier order = %v, want 1000000", tier.Spec.Order)
	}
	if err := stop(); err != nil {
		t.Fatalf("Run returned %v after cancel, want nil", err)
	}
	if _, err := c.Get(ctx, datastore.Key{Kind: v3.KindClusterInformation, Name: "default"}); err == nil {
		t.Fatal("datastore still answers after calico-node stopped")
	}

	eps, stop = startNode(t, dir)
	defer stop()
	c2 := connect(t, eps)
	ci2, err := client.Get[*v3.ClusterInformation](ctx, c2, "", "default")
	if err != nil {
		t.Fatalf("get ClusterInformation after restart: %v", err)
	}
	if ci2.Spec.ClusterGUID != ci.Spec.ClusterGUID {
		t.Errorf("cluster GUID changed across restart: %q -> %q", ci.Spec.ClusterGUID, ci2.Spec.ClusterGUID)
	}
}

// TestRunPortTaken: a second embedded datastore on the same client port
// fails with an error rather than hanging.
func TestRunPortTaken(t *testing.T) {
	eps, stop := startNode(t, t.TempDir())
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	host := eps[0][len("http://"):]
	err := Run(ctx, Options{
		EmbeddedDatastore: true,
		Embedded:          embedded.Options{DataDir: t.TempDir(), ListenClient: host, ListenPeer: "127.0.0.1:0", UnsafeNoFsync: true},
	})
	if err == nil {
		t.Fatal("second calico-node on a taken port started")
	}
	if errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second calico-node hung until the deadline: %v", err)
	}
	t.Logf("error as the user sees it: %v", err)
}
