// Package etcdtest gives integration tests a real etcd: an embedded server
// (Embedded) or a separately started Debian etcd process (External), with
// optional TLS and client-certificate authentication from a throw-away CA.
// Servers listen on free loopback ports, keep their data in t.TempDir() and
// stop at the end of the test.
//
// When the etcd binary is missing, External skips the test, except under
// CALICO_TEST_PRIVILEGED=1 (CI), where it fails.
package etcdtest

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
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/calico-go/calico/internal/datastore/embedded"
	"github.com/calico-go/calico/internal/datastore/etcd"
)

// Embedded starts an embedded etcd on free loopback ports and returns its
// client endpoints. It is closed at the end of the test.
func Embedded(tb testing.TB) []string {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv, err := embedded.Start(ctx, embedded.Options{
		DataDir:       filepath.Join(tb.TempDir(), "etcd"),
		ListenClient:  "127.0.0.1:0",
		ListenPeer:    "127.0.0.1:0",
		UnsafeNoFsync: true,
	})
	if err != nil {
		tb.Fatalf("start embedded etcd: %v", err)
	}
	tb.Cleanup(func() { _ = srv.Close() })
	return srv.Endpoints()
}

// PKI is a throw-away CA with a server and a client certificate, as PEM
// files.
type PKI struct {
	CA, ServerCert, ServerKey, ClientCert, ClientKey string
}

// Server is a running external etcd.
type Server struct {
	Endpoint string
	PKI      *PKI // nil for plain http
}

// Config is an etcd backend configuration for the server, with the client
// certificate when it uses TLS.
func (s Server) Config() etcd.Config {
	c := etcd.Config{Endpoints: []string{s.Endpoint}}
	if s.PKI != nil {
		c.CACertFile, c.CertFile, c.KeyFile = s.PKI.CA, s.PKI.ClientCert, s.PKI.ClientKey
	}
	return c
}

// RequireBinary finds an executable; when it is missing the test skips,
// except under CALICO_TEST_PRIVILEGED=1, where it fails.
func RequireBinary(tb testing.TB, name, debianPackage string) string {
	tb.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if os.Getenv("CALICO_TEST_PRIVILEGED") == "1" {
		tb.Fatalf("%s not found (install Debian's %s): %v", name, debianPackage, err)
	}
	tb.Skipf("%s not found (install Debian's %s): %v", name, debianPackage, err)
	return ""
}

// External runs Debian's etcd on free loopback ports, with TLS and client
// certificate authentication when withTLS is set, and stops it at the end
// of the test.
func External(t *testing.T, withTLS bool) Server {
	t.Helper()
	bin := RequireBinary(t, "etcd", "etcd-server")
	dir := t.TempDir()
	var srv Server
	scheme := "http"
	var tlsArgs []string
	if withTLS {
		p := NewPKI(t, dir)
		srv.PKI = &p
		scheme = "https"
		tlsArgs = []string{"--cert-file", p.ServerCert, "--key-file", p.ServerKey,
			"--trusted-ca-file", p.CA, "--client-cert-auth"}
	}
	for attempt := 1; ; attempt++ {
		srv.Endpoint = scheme + "://127.0.0.1:" + strconv.Itoa(FreePort(t))
		peer := "http://127.0.0.1:" + strconv.Itoa(FreePort(t))
		args := append([]string{
			"--name", "ext",
			"--data-dir", filepath.Join(dir, fmt.Sprintf("data-%d", attempt)),
			"--listen-client-urls", srv.Endpoint,
			"--advertise-client-urls", srv.Endpoint,
			"--listen-peer-urls", peer,
			"--initial-advertise-peer-urls", peer,
			"--initial-cluster", "ext=" + peer,
			"--initial-cluster-state", "new",
			"--logger", "zap", "--log-outputs", "stderr", "--log-level", "error",
		}, tlsArgs...)
		cmd := exec.Command(bin, args...)
		var stderr lockedBuffer
		cmd.Stdout = io.Discard
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatalf("start %s: %v", bin, err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		stop := func() {
			_ = cmd.Process.Kill()
			<-exited
		}
		if err := waitReady(srv, exited); err != nil {
			stop()
			if attempt < 3 && bytes.Contains(stderr.Bytes(), []byte("address already in use")) {
				continue
			}
			t.Fatalf("external etcd %s: %v\nstderr:\n%s", srv.Endpoint, err, stderr.Bytes())
		}
		t.Cleanup(stop)
		return srv
	}
}

func waitReady(srv Server, exited <-chan error) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		cfg := srv.Config()
		cfg.DialTimeout = 500 * time.Millisecond
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		b, err := etcd.New(ctx, cfg)
		cancel()
		if err == nil {
			return b.Close()
		}
		select {
		case werr := <-exited:
			return fmt.Errorf("exited: %v", werr)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after 30s: %w", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// FreePort returns a loopback TCP port nothing listens on at the time of
// the call.
func FreePort(tb testing.TB) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// NewPKI writes a CA, a server certificate for 127.0.0.1/localhost and a
// client certificate into dir.
func NewPKI(tb testing.TB, dir string) PKI {
	tb.Helper()
	caKey, caCert, caDER := newCert(tb, "calico-test-ca", nil, nil, func(c *x509.Certificate) {
		c.IsCA = true
		c.BasicConstraintsValid = true
		c.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign
	})
	p := PKI{
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

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]byte(nil), b.buf.Bytes()...)
}
