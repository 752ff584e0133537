package ipam

import (
	"encoding/binary"
	"hash/fnv"
	"math/bits"
	"net/netip"
)

// u128 is an address as a 128-bit number (IPv4 in the low 32 bits).
type u128 struct{ hi, lo uint64 }

func toU128(a netip.Addr) u128 {
	if a.Is4() {
		b := a.As4()
		return u128{lo: uint64(binary.BigEndian.Uint32(b[:]))}
	}
	b := a.As16()
	return u128{hi: binary.BigEndian.Uint64(b[:8]), lo: binary.BigEndian.Uint64(b[8:])}
}

func fromU128(v u128, v4 bool) netip.Addr {
	if v4 {
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], uint32(v.lo))
		return netip.AddrFrom4(b)
	}
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], v.hi)
	binary.BigEndian.PutUint64(b[8:], v.lo)
	return netip.AddrFrom16(b)
}

func (v u128) add(w u128) u128 {
	lo, c := bits.Add64(v.lo, w.lo, 0)
	return u128{hi: v.hi + w.hi + c, lo: lo}
}

// shl returns n << s for s < 128.
func shl(n uint64, s int) u128 {
	switch {
	case s == 0:
		return u128{lo: n}
	case s >= 64:
		return u128{hi: n << (s - 64)}
	}
	return u128{hi: n >> (64 - s), lo: n << s}
}

// addOffset returns a + off.
func addOffset(a netip.Addr, off uint64) netip.Addr {
	return fromU128(toU128(a).add(u128{lo: off}), a.Is4())
}

// diff returns the low 64 bits of a - b.
func diff(a, b netip.Addr) uint64 { return toU128(a).lo - toU128(b).lo }

// maxBlockIndexBits caps how many blocks of a huge IPv6 pool we consider.
const maxBlockIndexBits = 62

// numBlocks returns how many blocks of size blockBits fit in pool (capped at
// 2^62).
func numBlocks(pool netip.Prefix, blockBits int) uint64 {
	n := blockBits - pool.Bits()
	if n < 0 {
		return 0
	}
	if n > maxBlockIndexBits {
		n = maxBlockIndexBits
	}
	return 1 << n
}

// nthBlock returns the i-th block of size blockBits in pool.
func nthBlock(pool netip.Prefix, blockBits int, i uint64) netip.Prefix {
	base := toU128(pool.Masked().Addr())
	a := fromU128(base.add(shl(i, pool.Addr().BitLen()-blockBits)), pool.Addr().Is4())
	return netip.PrefixFrom(a, blockBits)
}

// blockFor returns the block of size blockBits that contains addr.
func blockFor(addr netip.Addr, blockBits int) netip.Prefix {
	p, _ := addr.Prefix(blockBits)
	return p
}

// hostHash seeds the per-host pseudo-random order of block scans.
func hostHash(host string) uint64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(host))
	return h.Sum64()
}

// contains reports whether outer covers all of inner.
func contains(outer, inner netip.Prefix) bool {
	return outer.Bits() <= inner.Bits() && outer.Contains(inner.Addr())
}
