package syncer_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"testing"
	"time"

	v3 "github.com/calico-go/calico/api/v3"
	"github.com/calico-go/calico/internal/datastore/etcd"
	"github.com/calico-go/calico/internal/datastore/fake"
	"github.com/calico-go/calico/internal/ipam"
	"github.com/calico-go/calico/internal/syncer"
	"github.com/calico-go/calico/internal/syncer/affinity"
	"github.com/calico-go/calico/internal/testutil/etcdtest"
)

// affinities returns the consumer's affinity model as "node cidr" strings.
func (c *consumer) affinities() []string {
	last := map[string]string{}
	for _, u := range c.updates {
		if u.Key.Kind != affinity.Kind {
			continue
		}
		if u.Value == nil {
			delete(last, u.Key.Name)
			continue
		}
		b := u.Value.(*affinity.Block)
		last[u.Key.Name] = b.Node + " " + b.CIDR.String()
	}
	return slices.Sorted(maps.Values(last))
}

func (c *consumer) waitAffinities(t *testing.T, want ...string) {
	t.Helper()
	slices.Sort(want)
	c.waitFor(t, fmt.Sprintf("affinities %q", want), func() bool { return slices.Equal(c.affinities(), want) })
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := errors.Join(c.errs...); err != nil {
		t.Fatal(err)
	}
}

// TestAffinities follows Calico's block affinities in a real etcd: only
// confirmed ones are emitted; pending deletion, the deleted mark and
// removal take them away; blocks claimed by the IPAM allocator appear; a
// compaction while the watch is down is recovered by listing again.
func TestAffinities(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	eb, err := etcd.New(ctx, etcd.Config{Endpoints: etcdtest.Embedded(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = eb.Close() })
	cli := eb.Client()
	put := func(node, cidr, doc string) {
		t.Helper()
		if _, err := cli.Put(ctx, ipam.AffinityKey(node, netip.MustParsePrefix(cidr)), doc); err != nil {
			t.Fatal(err)
		}
	}
	const confirmed, pending, pendingDel = `{"state":"confirmed","deleted":false}`, `{"state":"pending"}`, `{"state":"pendingDeletion"}`
	put("n1", "10.0.0.0/26", confirmed)
	put("n2", "10.0.0.64/26", pending)
	put("n3", "fd00::/122", confirmed)
	if _, err := cli.Put(ctx, ipam.Prefix+"host/n1/ipv4/block/garbage", confirmed); err != nil {
		t.Fatal(err)
	}

	c := start(t, eb, []string{affinity.Kind})
	c.waitFor(t, "InSync", c.inSync)
	c.waitAffinities(t, "n1 10.0.0.0/26", "n3 fd00::/122")

	put("n2", "10.0.0.64/26", confirmed)
	put("n1", "10.0.0.0/26", pendingDel)
	c.waitAffinities(t, "n2 10.0.0.64/26", "n3 fd00::/122")
	put("n3", "fd00::/122", `{"state":"confirmed","deleted":true}`)
	c.waitAffinities(t, "n2 10.0.0.64/26")

	// A block claimed through IPAM (pending, then confirmed), then
	// released.
	pool := v3.NewIPPool()
	pool.Name = "p"
	pool.Spec = v3.IPPoolSpec{CIDR: "10.1.0.0/24", BlockSize: 26}
	alloc, err := ipam.New(ipam.Options{Store: ipam.NewEtcdStore(cli, 0), Resources: ipam.StaticResources{Pools: []v3.IPPool{*pool}}})
	if err != nil {
		t.Fatal(err)
	}
	res, err := alloc.AutoAssign(ctx, ipam.AutoAssignArgs{Num4: 1, HandleID: "h4", Hostname: "n4", Attrs: ipam.Attrs{Node: "n4"}})
	if err != nil || len(res.IPv4) != 1 {
		t.Fatalf("AutoAssign: %v %v", res, err)
	}
	c.waitAffinities(t, "n2 10.0.0.64/26", "n4 "+res.IPv4[0].Masked().String())
	if err := alloc.ReleaseByHandle(ctx, "h4"); err != nil {
		t.Fatal(err)
	}
	if err := alloc.ReleaseHostAffinities(ctx, "n4"); err != nil {
		t.Fatal(err)
	}
	c.waitAffinities(t, "n2 10.0.0.64/26")
}

// TestAffinitiesWithoutIPAM: a backend without Calico IPAM lists the
// affinity kind empty, so the syncer still gets in sync.
func TestAffinitiesWithoutIPAM(t *testing.T) {
	c := start(t, fake.New(), syncer.FelixKinds)
	c.waitFor(t, "InSync", c.inSync)
	if got := c.affinities(); len(got) != 0 {
		t.Fatalf("affinities from a fake backend: %v", got)
	}
}
