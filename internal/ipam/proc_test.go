package ipam

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	v3 "github.com/calico-go/calico/api/v3"
	"github.com/calico-go/calico/internal/datastore/etcd"
	"github.com/calico-go/calico/pkg/client"
)

// helperLine is what an allocator process prints, one JSON object a line.
type helperLine struct {
	Handle  string `json:"h,omitempty"`
	IP      string `json:"ip,omitempty"`
	Err     string `json:"err,omitempty"`
	Unknown bool   `json:"unknown,omitempty"`
	Micros  int64  `json:"us,omitempty"`
	Stats   *Stats `json:"stats,omitempty"`
}

// TestHelperAllocator is not a test: the multi-process tests run the test
// binary again with IPAM_HELPER set, and this is the child's main.
func TestHelperAllocator(t *testing.T) {
	mode := os.Getenv("IPAM_HELPER")
	if mode == "" {
		t.Skip("helper process of the multi-process tests")
	}
	if err := helperMain(mode); err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

func helperMain(mode string) error {
	timeout, _ := time.ParseDuration(os.Getenv("IPAM_CALL_TIMEOUT"))
	pause, _ := time.ParseDuration(os.Getenv("IPAM_PAUSE"))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	be, err := etcd.New(ctx, etcd.Config{Endpoints: strings.Split(os.Getenv("IPAM_ENDPOINTS"), ","), RequestTimeout: 2 * time.Second})
	cancel()
	if err != nil {
		return err
	}
	defer be.Close()
	a, err := New(Options{Store: NewEtcdStore(be.Client(), 2*time.Second), Resources: ClientResources(client.NewFromBackend(be))})
	if err != nil {
		return err
	}
	out := json.NewEncoder(os.Stdout)
	call := func(f func(ctx context.Context) (string, error)) helperLine {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		t0 := time.Now()
		ip, err := f(ctx)
		l := helperLine{IP: ip, Micros: time.Since(t0).Microseconds()}
		if err != nil {
			l.Err, l.Unknown = err.Error(), errors.Is(err, ErrOutcomeUnknown)
		}
		return l
	}
	switch mode {
	case "alloc":
		host, prefix := os.Getenv("IPAM_HOST"), os.Getenv("IPAM_PREFIX")
		for i := range envInt("IPAM_COUNT") {
			h := fmt.Sprintf("%s-%d", prefix, i)
			l := call(func(ctx context.Context) (string, error) {
				res, err := a.AutoAssign(ctx, AutoAssignArgs{Num4: 1, HandleID: h, Hostname: host, Attrs: Attrs{Pod: h, Namespace: "test"}})
				if err != nil {
					return "", err
				}
				return res.IPv4[0].Addr().String(), nil
			})
			l.Handle = h
			if err := out.Encode(l); err != nil {
				return err
			}
			time.Sleep(pause)
		}
	case "release":
		data, err := os.ReadFile(os.Getenv("IPAM_INPUT"))
		if err != nil {
			return err
		}
		for i, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
			h, ip, _ := strings.Cut(line, " ")
			l := call(func(ctx context.Context) (string, error) {
				if i%2 == 0 {
					return ip, a.ReleaseByHandle(ctx, h)
				}
				un, err := a.ReleaseIPs(ctx, netip.MustParseAddr(ip))
				if err == nil && len(un) != 0 {
					err = fmt.Errorf("%s was not allocated", ip)
				}
				return ip, err
			})
			l.Handle = h
			if err := out.Encode(l); err != nil {
				return err
			}
		}
	default:
		return fmt.Errorf("unknown mode %q", mode)
	}
	s := a.Stats()
	return out.Encode(helperLine{Stats: &s})
}

// runChildren runs one allocator process per env and calls onLine (under a
// lock) for every line a child prints.
func runChildren(t *testing.T, envs []map[string]string, onLine func(child int, l helperLine)) {
	t.Helper()
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i, env := range envs {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperAllocator$", "-test.timeout=10m")
		cmd.Env = os.Environ()
		for k, v := range env {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				var l helperLine
				if !bytes.HasPrefix(sc.Bytes(), []byte("{")) || json.Unmarshal(sc.Bytes(), &l) != nil {
					continue
				}
				mu.Lock()
				onLine(i, l)
				mu.Unlock()
			}
			if err := cmd.Wait(); err != nil {
				t.Errorf("child %d: %v\n%s", i, err, stderr.String())
			}
		})
	}
	wg.Wait()
}

type outcome struct {
	host, handle string
	ip           netip.Addr
}

// TestConcurrentProcesses: 8 allocator processes on 4 nodes allocate 1,000
// addresses against one etcd, then release them. The pool is sized so that
// blocks fill up: without strictAffinity some host must borrow (the demands
// need 17 blocks of 64 and the pool has 16); with it every address comes from
// the host's own blocks.
func TestConcurrentProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process test")
	}
	for _, strict := range []bool{false, true} {
		t.Run(fmt.Sprintf("strictAffinity=%v", strict), func(t *testing.T) { concurrency(t, strict) })
	}
}

func concurrency(t *testing.T, strict bool) {
	e := startEtcd(t)
	a, c := connect(t, e.endpoints(), 0)
	ctx := ctxT(t)
	cidr := "10.10.0.0/22" // 16 blocks of /26
	if strict {
		cidr = "10.20.0.0/21" // 32 blocks: no borrowing, so room for all
		if err := a.SetConfig(ctx, v3.IPAMConfigurationSpec{StrictAffinity: true}); err != nil {
			t.Fatal(err)
		}
	}
	createPool(t, c, "conc", cidr, 26)
	demand := []int{330, 250, 250, 170}
	hosts := []string{"node-0", "node-1", "node-2", "node-3"}
	var envs []map[string]string
	for p := range 8 {
		h := p % 4
		envs = append(envs, map[string]string{"IPAM_HELPER": "alloc", "IPAM_ENDPOINTS": strings.Join(e.endpoints(), ","),
			"IPAM_HOST": hosts[h], "IPAM_PREFIX": fmt.Sprintf("k8s-pod-network.p%d", p),
			"IPAM_COUNT": fmt.Sprint(demand[h] / 2), "IPAM_CALL_TIMEOUT": "60s"})
	}
	var ok []outcome
	var lat []int64
	stats := Stats{}
	byIP := map[netip.Addr]string{}
	start := time.Now()
	runChildren(t, envs, func(i int, l helperLine) {
		if l.Stats != nil {
			addStats(&stats, *l.Stats)
			return
		}
		if l.Err != "" {
			t.Errorf("child %d %s: %s", i, l.Handle, l.Err)
			return
		}
		ip := netip.MustParseAddr(l.IP)
		if prev, dup := byIP[ip]; dup {
			t.Errorf("%s handed out twice: %s and %s", ip, prev, l.Handle)
		}
		byIP[ip] = l.Handle
		ok = append(ok, outcome{host: envs[i]["IPAM_HOST"], handle: l.Handle, ip: ip})
		lat = append(lat, l.Micros)
	})
	allocTime := time.Since(start)
	if len(ok) != 1000 {
		t.Fatalf("%d successful allocations, want 1000", len(ok))
	}
	s := mustClean(t, a, CheckOptions{Nodes: hosts})
	if n := len(s.Allocations()); n != 1000 {
		t.Fatalf("store holds %d allocations", n)
	}
	// Each host used its own blocks until they were full.
	full := map[string]bool{}
	blocks := map[string]int{}
	for _, h := range hosts {
		full[h] = true
	}
	for _, bi := range s.Blocks {
		blocks[bi.Block.Host()]++
		if bi.Block.free(nil) > 0 {
			full[bi.Block.Host()] = false
		}
	}
	borrowed := map[string]int{}
	for _, o := range ok {
		al, found := s.Lookup(o.ip)
		if !found || al.HandleID != o.handle || al.Attrs[AttrNode] != o.host {
			t.Fatalf("%s: stored %+v, child said %+v", o.ip, al, o)
		}
		if al.BlockHost != o.host {
			borrowed[o.host]++
		}
	}
	total := 0
	for h, n := range borrowed {
		total += n
		if !full[h] {
			t.Errorf("%s borrowed %d addresses while one of its own blocks had room", h, n)
		}
	}
	if strict && total != 0 {
		t.Errorf("strictAffinity, yet %d addresses were borrowed: %v", total, borrowed)
	}
	if !strict && total == 0 {
		t.Errorf("no address was borrowed, but the demands need more blocks than the pool has")
	}
	t.Logf("allocated 1000 addresses in %v (%s per call): blocks per host %v, borrowed %v; %+v",
		allocTime.Round(time.Millisecond), pct(lat), blocks, borrowed, stats)

	// Release: every child frees its own addresses, half by handle, half
	// by address.
	dir := t.TempDir()
	inputs := make([][]string, len(envs))
	for _, o := range ok {
		i := childOf(envs, o.handle)
		inputs[i] = append(inputs[i], o.handle+" "+o.ip.String())
	}
	for i := range envs {
		f := filepath.Join(dir, fmt.Sprint(i))
		if err := os.WriteFile(f, []byte(strings.Join(inputs[i], "\n")), 0o600); err != nil {
			t.Fatal(err)
		}
		envs[i]["IPAM_HELPER"], envs[i]["IPAM_INPUT"] = "release", f
	}
	lat = lat[:0]
	start = time.Now()
	runChildren(t, envs, func(i int, l helperLine) {
		if l.Err != "" {
			t.Errorf("child %d release %s: %s", i, l.Handle, l.Err)
		}
		if l.Stats == nil {
			lat = append(lat, l.Micros)
		}
	})
	t.Logf("released 1000 addresses in %v (%s per call)", time.Since(start).Round(time.Millisecond), pct(lat))
	s = mustClean(t, a, CheckOptions{Nodes: hosts})
	if len(s.Allocations()) != 0 || len(s.Handles) != 0 {
		t.Fatalf("left %d allocations, %d handles", len(s.Allocations()), len(s.Handles))
	}
}

func childOf(envs []map[string]string, handle string) int {
	for i, e := range envs {
		if strings.HasPrefix(handle, e["IPAM_PREFIX"]+"-") {
			return i
		}
	}
	panic("no child for " + handle)
}

func addStats(s *Stats, o Stats) {
	s.Txns += o.Txns
	s.Conflicts += o.Conflicts
	s.Unavailable += o.Unavailable
	s.Ambiguous += o.Ambiguous
	s.AmbiguousApplied += o.AmbiguousApplied
	s.BlocksClaimed += o.BlocksClaimed
	s.AddressesBorrowed += o.AddressesBorrowed
}

// pct formats the median and 99th percentile of latencies in µs.
func pct(us []int64) string {
	if len(us) == 0 {
		return "-"
	}
	s := append([]int64(nil), us...)
	slicesSort(s)
	q := func(p float64) time.Duration { return time.Duration(s[int(p*float64(len(s)-1))]) * time.Microsecond }
	return fmt.Sprintf("p50 %v p99 %v", q(0.5), q(0.99))
}

// TestFaultEtcdRestart restarts etcd (same data directory and ports) while
// 8 allocator processes run. Half of them wait out the outage, half give up
// after 500ms. Every call must either succeed or fail leaving nothing behind;
// afterwards no address is duplicated and nothing leaked.
func TestFaultEtcdRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process test")
	}
	e := startEtcd(t)
	a, c := connect(t, e.endpoints(), 2*time.Second)
	createPool(t, c, "fault", "10.30.0.0/22", 26)
	hosts := []string{"node-0", "node-1", "node-2", "node-3"}
	var envs []map[string]string
	for p := range 8 {
		timeout := "20s"
		if p >= 4 {
			timeout = "500ms"
		}
		envs = append(envs, map[string]string{"IPAM_HELPER": "alloc", "IPAM_ENDPOINTS": strings.Join(e.endpoints(), ","),
			"IPAM_HOST": hosts[p%4], "IPAM_PREFIX": fmt.Sprintf("k8s-pod-network.f%d", p),
			"IPAM_COUNT": "60", "IPAM_CALL_TIMEOUT": timeout, "IPAM_PAUSE": "10ms"})
	}
	success := map[string]netip.Addr{}
	byIP := map[netip.Addr]string{}
	failed := map[string]string{}
	var unknown []string
	stats := Stats{}
	// Restart etcd twice: after 100 and after 250 successful calls.
	thresholds := []int{100, 250}
	reached := []chan struct{}{make(chan struct{}), make(chan struct{})}
	childrenDone := make(chan struct{})
	type restartResult struct {
		downFor []time.Duration
		err     error
	}
	restarts := make(chan restartResult, 1)
	go func() {
		var r restartResult
		defer func() { restarts <- r }()
		for k := range reached {
			select {
			case <-reached[k]:
			case <-childrenDone:
				r.err = fmt.Errorf("restart %d never triggered", k+1)
				return
			}
			t0 := time.Now()
			if err := e.srv.Close(); err != nil {
				t.Logf("close etcd: %v", err)
			}
			time.Sleep(500 * time.Millisecond)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			srv, err := embeddedStart(ctx, e)
			cancel()
			if err != nil {
				r.err = err
				return
			}
			e.srv = srv
			r.downFor = append(r.downFor, time.Since(t0).Round(time.Millisecond))
		}
	}()
	runChildren(t, envs, func(i int, l helperLine) {
		switch {
		case l.Stats != nil:
			addStats(&stats, *l.Stats)
		case l.Err != "":
			failed[l.Handle] = l.Err
			if l.Unknown {
				unknown = append(unknown, l.Handle)
			}
		default:
			ip := netip.MustParseAddr(l.IP)
			if prev, dup := byIP[ip]; dup {
				t.Errorf("%s handed out twice: %s and %s", ip, prev, l.Handle)
			}
			byIP[ip], success[l.Handle] = l.Handle, ip
			for k, at := range thresholds {
				if len(success) == at {
					close(reached[k])
				}
			}
		}
	})
	close(childrenDone)
	rr := <-restarts
	if rr.err != nil {
		t.Fatal(rr.err)
	}
	downFor := rr.downFor
	if len(success)+len(failed) != 480 {
		t.Fatalf("%d results, want 480", len(success)+len(failed))
	}
	examples := []string{}
	for h, err := range failed {
		if len(examples) < 3 {
			examples = append(examples, h+": "+err)
		}
	}
	t.Logf("etcd down for %v; %d succeeded, %d failed cleanly, %d outcome unknown; %+v; e.g. %q",
		downFor, len(success), len(failed)-len(unknown), len(unknown), stats, examples)
	if len(failed) == 0 {
		t.Log("note: no call failed (the outage was shorter than every timeout)")
	}
	// What the store holds is exactly what the children were told.
	s, err := a.Snapshot(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	held := map[string][]netip.Addr{}
	for _, al := range s.Allocations() {
		held[al.HandleID] = append(held[al.HandleID], al.IP)
	}
	for h, ip := range success {
		if got := held[h]; len(got) != 1 || got[0] != ip {
			t.Errorf("%s was given %s but owns %v", h, ip, got)
		}
	}
	for h, ips := range held {
		if _, ok := success[h]; !ok && !slicesContains(unknown, h) {
			t.Errorf("failed call %s (%s) left %v allocated", h, failed[h], ips)
		}
	}
	mustClean(t, a, CheckOptions{Nodes: hosts})
	// Release what succeeded (and, as a CNI runtime would after a failed
	// ADD, every failed handle): nothing may remain.
	for h := range success {
		if err := a.ReleaseByHandle(ctxT(t), h); err != nil {
			t.Fatal(err)
		}
	}
	for h := range failed {
		if err := a.ReleaseByHandle(ctxT(t), h); err != nil {
			t.Fatal(err)
		}
	}
	s = mustClean(t, a, CheckOptions{Nodes: hosts})
	if len(s.Allocations()) != 0 || len(s.Handles) != 0 {
		t.Fatalf("left %d allocations, %d handles", len(s.Allocations()), len(s.Handles))
	}
}
