package client

import (
	"context"
	"errors"
	"testing"
	"time"

	v3 "github.com/calico-go/calico/api/v3"
	"github.com/calico-go/calico/internal/datastore"
	"github.com/calico-go/calico/internal/datastore/fake"
)

func pool(name, cidr string) *v3.IPPool {
	p := v3.NewIPPool()
	p.Name = name
	p.Spec.CIDR = cidr
	return p
}

func gnp(name, tier string) *v3.GlobalNetworkPolicy {
	p := v3.NewGlobalNetworkPolicy()
	p.Name = name
	p.Spec.Tier = tier
	p.Spec.Selector = "all()"
	p.Spec.Ingress = []v3.Rule{{Action: v3.Allow}}
	return p
}

func tier(name string) *v3.Tier {
	t := v3.NewTier()
	t.Name = name
	o := 100.0
	t.Spec.Order = &o
	return t
}

func newTestClient(t *testing.T) (*Client, *fake.Backend) {
	t.Helper()
	be := fake.New()
	c := NewFromBackend(be)
	t.Cleanup(func() { _ = c.Close() })
	return c, be
}

func TestCreateGetUpdateDelete(t *testing.T) {
	ctx := context.Background()
	c, _ := newTestClient(t)
	in := pool("p1", "10.0.0.0/16")
	out, err := c.Create(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	if in.Spec.BlockSize != 0 || in.ResourceVersion != "" {
		t.Error("Create modified its argument")
	}
	if p := out.(*v3.IPPool); p.Spec.BlockSize != 26 || p.ResourceVersion == "" || p.Kind != v3.KindIPPool {
		t.Errorf("not defaulted or stored: %+v", p)
	}
	if _, err := c.Create(ctx, in); !errors.Is(err, ErrAlreadyExists) {
		t.Errorf("second create: %v", err)
	}

	got, err := Get[*v3.IPPool](ctx, c, "", "p1")
	if err != nil || got.Spec.CIDR != "10.0.0.0/16" {
		t.Fatalf("Get[T]: %+v %v", got, err)
	}
	if _, err := c.Get(ctx, Key{Kind: "ipp", Name: "p1"}); err != nil {
		t.Errorf("Get by alias: %v", err)
	}
	if _, err := c.Get(ctx, Key{Kind: "cats", Name: "p1"}); !errors.Is(err, ErrUnknownKind) {
		t.Errorf("unknown kind: %v", err)
	}

	// Update without resourceVersion replaces whatever is stored.
	up := pool("p1", "10.0.0.0/16")
	up.Spec.NATOutgoing = true
	if _, err := c.Update(ctx, up); err != nil {
		t.Fatal(err)
	}
	// A stale resourceVersion conflicts.
	stale := got.DeepCopy()
	stale.Spec.Disabled = true
	if _, err := c.Update(ctx, stale); !errors.Is(err, ErrConflict) {
		t.Errorf("stale update: %v", err)
	}
	// An immutable field.
	moved := pool("p1", "10.1.0.0/16")
	var ve *v3.ValidationError
	if _, err := c.Update(ctx, moved); !errors.As(err, &ve) || ve.Errors[0].Field != "spec.cidr" {
		t.Errorf("cidr change: %v", err)
	}
	if _, err := c.Update(ctx, pool("p9", "10.9.0.0/16")); !errors.Is(err, ErrNotFound) {
		t.Errorf("update of missing: %v", err)
	}
	// Invalid input never reaches the datastore.
	if _, err := c.Create(ctx, pool("p2", "10.2.0.1/16")); !errors.Is(err, v3.ErrInvalid) {
		t.Errorf("invalid create: %v", err)
	}
	withRV := pool("p3", "10.3.0.0/16")
	withRV.ResourceVersion = "5"
	if _, err := c.Create(ctx, withRV); !errors.Is(err, v3.ErrInvalid) {
		t.Errorf("create with resourceVersion: %v", err)
	}

	list, err := List[*v3.IPPool](ctx, c, "")
	if err != nil || len(list) != 1 || !list[0].Spec.NATOutgoing {
		t.Fatalf("List[T]: %+v %v", list, err)
	}
	if _, err := c.Delete(ctx, Key{Kind: v3.KindIPPool, Name: "p1"}, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Delete(ctx, Key{Kind: v3.KindIPPool, Name: "p1"}, ""); !errors.Is(err, ErrNotFound) {
		t.Errorf("second delete: %v", err)
	}
}

func TestApply(t *testing.T) {
	ctx := context.Background()
	c, _ := newTestClient(t)
	if _, err := c.Apply(ctx, pool("p1", "10.0.0.0/16")); err != nil {
		t.Fatal(err)
	}
	p := pool("p1", "10.0.0.0/16")
	p.Spec.Disabled = true
	out, err := c.Apply(ctx, p)
	if err != nil || !out.(*v3.IPPool).Spec.Disabled {
		t.Fatalf("apply update: %v %v", out, err)
	}
	gone := pool("p2", "10.2.0.0/16")
	gone.ResourceVersion = "3"
	if _, err := c.Apply(ctx, gone); !errors.Is(err, ErrNotFound) {
		t.Errorf("apply with resourceVersion of a missing resource: %v", err)
	}
}

func TestNamespaces(t *testing.T) {
	ctx := context.Background()
	c, _ := newTestClient(t)
	np := v3.NewNetworkPolicy()
	np.Name = "np1"
	out, err := c.Create(ctx, np)
	if err != nil || out.GetNamespace() != "default" {
		t.Fatalf("namespaced without namespace: %v %v", out, err)
	}
	p := pool("p1", "10.0.0.0/16")
	p.Namespace = "x"
	if _, err := c.Create(ctx, p); !errors.Is(err, v3.ErrInvalid) {
		t.Errorf("cluster-scoped with namespace: %v", err)
	}
	if res, err := c.List(ctx, "networkpolicies", "other"); err != nil || len(res.Items) != 0 {
		t.Errorf("list other namespace: %v %v", res, err)
	}
	if res, err := c.List(ctx, "networkpolicies", ""); err != nil || len(res.Items) != 1 {
		t.Errorf("list all namespaces: %v %v", res, err)
	}
}

func TestTiers(t *testing.T) {
	ctx := context.Background()
	c, be := newTestClient(t)
	// A policy in the default tier creates it.
	if _, err := c.Create(ctx, gnp("a", "")); err != nil {
		t.Fatal(err)
	}
	dt, err := Get[*v3.Tier](ctx, c, "", "default")
	if err != nil || dt.Spec.Order == nil || *dt.Spec.Order != v3.DefaultTierOrder || *dt.Spec.DefaultAction != v3.Deny {
		t.Fatalf("default tier: %+v %v", dt, err)
	}
	// Another tier must exist.
	if _, err := c.Create(ctx, gnp("b", "sec")); !errors.Is(err, ErrTierNotFound) {
		t.Errorf("missing tier: %v", err)
	}
	if _, err := c.Create(ctx, tier("sec")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Apply(ctx, gnp("b", "sec")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Delete(ctx, Key{Kind: "tier", Name: "sec"}, ""); !errors.Is(err, ErrTierNotEmpty) {
		t.Errorf("delete non-empty tier: %v", err)
	}
	if _, err := c.Delete(ctx, Key{Kind: "tier", Name: "default"}, ""); !errors.Is(err, ErrUnsupported) {
		t.Errorf("delete default tier: %v", err)
	}
	if _, err := c.Delete(ctx, Key{Kind: "gnp", Name: "b"}, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Delete(ctx, Key{Kind: "tier", Name: "sec"}, ""); err != nil {
		t.Errorf("delete empty tier: %v", err)
	}
	// The default tier is re-created if someone removed it underneath.
	if _, err := be.Delete(ctx, datastore.Key{Kind: v3.KindTier, Name: "default"}, ""); err != nil {
		t.Fatal(err)
	}
	c2 := NewFromBackend(be)
	if _, err := c2.Create(ctx, gnp("c", "default")); err != nil {
		t.Fatal(err)
	}
	if _, err := c2.Get(ctx, Key{Kind: v3.KindTier, Name: "default"}); err != nil {
		t.Errorf("default tier not re-created: %v", err)
	}
}

func TestPoolOverlap(t *testing.T) {
	ctx := context.Background()
	c, _ := newTestClient(t)
	if _, err := c.Create(ctx, pool("a", "10.0.0.0/16")); err != nil {
		t.Fatal(err)
	}
	var ve *v3.ValidationError
	if _, err := c.Create(ctx, pool("b", "10.0.128.0/17")); !errors.As(err, &ve) {
		t.Errorf("overlap: %v", err)
	}
	if _, err := c.Apply(ctx, pool("a", "10.0.0.0/16")); err != nil {
		t.Errorf("a pool overlaps itself: %v", err)
	}
	if _, err := c.Create(ctx, pool("c", "fd00::/64")); err != nil {
		t.Errorf("v6 pool: %v", err)
	}
}

func TestValidateAllAndCheckAll(t *testing.T) {
	ctx := context.Background()
	c, _ := newTestClient(t)
	if _, err := c.Create(ctx, pool("a", "10.0.0.0/16")); err != nil {
		t.Fatal(err)
	}
	batch := []v3.Resource{pool("b", "10.1.0.0/16"), pool("bad", "10.2.0.1/16"), tier("sec"), gnp("p", "sec")}
	out, err := ValidateAll(batch)
	var be *BatchError
	if !errors.As(err, &be) || len(be.Items) != 1 || be.Items[0].Index != 1 || out[1] != nil || out[0] == nil {
		t.Fatalf("ValidateAll: %v", err)
	}
	if !errors.Is(err, v3.ErrInvalid) {
		t.Error("BatchError does not unwrap to its causes")
	}
	batch = append(batch[:1], batch[2:]...)
	batch = append(batch, pool("a", "10.0.0.0/16"), pool("c", "10.1.1.0/24"))
	prepared, err := ValidateAll(batch)
	if err != nil {
		t.Fatal(err)
	}
	checks := c.CheckAll(ctx, OpCreate, prepared)
	wantErr := []error{nil, nil, nil, ErrAlreadyExists, v3.ErrInvalid}
	for i, ch := range checks {
		if (wantErr[i] == nil) != (ch.Err == nil) || (wantErr[i] != nil && !errors.Is(ch.Err, wantErr[i])) {
			t.Errorf("check %d: %v, want %v", i, ch.Err, wantErr[i])
		}
	}
	if checks[3].Current == nil {
		t.Error("Current not set for an existing resource")
	}
	checks = c.CheckAll(ctx, OpReplace, prepared[:1])
	if !errors.Is(checks[0].Err, ErrNotFound) {
		t.Errorf("replace of missing: %v", checks[0].Err)
	}
	checks = c.CheckAll(ctx, OpDelete, []v3.Resource{pool("a", ""), pool("zz", "")})
	if checks[0].Err != nil || !errors.Is(checks[1].Err, ErrNotFound) {
		t.Errorf("delete checks: %v, %v", checks[0].Err, checks[1].Err)
	}
}

func TestWatch(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _ := newTestClient(t)
	res, err := c.List(ctx, "ippool", "")
	if err != nil {
		t.Fatal(err)
	}
	w, err := c.Watch(ctx, "ippools", "", res.Revision)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	if _, err := c.Create(ctx, pool("a", "10.0.0.0/16")); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-w.ResultChan():
		if ev.Type != datastore.Added || ev.New.GetName() != "a" {
			t.Errorf("event %+v", ev)
		}
	case <-ctx.Done():
		t.Fatal("no watch event")
	}
}

func TestNewUnsupported(t *testing.T) {
	ctx := context.Background()
	for _, spec := range []ConfigSpec{
		{DatastoreType: Kubernetes},
		{DatastoreType: "consul"},
		{DatastoreType: EtcdV3, EtcdCACert: "-----BEGIN"},
	} {
		if _, err := New(ctx, Config{Spec: spec}); !errors.Is(err, ErrUnsupportedDatastore) {
			t.Errorf("%+v: %v", spec, err)
		}
	}
}
