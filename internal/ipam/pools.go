package ipam

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"sort"
	"strings"

	v3 "github.com/calico-go/calico/api/v3"
	"github.com/calico-go/calico/internal/selector"
	"github.com/calico-go/calico/pkg/client"
)

// Resources supplies the IP pools and reservations IPAM allocates against.
type Resources interface {
	IPPools(ctx context.Context) ([]v3.IPPool, error)
	IPReservations(ctx context.Context) ([]v3.IPReservation, error)
}

// StaticResources is a fixed set of pools and reservations.
type StaticResources struct {
	Pools        []v3.IPPool
	Reservations []v3.IPReservation
}

// IPPools implements Resources.
func (s StaticResources) IPPools(context.Context) ([]v3.IPPool, error) { return s.Pools, nil }

// IPReservations implements Resources.
func (s StaticResources) IPReservations(context.Context) ([]v3.IPReservation, error) {
	return s.Reservations, nil
}

// ClientResources reads pools and reservations through the typed client.
func ClientResources(c *client.Client) Resources { return clientResources{c} }

type clientResources struct{ c *client.Client }

func (r clientResources) IPPools(ctx context.Context) ([]v3.IPPool, error) {
	ps, err := client.List[*v3.IPPool](ctx, r.c, "")
	if err != nil {
		return nil, fmt.Errorf("list IP pools: %w", err)
	}
	out := make([]v3.IPPool, len(ps))
	for i, p := range ps {
		out[i] = *p
	}
	return out, nil
}

func (r clientResources) IPReservations(ctx context.Context) ([]v3.IPReservation, error) {
	rs, err := client.List[*v3.IPReservation](ctx, r.c, "")
	if err != nil {
		return nil, fmt.Errorf("list IP reservations: %w", err)
	}
	out := make([]v3.IPReservation, len(rs))
	for i, r := range rs {
		out[i] = *r
	}
	return out, nil
}

// pool is an IPPool parsed for allocation.
type pool struct {
	name      string
	cidr      netip.Prefix
	blockSize int
	disabled  bool // disabled or terminating
	manual    bool
	uses      map[v3.IPPoolAllowedUse]bool
	nodeSel   *selector.Selector // never nil
	nsSel     *selector.Selector // nil: any namespace
}

func (p *pool) String() string { return fmt.Sprintf("%q (%s)", p.name, p.cidr) }

// parsePools turns IPPools into pools with defaults applied; pools that do
// not parse are skipped with a warning.
func parsePools(log *slog.Logger, in []v3.IPPool) []*pool {
	out := make([]*pool, 0, len(in))
	for i := range in {
		ip := in[i].DeepCopy()
		v3.Default(ip)
		s := &ip.Spec
		cidr, err := netip.ParsePrefix(s.CIDR)
		if err != nil || cidr != cidr.Masked() {
			log.Warn("skipping IP pool with a bad CIDR", "pool", ip.Name, "cidr", s.CIDR)
			continue
		}
		p := &pool{name: ip.Name, cidr: cidr, blockSize: s.BlockSize, disabled: s.Disabled || ip.DeletionTimestamp != nil,
			manual: s.AssignmentMode != nil && *s.AssignmentMode == v3.AssignmentModeManual,
			uses:   map[v3.IPPoolAllowedUse]bool{}}
		if p.blockSize < cidr.Bits() || p.blockSize > cidr.Addr().BitLen() {
			// A block larger than the pool (allowed on a disabled pool) or a
			// nonsense size: nothing can be allocated from it.
			p.disabled = true
			p.blockSize = cidr.Addr().BitLen()
		}
		for _, u := range s.AllowedUses {
			p.uses[u] = true
		}
		if p.nodeSel, err = selector.Parse(s.NodeSelector); err != nil {
			log.Warn("skipping IP pool with a bad nodeSelector", "pool", ip.Name, "error", err)
			continue
		}
		if strings.TrimSpace(s.NamespaceSelector) != "" {
			if p.nsSel, err = selector.Parse(s.NamespaceSelector); err != nil {
				log.Warn("skipping IP pool with a bad namespaceSelector", "pool", ip.Name, "error", err)
				continue
			}
		}
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// poolFor returns the pool containing addr, or nil.
func poolFor(pools []*pool, addr netip.Addr) *pool {
	for _, p := range pools {
		if p.cidr.Contains(addr) {
			return p
		}
	}
	return nil
}

// poolFilter is what a request asks of its pools.
type poolFilter struct {
	v6         bool
	requested  []string // names or CIDRs; empty: every automatic pool
	use        v3.IPPoolAllowedUse
	node       string
	nodeLabels map[string]string
	// nsLabels are the namespace's labels (with projectcalico.org/name);
	// nil when the request has no namespace.
	nsLabels map[string]string
}

// why returns the reason a pool cannot serve f, or nil.
func (f *poolFilter) why(p *pool) error {
	switch {
	case p.cidr.Addr().Is6() != f.v6:
		return fmt.Errorf("pool %s is not an IPv%d pool: %w", p, map[bool]int{false: 4, true: 6}[f.v6], ErrPoolNotAllowed)
	case p.disabled:
		return fmt.Errorf("pool %s: %w", p, ErrPoolDisabled)
	case !p.uses[f.use]:
		return fmt.Errorf("pool %s does not allow use %s: %w", p, f.use, ErrPoolNotAllowed)
	case !p.nodeSel.EvaluateMap(f.nodeLabels):
		return fmt.Errorf("pool %s: nodeSelector does not match node %q: %w", p, f.node, ErrPoolNotAllowed)
	case p.nsSel != nil && (f.nsLabels == nil || !p.nsSel.EvaluateMap(f.nsLabels)):
		return fmt.Errorf("pool %s: namespaceSelector does not match the namespace: %w", p, ErrPoolNotAllowed)
	}
	return nil
}

// selectPools returns the pools a request may allocate from, in order.
// Requested pools must all exist and be usable; without a request every
// usable Automatic pool qualifies.
func selectPools(all []*pool, f *poolFilter) ([]*pool, error) {
	if len(f.requested) > 0 {
		out := make([]*pool, 0, len(f.requested))
		for _, r := range f.requested {
			p := findPool(all, r)
			if p == nil {
				return nil, fmt.Errorf("pool %q: %w", r, ErrPoolNotFound)
			}
			if err := f.why(p); err != nil {
				return nil, err
			}
			out = append(out, p)
		}
		return out, nil
	}
	var out []*pool
	for _, p := range all {
		if !p.manual && f.why(p) == nil {
			out = append(out, p)
		}
	}
	if len(out) == 0 {
		fam := "IPv4"
		if f.v6 {
			fam = "IPv6"
		}
		return nil, fmt.Errorf("no enabled %s pool allows %s on node %q: %w", fam, f.use, f.node, ErrNoPools)
	}
	return out, nil
}

// findPool finds a pool by name or by CIDR.
func findPool(all []*pool, ref string) *pool {
	for _, p := range all {
		if p.name == ref {
			return p
		}
	}
	if c, err := netip.ParsePrefix(ref); err == nil {
		for _, p := range all {
			if p.cidr == c.Masked() {
				return p
			}
		}
	}
	return nil
}

// reserved is the union of IPReservation CIDRs.
type reserved []netip.Prefix

func parseReservations(log *slog.Logger, in []v3.IPReservation) reserved {
	var out reserved
	for _, r := range in {
		for _, c := range r.Spec.ReservedCIDRs {
			p, err := netip.ParsePrefix(c)
			if err != nil {
				a, aerr := netip.ParseAddr(c)
				if aerr != nil {
					log.Warn("skipping bad reserved CIDR", "reservation", r.Name, "cidr", c)
					continue
				}
				p = netip.PrefixFrom(a, a.BitLen())
			}
			out = append(out, p.Masked())
		}
	}
	return out
}

func (r reserved) has(a netip.Addr) bool {
	for _, p := range r {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// covers reports whether every address of block is reserved by one CIDR.
func (r reserved) covers(block netip.Prefix) bool {
	for _, p := range r {
		if contains(p, block) {
			return true
		}
	}
	return false
}
