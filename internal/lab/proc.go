package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/calico-go/calico/internal/netns"
)

// daemon is a background process the lab started: it outlives the command
// that started it (own session, output to a log file) and carries the
// lab's marker in its environment.
type daemon struct {
	pid  int
	log  string
	done chan struct{} // closed when the process exits while we watch it
}

type daemonSpec struct {
	lab  string
	argv []string
	env  []string
	log  string
	// ns, when set, is the network namespace the process starts in.
	ns *netns.NS
}

// startDaemon starts the process. While this command runs, a goroutine
// reaps it if it dies (alive then reports false); afterwards it is an
// orphan that `down` ends.
func startDaemon(s daemonSpec) (*daemon, error) {
	if err := os.MkdirAll(filepath.Dir(s.log), 0o755); err != nil {
		return nil, fmt.Errorf("log directory: %w", err)
	}
	f, err := os.OpenFile(s.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open log %s: %w", s.log, err)
	}
	defer f.Close()
	cmd := exec.Command(s.argv[0], s.argv[1:]...)
	cmd.Env = append(slices.Clone(s.env), markerEnv+"="+s.lab)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if s.ns != nil {
		err = s.ns.Do(cmd.Start)
	} else {
		err = cmd.Start()
	}
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", filepath.Base(s.argv[0]), err)
	}
	d := &daemon{pid: cmd.Process.Pid, log: s.log, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(d.done) }()
	return d, nil
}

// exited reports whether the process has ended.
func (d *daemon) exited() bool {
	select {
	case <-d.done:
		return true
	default:
		return !pidAlive(d.pid)
	}
}

// logTail is the last n lines of the daemon's log.
func logTail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// pidAlive reports whether pid is a live process (not a zombie).
func pidAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// The state follows the command name in parentheses.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return false
	}
	return b[i+2] != 'Z' && b[i+2] != 'X'
}

// labProcesses lists the live processes whose environment carries the
// lab's marker, except this process.
func labProcesses(lab string) []int {
	want := []byte(markerEnv + "=" + lab + "\x00")
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	self := os.Getpid()
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		env, err := os.ReadFile("/proc/" + e.Name() + "/environ")
		if err != nil || !bytes.Contains(append([]byte{0}, env...), append([]byte{0}, want...)) {
			continue
		}
		if pidAlive(pid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// stopProcesses sends SIGTERM to every pid, waits up to grace for them to
// end, then kills what is left and waits for that too.
func stopProcesses(ctx context.Context, pids []int, grace time.Duration) error {
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGTERM)
	}
	if waitGone(ctx, pids, grace) {
		return nil
	}
	for _, pid := range pids {
		if pidAlive(pid) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	if waitGone(ctx, pids, 5*time.Second) {
		return nil
	}
	var left []string
	for _, pid := range pids {
		if pidAlive(pid) {
			left = append(left, strconv.Itoa(pid))
		}
	}
	return fmt.Errorf("processes %s did not end", strings.Join(left, ", "))
}

func waitGone(ctx context.Context, pids []int, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		alive := false
		for _, pid := range pids {
			if pidAlive(pid) {
				alive = true
				break
			}
		}
		if !alive {
			return true
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// runIn runs a command to completion, in ns when set, and returns its
// stdout; a failure carries stderr.
func runIn(ctx context.Context, ns *netns.NS, stdin []byte, env []string, argv ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = env
	cmd.Stdin = bytes.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	var err error
	if ns != nil {
		err = ns.Do(cmd.Run)
	} else {
		err = cmd.Run()
	}
	if err != nil {
		msg := strings.TrimSpace(errb.String())
		if msg == "" {
			msg = strings.TrimSpace(out.String())
		}
		var ee *exec.ExitError
		if errors.As(err, &ee) && msg != "" {
			return out.Bytes(), fmt.Errorf("%s: %s", filepath.Base(argv[0]), msg)
		}
		return out.Bytes(), fmt.Errorf("%s: %w %s", filepath.Base(argv[0]), err, msg)
	}
	return out.Bytes(), nil
}
