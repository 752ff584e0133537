package ctl

import (
	"context"
	"errors"
	"fmt"
	"math/bits"
	"net/netip"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v3 "github.com/calico-go/calico/api/v3"
	"github.com/calico-go/calico/internal/datastore"
	"github.com/calico-go/calico/pkg/client"
)

func (a *app) ipamSplitCommand() *cobra.Command {
	var cidr, name string
	cmd := &cobra.Command{
		Use:   "split NUMBER (--cidr=CIDR | --name=POOL)",
		Short: "Split an IP pool into NUMBER smaller pools",
		Long: `Split the IP pool given by CIDR or name into NUMBER pools of equal size
(NUMBER must be a power of 2), named split-<pool>-<i>, with the pool's other
settings. The old pool is disabled, the new ones are created and the old one
is deleted; allocated addresses and blocks stay where they are. Each new pool
must still hold whole blocks of the pool's block size.

The datastore must be locked first (calicoctl datastore migrate lock).`,
		Example: "  calicoctl datastore migrate lock\n  calicoctl ipam split 2 --cidr=10.244.0.0/16\n  calicoctl datastore migrate unlock",
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageError{errors.New("ipam split needs one argument: the NUMBER of pools to split into")}
			}
			n, err := strconv.Atoi(args[0])
			if err != nil {
				return usageError{fmt.Errorf("error reading number to split IP pools into. %s is not a valid number", args[0])}
			}
			if cidr == "" && name == "" {
				return usageError{errors.New("no name or CIDR provided. Provide a name or CIDR to denote the IP pool to split")}
			}
			s, err := a.ipam(cmd)
			if err != nil {
				return err
			}
			return a.split(cmd.Context(), s, n, cidr, name)
		},
	}
	cmd.Flags().StringVar(&cidr, "cidr", "", "CIDR of the IP pool to split")
	cmd.Flags().StringVar(&name, "name", "", "name of the IP pool to split")
	return cmd
}

// splitCIDR cuts p into n (a power of 2) equal parts.
func splitCIDR(p netip.Prefix, n int) ([]netip.Prefix, error) {
	if n < 2 || n&(n-1) != 0 {
		return nil, fmt.Errorf("number to split CIDR into is not a valid power of 2: %d", n)
	}
	k := bits.TrailingZeros(uint(n))
	newBits := p.Bits() + k
	if newBits > p.Addr().BitLen() {
		return nil, fmt.Errorf("the CIDR %s is not large enough to be split into %d parts", p, n)
	}
	out := make([]netip.Prefix, 0, n)
	addr := p.Masked().Addr()
	for i := range n {
		c := netip.PrefixFrom(addr, newBits)
		out = append(out, c)
		if i < n-1 {
			addr = nextPrefixAddr(c)
		}
	}
	return out, nil
}

// nextPrefixAddr is the first address after prefix c.
func nextPrefixAddr(c netip.Prefix) netip.Addr {
	b := c.Addr().AsSlice()
	hostBits := len(b)*8 - c.Bits()
	// Add 1 << hostBits to the address, byte by byte from the right.
	idx := len(b) - 1 - hostBits/8
	carry := uint(1) << (hostBits % 8)
	for i := idx; i >= 0 && carry > 0; i-- {
		sum := uint(b[i]) + carry
		b[i] = byte(sum)
		carry = sum >> 8
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// split implements `ipam split`. It checks everything before the first
// write, and undoes what it did when a later step fails.
func (a *app) split(ctx context.Context, s *ipamSession, n int, cidr, name string) error {
	locked, _, err := datastoreLock(ctx, s.c)
	if err != nil {
		return err
	}
	if !locked {
		return errors.New("datastore is not locked. Run the `calicoctl datastore migrate lock` command in order to split the IP pools")
	}
	old, err := findPool(ctx, s.c, cidr, name)
	if err != nil {
		return err
	}
	oldCIDR, err := netip.ParsePrefix(old.Spec.CIDR)
	if err != nil {
		return fmt.Errorf("IP pool %s has an invalid CIDR %q", old.Name, old.Spec.CIDR)
	}
	parts, err := splitCIDR(oldCIDR, n)
	if err != nil {
		return fmt.Errorf("error splitting the CIDR %s into %d CIDRs: %w", old.Spec.CIDR, n, err)
	}
	if bs := old.Spec.BlockSize; bs != 0 && parts[0].Bits() > bs {
		return fmt.Errorf("cannot split IP pool %s into %d pools: each would be a /%d, smaller than the pool's blocks (/%d); "+
			"split into at most %d pools", old.Name, n, parts[0].Bits(), bs, 1<<(bs-oldCIDR.Bits()))
	}
	if err := checkBlocksFit(ctx, s, oldCIDR, parts); err != nil {
		return err
	}
	children, err := splitPools(ctx, s.c, old, parts)
	if err != nil {
		return err
	}

	if err := replacePool(ctx, s.c, old, children); err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "IP pool %s was successfully split into %d smaller pools.\n", old.Name, n)
	for _, c := range children {
		fmt.Fprintf(a.stdout, "Created %s with CIDR %s.\n", c.Name, c.Spec.CIDR)
	}
	fmt.Fprintln(a.stdout, "Unlock the datastore when you are done: calicoctl datastore migrate unlock")
	return nil
}

// replacePool puts children in the place of old: disable old, create the
// children, delete old. When a step fails, what was done is undone.
func replacePool(ctx context.Context, c *client.Client, old *v3.IPPool, children []*v3.IPPool) (retErr error) {
	// 1. Disable the old pool, so that nothing is allocated from it while
	// the new pools (which overlap it) appear.
	wasDisabled := old.Spec.Disabled
	disabled := old.DeepCopy()
	disabled.Spec.Disabled = true
	updated, err := c.Update(ctx, disabled)
	if err != nil {
		return fmt.Errorf("error disabling IP pool %s: %w", old.Name, err)
	}
	var created []*v3.IPPool
	defer func() {
		if retErr == nil {
			return
		}
		// Undo: remove the new pools, re-enable the old one.
		uctx := context.WithoutCancel(ctx)
		for _, p := range created {
			if _, err := c.Backend().Delete(uctx, datastore.KeyOf(p), ""); err != nil && !errors.Is(err, datastore.ErrNotFound) {
				retErr = fmt.Errorf("%w; also failed to remove the new IP pool %s: %v", retErr, p.Name, err)
			}
		}
		if !wasDisabled {
			if cur, err := client.Get[*v3.IPPool](uctx, c, "", old.Name); err == nil {
				cur.Spec.Disabled = false
				if _, err := c.Update(uctx, cur); err != nil {
					retErr = fmt.Errorf("%w; also failed to enable IP pool %s again: %v", retErr, old.Name, err)
				}
			}
		}
	}()
	// 2. Create the new pools. They overlap the old pool until it is gone,
	// which the client refuses, so they are written to the backend after
	// the same defaulting and validation.
	for _, p := range children {
		if _, err := c.Backend().Create(ctx, p); err != nil {
			return fmt.Errorf("error creating split pool %s with CIDR %s: %w", p.Name, p.Spec.CIDR, err)
		}
		created = append(created, p)
	}
	// 3. Delete the old pool.
	if _, err := c.Delete(ctx, datastore.KeyOf(updated), updated.GetResourceVersion()); err != nil {
		return fmt.Errorf("error removing the IP pool that was split %s: %w", old.Name, err)
	}
	return nil
}

func findPool(ctx context.Context, c *client.Client, cidr, name string) (*v3.IPPool, error) {
	if name != "" {
		p, err := client.Get[*v3.IPPool](ctx, c, "", name)
		if err != nil {
			return nil, fmt.Errorf("unable to find IP pool with name %s: %w", name, err)
		}
		if cidr != "" && p.Spec.CIDR != cidr {
			return nil, fmt.Errorf("IP pool %s has CIDR %s, not %s", name, p.Spec.CIDR, cidr)
		}
		return p, nil
	}
	pools, err := client.List[*v3.IPPool](ctx, c, "")
	if err != nil {
		return nil, fmt.Errorf("unable to list IP pools to find the pool specified by %s: %w", cidr, err)
	}
	want, err := netip.ParsePrefix(cidr)
	if err != nil {
		return nil, usageError{fmt.Errorf("invalid CIDR %q", cidr)}
	}
	for _, p := range pools {
		if got, err := netip.ParsePrefix(p.Spec.CIDR); err == nil && got == want.Masked() {
			return p, nil
		}
	}
	return nil, fmt.Errorf("unable to find an IP pool with CIDR %s", cidr)
}

// checkBlocksFit refuses a split that would cut an existing block in two
// (blocks of a bigger size than the new pools, left from an older pool).
func checkBlocksFit(ctx context.Context, s *ipamSession, old netip.Prefix, parts []netip.Prefix) error {
	snap, err := s.alloc.Snapshot(ctx)
	if err != nil {
		return fmt.Errorf("read IPAM blocks: %w", err)
	}
	for _, bi := range snap.Blocks {
		b := bi.Block
		if b.Deleted || !old.Overlaps(b.CIDR) {
			continue
		}
		fits := false
		for _, p := range parts {
			fits = fits || (p.Bits() <= b.CIDR.Bits() && p.Contains(b.CIDR.Addr()))
		}
		if !fits {
			return fmt.Errorf("cannot split: block %s (%d addresses in use) would span more than one of the new pools; "+
				"release its addresses first (calicoctl ipam show --show-blocks) or split into fewer pools", b.CIDR, b.InUse())
		}
	}
	return nil
}

// splitPools builds the new pools: copies of old with the parts' CIDRs,
// enabled, named split-<old>-<i>, defaulted and validated, and checks that
// the names are free.
func splitPools(ctx context.Context, c *client.Client, old *v3.IPPool, parts []netip.Prefix) ([]*v3.IPPool, error) {
	out := make([]*v3.IPPool, 0, len(parts))
	for i, cidr := range parts {
		p := v3.NewIPPool()
		base := old.Name
		if len(base) > 240 {
			base = base[:240]
		}
		p.Name = fmt.Sprintf("split-%s-%d", base, i)
		p.Labels, p.Annotations = old.Labels, old.Annotations
		p.Spec = *old.Spec.DeepCopy()
		p.Spec.CIDR = cidr.String()
		p.Spec.Disabled = false
		p.CreationTimestamp = metav1.Time{}
		v3.Default(p)
		if err := v3.Validate(p); err != nil {
			return nil, fmt.Errorf("the split pool %s would be invalid: %w", p.Name, err)
		}
		if _, err := c.Get(ctx, datastore.KeyOf(p)); err == nil {
			return nil, fmt.Errorf("an IP pool named %s already exists; rename or delete it first", p.Name)
		} else if !errors.Is(err, datastore.ErrNotFound) {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

type configureOpts struct {
	strictAffinity, maxBlocks, cooldown, persistence string
}

func (a *app) ipamConfigureCommand() *cobra.Command {
	var o configureOpts
	cmd := &cobra.Command{
		Use:   "configure [--strictaffinity=true|false] [--max-blocks-per-host=N] [--ip-cooldown-seconds=N] [--kubevirt-ip-persistence=Enabled|Disabled]",
		Short: "Change the IPAM configuration",
		Long: `Change the IPAM configuration (the IPAMConfiguration "default", also shown by
"calicoctl get ipamconfiguration default"). Settings not given are kept.

  --strictaffinity           true forbids borrowing addresses from other nodes' blocks
  --max-blocks-per-host      the most blocks a node may claim (0: the default of 20;
                             above 0 needs strictaffinity true)
  --ip-cooldown-seconds      how long a released address rests before reuse (0-1200)
  --kubevirt-ip-persistence  whether KubeVirt VMs keep their addresses (Enabled, Disabled)`,
		Example: "  calicoctl ipam configure --strictaffinity=true --max-blocks-per-host=4",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			set, err := o.parse()
			if err != nil {
				return err
			}
			c, err := a.connect(cmd, true)
			if err != nil {
				return err
			}
			if err := updateIPAMConfig(cmd.Context(), c, set); err != nil {
				return fmt.Errorf("error: %w", err)
			}
			if o.strictAffinity != "" {
				fmt.Fprintln(a.stdout, "Successfully set StrictAffinity to:", o.strictAffinity)
			}
			if o.maxBlocks != "" {
				fmt.Fprintln(a.stdout, "Successfully set MaxBlocksPerHost to:", o.maxBlocks)
			}
			if o.cooldown != "" {
				fmt.Fprintln(a.stdout, "Successfully set IPCooldownSeconds to:", o.cooldown)
			}
			if o.persistence != "" {
				fmt.Fprintln(a.stdout, "Successfully set KubeVirtVMAddressPersistence to:", o.persistence)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.strictAffinity, "strictaffinity", "", "true or false: forbid borrowing addresses from other nodes' blocks")
	f.StringVar(&o.maxBlocks, "max-blocks-per-host", "", "the most blocks a node may claim (0 for the default)")
	f.StringVar(&o.cooldown, "ip-cooldown-seconds", "", "seconds a released address rests before reuse (0-1200)")
	f.StringVar(&o.persistence, "kubevirt-ip-persistence", "", "Enabled or Disabled: KubeVirt VMs keep their addresses")
	return cmd
}

// parse turns the flags into a change of the spec.
func (o configureOpts) parse() (func(*v3.IPAMConfigurationSpec), error) {
	var steps []func(*v3.IPAMConfigurationSpec)
	if o.strictAffinity != "" {
		v, err := strconv.ParseBool(o.strictAffinity)
		if err != nil {
			return nil, usageError{errors.New("invalid value. Use true or false to set strictaffinity")}
		}
		steps = append(steps, func(s *v3.IPAMConfigurationSpec) { s.StrictAffinity = v })
	}
	if o.maxBlocks != "" {
		v, err := strconv.ParseInt(o.maxBlocks, 10, 32)
		if err != nil || v < 0 {
			return nil, usageError{errors.New("invalid value for max-blocks-per-host. Use a number of 0 or more")}
		}
		steps = append(steps, func(s *v3.IPAMConfigurationSpec) { s.MaxBlocksPerHost = int32(v) })
	}
	if o.cooldown != "" {
		v, err := strconv.ParseInt(o.cooldown, 10, 32)
		if err != nil || v < 0 || v > 1200 {
			return nil, usageError{errors.New("invalid value for ip-cooldown-seconds. Use a number from 0 to 1200")}
		}
		steps = append(steps, func(s *v3.IPAMConfigurationSpec) { n := int32(v); s.IPCooldownSeconds = &n })
	}
	if o.persistence != "" {
		var p v3.VMAddressPersistence
		switch strings.ToLower(o.persistence) {
		case "enabled":
			p = v3.VMAddressPersistenceEnabled
		case "disabled":
			p = v3.VMAddressPersistenceDisabled
		default:
			return nil, usageError{errors.New("invalid value for --kubevirt-ip-persistence. Use Enabled or Disabled")}
		}
		steps = append(steps, func(s *v3.IPAMConfigurationSpec) { s.KubeVirtVMAddressPersistence = &p })
	}
	if len(steps) == 0 {
		return nil, usageError{errors.New("at least one configuration option must be specified")}
	}
	return func(s *v3.IPAMConfigurationSpec) {
		for _, f := range steps {
			f(s)
		}
	}, nil
}

// updateIPAMConfig applies set to the IPAMConfiguration "default" through
// the resource API (keeping its labels and annotations), creating it when
// missing and retrying on a concurrent change.
func updateIPAMConfig(ctx context.Context, c *client.Client, set func(*v3.IPAMConfigurationSpec)) error {
	for attempt := 0; ; attempt++ {
		cfg, err := client.Get[*v3.IPAMConfiguration](ctx, c, "", "default")
		switch {
		case errors.Is(err, client.ErrNotFound):
			cfg = v3.NewIPAMConfiguration()
			cfg.Name = "default"
			set(&cfg.Spec)
			_, err = c.Create(ctx, cfg)
		case err != nil:
			return err
		default:
			set(&cfg.Spec)
			_, err = c.Update(ctx, cfg)
		}
		if err == nil || attempt >= 5 || !(errors.Is(err, datastore.ErrConflict) || errors.Is(err, datastore.ErrAlreadyExists)) {
			return err
		}
	}
}
