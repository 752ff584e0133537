package nft

import (
	"net/netip"

	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

type masquerade struct{}

// Masquerade rewrites the packet's source to the address of its output
// interface (base chains of type nat at the postrouting hook only). Like
// every NAT statement it ends the evaluation of the nat chain.
func Masquerade() Stmt { return masquerade{} }

func (masquerade) text() string     { return "masquerade" }
func (masquerade) build(b *builder) { b.add(&expr.Masq{}) }

type snat struct{ addr netip.Addr }

// SNAT rewrites the packet's source address to addr (base chains of type
// nat at the postrouting hook only). In the inet family it applies to
// packets of addr's family only (the driver adds the guard).
func SNAT(addr netip.Addr) Stmt { return snat{addr: addr.Unmap()} }

func (s snat) text() string {
	f := IPv4
	if s.addr.Is6() {
		f = IPv6
	}
	return "snat " + f.String() + " to " + s.addr.String()
}

func (s snat) build(b *builder) {
	f, fam := IPv4, uint32(unix.NFPROTO_IPV4)
	if s.addr.Is6() {
		f, fam = IPv6, unix.NFPROTO_IPV6
	}
	b.family(f)
	b.add(&expr.Immediate{Register: reg1, Data: s.addr.AsSlice()},
		&expr.NAT{Type: expr.NATTypeSourceNAT, Family: fam, RegAddrMin: reg1})
}
