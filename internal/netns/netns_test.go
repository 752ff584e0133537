package netns_test

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/calico-go/calico/internal/netns"
	"github.com/calico-go/calico/internal/testutil/netnstest"
)

func TestOpenErrors(t *testing.T) {
	_, err := netns.Open(filepath.Join(t.TempDir(), "missing"))
	if !errors.Is(err, netns.ErrNotExist) || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing path: %v", err)
	}
	file := filepath.Join(t.TempDir(), "plain")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := netns.Open(file); !errors.Is(err, netns.ErrNotNetNS) {
		t.Errorf("plain file: %v", err)
	}
	if _, err := netns.Create("a/b"); err == nil {
		t.Error("Create accepted a name with a slash")
	}
}

// TestCreateDoRemove creates a namespace, checks that Do runs inside it
// (it has only loopback, and a listener made there stays there), and that
// the caller's namespace is untouched afterwards.
func TestCreateDoRemove(t *testing.T) {
	netnstest.RequireRoot(t)
	name := fmt.Sprintf("netns-test-%d", os.Getpid())
	ns, err := netns.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		ns.Close()
		if err := netns.Remove(name); err != nil {
			t.Error(err)
		}
		if err := netns.Remove(name); err != nil {
			t.Errorf("second Remove: %v", err)
		}
		if _, err := os.Stat(filepath.Join(netns.Dir, name)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("namespace file still there: %v", err)
		}
	}()
	if _, err := netns.Create(name); err == nil {
		t.Error("Create of an existing name succeeded")
	}
	outside, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	var inside []net.Interface
	if err := ns.Do(func() error {
		var err error
		inside, err = net.Interfaces()
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if len(inside) != 1 || inside[0].Name != "lo" {
		t.Errorf("interfaces inside a new namespace: %v", inside)
	}
	again, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	if len(again) != len(outside) {
		t.Errorf("caller's namespace changed: %d interfaces, had %d", len(again), len(outside))
	}
	wantErr := errors.New("from fn")
	if err := ns.Do(func() error { return wantErr }); !errors.Is(err, wantErr) {
		t.Errorf("Do returned %v, want fn's error", err)
	}
	reopened, err := netns.Open(ns.Path())
	if err != nil {
		t.Fatal(err)
	}
	reopened.Close()
}
