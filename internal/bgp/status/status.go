// Package status publishes a running BGP speaker's session states on a unix
// socket (HTTP, JSON) and reads them back for `calicoctl node status`.
//
// The socket lives in the filesystem (DefaultSocket), so a calicoctl in any
// network namespace of the host can read it; only processes that may open
// the file can. GET /status returns a Report.
package status

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/calico-go/calico/internal/bgp"
)

// DefaultSocket is where calico-node serves its BGP status.
const DefaultSocket = "/var/run/calico/bgp.sock"

// ErrNotRunning: nothing serves the socket (calico-node is not running, or
// runs without BGP).
var ErrNotRunning = errors.New("calico-node BGP status socket is not being served")

// Report is the speaker's state.
type Report struct {
	Node  string           `json:"node"`
	ASN   uint32           `json:"asn"`
	Peers []bgp.PeerStatus `json:"peers"`
	// Time is when the report was made.
	Time time.Time `json:"time"`
}

// Source produces a Report.
type Source func(ctx context.Context) (Report, error)

// Serve serves src on a unix socket at path until ctx ends. A stale socket
// file left by a dead process is replaced.
func Serve(ctx context.Context, path string, src Source, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("status socket directory: %w", err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove stale status socket %s: %w", path, err)
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return fmt.Errorf("listen on status socket %s: %w", path, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		rep, err := src(r.Context())
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		if err := json.NewEncoder(w).Encode(rep); err != nil {
			log.Debug("write status", "error", err)
		}
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	err = srv.Serve(l)
	<-done
	_ = os.Remove(path)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return fmt.Errorf("serve status socket %s: %w", path, err)
}

// Fetch reads the Report served at path. It returns ErrNotRunning when
// nobody listens there.
func Fetch(ctx context.Context, path string) (Report, error) {
	var rep Report
	client := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
	}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://calico-node/status", nil)
	if err != nil {
		return rep, err
	}
	resp, err := client.Do(req)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED) {
			return rep, fmt.Errorf("%w (%s)", ErrNotRunning, path)
		}
		return rep, fmt.Errorf("read BGP status from %s: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var msg [512]byte
		n, _ := resp.Body.Read(msg[:])
		return rep, fmt.Errorf("read BGP status from %s: %s: %s", path, resp.Status, msg[:n])
	}
	if err := json.NewDecoder(resp.Body).Decode(&rep); err != nil {
		return rep, fmt.Errorf("decode BGP status: %w", err)
	}
	return rep, nil
}
