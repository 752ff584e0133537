package nft

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
)

// Stats describes one Apply: what it sent to the kernel.
type Stats struct {
	// Messages is the number of netlink messages in the transaction.
	Messages        int
	ChainsWritten   int // chains created or rewritten
	ChainsDeleted   int
	RulesWritten    int
	SetsCreated     int
	SetsDeleted     int
	ElementsAdded   int // canonical elements (an interval counts once)
	ElementsRemoved int
	// ReadBack is true when the Apply read the kernel back first.
	ReadBack bool
}

// Empty reports whether the Apply sent nothing.
func (s Stats) Empty() bool { return s.Messages == 0 }

// ErrTransaction wraps errors the kernel returned for a transaction; the
// kernel state is unchanged and the next Apply reads it back first.
var ErrTransaction = errors.New("nftables transaction failed")

type plan struct {
	newChains    []string // create (and fill)
	recreate     []string // delete, create and fill
	rewrite      []string // flush and fill
	staleChains  []string
	newSets      []string
	recreateSets []string
	staleSets    []string
	elemDel      map[string][]element
	elemAdd      map[string][]element
	forgetChains []string // neither wanted nor in the kernel
	forgetSets   []string
}

func (p *plan) empty() bool {
	return len(p.newChains)+len(p.recreate)+len(p.rewrite)+len(p.staleChains)+
		len(p.newSets)+len(p.recreateSets)+len(p.staleSets)+len(p.elemDel)+len(p.elemAdd) == 0
}

// Apply sends one transaction that brings the kernel from what the Table
// last wrote (or read back) to the desired state. On error nothing was
// changed and the next Apply reads the kernel back first.
func (t *Table) Apply(ctx context.Context) (Stats, error) {
	var st Stats
	if err := ctx.Err(); err != nil {
		return st, err
	}
	if t.resync {
		if _, err := t.Load(ctx); err != nil {
			return st, err
		}
		st.ReadBack = true
	}
	if len(t.dirtyChains) == 0 && len(t.dirtySets) == 0 {
		return st, nil
	}
	p := t.plan()
	if p.empty() {
		t.commit(p)
		return st, nil
	}
	if err := t.checkRefs(p); err != nil {
		return st, err
	}
	n, err := t.send(p, &st)
	st.Messages = n
	if err != nil {
		t.resync = true
		return st, err
	}
	t.commit(p)
	return st, nil
}

func (t *Table) plan() *plan {
	p := &plan{elemDel: map[string][]element{}, elemAdd: map[string][]element{}}
	rewriteFor := map[string]bool{}
	for _, name := range slices.Sorted(maps.Keys(t.dirtySets)) {
		s := t.sets[name]
		switch {
		case s.want == nil && s.have == nil:
			p.forgetSets = append(p.forgetSets, name)
		case s.want == nil:
			p.staleSets = append(p.staleSets, name)
		case s.have == nil:
			p.newSets = append(p.newSets, name)
		case s.have.kind != s.want.kind:
			p.recreateSets = append(p.recreateSets, name)
			rewriteFor[name] = true
		default:
			want := s.want.elements()
			for e := range s.have.elems {
				if _, ok := want[e]; !ok {
					p.elemDel[name] = append(p.elemDel[name], e)
				}
			}
			for e := range want {
				if _, ok := s.have.elems[e]; !ok {
					p.elemAdd[name] = append(p.elemAdd[name], e)
				}
			}
		}
	}
	if len(rewriteFor) > 0 {
		// Chains naming a recreated set must be flushed before it goes.
		for name, c := range t.chains {
			if c.want != nil && c.have != nil && referencesAny(c.want.texts, rewriteFor) {
				t.dirtyChains[name] = struct{}{}
				c.have.broken = true
			}
		}
	}
	for _, name := range slices.Sorted(maps.Keys(t.dirtyChains)) {
		c := t.chains[name]
		switch {
		case c.want == nil && c.have == nil:
			p.forgetChains = append(p.forgetChains, name)
		case c.want == nil:
			p.staleChains = append(p.staleChains, name)
		case c.have == nil:
			p.newChains = append(p.newChains, name)
		case !sameBase(c.have.base, c.want.base):
			p.recreate = append(p.recreate, name)
		case c.have.broken || !slices.Equal(c.have.hashes, c.want.hashes):
			p.rewrite = append(p.rewrite, name)
		}
	}
	return p
}

// referencesAny reports whether a rule text names one of the sets (as
// "@name").
func referencesAny(texts []string, sets map[string]bool) bool {
	for _, txt := range texts {
		for s := range sets {
			if containsRef(txt, s) {
				return true
			}
		}
	}
	return false
}

func containsRef(txt, set string) bool {
	ref := "@" + set
	for i := 0; i+len(ref) <= len(txt); i++ {
		if txt[i:i+len(ref)] == ref && (i+len(ref) == len(txt) || txt[i+len(ref)] == ' ') {
			return true
		}
	}
	return false
}

// checkRefs refuses a transaction whose new rules or map entries jump to
// chains that will not exist, so the error names the culprit.
func (t *Table) checkRefs(p *plan) error {
	exists := func(chain string) bool {
		c := t.chains[chain]
		return c != nil && c.want != nil
	}
	var errs []error
	for _, name := range slices.Concat(p.newChains, p.recreate, p.rewrite) {
		for _, r := range t.chains[name].want.rules {
			for _, s := range r.Stmts {
				if v, ok := s.(Verdict); ok && v.Chain != "" && !exists(v.Chain) {
					errs = append(errs, fmt.Errorf("chain %s: %s to missing chain %s", name, v.text(), v.Chain))
				}
			}
		}
	}
	for _, name := range slices.Concat(p.newSets, p.recreateSets, slices.Collect(maps.Keys(p.elemAdd))) {
		for e := range t.sets[name].want.elements() {
			if e.verdict.Chain != "" && !exists(e.verdict.Chain) {
				errs = append(errs, fmt.Errorf("map %s: %s to missing chain %s", name, e.verdict.text(), e.verdict.Chain))
			}
		}
	}
	for _, name := range p.staleChains {
		if n := t.chainRefs[name]; n > 0 {
			errs = append(errs, fmt.Errorf("chain %s deleted while %d rules or map entries name it", name, n))
		}
	}
	return errors.Join(errs...)
}

func (t *Table) nextID() uint32 {
	t.setID++
	if t.setID == 0 {
		t.setID = 1
	}
	return t.setID
}

// tx collects one transaction's messages (or just counts them offline).
type tx struct {
	t *Table
	n int
}

func (x *tx) conn() *nftables.Conn { return x.t.conn }

func (t *Table) send(p *plan, st *Stats) (int, error) {
	if !t.opts.Offline {
		if err := t.connect(); err != nil {
			return 0, err
		}
	}
	x := &tx{t: t}
	x.table()
	for _, name := range p.recreate {
		x.delChain(name)
	}
	for _, name := range slices.Concat(p.newChains, p.recreate) {
		x.addChain(name, t.chains[name].want.base)
	}
	for _, name := range slices.Concat(p.rewrite, p.staleChains) {
		x.flushChain(name)
	}
	for _, name := range p.recreateSets {
		x.delSet(name)
	}
	for _, name := range slices.Sorted(maps.Keys(p.elemDel)) {
		st.ElementsRemoved += len(p.elemDel[name])
		if err := x.elements(name, t.sets[name].have.kind, p.elemDel[name], false); err != nil {
			return x.n, err
		}
	}
	for _, name := range slices.Concat(p.newSets, p.recreateSets) {
		w := t.sets[name].want
		if err := x.addSet(name, w.kind); err != nil {
			return x.n, err
		}
		es := slices.Collect(maps.Keys(w.elements()))
		st.ElementsAdded += len(es)
		if err := x.elements(name, w.kind, es, true); err != nil {
			return x.n, err
		}
	}
	for _, name := range slices.Sorted(maps.Keys(p.elemAdd)) {
		st.ElementsAdded += len(p.elemAdd[name])
		if err := x.elements(name, t.sets[name].want.kind, p.elemAdd[name], true); err != nil {
			return x.n, err
		}
	}
	for _, name := range slices.Concat(p.newChains, p.recreate, p.rewrite) {
		rules := t.chains[name].want
		for i, r := range rules.rules {
			if err := x.addRule(name, r, rules.hashes[i]); err != nil {
				return x.n, fmt.Errorf("chain %s rule %d (%s): %w", name, i, rules.texts[i], err)
			}
		}
		st.RulesWritten += len(rules.rules)
	}
	// Stale sets go first: a stale map's entries may name stale chains.
	for _, name := range p.staleSets {
		x.delSet(name)
	}
	for _, name := range p.staleChains {
		x.delChain(name)
	}
	st.ChainsWritten = len(p.newChains) + len(p.recreate) + len(p.rewrite)
	st.ChainsDeleted = len(p.staleChains)
	st.SetsCreated = len(p.newSets) + len(p.recreateSets)
	st.SetsDeleted = len(p.staleSets)
	if t.opts.Offline {
		return x.n, nil
	}
	if err := t.conn.Flush(); err != nil {
		return x.n, fmt.Errorf("%w: %w", ErrTransaction, err)
	}
	return x.n, nil
}

func (x *tx) table() {
	x.n++
	if x.conn() != nil {
		x.conn().AddTable(x.t.nt)
	}
}

func (x *tx) chain(name string) *nftables.Chain { return &nftables.Chain{Name: name, Table: x.t.nt} }

func (x *tx) addChain(name string, base *BaseChain) {
	x.n++
	if x.conn() == nil {
		return
	}
	c := x.chain(name)
	if base != nil {
		hook := map[HookPoint]*nftables.ChainHook{
			HookPrerouting: nftables.ChainHookPrerouting, HookInput: nftables.ChainHookInput,
			HookForward: nftables.ChainHookForward, HookOutput: nftables.ChainHookOutput,
			HookPostrouting: nftables.ChainHookPostrouting,
		}[base.Hook]
		pol := nftables.ChainPolicyAccept
		c.Hooknum = hook
		c.Priority = nftables.ChainPriorityRef(nftables.ChainPriority(base.Priority))
		c.Type = nftables.ChainType(base.typ())
		c.Policy = &pol
	}
	x.conn().AddChain(c)
}

func (x *tx) flushChain(name string) {
	x.n++
	if x.conn() != nil {
		x.conn().FlushChain(x.chain(name))
	}
}

func (x *tx) delChain(name string) {
	x.n++
	if x.conn() != nil {
		x.conn().DelChain(x.chain(name))
	}
}

func (x *tx) set(name string, k setKind) *nftables.Set {
	s := &nftables.Set{Table: x.t.nt, Name: name}
	switch {
	case k.isMap:
		s.IsMap, s.KeyType, s.DataType = true, nftables.TypeIFName, nftables.TypeVerdict
		s.KeyByteOrder = binaryutil.NativeEndian // as nft marks strings, so it lists names
	case k.typ == SetIPv4:
		s.KeyType, s.Interval = nftables.TypeIPAddr, true
	case k.typ == SetIPv6:
		s.KeyType, s.Interval = nftables.TypeIP6Addr, true
	default:
		a := nftables.TypeIPAddr
		if k.typ.Family() == IPv6 {
			a = nftables.TypeIP6Addr
		}
		s.KeyType = nftables.MustConcatSetType(a, nftables.TypeInetProto, nftables.TypeInetService)
		s.Concatenation = true
		s.Interval = k.typ.interval()
	}
	return s
}

func (x *tx) addSet(name string, k setKind) error {
	x.n++
	if x.conn() == nil {
		return nil
	}
	s := x.set(name, k)
	s.ID = x.t.nextID()
	return x.conn().AddSet(s, nil)
}

func (x *tx) delSet(name string) {
	x.n++
	if x.conn() != nil {
		x.conn().DelSet(&nftables.Set{Table: x.t.nt, Name: name})
	}
}

// elements adds or deletes elements in messages of at most
// MaxElementsPerMessage kernel elements.
func (x *tx) elements(name string, k setKind, es []element, add bool) error {
	var kes []nftables.SetElement
	for _, e := range es {
		kes = append(kes, kernelElements(k, e)...)
	}
	s := x.set(name, k)
	for len(kes) > 0 {
		n := min(len(kes), MaxElementsPerMessage)
		if k.typ == SetIPv4 || k.typ == SetIPv6 {
			// Keep an interval's start and end in one message.
			if n < len(kes) && kes[n].IntervalEnd {
				n--
			}
		}
		chunk := kes[:n]
		kes = kes[n:]
		x.n++
		if x.conn() == nil {
			continue
		}
		var err error
		if add {
			err = x.conn().SetAddElements(s, chunk)
		} else {
			err = x.conn().SetDeleteElements(s, chunk)
		}
		if err != nil {
			return fmt.Errorf("set %s elements: %w", name, err)
		}
	}
	return nil
}

// kernelElements encodes a canonical element: interval sets of one field
// hold a start and an end element (end = last+1, left out at the top of
// the address space); concatenated interval sets carry a key end.
func kernelElements(k setKind, e element) []nftables.SetElement {
	switch {
	case k.isMap:
		v, _ := e.verdict.expr()
		return []nftables.SetElement{{Key: []byte(e.key), VerdictData: v}}
	case k.typ == SetIPv4 || k.typ == SetIPv6:
		out := []nftables.SetElement{{Key: []byte(e.key)}}
		if end, ok := increment([]byte(e.keyEnd)); ok {
			out = append(out, nftables.SetElement{Key: end, IntervalEnd: true})
		}
		return out
	case k.typ.interval():
		return []nftables.SetElement{{Key: []byte(e.key), KeyEnd: []byte(e.keyEnd)}}
	default:
		return []nftables.SetElement{{Key: []byte(e.key)}}
	}
}

func (x *tx) addRule(chain string, r Rule, hash string) error {
	b := &builder{table: x.t.nt, nextID: x.t.nextID}
	for _, s := range r.Stmts {
		s.build(b)
	}
	if b.err != nil {
		return b.err
	}
	x.n += 1 + len(b.anon)
	if x.conn() == nil {
		return nil
	}
	for _, a := range b.anon {
		if err := x.conn().AddSet(a.set, a.elems); err != nil {
			return err
		}
	}
	x.conn().AddRule(&nftables.Rule{
		Table:    x.t.nt,
		Chain:    x.chain(chain),
		Exprs:    b.exprs,
		UserData: userdata.AppendString(nil, userdata.TypeComment, ruleComment(hash, r.Comment)),
	})
	return nil
}

// commit records a successful transaction as the kernel's state.
func (t *Table) commit(p *plan) {
	for _, name := range slices.Concat(p.newChains, p.recreate, p.rewrite) {
		c := t.chains[name]
		c.have = &haveChain{base: c.want.base, hashes: c.want.hashes}
	}
	for _, name := range slices.Concat(p.staleChains, p.forgetChains) {
		delete(t.chains, name)
	}
	for _, name := range slices.Concat(p.newSets, p.recreateSets) {
		s := t.sets[name]
		s.have = &haveSet{kind: s.want.kind, elems: maps.Clone(s.want.elements())}
	}
	for name, es := range p.elemDel {
		for _, e := range es {
			delete(t.sets[name].have.elems, e)
		}
	}
	for name, es := range p.elemAdd {
		for _, e := range es {
			t.sets[name].have.elems[e] = struct{}{}
		}
	}
	for _, name := range slices.Concat(p.staleSets, p.forgetSets) {
		delete(t.sets, name)
	}
	clear(t.dirtyChains)
	clear(t.dirtySets)
}

// verdictOf converts a kernel verdict.
func verdictOf(v *expr.Verdict) Verdict {
	switch v.Kind {
	case expr.VerdictAccept:
		return Accept()
	case expr.VerdictDrop:
		return Drop()
	case expr.VerdictReturn:
		return Return()
	case expr.VerdictJump:
		return Jump(v.Chain)
	case expr.VerdictGoto:
		return Goto(v.Chain)
	}
	return Verdict{}
}
