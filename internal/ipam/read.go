package ipam

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v3 "github.com/calico-go/calico/api/v3"
	"github.com/calico-go/calico/internal/datastore"
)

// Config returns the IPAM configuration (the document at ConfigKey) as an
// IPAMConfigurationSpec. Without a stored document it is the default:
// strictAffinity false, autoAllocateBlocks true, maxBlocksPerHost 0 (meaning
// v3.DefaultMaxBlocksPerHost).
func (a *Allocator) Config(ctx context.Context) (v3.IPAMConfigurationSpec, error) {
	spec, _, _, err := a.config(ctx)
	return spec, err
}

// config reads the stored document: the spec, the resource metadata the
// datastore backend keeps beside it (nil if none) and the revision (0 when
// there is no document).
func (a *Allocator) config(ctx context.Context) (_ v3.IPAMConfigurationSpec, metadata json.RawMessage, rev int64, _ error) {
	kvs, err := a.store.Get(ctx, ConfigKey)
	if err != nil {
		return v3.IPAMConfigurationSpec{}, nil, 0, fmt.Errorf("read IPAM config: %w", err)
	}
	if kvs[0].Revision == 0 {
		return v3.IPAMConfigurationSpec{AutoAllocateBlocks: ptr(true)}, nil, 0, nil
	}
	spec, metadata, err := decodeConfig(kvs[0].Value)
	return spec, metadata, kvs[0].Revision, err
}

func decodeConfig(data []byte) (v3.IPAMConfigurationSpec, json.RawMessage, error) {
	var sc StoredConfig
	if err := json.Unmarshal(data, &sc); err != nil {
		return v3.IPAMConfigurationSpec{}, nil, fmt.Errorf("decode IPAM config %s: %w", ConfigKey, err)
	}
	spec := v3.IPAMConfigurationSpec{StrictAffinity: sc.StrictAffinity, MaxBlocksPerHost: int32(sc.MaxBlocksPerHost),
		AutoAllocateBlocks: ptr(sc.AutoAllocateBlocks), IPCooldownSeconds: sc.IPCooldownSeconds}
	if sc.KubeVirtVMAddressPersistence != "" {
		spec.KubeVirtVMAddressPersistence = ptr(v3.VMAddressPersistence(sc.KubeVirtVMAddressPersistence))
	}
	return spec, sc.Metadata, nil
}

func encodeConfig(spec v3.IPAMConfigurationSpec, metadata json.RawMessage) []byte {
	sc := StoredConfig{StrictAffinity: spec.StrictAffinity, AutoAllocateBlocks: spec.AutoAllocateBlocks == nil || *spec.AutoAllocateBlocks,
		MaxBlocksPerHost: int(spec.MaxBlocksPerHost), IPCooldownSeconds: spec.IPCooldownSeconds, Metadata: metadata}
	if spec.KubeVirtVMAddressPersistence != nil {
		sc.KubeVirtVMAddressPersistence = string(*spec.KubeVirtVMAddressPersistence)
	}
	return mustJSON(sc)
}

// SetConfig validates spec (as IPAMConfiguration "default") and stores it.
// The resource's metadata (labels, annotations) is kept.
func (a *Allocator) SetConfig(ctx context.Context, spec v3.IPAMConfigurationSpec) error {
	return a.UpdateConfig(ctx, func(s *v3.IPAMConfigurationSpec) error {
		*s = spec
		return nil
	})
}

// UpdateConfig reads the configuration, lets fn change it, validates the
// result and writes it back with a compare-and-swap (retried on conflict).
// The resource's metadata stored with it (labels and annotations set with
// `calicoctl apply`, uid, creationTimestamp) is written back unchanged.
func (a *Allocator) UpdateConfig(ctx context.Context, fn func(*v3.IPAMConfigurationSpec) error) error {
	for attempt := 0; attempt < a.maxRetries; attempt++ {
		spec, metadata, rev, err := a.config(ctx)
		if err == nil {
			if err := fn(&spec); err != nil {
				return err
			}
			res := v3.NewIPAMConfiguration()
			res.ObjectMeta = metav1.ObjectMeta{Name: "default"}
			res.Spec = spec
			if err := v3.Validate(res); err != nil {
				return fmt.Errorf("set IPAM config: %w", err)
			}
			op := Op{Type: OpPut, Key: ConfigKey, Value: encodeConfig(spec, metadata), Revision: rev}
			if _, err = a.txn(ctx, op); err == nil {
				return nil
			}
		}
		if perr := a.pause(ctx, attempt, err); perr != nil {
			return fmt.Errorf("set IPAM config: %w", perr)
		}
	}
	return fmt.Errorf("set IPAM config: %w", ErrTooManyRetries)
}

// Allocation is one allocated address as stored.
type Allocation struct {
	IP    netip.Addr   `json:"ip"`
	Block netip.Prefix `json:"block"`
	// BlockHost is the node the block is affine to ("" if none).
	BlockHost string `json:"blockHost,omitempty"`
	// HandleID is the owner ("" when the allocation has none).
	HandleID       string            `json:"handle,omitempty"`
	Attrs          map[string]string `json:"attrs,omitempty"`
	SequenceNumber uint64            `json:"sequenceNumber"`
}

// Borrowed reports whether the address is used by a node other than the
// block's (calicoctl ipam show --show-borrowed).
func (al Allocation) Borrowed() bool {
	n := al.Attrs[AttrNode]
	return n != "" && n != al.BlockHost
}

func (b *Block) allocation(ord int) Allocation {
	at := b.attr(ord)
	al := Allocation{IP: b.Addr(ord), Block: b.CIDR, BlockHost: b.Host(), Attrs: at.Secondary, SequenceNumber: b.SeqFor(ord)}
	al.HandleID, _ = b.HandleOf(ord)
	return al
}

// AllocationList returns the block's allocated addresses in address order.
func (b *Block) AllocationList() []Allocation {
	var out []Allocation
	for o, at := range b.Allocations {
		if at != nil {
			out = append(out, b.allocation(o))
		}
	}
	return out
}

// GetAssignmentAttributes returns the allocation of ip, or an error
// wrapping ErrNotAssigned.
func (a *Allocator) GetAssignmentAttributes(ctx context.Context, ip netip.Addr) (Allocation, error) {
	ip = ip.Unmap()
	cidr, ok, err := a.findBlock(ctx, ip)
	if err != nil {
		return Allocation{}, fmt.Errorf("look up %s: %w", ip, err)
	}
	if !ok {
		return Allocation{}, fmt.Errorf("%s: %w", ip, ErrNotAssigned)
	}
	kvs, err := a.store.Get(ctx, BlockKey(cidr))
	if err != nil {
		return Allocation{}, fmt.Errorf("look up %s: %w", ip, err)
	}
	if kvs[0].Revision == 0 {
		return Allocation{}, fmt.Errorf("%s: %w", ip, ErrNotAssigned)
	}
	b, err := decodeBlock(cidr, kvs[0].Value)
	if err != nil {
		return Allocation{}, err
	}
	ord, _ := b.Ordinal(ip)
	if _, used := b.HandleOf(ord); !used {
		return Allocation{}, fmt.Errorf("%s: %w", ip, ErrNotAssigned)
	}
	return b.allocation(ord), nil
}

// IPsByHandle returns the addresses of a handle, or an error wrapping
// datastore.ErrNotFound when the handle does not exist.
func (a *Allocator) IPsByHandle(ctx context.Context, handleID string) ([]netip.Addr, error) {
	if err := checkHandleID(handleID); err != nil {
		return nil, err
	}
	kvs, err := a.store.Get(ctx, HandleKey(handleID))
	if err != nil {
		return nil, fmt.Errorf("read handle %q: %w", handleID, err)
	}
	if kvs[0].Revision == 0 {
		return nil, fmt.Errorf("handle %q: %w", handleID, datastore.ErrNotFound)
	}
	h, err := decodeHandle(handleID, kvs[0].Value)
	if err != nil {
		return nil, err
	}
	if h.Deleted {
		return nil, fmt.Errorf("handle %q: %w", handleID, datastore.ErrNotFound)
	}
	var cidrs []netip.Prefix
	for s := range h.Block {
		if c, err := netip.ParsePrefix(s); err == nil {
			cidrs = append(cidrs, c)
		}
	}
	sortPrefixes(cidrs)
	if len(cidrs) == 0 {
		return nil, nil
	}
	bkvs, err := a.store.Get(ctx, blockKeys(cidrs)...)
	if err != nil {
		return nil, fmt.Errorf("read blocks of handle %q: %w", handleID, err)
	}
	var out []netip.Addr
	for i, c := range cidrs {
		if bkvs[i].Revision == 0 {
			continue
		}
		b, err := decodeBlock(c, bkvs[i].Value)
		if err != nil {
			return nil, err
		}
		for _, o := range b.ordinalsOf(handleID) {
			out = append(out, b.Addr(o))
		}
	}
	return out, nil
}

// BlockInfo is a stored block with its revision.
type BlockInfo struct {
	Block    *Block
	Revision int64
}

// AffinityInfo is a stored affinity.
type AffinityInfo struct {
	Host     string        `json:"host"`
	CIDR     netip.Prefix  `json:"cidr"`
	State    AffinityState `json:"state"`
	Deleted  bool          `json:"deleted,omitempty"`
	Revision int64         `json:"revision"`
}

// HandleInfo is a stored handle.
type HandleInfo struct {
	ID       string
	Handle   *Handle
	Revision int64
}

// Snapshot is every IPAM document at one store revision.
type Snapshot struct {
	Revision   int64
	Blocks     []BlockInfo // in CIDR order
	Affinities []AffinityInfo
	Handles    []HandleInfo // in ID order
	Config     v3.IPAMConfigurationSpec
	// Unreadable lists keys whose documents did not decode.
	Unreadable []string
}

// Snapshot reads the whole IPAM prefix in one consistent read.
func (a *Allocator) Snapshot(ctx context.Context) (*Snapshot, error) {
	kvs, rev, err := a.store.List(ctx, Prefix)
	if err != nil {
		return nil, fmt.Errorf("read IPAM state: %w", err)
	}
	s := &Snapshot{Revision: rev, Config: v3.IPAMConfigurationSpec{AutoAllocateBlocks: ptr(true)}}
	for _, kv := range kvs {
		if err := s.add(kv); err != nil {
			a.log.Warn("unreadable IPAM document", "key", kv.Key, "error", err)
			s.Unreadable = append(s.Unreadable, kv.Key)
		}
	}
	sort.Slice(s.Blocks, func(i, j int) bool {
		return s.Blocks[i].Block.CIDR.Addr().Less(s.Blocks[j].Block.CIDR.Addr())
	})
	return s, nil
}

func (s *Snapshot) add(kv KV) error {
	switch {
	case kv.Key == ConfigKey:
		spec, _, err := decodeConfig(kv.Value)
		if err != nil {
			return err
		}
		s.Config = spec
	case strings.HasPrefix(kv.Key, blockPrefix):
		cidr, ok := parseBlockKey(kv.Key)
		if !ok {
			return errors.New("not a block key")
		}
		b, err := decodeBlock(cidr, kv.Value)
		if err != nil {
			return err
		}
		s.Blocks = append(s.Blocks, BlockInfo{Block: b, Revision: kv.Revision})
	case strings.HasPrefix(kv.Key, hostPrefix):
		host, cidr, ok := parseAffinityKey(kv.Key)
		if !ok {
			return errors.New("not an affinity key")
		}
		af, err := decodeAffinity(kv.Key, kv.Value)
		if err != nil {
			return err
		}
		s.Affinities = append(s.Affinities, AffinityInfo{Host: host, CIDR: cidr, State: af.State, Deleted: af.Deleted, Revision: kv.Revision})
	case strings.HasPrefix(kv.Key, handlePrefix):
		id := strings.TrimPrefix(kv.Key, handlePrefix)
		h, err := decodeHandle(id, kv.Value)
		if err != nil {
			return err
		}
		s.Handles = append(s.Handles, HandleInfo{ID: id, Handle: h, Revision: kv.Revision})
	}
	return nil
}

// Allocations returns every allocated address, in block order.
func (s *Snapshot) Allocations() []Allocation {
	var out []Allocation
	for _, bi := range s.Blocks {
		if !bi.Block.Deleted {
			out = append(out, bi.Block.AllocationList()...)
		}
	}
	return out
}

// Lookup returns the allocation of ip, if any.
func (s *Snapshot) Lookup(ip netip.Addr) (Allocation, bool) {
	ip = ip.Unmap()
	for _, bi := range s.Blocks {
		b := bi.Block
		if ord, ok := b.Ordinal(ip); ok && !b.Deleted {
			if _, used := b.HandleOf(ord); used {
				return b.allocation(ord), true
			}
		}
	}
	return Allocation{}, false
}

// Usage counts the addresses of a CIDR (a pool or a block).
type Usage struct {
	CIDR netip.Prefix
	// Total is the size of the CIDR; InUse the allocated addresses;
	// Reserved the addresses covered by reservations (may overlap InUse).
	Total, InUse, Reserved uint64
}

// Usage counts pool-wide use for calicoctl ipam show. reservations may be
// nil.
func (s *Snapshot) Usage(cidr netip.Prefix, reservations []v3.IPReservation) Usage {
	u := Usage{CIDR: cidr}
	if bits := cidr.Addr().BitLen() - cidr.Bits(); bits < 64 {
		u.Total = 1 << bits
	} else {
		u.Total = ^uint64(0)
	}
	for _, bi := range s.Blocks {
		if contains(cidr, bi.Block.CIDR) && !bi.Block.Deleted {
			u.InUse += uint64(bi.Block.InUse())
		}
	}
	for _, r := range parseReservations(discard, reservations) {
		if !r.Overlaps(cidr) {
			continue
		}
		in := r
		if cidr.Bits() > r.Bits() {
			in = cidr
		}
		if bits := in.Addr().BitLen() - in.Bits(); bits < 64 {
			u.Reserved += 1 << bits
		}
	}
	return u
}
