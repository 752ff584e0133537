package lab

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/calico-go/calico/internal/testutil/golden"
)

func TestNames(t *testing.T) {
	for _, n := range []string{"lab", "a", "lab-2", "abcdefghijkl"} {
		if err := CheckLabName(n); err != nil {
			t.Errorf("CheckLabName(%q): %v", n, err)
		}
	}
	for _, n := range []string{"", "Lab", "-a", "a-", "a.b", "abcdefghijklm", "a_b"} {
		if err := CheckLabName(n); !errors.Is(err, ErrInvalid) {
			t.Errorf("CheckLabName(%q) = %v, want ErrInvalid", n, err)
		}
	}
	if err := CheckHostName("underlay"); !errors.Is(err, ErrInvalid) {
		t.Errorf("host name underlay: %v", err)
	}
	if err := CheckHostName("host.1"); !errors.Is(err, ErrInvalid) {
		t.Errorf("host name with a dot: %v", err)
	}
	if err := CheckWorkloadName("shop", "web.v1"); err != nil {
		t.Errorf("pod name with a dot: %v", err)
	}
	if err := CheckWorkloadName("sh.op", "web"); !errors.Is(err, ErrInvalid) {
		t.Errorf("namespace with a dot: %v", err)
	}
	// The three namespace forms cannot be confused.
	if got := []string{underlayNS("lab"), hostNS("lab", "host-1"), workloadNS("lab", "shop", "web")}; !reflect.DeepEqual(got,
		[]string{"lab.underlay", "lab.host-1", "lab.shop.web"}) {
		t.Errorf("namespace names: %q", got)
	}
	if ns, n := ParseID("web"); ns != "default" || n != "web" {
		t.Errorf("ParseID(web) = %s, %s", ns, n)
	}
}

func TestParseLabels(t *testing.T) {
	got, err := ParseLabels(" app=web, tier=front ,example.com/team=a")
	if err != nil || !reflect.DeepEqual(got, map[string]string{"app": "web", "tier": "front", "example.com/team": "a"}) {
		t.Fatalf("ParseLabels = %v, %v", got, err)
	}
	if FormatLabels(got) != "app=web,example.com/team=a,tier=front" {
		t.Errorf("FormatLabels = %q", FormatLabels(got))
	}
	if got, err := ParseLabels(""); err != nil || len(got) != 0 {
		t.Errorf("empty: %v, %v", got, err)
	}
	for _, bad := range []string{"app", "=x", "app=not valid", "a=1,a=2", "projectcalico.org/namespace=x", "bad key=1"} {
		if _, err := ParseLabels(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseLabels(%q) = %v, want ErrInvalid", bad, err)
		}
	}
	if p, err := ParsePorts("80, 8080"); err != nil || !reflect.DeepEqual(p, []int{80, 8080}) {
		t.Errorf("ParsePorts = %v, %v", p, err)
	}
	if _, err := ParsePorts("0"); !errors.Is(err, ErrInvalid) {
		t.Errorf("port 0: %v", err)
	}
}

func TestUpOptionsCheck(t *testing.T) {
	mod := func(f func(*UpOptions)) UpOptions { o := DefaultUpOptions(); f(&o); return o }
	tests := []struct {
		name string
		o    UpOptions
		want string // substring of the error; "" = valid
	}{
		{"defaults", DefaultUpOptions(), ""},
		{"vxlan", mod(func(o *UpOptions) { o.Backend = BackendVXLAN }), ""},
		{"example", mod(func(o *UpOptions) { o.Example = "three-tier" }), ""},
		{"etcd", mod(func(o *UpOptions) { o.EtcdEndpoints = []string{"http://127.0.0.1:2379"} }), ""},
		{"bad name", mod(func(o *UpOptions) { o.Name = "My Lab" }), "lab name"},
		{"no hosts", mod(func(o *UpOptions) { o.Hosts = 0 }), "--hosts 0"},
		{"negative workloads", mod(func(o *UpOptions) { o.WorkloadsPerHost = -1 }), "--workloads-per-host"},
		{"backend", mod(func(o *UpOptions) { o.Backend = "ipip" }), "--backend"},
		{"dataplane", mod(func(o *UpOptions) { o.Dataplane = "bpf" }), "only nftables"},
		{"small pool", mod(func(o *UpOptions) { o.Pool = netip.MustParsePrefix("10.0.0.0/27") }), "--pool"},
		{"v6 pool", mod(func(o *UpOptions) { o.Pool = netip.MustParsePrefix("fd00::/48") }), "--pool"},
		{"unmasked pool", mod(func(o *UpOptions) { o.Pool = netip.MustParsePrefix("10.244.1.0/16") }), "--pool"},
		{"overlap", mod(func(o *UpOptions) { o.Pool = netip.MustParsePrefix("198.18.0.0/16") }), "overlaps --underlay"},
		{"underlay too small", mod(func(o *UpOptions) { o.Hosts = 10; o.Underlay = netip.MustParsePrefix("198.18.0.0/29") }), "at most 5 hosts"},
		{"bad etcd", mod(func(o *UpOptions) { o.EtcdEndpoints = []string{"127.0.0.1:2379"} }), "--etcd-endpoints"},
		{"unknown example", mod(func(o *UpOptions) { o.Example = "nope" }), "known examples are three-tier"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.o.Check()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("Check: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, ErrInvalid)):
				t.Fatalf("Check = %v, want ErrInvalid containing %q", err, tc.want)
			}
		})
	}
}

// TestCLIFlags runs command lines through the CLI with Up replaced and
// checks the options it would get, and the exit codes of bad input.
func TestCLIFlags(t *testing.T) {
	run := func(env map[string]string, args ...string) (UpOptions, int, string) {
		var got UpOptions
		var stdout, stderr bytes.Buffer
		c := &cli{stdin: strings.NewReader(""), stdout: &stdout, env: Env{Out: &stderr},
			lookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok },
			up: func(_ context.Context, _ Env, o UpOptions) (*Matrix, error) {
				got = o
				return nil, o.Check()
			}}
		code := c.run(context.Background(), args, &stderr)
		return got, code, stderr.String()
	}
	o, code, _ := run(nil, "up")
	if code != 0 || !reflect.DeepEqual(o, DefaultUpOptions()) {
		t.Errorf("up: code %d, options %+v", code, o)
	}
	o, code, _ = run(map[string]string{NameEnv: "envlab"}, "up", "--hosts", "10", "--workloads-per-host", "10", "--backend", "vxlan",
		"--pool", "10.10.0.0/16", "--example", "three-tier", "--etcd-endpoints", "http://127.0.0.1:2379, http://127.0.0.1:3379", "--timeout", "30s")
	want := DefaultUpOptions()
	want.Name, want.Hosts, want.WorkloadsPerHost, want.Backend = "envlab", 10, 10, BackendVXLAN
	want.Pool, want.Example, want.Timeout = netip.MustParsePrefix("10.10.0.0/16"), "three-tier", 30*time.Second
	want.EtcdEndpoints = []string{"http://127.0.0.1:2379", "http://127.0.0.1:3379"}
	if code != 0 || !reflect.DeepEqual(o, want) {
		t.Errorf("up with flags: code %d\n got %+v\nwant %+v", code, o, want)
	}
	if o, _, _ = run(map[string]string{NameEnv: "envlab"}, "up", "--name", "flag"); o.Name != "flag" {
		t.Errorf("--name does not win over %s: %q", NameEnv, o.Name)
	}
	for _, bad := range [][]string{
		{"up", "--pool", "nonsense"},
		{"up", "--backend", "ipip"},
		{"up", "--name", "Bad Name"},
		{"matrix", "-o", "xml"},
		{"add-workload", "web", "--host", "host-1", "--labels", "bad"},
		{"add-workload", "web"},
		{"exec", "web", "ls"},
	} {
		if _, code, stderr := run(nil, bad...); code != 2 || !strings.HasPrefix(stderr, "calico-lab: ") {
			t.Errorf("%q: code %d, stderr %q; want 2 and a message", bad, code, stderr)
		}
	}
	if _, code, _ := run(nil, "frobnicate"); code == 0 {
		t.Error("unknown command succeeded")
	}
}

func TestStateRoundTrip(t *testing.T) {
	st := store{dir: t.TempDir()}
	if _, err := st.load("x"); !errors.Is(err, ErrNoLab) {
		t.Errorf("load without state: %v", err)
	}
	s := &State{Name: "x", Backend: BackendBGP, Dataplane: "nftables", Pool: DefaultPool, Underlay: DefaultUnderlay,
		Gateway: netip.MustParseAddr("198.18.0.1"), Endpoints: []string{"http://127.0.0.1:1"},
		Hosts: []Host{{Name: "host-1", Addr: netip.MustParseAddr("198.18.0.2"), PID: 7}},
		Workloads: []Workload{
			{Namespace: "shop", Name: "web", Host: "host-1", Labels: map[string]string{"app": "web"}, Addr: netip.MustParseAddr("10.244.0.1"), Ports: []int{80}},
			{Namespace: "other", Name: "web", Host: "host-1"},
			{Namespace: "shop", Name: "db", Host: "host-1"},
		}}
	if err := st.save(s); err != nil {
		t.Fatal(err)
	}
	got, err := st.load("x")
	if err != nil || !reflect.DeepEqual(got, s) {
		t.Fatalf("load = %+v, %v", got, err)
	}
	if w, err := got.workload("db"); err != nil || w.ID() != "shop/db" {
		t.Errorf("workload(db) = %v, %v", w, err)
	}
	if _, err := got.workload("web"); err == nil || !strings.Contains(err.Error(), "ambiguous") {
		t.Errorf("workload(web) = %v, want ambiguous", err)
	}
	if w, err := got.workload("other/web"); err != nil || w.Namespace != "other" {
		t.Errorf("workload(other/web) = %v, %v", w, err)
	}
	unlock, err := st.lock()
	if err != nil {
		t.Fatal(err)
	}
	if tryLock(st, 50*time.Millisecond) != nil {
		t.Error("tryLock succeeded while the lock was held")
	}
	unlock()
	if u := tryLock(st, time.Second); u == nil {
		t.Error("tryLock failed on a free lock")
	} else {
		u()
	}
	if _, err := os.Stat(filepath.Join(st.dir, "state.json.tmp")); !errors.Is(err, os.ErrNotExist) {
		t.Error("temporary state file left behind")
	}
}

func TestExample(t *testing.T) {
	ex, err := LoadExample("three-tier")
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, w := range ex.Workloads {
		ids = append(ids, ID(w.Namespace, w.Name)+"@"+w.Host+" "+FormatLabels(w.Labels))
	}
	want := []string{"shop/frontend@host-1 app=frontend,tier=web", "shop/backend@host-2 app=backend,tier=api",
		"shop/database@host-3 app=database,tier=db", "client/client@host-2 app=client"}
	if !reflect.DeepEqual(ids, want) {
		t.Errorf("workloads %q, want %q", ids, want)
	}
	if len(ex.Steps) != 2 || ex.Steps[0].File != "three-tier/10-default-deny.yaml" || len(ex.Steps[0].Allowed) != 0 {
		t.Fatalf("steps: %+v", ex.Steps)
	}
	wantAllowed := []Pair{{"client/client", "shop/frontend"}, {"shop/frontend", "shop/backend"}, {"shop/backend", "shop/database"}}
	if !reflect.DeepEqual(ex.Steps[1].Allowed, wantAllowed) {
		t.Errorf("step 2 expects %v, want %v", ex.Steps[1].Allowed, wantAllowed)
	}
	if _, err := parseExpectations([]byte("kind: Foo\n")); err == nil {
		t.Error("a step without expectations was accepted")
	}
	if _, err := parseExpectations([]byte("# expect-allowed: a b\n")); err == nil {
		t.Error("a malformed expectation was accepted")
	}
	hosts := []string{"host-1", "host-2"}
	for in, want := range map[string]string{"host-1": "host-1", "host-2": "host-2", "host-3": "host-1", "host-4": "host-2", "db": "host-1"} {
		if got := placeOn(in, hosts); got != want {
			t.Errorf("placeOn(%s) = %s, want %s", in, got, want)
		}
	}
}

func TestConnectivityPairs(t *testing.T) {
	ws := []Workload{{Name: "a", Host: "h1"}, {Name: "b", Host: "h1"}, {Name: "c", Host: "h2"}, {Name: "d", Host: "h3"}}
	pairs := connectivityPairs(ws)
	probed, probes := map[int]bool{}, map[int]bool{}
	hostPairs := map[[2]string]bool{}
	for _, p := range pairs {
		if p[0] == p[1] {
			t.Errorf("self pair %v", p)
		}
		probes[p[0]], probed[p[1]] = true, true
		hostPairs[[2]string{ws[p[0]].Host, ws[p[1]].Host}] = true
	}
	if len(probed) != 4 || len(probes) != 4 {
		t.Errorf("every workload must probe and be probed: %v", pairs)
	}
	for _, a := range []string{"h1", "h2", "h3"} {
		for _, b := range []string{"h1", "h2", "h3"} {
			if a != b && !hostPairs[[2]string{a, b}] {
				t.Errorf("no probe from %s to %s: %v", a, b, pairs)
			}
		}
	}
}

// threeTierMatrix is the matrix the walkthrough ends with.
func threeTierMatrix() *Matrix {
	ids := []string{"client/client", "shop/backend", "shop/database", "shop/frontend"}
	allowed := map[Pair]bool{{"client/client", "shop/frontend"}: true, {"shop/frontend", "shop/backend"}: true, {"shop/backend", "shop/database"}: true}
	m := &Matrix{Port: 80, Protocol: TCP, Workloads: ids, Lab: "lab", Time: time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)}
	for _, a := range ids {
		for _, b := range ids {
			if a != b {
				m.Results = append(m.Results, Result{From: a, To: b, Allowed: allowed[Pair{a, b}]})
			}
		}
	}
	return m
}

func TestMatrixRender(t *testing.T) {
	m := threeTierMatrix()
	var js bytes.Buffer
	if err := m.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	// The JSON contract: exactly port, protocol and results of from, to,
	// allowed.
	var generic map[string]any
	if err := json.Unmarshal(js.Bytes(), &generic); err != nil {
		t.Fatal(err)
	}
	if len(generic) != 3 || generic["port"] != float64(80) || generic["protocol"] != "tcp" {
		t.Errorf("JSON top level: %v", generic)
	}
	first := generic["results"].([]any)[0].(map[string]any)
	if !reflect.DeepEqual(first, map[string]any{"from": "client/client", "to": "shop/backend", "allowed": false}) {
		t.Errorf("first result: %v", first)
	}
	golden.Check(t, "testdata/matrix.json", js.String())
	var tb bytes.Buffer
	if err := m.WriteTable(&tb); err != nil {
		t.Fatal(err)
	}
	golden.Check(t, "testdata/matrix.txt", tb.String())
	var page bytes.Buffer
	if err := m.WriteHTML(&page); err != nil {
		t.Fatal(err)
	}
	golden.Check(t, "testdata/matrix.html", page.String())
	for _, forbidden := range []string{"<script", "http://", "https://", "<link"} {
		if strings.Contains(page.String(), forbidden) {
			t.Errorf("the page is not self-contained: it has %q", forbidden)
		}
	}
	if d := m.Diff([]Pair{{"client/client", "shop/frontend"}, {"shop/frontend", "shop/backend"}, {"shop/backend", "shop/database"}}, false); len(d) != 0 {
		t.Errorf("Diff against the walkthrough: %q", d)
	}
	if d := m.Diff(nil, true); len(d) != 9 {
		t.Errorf("Diff against all allowed: %d lines, want 9: %q", len(d), d)
	}
}
