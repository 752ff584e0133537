package lab

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/calico-go/calico/internal/netns"
)

// connectivityPairs picks the probes that show a fresh lab works without
// probing every pair: each workload reaches the next one in a ring ordered
// by host (so most probes cross hosts, and every server answers once),
// and one workload of each host reaches one of every other host (so every
// host's routes to every other host are used).
func connectivityPairs(ws []Workload) [][2]int {
	idx := make([]int, len(ws))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int { return strings.Compare(ws[a].Host, ws[b].Host) })
	seen := map[[2]int]bool{}
	var out [][2]int
	add := func(a, b int) {
		if a != b && !seen[[2]int{a, b}] {
			seen[[2]int{a, b}] = true
			out = append(out, [2]int{a, b})
		}
	}
	for k := range idx {
		add(idx[k], idx[(k+1)%len(idx)])
	}
	first := map[string]int{}
	var hosts []string
	for _, i := range idx {
		if _, ok := first[ws[i].Host]; !ok {
			first[ws[i].Host] = i
			hosts = append(hosts, ws[i].Host)
		}
	}
	for _, a := range hosts {
		for _, b := range hosts {
			add(first[a], first[b])
		}
	}
	return out
}

// checkConnectivity waits until every connectivity pair connects on TCP
// DefaultPort: routes are in place, every endpoint is programmed and every
// echo server listens.
func (l *Lab) checkConnectivity(ctx context.Context, timeout time.Duration) error {
	ws := l.State().Workloads
	if len(ws) < 2 {
		return nil
	}
	t := time.Now()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	pairs := connectivityPairs(ws)
	spaces := map[int]*sockets{}
	for _, p := range pairs {
		if spaces[p[0]] != nil {
			continue
		}
		w := ws[p[0]]
		ns, err := openSockets(filepath.Join(netns.Dir, workloadNS(l.state.Name, w.Namespace, w.Name)), TCP)
		if err != nil {
			return err
		}
		defer ns.Close()
		spaces[p[0]] = ns
	}
	var (
		mu      sync.Mutex
		ok      int
		failing = map[[2]int]bool{}
		wg      sync.WaitGroup
	)
	sem := make(chan struct{}, 64)
	for _, p := range pairs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dst := netip.AddrPortFrom(ws[p[1]].Addr, DefaultPort)
			for {
				sem <- struct{}{}
				reached := probe(ctx, spaces[p[0]], TCP, dst, ws[p[1]].ID(), time.Second)
				<-sem
				mu.Lock()
				if reached {
					ok++
					delete(failing, p)
				} else {
					failing[p] = true
				}
				l.out.waiting("connectivity %d/%d pairs", ok, len(pairs))
				mu.Unlock()
				if reached || ctx.Err() != nil {
					return
				}
				select {
				case <-ctx.Done():
				case <-time.After(200 * time.Millisecond):
				}
			}
		}()
	}
	wg.Wait()
	if len(failing) > 0 {
		var bad []string
		for p := range failing {
			bad = append(bad, fmt.Sprintf("%s (%s) -> %s (%s)", ws[p[0]].ID(), ws[p[0]].Host, ws[p[1]].ID(), ws[p[1]].Host))
		}
		slices.Sort(bad)
		if len(bad) > 5 {
			bad = append(bad[:5], fmt.Sprintf("and %d more", len(bad)-5))
		}
		return fmt.Errorf("workloads cannot reach each other after %s: %s", timeout, strings.Join(bad, ", "))
	}
	l.out.done(t, "connectivity: %d probes across all %d hosts answered", len(pairs), len(l.state.Hosts))
	return nil
}

// applyExample applies the example's steps in order and waits until the
// matrix shows the last step's expectation.
func (l *Lab) applyExample(ctx context.Context, ex *Example, timeout time.Duration) (*Matrix, error) {
	t := time.Now()
	var files []string
	for _, s := range ex.Steps {
		if err := l.Apply(ctx, s); err != nil {
			return nil, err
		}
		files = append(files, filepath.Base(s.File))
	}
	if len(ex.Steps) == 0 {
		return l.Matrix(ctx, MatrixOptions{})
	}
	last := ex.Steps[len(ex.Steps)-1]
	m, diff, err := l.WaitMatrix(ctx, MatrixOptions{}, last.Allowed, false, timeout)
	if err != nil {
		return nil, err
	}
	if len(diff) > 0 {
		return nil, fmt.Errorf("example %s: the matrix does not match %s after %s:\n  %s", ex.Name, last.File, timeout, strings.Join(diff, "\n  "))
	}
	l.out.done(t, "example %s: applied %s with calicoctl; the policy is in force", ex.Name, strings.Join(files, ", "))
	return m, nil
}

// WaitMatrix probes the matrix until it matches the expectation (see
// Matrix.Diff) or timeout passes, and returns the last matrix and its
// differences.
func (l *Lab) WaitMatrix(ctx context.Context, opts MatrixOptions, allowed []Pair, all bool, timeout time.Duration) (*Matrix, []string, error) {
	deadline := time.Now().Add(timeout)
	for {
		m, err := l.Matrix(ctx, opts)
		if err != nil {
			return nil, nil, err
		}
		diff := m.Diff(allowed, all)
		if len(diff) == 0 || time.Now().After(deadline) {
			return m, diff, nil
		}
		l.out.waiting("policy not in force yet: %d pairs differ", len(diff))
		select {
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case <-time.After(300 * time.Millisecond):
		}
	}
}
