package nft

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strings"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
)

// HookPoint is a netfilter hook a base chain attaches to.
type HookPoint uint8

// Hooks.
const (
	HookPrerouting HookPoint = iota + 1
	HookInput
	HookForward
	HookOutput
	HookPostrouting
)

func (h HookPoint) String() string {
	switch h {
	case HookPrerouting:
		return "prerouting"
	case HookInput:
		return "input"
	case HookForward:
		return "forward"
	case HookOutput:
		return "output"
	case HookPostrouting:
		return "postrouting"
	}
	return fmt.Sprintf("hook(%d)", h)
}

// Chain priorities of the classic tables.
const (
	PriorityRaw    int32 = -300
	PriorityMangle int32 = -150
	PriorityFilter int32 = 0
)

// BaseChain attaches a chain to a hook. Base chains always have policy
// accept: this table drops only what its rules drop.
type BaseChain struct {
	Hook     HookPoint
	Priority int32
	// Type is "filter" (the default when empty), "route" or "nat".
	Type string
}

func (b BaseChain) typ() string {
	if b.Type == "" {
		return "filter"
	}
	return b.Type
}

func (b BaseChain) String() string {
	return fmt.Sprintf("type %s hook %s priority %d; policy accept;", b.typ(), b.Hook, b.Priority)
}

// Chain is a desired chain: a base chain when Base is set, otherwise a
// regular chain reached by jump, goto or a verdict map.
type Chain struct {
	Name  string
	Base  *BaseChain
	Rules []Rule
}

// MaxElementsPerMessage bounds the elements of one set-element message;
// the kernel fails larger ones with a misleading ENOENT.
const MaxElementsPerMessage = 2000

// Options configure a Table.
type Options struct {
	// Name of the table (family inet); default "calico".
	Name string
	// NetNSFd is an open network namespace to work in; 0 means the
	// namespace of the process.
	NetNSFd int
	// SocketBuffer is the netlink socket buffer size in bytes (forced
	// past the sysctl limits when allowed); default 64 MiB.
	SocketBuffer int
	// Offline computes and commits transactions without a kernel: Apply
	// reports what it would send, Load finds nothing. For tests.
	Offline bool
	// Logger; default discards.
	Logger *slog.Logger
}

// Table is the desired state of one nftables table of family inet, and
// what the driver believes the kernel holds. It is not safe for
// concurrent use.
type Table struct {
	opts  Options
	log   *slog.Logger
	conn  *nftables.Conn
	raw   *netlink.Conn // for whole-table rule dumps
	nt    *nftables.Table
	setID uint32

	chains      map[string]*chainState
	sets        map[string]*setState
	dirtyChains map[string]struct{}
	dirtySets   map[string]struct{}
	resync      bool
	// chainRefs counts the jumps, gotos and map entries of the desired
	// state that name each chain.
	chainRefs map[string]int
}

type chainState struct {
	want *wantChain
	have *haveChain
}

type wantChain struct {
	base    *BaseChain
	rules   []Rule
	texts   []string
	hashes  []string
	targets []string // chains named by jump and goto
}

type haveChain struct {
	base   *BaseChain
	hashes []string
	broken bool // must be rewritten whatever the hashes say
}

type setState struct {
	want *wantSet
	have *haveSet
}

type setKind struct {
	typ   SetType // 0 for maps
	isMap bool
}

func (k setKind) String() string {
	if k.isMap {
		return "type ifname : verdict"
	}
	return k.typ.String()
}

type wantSet struct {
	kind    setKind
	members map[Member]struct{} // sets
	entries map[string]Verdict  // maps
	elems   map[element]struct{}
	stale   bool // elems must be recomputed
}

type haveSet struct {
	kind  setKind
	elems map[element]struct{}
}

// New returns an empty Table. It does not touch the kernel: the netlink
// connection opens on the first Load or Apply.
func New(opts Options) *Table {
	if opts.Name == "" {
		opts.Name = "calico"
	}
	if opts.SocketBuffer == 0 {
		opts.SocketBuffer = 64 << 20
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &Table{
		opts:        opts,
		log:         log,
		nt:          &nftables.Table{Name: opts.Name, Family: nftables.TableFamilyINet},
		chains:      map[string]*chainState{},
		sets:        map[string]*setState{},
		dirtyChains: map[string]struct{}{},
		dirtySets:   map[string]struct{}{},
		chainRefs:   map[string]int{},
	}
}

func (t *Table) ref(chain string, delta int) {
	if chain == "" {
		return
	}
	t.chainRefs[chain] += delta
	if t.chainRefs[chain] == 0 {
		delete(t.chainRefs, chain)
	}
}

func (t *Table) refEntries(w *wantSet, delta int) {
	if w == nil {
		return
	}
	for _, v := range w.entries {
		t.ref(v.Chain, delta)
	}
}

// Name returns the table's name.
func (t *Table) Name() string { return t.opts.Name }

// Close releases the netlink connection. The kernel table stays.
func (t *Table) Close() error {
	var errs []error
	if t.raw != nil {
		errs = append(errs, t.raw.Close())
		t.raw = nil
	}
	if t.conn != nil {
		errs = append(errs, t.conn.CloseLasting())
		t.conn = nil
	}
	return errors.Join(errs...)
}

// SetChain makes c part of the desired state, replacing a chain of the
// same name.
func (t *Table) SetChain(c Chain) {
	w := &wantChain{base: c.Base, rules: c.Rules, texts: make([]string, len(c.Rules)), hashes: make([]string, len(c.Rules))}
	for i, r := range c.Rules {
		w.texts[i] = r.String()
		w.hashes[i] = hashRule(w.texts[i])
		for _, s := range r.Stmts {
			if v, ok := s.(Verdict); ok && v.Chain != "" {
				w.targets = append(w.targets, v.Chain)
				t.ref(v.Chain, 1)
			}
		}
	}
	st := t.chains[c.Name]
	if st == nil {
		st = &chainState{}
		t.chains[c.Name] = st
	}
	if st.want != nil {
		for _, c := range st.want.targets {
			t.ref(c, -1)
		}
	}
	if st.want != nil && sameBase(st.want.base, w.base) && slices.Equal(st.want.hashes, w.hashes) {
		st.want = w
		return
	}
	st.want = w
	t.dirtyChains[c.Name] = struct{}{}
}

// DeleteChain removes a chain from the desired state.
func (t *Table) DeleteChain(name string) {
	st := t.chains[name]
	if st == nil || st.want == nil {
		return
	}
	for _, c := range st.want.targets {
		t.ref(c, -1)
	}
	st.want = nil
	t.dirtyChains[name] = struct{}{}
}

// HasChain reports whether the desired state holds the chain.
func (t *Table) HasChain(name string) bool {
	st := t.chains[name]
	return st != nil && st.want != nil
}

// ChainNames returns the names of the desired chains, sorted.
func (t *Table) ChainNames() []string {
	var out []string
	for n, st := range t.chains {
		if st.want != nil {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}

func sameBase(a, b *BaseChain) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Hook == b.Hook && a.Priority == b.Priority && a.typ() == b.typ()
}

func (t *Table) wantSet(name string, kind setKind) *wantSet {
	st := t.sets[name]
	if st == nil {
		st = &setState{}
		t.sets[name] = st
	}
	if st.want == nil || st.want.kind != kind {
		t.refEntries(st.want, -1)
		st.want = &wantSet{kind: kind, members: map[Member]struct{}{}, entries: map[string]Verdict{}, stale: true}
	}
	t.dirtySets[name] = struct{}{}
	return st.want
}

// SetSet makes a named set of type typ with exactly these members part of
// the desired state.
func (t *Table) SetSet(name string, typ SetType, members []Member) error {
	if !typ.valid() {
		return fmt.Errorf("set %s: unknown type %d", name, typ)
	}
	for _, m := range members {
		if err := typ.check(m); err != nil {
			return fmt.Errorf("set %s: %w", name, err)
		}
	}
	w := t.wantSet(name, setKind{typ: typ})
	clear(w.members)
	for _, m := range members {
		w.members[m] = struct{}{}
	}
	w.stale = true
	return nil
}

// AddMembers adds members to a desired set made by SetSet.
func (t *Table) AddMembers(name string, members ...Member) error {
	st := t.sets[name]
	if st == nil || st.want == nil || st.want.kind.isMap {
		return fmt.Errorf("add members to set %s: no such set", name)
	}
	w := st.want
	for _, m := range members {
		if err := w.kind.typ.check(m); err != nil {
			return fmt.Errorf("set %s: %w", name, err)
		}
	}
	for _, m := range members {
		w.members[m] = struct{}{}
	}
	w.stale = true
	t.dirtySets[name] = struct{}{}
	return nil
}

// RemoveMembers removes members from a desired set; absent ones are
// ignored.
func (t *Table) RemoveMembers(name string, members ...Member) {
	st := t.sets[name]
	if st == nil || st.want == nil || st.want.kind.isMap {
		return
	}
	for _, m := range members {
		delete(st.want.members, m)
	}
	st.want.stale = true
	t.dirtySets[name] = struct{}{}
}

// DeleteSet removes a set or map from the desired state.
func (t *Table) DeleteSet(name string) {
	st := t.sets[name]
	if st == nil || st.want == nil {
		return
	}
	t.refEntries(st.want, -1)
	st.want = nil
	t.dirtySets[name] = struct{}{}
}

// HasSet reports whether the desired state holds the set or map.
func (t *Table) HasSet(name string) bool {
	st := t.sets[name]
	return st != nil && st.want != nil
}

// SetLen returns the number of members of a desired set (entries of a map).
func (t *Table) SetLen(name string) int {
	st := t.sets[name]
	if st == nil || st.want == nil {
		return 0
	}
	if st.want.kind.isMap {
		return len(st.want.entries)
	}
	return len(st.want.members)
}

// SetNames returns the names of the desired sets and maps, sorted.
func (t *Table) SetNames() []string {
	var out []string
	for n, st := range t.sets {
		if st.want != nil {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}

// SetMap makes a verdict map keyed by interface name with exactly these
// entries part of the desired state.
func (t *Table) SetMap(name string, entries map[string]Verdict) {
	w := t.wantSet(name, setKind{isMap: true})
	t.refEntries(w, -1)
	clear(w.entries)
	maps.Copy(w.entries, entries)
	t.refEntries(w, 1)
	w.stale = true
}

// SetMapEntry adds or replaces one entry of a desired map (creating the
// map if needed).
func (t *Table) SetMapEntry(name, key string, v Verdict) {
	st := t.sets[name]
	var w *wantSet
	if st != nil && st.want != nil && st.want.kind.isMap {
		w = st.want
		if old, ok := w.entries[key]; ok && old == v {
			return
		}
		t.dirtySets[name] = struct{}{}
	} else {
		w = t.wantSet(name, setKind{isMap: true})
	}
	if old, ok := w.entries[key]; ok {
		t.ref(old.Chain, -1)
	}
	t.ref(v.Chain, 1)
	w.entries[key] = v
	w.stale = true
}

// DeleteMapEntry removes one entry of a desired map.
func (t *Table) DeleteMapEntry(name, key string) {
	st := t.sets[name]
	if st == nil || st.want == nil || !st.want.kind.isMap {
		return
	}
	old, ok := st.want.entries[key]
	if !ok {
		return
	}
	t.ref(old.Chain, -1)
	delete(st.want.entries, key)
	st.want.stale = true
	t.dirtySets[name] = struct{}{}
}

// Pending reports whether Apply has anything to do (as far as the driver
// knows without reading the kernel).
func (t *Table) Pending() bool {
	return t.resync || len(t.dirtyChains) > 0 || len(t.dirtySets) > 0
}

// MarkForResync makes the next Apply read the kernel back first and
// repair whatever differs.
func (t *Table) MarkForResync() { t.resync = true }

func (w *wantSet) elements() map[element]struct{} {
	if !w.stale && w.elems != nil {
		return w.elems
	}
	var es []element
	if w.kind.isMap {
		for k, v := range w.entries {
			es = append(es, element{key: ifNameKey(k), verdict: v})
		}
	} else {
		es = w.kind.typ.elements(w.members)
	}
	w.elems = make(map[element]struct{}, len(es))
	for _, e := range es {
		w.elems[e] = struct{}{}
	}
	w.stale = false
	return w.elems
}

func ifNameKey(name string) string {
	b := make([]byte, 16)
	copy(b, name)
	return string(b)
}

// Render prints the desired state in nft syntax, sorted by name: a stable
// text for golden files and debugging.
func (t *Table) Render() string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "table inet %s {\n", t.opts.Name)
	for _, name := range t.SetNames() {
		w := t.sets[name].want
		kw := "set"
		if w.kind.isMap {
			kw = "map"
		}
		fmt.Fprintf(&sb, "\t%s %s {\n\t\t%s\n", kw, name, w.kind)
		lines := renderElements(w.kind, w.elements())
		if len(lines) > 0 {
			sb.WriteString("\t\telements = {\n")
			for _, l := range lines {
				fmt.Fprintf(&sb, "\t\t\t%s,\n", l)
			}
			sb.WriteString("\t\t}\n")
		}
		sb.WriteString("\t}\n")
	}
	for _, name := range t.ChainNames() {
		w := t.chains[name].want
		fmt.Fprintf(&sb, "\tchain %s {\n", name)
		if w.base != nil {
			fmt.Fprintf(&sb, "\t\t%s\n", w.base)
		}
		for _, txt := range w.texts {
			fmt.Fprintf(&sb, "\t\t%s\n", txt)
		}
		sb.WriteString("\t}\n")
	}
	sb.WriteString("}\n")
	return sb.String()
}

func renderElements(k setKind, elems map[element]struct{}) []string {
	es := slices.Collect(maps.Keys(elems))
	if !k.isMap {
		return sortElements(k.typ, es)
	}
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = fmt.Sprintf("%q : %s", strings.TrimRight(e.key, "\x00"), e.verdict)
	}
	slices.Sort(out)
	return out
}
