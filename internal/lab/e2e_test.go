package lab_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/calico-go/calico/internal/lab"
	"github.com/calico-go/calico/internal/testutil/netnstest"
)

var (
	binOnce sync.Once
	binDir  string
	binErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// binaries builds calico-lab and the binaries it runs into one directory,
// as `make build` does, once per test binary. It also makes this process
// the subreaper of what it starts, so that lab processes orphaned by
// calico-lab become its children and it can see that every one ended.
func binaries(tb testing.TB) string {
	tb.Helper()
	binOnce.Do(func() {
		if binErr = unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); binErr != nil {
			return
		}
		if binDir, binErr = os.MkdirTemp("", "calico-lab-test-"); binErr != nil {
			return
		}
		start := time.Now()
		args := []string{"build", "-o", binDir + "/"}
		for _, b := range []string{"calico-lab", "calico-node", "calico", "calico-ipam", "calicoctl"} {
			args = append(args, "github.com/calico-go/calico/cmd/"+b)
		}
		if out, err := exec.Command("go", args...).CombinedOutput(); err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
			return
		}
		tb.Logf("binaries built in %v", time.Since(start).Round(time.Millisecond))
	})
	if binErr != nil {
		tb.Fatal(binErr)
	}
	return binDir
}

// e2e drives the calico-lab binary for one lab.
type e2e struct {
	t    *testing.T
	bin  string
	name string
	env  []string
}

// run runs a command (PATH has the binaries, CALICO_LAB_NAME the lab) and
// returns its stdout and exit code; stderr goes to the test log.
func (e *e2e) run(stdin []byte, argv ...string) (string, int) {
	e.t.Helper()
	if _, err := os.Stat(filepath.Join(e.bin, argv[0])); err == nil {
		argv[0] = filepath.Join(e.bin, argv[0])
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), append([]string{"PATH=" + e.bin + ":" + os.Getenv("PATH"), lab.NameEnv + "=" + e.name}, e.env...)...)
	cmd.Stdin = bytes.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if errb.Len() > 0 {
		e.t.Logf("%s:\n%s", strings.Join(argv, " "), strings.TrimRight(errb.String(), "\n"))
	}
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return out.String(), ee.ExitCode()
		}
		e.t.Fatalf("%s: %v", strings.Join(argv, " "), err)
	}
	return out.String(), 0
}

// lab runs calico-lab and fails the test unless it succeeds.
func (e *e2e) lab(args ...string) string {
	e.t.Helper()
	out, code := e.run(nil, append([]string{filepath.Join(e.bin, "calico-lab")}, args...)...)
	if code != 0 {
		e.t.Fatalf("calico-lab %s: exit %d", strings.Join(args, " "), code)
	}
	return out
}

func (e *e2e) matrix(args ...string) *lab.Matrix {
	e.t.Helper()
	var m lab.Matrix
	if err := json.Unmarshal([]byte(e.lab(append([]string{"matrix", "-o", "json"}, args...)...)), &m); err != nil {
		e.t.Fatalf("matrix JSON: %v", err)
	}
	return &m
}

// expectMatrix polls the TCP matrix until exactly the given pairs are
// allowed (all pairs when all is set) and returns how long that took.
func (e *e2e) expectMatrix(what string, allowed []lab.Pair, all bool, pairs int) time.Duration {
	e.t.Helper()
	start := time.Now()
	for {
		m := e.matrix()
		diff := m.Diff(allowed, all)
		if len(m.Results) != pairs {
			e.t.Fatalf("%s: %d results, want %d", what, len(m.Results), pairs)
		}
		if len(diff) == 0 {
			return time.Since(start)
		}
		if time.Since(start) > 20*time.Second {
			e.t.Fatalf("%s: the matrix differs after %v:\n  %s", what, time.Since(start), strings.Join(diff, "\n  "))
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// TestLabEndToEnd brings labs up with the calico-lab binary (3 hosts,
// two workloads each, BGP and then VXLAN), walks through the three-tier
// example exactly as docs/lab.md does, exercises the other commands, and
// tears the lab down, checking that nothing is left.
func TestLabEndToEnd(t *testing.T) {
	netnstest.RequireRoot(t)
	bin := binaries(t)
	for _, backend := range []string{lab.BackendBGP, lab.BackendVXLAN} {
		t.Run(backend, func(t *testing.T) {
			e := &e2e{t: t, bin: bin, name: fmt.Sprintf("e2e%s%d", backend[:1], os.Getpid()%100000)}
			t.Cleanup(func() {
				if _, err := os.Stat(filepath.Join(lab.DefaultRunDir, e.name)); err == nil {
					e.run(nil, filepath.Join(bin, "calico-lab"), "down")
				}
				reapChildren()
			})
			walkthrough(e, backend)
		})
	}
	t.Run("example", func(t *testing.T) {
		e := &e2e{t: t, bin: bin, name: fmt.Sprintf("e2ex%d", os.Getpid()%100000)}
		other := &e2e{t: t, bin: bin, name: fmt.Sprintf("e2eo%d", os.Getpid()%100000)}
		t.Cleanup(func() {
			for _, x := range []*e2e{e, other} {
				if _, err := os.Stat(filepath.Join(lab.DefaultRunDir, x.name)); err == nil {
					x.run(nil, filepath.Join(bin, "calico-lab"), "down")
				}
			}
			reapChildren()
		})
		oneCommand(e, other)
	})
	// Every process the labs started was reparented to this process when
	// calico-lab exited, and has ended.
	if left := reapChildren(); len(left) > 0 {
		t.Errorf("processes %v are still running", left)
	}
}

// oneCommand checks the README's command, `up --example three-tier`,
// which prints the final matrix, next to a second lab.
func oneCommand(e, other *e2e) {
	t := e.t
	start := time.Now()
	out := e.lab("up", "--example", "three-tier", "--workloads-per-host", "1")
	t.Logf("up --example three-tier (3 hosts, 7 workloads): %v", time.Since(start).Round(time.Millisecond))
	if !strings.Contains(out, "3 of 42 connections allowed.") || !strings.Contains(out, "client/client ") {
		t.Errorf("up --example printed:\n%s", out)
	}
	// A second lab beside it, with the same address ranges.
	other.lab("up", "--hosts", "2", "--workloads-per-host", "1")
	if m := other.matrix(); m.Allowed() != 2 || len(m.Results) != 2 {
		t.Errorf("second lab: %d of %d allowed, want 2 of 2", m.Allowed(), len(m.Results))
	}
	if m := e.matrix(); m.Allowed() != 3 {
		t.Errorf("first lab beside the second: %d allowed, want 3", m.Allowed())
	}
	other.lab("down")
	assertGone(t, other.name)
	if m := e.matrix(); m.Allowed() != 3 || len(m.Results) != 42 {
		t.Errorf("first lab after the second went: %d of %d allowed", m.Allowed(), len(m.Results))
	}
	e.lab("down")
	assertGone(t, e.name)
}

func walkthrough(e *e2e, backend string) {
	t := e.t
	start := time.Now()
	e.lab("up", "--hosts", "3", "--workloads-per-host", "2", "--backend", backend)
	t.Logf("up (3 hosts x 2 workloads, %s): %v", backend, time.Since(start).Round(time.Millisecond))

	// The walkthrough: its workloads, added by its own script.
	if _, code := e.run(nil, "sh", "../../examples/three-tier/workloads.sh"); code != 0 {
		t.Fatalf("workloads.sh: exit %d", code)
	}
	const pairs = 10 * 9
	e.expectMatrix("before any policy", nil, true, pairs)
	// eval "$(calico-lab env)", except PATH, which run sets.
	for _, line := range strings.Split(strings.TrimSpace(e.lab("env")), "\n") {
		if kv := strings.TrimPrefix(line, "export "); !strings.HasPrefix(kv, "PATH=") {
			e.env = append(e.env, kv)
		}
	}
	ex, err := lab.LoadExample("three-tier")
	if err != nil {
		t.Fatal(err)
	}
	for _, step := range ex.Steps {
		if _, code := e.run(nil, "calicoctl", "apply", "-f", "../../examples/"+step.File); code != 0 {
			t.Fatalf("calicoctl apply -f %s: exit %d", step.File, code)
		}
		d := e.expectMatrix("after "+step.File, step.Allowed, false, pairs)
		t.Logf("%s in force after %v", step.File, d.Round(time.Millisecond))
	}
	final := ex.Steps[len(ex.Steps)-1].Allowed
	if m := e.matrix("--protocol", "udp"); m.Allowed() != 0 || m.Protocol != "udp" {
		t.Errorf("UDP matrix: %d allowed, want none (the policies allow TCP only)", m.Allowed())
	}

	status := e.lab("status")
	if strings.Contains(status, "NOT RUNNING") || strings.Contains(status, "not ready") {
		t.Errorf("status:\n%s", status)
	}
	if backend == lab.BackendBGP && strings.Count(status, "2/2 established") != 3 {
		t.Errorf("status shows no full mesh:\n%s", status)
	}

	// A fourth host with another client: it reaches the frontend, as the
	// policy for the client namespace says, and nothing else.
	e.lab("add-host")
	e.lab("add-workload", "client2", "--host", "host-4", "--namespace", "client", "--labels", "app=client")
	e.expectMatrix("with host-4", append(final, lab.Pair{From: "client/client2", To: "shop/frontend"}), false, 11*10)
	if _, code := e.run(nil, filepath.Join(e.bin, "calico-lab"), "exec", "client2", "--", "sh", "-c", "exit 3"); code != 3 {
		t.Errorf("exec: exit code %d, want 3", code)
	}
	e.lab("delete-host", "host-4")
	if s := e.lab("status"); strings.Contains(s, "host-4") || strings.Contains(s, "client2") {
		t.Errorf("host-4 is still there:\n%s", s)
	}
	e.lab("delete-workload", "shop/database")
	if m := e.matrix(); len(m.Results) != 9*8 {
		t.Errorf("after delete-workload: %d results", len(m.Results))
	}

	start = time.Now()
	e.lab("down")
	t.Logf("down: %v", time.Since(start).Round(time.Millisecond))
	assertGone(t, e.name)
}

// assertGone checks that the lab left nothing: namespaces, processes,
// files, links or routes in this namespace.
func assertGone(t *testing.T, name string) {
	t.Helper()
	ents, _ := os.ReadDir("/run/netns")
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), name+".") {
			t.Errorf("namespace %s is left", e.Name())
		}
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/environ")
	for _, p := range procs {
		if b, err := os.ReadFile(p); err == nil && bytes.Contains(b, []byte("CALICO_LAB="+name+"\x00")) {
			t.Errorf("process %s of the lab is left", p)
		}
	}
	if _, err := os.Stat(filepath.Join(lab.DefaultRunDir, name)); !os.IsNotExist(err) {
		t.Errorf("the lab's directory is left: %v", err)
	}
	links, err := netlink.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range links {
		if l.Attrs().Alias == "calico-lab:"+name {
			t.Errorf("link %s is left", l.Attrs().Name)
		}
	}
	routes, err := netlink.RouteList(nil, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range routes {
		if r.Dst == nil {
			continue
		}
		a, _ := netip.AddrFromSlice(r.Dst.IP)
		if lab.DefaultPool.Contains(a.Unmap()) || lab.DefaultUnderlay.Contains(a.Unmap()) {
			t.Errorf("route %s is left", r.Dst)
		}
	}
	reapChildren()
}

// reapChildren reaps this process's exited children and returns those
// still running.
func reapChildren() []int {
	var running []int
	self := strconv.Itoa(os.Getpid())
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, p := range stats {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 2 || f[1] != self {
			continue
		}
		pid, _ := strconv.Atoi(strings.Split(p, "/")[2])
		if f[0] == "Z" {
			var ws unix.WaitStatus
			_, _ = unix.Wait4(pid, &ws, unix.WNOHANG, nil)
			continue
		}
		running = append(running, pid)
	}
	return running
}

// BenchmarkUp measures `calico-lab up` (BGP, no example) from the command
// to a ready lab, for 3 hosts x 2 workloads and 10 hosts x 10 workloads;
// `down` is not timed. Run with -benchtime=3x. The log shows each stage's
// time as up reported it.
func BenchmarkUp(b *testing.B) {
	netnstest.RequireRoot(b)
	for _, size := range []struct{ hosts, workloads int }{{3, 2}, {10, 10}} {
		b.Run(fmt.Sprintf("%dx%d", size.hosts, size.workloads), func(b *testing.B) {
			bin := binaries(b)
			name := fmt.Sprintf("bench%d", os.Getpid()%100000)
			labCmd := func(args ...string) (string, error) {
				cmd := exec.Command(filepath.Join(bin, "calico-lab"), append(args, "--name", name)...)
				out, err := cmd.CombinedOutput()
				return string(out), err
			}
			var total time.Duration
			for i := 0; i < b.N; i++ {
				start := time.Now()
				out, err := labCmd("up", "--hosts", strconv.Itoa(size.hosts), "--workloads-per-host", strconv.Itoa(size.workloads))
				d := time.Since(start)
				b.StopTimer()
				if err != nil {
					b.Fatalf("up: %v\n%s", err, out)
				}
				total += d
				var stages []string
				for _, l := range strings.Split(out, "\n") {
					if strings.HasPrefix(strings.TrimSpace(l), "✓") {
						stages = append(stages, strings.TrimSpace(l))
					}
				}
				b.Logf("up %dx%d in %v:\n%s", size.hosts, size.workloads, d.Round(time.Millisecond), strings.Join(stages, "\n"))
				if out, err := labCmd("down"); err != nil {
					b.Fatalf("down: %v\n%s", err, out)
				}
				reapChildren()
				b.StartTimer()
			}
			b.ReportMetric(total.Seconds()/float64(b.N), "up-s")
		})
	}
}
