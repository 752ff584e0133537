// Package gobgp implements bgp.Speaker with an embedded GoBGP server
// (github.com/osrg/gobgp/v3). It is the only package that imports GoBGP.
//
// Peers, originated routes and filters are declarative: each Set* call is
// diffed against what the server holds. Filters become one global import
// policy and one global export policy whose statements are scoped to
// neighbors with neighbor sets; the export policy ends by accepting only our
// own prefixes and the exportable set (default reject), so learned routes
// outside Calico's ranges are never passed on, as Calico's BIRD export
// filter does. Learned routes and session states are read back from the
// server (ListPath, ListPeer); WatchEvent only signals that they changed.
package gobgp

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	gobgplog "github.com/osrg/gobgp/v3/pkg/log"
	"github.com/osrg/gobgp/v3/pkg/server"

	"github.com/calico-go/calico/internal/bgp"
)

// Defaults for Options.
const (
	DefaultConnectRetry = 5 * time.Second
	DefaultIdleHold     = 5 * time.Second
)

// Options configure a Speaker.
type Options struct {
	Logger *slog.Logger
	// ConnectRetry is the pause between connection attempts of active
	// sessions (GoBGP waits between one and two times it; minimum 5s).
	ConnectRetry time.Duration
	// IdleHold is how long a session stays Idle after it went down.
	IdleHold time.Duration
}

// Speaker is a bgp.Speaker backed by an embedded GoBGP server.
type Speaker struct {
	opts Options
	log  *slog.Logger

	mu         sync.Mutex // serialises management calls
	srv        *server.BgpServer
	stopWatch  context.CancelFunc
	global     bgp.Global
	peers      map[netip.Addr]bgp.Peer
	routes     map[netip.Prefix]addedRoute
	exportable []netip.Prefix
	// filterPeers are the peers the policy is built for (the last desired
	// set, including any whose session failed to be added).
	filterPeers []bgp.Peer
	policyKey   string

	stMu    sync.Mutex // guards since
	since   map[netip.Addr]time.Time
	changed chan struct{}
}

type addedRoute struct {
	route bgp.Route
	uuid  []byte
}

var _ bgp.Speaker = (*Speaker)(nil)

// New returns a stopped Speaker.
func New(opts Options) *Speaker {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.ConnectRetry <= 0 {
		opts.ConnectRetry = DefaultConnectRetry
	}
	if opts.IdleHold <= 0 {
		opts.IdleHold = DefaultIdleHold
	}
	return &Speaker{opts: opts, log: opts.Logger, changed: make(chan struct{}, 1), since: map[netip.Addr]time.Time{}}
}

// Start implements bgp.Speaker.
func (s *Speaker) Start(ctx context.Context, g bgp.Global) (retErr error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		return fmt.Errorf("bgp speaker already started")
	}
	if !g.RouterID.Is4() {
		return fmt.Errorf("router ID %v: must be an IPv4 address", g.RouterID)
	}
	srv := server.NewBgpServer(server.LoggerOption(&logAdapter{log: s.log}))
	go srv.Serve()
	defer func() {
		if retErr != nil {
			srv.Stop()
		}
	}()
	port := g.ListenPort
	if port == 0 {
		port = 179
	}
	var listen []string
	for _, a := range g.ListenAddrs {
		listen = append(listen, a.String())
	}
	if len(listen) == 0 {
		listen = []string{"0.0.0.0", "::"}
	}
	if err := srv.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{
		Asn: g.ASN, RouterId: g.RouterID.String(), ListenPort: port, ListenAddresses: listen,
	}}); err != nil {
		return fmt.Errorf("start BGP (AS %d, router ID %s, port %d): %w", g.ASN, g.RouterID, port, err)
	}
	wctx, cancel := context.WithCancel(context.Background())
	err := srv.WatchEvent(wctx, &api.WatchEventRequest{
		Peer:  &api.WatchEventRequest_Peer{},
		Table: &api.WatchEventRequest_Table{Filters: []*api.WatchEventRequest_Table_Filter{{Type: api.WatchEventRequest_Table_Filter_BEST}}},
	}, s.onEvent)
	if err != nil {
		cancel()
		return fmt.Errorf("watch BGP events: %w", err)
	}
	s.srv, s.stopWatch, s.global = srv, cancel, g
	s.peers, s.routes, s.exportable, s.filterPeers, s.policyKey = map[netip.Addr]bgp.Peer{}, map[netip.Prefix]addedRoute{}, nil, nil, ""
	if err := s.applyPolicy(ctx, nil); err != nil {
		s.srv, s.stopWatch = nil, nil
		cancel()
		return err
	}
	s.log.Info("bgp speaker started", "asn", g.ASN, "router_id", g.RouterID.String(), "port", port)
	return nil
}

// Stop implements bgp.Speaker.
func (s *Speaker) Stop(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv == nil {
		return nil
	}
	s.stopWatch()
	err := s.srv.StopBgp(ctx, &api.StopBgpRequest{})
	s.srv.Stop()
	s.srv = nil
	s.notify()
	if err != nil {
		return fmt.Errorf("stop BGP: %w", err)
	}
	return nil
}

func (s *Speaker) onEvent(r *api.WatchEventResponse) {
	if pe := r.GetPeer(); pe != nil && pe.Type == api.WatchEventResponse_PeerEvent_STATE && pe.Peer != nil && pe.Peer.State != nil {
		if a, err := netip.ParseAddr(pe.Peer.State.NeighborAddress); err == nil {
			s.stMu.Lock()
			s.since[a] = time.Now()
			s.stMu.Unlock()
		}
	}
	s.notify()
}

func (s *Speaker) notify() {
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

// Changed implements bgp.Speaker.
func (s *Speaker) Changed() <-chan struct{} { return s.changed }

// SetPeers implements bgp.Speaker.
func (s *Speaker) SetPeers(ctx context.Context, peers []bgp.Peer) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv == nil {
		return bgp.ErrNotStarted
	}
	want := make(map[netip.Addr]bgp.Peer, len(peers))
	for _, p := range peers {
		want[p.Address] = p
	}
	var errs []error
	for a, old := range s.peers {
		if p, ok := want[a]; ok && peerConfigEqual(old, p) {
			continue
		}
		if err := s.srv.DeletePeer(ctx, &api.DeletePeerRequest{Address: a.String()}); err != nil {
			errs = append(errs, fmt.Errorf("delete BGP peer %s: %w", a, err))
			continue
		}
		delete(s.peers, a)
		s.stMu.Lock()
		delete(s.since, a)
		s.stMu.Unlock()
		s.log.Info("bgp peer removed", "peer", a.String(), "name", old.Name)
	}
	// Policies name peers in neighbor sets: install them before adding.
	s.filterPeers = slices.Clone(peers)
	if err := s.applyPolicy(ctx, nil); err != nil {
		errs = append(errs, err)
	}
	addrs := sortedAddrs(want)
	for _, a := range addrs {
		p := want[a]
		if old, ok := s.peers[a]; ok && peerConfigEqual(old, p) {
			s.peers[a] = p // name/type may change without a reset
			continue
		}
		if err := s.srv.AddPeer(ctx, &api.AddPeerRequest{Peer: s.apiPeer(p)}); err != nil {
			errs = append(errs, fmt.Errorf("add BGP peer %s (%s): %w", a, p.Name, err))
			continue
		}
		s.peers[a] = p
		s.stMu.Lock()
		s.since[a] = time.Now()
		s.stMu.Unlock()
		s.log.Info("bgp peer added", "peer", a.String(), "name", p.Name, "asn", p.ASN, "passive", p.Passive)
	}
	s.notify()
	return joinErrs(errs)
}

// SetRoutes implements bgp.Speaker.
func (s *Speaker) SetRoutes(ctx context.Context, routes []bgp.Route) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv == nil {
		return bgp.ErrNotStarted
	}
	want := make(map[netip.Prefix]bgp.Route, len(routes))
	for _, r := range routes {
		r.Prefix = r.Prefix.Masked()
		want[r.Prefix] = r
	}
	var errs []error
	// Widen the export policy before adding, narrow it after removing.
	extra := make([]netip.Prefix, 0, len(want))
	for p := range want {
		extra = append(extra, p)
	}
	if err := s.applyPolicy(ctx, extra); err != nil {
		errs = append(errs, err)
	}
	for p, old := range s.routes {
		if r, ok := want[p]; ok && routeEqual(old.route, r) {
			continue
		}
		if err := s.srv.DeletePath(ctx, &api.DeletePathRequest{Family: family(p), Uuid: old.uuid}); err != nil {
			errs = append(errs, fmt.Errorf("withdraw %s: %w", p, err))
			continue
		}
		delete(s.routes, p)
	}
	for _, p := range sortedPrefixes(want) {
		r := want[p]
		if _, ok := s.routes[p]; ok {
			continue
		}
		path, err := apiPath(r)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		res, err := s.srv.AddPath(ctx, &api.AddPathRequest{Path: path})
		if err != nil {
			errs = append(errs, fmt.Errorf("advertise %s: %w", p, err))
			continue
		}
		s.routes[p] = addedRoute{route: r, uuid: res.Uuid}
	}
	if err := s.applyPolicy(ctx, nil); err != nil {
		errs = append(errs, err)
	}
	return joinErrs(errs)
}

// SetExportable implements bgp.Speaker.
func (s *Speaker) SetExportable(ctx context.Context, prefixes []netip.Prefix) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv == nil {
		return bgp.ErrNotStarted
	}
	s.exportable = slices.Clone(prefixes)
	return s.applyPolicy(ctx, nil)
}

// Learned implements bgp.Speaker.
func (s *Speaker) Learned(ctx context.Context) ([]bgp.LearnedRoute, error) {
	s.mu.Lock()
	srv := s.srv
	s.mu.Unlock()
	if srv == nil {
		return nil, bgp.ErrNotStarted
	}
	var out []bgp.LearnedRoute
	for _, fam := range []*api.Family{familyV4, familyV6} {
		err := srv.ListPath(ctx, &api.ListPathRequest{TableType: api.TableType_GLOBAL, Family: fam}, func(d *api.Destination) {
			if lr, ok := learnedFrom(d); ok {
				out = append(out, lr)
			}
		})
		if err != nil {
			return nil, fmt.Errorf("list BGP paths: %w", err)
		}
	}
	slices.SortFunc(out, func(a, b bgp.LearnedRoute) int { return a.Prefix.Compare(b.Prefix) })
	return out, nil
}

// Peers implements bgp.Speaker.
func (s *Speaker) Peers(ctx context.Context) ([]bgp.PeerStatus, error) {
	s.mu.Lock()
	srv := s.srv
	desired := make(map[netip.Addr]bgp.Peer, len(s.peers))
	for a, p := range s.peers {
		desired[a] = p
	}
	s.mu.Unlock()
	if srv == nil {
		return nil, bgp.ErrNotStarted
	}
	var out []bgp.PeerStatus
	err := srv.ListPeer(ctx, &api.ListPeerRequest{}, func(p *api.Peer) {
		if p.State == nil {
			return
		}
		a, err := netip.ParseAddr(p.State.NeighborAddress)
		if err != nil {
			return
		}
		st := bgp.PeerStatus{Address: a, State: sessionState(p.State.SessionState)}
		if d, ok := desired[a]; ok {
			st.Name, st.Type = d.Name, d.Type
		}
		s.stMu.Lock()
		st.Since = s.since[a]
		s.stMu.Unlock()
		if p.State.AdminState == api.PeerState_DOWN {
			st.Info = "administratively down"
		}
		out = append(out, st)
	})
	if err != nil {
		return nil, fmt.Errorf("list BGP peers: %w", err)
	}
	slices.SortFunc(out, func(a, b bgp.PeerStatus) int { return a.Address.Compare(b.Address) })
	return out, nil
}

func sessionState(s api.PeerState_SessionState) bgp.SessionState {
	switch s {
	case api.PeerState_CONNECT:
		return bgp.StateConnect
	case api.PeerState_ACTIVE:
		return bgp.StateActive
	case api.PeerState_OPENSENT:
		return bgp.StateOpenSent
	case api.PeerState_OPENCONFIRM:
		return bgp.StateOpenConfirm
	case api.PeerState_ESTABLISHED:
		return bgp.StateEstablished
	}
	return bgp.StateIdle
}

func (s *Speaker) apiPeer(p bgp.Peer) *api.Peer {
	fam := familyV4
	if p.Address.Is6() {
		fam = familyV6
	}
	ap := &api.Peer{
		Conf: &api.PeerConf{
			NeighborAddress: p.Address.String(),
			PeerAsn:         p.ASN,
			LocalAsn:        p.LocalASN,
			AuthPassword:    p.Password,
			AllowOwnAsn:     p.AllowOwnAS,
			Description:     p.Name,
		},
		Transport: &api.Transport{PassiveMode: p.Passive, RemotePort: uint32(p.Port)},
		Timers: &api.Timers{Config: &api.TimersConfig{
			ConnectRetry:           uint64(s.opts.ConnectRetry / time.Second),
			IdleHoldTimeAfterReset: uint64(s.opts.IdleHold / time.Second),
		}},
		AfiSafis: []*api.AfiSafi{{Config: &api.AfiSafiConfig{Family: fam, Enabled: true}}},
	}
	if p.LocalAddress.IsValid() {
		ap.Transport.LocalAddress = p.LocalAddress.String()
	}
	if p.KeepaliveTime > 0 {
		ka := uint64(p.KeepaliveTime / time.Second)
		ap.Timers.Config.KeepaliveInterval = ka
		ap.Timers.Config.HoldTime = 3 * ka
	}
	if p.RRClient {
		ap.RouteReflector = &api.RouteReflector{RouteReflectorClient: true, RouteReflectorClusterId: p.RRClusterID}
	}
	if p.RestartTime > 0 {
		ap.GracefulRestart = &api.GracefulRestart{Enabled: true, RestartTime: uint32(p.RestartTime / time.Second)}
		ap.AfiSafis[0].MpGracefulRestart = &api.MpGracefulRestart{Config: &api.MpGracefulRestartConfig{Enabled: true}}
	}
	if p.TTLSecurity > 0 {
		ap.TtlSecurity = &api.TtlSecurity{Enabled: true, TtlMin: uint32(256 - int(p.TTLSecurity))}
	}
	return ap
}

// peerConfigEqual says whether two peers need the same session (filters
// and names are applied without touching the session).
func peerConfigEqual(a, b bgp.Peer) bool {
	return a.Address == b.Address && a.Port == b.Port && a.ASN == b.ASN && a.LocalASN == b.LocalASN &&
		a.Password == b.Password && a.Passive == b.Passive && a.LocalAddress == b.LocalAddress &&
		a.RRClient == b.RRClient && a.RRClusterID == b.RRClusterID && a.RestartTime == b.RestartTime &&
		a.KeepaliveTime == b.KeepaliveTime && a.AllowOwnAS == b.AllowOwnAS && a.TTLSecurity == b.TTLSecurity
}

func routeEqual(a, b bgp.Route) bool {
	return a.Prefix == b.Prefix && a.NextHop == b.NextHop && slices.Equal(a.Communities, b.Communities)
}

func sortedAddrs[V any](m map[netip.Addr]V) []netip.Addr {
	out := make([]netip.Addr, 0, len(m))
	for a := range m {
		out = append(out, a)
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

func sortedPrefixes[V any](m map[netip.Prefix]V) []netip.Prefix {
	out := make([]netip.Prefix, 0, len(m))
	for p := range m {
		out = append(out, p)
	}
	slices.SortFunc(out, netip.Prefix.Compare)
	return out
}

// logAdapter feeds GoBGP's logs to slog; GoBGP's info chatter goes to
// debug.
type logAdapter struct {
	log   *slog.Logger
	level gobgplog.LogLevel
}

func fields(f gobgplog.Fields) []any {
	out := make([]any, 0, 2*len(f))
	for k, v := range f {
		out = append(out, k, v)
	}
	return out
}

func (l *logAdapter) Panic(msg string, f gobgplog.Fields) { l.log.Error("gobgp: "+msg, fields(f)...) }
func (l *logAdapter) Fatal(msg string, f gobgplog.Fields) { l.log.Error("gobgp: "+msg, fields(f)...) }
func (l *logAdapter) Error(msg string, f gobgplog.Fields) { l.log.Warn("gobgp: "+msg, fields(f)...) }
func (l *logAdapter) Warn(msg string, f gobgplog.Fields)  { l.log.Debug("gobgp: "+msg, fields(f)...) }
func (l *logAdapter) Info(msg string, f gobgplog.Fields)  { l.log.Debug("gobgp: "+msg, fields(f)...) }
func (l *logAdapter) Debug(msg string, f gobgplog.Fields) {}
func (l *logAdapter) SetLevel(level gobgplog.LogLevel)    { l.level = level }
func (l *logAdapter) GetLevel() gobgplog.LogLevel         { return gobgplog.InfoLevel }
