package dataplane

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"testing"

	"github.com/calico-go/calico/internal/dpapi"
	"github.com/calico-go/calico/internal/testutil/netnstest"
)

// BenchmarkVXLAN1000 programs the VXLAN device, 1,000 peers (neighbour and
// FDB entries) and 1,000 remote block routes into a fresh namespace
// ("program": from nothing, device included), then measures an apply
// that finds nothing to change (the periodic refresh).
func BenchmarkVXLAN1000(b *testing.B) {
	netnstest.RequireRoot(b)
	h := netnstest.NewHost(b) // uplink 192.0.2.1/24
	m, err := newNetworkManager(Options{NetNSFd: h.Fd()}, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	defer m.close()
	cfg := testConfig()
	m.handle(poolMsg("pool", "10.0.0.0/8", dpapi.EncapAlways, true))
	m.handle(nodeMsg(cfg.NodeName, "192.0.2.1/24", "10.255.255.0", "66:00:00:00:00:01"))
	for i := range 1000 {
		vtep := netip.AddrFrom4([4]byte{10, byte(i >> 10), byte(i >> 2), byte(i&3) * 64})
		name := fmt.Sprintf("node-%d", i)
		m.handle(nodeMsg(name, fmt.Sprintf("172.16.%d.%d/16", i>>8, i&255), vtep.String(),
			fmt.Sprintf("66:00:00:00:%02x:%02x", i>>8, i&255)))
		m.handle(viaVTEP(netip.PrefixFrom(vtep, 26).String(), name, vtep.String()))
	}
	ctx := context.Background()
	b.Run("program", func(b *testing.B) {
		for range b.N {
			b.StopTimer()
			if l, err := h.Handle.LinkByName("vxlan.calico"); err == nil {
				if err := h.Handle.LinkDel(l); err != nil {
					b.Fatal(err)
				}
			}
			b.StartTimer()
			if err := m.apply(ctx, cfg); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("nochange", func(b *testing.B) {
		for range b.N {
			if err := m.apply(ctx, cfg); err != nil {
				b.Fatal(err)
			}
		}
	})
}
