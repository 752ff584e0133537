package ipamplugin

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestLockHost: holders exclude each other, a waiter gives up with its
// context, and an unusable path is skipped (the lock is best effort).
func TestLockHost(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	path := filepath.Join(t.TempDir(), "run", "calico", "ipam.lock")
	var inside, maxInside atomic.Int32
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			unlock, err := lockHost(context.Background(), path, log)
			if err != nil {
				t.Error(err)
				return
			}
			n := inside.Add(1)
			for {
				m := maxInside.Load()
				if n <= m || maxInside.CompareAndSwap(m, n) {
					break
				}
			}
			time.Sleep(5 * time.Millisecond)
			inside.Add(-1)
			unlock()
		})
	}
	wg.Wait()
	if maxInside.Load() != 1 {
		t.Errorf("%d holders at once", maxInside.Load())
	}

	unlock, err := lockHost(context.Background(), path, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := lockHost(ctx, path, log); !errors.Is(err, ErrLockTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("second holder: %v", err)
	}
	unlock()
	if unlock2, err := lockHost(context.Background(), path, log); err != nil {
		t.Errorf("after release: %v", err)
	} else {
		unlock2()
	}

	// A path under a file cannot be created: no lock, no error.
	bad := filepath.Join(path, "x", "ipam.lock")
	if unlock, err := lockHost(context.Background(), bad, log); err != nil {
		t.Errorf("unusable path: %v", err)
	} else {
		unlock()
	}
}

func TestYoung(t *testing.T) {
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		ts    string
		grace time.Duration
		want  bool
	}{
		{now.Add(-10 * time.Second).Format(time.RFC3339Nano), time.Minute, true},
		{now.Add(-2 * time.Minute).Format(time.RFC3339Nano), time.Minute, false},
		{now.Add(-10 * time.Second).String(), time.Minute, true}, // Calico's form
		{"", time.Minute, false},
		{"yesterday", time.Minute, false},
		{now.Format(time.RFC3339Nano), -1, false},
	} {
		if got := young(tc.ts, now, tc.grace); got != tc.want {
			t.Errorf("young(%q, %s) = %v", tc.ts, tc.grace, got)
		}
	}
}
