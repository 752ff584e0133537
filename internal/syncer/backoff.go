package syncer

import (
	"context"
	"math/rand/v2"
	"time"
)

// backoff is an exponential delay with jitter between min and max.
type backoff struct {
	min, max time.Duration
	cur      time.Duration
}

// next returns the delay the next wait will use (without jitter).
func (b *backoff) next() time.Duration {
	if b.cur == 0 {
		return b.min
	}
	return b.cur
}

// wait sleeps for the current delay (±20%) or until ctx is done, then
// doubles the delay up to max.
func (b *backoff) wait(ctx context.Context) {
	d := b.next()
	jitter := time.Duration(rand.Int64N(int64(d)/5+1)) - d/10
	t := time.NewTimer(d + jitter)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
	b.cur = min(2*d, b.max)
}

// reset goes back to the minimum delay.
func (b *backoff) reset() { b.cur = 0 }
