// Package dataplane programs the policy dataplane from the typed messages
// of internal/dpapi, into one nftables table of family inet ("calico")
// through internal/kernel/nft.
//
// # Flow
//
// Run receives batches of messages. Each message updates a manager's state
// and marks what it touches dirty (ipsets, policies and profiles,
// workload endpoints, host endpoints, policy groups); then, once the
// dataplane is in sync, the dirty parts are rendered into the table's
// desired state and the table sends one atomic transaction with only the
// differences. A refresh timer (nftablesRefreshInterval) makes the table
// read the kernel back and repair what someone else changed.
//
// Fail closed: at start the table is read back. If it exists (a restart),
// it is left exactly as it is until InSync, then diffed and replaced in one
// transaction, so established flows survive and no hole opens. If it does
// not exist, a table that drops every packet to or from a workload
// interface is written at once; nothing else is written before InSync. An
// unknown workload interface is dropped by the dispatch chains, and an
// endpoint whose policy or profile is missing gets a chain that drops
// everything.
//
// # Layout
//
// Base chains (policy accept: this table drops only what it means to):
//
//	raw-PREROUTING     prerouting, raw       clear marks; untracked host endpoint policy by input interface
//	raw-OUTPUT         output, raw           clear marks; untracked host endpoint policy by output interface
//	mangle-PREROUTING  prerouting, mangle    established accept; preDNAT host endpoint policy (no default drop)
//	filter-INPUT       input, filter         established; workload → cali-wl-to-host; host endpoint ingress
//	filter-FORWARD     forward, filter       established; workload egress, workload ingress, forwarded host endpoint policy
//	filter-OUTPUT      output, filter        established; host → own workloads accepted; host endpoint egress
//
// Dispatch is by interface name through verdict maps: cali-from-wl-map and
// cali-to-wl-map map a workload interface to "goto cali-fw-<if>" /
// "goto cali-tw-<if>" inside cali-from-wl-dispatch / cali-to-wl-dispatch,
// which drop unknown interfaces; cali-from-hep-map, cali-to-hep-map, the
// -fwd-, -untracked- and -prednat- maps do the same for host endpoints,
// with a "*" endpoint as the fallback.
//
// Endpoint chains (cali-tw-, cali-fw-, cali-fh-, cali-th-, cali-fhfw-,
// cali-thfw-, cali-fhu-, cali-thu-, cali-fhp- + interface) follow SPEC §8:
// drop conntrack INVALID, clear the marks, anti-spoofing (workload egress),
// then per tier the policies while the pass mark is clear, returning as
// soon as one sets the accept mark, and the end-of-tier drop; then the
// profiles and a final drop. Policy chains (cali-pi-/cali-po-<kind>/...)
// and profile chains (cali-pri-/cali-pro-) set the accept or pass mark and
// return, drop, or log and go on.
//
// Groups: a run of consecutive policies of a tier whose rules are all
// simple Allows (peer address set or nets, protocol, destination ports) is
// order-independent, so it is folded into two set lookups (see groups.go)
// instead of one jump per policy. With a thousand such policies selecting
// an endpoint, a new connection costs one lookup instead of a thousand
// rule evaluations.
//
// Marks: accept and pass are the two lowest bits of the mark mask (0x10000
// and 0x20000 by default).
//
// # Networking
//
// The node, IP pool and route messages drive the rest (network.go):
//
//   - Routes go into the main table with protocol route.ProtocolDataplane
//     (80): workload addresses to their interfaces, blackholes for this
//     node's blocks in VXLAN pools, remote blocks through the VXLAN device
//     ("via <VTEP> dev vxlan.calico onlink") or, CrossSubnet within the
//     subnet, via the node's address. Another owner's identical route
//     (the CNI plugin's workload route, BGP's blackhole) is adopted as it
//     is, so nothing flaps, and routes to missing interfaces wait.
//   - The VXLAN device (internal/kernel/vxlan) exists while a pool uses
//     VXLAN and this node has a VTEP; every other node with a VTEP gets a
//     neighbour and an FDB entry.
//   - NAT outgoing: with any pool, nat-POSTROUTING (type nat, srcnat)
//     jumps to cali-nat-outgoing, which masquerades (or SNATs to
//     natOutgoingAddress) traffic from cali40masq-ipam-pools to anything
//     outside cali40network-ip-pools (and, with IPPoolsAndHostIPs, outside
//     cali40all-hosts-net).
//   - With VXLAN in use, filter-INPUT accepts VXLAN (UDP vxlanPort) only
//     from cali40all-vxlan-net, the addresses of nodes with a VTEP.
//
// Routes and the device are written after each table write when they may
// have changed, and every RouteRefreshInterval by read-back and diff, which
// repairs a route or a device someone deleted; their failures are retried
// with backoff and never count against the table's MaxFailures.
//
// Configuration that has no effect here: FilterAllowAction and
// MangleAllowAction (an accept in our own base chain does not stop other
// tables from dropping, so Accept and Return behave alike) and
// ChainInsertMode (the table is ours; there is nothing to insert into).
// With IPv6Support off, no IPv6 sets or rules are written and workloads'
// IPv6 packets are dropped. Host endpoints without an interface name
// (matched by expected addresses) are ignored, and InterfaceExclude
// regular expressions are not applied to "*" host endpoints.
package dataplane
