package lab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/calico-go/calico/internal/bgp"
	"github.com/calico-go/calico/internal/bgp/status"
	"github.com/calico-go/calico/internal/netns"
)

// Networking backends (--backend) and what calico-node calls them.
const (
	BackendBGP   = "bgp"
	BackendVXLAN = "vxlan"
)

// healthPort is where calico-node's policy engine serves /readiness inside
// each host namespace.
const healthPort = 9099

func nodeBackend(b string) string {
	if b == BackendBGP {
		return "bird"
	}
	return b
}

// hostFiles are the files calico-node writes for a host.
func (l *Lab) nodenameFile(h string) string { return filepath.Join(l.st.hostDir(h), "nodename") }
func (l *Lab) mtuFile(h string) string      { return filepath.Join(l.st.hostDir(h), "mtu") }
func (l *Lab) bgpSocket(h string) string    { return filepath.Join(l.st.hostDir(h), "bgp.sock") }
func (l *Lab) nodeLog(h string) string      { return filepath.Join(l.st.hostDir(h), "calico-node.log") }

// nodeEnv is calico-node's environment for host h.
func (l *Lab) nodeEnv(h Host) []string {
	bits := l.state.Underlay.Bits()
	return append(l.baseEnv(true),
		"NODENAME="+h.Name,
		"IP="+netip.PrefixFrom(h.Addr, bits).String(),
		"CALICO_NETWORKING_BACKEND="+nodeBackend(l.state.Backend),
		"CALICO_IPV4POOL_CIDR="+l.state.Pool.String(),
		"CALICO_NODENAME_FILE="+l.nodenameFile(h.Name),
		"CALICO_MTU_FILE="+l.mtuFile(h.Name),
		"CALICO_BGP_STATUS_SOCKET="+l.bgpSocket(h.Name),
		"FELIX_HEALTHENABLED=true",
		"FELIX_HEALTHHOST=127.0.0.1",
		"FELIX_HEALTHPORT="+strconv.Itoa(healthPort),
	)
}

// nextHostAddr is the lowest free host address in the underlay (the
// gateway has the first).
func (l *Lab) nextHostAddr() (netip.Addr, error) {
	used := map[netip.Addr]bool{l.state.Gateway: true}
	for _, h := range l.state.Hosts {
		used[h.Addr] = true
	}
	for a := l.state.Gateway.Next(); l.state.Underlay.Contains(a); a = a.Next() {
		if !used[a] && a.Next().IsValid() && l.state.Underlay.Contains(a.Next()) { // not the broadcast address
			return a, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("the underlay %s is full: %w", l.state.Underlay, ErrInvalid)
}

// startHost makes the host's namespace, wires it to the underlay and
// starts calico-node in it. The host is added to the state.
func (l *Lab) startHost(name string) (*daemon, error) {
	l.mu.Lock()
	if _, ok := l.state.host(name); ok {
		l.mu.Unlock()
		return nil, fmt.Errorf("lab %q already has a host %q: %w", l.state.Name, name, ErrInvalid)
	}
	addr, err := l.nextHostAddr()
	if err != nil {
		l.mu.Unlock()
		return nil, err
	}
	h := Host{Name: name, Addr: addr}
	l.state.Hosts = append(l.state.Hosts, h)
	l.mu.Unlock()

	ul, err := openSpace(underlayNS(l.state.Name))
	if err != nil {
		return nil, fmt.Errorf("host %s: %w", name, err)
	}
	defer ul.Close()
	sp, err := createSpace(hostNS(l.state.Name, name))
	if err != nil {
		return nil, fmt.Errorf("host %s: %w", name, err)
	}
	defer sp.Close()
	bits := l.state.Underlay.Bits()
	if err := attachHost(l.state.Name, ul, sp, netip.PrefixFrom(addr, bits), netip.PrefixFrom(l.state.Gateway, bits)); err != nil {
		return nil, fmt.Errorf("host %s: %w", name, err)
	}
	if err := os.MkdirAll(l.st.hostDir(name), 0o755); err != nil {
		return nil, err
	}
	return l.startNode(h, sp.NS)
}

// startNode starts calico-node for host h inside ns (nil: opens the
// host's namespace) and records its pid.
func (l *Lab) startNode(h Host, ns *netns.NS) (*daemon, error) {
	if ns == nil {
		var err error
		if ns, err = netns.Open(filepath.Join(netns.Dir, hostNS(l.state.Name, h.Name))); err != nil {
			return nil, fmt.Errorf("host %s: %w", h.Name, err)
		}
		defer ns.Close()
	}
	d, err := startDaemon(daemonSpec{lab: l.state.Name, argv: []string{l.bin("calico-node"), "--log-level", "info"},
		env: l.nodeEnv(h), log: l.nodeLog(h.Name), ns: ns})
	if err != nil {
		return nil, fmt.Errorf("host %s: %w", h.Name, err)
	}
	l.mu.Lock()
	if hp, ok := l.state.host(h.Name); ok {
		hp.PID = d.pid
	}
	l.mu.Unlock()
	return d, nil
}

// nodeRestarts is how often waitHosts restarts a calico-node that exits
// while the lab starts (as a kubelet restarts a failed pod), for instance
// when the datastore answered too slowly on a busy machine.
const nodeRestarts = 3

// hostHealth is what waitHosts and status learn about a host.
type hostHealth struct {
	registered bool // calico-node wrote the node name file
	ready      bool // the policy engine reports ready
	peers      []bgp.PeerStatus
	bgpErr     error
}

func (hh hostHealth) established() int {
	n := 0
	for _, p := range hh.peers {
		if p.State == bgp.StateEstablished {
			n++
		}
	}
	return n
}

// checkHost reads the host's files, readiness endpoint and BGP status.
func (l *Lab) checkHost(ctx context.Context, h string) hostHealth {
	var hh hostHealth
	_, err := os.Stat(l.nodenameFile(h))
	hh.registered = err == nil
	hh.ready = l.readiness(ctx, h)
	if l.state.Backend == BackendBGP {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		rep, err := status.Fetch(cctx, l.bgpSocket(h))
		cancel()
		hh.peers, hh.bgpErr = rep.Peers, err
	}
	return hh
}

// readiness asks the host's policy engine whether it is ready (the
// dataplane holds the complete policy).
func (l *Lab) readiness(ctx context.Context, h string) bool {
	ns, err := netns.Open(filepath.Join(netns.Dir, hostNS(l.state.Name, h)))
	if err != nil {
		return false
	}
	defer ns.Close()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	var c net.Conn
	if err := ns.Do(func() error {
		var d net.Dialer
		c, err = d.DialContext(ctx, "tcp", "127.0.0.1:"+strconv.Itoa(healthPort))
		return err
	}); err != nil {
		return false
	}
	tr := &http.Transport{DialContext: func(context.Context, string, string) (net.Conn, error) { return c, nil }}
	defer tr.CloseIdleConnections()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://calico-node/readiness", nil)
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode/100 == 2
}

// waitHosts waits until every named host is registered and ready and,
// with BGP, has an established session with every other host of the lab.
// A calico-node that exits is restarted a few times, then fails the wait
// with its log.
func (l *Lab) waitHosts(ctx context.Context, daemons map[string]*daemon, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	names := make([]string, 0, len(daemons))
	for n := range daemons {
		names = append(names, n)
	}
	slices.Sort(names)
	total := len(l.State().Hosts)
	restarts := map[string]int{}
	for {
		reg, ready, est, want := 0, 0, 0, 0
		var notReady []string
		for _, n := range names {
			if err := l.restartIfExited(n, daemons, restarts); err != nil {
				return err
			}
			hh := l.checkHost(ctx, n)
			ok := hh.registered && hh.ready
			if hh.registered {
				reg++
			}
			if hh.ready {
				ready++
			}
			if l.state.Backend == BackendBGP {
				want += total - 1
				e := hh.established()
				est += e
				ok = ok && e == total-1
			}
			if !ok {
				notReady = append(notReady, n)
			}
		}
		if len(notReady) == 0 {
			return nil
		}
		msg := fmt.Sprintf("nodes registered %d/%d, policy ready %d/%d", reg, len(names), ready, len(names))
		if l.state.Backend == BackendBGP {
			msg += fmt.Sprintf(", BGP sessions %d/%d", est, want)
		}
		l.out.waiting("%s", msg)
		select {
		case <-ctx.Done():
			return fmt.Errorf("hosts not ready after %s (%s; waiting for %s)", timeout, msg, strings.Join(notReady, ", "))
		case <-time.After(150 * time.Millisecond):
		}
	}
}

// restartIfExited restarts host n's calico-node when it has exited, at
// most nodeRestarts times.
func (l *Lab) restartIfExited(n string, daemons map[string]*daemon, restarts map[string]int) error {
	d := daemons[n]
	if d == nil || !d.exited() {
		return nil
	}
	tail := logTail(d.log, 20)
	if restarts[n] == nodeRestarts {
		return fmt.Errorf("calico-node on %s exited %d times; the end of %s:\n%s", n, nodeRestarts+1, d.log, tail)
	}
	restarts[n]++
	l.out.say("  … calico-node on %s exited (%s); restarting it (%d/%d)", n, lastLine(tail), restarts[n], nodeRestarts)
	h, ok := l.state.host(n)
	if !ok {
		return fmt.Errorf("host %s is gone", n)
	}
	nd, err := l.startNode(*h, nil)
	if err != nil {
		return err
	}
	daemons[n] = nd
	return nil
}

// AddHost adds a host running calico-node and waits until it is ready.
func (l *Lab) AddHost(ctx context.Context, name string) (retErr error) {
	if err := CheckHostName(name); err != nil {
		return err
	}
	if _, ok := l.state.host(name); ok {
		return fmt.Errorf("lab %q already has a host %q: %w", l.state.Name, name, ErrInvalid)
	}
	start := time.Now()
	d, err := l.startHost(name)
	defer func() {
		if retErr != nil {
			retErr = errors.Join(retErr, l.removeHost(ctx, name))
			retErr = errors.Join(retErr, l.save())
		}
	}()
	if err != nil {
		return err
	}
	if err := l.save(); err != nil {
		return err
	}
	if err := l.waitHosts(ctx, map[string]*daemon{name: d}, 60*time.Second); err != nil {
		return err
	}
	if err := l.save(); err != nil {
		return err
	}
	l.out.done(start, "host %s ready at %s", name, l.hostAddr(name))
	return nil
}

func (l *Lab) hostAddr(name string) netip.Addr {
	l.mu.Lock()
	defer l.mu.Unlock()
	if h, ok := l.state.host(name); ok {
		return h.Addr
	}
	return netip.Addr{}
}

// DeleteHost removes a host: its workloads first, then calico-node, the
// Node resource and its IPAM affinities, and its namespace.
func (l *Lab) DeleteHost(ctx context.Context, name string) error {
	if _, ok := l.state.host(name); !ok {
		return fmt.Errorf("lab %q has no host %q: %w", l.state.Name, name, ErrInvalid)
	}
	var errs []error
	for _, w := range l.State().Workloads {
		if w.Host == name {
			errs = append(errs, l.DeleteWorkload(ctx, w.ID()))
		}
	}
	errs = append(errs, l.removeHost(ctx, name))
	if c, err := l.client(ctx); err == nil {
		errs = append(errs, forgetNode(ctx, c, name))
	} else {
		errs = append(errs, err)
	}
	errs = append(errs, l.save())
	return errors.Join(errs...)
}

// removeHost stops calico-node, removes the namespace (and with it the
// veth pair) and the host's files, and drops it from the state.
func (l *Lab) removeHost(ctx context.Context, name string) error {
	var errs []error
	l.mu.Lock()
	h, ok := l.state.host(name)
	pid := 0
	if ok {
		pid = h.PID
	}
	l.mu.Unlock()
	if pid > 0 && pidAlive(pid) {
		errs = append(errs, stopProcesses(ctx, []int{pid}, 10*time.Second))
	}
	errs = append(errs, netns.Remove(hostNS(l.state.Name, name)), os.RemoveAll(l.st.hostDir(name)))
	l.mu.Lock()
	l.state.Hosts = slices.DeleteFunc(l.state.Hosts, func(h Host) bool { return h.Name == name })
	l.mu.Unlock()
	return errors.Join(errs...)
}

// lastLine is the last line of s.
func lastLine(s string) string {
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}
