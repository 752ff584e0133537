package ipam

import (
	"errors"

	"github.com/calico-go/calico/internal/datastore"
)

// Sentinel errors, tested with errors.Is. Store errors use the datastore
// sentinels: datastore.ErrConflict for a failed comparison and
// datastore.ErrUnavailable when the store cannot be reached.
var (
	// ErrNoAddresses: the eligible pools have no free address left (or this
	// host may not claim or borrow one). Nothing was allocated.
	ErrNoAddresses = errors.New("no free addresses in the eligible IP pools")
	// ErrNoPools: no enabled pool of the requested family allows this use on
	// this node (and namespace).
	ErrNoPools = errors.New("no IP pool is usable for this request")
	// ErrPoolNotFound: a requested pool (by name or CIDR) does not exist.
	ErrPoolNotFound = errors.New("IP pool not found")
	// ErrPoolDisabled: a requested pool is disabled (or being deleted).
	ErrPoolDisabled = errors.New("IP pool is disabled")
	// ErrPoolNotAllowed: a requested pool does not allow this use, node or
	// namespace, or has the wrong IP family.
	ErrPoolNotAllowed = errors.New("IP pool is not allowed for this request")
	// ErrAlreadyAssigned: AssignIP of an address that is in use.
	ErrAlreadyAssigned = errors.New("address is already assigned")
	// ErrNotAssigned: the address is not allocated.
	ErrNotAssigned = errors.New("address is not assigned")
	// ErrNotInPool: the address is not inside any IP pool (or its pool does
	// not allow the intended use).
	ErrNotInPool = errors.New("address is not in a usable IP pool")
	// ErrAffinityMismatch: strictAffinity forbids using another host's block.
	ErrAffinityMismatch = errors.New("block belongs to another host and strictAffinity is on")
	// ErrBadSequenceNumber: a release named a sequence number that no longer
	// matches the allocation: the address was released and reused since.
	// It wraps datastore.ErrConflict.
	ErrBadSequenceNumber = &seqError{}
	// ErrHandleMismatch: a release named a handle that does not own the
	// address. It wraps datastore.ErrConflict.
	ErrHandleMismatch = &handleError{}
	// ErrTooManyRetries: the write kept conflicting; it wraps
	// datastore.ErrConflict.
	ErrTooManyRetries = &retryError{}
	// ErrOutcomeUnknown: the store failed mid-write and could not be asked
	// afterwards whether the write took effect. The handle may own addresses:
	// release it (ReleaseByHandle) once the store is back.
	ErrOutcomeUnknown = errors.New("the store failed during a write and the outcome is unknown")
	// ErrInvalid: a malformed argument (empty or bad handle, bad address).
	ErrInvalid = errors.New("invalid argument")
)

type seqError struct{}

func (*seqError) Error() string {
	return "sequence number does not match the allocation (released and reused since)"
}
func (*seqError) Unwrap() error { return datastore.ErrConflict }

type handleError struct{}

func (*handleError) Error() string { return "address belongs to a different handle" }
func (*handleError) Unwrap() error { return datastore.ErrConflict }

type retryError struct{}

func (*retryError) Error() string { return "too many conflicting writes" }
func (*retryError) Unwrap() error { return datastore.ErrConflict }
