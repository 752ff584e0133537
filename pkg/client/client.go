// Package client is the typed public client of Calico's projectcalico.org/v3
// API. It sits between callers (calicoctl, the CNI plugin, controllers, your
// own tools) and a datastore backend: every write is defaulted and validated
// the way Calico does it (v3.Default, v3.Validate, v3.ValidateUpdate against
// the stored object), policies must name an existing tier (the "default"
// tier is created on first use), and errors carry the datastore's sentinels
// (ErrNotFound, ErrAlreadyExists, ErrConflict, ...) for errors.Is.
//
// Configuration follows calicoctl: a CalicoAPIConfig file or environment
// variables (see LoadConfig and ConfigFromEnv).
package client

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"time"

	v3 "github.com/calico-go/calico/api/v3"
	"github.com/calico-go/calico/internal/datastore"
	"github.com/calico-go/calico/internal/datastore/etcd"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Datastore types re-exported so that callers outside this module can use
// them.
type (
	// Key names one resource: Kind (a v3 kind), Namespace, Name.
	Key = datastore.Key
	// ListResult is a consistent snapshot of one kind.
	ListResult = datastore.ListResult
	// Watcher streams changes.
	Watcher = datastore.Watcher
	// Event is one change seen by a Watcher.
	Event = datastore.Event
)

// Sentinel errors, tested with errors.Is.
var (
	ErrNotFound      = datastore.ErrNotFound
	ErrAlreadyExists = datastore.ErrAlreadyExists
	ErrConflict      = datastore.ErrConflict
	ErrUnavailable   = datastore.ErrUnavailable
	ErrUnsupported   = datastore.ErrUnsupported
	// ErrTierNotFound: a policy names a tier that does not exist.
	ErrTierNotFound = errors.New("tier does not exist")
	// ErrTierNotEmpty: a tier that still holds policies cannot be deleted.
	ErrTierNotEmpty = errors.New("tier still has policies")
	// ErrUnknownKind: the kind is not a projectcalico.org/v3 kind.
	ErrUnknownKind = errors.New("resource type is not supported")
	// ErrUnsupportedDatastore: the configured datastore type is not
	// available in this build.
	ErrUnsupportedDatastore = errors.New("datastore type is not supported")
)

// DefaultDialTimeout bounds how long New waits for the datastore.
const DefaultDialTimeout = 5 * time.Second

// conflictRetries bounds read-modify-write retries when the caller did not
// pin a resourceVersion.
const conflictRetries = 5

// Client reads and writes projectcalico.org/v3 resources. It is safe for
// concurrent use.
type Client struct {
	be datastore.Backend

	mu          sync.Mutex
	defaultTier bool // the default tier is known to exist
}

// New connects to the datastore described by cfg.
func New(ctx context.Context, cfg Config) (*Client, error) {
	cfg.setDefaults()
	s := cfg.Spec
	switch s.DatastoreType {
	case EtcdV3:
		if s.EtcdKey != "" || s.EtcdCert != "" || s.EtcdCACert != "" {
			return nil, fmt.Errorf("%w: inline etcdKey/etcdCert/etcdCACert are not supported yet; use etcdKeyFile, etcdCertFile and etcdCACertFile", ErrUnsupportedDatastore)
		}
		if s.EtcdDiscoverySrv != "" && strings.TrimSpace(s.EtcdEndpoints) == "" {
			return nil, fmt.Errorf("%w: etcdDiscoverySrv is not supported yet; set etcdEndpoints", ErrUnsupportedDatastore)
		}
		be, err := etcd.New(ctx, etcd.Config{
			Endpoints:   s.Endpoints(),
			CACertFile:  s.EtcdCACertFile,
			CertFile:    s.EtcdCertFile,
			KeyFile:     s.EtcdKeyFile,
			Username:    s.EtcdUsername,
			Password:    s.EtcdPassword,
			DialTimeout: DefaultDialTimeout,
		})
		if err != nil {
			return nil, err
		}
		return NewFromBackend(be), nil
	case Kubernetes:
		return nil, fmt.Errorf("%w: datastoreType %q is not supported yet; use %q (set DATASTORE_TYPE=etcdv3 and ETCD_ENDPOINTS)", ErrUnsupportedDatastore, s.DatastoreType, EtcdV3)
	default:
		return nil, fmt.Errorf("%w: unknown datastoreType %q (expected %q or %q)", ErrUnsupportedDatastore, s.DatastoreType, EtcdV3, Kubernetes)
	}
}

// NewFromBackend wraps an existing backend (the fake in unit tests, an
// embedded etcd in single-host mode).
func NewFromBackend(be datastore.Backend) *Client {
	return &Client{be: be}
}

// Backend returns the underlying datastore, for callers (IPAM, syncers) that
// work below the resource API.
func (c *Client) Backend() datastore.Backend { return c.be }

// Close releases the datastore connection.
func (c *Client) Close() error { return c.be.Close() }

// Create defaults, validates and stores a new resource. The policy's tier
// must exist (the default tier is created when missing).
func (c *Client) Create(ctx context.Context, r v3.Resource) (v3.Resource, error) {
	p, err := prepare(r)
	if err != nil {
		return nil, err
	}
	if rv := p.GetResourceVersion(); rv != "" {
		return nil, fieldError(p, "metadata.resourceVersion", "must not be set when creating a resource")
	}
	if err := c.checkRelations(ctx, p); err != nil {
		return nil, err
	}
	return c.be.Create(ctx, p)
}

// Update replaces an existing resource. A resourceVersion on r must match the
// stored one (else ErrConflict); without one, r replaces whatever is stored.
func (c *Client) Update(ctx context.Context, r v3.Resource) (v3.Resource, error) {
	p, err := prepare(r)
	if err != nil {
		return nil, err
	}
	return c.update(ctx, p)
}

func (c *Client) update(ctx context.Context, p v3.Resource) (v3.Resource, error) {
	pinned := p.GetResourceVersion() != ""
	k := datastore.KeyOf(p)
	for attempt := 0; ; attempt++ {
		cur, err := c.be.Get(ctx, k)
		if err != nil {
			return nil, err
		}
		if err := v3.ValidateUpdate(cur, p); err != nil {
			return nil, err
		}
		if err := c.checkRelations(ctx, p); err != nil {
			return nil, err
		}
		w := p
		if !pinned {
			w = p.DeepCopyObject().(v3.Resource)
			w.SetResourceVersion(cur.GetResourceVersion())
		}
		out, err := c.be.Update(ctx, w)
		if err != nil && !pinned && errors.Is(err, ErrConflict) && attempt < conflictRetries {
			continue
		}
		return out, err
	}
}

// Apply creates r when it does not exist and replaces it when it does.
func (c *Client) Apply(ctx context.Context, r v3.Resource) (v3.Resource, error) {
	p, err := prepare(r)
	if err != nil {
		return nil, err
	}
	for attempt := 0; ; attempt++ {
		_, err := c.be.Get(ctx, datastore.KeyOf(p))
		switch {
		case errors.Is(err, ErrNotFound):
			if p.GetResourceVersion() != "" {
				return nil, err
			}
			if err := c.checkRelations(ctx, p); err != nil {
				return nil, err
			}
			out, err := c.be.Create(ctx, p)
			if errors.Is(err, ErrAlreadyExists) && attempt < conflictRetries {
				continue // created meanwhile: update it instead
			}
			return out, err
		case err != nil:
			return nil, err
		}
		out, err := c.update(ctx, p)
		if errors.Is(err, ErrNotFound) && p.GetResourceVersion() == "" && attempt < conflictRetries {
			continue // deleted meanwhile: create it instead
		}
		return out, err
	}
}

// Delete removes a resource and returns its last value. A non-empty
// resourceVersion must match the stored one. The default tier and tiers that
// still hold policies cannot be deleted.
func (c *Client) Delete(ctx context.Context, k Key, resourceVersion string) (v3.Resource, error) {
	k, err := normalizeKey(k)
	if err != nil {
		return nil, err
	}
	if k.Kind == v3.KindTier {
		if err := c.checkTierDeletable(ctx, k.Name, nil); err != nil {
			return nil, err
		}
	}
	out, err := c.be.Delete(ctx, k, resourceVersion)
	if err == nil && k.Kind == v3.KindTier && k.Name == v3.DefaultTierName {
		c.mu.Lock()
		c.defaultTier = false
		c.mu.Unlock()
	}
	return out, err
}

// Get returns one resource. k.Kind may be any name LookupKind accepts.
func (c *Client) Get(ctx context.Context, k Key) (v3.Resource, error) {
	k, err := normalizeKey(k)
	if err != nil {
		return nil, err
	}
	return c.be.Get(ctx, k)
}

// List returns every resource of a kind, in one namespace or (namespace "")
// in all of them, sorted by namespace then name.
func (c *Client) List(ctx context.Context, kind, namespace string) (ListResult, error) {
	k, err := normalizeKey(Key{Kind: kind, Namespace: namespace})
	if err != nil {
		return ListResult{}, err
	}
	return c.be.List(ctx, k)
}

// Watch streams changes of a kind made after revision (a ListResult.Revision;
// "" means from now).
func (c *Client) Watch(ctx context.Context, kind, namespace, revision string) (Watcher, error) {
	k, err := normalizeKey(Key{Kind: kind, Namespace: namespace})
	if err != nil {
		return nil, err
	}
	return c.be.Watch(ctx, k, revision)
}

// Get returns the resource of type T (a pointer to a v3 type) with the given
// namespace and name.
func Get[T v3.Resource](ctx context.Context, c *Client, namespace, name string) (T, error) {
	var zero T
	ki, ok := v3.KindOf(zero)
	if !ok {
		return zero, fmt.Errorf("%w: %T", ErrUnknownKind, zero)
	}
	r, err := c.Get(ctx, Key{Kind: ki.Kind, Namespace: namespace, Name: name})
	if err != nil {
		return zero, err
	}
	t, ok := r.(T)
	if !ok {
		return zero, fmt.Errorf("backend returned %T for %s, want %T", r, ki.Kind, zero)
	}
	return t, nil
}

// List returns every resource of type T (a pointer to a v3 type) in
// namespace ("" for all namespaces or cluster-scoped kinds).
func List[T v3.Resource](ctx context.Context, c *Client, namespace string) ([]T, error) {
	var zero T
	ki, ok := v3.KindOf(zero)
	if !ok {
		return nil, fmt.Errorf("%w: %T", ErrUnknownKind, zero)
	}
	res, err := c.List(ctx, ki.Kind, namespace)
	if err != nil {
		return nil, err
	}
	out := make([]T, 0, len(res.Items))
	for _, r := range res.Items {
		t, ok := r.(T)
		if !ok {
			return nil, fmt.Errorf("backend returned %T for %s, want %T", r, ki.Kind, zero)
		}
		out = append(out, t)
	}
	return out, nil
}

// normalizeKey turns an alias or plural kind into the canonical kind and
// checks the namespace against the kind's scope.
func normalizeKey(k Key) (Key, error) {
	ki, ok := v3.LookupKind(k.Kind)
	if !ok {
		return k, fmt.Errorf("%w: %q", ErrUnknownKind, k.Kind)
	}
	k.Kind = ki.Kind
	if !ki.Namespaced {
		k.Namespace = ""
	}
	return k, nil
}

// prepare returns a defaulted, validated deep copy of r with TypeMeta set and
// the namespace checked against the kind's scope (a namespaced kind without
// one goes to "default").
func prepare(r v3.Resource) (v3.Resource, error) {
	if r == nil {
		return nil, fmt.Errorf("%w: nil resource", ErrUnknownKind)
	}
	ki, ok := v3.KindOf(r)
	if !ok {
		return nil, fmt.Errorf("%w: %T", ErrUnknownKind, r)
	}
	p := r.DeepCopyObject().(v3.Resource)
	p.GetObjectKind().SetGroupVersionKind(schema.GroupVersionKind{Group: v3.Group, Version: v3.Version, Kind: ki.Kind})
	switch {
	case ki.Namespaced && p.GetNamespace() == "":
		p.SetNamespace("default")
	case !ki.Namespaced && p.GetNamespace() != "":
		return nil, fieldError(p, "metadata.namespace", fmt.Sprintf("must not be set: %s is not namespaced", ki.Kind))
	}
	v3.Default(p)
	if err := v3.Validate(p); err != nil {
		return nil, err
	}
	return p, nil
}

// fieldError builds a one-field *v3.ValidationError for r.
func fieldError(r v3.Resource, field, detail string) error {
	ve := &v3.ValidationError{Namespace: r.GetNamespace(), Name: r.GetName()}
	if ki, ok := v3.KindOf(r); ok {
		ve.Kind = ki.Kind
	}
	ve.Errors = []v3.FieldError{{Field: field, Detail: detail}}
	return ve
}

// policyTier returns the tier a policy belongs to; ok is false for kinds
// that are not tiered policies.
func policyTier(r v3.Resource) (tier string, ok bool) {
	switch p := r.(type) {
	case *v3.NetworkPolicy:
		tier = p.Spec.Tier
	case *v3.GlobalNetworkPolicy:
		tier = p.Spec.Tier
	case *v3.StagedNetworkPolicy:
		tier = p.Spec.Tier
	case *v3.StagedGlobalNetworkPolicy:
		tier = p.Spec.Tier
	default:
		return "", false
	}
	if tier == "" {
		tier = v3.DefaultTierName
	}
	return tier, true
}

// checkRelations checks what a resource needs of others before it is
// written: its tier (see ensureTier) and, for an IPPool, that it overlaps no
// other pool.
func (c *Client) checkRelations(ctx context.Context, r v3.Resource) error {
	if err := c.checkPoolOverlap(ctx, r, nil); err != nil {
		return err
	}
	return c.ensureTier(ctx, r)
}

// checkPoolOverlap refuses an IPPool whose CIDR overlaps another pool's.
// pending are pools about to be written before r (in a batch); they take the
// place of stored pools of the same name.
func (c *Client) checkPoolOverlap(ctx context.Context, r v3.Resource, pending []*v3.IPPool) error {
	p, ok := r.(*v3.IPPool)
	if !ok {
		return nil
	}
	pfx, err := netip.ParsePrefix(p.Spec.CIDR)
	if err != nil {
		return nil // Validate reports it
	}
	res, err := c.be.List(ctx, Key{Kind: v3.KindIPPool})
	if err != nil {
		return err
	}
	pools := map[string]*v3.IPPool{}
	var names []string
	add := func(o *v3.IPPool) {
		if _, seen := pools[o.Name]; !seen {
			names = append(names, o.Name)
		}
		pools[o.Name] = o
	}
	for _, o := range res.Items {
		if op, ok := o.(*v3.IPPool); ok {
			add(op)
		}
	}
	for _, op := range pending {
		add(op)
	}
	sort.Strings(names)
	for _, n := range names {
		o := pools[n]
		if n == p.Name {
			continue
		}
		if opfx, err := netip.ParsePrefix(o.Spec.CIDR); err == nil && opfx.Overlaps(pfx) {
			return fieldError(p, "spec.cidr", fmt.Sprintf("%s overlaps with IPPool %q (%s)", p.Spec.CIDR, o.Name, o.Spec.CIDR))
		}
	}
	return nil
}

// ensureTier makes sure the tier of a policy exists, creating the default
// tier when it is missing.
func (c *Client) ensureTier(ctx context.Context, r v3.Resource) error {
	tier, ok := policyTier(r)
	if !ok {
		return nil
	}
	if tier == v3.DefaultTierName {
		c.mu.Lock()
		known := c.defaultTier
		c.mu.Unlock()
		if known {
			return nil
		}
	}
	_, err := c.be.Get(ctx, Key{Kind: v3.KindTier, Name: tier})
	switch {
	case err == nil:
	case errors.Is(err, ErrNotFound) && tier == v3.DefaultTierName:
		if _, err := c.be.Create(ctx, DefaultTier()); err != nil && !errors.Is(err, ErrAlreadyExists) {
			return fmt.Errorf("create the default tier: %w", err)
		}
	case errors.Is(err, ErrNotFound):
		return fmt.Errorf("%w: %s %q is in tier %q, which does not exist (create the Tier first)",
			ErrTierNotFound, datastore.KeyOf(r).Kind, r.GetName(), tier)
	default:
		return err
	}
	if tier == v3.DefaultTierName {
		c.mu.Lock()
		c.defaultTier = true
		c.mu.Unlock()
	}
	return nil
}

// DefaultTier returns the "default" tier as Calico creates it.
func DefaultTier() *v3.Tier {
	t := v3.NewTier()
	t.Name = v3.DefaultTierName
	order := float64(v3.DefaultTierOrder)
	action := v3.Deny
	t.Spec.Order = &order
	t.Spec.DefaultAction = &action
	return t
}

// policyKinds are the kinds that live in tiers.
var policyKinds = []string{
	v3.KindNetworkPolicy, v3.KindGlobalNetworkPolicy,
	v3.KindStagedNetworkPolicy, v3.KindStagedGlobalNetworkPolicy,
}

// checkTierDeletable refuses to delete the default tier or a tier that still
// holds policies other than those in going (keys about to be deleted too).
func (c *Client) checkTierDeletable(ctx context.Context, tier string, going map[Key]bool) error {
	if tier == v3.DefaultTierName {
		return fmt.Errorf("%w: the default tier cannot be deleted", ErrUnsupported)
	}
	n := 0
	for _, kind := range policyKinds {
		res, err := c.be.List(ctx, Key{Kind: kind})
		if err != nil {
			return err
		}
		for _, p := range res.Items {
			if t, _ := policyTier(p); t == tier && !going[datastore.KeyOf(p)] {
				n++
			}
		}
	}
	if n > 0 {
		return fmt.Errorf("%w: tier %q still has %d policies; delete them first", ErrTierNotEmpty, tier, n)
	}
	return nil
}
