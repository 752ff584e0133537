package ipam

import (
	"context"
	"net/netip"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v3 "github.com/calico-go/calico/api/v3"
)

func mkPool(name, cidr string, blockSize int, mods ...func(*v3.IPPoolSpec)) v3.IPPool {
	p := v3.NewIPPool()
	p.ObjectMeta = metav1.ObjectMeta{Name: name}
	p.Spec = v3.IPPoolSpec{CIDR: cidr, BlockSize: blockSize}
	for _, m := range mods {
		m(&p.Spec)
	}
	return *p
}

func mkReservation(name string, cidrs ...string) v3.IPReservation {
	r := v3.NewIPReservation()
	r.ObjectMeta = metav1.ObjectMeta{Name: name}
	r.Spec.ReservedCIDRs = cidrs
	return *r
}

// newTest returns an allocator over a fresh MemStore.
func newTest(t testing.TB, res StaticResources) (*Allocator, *MemStore) {
	t.Helper()
	st := NewMemStore()
	a, err := New(Options{Store: st, Resources: res, ResolveTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return a, st
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func assign4(t testing.TB, a *Allocator, host, handle string, n int) []netip.Prefix {
	t.Helper()
	res, err := a.AutoAssign(ctxT(t), AutoAssignArgs{Num4: n, HandleID: handle, Hostname: host})
	if err != nil {
		t.Fatalf("AutoAssign(%s, %s, %d): %v", host, handle, n, err)
	}
	if len(res.IPv4) != n {
		t.Fatalf("AutoAssign(%s, %s, %d) gave %v", host, handle, n, res.IPv4)
	}
	return res.IPv4
}

// mustClean fails unless Check finds nothing.
func mustClean(t testing.TB, a *Allocator, opts CheckOptions) *Snapshot {
	t.Helper()
	r, err := a.Check(ctxT(t), opts)
	if err != nil {
		t.Fatal(err)
	}
	if !r.Clean() {
		t.Fatalf("check is not clean: %+v", r)
	}
	s, err := a.Snapshot(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func strs[T interface{ String() string }](xs []T) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = x.String()
	}
	return out
}

func netip4(s string) netip.Addr { return netip.MustParseAddr(s) }
