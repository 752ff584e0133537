package ctl

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	v3 "github.com/calico-go/calico/api/v3"
	"github.com/calico-go/calico/internal/datastore"
	"github.com/calico-go/calico/internal/datastore/fake"
	"github.com/calico-go/calico/pkg/client"
)

func TestSplitCIDR(t *testing.T) {
	for _, tc := range []struct {
		cidr string
		n    int
		want string
	}{
		{"10.0.0.0/24", 2, "[10.0.0.0/25 10.0.0.128/25]"},
		{"10.0.0.0/24", 4, "[10.0.0.0/26 10.0.0.64/26 10.0.0.128/26 10.0.0.192/26]"},
		{"10.255.255.0/24", 2, "[10.255.255.0/25 10.255.255.128/25]"},
		{"10.0.0.0/15", 2, "[10.0.0.0/16 10.1.0.0/16]"},
		{"fd00::/64", 4, "[fd00::/66 fd00::4000:0:0:0/66 fd00::8000:0:0:0/66 fd00::c000:0:0:0/66]"},
		{"fd00:0:0:ff::/120", 2, "[fd00:0:0:ff::/121 fd00:0:0:ff::80/121]"},
	} {
		got, err := splitCIDR(netip.MustParsePrefix(tc.cidr), tc.n)
		if err != nil || fmt.Sprint(got) != tc.want {
			t.Errorf("splitCIDR(%s, %d) = %v %v, want %s", tc.cidr, tc.n, got, err, tc.want)
		}
	}
	for _, bad := range []struct {
		cidr string
		n    int
	}{{"10.0.0.0/24", 3}, {"10.0.0.0/24", 1}, {"10.0.0.0/24", 0}, {"10.0.0.0/31", 4}} {
		if got, err := splitCIDR(netip.MustParsePrefix(bad.cidr), bad.n); err == nil {
			t.Errorf("splitCIDR(%s, %d) = %v, want an error", bad.cidr, bad.n, got)
		}
	}
}

// failCreate fails Create of one resource name.
type failCreate struct {
	datastore.Backend
	name string
}

func (f failCreate) Create(ctx context.Context, r v3.Resource) (v3.Resource, error) {
	if r.GetName() == f.name {
		return nil, errors.New("injected failure")
	}
	return f.Backend.Create(ctx, r)
}

// TestReplacePoolUndo: when a step of a split fails, the new pools are
// removed and the old pool is enabled again.
func TestReplacePoolUndo(t *testing.T) {
	ctx := context.Background()
	be := fake.New()
	c := client.NewFromBackend(failCreate{Backend: be, name: "split-p-1"})
	old := v3.NewIPPool()
	old.Name, old.Spec.CIDR = "p", "10.0.0.0/24"
	stored, err := c.Create(ctx, old)
	if err != nil {
		t.Fatal(err)
	}
	children, err := splitPools(ctx, c, stored.(*v3.IPPool), []netip.Prefix{netip.MustParsePrefix("10.0.0.0/25"), netip.MustParsePrefix("10.0.0.128/25")})
	if err != nil {
		t.Fatal(err)
	}
	err = replacePool(ctx, c, stored.(*v3.IPPool), children)
	if err == nil || !strings.Contains(err.Error(), "error creating split pool split-p-1") {
		t.Fatalf("replacePool: %v", err)
	}
	pools, err := client.List[*v3.IPPool](ctx, c, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(pools) != 1 || pools[0].Name != "p" || pools[0].Spec.Disabled {
		t.Errorf("after a failed split: %+v", pools)
	}
}
