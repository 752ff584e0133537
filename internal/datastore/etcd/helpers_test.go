package etcd_test

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/calico-go/calico/internal/datastore"
	"github.com/calico-go/calico/internal/datastore/embedded"
	"github.com/calico-go/calico/internal/datastore/etcd"
)

// shared is one embedded etcd for the tests and benchmarks of this package,
// started on first use and closed by TestMain.
var shared struct {
	once sync.Once
	srv  *embedded.Server
	dir  string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.srv != nil {
		_ = shared.srv.Close()
		_ = os.RemoveAll(shared.dir)
	}
	os.Exit(code)
}

func sharedEmbedded(tb testing.TB) *embedded.Server {
	tb.Helper()
	shared.once.Do(func() {
		shared.dir, shared.err = os.MkdirTemp("", "calico-etcd-test-")
		if shared.err != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		shared.srv, shared.err = embedded.Start(ctx, embedded.Options{
			DataDir:       shared.dir,
			ListenClient:  "127.0.0.1:0",
			ListenPeer:    "127.0.0.1:0",
			UnsafeNoFsync: true,
		})
	})
	if shared.err != nil {
		tb.Fatalf("start shared embedded etcd: %v", shared.err)
	}
	return shared.srv
}

// testLogger writes warnings and errors to the test log.
func testLogger(tb testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tbWriter{tb}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type tbWriter struct{ tb testing.TB }

func (w tbWriter) Write(p []byte) (int, error) {
	w.tb.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}

// newBackend connects to cfg, empties the resource key space and closes the
// backend at the end of the test.
func newBackend(tb testing.TB, cfg etcd.Config) *etcd.Backend {
	tb.Helper()
	if cfg.Logger == nil {
		cfg.Logger = testLogger(tb)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	b, err := etcd.New(ctx, cfg)
	if err != nil {
		tb.Fatalf("etcd.New: %v", err)
	}
	tb.Cleanup(func() { _ = b.Close() })
	if _, err := b.Client().Delete(ctx, "/calico/", clientv3.WithPrefix()); err != nil {
		tb.Fatalf("empty the datastore: %v", err)
	}
	return b
}

// factory adapts newBackend to conformance.Run.
func factory(cfg etcd.Config) func(t *testing.T) datastore.Backend {
	return func(t *testing.T) datastore.Backend { return newBackend(t, cfg) }
}
