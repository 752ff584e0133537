package lab

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/calico-go/calico/internal/bgp"
	"github.com/calico-go/calico/internal/netns"
)

// Status is a lab's live state: processes, readiness, BGP sessions.
type Status struct {
	State     State
	Datastore bool // the datastore process runs
	Hosts     []HostStatus
	Workloads []WorkloadStatus
}

// HostStatus is one host's agent.
type HostStatus struct {
	Host
	Running, Registered, Ready bool
	Peers                      []bgp.PeerStatus
	BGPError                   error
}

// WorkloadStatus is one workload.
type WorkloadStatus struct {
	Workload
	Running bool // its echo server runs
}

// Status gathers the lab's live state; hosts are asked concurrently.
func (l *Lab) Status(ctx context.Context) *Status {
	s := &Status{State: l.State()}
	s.Datastore = pidAlive(s.State.DatastorePID)
	s.Hosts = make([]HostStatus, len(s.State.Hosts))
	var wg sync.WaitGroup
	for i, h := range s.State.Hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			hh := l.checkHost(ctx, h.Name)
			s.Hosts[i] = HostStatus{Host: h, Running: pidAlive(h.PID), Registered: hh.registered, Ready: hh.ready,
				Peers: hh.peers, BGPError: hh.bgpErr}
		}()
	}
	wg.Wait()
	for _, w := range s.State.sortedWorkloads() {
		s.Workloads = append(s.Workloads, WorkloadStatus{Workload: w, Running: pidAlive(w.PID)})
	}
	return s
}

// Write prints the status as tables.
func (s *Status) Write(w io.Writer) error {
	st := s.State
	kind := "embedded etcd"
	if st.External {
		kind = "external etcd"
	}
	fmt.Fprintf(w, "Lab %q: backend %s, dataplane %s, pool %s, underlay %s\n", st.Name, st.Backend, st.Dataplane, st.Pool, st.Underlay)
	fmt.Fprintf(w, "Datastore: %s at %s (hosts use %s), %s\n\n", kind, strings.Join(st.Endpoints, ","),
		strings.Join(st.HostEndpoints, ","), running(s.Datastore, st.DatastorePID))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "HOST\tADDRESS\tCALICO-NODE\tREGISTERED\tPOLICY\tBGP")
	for _, h := range s.Hosts {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", h.Name, h.Addr, running(h.Running, h.PID), yesNo(h.Registered),
			map[bool]string{true: "ready", false: "not ready"}[h.Ready], bgpSummary(st.Backend, h))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if st.Backend == BackendBGP && len(s.Hosts) > 1 {
		fmt.Fprintln(w, "\nBGP sessions (as `calicoctl node status` shows them, one host at a time):")
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "HOST\tPEER ADDRESS\tPEER TYPE\tSTATE\tSINCE\tINFO")
		for _, h := range s.Hosts {
			for _, p := range h.Peers {
				since := "-"
				if !p.Since.IsZero() {
					since = p.Since.Format(time.TimeOnly)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", h.Name, p.Address, p.Type, p.State, since, p.Info)
			}
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "WORKLOAD\tHOST\tADDRESS\tLABELS\tECHO SERVER")
	for _, wl := range s.Workloads {
		ports := make([]string, len(wl.Ports))
		for i, p := range wl.Ports {
			ports[i] = fmt.Sprint(p)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", wl.ID(), wl.Host, wl.Addr, FormatLabels(wl.Labels),
			running(wl.Running, wl.PID)+" on "+strings.Join(ports, ","))
	}
	return tw.Flush()
}

func running(ok bool, pid int) string {
	if ok {
		return fmt.Sprintf("running (pid %d)", pid)
	}
	return "NOT RUNNING"
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func bgpSummary(backend string, h HostStatus) string {
	if backend != BackendBGP {
		return "- (" + backend + ")"
	}
	if h.BGPError != nil {
		return "status unavailable"
	}
	return fmt.Sprintf("%d/%d established", (hostHealth{peers: h.Peers}).established(), len(h.Peers))
}

// Healthy reports whether everything runs and is ready (with BGP: every
// host has a session with every other).
func (s *Status) Healthy() bool {
	if !s.Datastore {
		return false
	}
	for _, h := range s.Hosts {
		if !h.Running || !h.Registered || !h.Ready {
			return false
		}
		if s.State.Backend == BackendBGP && (hostHealth{peers: h.Peers}).established() != len(s.Hosts)-1 {
			return false
		}
	}
	for _, w := range s.Workloads {
		if !w.Running {
			return false
		}
	}
	return true
}

// Exec runs argv inside a workload's namespace (or a host's, when target
// names a host) with the caller's standard streams, and returns its exit
// code.
func (l *Lab) Exec(ctx context.Context, target string, argv []string, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	if len(argv) == 0 {
		return 0, fmt.Errorf("exec: no command given (calico-lab exec WORKLOAD -- CMD...): %w", ErrInvalid)
	}
	var nsName string
	if _, ok := l.state.host(target); ok && !strings.Contains(target, "/") {
		nsName = hostNS(l.state.Name, target)
	} else {
		w, err := l.state.workload(target)
		if err != nil {
			return 0, err
		}
		nsName = workloadNS(l.state.Name, w.Namespace, w.Name)
	}
	ns, err := netns.Open(filepath.Join(netns.Dir, nsName))
	if err != nil {
		return 0, err
	}
	defer ns.Close()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, stdout, stderr
	cmd.Env = os.Environ()
	if err := ns.Do(cmd.Start); err != nil {
		return 0, fmt.Errorf("exec %s: %w", argv[0], err)
	}
	if err := cmd.Wait(); err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode(), nil
		}
		return 0, err
	}
	return 0, nil
}

// EnvLines are the shell lines that point calicoctl at the lab: the
// datastore, and host's BGP status socket for `calicoctl node status`.
func (l *Lab) EnvLines(host string) ([]string, error) {
	if host == "" && len(l.state.Hosts) > 0 {
		host = l.state.Hosts[0].Name
	}
	lines := []string{
		"export DATASTORE_TYPE=etcdv3",
		"export ETCD_ENDPOINTS=" + strings.Join(l.state.Endpoints, ","),
	}
	if host != "" {
		if _, ok := l.state.host(host); !ok {
			return nil, fmt.Errorf("lab %q has no host %q: %w", l.state.Name, host, ErrInvalid)
		}
		lines = append(lines, "export CALICO_BGP_STATUS_SOCKET="+l.bgpSocket(host))
	}
	if p, err := exec.LookPath("calicoctl"); err != nil || filepath.Dir(p) != l.state.BinDir {
		lines = append(lines, "export PATH="+l.state.BinDir+":$PATH")
	}
	return lines, nil
}
