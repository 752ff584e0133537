package ipamplugin

import (
	"context"
	"errors"

	"github.com/containernetworking/cni/pkg/types"

	v3 "github.com/calico-go/calico/api/v3"
	"github.com/calico-go/calico/internal/cni/netconf"
	"github.com/calico-go/calico/internal/datastore"
	"github.com/calico-go/calico/internal/ipam"
	"github.com/calico-go/calico/pkg/client"
)

// Plugin-specific CNI error codes (the CNI spec leaves 100 and up to
// plugins). The well-known codes are used where they fit: 7 for a
// configuration to fix, 11 for a condition that passes (datastore away or
// locked, write conflicts), 50 for STATUS.
const (
	// CodeNoPool: no enabled IP pool can serve the request.
	CodeNoPool uint = 100
	// CodePoolExhausted: the eligible pools have no free address.
	CodePoolExhausted uint = 101
	// CodeAddressInUse: the address asked for with CNI_ARGS IP= is taken.
	CodeAddressInUse uint = 102
	// CodeAddressNotInPool: the address asked for is in no usable pool.
	CodeAddressNotInPool uint = 103
	// CodeCheckFailed: CHECK found the container's addresses missing or
	// different from the previous result.
	CodeCheckFailed uint = 104
)

// Sentinel errors of the plugin itself.
var (
	// ErrNotReady: ClusterInformation "default" says datastoreReady=false
	// (a migration or upgrade holds the datastore).
	ErrNotReady = errors.New(`the Calico datastore is locked: ClusterInformation "default" has datastoreReady=false`)
	// ErrCheck: CHECK found a difference.
	ErrCheck = errors.New("IPAM state differs from the expected state")
)

// Error turns err into the CNI error the runtime sees: code by cause, and
// the full message (which says what to fix).
func Error(err error) *types.Error {
	if err == nil {
		return nil
	}
	var te *types.Error
	if errors.As(err, &te) {
		return te
	}
	return types.NewError(Code(err), err.Error(), "")
}

// Code is the CNI error code for err.
func Code(err error) uint {
	var ve *v3.ValidationError
	switch {
	case errors.Is(err, netconf.ErrInvalid), errors.Is(err, client.ErrConfig), errors.Is(err, client.ErrUnsupportedDatastore),
		errors.As(err, &ve), errors.Is(err, ipam.ErrPoolNotFound), errors.Is(err, ipam.ErrPoolNotAllowed),
		errors.Is(err, ipam.ErrInvalid), errors.Is(err, datastore.ErrUnauthorized):
		return types.ErrInvalidNetworkConfig
	case errors.Is(err, ipam.ErrNoPools), errors.Is(err, ipam.ErrPoolDisabled):
		return CodeNoPool
	case errors.Is(err, ipam.ErrNoAddresses):
		return CodePoolExhausted
	case errors.Is(err, ipam.ErrAlreadyAssigned), errors.Is(err, ipam.ErrAffinityMismatch):
		return CodeAddressInUse
	case errors.Is(err, ipam.ErrNotInPool):
		return CodeAddressNotInPool
	case errors.Is(err, ErrCheck):
		return CodeCheckFailed
	case errors.Is(err, ErrNotReady), errors.Is(err, datastore.ErrUnavailable), errors.Is(err, datastore.ErrConflict),
		errors.Is(err, ipam.ErrOutcomeUnknown), errors.Is(err, ErrLockTimeout), errors.Is(err, context.DeadlineExceeded):
		return types.ErrTryAgainLater
	}
	return types.ErrInternal
}
