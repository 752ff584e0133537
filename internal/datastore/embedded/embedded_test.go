package embedded_test

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/calico-go/calico/internal/datastore/embedded"
)

func start(t *testing.T, dir, client, peer string) *embedded.Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := embedded.Start(ctx, embedded.Options{DataDir: dir, ListenClient: client, ListenPeer: peer, UnsafeNoFsync: true})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func connect(t *testing.T, s *embedded.Server) *clientv3.Client {
	t.Helper()
	c, err := clientv3.New(clientv3.Config{Endpoints: s.Endpoints(), DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// TestStartRestart: free ports, data survives a restart on other ports.
func TestStartRestart(t *testing.T) {
	dir := t.TempDir()
	begin := time.Now()
	s := start(t, dir, "127.0.0.1:0", "127.0.0.1:0")
	t.Logf("started in %s at %v", time.Since(begin).Round(time.Millisecond), s.Endpoints())
	eps := s.Endpoints()
	if len(eps) != 1 || !strings.HasPrefix(eps[0], "http://127.0.0.1:") || strings.HasSuffix(eps[0], ":0") {
		t.Fatalf("Endpoints = %v", eps)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := connect(t, s).Put(ctx, "/calico/test", "kept"); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}

	s2 := start(t, dir, "127.0.0.1:0", "127.0.0.1:0")
	resp, err := connect(t, s2).Get(ctx, "/calico/test")
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "kept" {
		t.Fatalf("after restart: %v", resp.Kvs)
	}
}

// TestPortTaken: the error names the address in use.
func TestPortTaken(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	taken := l.Addr().String()
	start := time.Now()
	s, err := embedded.Start(context.Background(), embedded.Options{DataDir: t.TempDir(), ListenClient: taken, ListenPeer: "127.0.0.1:0"})
	if err == nil {
		_ = s.Close()
		t.Fatal("Start succeeded on a taken port")
	}
	if !strings.Contains(err.Error(), taken) || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("error %q does not name %s as in use", err, taken)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("took %s", d)
	}
	t.Log(err)
}

func TestBadAddress(t *testing.T) {
	if _, err := embedded.Start(context.Background(), embedded.Options{DataDir: t.TempDir(), ListenClient: "no-port"}); err == nil ||
		!strings.Contains(err.Error(), "no-port") {
		t.Fatalf("Start with a bad address: %v", err)
	}
}
