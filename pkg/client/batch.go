package client

import (
	"context"
	"errors"
	"fmt"
	"strings"

	v3 "github.com/calico-go/calico/api/v3"
	"github.com/calico-go/calico/internal/datastore"
)

// Op is the write a batch is checked for.
type Op string

// Batch operations.
const (
	OpCreate  Op = "create"
	OpReplace Op = "replace"
	OpApply   Op = "apply"
	OpDelete  Op = "delete"
)

// ItemError is what is wrong with one resource of a batch.
type ItemError struct {
	Index int // position in the batch
	Key   Key // Kind, Namespace, Name of the resource (as far as known)
	Err   error
}

func (e *ItemError) Error() string {
	return fmt.Sprintf("resource %d (%s): %v", e.Index+1, e.Key, e.Err)
}

func (e *ItemError) Unwrap() error { return e.Err }

// BatchError lists every bad resource of a batch.
type BatchError struct {
	Items []*ItemError
}

func (e *BatchError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d invalid resource(s)", len(e.Items))
	for _, it := range e.Items {
		b.WriteString("\n")
		b.WriteString(it.Error())
	}
	return b.String()
}

// Unwrap returns the item errors, so errors.Is sees every cause.
func (e *BatchError) Unwrap() []error {
	out := make([]error, len(e.Items))
	for i, it := range e.Items {
		out[i] = it
	}
	return out
}

// ValidateAll defaults and validates every resource without touching the
// datastore. It returns the defaulted copies (nil where invalid) and, when
// any resource is invalid, a *BatchError naming each of them, so that a
// caller can refuse to write any of a batch with a bad member.
func ValidateAll(rs []v3.Resource) ([]v3.Resource, error) {
	out := make([]v3.Resource, len(rs))
	var be BatchError
	for i, r := range rs {
		p, err := prepare(r)
		if err != nil {
			k := Key{}
			if r != nil {
				k = datastore.KeyOf(r)
			}
			be.Items = append(be.Items, &ItemError{Index: i, Key: k, Err: err})
			continue
		}
		out[i] = p
	}
	if len(be.Items) > 0 {
		return out, &be
	}
	return out, nil
}

// Check is the outcome of checking one resource of a batch against the
// datastore.
type Check struct {
	// Current is the stored resource, nil when absent.
	Current v3.Resource
	// Err is nil when op would succeed as far as can be told now. It wraps
	// ErrAlreadyExists (create of a present resource), ErrNotFound (replace
	// or delete of an absent one), ErrConflict (stale resourceVersion),
	// ErrTierNotFound, ErrTierNotEmpty, a *v3.ValidationError from
	// v3.ValidateUpdate, or a datastore error.
	Err error
}

// CheckAll checks, without writing, whether op would succeed for each of rs
// (which should come from ValidateAll, except for OpDelete where only the
// identity matters): presence, resourceVersion, immutable fields and tiers.
// Tiers created or deleted earlier (resp. policies deleted anywhere) in the
// same batch are taken into account.
func (c *Client) CheckAll(ctx context.Context, op Op, rs []v3.Resource) []Check {
	out := make([]Check, len(rs))
	batchTiers := map[string]bool{}
	var batchPools []*v3.IPPool
	going := map[Key]bool{}
	if op == OpDelete {
		for _, r := range rs {
			if r != nil {
				going[datastore.KeyOf(r)] = true
			}
		}
	}
	for i, r := range rs {
		if r == nil {
			continue
		}
		k, err := normalizeKey(datastore.KeyOf(r))
		if err != nil {
			out[i].Err = err
			continue
		}
		cur, err := c.be.Get(ctx, k)
		switch {
		case err == nil:
			out[i].Current = cur
		case errors.Is(err, ErrNotFound):
		default:
			out[i].Err = err
			continue
		}
		out[i].Err = c.check(ctx, op, r, cur, err, batchTiers, going)
		if out[i].Err == nil && op != OpDelete {
			out[i].Err = c.checkPoolOverlap(ctx, r, batchPools)
		}
		if op != OpDelete {
			switch t := r.(type) {
			case *v3.Tier:
				batchTiers[t.Name] = true
			case *v3.IPPool:
				batchPools = append(batchPools, t)
			}
		}
	}
	return out
}

// check applies op's rules to one resource; getErr is the error of reading
// its stored value (nil or ErrNotFound).
func (c *Client) check(ctx context.Context, op Op, r, cur v3.Resource, getErr error, batchTiers map[string]bool, going map[Key]bool) error {
	rv := r.GetResourceVersion()
	switch op {
	case OpCreate:
		if cur != nil {
			return fmt.Errorf("%w: %s", ErrAlreadyExists, datastore.KeyOf(r))
		}
		if rv != "" {
			return fieldError(r, "metadata.resourceVersion", "must not be set when creating a resource")
		}
	case OpReplace, OpApply:
		if cur == nil {
			if op == OpReplace || rv != "" {
				return getErr
			}
			break
		}
		if rv != "" && rv != cur.GetResourceVersion() {
			return fmt.Errorf("%w: %s has resourceVersion %s, the input has %s",
				ErrConflict, datastore.KeyOf(r), cur.GetResourceVersion(), rv)
		}
		if err := v3.ValidateUpdate(cur, r); err != nil {
			return err
		}
	case OpDelete:
		if cur == nil {
			return getErr
		}
		if rv != "" && rv != cur.GetResourceVersion() {
			return fmt.Errorf("%w: %s has resourceVersion %s, the input has %s",
				ErrConflict, datastore.KeyOf(r), cur.GetResourceVersion(), rv)
		}
		if ki, _ := v3.KindOf(r); ki.Kind == v3.KindTier {
			return c.checkTierDeletable(ctx, r.GetName(), going)
		}
		return nil
	}
	tier, ok := policyTier(r)
	if !ok || tier == v3.DefaultTierName || batchTiers[tier] {
		return nil
	}
	_, err := c.be.Get(ctx, Key{Kind: v3.KindTier, Name: tier})
	if errors.Is(err, ErrNotFound) {
		return fmt.Errorf("%w: %s %q is in tier %q, which does not exist (create the Tier first)",
			ErrTierNotFound, datastore.KeyOf(r).Kind, r.GetName(), tier)
	}
	return err
}
