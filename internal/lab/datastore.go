package lab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/calico-go/calico/internal/datastore/embedded"
	"github.com/calico-go/calico/internal/netns"
)

// relayPort is where hosts reach the datastore: the underlay gateway's
// address, this port.
const relayPort uint16 = 2379

// DatastoreOptions configure RunDatastore, the lab's datastore process.
type DatastoreOptions struct {
	// Dir is the lab's directory: the embedded etcd keeps its data in
	// Dir/etcd, and Dir/datastore.json announces the endpoints once ready.
	Dir string
	// UnderlayNS is the path of the underlay namespace, where the relay
	// listens on RelayListen (host:port).
	UnderlayNS  string
	RelayListen string
	// Targets are external etcd endpoints; empty serves an embedded etcd
	// on a free loopback port.
	Targets []string
	Logger  *slog.Logger
}

// datastoreInfo is Dir/datastore.json.
type datastoreInfo struct {
	Endpoints []string `json:"endpoints"`
}

func datastoreInfoPath(dir string) string { return filepath.Join(dir, "datastore.json") }

// RunDatastore serves the lab's datastore until ctx ends: an embedded
// single-node etcd (or the external endpoints), and a TCP relay that
// listens on the underlay and forwards every connection to it, so that
// calico-node and the CNI plugins in the host namespaces reach a datastore
// that lives in the machine's own namespace.
func RunDatastore(ctx context.Context, opts DatastoreOptions) error {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	eps := opts.Targets
	if len(eps) == 0 {
		srv, err := embedded.Start(ctx, embedded.Options{
			DataDir:       filepath.Join(opts.Dir, "etcd"),
			ListenClient:  "127.0.0.1:0",
			ListenPeer:    "127.0.0.1:0",
			UnsafeNoFsync: true, // the lab's data lives in /run and dies with it
			Logger:        log,
		})
		if err != nil {
			return err
		}
		defer srv.Close()
		eps = srv.Endpoints()
	}
	var targets []string
	for _, ep := range eps {
		u, err := url.Parse(ep)
		if err != nil || u.Host == "" {
			return fmt.Errorf("etcd endpoint %q: want scheme://host:port: %w", ep, ErrInvalid)
		}
		targets = append(targets, u.Host)
	}
	ns, err := netns.Open(opts.UnderlayNS)
	if err != nil {
		return err
	}
	defer ns.Close()
	var l net.Listener
	if err := ns.Do(func() error {
		var err error
		l, err = net.Listen("tcp", opts.RelayListen)
		return err
	}); err != nil {
		return fmt.Errorf("relay on the underlay: %w", err)
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	defer l.Close()
	wg.Add(1)
	go func() {
		defer wg.Done()
		relay(ctx, l, targets, log)
	}()
	b, _ := json.Marshal(datastoreInfo{Endpoints: eps})
	if err := writeFileAtomic(datastoreInfoPath(opts.Dir), b); err != nil {
		return err
	}
	log.Info("lab datastore ready", "endpoints", eps, "relay", opts.RelayListen)
	<-ctx.Done()
	return nil
}

// relay accepts connections on l and joins each to the first target that
// answers.
func relay(ctx context.Context, l net.Listener, targets []string, log *slog.Logger) {
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		in, err := l.Accept()
		if err != nil {
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer in.Close()
			var out net.Conn
			var err error
			for _, t := range targets {
				d := net.Dialer{Timeout: 5 * time.Second}
				if out, err = d.DialContext(ctx, "tcp", t); err == nil {
					break
				}
			}
			if out == nil {
				log.Warn("relay: datastore unreachable", "targets", targets, "error", err)
				return
			}
			defer out.Close()
			join(ctx, in, out)
		}()
	}
}

// join copies both ways until both directions end or ctx ends.
func join(ctx context.Context, a, b net.Conn) {
	stop := context.AfterFunc(ctx, func() { a.Close(); b.Close() })
	defer stop()
	done := make(chan struct{}, 2)
	cp := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		if tc, ok := dst.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
		done <- struct{}{}
	}
	go cp(a, b)
	go cp(b, a)
	<-done
	<-done
}

// readDatastoreInfo waits for the datastore process to announce its
// endpoints, failing early if it dies.
func readDatastoreInfo(ctx context.Context, dir string, d *daemon) (datastoreInfo, error) {
	var info datastoreInfo
	for {
		b, err := os.ReadFile(datastoreInfoPath(dir))
		if err == nil {
			if err := json.Unmarshal(b, &info); err != nil {
				return info, fmt.Errorf("decode %s: %w", datastoreInfoPath(dir), err)
			}
			return info, nil
		}
		if !errors.Is(err, os.ErrNotExist) {
			return info, err
		}
		if d.exited() {
			return info, fmt.Errorf("the datastore process ended:\n%s", logTail(d.log, 15))
		}
		select {
		case <-ctx.Done():
			return info, fmt.Errorf("waiting for the datastore: %w", ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}
