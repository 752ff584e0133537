package ipam

import (
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestKeys(t *testing.T) {
	c4 := netip.MustParsePrefix("10.0.0.64/26")
	c6 := netip.MustParsePrefix("fd00::1:0/122")
	for _, tc := range []struct{ got, want string }{
		{BlockKey(c4), "/calico/ipam/v2/assignment/ipv4/block/10.0.0.64-26"},
		{BlockKey(c6), "/calico/ipam/v2/assignment/ipv6/block/fd00::1:0-122"},
		{AffinityKey("node-1.example", c4), "/calico/ipam/v2/host/node-1.example/ipv4/block/10.0.0.64-26"},
		{HandleKey("k8s-pod-network.abc"), "/calico/ipam/v2/handle/k8s-pod-network.abc"},
		{ConfigKey, "/calico/ipam/v2/config"},
	} {
		if tc.got != tc.want {
			t.Errorf("key %q, want %q", tc.got, tc.want)
		}
	}
	for _, c := range []netip.Prefix{c4, c6} {
		if got, ok := parseBlockKey(BlockKey(c)); !ok || got != c {
			t.Errorf("parseBlockKey(%s) = %v %v", BlockKey(c), got, ok)
		}
		if h, got, ok := parseAffinityKey(AffinityKey("n1", c)); !ok || got != c || h != "n1" {
			t.Errorf("parseAffinityKey = %v %v %v", h, got, ok)
		}
	}
	for _, bad := range []string{"/calico/ipam/v2/assignment/ipv4/block/10.0.0.1-26", "/calico/ipam/v2/assignment/ipv6/block/10.0.0.0-26",
		"/calico/ipam/v2/assignment/ipv4/block/junk"} {
		if _, ok := parseBlockKey(bad); ok {
			t.Errorf("parseBlockKey(%q) accepted", bad)
		}
	}
	if checkHandleID("a/b") == nil || checkHandleID("") == nil || checkHandleID("k8s-pod-network.x") != nil {
		t.Error("checkHandleID")
	}
}

// A block written by Calico decodes, and ours uses Calico's field names.
func TestBlockJSON(t *testing.T) {
	calico := `{"cidr":"10.0.0.0/30","affinity":"host:node1","allocations":[0,null,1,null],"unallocated":[1,3],
	"attributes":[{"handle_id":"k8s-pod-network.a","secondary":{"namespace":"default","node":"node1","pod":"p1"}},
	{"handle_id":"ipip-tunnel-addr-node1","secondary":{"node":"node1","type":"ipipTunnelAddress"}}],
	"sequenceNumber":7,"sequenceNumberForAllocation":{"0":3,"2":5},"deleted":false}`
	cidr := netip.MustParsePrefix("10.0.0.0/30")
	b, err := decodeBlock(cidr, []byte(calico))
	if err != nil {
		t.Fatal(err)
	}
	if b.Host() != "node1" || b.InUse() != 2 || b.SeqFor(2) != 5 {
		t.Fatalf("decoded %+v", b)
	}
	if h, ok := b.HandleOf(2); !ok || h != "ipip-tunnel-addr-node1" {
		t.Fatalf("handle of ordinal 2: %q %v", h, ok)
	}
	al := b.allocation(0)
	if al.IP != netip.MustParseAddr("10.0.0.0") || al.Attrs[AttrPod] != "p1" || al.SequenceNumber != 3 {
		t.Fatalf("allocation %+v", al)
	}
	out := string(mustJSON(newBlock(cidr, "n2", time.Unix(1, 0))))
	for _, f := range []string{`"cidr":"10.0.0.0/30"`, `"affinity":"host:n2"`, `"allocations":[null,null,null,null]`,
		`"unallocated":[0,1,2,3]`, `"attributes":[]`, `"sequenceNumber":1000000000`, `"sequenceNumberForAllocation":{}`, `"deleted":false`} {
		if !strings.Contains(out, f) {
			t.Errorf("new block JSON %s lacks %s", out, f)
		}
	}
	var h Handle
	if err := json.Unmarshal([]byte(`{"block":{"10.0.0.0/26":2},"deleted":false}`), &h); err != nil || h.Block["10.0.0.0/26"] != 2 {
		t.Fatalf("handle: %+v %v", h, err)
	}
}

func TestBlockOps(t *testing.T) {
	b := newBlock(netip.MustParsePrefix("10.0.0.0/29"), "n", time.Unix(0, 100))
	h1, h2 := "h1", "h2"
	skip := reserved{netip.MustParsePrefix("10.0.0.1/32")}
	got := b.take(3, Attribute{HandleID: &h1}, skip)
	if want := []int{0, 2, 3}; !equalInts(got, want) {
		t.Fatalf("take = %v, want %v (reserved .1 skipped)", got, want)
	}
	if b.Unallocated[0] != 1 {
		t.Fatalf("reserved ordinal lost its place: %v", b.Unallocated)
	}
	if !b.assign(7, Attribute{HandleID: &h2}) || b.assign(7, Attribute{HandleID: &h2}) {
		t.Fatal("assign")
	}
	if len(b.Attributes) != 2 {
		t.Fatalf("attributes %v", b.Attributes)
	}
	if c := b.release([]int{0, 2, 3}); c["h1"] != 3 {
		t.Fatalf("release counts %v", c)
	}
	// The attribute of h1 is gone and h2's index was renumbered.
	if len(b.Attributes) != 1 || *b.Allocations[7] != 0 {
		t.Fatalf("after release: attrs %v alloc %v", b.Attributes, b.Allocations)
	}
	// Released ordinals go to the tail of the FIFO.
	if u := b.Unallocated; !equalInts(u[len(u)-3:], []int{0, 2, 3}) {
		t.Fatalf("unallocated %v", u)
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestAddrMath(t *testing.T) {
	p6 := netip.MustParsePrefix("fd00::/48")
	if n := numBlocks(p6, 122); n != 1<<62 {
		t.Fatalf("numBlocks capped = %d", n)
	}
	if got := nthBlock(p6, 122, 3); got.String() != "fd00::c0/122" {
		t.Fatalf("nthBlock v6 = %s", got)
	}
	if got := nthBlock(p6, 122, 1<<58); got.String() != "fd00:0:0:1::/122" {
		t.Fatalf("nthBlock v6 high = %s", got)
	}
	p4 := netip.MustParsePrefix("10.1.0.0/16")
	if got := nthBlock(p4, 26, 5); got.String() != "10.1.1.64/26" {
		t.Fatalf("nthBlock v4 = %s", got)
	}
	if got := addOffset(netip.MustParseAddr("10.0.0.250"), 10); got.String() != "10.0.1.4" {
		t.Fatalf("addOffset = %s", got)
	}
	if got := addOffset(netip.MustParseAddr("::ffff:ffff:ffff:ffff"), 1); got.String() != "0:0:0:1::" {
		t.Fatalf("addOffset carry = %s", got)
	}
}
