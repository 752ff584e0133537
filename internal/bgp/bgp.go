// Package bgp is the narrow interface between calico-node and its BGP
// speaker. A Speaker is told, declaratively, which peers it should have,
// which prefixes it should originate and which learned prefixes it may pass
// on; it reports the routes it learned and the state of each session.
//
// The implementation (internal/bgp/gobgp, an embedded GoBGP) stays behind
// this interface: nothing else in the module imports GoBGP. What to peer
// with and what to advertise is computed from datastore state by
// internal/bgp/desired (pure) and applied by internal/bgp/controller, which
// also programs the learned routes into the kernel.
package bgp

import (
	"context"
	"errors"
	"net/netip"
	"time"
)

// ErrNotStarted: the speaker was used before Start or after Stop.
var ErrNotStarted = errors.New("bgp speaker not started")

// Global is the speaker's own identity.
type Global struct {
	ASN      uint32
	RouterID netip.Addr // an IPv4 address
	// ListenPort is the TCP port for incoming sessions (0: 179; -1: do
	// not listen).
	ListenPort int32
	// ListenAddrs default to every address ("0.0.0.0" and "::").
	ListenAddrs []netip.Addr
}

// PeerType says why a peering exists; `calicoctl node status` prints it.
type PeerType string

// Peer types, as calicoctl prints them.
const (
	PeerMesh   PeerType = "node-to-node mesh"
	PeerGlobal PeerType = "global"
	PeerNode   PeerType = "node specific"
)

// NextHopMode says how the next hop of routes sent to a peer is set.
type NextHopMode string

// Next hop modes (BGPPeer.nextHopMode).
const (
	NextHopAuto NextHopMode = ""     // BGP's default: self for eBGP, kept for iBGP
	NextHopSelf NextHopMode = "Self" // always this node
	NextHopKeep NextHopMode = "Keep" // never changed
)

// Peer is one desired BGP session. Address identifies it.
type Peer struct {
	// Name is Calico's session name (Mesh_192_0_2_1, Node_..., Global_...).
	Name    string
	Type    PeerType
	Address netip.Addr
	Port    uint16 // 0: 179
	ASN     uint32
	// LocalASN overrides Global.ASN for this session (0: Global.ASN).
	LocalASN uint32
	Password string // TCP MD5; empty for none
	// Passive waits for the peer to connect.
	Passive bool
	// LocalAddress is the source address of the session (invalid: chosen
	// by the kernel).
	LocalAddress netip.Addr
	// RRClient makes the peer a route-reflector client of this node, in
	// cluster RRClusterID.
	RRClient    bool
	RRClusterID string
	NextHop     NextHopMode
	// RestartTime enables graceful restart with this restart time; while a
	// session is down within it, its routes are kept (0: off).
	RestartTime time.Duration
	// KeepaliveTime (hold time is three times it; 0: defaults).
	KeepaliveTime time.Duration
	// AllowOwnAS accepts routes carrying our AS up to this many times.
	AllowOwnAS uint32
	// TTLSecurity, when non-zero, is the number of hops the peer may be
	// away (GTSM).
	TTLSecurity uint8
	// Import and Export are ordered filter rules; the first match decides.
	// Routes no rule matches fall through to the defaults (import: accept;
	// export: only the speaker's export set).
	Import, Export []FilterRule
}

// External says whether the session is eBGP.
func (p Peer) External(globalASN uint32) bool {
	local := p.LocalASN
	if local == 0 {
		local = globalASN
	}
	return p.ASN != local
}

// MatchOp compares a route's prefix with a rule's Prefix.
type MatchOp string

// Match operators (BGPFilter matchOperator). Empty means the rule has no
// prefix condition.
const (
	MatchAny      MatchOp = ""
	MatchEqual    MatchOp = "Equal"
	MatchNotEqual MatchOp = "NotEqual"
	MatchIn       MatchOp = "In"
	MatchNotIn    MatchOp = "NotIn"
)

// Action is what a matching filter rule does.
type Action string

// Filter actions.
const (
	Accept Action = "Accept"
	Reject Action = "Reject"
)

// FilterRule is one import or export rule of a peer.
type FilterRule struct {
	Prefix netip.Prefix
	Op     MatchOp
	// MinLen and MaxLen bound the prefix length of matched routes (0: no
	// bound).
	MinLen, MaxLen int
	// Communities the route must carry (any of them).
	Communities []string
	Action      Action
	// AddCommunities and PrependAS modify accepted routes.
	AddCommunities []string
	PrependAS      []uint32
}

// Route is one prefix the speaker originates.
type Route struct {
	Prefix netip.Prefix
	// NextHop is the advertised next hop (invalid: the session's own
	// address).
	NextHop netip.Addr
	// Communities are "aa:nn" (standard) or "aa:nn:mm" (large).
	Communities []string
}

// LearnedRoute is the best path the speaker holds for a prefix it learned
// from a peer.
type LearnedRoute struct {
	Prefix  netip.Prefix
	NextHop netip.Addr
	// Peer is the session it came from.
	Peer netip.Addr
	// Stale: kept during a peer's graceful restart.
	Stale bool
}

// SessionState is a BGP FSM state.
type SessionState string

// Session states.
const (
	StateIdle        SessionState = "Idle"
	StateConnect     SessionState = "Connect"
	StateActive      SessionState = "Active"
	StateOpenSent    SessionState = "OpenSent"
	StateOpenConfirm SessionState = "OpenConfirm"
	StateEstablished SessionState = "Established"
)

// PeerStatus is a session's state as `calicoctl node status` shows it.
type PeerStatus struct {
	Name    string       `json:"name"`
	Type    PeerType     `json:"type"`
	Address netip.Addr   `json:"address"`
	State   SessionState `json:"state"`
	// Since is when the session last changed state (zero: never).
	Since time.Time `json:"since"`
	// Info carries extra words (the last error).
	Info string `json:"info,omitempty"`
}

// Speaker is a BGP speaker. Calls are safe for concurrent use; every Set*
// replaces the previous value and the speaker converges to it.
type Speaker interface {
	// Start begins speaking with the given identity. Changing the
	// identity needs Stop and Start.
	Start(ctx context.Context, g Global) error
	// Stop closes every session. Routes learned are forgotten.
	Stop(ctx context.Context) error
	// SetPeers makes the speaker's sessions exactly peers (added, updated
	// in place or removed).
	SetPeers(ctx context.Context, peers []Peer) error
	// SetRoutes makes the originated prefixes exactly routes.
	SetRoutes(ctx context.Context, routes []Route) error
	// SetExportable sets the prefixes (and their subnets) that may be passed
	// on to peers besides our own routes: learned routes outside them are
	// never re-advertised.
	SetExportable(ctx context.Context, prefixes []netip.Prefix) error
	// Learned returns the best learned route of each prefix, sorted.
	Learned(ctx context.Context) ([]LearnedRoute, error)
	// Peers returns the state of each configured session, sorted by
	// address.
	Peers(ctx context.Context) ([]PeerStatus, error)
	// Changed is signalled (coalesced) whenever learned routes or session
	// states may have changed.
	Changed() <-chan struct{}
}
