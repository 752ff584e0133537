package dataplane

import (
	"github.com/calico-go/calico/internal/dpapi"
	"github.com/calico-go/calico/internal/kernel/nft"
)

// renderConfig is the configuration as the renderers need it.
type renderConfig struct {
	cfg dpapi.Config
	marks
	deny     nft.Stmt // filter-hook deny: Drop or Reject
	prefixes []string // workload interface prefixes
	groups   bool
}

func newRenderConfig(cfg dpapi.Config, groups bool) *renderConfig {
	c := &renderConfig{cfg: cfg, marks: marksFor(cfg.MarkMask), deny: nft.Drop(), prefixes: cfg.InterfacePrefixes, groups: groups}
	if cfg.FilterDenyAction == "Reject" {
		c.deny = nft.Reject()
	}
	if len(c.prefixes) == 0 {
		c.prefixes = []string{"cali"}
	}
	return c
}

// families are the IP families programmed: IPv6 only with IPv6Support.
func (c *renderConfig) families() []nft.Family {
	if c.cfg.IPv6Support {
		return []nft.Family{nft.IPv4, nft.IPv6}
	}
	return []nft.Family{nft.IPv4}
}

func (c *renderConfig) ruleCtx(tier, kind, name, namespace string, filterHook bool) ruleCtx {
	rc := ruleCtx{marks: c.marks, deny: nft.Drop(), logPrefix: expandLogPrefix(c.cfg.LogPrefix, tier, kind, name, namespace), v6: c.cfg.IPv6Support}
	if filterHook {
		rc.deny = c.deny
	}
	if rc.logPrefix == "" {
		rc.logPrefix = "calico-packet"
	}
	return rc
}

// conntrackRules start endpoint chains: drop INVALID (unless disabled),
// clear the accept and pass marks. ESTABLISHED and RELATED packets never
// get here: the base chains accept them first.
func (c *renderConfig) conntrackRules() []nft.Rule {
	var out []nft.Rule
	if !c.cfg.DisableConntrackInvalidCheck {
		out = append(out, nft.R(nft.CTState(nft.CTInvalid), nft.Drop()))
	}
	return append(out, nft.R(nft.SetMark(c.both(), 0)))
}

func (c *renderConfig) wildcards() []string {
	out := make([]string, len(c.prefixes))
	for i, p := range c.prefixes {
		out[i] = p + "*"
	}
	return out
}

func base(h nft.HookPoint, prio int32) *nft.BaseChain {
	return &nft.BaseChain{Hook: h, Priority: prio}
}

// allMaps are the dispatch maps, created empty so rules can name them.
var allMaps = []string{mapFromWl, mapToWl, mapFromHEP, mapToHEP, mapFromHEPFwd, mapToHEPFwd,
	mapFromHEPUntrkd, mapToHEPUntrkd, mapFromHEPPreDNT}

// renderFailClosed writes the table a dataplane starts with when the
// kernel has none: traffic to and from workload interfaces is dropped
// until the complete state is programmed.
func renderFailClosed(t *nft.Table, c *renderConfig) {
	var in, fwd, out []nft.Rule
	for _, w := range c.wildcards() {
		in = append(in, nft.R(nft.IIfName(w), nft.Drop()).WithComment("Fail closed: not in sync yet"))
		fwd = append(fwd, nft.R(nft.IIfName(w), nft.Drop()), nft.R(nft.OIfName(w), nft.Drop()))
		out = append(out, nft.R(nft.OIfName(w), nft.Drop()))
	}
	t.SetChain(nft.Chain{Name: chainFilterInput, Base: base(nft.HookInput, nft.PriorityFilter), Rules: in})
	t.SetChain(nft.Chain{Name: chainFilterForward, Base: base(nft.HookForward, nft.PriorityFilter), Rules: fwd})
	t.SetChain(nft.Chain{Name: chainFilterOutput, Base: base(nft.HookOutput, nft.PriorityFilter), Rules: out})
}

// renderStatic writes the base chains and the fixed chains; extraInput
// goes early in filter-INPUT (the filter on incoming VXLAN).
func renderStatic(t *nft.Table, c *renderConfig, hosts *hostManager, extraInput []nft.Rule) {
	mk := c.marks
	for _, m := range allMaps {
		if !t.HasSet(m) {
			t.SetMap(m, nil)
		}
	}
	established := nft.R(nft.CTState(nft.CTEstablished|nft.CTRelated), nft.Accept())
	untracked := nft.R(nft.CTState(nft.CTUntracked), nft.Mark(mk.accept, mk.accept), nft.Accept()).
		WithComment("Accepted by untracked policy")
	acceptMarked := nft.R(nft.Mark(mk.accept, mk.accept), nft.Accept())
	clearMarks := nft.R(nft.SetMark(mk.both(), 0))

	// raw: untracked (doNotTrack) host endpoint policy.
	t.SetChain(nft.Chain{Name: chainRawPrerouting, Base: base(nft.HookPrerouting, nft.PriorityRaw), Rules: []nft.Rule{
		clearMarks, nft.R(nft.IIfNameVMap(mapFromHEPUntrkd))}})
	t.SetChain(nft.Chain{Name: chainRawOutput, Base: base(nft.HookOutput, nft.PriorityRaw), Rules: []nft.Rule{
		clearMarks, nft.R(nft.OIfNameVMap(mapToHEPUntrkd))}})

	// mangle: preDNAT host endpoint policy; no default drop.
	mangle := []nft.Rule{established, acceptMarked}
	for _, w := range c.wildcards() {
		mangle = append(mangle, nft.R(nft.IIfName(w), nft.Return()))
	}
	mangle = append(mangle, nft.R(nft.Jump(chainFromHEPPreDNAT)), acceptMarked)
	t.SetChain(nft.Chain{Name: chainManglePrerouting, Base: base(nft.HookPrerouting, nft.PriorityMangle), Rules: mangle})

	// filter INPUT: workloads go to cali-wl-to-host; a packet preDNAT
	// policy accepted skips the normal host endpoint stage.
	input := append([]nft.Rule{established, untracked}, extraInput...)
	for _, w := range c.wildcards() {
		input = append(input, nft.R(nft.IIfName(w), nft.Goto(chainWlToHost)))
	}
	input = append(input, acceptMarked, clearMarks, nft.R(nft.Jump(chainFromHEPDispatch)), acceptMarked)
	t.SetChain(nft.Chain{Name: chainFilterInput, Base: base(nft.HookInput, nft.PriorityFilter), Rules: input})

	// filter FORWARD: workload egress, workload ingress, then forwarded
	// host endpoint policy; accepted when a chain returned with the mark.
	fwd := []nft.Rule{established, untracked, clearMarks}
	for _, w := range c.wildcards() {
		fwd = append(fwd, nft.R(nft.IIfName(w), nft.Jump(chainFromWlDispatch)))
	}
	for _, w := range c.wildcards() {
		fwd = append(fwd, nft.R(nft.OIfName(w), nft.Jump(chainToWlDispatch)))
	}
	fwd = append(fwd, nft.R(nft.Jump(chainFromHEPFwdDispatch)), nft.R(nft.Jump(chainToHEPFwdDispatch)), acceptMarked)
	t.SetChain(nft.Chain{Name: chainFilterForward, Base: base(nft.HookForward, nft.PriorityFilter), Rules: fwd})

	// filter OUTPUT: the host may always reach its own workloads.
	output := []nft.Rule{established, untracked}
	for _, w := range c.wildcards() {
		output = append(output, nft.R(nft.OIfName(w), nft.Accept()).WithComment("Host to local workloads"))
	}
	output = append(output, clearMarks, nft.R(nft.Jump(chainToHEPDispatch)), acceptMarked)
	t.SetChain(nft.Chain{Name: chainFilterOutput, Base: base(nft.HookOutput, nft.PriorityFilter), Rules: output})

	// Workload dispatch: unknown workload interfaces are dropped.
	t.SetChain(nft.Chain{Name: chainFromWlDispatch, Rules: []nft.Rule{
		nft.R(nft.IIfNameVMap(mapFromWl)), nft.R(nft.Drop()).WithComment("Unknown interface")}})
	t.SetChain(nft.Chain{Name: chainToWlDispatch, Rules: []nft.Rule{
		nft.R(nft.OIfNameVMap(mapToWl)), nft.R(nft.Drop()).WithComment("Unknown interface")}})

	// Workload to host: ICMPv6 the host needs, egress policy, then
	// DefaultEndpointToHostAction.
	var wl []nft.Rule
	for _, typ := range []uint8{130, 131, 132, 133, 135, 136} {
		if c.cfg.IPv6Support {
			wl = append(wl, nft.R(nft.NFProto(nft.IPv6), nft.L4Proto(dpapi.ProtoICMPv6), nft.ICMPType(nft.IPv6, typ), nft.Accept()))
		}
	}
	wl = append(wl, nft.R(nft.Jump(chainFromWlDispatch)))
	switch c.cfg.DefaultEndpointToHostAction {
	case "Accept":
		wl = append(wl, nft.R(nft.Accept()).WithComment("DefaultEndpointToHostAction Accept"))
	case "Return":
		wl = append(wl, nft.R(nft.Return()).WithComment("DefaultEndpointToHostAction Return"))
	default:
		wl = append(wl, nft.R(nft.Drop()).WithComment("DefaultEndpointToHostAction Drop"))
	}
	t.SetChain(nft.Chain{Name: chainWlToHost, Rules: wl})

	renderFailsafe(t, c)
	renderHEPDispatch(t, c, hosts)
}

// renderFailsafe writes the failsafe chains: inbound to host ports,
// outbound to destination ports, each optionally limited to a peer net.
func renderFailsafe(t *nft.Table, c *renderConfig) {
	build := func(entries []dpapi.ProtoPort, peer nft.Dir) []nft.Rule {
		var out []nft.Rule
		for _, e := range entries {
			proto := e.Protocol
			if proto == 0 {
				proto = dpapi.ProtoTCP
			}
			s := []nft.Stmt{}
			if e.Net.IsValid() {
				s = append(s, nft.Addr(familyOf(e.Net), peer, e.Net.Masked()))
			}
			s = append(s, nft.L4Proto(proto), nft.Ports(nft.Dst, nft.PortRange{First: e.Port, Last: e.Port}), nft.Accept())
			out = append(out, nft.R(s...))
		}
		return out
	}
	t.SetChain(nft.Chain{Name: chainFailsafeIn, Rules: build(c.cfg.FailsafeInbound, nft.Src)})
	t.SetChain(nft.Chain{Name: chainFailsafeOut, Rules: build(c.cfg.FailsafeOutbound, nft.Dst)})
}

// renderHEPDispatch writes the host endpoint dispatch chains: named
// endpoints through the maps (goto, so an allow returns to the base
// chain), then loopback and excluded interfaces return, then the "*"
// endpoint if there is one.
func renderHEPDispatch(t *nft.Table, c *renderConfig, hosts *hostManager) {
	type dispatch struct {
		chain, mp, prefix string
		out, skipWl       bool
	}
	for _, d := range []dispatch{
		{chainFromHEPDispatch, mapFromHEP, prefixFromHost, false, false},
		{chainToHEPDispatch, mapToHEP, prefixToHost, true, false},
		{chainFromHEPFwdDispatch, mapFromHEPFwd, prefixFromHstFwd, false, true},
		{chainToHEPFwdDispatch, mapToHEPFwd, prefixToHostFwd, true, true},
		{chainFromHEPPreDNAT, mapFromHEPPreDNT, prefixFromHostP, false, false},
	} {
		ifname := nft.IIfName
		vmap := nft.IIfNameVMap
		if d.out {
			ifname, vmap = nft.OIfName, nft.OIfNameVMap
		}
		var rules []nft.Rule
		if d.skipWl {
			for _, w := range c.wildcards() {
				rules = append(rules, nft.R(ifname(w), nft.Return()))
			}
		}
		rules = append(rules, nft.R(vmap(d.mp)))
		if star, ok := hosts.starChain(d.prefix); ok {
			rules = append(rules, nft.R(ifname("lo"), nft.Return()))
			for _, x := range c.cfg.InterfaceExclude {
				if len(x) > 0 && x[0] != '/' { // regular expressions cannot be matched here
					rules = append(rules, nft.R(ifname(x), nft.Return()))
				}
			}
			rules = append(rules, nft.R(nft.Goto(star)))
		}
		t.SetChain(nft.Chain{Name: d.chain, Rules: rules})
	}
}
