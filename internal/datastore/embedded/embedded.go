// Package embedded runs a single-node etcd inside the process: the default
// datastore for one host, the lab and tests. It listens on loopback by
// default, keeps etcd's own logging quiet and waits until the server is ready.
package embedded

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"

	"go.etcd.io/etcd/server/v3/embed"

	"github.com/calico-go/calico/internal/datastore/internal/zapslog"
)

// Defaults for Options.
const (
	DefaultDataDir      = "/var/lib/calico/etcd"
	DefaultListenClient = "127.0.0.1:2379"
	DefaultListenPeer   = "127.0.0.1:2380"
	// StartTimeout bounds the wait for the server to become ready.
	StartTimeout = 60 * time.Second
)

// Options configure Start.
type Options struct {
	// DataDir holds the member's WAL and database (default DefaultDataDir).
	DataDir string
	// ListenClient and ListenPeer are host:port (default DefaultListenClient
	// and DefaultListenPeer). Port 0 picks a free port.
	ListenClient string
	ListenPeer   string
	// UnsafeNoFsync disables fsync: fast, and loses data on a crash. For tests.
	UnsafeNoFsync bool
	// Logger receives etcd's logs at error level (info when it has debug
	// enabled). Nil discards.
	Logger *slog.Logger
}

// Server is a running embedded etcd.
type Server struct {
	etcd      *embed.Etcd
	endpoints []string
	log       *slog.Logger
	closeOnce sync.Once
	closeErr  error
}

// Start runs an embedded etcd and waits until it serves clients. It fails
// with an error naming the address when a port is taken.
func Start(ctx context.Context, opts Options) (*Server, error) {
	if opts.DataDir == "" {
		opts.DataDir = DefaultDataDir
	}
	if opts.ListenClient == "" {
		opts.ListenClient = DefaultListenClient
	}
	if opts.ListenPeer == "" {
		opts.ListenPeer = DefaultListenPeer
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(opts.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("embedded etcd: create data dir: %w", err)
	}
	// Free ports picked here can be taken by someone else before etcd binds
	// them: try again with new ones.
	const attempts = 3
	for i := 1; ; i++ {
		s, picked, err := start(ctx, opts)
		if err == nil {
			return s, nil
		}
		if !picked || i == attempts || !errors.Is(err, syscall.EADDRINUSE) || ctx.Err() != nil {
			return nil, err
		}
	}
}

func start(ctx context.Context, opts Options) (_ *Server, picked bool, _ error) {
	client, pickedC, err := resolve("client", opts.ListenClient)
	if err != nil {
		return nil, false, err
	}
	peer, pickedP, err := resolve("peer", opts.ListenPeer)
	if err != nil {
		return nil, false, err
	}
	picked = pickedC || pickedP

	cfg := embed.NewConfig()
	cfg.Name = "calico"
	cfg.Dir = opts.DataDir
	cfg.ListenClientUrls = []url.URL{{Scheme: "http", Host: client}}
	cfg.AdvertiseClientUrls = cfg.ListenClientUrls
	cfg.ListenPeerUrls = []url.URL{{Scheme: "http", Host: peer}}
	cfg.AdvertisePeerUrls = cfg.ListenPeerUrls
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.InitialClusterToken = "calico"
	cfg.UnsafeNoFsync = opts.UnsafeNoFsync
	// Keep an hour of history for watchers to resume from; older revisions
	// are compacted so the database does not grow without bound.
	cfg.AutoCompactionMode = embed.CompactorModePeriodic
	cfg.AutoCompactionRetention = "1h"
	level := zapslog.Level(opts.Logger)
	cfg.Logger = "zap"
	cfg.LogLevel = level.String()
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zapslog.New(opts.Logger, level).Named("etcd-server"))

	e, err := embed.StartEtcd(cfg)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return nil, picked, fmt.Errorf("embedded etcd: client %s or peer %s is already in use (another etcd or calico-node running?): %w", client, peer, err)
		}
		return nil, picked, fmt.Errorf("embedded etcd (data dir %s): %w", cfg.Dir, err)
	}
	timer := time.NewTimer(StartTimeout)
	defer timer.Stop()
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		return nil, picked, fmt.Errorf("embedded etcd (data dir %s): %w", cfg.Dir, err)
	case <-timer.C:
		e.Close()
		return nil, picked, fmt.Errorf("embedded etcd (data dir %s) not ready after %s", cfg.Dir, StartTimeout)
	case <-ctx.Done():
		e.Close()
		return nil, picked, fmt.Errorf("embedded etcd: start: %w", ctx.Err())
	}
	eps := make([]string, 0, len(e.Clients))
	for _, l := range e.Clients {
		eps = append(eps, "http://"+l.Addr().String())
	}
	opts.Logger.Info("embedded etcd ready", "endpoints", eps, "data_dir", cfg.Dir)
	return &Server{etcd: e, endpoints: eps, log: opts.Logger}, picked, nil
}

// resolve checks that addr is host:port and free, replacing port 0 by a free
// port; picked reports the replacement.
func resolve(what, addr string) (_ string, picked bool, _ error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", false, fmt.Errorf("embedded etcd: %s address %q: %w", what, addr, err)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return "", false, fmt.Errorf("embedded etcd: %s address %s is already in use (another etcd or calico-node running?): %w", what, addr, err)
		}
		return "", false, fmt.Errorf("embedded etcd: %s address %s: %w", what, addr, err)
	}
	got := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		return "", false, fmt.Errorf("embedded etcd: probe %s address %s: %w", what, addr, err)
	}
	return net.JoinHostPort(host, strconv.Itoa(got)), port == "0", nil
}

// Endpoints are the client URLs to give to the etcd backend.
func (s *Server) Endpoints() []string { return append([]string(nil), s.endpoints...) }

// Close stops the server and waits until it has stopped. Calling it again
// does nothing.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.etcd.Close()
		// Err is closed by Close; the shutdown's own "server closed" errors
		// are expected.
		for err := range s.etcd.Err() {
			if err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) && s.closeErr == nil {
				s.closeErr = fmt.Errorf("embedded etcd: %w", err)
			}
		}
	})
	return s.closeErr
}
