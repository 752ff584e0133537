package ctl

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v3 "github.com/calico-go/calico/api/v3"
	"github.com/calico-go/calico/internal/datastore"
	"github.com/calico-go/calico/internal/datastore/fake"
	"github.com/calico-go/calico/pkg/client"
)

// testEnv runs calicoctl command lines against an in-memory datastore.
type testEnv struct {
	t      *testing.T
	be     *fake.Backend
	runner *Runner
	env    map[string]string
	// configs records the configuration each connection was made with.
	configs []client.Config
}

// keepOpen stops Run's Close from closing the shared fake.
type keepOpen struct{ datastore.Backend }

func (keepOpen) Close() error { return nil }

func newTestEnv(t *testing.T) *testEnv {
	t.Helper()
	e := &testEnv{t: t, be: fake.New(), env: map[string]string{}}
	e.runner = &Runner{
		NewClient: func(_ context.Context, cfg client.Config) (*client.Client, error) {
			e.configs = append(e.configs, cfg)
			return client.NewFromBackend(keepOpen{e.be}), nil
		},
		LookupEnv: func(k string) (string, bool) { v, ok := e.env[k]; return v, ok },
	}
	return e
}

type result struct {
	stdout, stderr string
	code           int
}

// run runs one command line with stdin.
func (e *testEnv) run(stdin string, args ...string) result {
	e.t.Helper()
	var out, errb bytes.Buffer
	code := e.runner.Run(context.Background(), args, strings.NewReader(stdin), &out, &errb)
	return result{out.String(), errb.String(), code}
}

func (r result) ok(t *testing.T) result {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	return r
}

func (r result) fails(t *testing.T) result {
	t.Helper()
	if r.code != 1 {
		t.Fatalf("exit %d, want 1\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	if strings.Contains(r.stderr, "goroutine ") || strings.Contains(r.stderr, "panic:") {
		t.Fatalf("stack trace on stderr:\n%s", r.stderr)
	}
	return r
}

func (r result) stdoutHas(t *testing.T, subs ...string) result {
	t.Helper()
	for _, s := range subs {
		if !strings.Contains(r.stdout, s) {
			t.Errorf("stdout lacks %q:\n%s", s, r.stdout)
		}
	}
	return r
}

func (r result) stderrHas(t *testing.T, subs ...string) result {
	t.Helper()
	for _, s := range subs {
		if !strings.Contains(r.stderr, s) {
			t.Errorf("stderr lacks %q:\n%s", s, r.stderr)
		}
	}
	return r
}

// get reads a resource from the fake, nil when absent.
func (e *testEnv) get(kind, ns, name string) v3.Resource {
	e.t.Helper()
	r, err := e.be.Get(context.Background(), datastore.Key{Kind: kind, Namespace: ns, Name: name})
	if err != nil {
		return nil
	}
	return r
}

// count returns how many resources of a kind are stored.
func (e *testEnv) count(kind string) int {
	e.t.Helper()
	res, err := e.be.List(context.Background(), datastore.Key{Kind: kind})
	if err != nil {
		e.t.Fatal(err)
	}
	return len(res.Items)
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

const pool1 = `apiVersion: projectcalico.org/v3
kind: IPPool
metadata:
  name: pool1
spec:
  cidr: 10.1.0.0/16
  natOutgoing: true
`

const pool2 = `apiVersion: projectcalico.org/v3
kind: IPPool
metadata:
  name: pool2
spec:
  cidr: 10.2.0.0/16
  vxlanMode: Always
`

const gnpAllowDNS = `apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata:
  name: allow-dns
spec:
  order: 10
  selector: all()
  egress:
  - action: Allow
    protocol: UDP
    destination:
      ports: [53]
`

const badSelectorGNP = `apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata:
  name: deny-all
spec:
  selector: all()
  ingress:
  - action: Deny
    source:
      selector: a == 'b' && && c
`

const npBackend = `apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata:
  name: backend
  namespace: shop
spec:
  selector: app == 'backend'
  ingress:
  - action: Allow
`

func yamlDocs(docs ...string) string { return strings.Join(docs, "---\n") }
