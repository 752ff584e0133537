package ipam

import (
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"time"
)

// newBlock returns an empty block affine to host (or to nobody when host is
// empty). Its sequence number starts at the current time so that a block
// deleted and created again never repeats an allocation's sequence number.
func newBlock(cidr netip.Prefix, host string, now time.Time) *Block {
	n := 1 << (cidr.Addr().BitLen() - cidr.Bits())
	b := &Block{
		CIDR:                        cidr,
		Allocations:                 make([]*int, n),
		Unallocated:                 make([]int, n),
		Attributes:                  []Attribute{},
		SequenceNumber:              uint64(now.UnixNano()),
		SequenceNumberForAllocation: map[string]uint64{},
	}
	for i := range b.Unallocated {
		b.Unallocated[i] = i
	}
	if host != "" {
		a := affinityPrefix + host
		t := now.UTC().Format(time.RFC3339)
		b.Affinity, b.AffinityClaimTime = &a, &t
	}
	return b
}

// encodeNext bumps the sequence number (every write does) and encodes.
func (b *Block) encodeNext() []byte {
	b.SequenceNumber++
	return mustJSON(b)
}

// free reports how many addresses could still be allocated, not counting
// reserved ones.
func (b *Block) free(skip reserved) int {
	if len(skip) == 0 {
		return len(b.Unallocated)
	}
	n := 0
	for _, o := range b.Unallocated {
		if !skip.has(b.Addr(o)) {
			n++
		}
	}
	return n
}

// take allocates up to n addresses from the head of the free FIFO, skipping
// reserved ones (which keep their place), and returns their ordinals.
func (b *Block) take(n int, attr Attribute, skip reserved) []int {
	var got []int
	rest := b.Unallocated[:0:0]
	idx := -1
	for i, o := range b.Unallocated {
		if len(got) == n {
			rest = append(rest, b.Unallocated[i:]...)
			break
		}
		if skip.has(b.Addr(o)) || b.Allocations[o] != nil {
			rest = append(rest, o)
			continue
		}
		if idx < 0 {
			idx = b.attrIndex(attr)
		}
		b.Allocations[o] = ptr(idx)
		b.SequenceNumberForAllocation[strconv.Itoa(o)] = b.SequenceNumber
		got = append(got, o)
	}
	b.Unallocated = rest
	return got
}

// assign allocates the address at ord; false if it is in use.
func (b *Block) assign(ord int, attr Attribute) bool {
	if b.Allocations[ord] != nil {
		return false
	}
	b.Allocations[ord] = ptr(b.attrIndex(attr))
	b.SequenceNumberForAllocation[strconv.Itoa(ord)] = b.SequenceNumber
	b.Unallocated = slices.DeleteFunc(b.Unallocated, func(o int) bool { return o == ord })
	return true
}

// release frees ordinals (which must be allocated), returns them to the
// tail of the FIFO and drops attributes nothing refers to any more. It
// returns how many addresses each handle lost.
func (b *Block) release(ords []int) map[string]int {
	byHandle := map[string]int{}
	for _, o := range ords {
		if h, ok := b.HandleOf(o); ok {
			if h != "" {
				byHandle[h]++
			}
			b.Allocations[o] = nil
			b.Unallocated = append(b.Unallocated, o)
			delete(b.SequenceNumberForAllocation, strconv.Itoa(o))
		}
	}
	b.compactAttributes()
	return byHandle
}

// ordinalsOf returns the allocated ordinals owned by handle.
func (b *Block) ordinalsOf(handle string) []int {
	var out []int
	for o := range b.Allocations {
		if h, ok := b.HandleOf(o); ok && h == handle {
			out = append(out, o)
		}
	}
	return out
}

// attrIndex returns the index of an equal attribute, appending it if new.
func (b *Block) attrIndex(attr Attribute) int {
	for i, a := range b.Attributes {
		if sameAttr(a, attr) {
			return i
		}
	}
	b.Attributes = append(b.Attributes, attr)
	return len(b.Attributes) - 1
}

func sameAttr(a, b Attribute) bool {
	if (a.HandleID == nil) != (b.HandleID == nil) || (a.HandleID != nil && *a.HandleID != *b.HandleID) {
		return false
	}
	return a.ReleasedAt == nil && b.ReleasedAt == nil && maps.Equal(a.Secondary, b.Secondary)
}

// compactAttributes removes unreferenced attributes and renumbers the rest.
func (b *Block) compactAttributes() {
	used := make([]bool, len(b.Attributes))
	for _, a := range b.Allocations {
		if a != nil && *a >= 0 && *a < len(used) {
			used[*a] = true
		}
	}
	newIdx := make([]int, len(b.Attributes))
	kept := b.Attributes[:0:0]
	for i, a := range b.Attributes {
		if used[i] {
			newIdx[i] = len(kept)
			kept = append(kept, a)
		}
	}
	if len(kept) == len(b.Attributes) {
		return
	}
	for o, a := range b.Allocations {
		if a != nil && *a >= 0 && *a < len(newIdx) {
			b.Allocations[o] = ptr(newIdx[*a])
		}
	}
	b.Attributes = kept
}

func ptr[T any](v T) *T { return &v }
