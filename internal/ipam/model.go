package ipam

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Key prefixes of Calico's IPAM layout in etcd.
const (
	Prefix         = "/calico/ipam/v2/"
	blockPrefix    = Prefix + "assignment/"
	hostPrefix     = Prefix + "host/"
	handlePrefix   = Prefix + "handle/"
	ConfigKey      = Prefix + "config"
	affinityPrefix = "host:"
)

// Secondary attribute keys Calico writes on allocations.
const (
	AttrNode      = "node"
	AttrPod       = "pod"
	AttrNamespace = "namespace"
	AttrType      = "type"
	AttrTimestamp = "timestamp"
)

// Allocation types (the "type" attribute) of tunnel addresses.
const (
	TypeIPIPTunnel        = "ipipTunnelAddress"
	TypeVXLANTunnel       = "vxlanTunnelAddress"
	TypeVXLANV6Tunnel     = "vxlanV6TunnelAddress"
	TypeWireguardTunnel   = "wireguardTunnelAddress"
	TypeWireguardV6Tunnel = "wireguardV6TunnelAddress"
)

// AffinityState is the life cycle of a BlockAffinity.
type AffinityState string

// Affinity states. A pending affinity never counts as ownership.
const (
	StatePending         AffinityState = "pending"
	StateConfirmed       AffinityState = "confirmed"
	StatePendingDeletion AffinityState = "pendingDeletion"
)

// Block is Calico's IPAMBlock document (AllocationBlock): one slot per
// address in Allocations holding an index into Attributes or null, a FIFO of
// free ordinals, and sequence numbers that let a release detect reuse.
type Block struct {
	CIDR netip.Prefix `json:"cidr"`
	// Affinity is "host:<node>", "virtual:<name>" or nil.
	Affinity *string `json:"affinity"`
	// AffinityClaimTime is when the affinity was claimed (RFC 3339).
	AffinityClaimTime           *string           `json:"affinityClaimTime,omitempty"`
	Allocations                 []*int            `json:"allocations"`
	Unallocated                 []int             `json:"unallocated"`
	Attributes                  []Attribute       `json:"attributes"`
	SequenceNumber              uint64            `json:"sequenceNumber"`
	SequenceNumberForAllocation map[string]uint64 `json:"sequenceNumberForAllocation"`
	Deleted                     bool              `json:"deleted"`
	// HostAffinity is the pre-v3 spelling of Affinity; read, never written.
	HostAffinity *string `json:"hostAffinity,omitempty"`
}

// Attribute describes the owner of one or more allocations of a block.
type Attribute struct {
	HandleID  *string           `json:"handle_id"`
	Secondary map[string]string `json:"secondary"`
	// ReleasedAt is kept as written by other implementations (address
	// cool-down); this package does not set it.
	ReleasedAt *string `json:"releasedAt,omitempty"`
}

// Handle is Calico's IPAMHandle document: how many addresses the handle owns
// in each block, keyed by block CIDR.
type Handle struct {
	Block   map[string]int `json:"block"`
	Deleted bool           `json:"deleted"`
}

// Affinity is Calico's BlockAffinity document stored at the host key.
type Affinity struct {
	State   AffinityState `json:"state"`
	Deleted bool          `json:"deleted"`
}

// StoredConfig is the document at ConfigKey. The first three fields are
// Calico's; the others extend it (Calico ignores unknown fields).
type StoredConfig struct {
	StrictAffinity               bool   `json:"strict_affinity"`
	AutoAllocateBlocks           bool   `json:"auto_allocate_blocks"`
	MaxBlocksPerHost             int    `json:"maxBlocksPerHost,omitempty"`
	IPCooldownSeconds            *int32 `json:"ipCooldownSeconds,omitempty"`
	KubeVirtVMAddressPersistence string `json:"kubeVirtVMAddressPersistence,omitempty"`
	// Metadata is the metadata of the IPAMConfiguration resource (uid,
	// creationTimestamp, labels, annotations) that the datastore backend
	// stores in the same document. The allocator does not interpret it
	// and writes it back unchanged.
	Metadata json.RawMessage `json:"metadata,omitempty"`
}

func family(p netip.Prefix) string {
	if p.Addr().Is4() {
		return "ipv4"
	}
	return "ipv6"
}

// cidrPart is a CIDR as it appears in a key: "/" replaced by "-".
func cidrPart(p netip.Prefix) string { return strings.Replace(p.String(), "/", "-", 1) }

// BlockKey is the key of the block with this CIDR.
func BlockKey(cidr netip.Prefix) string {
	return blockPrefix + family(cidr) + "/block/" + cidrPart(cidr)
}

// AffinityKey is the key of host's affinity for the block cidr.
func AffinityKey(host string, cidr netip.Prefix) string {
	return hostPrefix + host + "/" + family(cidr) + "/block/" + cidrPart(cidr)
}

// HandleKey is the key of a handle.
func HandleKey(id string) string { return handlePrefix + id }

func blockFamilyPrefix(v6 bool) string {
	if v6 {
		return blockPrefix + "ipv6/block/"
	}
	return blockPrefix + "ipv4/block/"
}

func hostFamilyPrefix(host string, v6 bool) string {
	if v6 {
		return hostPrefix + host + "/ipv6/block/"
	}
	return hostPrefix + host + "/ipv4/block/"
}

func parseCIDRPart(s string) (netip.Prefix, bool) {
	i := strings.LastIndexByte(s, '-')
	if i < 0 {
		return netip.Prefix{}, false
	}
	p, err := netip.ParsePrefix(s[:i] + "/" + s[i+1:])
	if err != nil || p != p.Masked() {
		return netip.Prefix{}, false
	}
	return p, true
}

// parseBlockKey returns the CIDR of a block key.
func parseBlockKey(key string) (netip.Prefix, bool) {
	rest, ok := strings.CutPrefix(key, blockPrefix)
	if !ok {
		return netip.Prefix{}, false
	}
	fam, c, ok := strings.Cut(rest, "/block/")
	if !ok || (fam != "ipv4" && fam != "ipv6") {
		return netip.Prefix{}, false
	}
	p, ok := parseCIDRPart(c)
	if !ok || family(p) != fam {
		return netip.Prefix{}, false
	}
	return p, true
}

// parseAffinityKey returns the host and CIDR of an affinity key.
func parseAffinityKey(key string) (string, netip.Prefix, bool) {
	rest, ok := strings.CutPrefix(key, hostPrefix)
	if !ok {
		return "", netip.Prefix{}, false
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 4 || parts[0] == "" || parts[2] != "block" {
		return "", netip.Prefix{}, false
	}
	p, ok := parseCIDRPart(parts[3])
	if !ok || family(p) != parts[1] {
		return "", netip.Prefix{}, false
	}
	return parts[0], p, true
}

// checkHandleID rejects IDs that cannot be a key segment.
func checkHandleID(id string) error {
	if id == "" || strings.ContainsAny(id, "/\x00") {
		return fmt.Errorf("handle ID %q: %w", id, ErrInvalid)
	}
	return nil
}

// sanitizeHandle strips what old host-local migrations appended to handles.
func sanitizeHandle(h string) string {
	h, _, _ = strings.Cut(h, "\r")
	return h
}

// Host returns the node the block is affine to, or "".
func (b *Block) Host() string {
	a := b.Affinity
	if a == nil && b.HostAffinity != nil {
		return *b.HostAffinity
	}
	if a == nil {
		return ""
	}
	h, ok := strings.CutPrefix(*a, affinityPrefix)
	if !ok {
		return ""
	}
	return h
}

// Size is the number of addresses in the block.
func (b *Block) Size() int { return len(b.Allocations) }

// InUse is the number of allocated addresses.
func (b *Block) InUse() int {
	n := 0
	for _, a := range b.Allocations {
		if a != nil {
			n++
		}
	}
	return n
}

// Empty reports whether no address of the block is allocated.
func (b *Block) Empty() bool { return b.InUse() == 0 }

// Addr returns the address at ordinal ord.
func (b *Block) Addr(ord int) netip.Addr { return addOffset(b.CIDR.Addr(), uint64(ord)) }

// Ordinal returns the position of addr in the block, or false.
func (b *Block) Ordinal(addr netip.Addr) (int, bool) {
	if !b.CIDR.Contains(addr) {
		return 0, false
	}
	return int(diff(addr, b.CIDR.Addr())), true
}

// HandleOf returns the (sanitized) handle of the allocation at ord and
// whether the ordinal is allocated.
func (b *Block) HandleOf(ord int) (string, bool) {
	a := b.attr(ord)
	if a == nil {
		return "", false
	}
	if a.HandleID == nil {
		return "", true
	}
	return sanitizeHandle(*a.HandleID), true
}

// attr returns the attribute of the allocation at ord, or nil when the
// ordinal is free (or its index is out of range).
func (b *Block) attr(ord int) *Attribute {
	if ord < 0 || ord >= len(b.Allocations) || b.Allocations[ord] == nil {
		return nil
	}
	i := *b.Allocations[ord]
	if i < 0 || i >= len(b.Attributes) {
		return &Attribute{}
	}
	return &b.Attributes[i]
}

// SeqFor returns the sequence number recorded for the allocation at ord.
func (b *Block) SeqFor(ord int) uint64 { return b.SequenceNumberForAllocation[strconv.Itoa(ord)] }

func decodeBlock(cidr netip.Prefix, data []byte) (*Block, error) {
	var b Block
	if err := json.Unmarshal(data, &b); err != nil {
		return nil, fmt.Errorf("decode block %s: %w", cidr, err)
	}
	if b.CIDR != cidr || len(b.Allocations) != 1<<(cidr.Addr().BitLen()-cidr.Bits()) {
		return nil, fmt.Errorf("decode block %s: document has cidr %s and %d slots", cidr, b.CIDR, len(b.Allocations))
	}
	if b.SequenceNumberForAllocation == nil {
		b.SequenceNumberForAllocation = map[string]uint64{}
	}
	return &b, nil
}

func decodeHandle(id string, data []byte) (*Handle, error) {
	var h Handle
	if err := json.Unmarshal(data, &h); err != nil {
		return nil, fmt.Errorf("decode handle %s: %w", id, err)
	}
	if h.Block == nil {
		h.Block = map[string]int{}
	}
	return &h, nil
}

func decodeAffinity(key string, data []byte) (*Affinity, error) {
	var a Affinity
	if err := json.Unmarshal(data, &a); err != nil {
		return nil, fmt.Errorf("decode affinity %s: %w", key, err)
	}
	return &a, nil
}

// mustJSON encodes one of this package's documents, which cannot fail.
func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("ipam: encode %T: %v", v, err))
	}
	return b
}
