package lab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/calico-go/calico/internal/netns"
)

// Down removes a lab: every process it started, every namespace (and with
// them every link and route) and its directory. It works from whatever is
// left, also after a crashed `up`: processes are found by their marker,
// namespaces by their name.
func Down(ctx context.Context, env Env, name string) error {
	env, err := env.withDefaults()
	if err != nil {
		return err
	}
	if err := CheckLabName(name); err != nil {
		return err
	}
	if err := requireRoot(); err != nil {
		return err
	}
	out := newProgress(env.Out)
	dir := filepath.Join(env.RunDir, name)
	_, dirErr := os.Stat(dir)
	pids, spaces := labProcesses(name), labSpaces(name)
	if dirErr != nil && len(pids) == 0 && len(spaces) == 0 {
		return fmt.Errorf("lab %q: %w (nothing in %s, no namespace or process of it)", name, ErrNoLab, dir)
	}
	t := time.Now()
	st := store{dir: dir}
	var state *State
	if dirErr == nil {
		if unlock := tryLock(st, 5*time.Second); unlock != nil {
			defer unlock()
		} else {
			out.say("  … another calico-lab command holds lab %q; removing it anyway", name)
		}
		state, _ = st.load(name)
	}
	var l *Lab
	if state != nil && state.External {
		l = &Lab{env: env, st: st, state: state, out: out}
		defer l.Close()
	}
	if err := teardown(ctx, name, dir, l); err != nil {
		return err
	}
	out.done(t, "lab %q removed: %d processes, %d namespaces and %s", name, len(pids), len(spaces), dir)
	return nil
}

// tryLock takes the lab's lock, giving up after d.
func tryLock(st store, d time.Duration) func() {
	f, err := os.OpenFile(filepath.Join(st.dir, "lock"), os.O_RDWR, 0)
	if err != nil {
		return nil
	}
	deadline := time.Now().Add(d)
	for {
		if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil {
			return func() { f.Close() }
		}
		if time.Now().After(deadline) {
			f.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// teardown ends the lab's processes, removes its namespaces and its
// directory, and checks that nothing is left. With an external datastore
// (l set) the lab's workloads and nodes are first removed from it.
func teardown(ctx context.Context, name, dir string, l *Lab) error {
	var errs []error
	if l != nil {
		for _, w := range l.State().Workloads {
			if w.ContainerID != "" {
				if _, err := l.cni(ctx, "DEL", w); err != nil {
					errs = append(errs, err)
				}
			}
		}
		if c, err := l.client(ctx); err == nil {
			for _, h := range l.State().Hosts {
				errs = append(errs, forgetNode(ctx, c, h.Name))
			}
		}
	}
	pids := labProcesses(name)
	if len(pids) > 0 {
		errs = append(errs, stopProcesses(ctx, pids, 10*time.Second))
	}
	for _, ns := range labSpaces(name) {
		errs = append(errs, netns.Remove(ns))
	}
	errs = append(errs, os.RemoveAll(dir))
	_ = os.Remove(filepath.Dir(dir)) // the run directory, when no other lab is left
	if left := labProcesses(name); len(left) > 0 {
		errs = append(errs, fmt.Errorf("processes %v are still running", left))
	}
	if left := labSpaces(name); len(left) > 0 {
		errs = append(errs, fmt.Errorf("namespaces %s are still there", strings.Join(left, ", ")))
	}
	return errors.Join(errs...)
}
