package syncer_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	v3 "github.com/calico-go/calico/api/v3"
	"github.com/calico-go/calico/internal/datastore/embedded"
	"github.com/calico-go/calico/internal/datastore/etcd"
)

// TestEmbeddedEtcd runs the syncer against a real (embedded) etcd: snapshot,
// deltas, a broken watch that resumes, and a compaction that forces a
// re-list.
func TestEmbeddedEtcd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv, err := embedded.Start(ctx, embedded.Options{
		DataDir: t.TempDir(), ListenClient: "127.0.0.1:0", ListenPeer: "127.0.0.1:0", UnsafeNoFsync: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	eb, err := etcd.New(ctx, etcd.Config{Endpoints: srv.Endpoints()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = eb.Close() })
	b := newBreakable(eb)

	for i := range 3 {
		mustCreate(t, b, gns(fmt.Sprintf("s%d", i), "10.0.0.0/8"))
	}
	c := start(t, b, testKinds)
	c.waitFor(t, "InSync", c.inSync)
	c.waitMatches(t, b, testKinds)

	mustCreate(t, b, gns("live", "10.1.0.0/16"))
	c.waitMatches(t, b, testKinds)

	b.breakWatches()
	mustUpdate(t, b, gns("s0", "10.2.0.0/16"))
	c.waitMatches(t, b, testKinds)

	// Compact while no watch can resume, so that the resume fails.
	blocked := make(chan struct{})
	b.blockWatches(blocked)
	b.breakWatches()
	mustDelete(t, b, v3.KindGlobalNetworkSet, "s1")
	mustCreate(t, b, gns("after", "10.3.0.0/16"))
	rev := mustCreate(t, b, gns("last", "10.4.0.0/16")).GetResourceVersion()
	if err := eb.Compact(ctx, rev); err != nil {
		t.Fatal(err)
	}
	close(blocked)
	c.waitMatches(t, b, testKinds)
}
