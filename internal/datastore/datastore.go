// Package datastore defines the storage contract every backend (etcd v3, the
// Kubernetes API, the in-memory fake) fulfils: typed projectcalico.org/v3
// resources with a resourceVersion, optimistic concurrency, list and watch
// with resume, and a small set of sentinel errors checked with errors.Is.
package datastore

import (
	"context"
	"errors"
	"fmt"

	v3 "github.com/calico-go/calico/api/v3"
)

// Sentinel errors. Backends wrap them in *Error so that the message names the
// resource and the datastore; callers test them with errors.Is.
var (
	// ErrNotFound: the resource does not exist.
	ErrNotFound = errors.New("resource does not exist")
	// ErrAlreadyExists: Create of a resource that exists.
	ErrAlreadyExists = errors.New("resource already exists")
	// ErrConflict: the resourceVersion given does not match the stored one.
	ErrConflict = errors.New("update conflict: the resource was modified since it was read")
	// ErrUnavailable: the datastore cannot be reached (or timed out).
	ErrUnavailable = errors.New("datastore unavailable")
	// ErrUnauthorized: the datastore refused our credentials or our user may
	// not touch the key.
	ErrUnauthorized = errors.New("datastore refused access")
	// ErrCompacted: a watch was asked to resume from a revision the
	// datastore no longer holds; the caller must list again.
	ErrCompacted = errors.New("requested revision has been compacted")
	// ErrUnsupported: the backend does not implement the operation.
	ErrUnsupported = errors.New("operation not supported by this datastore")
)

// Key names one resource.
type Key struct {
	Kind      string // v3 kind, e.g. "IPPool"
	Namespace string // empty for cluster-scoped kinds
	Name      string
}

func (k Key) String() string {
	if k.Namespace != "" {
		return fmt.Sprintf("%s(%s/%s)", k.Kind, k.Namespace, k.Name)
	}
	return fmt.Sprintf("%s(%s)", k.Kind, k.Name)
}

// KeyOf returns the Key of a resource.
func KeyOf(r v3.Resource) Key {
	k := Key{Namespace: r.GetNamespace(), Name: r.GetName()}
	if ki, ok := v3.KindOf(r); ok {
		k.Kind = ki.Kind
	}
	return k
}

// Error is what backends return: the operation, the resource (if any) and a
// sentinel from this package as the cause.
type Error struct {
	Op     string // "create", "update", "delete", "get", "list", "watch", "connect"
	Key    Key    // zero for list/watch/connect of a whole kind
	Err    error  // one of the sentinels above, possibly wrapping a driver error
	Detail string // optional extra words (e.g. the endpoint that was unreachable)
}

func (e *Error) Error() string {
	msg := e.Err.Error()
	if e.Key.Name != "" {
		msg = fmt.Sprintf("%s: %s", msg, e.Key)
	} else if e.Key.Kind != "" {
		msg = fmt.Sprintf("%s: %s", msg, e.Key.Kind)
	}
	if e.Detail != "" {
		msg += " (" + e.Detail + ")"
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

// EventType says what happened to a resource in a watch.
type EventType int

const (
	Added EventType = iota + 1
	Modified
	Deleted
	// WatchError carries Err; the watch ends after it. Err wraps ErrCompacted
	// when the caller must re-list.
	WatchError
)

func (t EventType) String() string {
	switch t {
	case Added:
		return "Added"
	case Modified:
		return "Modified"
	case Deleted:
		return "Deleted"
	case WatchError:
		return "Error"
	}
	return fmt.Sprintf("EventType(%d)", int(t))
}

// Event is one change seen by a watch. For Added, New is set and Old is nil.
// For Modified, New is the new value and Old the previous one (with its own
// resourceVersion) when the backend knows it. For Deleted, Old is the last
// known value (with the deletion revision as its resourceVersion) and New is
// nil. A resourceVersion from any event is a valid revision to resume from.
type Event struct {
	Type EventType
	Old  v3.Resource
	New  v3.Resource
	Err  error
}

// Watcher streams events until Stop is called, the context ends or an error
// event is delivered; then the channel is closed.
type Watcher interface {
	ResultChan() <-chan Event
	Stop()
}

// ListResult is a consistent snapshot of one kind.
type ListResult struct {
	Items []v3.Resource
	// Revision is the datastore revision of the snapshot: Watch from it to see
	// every later change exactly once.
	Revision string
}

// Backend stores projectcalico.org/v3 resources. Resources passed in are not
// modified; resources returned are the caller's to keep. Backends do not
// default or validate: pkg/client does that before calling them.
//
// resourceVersion is an opaque string. On Update and Delete an empty value
// means "whatever is stored"; a non-empty value must match or the call fails
// with ErrConflict.
type Backend interface {
	// Create stores a new resource and returns it with resourceVersion,
	// uid and creationTimestamp set. ErrAlreadyExists if present.
	Create(ctx context.Context, r v3.Resource) (v3.Resource, error)
	// Update replaces an existing resource. ErrNotFound if absent,
	// ErrConflict on a stale resourceVersion. uid and creationTimestamp are
	// kept from the stored object.
	Update(ctx context.Context, r v3.Resource) (v3.Resource, error)
	// Delete removes a resource and returns its last value, with the
	// deletion revision as resourceVersion (as in the Deleted watch event).
	// ErrNotFound if absent, ErrConflict on a stale resourceVersion.
	Delete(ctx context.Context, k Key, resourceVersion string) (v3.Resource, error)
	// Get returns one resource.
	Get(ctx context.Context, k Key) (v3.Resource, error)
	// List returns every resource of k.Kind; k.Namespace narrows to one
	// namespace (empty means all); k.Name is ignored. Items are sorted by
	// namespace then name.
	List(ctx context.Context, k Key) (ListResult, error)
	// Watch streams changes of k.Kind (narrowed by k.Namespace) made after
	// revision (a ListResult.Revision or a resource's resourceVersion), each
	// exactly once and in order. An empty revision means "from now": nothing
	// written after Watch returns is missed. A revision the datastore no
	// longer holds gives a WatchError event wrapping ErrCompacted.
	Watch(ctx context.Context, k Key, revision string) (Watcher, error)
	// Close releases connections.
	Close() error
}
