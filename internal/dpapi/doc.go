// Package dpapi defines the typed messages the calculation graph
// (internal/calc) sends to the dataplane (internal/dataplane), and the order
// in which they arrive. It is the only thing the two sides share: calc never
// imports the dataplane and the dataplane never imports calc.
//
// # Messages
//
// Every message is a value of one of the types below; the interface Message
// is sealed (it has an unexported method), so a type switch over these
// covers everything:
//
//	ConfigUpdate                         the merged Felix settings
//	IPSetUpdate, IPSetDelta, IPSetRemove IP sets (full replace, member delta, removal)
//	PolicyUpdate, PolicyRemove           policies, already resolved to Rules
//	ProfileUpdate, ProfileRemove         profiles
//	WorkloadEndpointUpdate, ...Remove    local workload endpoints with their tiers
//	HostEndpointUpdate, ...Remove        local host endpoints with their tiers per stage
//	IPPoolUpdate, IPPoolRemove           IP pools (CIDR, VXLAN mode, natOutgoing)
//	NodeUpdate, NodeRemove               the cluster's nodes (addresses, VXLAN tunnel endpoint)
//	RouteUpdate, RouteRemove             routes this node programs, by destination
//	InSync                               the initial snapshot is complete
//
// An Update message carries the complete new value of its object and
// replaces any previous value with the same ID; a Remove forgets it.
// Messages arrive in batches through a Sink. A batch is the unit the
// dataplane should try to apply in one go, but the contract below holds for
// the concatenation of all batches, so a dataplane may merge several
// batches before applying them.
//
// # Ordering contract
//
// Calc guarantees, and State.Apply checks, that at every point of the
// stream:
//
//  1. The first message ever is a ConfigUpdate. A later ConfigUpdate may
//     arrive at any time and replaces the whole configuration.
//  2. An IP set is created (IPSetUpdate) before any IPSetDelta for it and
//     before any policy or profile rule that names it. IPSetDelta only
//     names sets that exist, adds members not present and removes members
//     present.
//  3. A policy or profile is sent before any endpoint that lists it, and
//     is sent again (PolicyUpdate with the new rules) whenever its rules
//     change while endpoints use it.
//  4. Endpoint updates and removals that stop using a policy or profile come
//     before its PolicyRemove or ProfileRemove: a policy or profile is
//     removed only when no endpoint lists it.
//  5. Policy and profile removals (and updates that stop naming a set) come
//     before the IPSetRemove of the sets they named: an IP set is removed
//     only when no rule names it.
//  6. InSync is sent exactly once, after the batch that completes the
//     initial snapshot (it is the last message of that batch). Before it,
//     the dataplane must not touch the kernel; after it, it may program
//     the complete state and sweep anything of ours that is not in it.
//  7. Within one batch the order is: ConfigUpdate; IPSetUpdate and
//     IPSetDelta; ProfileUpdate and PolicyUpdate; WorkloadEndpointUpdate
//     and HostEndpointUpdate; WorkloadEndpointRemove and
//     HostEndpointRemove; PolicyRemove and ProfileRemove; IPSetRemove;
//     IPPoolUpdate and NodeUpdate; RouteUpdate; RouteRemove; NodeRemove
//     and IPPoolRemove; InSync. Messages of one group come sorted by ID,
//     so batches are deterministic.
//  8. Node, IP pool and route messages are independent of the policy
//     messages. An update replaces the whole value; a removal names
//     something that exists.
//  9. At the end of every batch, every RouteRemote names a node that
//     exists, and its Gateway is that node's current VTEP address (VXLAN)
//     or node address (no encapsulation). A route through a node is thus
//     updated or removed in the batch that changes or removes the node.
//
// Rules 2-5 mean that a dataplane applying the messages in order, one at a
// time, never has a dangling reference, and never opens a hole: a new
// endpoint arrives with its policies already in place (fail closed), and a
// removed policy is unreferenced before it goes.
//
// Calc sends only what this host needs: local endpoints, the policies and
// profiles they use (plus policies marked AssumeNeededOnEveryNode), and the
// IP sets those rules name. Staged policies are never sent.
//
// # Networking
//
// Every node and every IP pool of the cluster is sent (NAT outgoing needs
// all pool CIDRs, VXLAN every node's tunnel endpoint). Routes are sent
// only for what the dataplane itself programs: a RouteLocalWorkload for
// each address of a local workload endpoint; for blocks (from the IPAM
// block affinities) in pools whose vxlanMode is Always or CrossSubnet, a
// RouteLocalBlock for this node's and a RouteRemote for other nodes'
// (through the node's VTEP, or, in a CrossSubnet pool with the node in
// this node's subnet, straight to its address); and a /32 RouteRemote for
// a remote workload address (or VTEP address) in such a pool that is not
// inside a block of its node (a borrowed address). Blocks of other pools
// are routed by BGP.
//
// # IP sets
//
// An IP set ID is derived from the canonical form of what it matches, so
// equal selectors share one set:
//
//	"s:" + base64url(SHA-224)   selector sets (selector.UniqueID)
//	"n:" + base64url(SHA-224)   named-port sets (selector, protocol, port name)
//
// IDs are at most 40 bytes and use only [A-Za-z0-9:_-]. The dataplane
// turns an ID into a kernel name (for example cali40 + ID, cut to fit).
// Members of one set may mix IPv4 and IPv6; the dataplane keeps one kernel
// set per family. Members of an IPSetNets set may overlap (an endpoint
// address inside a network set's CIDR); removing the /32 must not remove
// the covering CIDR, so a dataplane that merges intervals must merge from
// its own copy of the member list.
package dpapi
