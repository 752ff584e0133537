package ipamplugin_test

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
	"testing"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"

	"github.com/calico-go/calico/internal/cni/ipamplugin"
	"github.com/calico-go/calico/internal/cni/netconf"
	"github.com/calico-go/calico/internal/datastore"
	"github.com/calico-go/calico/internal/ipam"
)

func TestErrorCodes(t *testing.T) {
	for _, tc := range []struct {
		err  error
		code uint
	}{
		{netconf.ErrInvalid, types.ErrInvalidNetworkConfig},
		{parseErr(`{"ipam":{"assign_ipv4":false}}`), types.ErrInvalidNetworkConfig},
		{parseErr(`{"datastore_type":"kubernetes"}`), types.ErrInvalidNetworkConfig},
		{parseErr(`[1]`), types.ErrInvalidNetworkConfig},
		{fmt.Errorf("x: %w", ipam.ErrPoolNotFound), types.ErrInvalidNetworkConfig},
		{ipam.ErrPoolNotAllowed, types.ErrInvalidNetworkConfig},
		{datastore.ErrUnauthorized, types.ErrInvalidNetworkConfig},
		{ipam.ErrNoPools, ipamplugin.CodeNoPool},
		{ipam.ErrPoolDisabled, ipamplugin.CodeNoPool},
		{fmt.Errorf("assign: %w", ipam.ErrNoAddresses), ipamplugin.CodePoolExhausted},
		{ipam.ErrAlreadyAssigned, ipamplugin.CodeAddressInUse},
		{ipam.ErrNotInPool, ipamplugin.CodeAddressNotInPool},
		{ipamplugin.ErrCheck, ipamplugin.CodeCheckFailed},
		{ipamplugin.ErrNotReady, types.ErrTryAgainLater},
		{&datastore.Error{Op: "get", Err: datastore.ErrUnavailable}, types.ErrTryAgainLater},
		{ipam.ErrTooManyRetries, types.ErrTryAgainLater},
		{ipam.ErrOutcomeUnknown, types.ErrTryAgainLater},
		{ipamplugin.ErrLockTimeout, types.ErrTryAgainLater},
		{errors.New("boom"), types.ErrInternal},
	} {
		if got := ipamplugin.Code(tc.err); got != tc.code {
			t.Errorf("Code(%v) = %d, want %d", tc.err, got, tc.code)
		}
		e := ipamplugin.Error(tc.err)
		if e.Code != tc.code || e.Msg != tc.err.Error() {
			t.Errorf("Error(%v) = %+v", tc.err, e)
		}
	}
	te := types.NewError(types.ErrInvalidNetNS, "kept", "")
	if got := ipamplugin.Error(fmt.Errorf("wrapped: %w", te)); got != te {
		t.Errorf("a CNI error is passed through: %+v", got)
	}
	if ipamplugin.Error(nil) != nil {
		t.Error("Error(nil) != nil")
	}
}

// holdLock takes the flock on path as another calico-ipam would, and
// returns its release.
func holdLock(t *testing.T, path string) func() {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	release := func() { once.Do(func() { _ = f.Close() }) }
	t.Cleanup(release)
	return release
}

func cmdArgs(conf []byte, containerID, args string) *skel.CmdArgs {
	return &skel.CmdArgs{ContainerID: containerID, Netns: "/var/run/netns/calico-ipam-test-none", IfName: "eth0",
		Args: args, Path: "/opt/cni/bin", StdinData: conf}
}

// parseErr is the error of a configuration calico-ipam refuses (see
// netconf.TestParseIPAMErrors for what it says).
func parseErr(conf string) error {
	_, err := netconf.ParseIPAM([]byte(conf))
	if err == nil {
		panic("ParseIPAM accepted " + conf)
	}
	return err
}
