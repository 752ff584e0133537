// Package etcd is the etcd v3 datastore backend. It stores each
// projectcalico.org/v3 resource as JSON (without resourceVersion) under
// Calico's key layout,
//
//	/calico/resources/v3/projectcalico.org/<plural>/[<namespace>/]<name>
//
// and uses the key's ModRevision as the resourceVersion, etcd transactions for
// optimistic concurrency and etcd watches (with previous values) for Watch.
// The one exception is IPAMConfiguration "default", which lives at Calico's
// IPAM key /calico/ipam/v2/config in Calico's JSON (see IPAMConfigKey), so
// that the resource and the IPAM allocator share one configuration.
// Every request has a timeout, so an unreachable etcd gives an error wrapping
// datastore.ErrUnavailable that names the endpoints, never a hang.
package etcd

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	v3 "github.com/calico-go/calico/api/v3"
	"github.com/calico-go/calico/internal/datastore"
	"github.com/calico-go/calico/internal/datastore/internal/zapslog"
)

// Prefix is the root of every v3 resource key.
const Prefix = "/calico/resources/v3/projectcalico.org/"

// Defaults for Config.
const (
	DefaultDialTimeout    = 5 * time.Second
	DefaultRequestTimeout = 5 * time.Second
)

// Config says how to reach etcd.
type Config struct {
	// Endpoints are etcd client URLs, e.g. "https://10.0.0.1:2379".
	Endpoints []string
	// CACertFile verifies the server; CertFile and KeyFile are the client
	// certificate. Any of them (or an https endpoint) turns TLS on.
	CACertFile, CertFile, KeyFile string
	// Username and Password enable etcd authentication.
	Username, Password string
	// DialTimeout bounds connecting and the connectivity check in New
	// (default 5s).
	DialTimeout time.Duration
	// RequestTimeout bounds each later request (default 5s). Watches are not
	// bounded, only their setup.
	RequestTimeout time.Duration
	// Logger receives the backend's logs and, at error level (info when the
	// logger has debug enabled), the etcd client's. Nil discards.
	Logger *slog.Logger
}

// Backend is a datastore.Backend over an etcd v3 cluster. It is safe for
// concurrent use.
type Backend struct {
	client    *clientv3.Client
	endpoints string
	timeout   time.Duration
	log       *slog.Logger
	// ctx ends when Close is called; watches stop with it.
	ctx    context.Context
	cancel context.CancelFunc
}

var _ datastore.Backend = (*Backend)(nil)

// New connects to etcd and checks that it answers (and that the credentials
// work) within cfg.DialTimeout. Errors wrap datastore.ErrUnavailable and name
// the endpoints.
func New(ctx context.Context, cfg Config) (*Backend, error) {
	if len(cfg.Endpoints) == 0 {
		return nil, &datastore.Error{Op: "connect", Err: fmt.Errorf("%w: no etcd endpoints configured", datastore.ErrUnavailable),
			Detail: "set the etcd endpoints (ETCD_ENDPOINTS / etcdEndpoints)"}
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = DefaultDialTimeout
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = DefaultRequestTimeout
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	endpoints := strings.Join(cfg.Endpoints, ",")
	tlsCfg, err := tlsConfig(cfg)
	if err != nil {
		return nil, &datastore.Error{Op: "connect", Err: fmt.Errorf("%w: %w", datastore.ErrUnavailable, err),
			Detail: "etcd endpoints " + endpoints + ": check the etcd CA, certificate and key files"}
	}
	client, err := clientv3.New(clientv3.Config{
		Endpoints:            cfg.Endpoints,
		DialTimeout:          cfg.DialTimeout,
		DialKeepAliveTime:    30 * time.Second,
		DialKeepAliveTimeout: 10 * time.Second,
		TLS:                  tlsCfg,
		Username:             cfg.Username,
		Password:             cfg.Password,
		Logger:               zapslog.New(log, zapslog.Level(log)).Named("etcd-client"),
	})
	b := &Backend{client: client, endpoints: endpoints, timeout: cfg.RequestTimeout, log: log}
	if err != nil { // with credentials, New already talked to etcd (to get a token)
		return nil, b.connectErr(ctx, cfg, tlsCfg, err)
	}
	b.ctx, b.cancel = context.WithCancel(context.Background())

	// clientv3 dials lazily: make one real, linearizable request so that an
	// unreachable or misconfigured etcd fails here.
	cctx, cancel := context.WithTimeout(ctx, cfg.DialTimeout)
	defer cancel()
	if _, err := client.Get(clientv3.WithRequireLeader(cctx), Prefix, clientv3.WithKeysOnly(), clientv3.WithLimit(1)); err != nil {
		_ = client.Close()
		b.cancel()
		return nil, b.connectErr(ctx, cfg, tlsCfg, err)
	}
	log.Debug("connected to etcd", "endpoints", endpoints)
	return b, nil
}

// connectErr is fail for New: when etcd did not answer in time it probes
// the endpoints to say why (refused, TLS failure, ...).
func (b *Backend) connectErr(ctx context.Context, cfg Config, tc *tls.Config, err error) error {
	ferr := b.fail(ctx, "connect", datastore.Key{}, err)
	var de *datastore.Error
	timedOut := errors.Is(err, context.DeadlineExceeded) || status.Code(err) == codes.DeadlineExceeded
	if ctx.Err() != nil || !timedOut || !errors.As(ferr, &de) {
		return ferr
	}
	if why := probe(ctx, cfg.Endpoints, tc); why != "" {
		de.Detail = fmt.Sprintf("etcd endpoints %s: no answer within %s (%s); check that etcd is running there, "+
			"that its cluster has a leader, and that the TLS files match the server", b.endpoints, cfg.DialTimeout, why)
	}
	return ferr
}

// Client returns the underlying etcd client (for IPAM and maintenance code
// that works outside the resource key space). It is closed by Close.
func (b *Backend) Client() *clientv3.Client { return b.client }

// Close stops every watch and closes the client.
func (b *Backend) Close() error {
	b.cancel()
	if err := b.client.Close(); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("close etcd client: %w", err)
	}
	return nil
}

// Compact discards the history before revision (a resourceVersion or list
// revision) and waits until etcd has applied it. Watches that resume from an
// older revision then fail with datastore.ErrCompacted.
func (b *Backend) Compact(ctx context.Context, revision string) error {
	rev, err := strconv.ParseInt(revision, 10, 64)
	if err != nil {
		return fmt.Errorf("compact: bad revision %q: %w", revision, err)
	}
	rctx, cancel := b.reqCtx(ctx)
	defer cancel()
	_, err = b.client.Compact(rctx, rev, clientv3.WithCompactPhysical())
	if err != nil && !errors.Is(err, rpctypes.ErrCompacted) { // already compacted is fine
		return b.fail(ctx, "compact", datastore.Key{}, err)
	}
	return nil
}

// reqCtx bounds one request.
func (b *Backend) reqCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	return clientv3.WithRequireLeader(ctx), cancel
}

// fail turns an etcd client error into a *datastore.Error. parent is the
// caller's context: if it ended, its error is the cause; a timeout of our own
// means etcd did not answer.
func (b *Backend) fail(parent context.Context, op string, k datastore.Key, err error) error {
	if parent.Err() != nil {
		return &datastore.Error{Op: op, Key: k, Err: context.Cause(parent)}
	}
	switch {
	case isAuthErr(err):
		return &datastore.Error{Op: op, Key: k, Err: fmt.Errorf("%w: %w", datastore.ErrUnauthorized, err),
			Detail: "etcd endpoints " + b.endpoints + ": authentication failed or permission denied; check the etcd username, password and the user's role"}
	case errors.Is(err, rpctypes.ErrNoSpace):
		return &datastore.Error{Op: op, Key: k, Err: fmt.Errorf("%w: %w", datastore.ErrUnavailable, err),
			Detail: "etcd endpoints " + b.endpoints + ": the database is full; compact and defragment etcd, then disarm the NOSPACE alarm"}
	case isUnavailable(err):
		return &datastore.Error{Op: op, Key: k, Err: fmt.Errorf("%w: %w", datastore.ErrUnavailable, err),
			Detail: "etcd endpoints " + b.endpoints + ": check that etcd is running and reachable there, that its cluster has a leader, and that the TLS files match the server"}
	}
	return &datastore.Error{Op: op, Key: k, Err: err}
}

func isAuthErr(err error) bool {
	for _, e := range []error{rpctypes.ErrAuthFailed, rpctypes.ErrPermissionDenied, rpctypes.ErrUserEmpty,
		rpctypes.ErrInvalidAuthToken, rpctypes.ErrAuthOldRevision, rpctypes.ErrUserNotFound} {
		if errors.Is(err, e) {
			return true
		}
	}
	switch status.Code(err) {
	case codes.Unauthenticated, codes.PermissionDenied:
		return true
	}
	return false
}

func isUnavailable(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, clientv3.ErrNoAvailableEndpoints) {
		return true
	}
	for _, e := range []error{rpctypes.ErrNoLeader, rpctypes.ErrNotLeader, rpctypes.ErrLeaderChanged, rpctypes.ErrStopped,
		rpctypes.ErrTimeout, rpctypes.ErrTimeoutDueToLeaderFail, rpctypes.ErrTimeoutDueToConnectionLost,
		rpctypes.ErrTimeoutWaitAppliedIndex, rpctypes.ErrUnhealthy, rpctypes.ErrTooManyRequests, rpctypes.ErrNotCapable} {
		if errors.Is(err, e) {
			return true
		}
	}
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled:
		return true
	}
	return false
}

// tlsConfig builds the client TLS settings, or nil for plain connections.
func tlsConfig(cfg Config) (*tls.Config, error) {
	https := false
	for _, ep := range cfg.Endpoints {
		if strings.HasPrefix(ep, "https://") || strings.HasPrefix(ep, "unixs://") {
			https = true
		}
	}
	if !https && cfg.CACertFile == "" && cfg.CertFile == "" && cfg.KeyFile == "" {
		return nil, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.CACertFile != "" {
		pem, err := os.ReadFile(cfg.CACertFile)
		if err != nil {
			return nil, fmt.Errorf("read etcd CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("etcd CA file %s: no PEM certificates", cfg.CACertFile)
		}
		tc.RootCAs = pool
	}
	if (cfg.CertFile == "") != (cfg.KeyFile == "") {
		return nil, fmt.Errorf("etcd client certificate and key must be given together (cert %q, key %q)", cfg.CertFile, cfg.KeyFile)
	}
	if cfg.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.CertFile, cfg.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("load etcd client certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// path is the etcd key of one resource; k must have been checked (see
// also checkName).
func path(ki v3.KindInfo, k datastore.Key) string {
	if isIPAMConfig(ki) {
		return IPAMConfigKey
	}
	if ki.Namespaced {
		return Prefix + ki.Plural + "/" + k.Namespace + "/" + k.Name
	}
	return Prefix + ki.Plural + "/" + k.Name
}

// kindPrefix is the key prefix of a kind, narrowed to a namespace for
// namespaced kinds when ns is set.
func kindPrefix(ki v3.KindInfo, ns string) string {
	if isIPAMConfig(ki) {
		return IPAMConfigKey
	}
	if ki.Namespaced && ns != "" {
		return Prefix + ki.Plural + "/" + ns + "/"
	}
	return Prefix + ki.Plural + "/"
}

// parsePath is the inverse of path; ok is false for keys that do not fit the
// layout (which List and Watch skip).
func parsePath(ki v3.KindInfo, key string) (datastore.Key, bool) {
	if isIPAMConfig(ki) {
		return datastore.Key{Kind: ki.Kind, Name: ipamConfigName}, key == IPAMConfigKey
	}
	rest, ok := strings.CutPrefix(key, Prefix+ki.Plural+"/")
	if !ok || rest == "" {
		return datastore.Key{}, false
	}
	k := datastore.Key{Kind: ki.Kind}
	if ki.Namespaced {
		ns, name, ok := strings.Cut(rest, "/")
		if !ok || ns == "" || name == "" || strings.Contains(name, "/") {
			return datastore.Key{}, false
		}
		k.Namespace, k.Name = ns, name
		return k, true
	}
	if strings.Contains(rest, "/") {
		return datastore.Key{}, false
	}
	k.Name = rest
	return k, true
}

func revString(rev int64) string { return strconv.FormatInt(rev, 10) }
