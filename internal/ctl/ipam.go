package ctl

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"sort"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	clientv3 "go.etcd.io/etcd/client/v3"

	v3 "github.com/calico-go/calico/api/v3"
	"github.com/calico-go/calico/internal/ipam"
	"github.com/calico-go/calico/pkg/client"
)

// ipamCommand is `calicoctl ipam show|check|release|split|configure`.
func (a *app) ipamCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ipam",
		Short: "IP address management: show, check, release, split and configure",
		Long: `Show how Calico's IP pools and blocks are used, check the IPAM data for
leaks and inconsistencies and repair them, release addresses, split IP
pools, and change the IPAM configuration. These commands work on the etcdv3
datastore.`,
		RunE: subcommandArgs,
	}
	cmd.AddCommand(a.ipamShowCommand(), a.ipamCheckCommand(), a.ipamReleaseCommand(),
		a.ipamSplitCommand(), a.ipamConfigureCommand())
	return cmd
}

// ipamSession is a connection with the allocator over its etcd client.
type ipamSession struct {
	c     *client.Client
	alloc *ipam.Allocator
}

// ipam connects and builds the IPAM allocator on the datastore's etcd
// client.
func (a *app) ipam(cmd *cobra.Command) (*ipamSession, error) {
	c, err := a.connect(cmd, true)
	if err != nil {
		return nil, err
	}
	be, ok := c.Backend().(interface{ Client() *clientv3.Client })
	if !ok {
		return nil, errors.New("calicoctl ipam needs the etcdv3 datastore; this datastore does not hold Calico IPAM data")
	}
	alloc, err := ipam.New(ipam.Options{Store: ipam.NewEtcdStore(be.Client(), 0), Resources: ipam.ClientResources(c), Logger: a.log})
	if err != nil {
		return nil, err
	}
	return &ipamSession{c: c, alloc: alloc}, nil
}

type showOpts struct {
	blocks, borrowed, config bool
	ip                       string
}

func (a *app) ipamShowCommand() *cobra.Command {
	var o showOpts
	cmd := &cobra.Command{
		Use:   "show [--ip=IP | --show-blocks | --show-borrowed | --show-configuration]",
		Short: "Show IP pool and block usage, one address, borrowed addresses or the IPAM configuration",
		Long: `Without flags, show how many addresses of each IP pool are in use (an
address allocated before it was reserved counts as both in use and
reserved, so percentages need not add up to 100).

  --show-blocks         add a row for each block
  --show-borrowed       list addresses used by another node than their block's
  --ip=IP               show whether IP is in use and by whom
  --show-configuration  show the IPAM configuration`,
		Example: "  calicoctl ipam show --show-blocks\n  calicoctl ipam show --ip=10.244.0.5",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := a.ipam(cmd)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			switch {
			case o.ip != "":
				return a.showIP(ctx, s, o.ip)
			case o.borrowed:
				return a.showBorrowed(ctx, s)
			case o.config:
				return a.showConfiguration(ctx, s)
			}
			return a.showUsage(ctx, s, o.blocks)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&o.blocks, "show-blocks", false, "show a row for each block as well")
	f.BoolVar(&o.borrowed, "show-borrowed", false, "list the addresses borrowed from other nodes' blocks")
	f.StringVar(&o.ip, "ip", "", "show whether this address is in use and its attributes")
	f.BoolVar(&o.config, "show-configuration", false, "show the IPAM configuration")
	return cmd
}

func parseIPFlag(s string) (netip.Addr, error) {
	ip, err := netip.ParseAddr(strings.TrimSpace(s))
	if err != nil {
		return netip.Addr{}, usageError{fmt.Errorf("invalid IP address %q", s)}
	}
	return ip.Unmap(), nil
}

func (a *app) showIP(ctx context.Context, s *ipamSession, arg string) error {
	ip, err := parseIPFlag(arg)
	if err != nil {
		return err
	}
	al, err := s.alloc.GetAssignmentAttributes(ctx, ip)
	if errors.Is(err, ipam.ErrNotAssigned) {
		fmt.Fprintf(a.stdout, "%s is not assigned\n", ip)
		return nil
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "IP %s is in use\n", ip)
	if al.HandleID != "" {
		fmt.Fprintf(a.stdout, "Handle ID: %s\n", al.HandleID)
	} else {
		fmt.Fprintln(a.stdout, "Handle ID: <none>")
	}
	if len(al.Attrs) == 0 {
		fmt.Fprintln(a.stdout, "No attributes defined")
		return nil
	}
	fmt.Fprintln(a.stdout, "Attributes:")
	for _, k := range sortedKeys(al.Attrs) {
		fmt.Fprintf(a.stdout, "  %s: %s\n", k, al.Attrs[k])
	}
	return nil
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func (a *app) showBorrowed(ctx context.Context, s *ipamSession) error {
	snap, err := s.alloc.Snapshot(ctx)
	if err != nil {
		return err
	}
	t := newBoxTable("IP", "BORROWING-NODE", "BLOCK", "BLOCK OWNER", "TYPE", "ALLOCATED-TO")
	unclassified := 0
	for _, al := range snap.Allocations() {
		node := al.Attrs[ipam.AttrNode]
		if node == "" {
			unclassified++
			continue
		}
		if !al.Borrowed() {
			continue
		}
		typ, to := allocationOwner(al)
		t.row(al.IP.String(), node, al.Block.String(), al.BlockHost, typ, to)
	}
	t.render(a.stdout)
	if unclassified > 0 {
		fmt.Fprintf(a.stdout, "\nNote: found %d IP allocations without an explicit node association. Unable to determine if they are borrowed.\n", unclassified)
	}
	return nil
}

// allocationOwner is the TYPE and ALLOCATED-TO of an allocation.
func allocationOwner(al ipam.Allocation) (typ, to string) {
	if pod := al.Attrs[ipam.AttrPod]; pod != "" {
		return "pod", al.Attrs[ipam.AttrNamespace] + "/" + pod
	}
	return al.Attrs[ipam.AttrType], ""
}

func (a *app) showConfiguration(ctx context.Context, s *ipamSession) error {
	cfg, err := s.alloc.Config(ctx)
	if err != nil {
		return err
	}
	maxBlocks := int(cfg.MaxBlocksPerHost)
	if maxBlocks == 0 {
		maxBlocks = v3.DefaultMaxBlocksPerHost
	}
	cooldown, persistence := int32(0), v3.VMAddressPersistenceEnabled
	if cfg.IPCooldownSeconds != nil {
		cooldown = *cfg.IPCooldownSeconds
	}
	if cfg.KubeVirtVMAddressPersistence != nil {
		persistence = *cfg.KubeVirtVMAddressPersistence
	}
	t := newBoxTable("PROPERTY", "VALUE")
	t.row("StrictAffinity", strconv.FormatBool(cfg.StrictAffinity))
	t.row("AutoAllocateBlocks", strconv.FormatBool(cfg.AutoAllocateBlocks == nil || *cfg.AutoAllocateBlocks))
	t.row("MaxBlocksPerHost", strconv.Itoa(maxBlocks))
	t.row("IPCooldownSeconds", strconv.Itoa(int(cooldown)))
	t.row("KubeVirtVMAddressPersistence", string(persistence))
	t.render(a.stdout)
	return nil
}

// showUsage prints the GROUPING table: one row per pool and, with blocks,
// one per block (blocks outside every pool last).
func (a *app) showUsage(ctx context.Context, s *ipamSession, blocks bool) error {
	snap, err := s.alloc.Snapshot(ctx)
	if err != nil {
		return err
	}
	pools, err := client.List[*v3.IPPool](ctx, s.c, "")
	if err != nil {
		return fmt.Errorf("list IP pools: %w", err)
	}
	reservations, reserved, err := loadReservations(ctx, s.c)
	if err != nil {
		return err
	}
	var cidrs []netip.Prefix
	for _, p := range pools {
		if c, err := netip.ParsePrefix(p.Spec.CIDR); err == nil {
			cidrs = append(cidrs, c)
		}
	}
	sort.Slice(cidrs, func(i, j int) bool { return prefixLess(cidrs[i], cidrs[j]) })
	t := newBoxTable("GROUPING", "CIDR", "IPS TOTAL", "IPS IN USE", "IPS RESERVED", "IPS FREE")
	t.align = []byte{'l', 'l', 'r', 'l', 'l', 'l'}
	row := func(kind string, cidr netip.Prefix) {
		u := snap.Usage(cidr, reservations)
		total := math.Ldexp(1, cidr.Addr().BitLen()-cidr.Bits())
		overlap := 0.0
		for _, bi := range snap.Blocks {
			if bi.Block.Deleted || !cidr.Overlaps(bi.Block.CIDR) {
				continue
			}
			for _, al := range bi.Block.AllocationList() {
				if cidr.Contains(al.IP) && inAny(reserved, al.IP) {
					overlap++
				}
			}
		}
		inUse, res := float64(u.InUse), float64(u.Reserved)
		pct := func(n float64) string { return fmt.Sprintf("%.5g (%.f%%)", n, 100*n/total) }
		t.row(kind, cidr.String(), fmt.Sprintf("%.5g", total), pct(inUse), pct(res), pct(math.Max(0, total-inUse-res+overlap)))
	}
	shown := map[netip.Prefix]bool{}
	for _, cidr := range cidrs {
		row("IP Pool", cidr)
		if !blocks {
			continue
		}
		for _, bi := range snap.Blocks {
			if !bi.Block.Deleted && cidr.Contains(bi.Block.CIDR.Addr()) && !shown[bi.Block.CIDR] {
				shown[bi.Block.CIDR] = true
				row("Block", bi.Block.CIDR)
			}
		}
	}
	if blocks {
		for _, bi := range snap.Blocks { // blocks left outside every pool
			if !bi.Block.Deleted && !shown[bi.Block.CIDR] {
				row("Block", bi.Block.CIDR)
			}
		}
	}
	t.render(a.stdout)
	return nil
}

// loadReservations returns the IPReservations and the prefixes they
// reserve.
func loadReservations(ctx context.Context, c *client.Client) ([]v3.IPReservation, []netip.Prefix, error) {
	resv, err := client.List[*v3.IPReservation](ctx, c, "")
	if err != nil {
		return nil, nil, fmt.Errorf("list IP reservations: %w", err)
	}
	var out []v3.IPReservation
	var reserved []netip.Prefix
	for _, r := range resv {
		out = append(out, *r)
		for _, c := range r.Spec.ReservedCIDRs {
			if p, err := netip.ParsePrefix(c); err == nil {
				reserved = append(reserved, p.Masked())
			} else if ip, err := netip.ParseAddr(c); err == nil {
				reserved = append(reserved, netip.PrefixFrom(ip, ip.BitLen()))
			}
		}
	}
	return out, reserved, nil
}

func inAny(ps []netip.Prefix, ip netip.Addr) bool {
	for _, p := range ps {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// prefixLess orders IPv4 before IPv6, then by address and length.
func prefixLess(a, b netip.Prefix) bool {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c < 0
	}
	return a.Bits() < b.Bits()
}
