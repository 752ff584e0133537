package etcd

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"
)

// probeTimeout bounds the diagnosis of each endpoint after a failed connect.
const probeTimeout = 1500 * time.Millisecond

// probe explains why etcd did not answer: for each endpoint it dials TCP
// and, for https, completes a TLS handshake with the client settings, and
// reports the first failure ("connection refused", "certificate signed by
// unknown authority", ...). The gRPC client only says "deadline exceeded".
func probe(ctx context.Context, endpoints []string, tc *tls.Config) string {
	out := make([]string, len(endpoints))
	var wg sync.WaitGroup
	for i, ep := range endpoints {
		wg.Go(func() { out[i] = probeOne(ctx, ep, tc) })
	}
	wg.Wait()
	var parts []string
	for _, s := range out {
		if s != "" {
			parts = append(parts, s)
		}
	}
	return strings.Join(parts, "; ")
}

func probeOne(ctx context.Context, ep string, tc *tls.Config) string {
	u, err := url.Parse(ep)
	if err != nil || u.Host == "" {
		u = &url.URL{Scheme: "http", Host: ep} // host:port without a scheme
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return ""
	}
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", u.Host)
	if err != nil {
		return describe(u.Host, err)
	}
	defer conn.Close()
	if u.Scheme != "https" && tc == nil {
		return u.Host + ": TCP connects, but etcd does not answer"
	}
	cfg := &tls.Config{}
	if tc != nil {
		cfg = tc.Clone()
	}
	if cfg.ServerName == "" {
		cfg.ServerName = u.Hostname()
	}
	tconn := tls.Client(conn, cfg)
	if err := tconn.HandshakeContext(ctx); err != nil {
		return describe(u.Host, fmt.Errorf("TLS handshake: %w", err))
	}
	// With TLS 1.3 a rejected client certificate shows up as an alert after
	// the handshake.
	_ = tconn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if _, err := tconn.Read(make([]byte, 1)); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
		return describe(u.Host, fmt.Errorf("TLS: %w", err))
	}
	return u.Host + ": TCP and TLS work, but etcd does not answer"
}

func describe(host string, err error) string {
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil && !strings.HasPrefix(err.Error(), "TLS") {
		return host + ": " + oe.Err.Error()
	}
	return host + ": " + err.Error()
}
