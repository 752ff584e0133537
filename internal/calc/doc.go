// Package calc is calico-node's calculation graph: it turns the datastore
// resources the syncer delivers into the typed dataplane messages of
// package dpapi. It is pure and synchronous: no I/O, no goroutines, and
// its output depends only on the current input state (so feeding the same
// final state by any path yields the same dataplane state).
//
// # Stages
//
//		updates ──► label index ──► policy resolver ──► rule scanner ──► sequencer ──► dpapi.Sink
//		   │        (items, profiles)  (local endpoints)  (IP sets)          ▲
//		   └──────► route and VTEP resolver (nodes, pools, affinities) ─────┘
//
//	  - Label index: every endpoint and network set of the cluster is an
//	    item with effective labels: its own labels plus implicit ones
//	    (projectcalico.org/namespace, /orchestrator, /serviceaccount for
//	    workload endpoints; the namespace for NetworkSets) layered over the
//	    labelsToApply of its profiles (own labels win; an earlier profile
//	    wins over a later one).
//	  - Local-endpoint filter: endpoints whose spec.node is Options.NodeName
//	    are local; only they get tiers and only their policies and profiles
//	    are sent.
//	  - Policy resolver: policy selectors (compiled as SPEC §2 says) are
//	    matched against local endpoints. A policy is active, and sent, while
//	    it selects a local endpoint it applies to (workload endpoints take
//	    neither doNotTrack nor preDNAT policies) or carries the
//	    AssumeNeededOnEveryNode hint. Staged policies are never active.
//	    Each endpoint gets its tiers in evaluation order: tiers by order
//	    (unset last) then name; policies by order (unset last) then
//	    name/namespace/kind; only tiers holding an applicable policy; per
//	    direction from types (empty types counts as both). Host endpoints
//	    get their policies split per stage: normal, doNotTrack (not on "*"
//	    endpoints), preDNAT (ingress only) and applyOnForward.
//	  - Rule scanner: the rules of active policies and profiles become
//	    dpapi.Rules. Each selector (with namespace and service-account parts
//	    folded in) becomes an IP set whose ID is its selector.UniqueID, so
//	    equal selectors share a set; each named port becomes an IP-port set.
//	    Sets are reference counted and exist while a rule names them. Their
//	    members are the addresses of the matching endpoints (anywhere in the
//	    cluster) and the nets of matching network sets, counted so that
//	    overlapping contributions come and go correctly.
//	  - Route and VTEP resolver (network): follows every Node (addresses,
//	    VXLAN tunnel address and MAC, the MAC derived from the node name
//	    when unset), IP pool, IPAM block affinity (affinity.Block, from the
//	    syncer) and workload endpoint, and decides the routes this node's
//	    dataplane programs: local workload addresses to their interfaces;
//	    for blocks of VXLAN pools a blackhole for this node's and a route
//	    through the owner's VTEP (or, CrossSubnet within this node's
//	    subnet, straight to its address) for others'; and /32 routes for
//	    remote workload or VTEP addresses outside their node's blocks
//	    (borrowed addresses). Blocks of other pools are left to BGP.
//	  - Sequencer: remembers what changed and what was sent, and emits each
//	    batch in the dpapi contract order, only with what differs.
//
// # Incremental work
//
// Selectors are matched through an inverted index (see matcher): each
// selector is filed under a label it requires (found by reading its
// canonical form), and items are filed under their (key, value) pairs. A
// label change evaluates only the selectors filed under the item's labels,
// a new selector only the items carrying the label it requires, so the
// cost of an update grows with what it touches, not with the cluster.
//
// The route resolver's work is incremental too: an input change marks the
// destinations it can affect dirty and only those are resolved again; a
// change of this node's own Node or of a pool re-resolves the
// destinations they cover.
//
// # Use
//
// Feed OnUpdates with the syncer's updates (converted to Update), call
// OnInSync when the syncer is in sync: the whole state is emitted then as
// one batch ending with dpapi.InSync, and each later OnUpdates emits one
// batch with the differences. FelixConfiguration resources and this node's
// Node labels are merged with the local layers of Options by package
// felixconfig into the ConfigUpdate.
//
// Not handled yet: Kubernetes Service matches in rules (such rules are
// skipped and logged), IPv6 VXLAN, and ClusterInformation.datastoreReady.
package calc
