package ctl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	v3 "github.com/calico-go/calico/api/v3"
	"github.com/calico-go/calico/internal/ipam"
	"github.com/calico-go/calico/pkg/client"
)

// checkReport is the file `ipam check -o FILE` writes and `ipam release
// --from-report` reads: the ipam.Report (its fields inline) plus what
// release needs to tell whether the report still describes this cluster.
type checkReport struct {
	// Version of calicoctl that produced the report.
	Version string `json:"version"`
	// ClusterGUID, ClusterInfoRevision, ClusterType and DatastoreLocked come
	// from ClusterInformation "default" when the check ran.
	ClusterGUID         string `json:"clusterGUID"`
	DatastoreLocked     bool   `json:"datastoreLocked"`
	ClusterInfoRevision string `json:"clusterInformationRevision"`
	ClusterType         string `json:"clusterType"`
	*ipam.Report
}

type checkOpts struct {
	showAll, showProblems bool
	output                string
}

func (a *app) ipamCheckCommand() *cobra.Command {
	var o checkOpts
	cmd := &cobra.Command{
		Use:   "check [--show-all-ips] [--show-problem-ips] [-o FILE]",
		Short: "Check the IPAM data for leaks and inconsistencies",
		Long: `Check the IPAM data against itself, the IP pools, the nodes and the
workload endpoints: addresses allocated without a (live) handle, addresses
allocated twice or used by more than one endpoint, addresses endpoints use
that IPAM did not allocate, allocations outside every pool, handles that own
nothing or whose counts are wrong, stale block affinities, and what nodes
that no longer exist left behind.

With -o FILE the findings are written as a report that "calicoctl ipam
release --from-report=FILE" repairs. Lock the datastore first ("calicoctl
datastore migrate lock") so that nothing changes between check and release.`,
		Example: "  calicoctl datastore migrate lock\n  calicoctl ipam check -o report.json\n" +
			"  calicoctl ipam release --from-report=report.json\n  calicoctl datastore migrate unlock",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := a.ipam(cmd)
			if err != nil {
				return err
			}
			return a.runCheck(cmd.Context(), s, o)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&o.showAll, "show-all-ips", false, "print every allocation that is checked (implies --show-problem-ips)")
	f.BoolVar(&o.showProblems, "show-problem-ips", false, "print every address with a problem")
	f.StringVarP(&o.output, "output", "o", "", "write the findings to `FILE`, as a report for \"calicoctl ipam release --from-report\"")
	f.String("kubeconfig", "", "ignored: this build checks against the etcdv3 datastore only")
	_ = f.MarkHidden("kubeconfig")
	return cmd
}

func (a *app) runCheck(ctx context.Context, s *ipamSession, o checkOpts) error {
	p := func(format string, args ...any) { fmt.Fprintf(a.stdout, format+"\n", args...) }
	locked, ci, err := datastoreLock(ctx, s.c)
	if err != nil {
		return err
	}
	p("Checking IPAM for inconsistencies...\n")
	p("Loading all IPAM blocks...")
	snap, err := s.alloc.Snapshot(ctx)
	if err != nil {
		return fmt.Errorf("failed to read IPAM blocks: %w", err)
	}
	printBlocks(p, snap, o.showAll)
	poolList, active, err := loadPools(ctx, s.c, p)
	if err != nil {
		return err
	}
	inUse, nodeNames, err := loadInUse(ctx, s.c, p)
	if err != nil {
		return err
	}
	p("Loading all handles")
	p("Found %d handles.\n", len(snap.Handles))
	printTopNodes(p, snap.Allocations())

	r := ipam.CheckSnapshot(snap, poolList, ipam.CheckOptions{Nodes: nodeNames, InUse: inUse})
	printFindings(p, r, active, o.showProblems || o.showAll)
	p("Check complete; found %d problems.", r.Problems())
	if o.output == "" {
		return nil
	}
	rep := checkReport{Report: r, DatastoreLocked: locked}
	rep.Version, _ = a.version()
	if ci != nil {
		rep.ClusterGUID, rep.ClusterInfoRevision, rep.ClusterType = ci.Spec.ClusterGUID, ci.ResourceVersion, ci.Spec.ClusterType
	}
	data, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(o.output, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("failed to write the report: %w", err)
	}
	if !locked {
		p("\nNote: the datastore is not locked, so the report may be out of date by the time it is used;\n" +
			"\"calicoctl ipam release --from-report\" wants a report taken while it is locked (calicoctl datastore migrate lock).")
	}
	return nil
}

func printBlocks(p func(string, ...any), snap *ipam.Snapshot, showAll bool) {
	p("Found %d IPAM blocks.", len(snap.Blocks))
	n := 0
	for _, bi := range snap.Blocks {
		aff := "<none>"
		if bi.Block.Affinity != nil {
			aff = *bi.Block.Affinity
		}
		p(" IPAM block %s affinity=%s:", bi.Block.CIDR, aff)
		for _, al := range bi.Block.AllocationList() {
			n++
			if showAll {
				p("  %s allocated; handle %s; attrs %s", al.IP, orNone(al.HandleID), attrString(al.Attrs))
			}
		}
	}
	p("IPAM blocks record %d allocations.\n", n)
}

// loadPools returns every pool and the CIDRs of the enabled ones.
func loadPools(ctx context.Context, c *client.Client, p func(string, ...any)) ([]v3.IPPool, []netip.Prefix, error) {
	p("Loading all IPAM pools...")
	pools, err := client.List[*v3.IPPool](ctx, c, "")
	if err != nil {
		return nil, nil, fmt.Errorf("failed to load IP pools: %w", err)
	}
	var active []netip.Prefix
	var all []v3.IPPool
	for _, pl := range pools {
		all = append(all, *pl)
		if pl.Spec.Disabled {
			continue
		}
		p("  %s", pl.Spec.CIDR)
		if cidr, err := netip.ParsePrefix(pl.Spec.CIDR); err == nil {
			active = append(active, cidr)
		}
	}
	p("Found %d active IP pools.\n", len(active))
	return all, active, nil
}

// loadInUse returns the addresses nodes (tunnels) and workload endpoints
// use, and the node names (nil when there are no Node resources, which
// turns the vanished-node checks off).
func loadInUse(ctx context.Context, c *client.Client, p func(string, ...any)) ([]ipam.InUse, []string, error) {
	p("Loading all nodes.")
	nodes, err := client.List[*v3.Node](ctx, c, "")
	if err != nil {
		return nil, nil, fmt.Errorf("failed to list nodes: %w", err)
	}
	var inUse []ipam.InUse
	var names []string
	for _, n := range nodes {
		names = append(names, n.Name)
		for _, ip := range nodeIPs(n) {
			inUse = append(inUse, ipam.InUse{IP: ip, Owner: "Node(" + n.Name + ")"})
		}
	}
	p("Found %d node tunnel IPs.", len(inUse))
	if len(nodes) == 0 {
		p("No Node resources exist; skipping the checks for vanished nodes.")
	}
	p("")

	p("Loading all workload endpoints.")
	weps, err := client.List[*v3.WorkloadEndpoint](ctx, c, "")
	if err != nil {
		return nil, nil, fmt.Errorf("failed to list workload endpoints: %w", err)
	}
	nodeIPCount := len(inUse)
	for _, w := range weps {
		for _, n := range w.Spec.IPNetworks {
			ip, err := parseAddrOrPrefix(n)
			if err != nil {
				return nil, nil, fmt.Errorf("failed to parse IP (%s) of workload %s/%s: %w", n, w.Namespace, w.Name, err)
			}
			inUse = append(inUse, ipam.InUse{IP: ip, Owner: "Workload(" + w.Namespace + "/" + w.Name + ")"})
		}
	}
	p("Found %d workload IPs.", len(inUse)-nodeIPCount)
	p("Workloads and nodes are using %d IPs.\n", countDistinct(inUse))
	return inUse, names, nil
}

func orNone(s string) string {
	if s == "" {
		return "<none>"
	}
	return s
}

func attrString(m map[string]string) string {
	var parts []string
	for _, k := range sortedKeys(m) {
		parts = append(parts, k+":"+m[k])
	}
	return "map[" + strings.Join(parts, " ") + "]"
}

// nodeIPs are the tunnel and WireGuard addresses IPAM gives a node.
func nodeIPs(n *v3.Node) []netip.Addr {
	var raw []string
	if n.Spec.BGP != nil {
		raw = append(raw, n.Spec.BGP.IPv4IPIPTunnelAddr)
	}
	raw = append(raw, n.Spec.IPv4VXLANTunnelAddr, n.Spec.IPv6VXLANTunnelAddr)
	if n.Spec.Wireguard != nil {
		raw = append(raw, n.Spec.Wireguard.InterfaceIPv4Address, n.Spec.Wireguard.InterfaceIPv6Address)
	}
	var out []netip.Addr
	for _, s := range raw {
		if ip, err := parseAddrOrPrefix(s); err == nil {
			out = append(out, ip)
		}
	}
	return out
}

func parseAddrOrPrefix(s string) (netip.Addr, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Addr().Unmap(), nil
	}
	ip, err := netip.ParseAddr(s)
	return ip.Unmap(), err
}

func countDistinct(u []ipam.InUse) int {
	seen := map[netip.Addr]bool{}
	for _, x := range u {
		seen[x.IP] = true
	}
	return len(seen)
}

func printTopNodes(p func(string, ...any), allocs []ipam.Allocation) {
	const top = 20
	byNode := map[string]int{}
	for _, al := range allocs {
		byNode[orNone(al.Attrs[ipam.AttrNode])]++
	}
	var names []string
	for n := range byNode {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool {
		if byNode[names[i]] != byNode[names[j]] {
			return byNode[names[i]] > byNode[names[j]]
		}
		return names[i] < names[j]
	})
	p("Looking for top (up to %d) nodes by allocations...", top)
	for i, n := range names {
		if i == top {
			break
		}
		p("  %s has %d allocations", n, byNode[n])
	}
	if len(names) > 0 {
		p("Node with most allocations has %d; median is %d", byNode[names[0]], byNode[names[len(names)/2]])
	}
	p("")
}

// printFindings prints each class of problem, with the addresses when
// show is set.
func printFindings(p func(string, ...any), r *ipam.Report, active []netip.Prefix, show bool) {
	p("Scanning for IPs that are allocated but leaked (no handle, or a handle that does not exist)...")
	for _, al := range r.Leaked {
		if show {
			p("  %s leaked; handle %s; attrs %s", al.IP, orNone(al.HandleID), attrString(al.Attrs))
		}
	}
	p("Found %d IPs that are allocated in IPAM but leaked.", len(r.Leaked))

	p("Scanning for IPs that are allocated more than once...")
	for _, d := range r.Duplicates {
		if show {
			p("  %s is allocated in %d blocks.", d.IP, len(d.Allocations))
		}
	}
	p("Found %d IPs that are allocated more than once.", len(r.Duplicates))

	p("Scanning for IPs that are in use by a workload or node but not allocated in IPAM...")
	for _, d := range r.MultipleOwners {
		if show {
			p("  %s has multiple owners: %s.", d.IP, strings.Join(d.Owners, ", "))
		}
	}
	var outside, unallocated int
	for _, u := range r.NotAllocated {
		if inAny(active, u.IP) {
			unallocated++
			if show {
				p("  %s in use by %s and in active IPAM pool but has no IPAM allocation.", u.IP, u.Owner)
			}
		} else {
			outside++
			if show {
				p("  %s in use by %s is not in any active IP pool.", u.IP, u.Owner)
			}
		}
	}
	p("Found %d IPs with more than one owner.", len(r.MultipleOwners))
	p("Found %d in-use IPs that are not in active IP pools.", outside)
	p("Found %d in-use IPs that are in active IP pools but have no corresponding IPAM allocation.", unallocated)

	p("Scanning for allocations outside every IP pool...")
	for _, al := range r.OutsidePools {
		if show {
			p("  %s (block %s) is in no IP pool.", al.IP, al.Block)
		}
	}
	p("Found %d allocations outside every IP pool.\n", len(r.OutsidePools))
	printBookkeeping(p, r, show)
}

// printBookkeeping prints the handle, affinity and vanished-node findings.
func printBookkeeping(p func(string, ...any), r *ipam.Report, show bool) {
	p("Scanning for IPAM handles with no matching IPs...")
	for _, h := range r.EmptyHandles {
		if show {
			p("  %s doesn't have any active IPs.", h.ID)
		}
	}
	p("Found %d handles with no matching IPs (and %d handles with matches).", len(r.EmptyHandles), r.Handles-len(r.EmptyHandles))
	p("Scanning for IPAM handles whose counts disagree with their blocks...")
	for _, m := range r.HandleMismatches {
		if show {
			p("  %s records %d addresses in block %s; the block holds %d.", m.ID, m.Recorded, m.Block, m.Actual)
		}
	}
	p("Found %d handle counts that disagree with the blocks.\n", len(r.HandleMismatches))

	p("Scanning for block affinities...")
	for _, af := range r.StaleAffinities {
		if show {
			p("  affinity of %s for %s is stale (%s).", af.Host, af.CIDR, af.State)
		}
	}
	for _, b := range r.OrphanBlocks {
		if show {
			p("  block %s is affine to %s, which has no affinity for it.", b.CIDR, b.Host)
		}
	}
	p("Found %d stale block affinities and %d blocks without their affinity.", len(r.StaleAffinities), len(r.OrphanBlocks))
	p("Scanning for the leftovers of nodes that no longer exist...")
	for _, al := range r.VanishedNodeAllocations {
		if show {
			p("  %s belongs to node %s, which no longer exists.", al.IP, al.Attrs[ipam.AttrNode])
		}
	}
	p("Found %d block affinities and %d allocations of nodes that no longer exist.", len(r.VanishedNodeAffinities), len(r.VanishedNodeAllocations))
	if len(r.Unreadable) > 0 {
		p("Found %d IPAM keys that do not decode: %s", len(r.Unreadable), strings.Join(r.Unreadable, ", "))
	}
}

type releaseOpts struct {
	ip      string
	reports []string
	force   bool
}

func (a *app) ipamReleaseCommand() *cobra.Command {
	var o releaseOpts
	cmd := &cobra.Command{
		Use:   "release (--ip=IP | --from-report=FILE...) [--force]",
		Short: "Release an address, or repair what an `ipam check` report found",
		Long: `Release an address from Calico IPAM that was assigned to an endpoint, or
repair what "calicoctl ipam check -o FILE" found: release leaked addresses,
delete handles that own nothing, fix handle counts and block affinities.
Nothing that changed since the report is touched.

--from-report needs the datastore locked ("calicoctl datastore migrate
lock") unless --force is given. With several reports only what all of them
found is repaired, which guards against addresses in the middle of being
assigned; at least one report must be up to date.

Releasing an address does not remove it from endpoints that use it: only
release addresses of endpoints that were not cleanly removed.`,
		Example: "  calicoctl ipam release --ip=10.244.0.5\n  calicoctl ipam release --from-report=report.json",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.ip == "" && len(o.reports) == 0 {
				return usageError{errors.New("ipam release needs --ip=IP or --from-report=FILE")}
			}
			s, err := a.ipam(cmd)
			if err != nil {
				return err
			}
			if len(o.reports) > 0 {
				if err := a.releaseFromReports(cmd.Context(), s, o); err != nil {
					return err
				}
			}
			if o.ip != "" {
				return a.releaseIP(cmd.Context(), s, o.ip)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.ip, "ip", "", "the address `IP` to release")
	f.StringArrayVar(&o.reports, "from-report", nil, "repair what the report `FILE` (from \"calicoctl ipam check -o\") found; repeat to intersect reports")
	f.BoolVar(&o.force, "force", false, "release from a report although the datastore is not locked or the report is from another calicoctl version")
	return cmd
}

func (a *app) releaseIP(ctx context.Context, s *ipamSession, arg string) error {
	ip, err := parseIPFlag(arg)
	if err != nil {
		return err
	}
	unallocated, err := s.alloc.ReleaseIPs(ctx, ip)
	if err != nil {
		return fmt.Errorf("error: %w", err)
	}
	if len(unallocated) > 0 {
		return fmt.Errorf("IP address %s is not assigned", ip)
	}
	fmt.Fprintf(a.stdout, "Successfully released IP address %s\n", ip)
	return nil
}

func (a *app) releaseFromReports(ctx context.Context, s *ipamSession, o releaseOpts) error {
	locked, ci, err := datastoreLock(ctx, s.c)
	if err != nil {
		return err
	}
	var guid, rev string
	if ci != nil {
		guid, rev = ci.Spec.ClusterGUID, ci.ResourceVersion
	}
	version, _ := a.version()
	var reports []*ipam.Report
	current := false
	for _, file := range o.reports {
		data, err := os.ReadFile(file)
		if err != nil {
			return fmt.Errorf("failed to read the report: %w", err)
		}
		var r checkReport
		if err := json.Unmarshal(data, &r); err != nil || r.Report == nil {
			return fmt.Errorf("%s is not an IPAM report from `calicoctl ipam check -o`: %v", file, err)
		}
		if r.ClusterGUID != guid {
			return fmt.Errorf("cluster does not match the provided report (%s): mismatched cluster GUID. Refusing to release", file)
		}
		if r.Version != version {
			if !o.force {
				return fmt.Errorf("the provided report (%s) was produced using a different version (%s) of calicoctl. Refusing to release", file, r.Version)
			}
			fmt.Fprintln(a.stdout, "WARNING: Report was produced using a different version of calicoctl. Ignoring due to --force option")
		}
		current = current || r.ClusterInfoRevision == rev
		reports = append(reports, r.Report)
	}
	if !current {
		return errors.New("the provided reports are all stale - at least one should be up-to-date. " +
			"Please generate a new report while the data store is locked and try again")
	}
	if !locked {
		if !o.force {
			return errors.New("data store is not locked. Either lock the data store (calicoctl datastore migrate lock), or re-run with --force")
		}
		fmt.Fprintln(a.stdout, "WARNING: Data store is not locked. Ignoring due to --force option")
	}
	r := intersectReports(reports)
	fmt.Fprintf(a.stdout, "Releasing %d leaked IPs, deleting %d handles with no IPs, fixing %d handle counts and %d block affinities...\n",
		len(r.Leaked), len(r.EmptyHandles), len(r.HandleMismatches), len(r.StaleAffinities)+len(r.OrphanBlocks))
	res, err := s.alloc.Repair(ctx, r, ipam.RepairOptions{})
	if res.AlreadyFree > 0 {
		fmt.Fprintf(a.stdout, "%d addresses marked as leaked in the report had already been cleaned up.\n", res.AlreadyFree)
	}
	fmt.Fprintf(a.stdout, "Released %d IPs; deleted %d handles; fixed %d handles and %d block affinities; "+
		"skipped %d findings that changed since the report.\n", res.Released, res.HandlesDeleted, res.HandlesFixed, res.AffinitiesFixed, res.Skipped)
	if err != nil {
		return fmt.Errorf("an error occurred while repairing IPAM: %w. Problems are often caused by an out-of-date IPAM report; "+
			"regenerate the report and retry", err)
	}
	if n := len(r.Duplicates) + len(r.MultipleOwners) + len(r.NotAllocated) + len(r.OutsidePools); n > 0 {
		fmt.Fprintf(a.stdout, "%d findings (duplicates, addresses outside pools or not allocated) need a human; see `calicoctl ipam check --show-problem-ips`.\n", n)
	}
	fmt.Fprintln(a.stdout, "You may now unlock the data store.")
	return nil
}

// intersectReports keeps what every report found, unchanged (same
// sequence numbers and revisions), so that a repair only touches what was
// stale across all of them.
func intersectReports(rs []*ipam.Report) *ipam.Report {
	out := *rs[0]
	for _, r := range rs[1:] {
		out.Leaked = keepCommon(out.Leaked, r.Leaked, func(a ipam.Allocation) string {
			return fmt.Sprint(a.IP, a.HandleID, a.SequenceNumber)
		})
		out.EmptyHandles = keepCommon(out.EmptyHandles, r.EmptyHandles, func(h ipam.HandleRef) string { return fmt.Sprint(h) })
		out.HandleMismatches = keepCommon(out.HandleMismatches, r.HandleMismatches, func(m ipam.HandleMismatch) string { return fmt.Sprint(m) })
		out.StaleAffinities = keepCommon(out.StaleAffinities, r.StaleAffinities, func(a ipam.AffinityInfo) string { return fmt.Sprint(a) })
		out.OrphanBlocks = keepCommon(out.OrphanBlocks, r.OrphanBlocks, func(b ipam.BlockRef) string { return fmt.Sprint(b) })
		out.VanishedNodeAllocations = keepCommon(out.VanishedNodeAllocations, r.VanishedNodeAllocations, func(a ipam.Allocation) string {
			return fmt.Sprint(a.IP, a.HandleID, a.SequenceNumber)
		})
	}
	return &out
}

func keepCommon[T any](a, b []T, key func(T) string) []T {
	in := map[string]bool{}
	for _, x := range b {
		in[key(x)] = true
	}
	var out []T
	for _, x := range a {
		if in[key(x)] {
			out = append(out, x)
		}
	}
	return out
}
