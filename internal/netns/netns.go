// Package netns opens, enters and creates Linux network namespaces with the
// OS-thread discipline Go needs.
//
// A network namespace belongs to an OS thread, not to a goroutine. Do runs a
// function on a fresh goroutine locked to its thread, switches that thread
// into the namespace, and switches it back afterwards; if switching back
// fails the thread stays locked and dies with the goroutine, so no other
// goroutine ever runs in the wrong namespace. Code that only needs netlink
// should not switch at all: open the namespace and use its file descriptor
// (netlink.NewHandleAt) instead.
//
// Named namespaces live where iproute2 keeps them (Dir, /run/netns), so
// `ip netns exec NAME ...` works on the namespaces Create makes.
package netns

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"

	"golang.org/x/sys/unix"
)

// Dir is where named network namespaces are bind-mounted (as iproute2 does).
const Dir = "/run/netns"

// ErrNotExist: the namespace path does not exist. It wraps fs.ErrNotExist,
// so errors.Is(err, fs.ErrNotExist) holds too.
var ErrNotExist = fmt.Errorf("network namespace does not exist: %w", fs.ErrNotExist)

// ErrNotNetNS: the path exists but is not a network namespace.
var ErrNotNetNS = errors.New("not a network namespace")

// NS is an open network namespace. Its file descriptor keeps the namespace
// alive until Close.
type NS struct {
	f    *os.File
	path string
}

// Open opens the network namespace at path (/run/netns/NAME,
// /proc/PID/ns/net, ...).
func Open(path string) (*NS, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("open %s: %w", path, ErrNotExist)
		}
		return nil, fmt.Errorf("open network namespace %s: %w", path, err)
	}
	var st unix.Statfs_t
	if err := unix.Fstatfs(int(f.Fd()), &st); err != nil {
		f.Close()
		return nil, fmt.Errorf("statfs %s: %w", path, err)
	}
	if st.Type != unix.NSFS_MAGIC && st.Type != unix.PROC_SUPER_MAGIC {
		f.Close()
		return nil, fmt.Errorf("%s: %w", path, ErrNotNetNS)
	}
	return &NS{f: f, path: path}, nil
}

// Current opens the network namespace of the calling OS thread. Call it
// from a goroutine that is not inside Do only when the whole process shares
// one namespace (a CNI plugin, a daemon).
func Current() (*NS, error) {
	return Open(fmt.Sprintf("/proc/%d/task/%d/ns/net", os.Getpid(), unix.Gettid()))
}

// Path is the path the namespace was opened from.
func (n *NS) Path() string { return n.path }

// Fd is the namespace's file descriptor, valid until Close.
func (n *NS) Fd() int { return int(n.f.Fd()) }

// Close releases the file descriptor.
func (n *NS) Close() error { return n.f.Close() }

// Do runs fn on a new goroutine whose OS thread is inside the namespace and
// returns fn's error. Anything fn starts (a child process, a socket) is
// created in the namespace; sockets stay there after Do returns. fn must
// not start goroutines that expect to inherit the namespace.
func (n *NS) Do(fn func() error) error {
	errc := make(chan error, 1)
	go func() { errc <- n.do(fn) }()
	return <-errc
}

func (n *NS) do(fn func() error) error {
	runtime.LockOSThread()
	orig, err := os.Open(fmt.Sprintf("/proc/%d/task/%d/ns/net", os.Getpid(), unix.Gettid()))
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("open current network namespace: %w", err)
	}
	defer orig.Close()
	if err := unix.Setns(n.Fd(), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("enter network namespace %s: %w", n.path, err)
	}
	ferr := fn()
	if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
		// Leave the thread locked: it ends with this goroutine.
		return errors.Join(ferr, fmt.Errorf("return from network namespace %s: %w", n.path, err))
	}
	runtime.UnlockOSThread()
	return ferr
}

// Create makes a new, empty network namespace named name under Dir and
// returns it open. It fails if the name is taken.
func Create(name string) (_ *NS, retErr error) {
	if name == "" || filepath.Base(name) != name {
		return nil, fmt.Errorf("network namespace name %q: must be a plain file name", name)
	}
	if err := prepareDir(); err != nil {
		return nil, err
	}
	path := filepath.Join(Dir, name)
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if err != nil {
		return nil, fmt.Errorf("create network namespace %s: %w", name, err)
	}
	f.Close()
	defer func() {
		if retErr != nil {
			_ = os.Remove(path)
		}
	}()
	errc := make(chan error, 1)
	go func() { errc <- bindNew(path) }()
	if err := <-errc; err != nil {
		return nil, fmt.Errorf("create network namespace %s: %w", name, err)
	}
	return Open(path)
}

// prepareDir makes Dir a shared mount point, as iproute2 does, so that the
// namespaces mounted on its files are visible to every mount namespace and
// `ip netns` and this package see the same mounts.
func prepareDir() error {
	if err := os.MkdirAll(Dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", Dir, err)
	}
	for made := false; ; made = true {
		err := unix.Mount("", Dir, "none", unix.MS_SHARED|unix.MS_REC, "")
		if err == nil {
			return nil
		}
		if !errors.Is(err, unix.EINVAL) || made {
			return fmt.Errorf("make %s a shared mount: %w", Dir, err)
		}
		// Not a mount point yet: bind it onto itself, then retry.
		if err := unix.Mount(Dir, Dir, "none", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("bind mount %s: %w", Dir, err)
		}
	}
}

// bindNew unshares a new network namespace on a locked thread and
// bind-mounts it onto path. The thread is never returned to the scheduler:
// it ends with the calling goroutine.
func bindNew(path string) error {
	runtime.LockOSThread()
	if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("unshare: %w", err)
	}
	self := fmt.Sprintf("/proc/%d/task/%d/ns/net", os.Getpid(), unix.Gettid())
	if err := unix.Mount(self, path, "none", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind mount: %w", err)
	}
	return nil
}

// Remove unmounts and deletes the named namespace under Dir. A namespace
// that is already gone is not an error. Processes or open descriptors may
// keep the namespace itself alive after the name is removed.
func Remove(name string) error {
	path := filepath.Join(Dir, name)
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmount network namespace %s: %w", name, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove network namespace %s: %w", name, err)
	}
	return nil
}
