// Package felix wires calico-node's policy engine together: the syncer
// lists and watches the datastore, the calculation graph turns what it sees
// into ordered dataplane messages, and the dataplane programs the kernel.
// It also serves the health (/liveness, /readiness) and Prometheus
// endpoints when the Felix configuration enables them.
//
// The three stages run in two goroutines: the syncer and the graph share
// one (the graph is synchronous and not safe for concurrent use), the
// dataplane loop has its own, and a bounded channel of message batches
// joins them so a slow dataplane holds back the graph instead of growing a
// queue without limit.
package felix

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/calico-go/calico/internal/calc"
	"github.com/calico-go/calico/internal/dataplane"
	"github.com/calico-go/calico/internal/datastore"
	"github.com/calico-go/calico/internal/dpapi"
	"github.com/calico-go/calico/internal/syncer"
)

// DefaultConfigFile is Felix's local configuration file.
const DefaultConfigFile = "/etc/calico/felix.cfg"

// Options configure Run.
type Options struct {
	// NodeName is this host's Calico node name.
	NodeName string
	// Backend is the datastore to follow.
	Backend datastore.Backend
	// Dataplane configures the nftables dataplane (namespace, table name).
	Dataplane dataplane.Options
	// ConfigFile and ConfigEnv are the local configuration layers (the
	// [global] section of felix.cfg and the FELIX_* variables, keys without
	// the prefix).
	ConfigFile, ConfigEnv map[string]string
	// Registry receives every metric; nil makes a private one.
	Registry *prometheus.Registry
	// OnReady, when set, is called once the dataplane first holds the
	// complete policy (after InSync).
	OnReady func()
	Logger  *slog.Logger
}

// Run runs the policy engine until ctx ends or a stage fails.
func Run(ctx context.Context, opts Options) error {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	reg := opts.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	h := &health{}
	srv := &servers{log: log, reg: reg, health: h}
	defer srv.close()

	batches := make(chan []dpapi.Message, 16)
	graph := calc.New(calc.Options{
		NodeName:   opts.NodeName,
		ConfigFile: opts.ConfigFile,
		ConfigEnv:  opts.ConfigEnv,
		Logger:     log.With("component", "calc"),
		Sink: func(msgs []dpapi.Message) {
			for _, m := range msgs {
				if cu, ok := m.(dpapi.ConfigUpdate); ok {
					if err := srv.configure(cu.Config); err != nil {
						cancel(err)
					}
				}
			}
			select {
			case batches <- msgs:
			case <-ctx.Done():
			}
		},
	})

	dpOpts := opts.Dataplane
	dpOpts.Logger = log.With("component", "dataplane")
	dpOpts.Registerer = reg
	var readyOnce sync.Once
	userOnApply := dpOpts.OnApply
	dpOpts.OnApply = func(r dataplane.ApplyResult) {
		h.applied(r)
		if r.InSync && r.Err == nil {
			readyOnce.Do(func() {
				log.Info("dataplane in sync")
				if opts.OnReady != nil {
					opts.OnReady()
				}
			})
		}
		if userOnApply != nil {
			userOnApply(r)
		}
	}
	dp, err := dataplane.New(dpOpts)
	if err != nil {
		return fmt.Errorf("create dataplane: %w", err)
	}

	sy := syncer.New(syncer.Options{
		Backend: opts.Backend,
		Logger:  log.With("component", "syncer"),
		OnUpdates: func(us []syncer.Update) {
			cu := make([]calc.Update, len(us))
			for i, u := range us {
				cu[i] = calc.Update{Key: calc.Key{Kind: u.Key.Kind, Namespace: u.Key.Namespace, Name: u.Key.Name}, Value: u.Value}
			}
			graph.OnUpdates(cu)
		},
		OnStatus: func(s syncer.Status) {
			log.Info("datastore sync status", "status", s.String())
			if s == syncer.InSync {
				graph.OnInSync()
			}
		},
	})

	var wg sync.WaitGroup
	errs := make(chan error, 2)
	wg.Add(2)
	go func() {
		defer wg.Done()
		if err := sy.Run(ctx); err != nil {
			errs <- fmt.Errorf("syncer: %w", err)
			cancel(err)
		}
	}()
	go func() {
		defer wg.Done()
		h.live.Store(true)
		defer h.live.Store(false)
		if err := dp.Run(ctx, batches); err != nil && !errors.Is(err, context.Canceled) {
			errs <- fmt.Errorf("dataplane: %w", err)
			cancel(err)
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		return err
	}
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		return cause
	}
	return nil
}

// health tracks what /liveness and /readiness report.
type health struct {
	live      atomic.Bool // the dataplane loop is running
	ready     atomic.Bool // the last apply after InSync succeeded
	lastApply atomic.Int64
}

func (h *health) applied(r dataplane.ApplyResult) {
	h.lastApply.Store(time.Now().UnixNano())
	h.ready.Store(r.InSync && r.Err == nil)
}

// servers runs the health and metrics HTTP servers that the Felix
// configuration asks for. They start with the first ConfigUpdate; later
// changes to their addresses need a restart (as in Calico).
type servers struct {
	log    *slog.Logger
	reg    *prometheus.Registry
	health *health

	mu         sync.Mutex
	configured bool
	running    []*http.Server
}

func (s *servers) configure(c dpapi.Config) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.configured {
		return nil
	}
	s.configured = true
	if c.HealthEnabled {
		mux := http.NewServeMux()
		mux.HandleFunc("/liveness", s.probe(func() bool { return s.health.live.Load() }))
		mux.HandleFunc("/readiness", s.probe(func() bool { return s.health.live.Load() && s.health.ready.Load() }))
		if err := s.listen("health", c.HealthHost, c.HealthPort, mux); err != nil {
			return err
		}
	}
	if c.PrometheusMetricsEnabled {
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{}))
		if err := s.listen("metrics", c.PrometheusMetricsHost, c.PrometheusMetricsPort, mux); err != nil {
			return err
		}
	}
	return nil
}

func (s *servers) probe(ok func() bool) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		if ok() {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		w.WriteHeader(http.StatusServiceUnavailable)
	}
}

func (s *servers) listen(what, host string, port int, h http.Handler) error {
	addr := net.JoinHostPort(host, strconv.Itoa(port))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("%s endpoint: listen on %s: %w", what, addr, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	s.running = append(s.running, srv)
	s.log.Info("serving "+what, "address", ln.Addr().String())
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error(what+" endpoint stopped", "error", err)
		}
	}()
	return nil
}

func (s *servers) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, srv := range s.running {
		_ = srv.Close()
	}
}
