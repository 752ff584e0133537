package lab

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// progress prints what a long command is doing: one line per finished
// step with its duration, and on a terminal a line that is rewritten while
// the command waits.
type progress struct {
	mu      sync.Mutex
	w       io.Writer
	tty     bool
	pending bool // a rewritable line is on screen
	last    string
	lastAt  time.Time
}

func newProgress(w io.Writer) *progress {
	tty := false
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			tty = true
		}
	}
	return &progress{w: w, tty: tty}
}

// clear removes the rewritable line.
func (p *progress) clear() {
	if p.pending {
		fmt.Fprint(p.w, "\r\033[K")
		p.pending = false
	}
}

// done prints a finished step that started at start.
func (p *progress) done(start time.Time, format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clear()
	fmt.Fprintf(p.w, "  ✓ %s (%s)\n", fmt.Sprintf(format, args...), time.Since(start).Round(10*time.Millisecond))
}

// say prints a line.
func (p *progress) say(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clear()
	fmt.Fprintf(p.w, format+"\n", args...)
}

// waiting shows what the command waits for: rewritten in place on a
// terminal; otherwise printed when it changes, at most every two seconds.
func (p *progress) waiting(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := fmt.Sprintf(format, args...)
	if s == p.last {
		return
	}
	if p.tty {
		p.last = s
		fmt.Fprintf(p.w, "\r\033[K  … %s", s)
		p.pending = true
		return
	}
	if time.Since(p.lastAt) < 2*time.Second {
		return
	}
	p.last, p.lastAt = s, time.Now()
	fmt.Fprintf(p.w, "  … %s\n", s)
}
