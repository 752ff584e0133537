package dataplane

import (
	"context"
	"net/netip"
	"testing"

	"github.com/calico-go/calico/internal/testutil/netnstest"
	"github.com/calico-go/calico/internal/testutil/wltest"
)

// BenchmarkRender1000Policies renders and diffs (offline, no kernel) a
// state with 1,100 policies selecting two endpoints, from empty.
func BenchmarkRender1000Policies(b *testing.B) {
	w := &world{t: b, cur: newObjs(), v4only: true}
	var targets []*costTarget
	for i, n := range []int{100, 1000} {
		a := netip.AddrFrom4([4]byte{10, 65, 1, byte(i + 2)})
		targets = append(targets, &costTarget{wl: &wltest.Workload{NS: &netnstest.NS{}, HostIface: "calis" + a.String(), Addr: a}, n: n})
	}
	msgs := diffBatch(newObjs(), costState(w, targets))
	for b.Loop() {
		d, err := New(Options{Offline: true})
		if err != nil {
			b.Fatal(err)
		}
		d.handle(append(append(batch(cfgMsg()), msgs...), dpapiInSync()))
		if err := d.apply(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
}
