package etcd_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
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

// requireBinary finds an executable for an integration test. When it is
// missing the test skips, except under CALICO_TEST_PRIVILEGED=1 (CI), where
// it fails.
func requireBinary(tb testing.TB, name, pkg string) string {
	tb.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if os.Getenv("CALICO_TEST_PRIVILEGED") == "1" {
		tb.Fatalf("%s not found (install Debian's %s): %v", name, pkg, err)
	}
	if os.Geteuid() != 0 {
		tb.Skipf("%s not found and not root (install Debian's %s): %v", name, pkg, err)
	}
	tb.Skipf("%s not found (install Debian's %s): %v", name, pkg, err)
	return ""
}

// freePort returns a loopback port nothing listens on (at the time of the
// call).
func freePort(tb testing.TB) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// pki is a throw-away CA with a server and a client certificate, as files.
type pki struct {
	CA, ServerCert, ServerKey, ClientCert, ClientKey string
}

func newPKI(tb testing.TB, dir string) pki {
	tb.Helper()
	caKey, caCert, caDER := newCert(tb, "calico-test-ca", nil, nil, func(c *x509.Certificate) {
		c.IsCA = true
		c.BasicConstraintsValid = true
		c.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign
	})
	p := pki{
		CA:         filepath.Join(dir, "ca.pem"),
		ServerCert: filepath.Join(dir, "server.pem"),
		ServerKey:  filepath.Join(dir, "server-key.pem"),
		ClientCert: filepath.Join(dir, "client.pem"),
		ClientKey:  filepath.Join(dir, "client-key.pem"),
	}
	writePEM(tb, p.CA, "CERTIFICATE", caDER)
	sKey, _, sDER := newCert(tb, "etcd-server", caCert, caKey, func(c *x509.Certificate) {
		c.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
		c.DNSNames = []string{"localhost"}
		c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	})
	writePEM(tb, p.ServerCert, "CERTIFICATE", sDER)
	writeKey(tb, p.ServerKey, sKey)
	cKey, _, cDER := newCert(tb, "calico-client", caCert, caKey, func(c *x509.Certificate) {
		c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	})
	writePEM(tb, p.ClientCert, "CERTIFICATE", cDER)
	writeKey(tb, p.ClientKey, cKey)
	return p
}

func newCert(tb testing.TB, cn string, parent *x509.Certificate, parentKey *ecdsa.PrivateKey, edit func(*x509.Certificate)) (*ecdsa.PrivateKey, *x509.Certificate, []byte) {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	edit(tmpl)
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		tb.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	return key, cert, der
}

func writePEM(tb testing.TB, path, typ string, der []byte) {
	tb.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		tb.Fatal(err)
	}
}

func writeKey(tb testing.TB, path string, key *ecdsa.PrivateKey) {
	tb.Helper()
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		tb.Fatal(err)
	}
	writePEM(tb, path, "EC PRIVATE KEY", der)
}

// external is an etcd server process from Debian's etcd-server package.
type external struct {
	Endpoint string
	PKI      *pki // nil for plain http
}

// startExternal runs etcd on free loopback ports, with TLS and client
// certificate authentication when tls is set, and stops it at the end of the
// test.
func startExternal(t *testing.T, tls bool) external {
	t.Helper()
	bin := requireBinary(t, "etcd", "etcd-server")
	dir := t.TempDir()
	var ext external
	scheme := "http"
	var tlsArgs []string
	if tls {
		p := newPKI(t, dir)
		ext.PKI = &p
		scheme = "https"
		tlsArgs = []string{"--cert-file", p.ServerCert, "--key-file", p.ServerKey,
			"--trusted-ca-file", p.CA, "--client-cert-auth"}
	}
	for attempt := 1; ; attempt++ {
		client := "127.0.0.1:" + strconv.Itoa(freePort(t))
		peer := "http://127.0.0.1:" + strconv.Itoa(freePort(t))
		ext.Endpoint = scheme + "://" + client
		args := append([]string{
			"--name", "ext",
			"--data-dir", filepath.Join(dir, fmt.Sprintf("data-%d", attempt)),
			"--listen-client-urls", ext.Endpoint,
			"--advertise-client-urls", ext.Endpoint,
			"--listen-peer-urls", peer,
			"--initial-advertise-peer-urls", peer,
			"--initial-cluster", "ext=" + peer,
			"--initial-cluster-state", "new",
			"--logger", "zap", "--log-outputs", "stderr", "--log-level", "error",
		}, tlsArgs...)
		cmd := exec.Command(bin, args...)
		var stderr syncBuffer
		cmd.Stdout = io.Discard
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatalf("start %s: %v", bin, err)
		}
		exited := make(chan struct{})
		go func() {
			_ = cmd.Wait()
			close(exited)
		}()
		stop := func() {
			_ = cmd.Process.Kill()
			<-exited
		}
		if err := waitReady(ext, exited); err != nil {
			stop()
			if attempt < 3 && bytes.Contains(stderr.Bytes(), []byte("address already in use")) {
				continue
			}
			t.Fatalf("external etcd %s: %v\nstderr:\n%s", ext.Endpoint, err, stderr.Bytes())
		}
		t.Cleanup(stop)
		return ext
	}
}

// cfg is an etcd.Config for this server, with the client certificate.
func (e external) cfg() etcd.Config {
	c := etcd.Config{Endpoints: []string{e.Endpoint}}
	if e.PKI != nil {
		c.CACertFile, c.CertFile, c.KeyFile = e.PKI.CA, e.PKI.ClientCert, e.PKI.ClientKey
	}
	return c
}

func waitReady(ext external, exited <-chan struct{}) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		cfg := ext.cfg()
		cfg.DialTimeout = 500 * time.Millisecond
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		b, err := etcd.New(ctx, cfg)
		cancel()
		if err == nil {
			return b.Close()
		}
		select {
		case <-exited:
			return fmt.Errorf("etcd exited")
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after 30s: %w", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]byte(nil), b.buf.Bytes()...)
}
