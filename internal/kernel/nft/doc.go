// Package nft is a declarative driver for one nftables table of our own,
// written through netlink with github.com/google/nftables.
//
// A Table holds the desired state of the table: chains of rules (base
// chains carry their hook, priority and type), named sets of addresses,
// of address-protocol-port tuples and of address/protocol/port boxes, and
// verdict maps keyed by interface name. Callers change the desired state
// with cheap in-memory calls (SetChain, SetSet, AddMembers, SetMap, ...)
// and then call Apply, which sends ONE atomic nftables transaction holding
// only what differs from what the Table last wrote: new and rewritten
// chains, set element deltas (in chunks of at most MaxElementsPerMessage),
// and deletions of what is no longer wanted. A failed transaction changes
// nothing in the kernel; the Table then reads the kernel back before the
// next Apply.
//
// # Identity and drift
//
// Every rule carries a userdata comment "cali:<hash>" where the hash is
// taken over the rule's canonical text, so a chain is in sync exactly when
// the list of hashes the kernel reports equals the desired list. A chain
// that differs is rewritten whole (flush and add, in the same transaction),
// which is atomic for packets. Load and Refresh read the table back (chains
// with their rule hashes, sets with their elements) and mark whatever
// differs for repair; a deleted or flushed table is rebuilt by the next
// Apply. The table is never flushed as a whole, so established flows and
// the rules protecting them survive restarts.
//
// # Rules
//
// A Rule is a list of statements built with the constructors of this
// package (IIfName, SAddr, SAddrInSet, DPorts, CTState, SetMark, Jump,
// ...). Each statement knows both its nftables expressions and its text in
// nft syntax; the text is what Render prints and what rule hashes are taken
// over. In the inet family an address match needs a "meta nfproto" guard;
// the driver adds it (once per rule), as the nft tool does.
//
// Only internal/kernel packages may import nftables or netlink; callers see
// the types of this package only.
package nft
