package syncer

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/calico-go/calico/internal/datastore/etcd"
	"github.com/calico-go/calico/internal/ipam"
	"github.com/calico-go/calico/internal/testutil/etcdtest"
)

func TestParseAffinityKey(t *testing.T) {
	for _, tc := range []struct {
		key, node, cidr string
	}{
		{ipam.Prefix + "host/node-1/ipv4/block/10.0.0.0-26", "node-1", "10.0.0.0/26"},
		{ipam.Prefix + "host/n/ipv6/block/fd00::-122", "n", "fd00::/122"},
		{ipam.Prefix + "host/n/ipv6/block/10.0.0.0-26", "", ""}, // wrong family
		{ipam.Prefix + "host/n/ipv4/block/10.0.0.1-26", "", ""}, // not masked
		{ipam.Prefix + "host/n/ipv4/blocks/10.0.0.0-26", "", ""},
		{ipam.Prefix + "host//ipv4/block/10.0.0.0-26", "", ""},
		{ipam.Prefix + "assignment/ipv4/block/10.0.0.0-26", "", ""},
	} {
		node, cidr, ok := parseAffinityKey(tc.key)
		if tc.node == "" {
			if ok {
				t.Errorf("%s: parsed as %s %s", tc.key, node, cidr)
			}
			continue
		}
		if !ok || node != tc.node || cidr != netip.MustParsePrefix(tc.cidr) {
			t.Errorf("%s = %q %s %v, want %s %s", tc.key, node, cidr, ok, tc.node, tc.cidr)
		}
	}
}

// TestAffinitiesRelistAfterCompaction: a watch that resumes from a
// compacted revision lists again and emits only the differences.
func TestAffinitiesRelistAfterCompaction(t *testing.T) {
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
	const confirmed = `{"state":"confirmed"}`
	keyA := ipam.AffinityKey("a", netip.MustParsePrefix("10.0.0.0/26"))
	keyB := ipam.AffinityKey("b", netip.MustParsePrefix("10.0.0.64/26"))
	keyC := ipam.AffinityKey("c", netip.MustParsePrefix("10.0.0.128/26"))
	for _, k := range []string{keyA, keyB} {
		if _, err := cli.Put(ctx, k, confirmed); err != nil {
			t.Fatal(err)
		}
	}
	out := make(chan kindBatch, 10)
	a := &affinitySync{s: New(Options{Backend: eb}), cli: cli, out: out, seen: map[string]int64{}}
	if err := a.list(ctx); err != nil {
		t.Fatal(err)
	}
	if b := <-out; !b.listed || len(b.updates) != 2 {
		t.Fatalf("first list: %+v", b)
	}
	// While nobody watches: a goes, c comes, and the history is compacted.
	if _, err := cli.Delete(ctx, keyA); err != nil {
		t.Fatal(err)
	}
	resp, err := cli.Put(ctx, keyC, confirmed)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Compact(ctx, resp.Header.Revision); err != nil {
		t.Fatal(err)
	}
	if err := a.watch(ctx); !errors.Is(err, errRelist) {
		t.Fatalf("watch from a compacted revision = %v, want errRelist", err)
	}
	if err := a.list(ctx); err != nil {
		t.Fatal(err)
	}
	b := <-out
	var got []string
	for _, u := range b.updates {
		s := "delete " + u.Key.Name
		if u.Value != nil {
			s = "update " + u.Key.Name
		}
		got = append(got, s)
	}
	slices.Sort(got)
	want := []string{"delete a/ipv4/block/10.0.0.0-26", "update c/ipv4/block/10.0.0.128-26"}
	if !slices.Equal(got, want) {
		t.Fatalf("relist emitted %q, want %q", got, want)
	}
}
