// Package ipam is Calico's IP address management: pools are cut into blocks,
// hosts claim blocks through affinities and allocate addresses from them, and
// every address belongs to a handle (a pod, a tunnel) that can release it.
//
// # Storage
//
// State lives in a small key-value Store (etcd in production, MemStore in
// unit tests) under Calico's etcd v3 layout, with Calico's JSON documents:
//
//	/calico/ipam/v2/assignment/ipv4/block/10.0.0.0-26       Block
//	/calico/ipam/v2/host/<node>/ipv4/block/10.0.0.0-26      Affinity
//	/calico/ipam/v2/handle/<handle id>                      Handle
//	/calico/ipam/v2/config                                  StoredConfig
//
// The config key is the one source of truth for IPAM settings
// (strictAffinity, maxBlocksPerHost, autoAllocateBlocks, ...): Allocator.Config
// and SetConfig read and write it as a v3.IPAMConfigurationSpec. A datastore
// that serves the IPAMConfiguration resource "default" should map it onto this
// key so that calicoctl get/apply and calicoctl ipam configure agree.
// IPPools and IPReservations are read through the Resources interface (the v3
// resource API), never written here.
//
// # Consistency
//
// Every write is one Store transaction that compares the revision of every key
// it touches and is retried (re-read, re-decide) on conflict, at most
// Options.MaxRetries times. Allocating or releasing addresses writes the block
// and the handle in the same transaction, so a crash never leaves an address
// without its handle or a handle count without its addresses, and a Snapshot
// (one consistent read of the whole IPAM prefix) is exact. When a transaction
// fails without a clear answer (etcd went away mid-request), the allocator
// fences the block (writes its old value back under the same revision
// comparison, so the lost write can never apply later) or, if the block
// changed, reads it to learn whether the change was its own; a call that
// fails has allocated nothing, and one that allocated reports success.
// AutoAssign is all or nothing across blocks and address families.
//
// Nothing here serialises one host's requests: the calico-ipam plugin holds a
// host-wide lock around its calls, which only saves conflicts; concurrent
// callers on one host are still correct.
//
// Claiming a block writes a pending affinity, then creates the block and
// confirms the affinity in one transaction. A borrow from another host's block
// is guarded by the host's affinity prefix, so a host only borrows while every
// block it owns is full. Deletes are two-step: a compare-and-swap that marks
// the document deleted (or the affinity pendingDeletion), then a delete that
// compares the revision; readers skip documents marked deleted.
//
// # Reading and repairing
//
// Snapshot returns every block, affinity and handle at one revision for
// calicoctl ipam show; Check turns a snapshot into a Report of leaks,
// duplicates, stale handles and the leftovers of vanished nodes, and Repair
// fixes what a Report lists without touching anything that changed since.
package ipam
