package lab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/calico-go/calico/internal/netns"
)

// aLongTimeAgo is a deadline in the past: setting it wakes a waiter.
var aLongTimeAgo = time.Unix(1, 0)

// sockets makes sockets of one type inside one network namespace. A
// socket belongs to the namespace it was created in, so only its creation
// has to happen there: one goroutine stays in the namespace (on its own OS
// thread) and keeps a small stock of fresh sockets, so that probes take
// them without waiting for that thread, and the connects and the waits
// happen on Go's poller: thousands of probes can be in flight without an
// OS thread each.
type sockets struct {
	ns    *netns.NS
	typ   int
	stock chan sockRes
	stop  chan struct{}
	done  chan struct{}
}

type sockRes struct {
	fd  int
	err error
}

// socketStock is how many unused sockets each namespace keeps ready.
const socketStock = 32

// openSockets opens the namespace at path and starts making sockets for
// proto there.
func openSockets(path, proto string) (*sockets, error) {
	ns, err := netns.Open(path)
	if err != nil {
		return nil, err
	}
	typ := unix.SOCK_STREAM
	if proto == UDP {
		typ = unix.SOCK_DGRAM
	}
	s := &sockets{ns: ns, typ: typ, stock: make(chan sockRes, socketStock), stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		err := ns.Do(func() error {
			for {
				fd, err := unix.Socket(unix.AF_INET, typ|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
				select {
				case s.stock <- sockRes{fd, err}:
				case <-s.stop:
					if err == nil {
						unix.Close(fd)
					}
					return nil
				}
			}
		})
		if err != nil {
			s.stock <- sockRes{-1, err}
		}
	}()
	return s, nil
}

// Close stops the socket maker, closes the stock and the namespace.
func (s *sockets) Close() error {
	close(s.stop)
	<-s.done
	for {
		select {
		case r := <-s.stock:
			if r.err == nil {
				unix.Close(r.fd)
			}
		default:
			return s.ns.Close()
		}
	}
}

func (s *sockets) socket() (int, error) {
	r := <-s.stock
	if r.err != nil {
		s.stock <- r // every later caller sees the error too
		return -1, fmt.Errorf("socket in %s: %w", s.ns.Path(), r.err)
	}
	return r.fd, nil
}

// dialIn connects to dst with a socket from src.
func dialIn(ctx context.Context, src *sockets, dst netip.AddrPort) (net.Conn, error) {
	if !dst.Addr().Is4() {
		return nil, fmt.Errorf("dial %s: only IPv4 is probed", dst)
	}
	fd, err := src.socket()
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), "probe")
	defer f.Close() // FileConn below duplicates the descriptor
	err = unix.Connect(fd, &unix.SockaddrInet4{Port: int(dst.Port()), Addr: dst.Addr().As4()})
	if errors.Is(err, unix.EINPROGRESS) {
		err = awaitConnect(ctx, f)
	}
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", dst, err)
	}
	return net.FileConn(f)
}

// awaitConnect waits until a non-blocking connect finishes, as the net
// package does: wait for writability, then SO_ERROR, and getpeername to
// tell a finished connect from an early wake-up.
func awaitConnect(ctx context.Context, f *os.File) error {
	if dl, ok := ctx.Deadline(); ok {
		if err := f.SetWriteDeadline(dl); err != nil {
			return err
		}
	}
	stop := context.AfterFunc(ctx, func() { _ = f.SetWriteDeadline(aLongTimeAgo) })
	defer stop()
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var connErr error
	werr := rc.Write(func(fd uintptr) bool {
		n, err := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_ERROR)
		if err != nil {
			connErr = err
			return true
		}
		switch e := unix.Errno(n); e {
		case 0:
			if _, err := unix.Getpeername(int(fd)); err == nil {
				return true
			}
			return false
		case unix.EINPROGRESS, unix.EALREADY, unix.EINTR:
			return false
		default:
			connErr = e
			return true
		}
	})
	if werr != nil {
		// The deadline passed, but on a busy machine this goroutine may
		// have run late: a connect that did finish counts.
		if connected(rc) {
			return nil
		}
		return werr
	}
	return connErr
}

// connected reports whether the socket's connect has finished.
func connected(rc syscall.RawConn) bool {
	ok := false
	_ = rc.Control(func(fd uintptr) {
		n, err := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_ERROR)
		if err == nil && n == 0 {
			_, err = unix.Getpeername(int(fd))
			ok = err == nil
		}
	})
	return ok
}
