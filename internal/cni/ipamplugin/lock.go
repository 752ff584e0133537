package ipamplugin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// ErrLockTimeout: the host-wide IPAM lock was not obtained in time.
var ErrLockTimeout = errors.New("timed out waiting for the host-wide IPAM lock")

// Polling bounds for the lock: flock cannot be interrupted, so waiters poll
// with a non-blocking flock and a short, growing pause.
const (
	lockPollMin = time.Millisecond
	lockPollMax = 10 * time.Millisecond
)

// lockHost takes an exclusive flock on path, creating the file (and its
// directory) when missing, and returns the function that releases it. The
// lock only serialises one host's calls to save datastore conflicts; IPAM is
// correct without it, so a lock file that cannot be opened is logged and
// skipped (as Calico does). Waiting ends with ctx (an error wrapping
// ErrLockTimeout).
func lockHost(ctx context.Context, path string, log *slog.Logger) (unlock func(), err error) {
	noop := func() {}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		log.Warn("cannot create the IPAM lock directory; continuing without the host-wide lock", "path", path, "error", err)
		return noop, nil
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		log.Warn("cannot open the IPAM lock file; continuing without the host-wide lock", "path", path, "error", err)
		return noop, nil
	}
	start := time.Now()
	pause := lockPollMin
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			_ = f.Close()
			log.Warn("cannot lock the IPAM lock file; continuing without the host-wide lock", "path", path, "error", err)
			return noop, nil
		}
		select {
		case <-ctx.Done():
			_ = f.Close()
			return nil, fmt.Errorf("%w %s after %s (another calico-ipam on this host holds it): %w",
				ErrLockTimeout, path, time.Since(start).Round(time.Millisecond), context.Cause(ctx))
		case <-time.After(pause):
		}
		pause = min(2*pause, lockPollMax)
	}
	log.Debug("acquired the host-wide IPAM lock", "path", path, "waited", time.Since(start))
	return func() {
		// Closing the file releases the flock.
		if err := f.Close(); err != nil {
			log.Warn("release the host-wide IPAM lock", "path", path, "error", err)
		}
	}, nil
}
