package etcd_test

import (
	"context"
	"encoding/json"
	"errors"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	v3 "github.com/calico-go/calico/api/v3"
	"github.com/calico-go/calico/internal/datastore"
	"github.com/calico-go/calico/internal/datastore/conformance"
	"github.com/calico-go/calico/internal/datastore/embedded"
	"github.com/calico-go/calico/internal/datastore/etcd"
	"github.com/calico-go/calico/internal/testutil/etcdtest"
)

func TestConformanceEmbedded(t *testing.T) {
	srv := sharedEmbedded(t)
	conformance.Run(t, factory(etcd.Config{Endpoints: srv.Endpoints()}))
}

func TestConformanceExternalTLS(t *testing.T) {
	ext := etcdtest.External(t, true)
	conformance.Run(t, factory(ext.Config()))
}

// TestTLSMisconfigured: a wrong CA or a missing client certificate fails
// fast with ErrUnavailable naming the endpoint.
func TestTLSMisconfigured(t *testing.T) {
	ext := etcdtest.External(t, true)
	other := etcdtest.NewPKI(t, t.TempDir())
	cases := map[string]struct {
		cfg  etcd.Config
		want string // in the diagnosis
	}{
		"wrong CA":            {etcd.Config{CACertFile: other.CA, CertFile: ext.PKI.ClientCert, KeyFile: ext.PKI.ClientKey}, "unknown authority"},
		"no client cert":      {etcd.Config{CACertFile: ext.PKI.CA}, "certificate"},
		"foreign client cert": {etcd.Config{CACertFile: ext.PKI.CA, CertFile: other.ClientCert, KeyFile: other.ClientKey}, "bad certificate"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			cfg := tc.cfg
			cfg.Endpoints = []string{ext.Endpoint}
			cfg.DialTimeout = 2 * time.Second
			start := time.Now()
			b, err := etcd.New(context.Background(), cfg)
			if err == nil {
				_ = b.Close()
				t.Fatal("New succeeded")
			}
			if !errors.Is(err, datastore.ErrUnavailable) || !strings.Contains(err.Error(), ext.Endpoint) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New: %v; want ErrUnavailable naming %s and %q", err, ext.Endpoint, tc.want)
			}
			if d := time.Since(start); d > 10*time.Second {
				t.Fatalf("New took %s", d)
			}
			t.Logf("error after %s: %v", time.Since(start).Round(time.Millisecond), err)
		})
	}
	if _, err := etcd.New(context.Background(), etcd.Config{Endpoints: []string{ext.Endpoint}, CACertFile: "/nonexistent/ca.pem"}); !errors.Is(err, datastore.ErrUnavailable) ||
		!strings.Contains(err.Error(), "CA") {
		t.Errorf("missing CA file: %v", err)
	}
}

// TestAuth enables etcd authentication through the client API and runs the
// suite as a user limited to /calico/.
func TestAuth(t *testing.T) {
	ext := etcdtest.External(t, false)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin, err := clientv3.New(clientv3.Config{Endpoints: []string{ext.Endpoint}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	steps := []func() error{
		func() error { _, err := admin.RoleAdd(ctx, "root"); return err },
		func() error { _, err := admin.UserAdd(ctx, "root", "root-pw"); return err },
		func() error { _, err := admin.UserGrantRole(ctx, "root", "root"); return err },
		func() error { _, err := admin.RoleAdd(ctx, "calico"); return err },
		func() error {
			_, err := admin.RoleGrantPermission(ctx, "calico", "/calico/", clientv3.GetPrefixRangeEnd("/calico/"),
				clientv3.PermissionType(clientv3.PermReadWrite))
			return err
		},
		func() error { _, err := admin.UserAdd(ctx, "calico", "calico-pw"); return err },
		func() error { _, err := admin.UserGrantRole(ctx, "calico", "calico"); return err },
		func() error { _, err := admin.AuthEnable(ctx); return err },
	}
	for i, step := range steps {
		if err := step(); err != nil {
			t.Fatalf("auth setup step %d: %v", i, err)
		}
	}

	for name, cfg := range map[string]etcd.Config{
		"wrong password": {Username: "calico", Password: "nope"},
		"no credentials": {},
		"unknown user":   {Username: "mallory", Password: "x"},
	} {
		t.Run(name, func(t *testing.T) {
			cfg.Endpoints = []string{ext.Endpoint}
			start := time.Now()
			b, err := etcd.New(ctx, cfg)
			if err == nil {
				_ = b.Close()
				t.Fatal("New succeeded")
			}
			if !errors.Is(err, datastore.ErrUnauthorized) || !strings.Contains(err.Error(), ext.Endpoint) ||
				!strings.Contains(err.Error(), "username") {
				t.Fatalf("New: %v; want ErrUnauthorized naming the endpoint and the credentials", err)
			}
			t.Logf("error after %s: %v", time.Since(start).Round(time.Millisecond), err)
		})
	}
	conformance.Run(t, factory(etcd.Config{Endpoints: []string{ext.Endpoint}, Username: "calico", Password: "calico-pw"}))
}

// TestUnreachable: nothing listens on the endpoint; New must fail with
// ErrUnavailable naming it and saying why, with the default timeouts, in
// under 10 seconds (also when credentials make clientv3.New talk to etcd).
func TestUnreachable(t *testing.T) {
	for name, cfg := range map[string]etcd.Config{
		"plain":       {},
		"credentials": {Username: "calico", Password: "pw"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ep := "http://127.0.0.1:" + strconv.Itoa(etcdtest.FreePort(t))
			cfg.Endpoints = []string{ep}
			start := time.Now()
			b, err := etcd.New(context.Background(), cfg)
			elapsed := time.Since(start)
			if err == nil {
				_ = b.Close()
				t.Fatal("New succeeded against a port nothing listens on")
			}
			if elapsed >= 10*time.Second {
				t.Fatalf("New took %s, want < 10s", elapsed)
			}
			var de *datastore.Error
			if !errors.Is(err, datastore.ErrUnavailable) || !errors.As(err, &de) || !strings.Contains(err.Error(), ep) ||
				!strings.Contains(err.Error(), "connection refused") {
				t.Fatalf("New: %v; want a *datastore.Error wrapping ErrUnavailable, naming %s and saying why", err, ep)
			}
			t.Logf("failed in %s: %v", elapsed.Round(time.Millisecond), err)
		})
	}
}

// TestServerGoesAway: requests after the server stops fail with
// ErrUnavailable within the request timeout, and watches end with an error
// or keep waiting, never hang the caller.
func TestServerGoesAway(t *testing.T) {
	srv, err := embedded.Start(context.Background(), embedded.Options{
		DataDir: t.TempDir(), ListenClient: "127.0.0.1:0", ListenPeer: "127.0.0.1:0", UnsafeNoFsync: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	b := newBackend(t, etcd.Config{Endpoints: srv.Endpoints(), RequestTimeout: 2 * time.Second})
	if _, err := b.Create(context.Background(), newPool(t, "p", "10.0.0.0/26")); err != nil {
		t.Fatal(err)
	}
	if err := srv.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	start := time.Now()
	_, err = b.Get(context.Background(), datastore.Key{Kind: "IPPool", Name: "p"})
	if !errors.Is(err, datastore.ErrUnavailable) || !strings.Contains(err.Error(), srv.Endpoints()[0]) {
		t.Fatalf("Get after the server stopped: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Get took %s with a 2s request timeout", d)
	}
	// The caller's own cancellation is reported as such.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := b.Get(ctx, datastore.Key{Kind: "IPPool", Name: "p"}); !errors.Is(err, context.Canceled) || errors.Is(err, datastore.ErrUnavailable) {
		t.Fatalf("Get with a cancelled context: %v", err)
	}
}

func newPool(t testing.TB, name, cidr string) v3.Resource {
	t.Helper()
	ki, ok := v3.LookupKind("IPPool")
	if !ok {
		t.Fatal("IPPool not registered")
	}
	r := ki.New()
	if err := json.Unmarshal([]byte(`{"spec":{"cidr":"`+cidr+`","ipipMode":"Never","vxlanMode":"Always","natOutgoing":true,"blockSize":26,"nodeSelector":"all()"}}`), r); err != nil {
		t.Fatal(err)
	}
	r.SetName(name)
	r.SetLabels(map[string]string{"app": "test"})
	return r
}

// TestKeyLayout checks Calico's etcdv3 key layout and value encoding, both
// ways: what we write and what Calico would have written.
func TestKeyLayout(t *testing.T) {
	ctx := context.Background()
	b := newBackend(t, etcd.Config{Endpoints: sharedEmbedded(t).Endpoints()})
	created, err := b.Create(ctx, newPool(t, "pool1", "10.1.0.0/16"))
	if err != nil {
		t.Fatal(err)
	}
	npKind, _ := v3.LookupKind("NetworkPolicy")
	np := npKind.New()
	np.SetName("allow")
	np.SetNamespace("prod")
	if _, err := b.Create(ctx, np); err != nil {
		t.Fatal(err)
	}

	resp, err := b.Client().Get(ctx, "/calico/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string][]byte{}
	for _, kv := range resp.Kvs {
		keys[string(kv.Key)] = kv.Value
	}
	val, ok := keys["/calico/resources/v3/projectcalico.org/ippools/pool1"]
	if !ok {
		t.Fatalf("IPPool key missing; have %v", keys)
	}
	if _, ok := keys["/calico/resources/v3/projectcalico.org/networkpolicies/prod/allow"]; !ok {
		t.Fatalf("NetworkPolicy key missing; have %v", keys)
	}
	var stored struct {
		APIVersion string         `json:"apiVersion"`
		Kind       string         `json:"kind"`
		Metadata   map[string]any `json:"metadata"`
		Spec       map[string]any `json:"spec"`
	}
	if err := json.Unmarshal(val, &stored); err != nil {
		t.Fatal(err)
	}
	if stored.APIVersion != "projectcalico.org/v3" || stored.Kind != "IPPool" {
		t.Errorf("stored TypeMeta %s %s", stored.APIVersion, stored.Kind)
	}
	if _, ok := stored.Metadata["resourceVersion"]; ok {
		t.Errorf("stored value has a resourceVersion: %s", val)
	}
	if stored.Metadata["uid"] != string(created.GetUID()) || stored.Metadata["creationTimestamp"] == nil || stored.Metadata["name"] != "pool1" {
		t.Errorf("stored metadata %v", stored.Metadata)
	}
	if stored.Spec["cidr"] != "10.1.0.0/16" {
		t.Errorf("stored spec %v", stored.Spec)
	}
	if created.GetResourceVersion() != strconv.FormatInt(resp.Kvs[0].ModRevision, 10) && created.GetResourceVersion() != strconv.FormatInt(resp.Kvs[1].ModRevision, 10) {
		t.Errorf("resourceVersion %s is not a ModRevision", created.GetResourceVersion())
	}

	// A value as Calico's own etcdv3 backend writes it.
	calico := `{"kind":"IPPool","apiVersion":"projectcalico.org/v3","metadata":{"name":"legacy","uid":"6e1c0e4e-3f2b-4f8e-9d7a-0a0b0c0d0e0f","creationTimestamp":"2024-01-02T03:04:05Z"},"spec":{"cidr":"192.168.0.0/16","vxlanMode":"Never","ipipMode":"Always","natOutgoing":true,"blockSize":26,"nodeSelector":"all()"}}`
	put, err := b.Client().Put(ctx, "/calico/resources/v3/projectcalico.org/ippools/legacy", calico)
	if err != nil {
		t.Fatal(err)
	}
	got, err := b.Get(ctx, datastore.Key{Kind: "IPPool", Name: "legacy"})
	if err != nil {
		t.Fatal(err)
	}
	if got.GetResourceVersion() != strconv.FormatInt(put.Header.Revision, 10) || got.GetUID() != "6e1c0e4e-3f2b-4f8e-9d7a-0a0b0c0d0e0f" ||
		got.GetCreationTimestamp().UTC().Format(time.RFC3339) != "2024-01-02T03:04:05Z" {
		t.Errorf("legacy value read as rv=%s uid=%s ts=%v", got.GetResourceVersion(), got.GetUID(), got.GetCreationTimestamp())
	}
	out, _ := json.Marshal(got)
	if !strings.Contains(string(out), `"cidr":"192.168.0.0/16"`) {
		t.Errorf("legacy spec lost: %s", out)
	}

	// Keys that do not fit the layout and values that do not decode are
	// skipped by List.
	if _, err := b.Client().Put(ctx, "/calico/resources/v3/projectcalico.org/ippools/bad", "{not json"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Client().Put(ctx, "/calico/resources/v3/projectcalico.org/ippools/a/b", "{}"); err != nil {
		t.Fatal(err)
	}
	l, err := b.List(ctx, datastore.Key{Kind: "IPPool"})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range l.Items {
		names = append(names, r.GetName())
	}
	if strings.Join(names, ",") != "legacy,pool1" {
		t.Errorf("List: %v", names)
	}
}

// TestWatchNoGoroutineLeak starts and stops many watches.
func TestWatchNoGoroutineLeak(t *testing.T) {
	ctx := context.Background()
	b := newBackend(t, etcd.Config{Endpoints: sharedEmbedded(t).Endpoints()})
	// Warm up the client's watch stream machinery.
	w, err := b.Watch(ctx, datastore.Key{Kind: "IPPool"}, "")
	if err != nil {
		t.Fatal(err)
	}
	w.Stop()
	time.Sleep(200 * time.Millisecond)
	before := runtime.NumGoroutine()
	for i := range 50 {
		wctx, cancel := context.WithCancel(ctx)
		w, err := b.Watch(wctx, datastore.Key{Kind: "IPPool"}, "")
		if err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			w.Stop()
		} else {
			cancel()
			for range w.ResultChan() {
			}
		}
		cancel()
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		after := runtime.NumGoroutine()
		if after <= before+2 {
			t.Logf("goroutines: %d before, %d after 50 watches", before, after)
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("goroutines: %d before, %d after 50 watches\n%s", before, after, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestCloseEndsWatches: Close ends open watches (channel closed).
func TestCloseEndsWatches(t *testing.T) {
	cfg := etcd.Config{Endpoints: sharedEmbedded(t).Endpoints(), Logger: testLogger(t)}
	b, err := etcd.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	w, err := b.Watch(context.Background(), datastore.Key{Kind: "IPPool"}, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case _, ok := <-w.ResultChan():
		for ok {
			_, ok = <-w.ResultChan()
		}
	case <-time.After(10 * time.Second):
		t.Fatal("watch still open after Close")
	}
	w.Stop()
}
