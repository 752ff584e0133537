package calc

import (
	"slices"

	"github.com/calico-go/calico/internal/selector"
)

// matcher keeps, incrementally, which selectors (S) match which labelled
// items (I), and reports each change through onMatch. Work is
// proportional to what changed:
//
//   - selectors are indexed by the label (key, value) or key they
//     require (their restriction), so an item's new labels are evaluated
//     only against selectors that could match them (plus the few
//     unrestricted ones, such as !has(x));
//   - items are indexed by (key, value), so a new selector is evaluated
//     only against items that carry what it requires. Only keys some
//     selector has required are indexed (the first such selector pays
//     for a scan), so labels no selector restricts on, such as
//     pod-template-hash, cost nothing.
//
// Label sets passed in are not modified and must not be modified later
// (pass a new set to change labels).
type matcher[S, I comparable] struct {
	sels     map[S]*mSel[I]
	items    map[I]*mItem[S]
	selByKV  map[string]map[string]map[S]struct{}
	selByKey map[string]map[S]struct{}
	selAll   map[S]struct{}
	itemByKV map[string]map[string]map[I]struct{}
	keyCount map[string]int      // items having each indexed key
	indexed  map[string]struct{} // keys of itemByKV
	onMatch  func(s S, i I, matched bool)
}

type mSel[I comparable] struct {
	sel     *selector.Selector
	restr   restriction // nil: unrestricted
	matches map[I]struct{}
}

type mItem[S comparable] struct {
	labels  *labelSet
	matches []S
}

func newMatcher[S, I comparable](onMatch func(s S, i I, matched bool)) *matcher[S, I] {
	return &matcher[S, I]{
		sels: map[S]*mSel[I]{}, items: map[I]*mItem[S]{},
		selByKV: map[string]map[string]map[S]struct{}{}, selByKey: map[string]map[S]struct{}{},
		selAll: map[S]struct{}{}, itemByKV: map[string]map[string]map[I]struct{}{},
		keyCount: map[string]int{}, indexed: map[string]struct{}{}, onMatch: onMatch,
	}
}

// matchesOfItem returns the selectors matching i (shared; do not modify).
func (m *matcher[S, I]) matchesOfItem(i I) []S {
	if it := m.items[i]; it != nil {
		return it.matches
	}
	return nil
}

// matchesOfSel returns the items s matches (shared; do not modify).
func (m *matcher[S, I]) matchesOfSel(s S) map[I]struct{} {
	if ms := m.sels[s]; ms != nil {
		return ms.matches
	}
	return nil
}

// updateSelector adds s or changes its selector, reporting every match
// that starts or ends.
func (m *matcher[S, I]) updateSelector(s S, sel *selector.Selector) {
	ms := m.sels[s]
	if ms != nil && ms.sel.UniqueID() == sel.UniqueID() {
		return
	}
	if ms == nil {
		ms = &mSel[I]{matches: map[I]struct{}{}}
		m.sels[s] = ms
	} else {
		m.unindexSel(s, ms.restr)
	}
	ms.sel = sel
	var filters []restriction
	ms.restr, filters = m.chooseRestriction(sel)
	m.indexSel(s, ms.restr)

	for i := range ms.matches { // ends first, so counts never overshoot
		if !sel.Evaluate(m.items[i].labels) {
			m.setMatch(s, ms, i, false)
		}
	}
	m.forCandidateItems(ms.restr, func(i I, it *mItem[S]) {
		for _, f := range filters {
			if !m.admits(f, i) {
				return
			}
		}
		if _, ok := ms.matches[i]; !ok && sel.Evaluate(it.labels) {
			m.setMatch(s, ms, i, true)
		}
	})
}

// removeSelector forgets s. With notify, every match it had is reported
// as ended.
func (m *matcher[S, I]) removeSelector(s S, notify bool) {
	ms := m.sels[s]
	if ms == nil {
		return
	}
	for i := range ms.matches {
		it := m.items[i]
		it.matches = deleteItem(it.matches, s)
		if notify {
			m.onMatch(s, i, false)
		}
	}
	m.unindexSel(s, ms.restr)
	delete(m.sels, s)
}

// updateItem adds i or changes its labels, reporting every match that
// starts or ends.
func (m *matcher[S, I]) updateItem(i I, labels *labelSet) {
	it := m.items[i]
	if it == nil {
		it = &mItem[S]{}
		m.items[i] = it
	}
	m.reindexItem(i, it.labels, labels)
	it.labels = labels

	for _, s := range slices.Clone(it.matches) {
		ms := m.sels[s]
		if !ms.sel.Evaluate(labels) {
			m.setMatch(s, ms, i, false)
		}
	}
	m.forCandidateSels(labels, func(s S, ms *mSel[I]) {
		if _, ok := ms.matches[i]; !ok && ms.sel.Evaluate(labels) {
			m.setMatch(s, ms, i, true)
		}
	})
}

// removeItem forgets i, reporting every match it had as ended.
func (m *matcher[S, I]) removeItem(i I) {
	it := m.items[i]
	if it == nil {
		return
	}
	for _, s := range slices.Clone(it.matches) {
		m.setMatch(s, m.sels[s], i, false)
	}
	m.reindexItem(i, it.labels, nil)
	delete(m.items, i)
}

func (m *matcher[S, I]) setMatch(s S, ms *mSel[I], i I, matched bool) {
	it := m.items[i]
	if matched {
		ms.matches[i] = struct{}{}
		it.matches = append(it.matches, s)
	} else {
		delete(ms.matches, i)
		it.matches = deleteItem(it.matches, s)
	}
	m.onMatch(s, i, matched)
}

func deleteItem[S comparable](list []S, s S) []S {
	if i := slices.Index(list, s); i >= 0 {
		list[i] = list[len(list)-1]
		var zero S
		list[len(list)-1] = zero
		list = list[:len(list)-1]
	}
	if len(list) == 0 {
		return nil
	}
	return list
}

// chooseRestriction picks, among the restrictions the selector
// satisfies, the one with the fewest candidate items right now. It
// prefers restrictions on keys already indexed; only when there is none
// does it start indexing the keys of all of them (one scan of the items).
// The other indexed restrictions on a few values are returned as filters:
// checking a candidate against the index is cheaper than evaluating the
// selector on its labels.
func (m *matcher[S, I]) chooseRestriction(sel *selector.Selector) (restriction, []restriction) {
	e, err := parseCanonical(sel.String())
	if err != nil {
		return nil, nil
	}
	rs := e.restrictions()
	if len(rs) == 0 {
		return nil, nil
	}
	var ready []restriction
	for _, r := range rs {
		if m.allIndexed(r) {
			ready = append(ready, r)
		}
	}
	if len(ready) == 0 {
		var keys []string
		for _, r := range rs {
			for _, a := range r {
				keys = append(keys, a.key)
			}
		}
		m.ensureIndexed(keys...)
		ready = rs
	}
	best, bestCost, bestIdx := ready[0], -1, 0
	for idx, r := range ready {
		cost := 0
		for _, a := range r {
			if a.vals == nil {
				cost += m.keyCount[a.key]
				continue
			}
			for _, v := range a.vals {
				cost += len(m.itemByKV[a.key][v])
			}
		}
		if bestCost < 0 || cost < bestCost {
			best, bestCost, bestIdx = r, cost, idx
		}
	}
	if best == nil {
		best = restriction{} // restricted to nothing
	}
	var filters []restriction
	for idx, r := range ready {
		if idx != bestIdx && len(r) > 0 && len(r) <= 4 && allValued(r) {
			filters = append(filters, r)
		}
	}
	return best, filters
}

func allValued(r restriction) bool {
	for _, a := range r {
		if a.vals == nil || len(a.vals) > 4 {
			return false
		}
	}
	return true
}

// admits reports whether item i satisfies r, using the index only.
func (m *matcher[S, I]) admits(r restriction, i I) bool {
	for _, a := range r {
		byV := m.itemByKV[a.key]
		for _, v := range a.vals {
			if _, ok := byV[v][i]; ok {
				return true
			}
		}
	}
	return false
}

func (m *matcher[S, I]) allIndexed(r restriction) bool {
	for _, a := range r {
		if _, ok := m.indexed[a.key]; !ok {
			return false
		}
	}
	return true
}

func (m *matcher[S, I]) indexSel(s S, r restriction) {
	if r == nil {
		m.selAll[s] = struct{}{}
		return
	}
	for _, a := range r {
		if a.vals == nil {
			addTo(m.selByKey, a.key, s)
			continue
		}
		byV := m.selByKV[a.key]
		if byV == nil {
			byV = map[string]map[S]struct{}{}
			m.selByKV[a.key] = byV
		}
		for _, v := range a.vals {
			addTo(byV, v, s)
		}
	}
}

func (m *matcher[S, I]) unindexSel(s S, r restriction) {
	if r == nil {
		delete(m.selAll, s)
		return
	}
	for _, a := range r {
		if a.vals == nil {
			removeFrom(m.selByKey, a.key, s)
			continue
		}
		byV := m.selByKV[a.key]
		for _, v := range a.vals {
			removeFrom(byV, v, s)
		}
		if len(byV) == 0 {
			delete(m.selByKV, a.key)
		}
	}
}

// ensureIndexed starts indexing items by the keys not indexed yet, in
// one scan of the items.
func (m *matcher[S, I]) ensureIndexed(keys ...string) {
	var todo []string
	for _, k := range keys {
		if _, ok := m.indexed[k]; !ok {
			m.indexed[k] = struct{}{}
			todo = append(todo, k)
		}
	}
	if len(todo) == 0 {
		return
	}
	for i, it := range m.items {
		for _, k := range todo {
			if v, ok := it.labels.Get(k); ok {
				m.indexPair(i, k, v)
			}
		}
	}
}

func (m *matcher[S, I]) indexPair(i I, k, v string) {
	m.keyCount[k]++
	byV := m.itemByKV[k]
	if byV == nil {
		byV = map[string]map[I]struct{}{}
		m.itemByKV[k] = byV
	}
	addTo(byV, v, i)
}

func (m *matcher[S, I]) unindexPair(i I, k, v string) {
	if m.keyCount[k]--; m.keyCount[k] == 0 {
		delete(m.keyCount, k)
	}
	byV := m.itemByKV[k]
	removeFrom(byV, v, i)
	if len(byV) == 0 {
		delete(m.itemByKV, k)
	}
}

// reindexItem moves item i in the index from the old labels to the new
// (either may be nil), for the indexed keys whose value changed.
func (m *matcher[S, I]) reindexItem(i I, old, labels *labelSet) {
	if old == nil {
		old = &labelSet{}
	}
	if labels == nil {
		labels = &labelSet{}
	}
	move := func(k string) {
		ov, had := old.Get(k)
		nv, has := labels.Get(k)
		if had == has && ov == nv {
			return
		}
		if had {
			m.unindexPair(i, k, ov)
		}
		if has {
			m.indexPair(i, k, nv)
		}
	}
	if len(m.indexed) <= old.size()+labels.size() {
		for k := range m.indexed {
			move(k)
		}
		return
	}
	seen := func(k, _ string) {
		if _, ok := m.indexed[k]; ok {
			move(k)
		}
	}
	old.each(seen)
	labels.each(func(k, v string) {
		if _, had := old.Get(k); !had {
			seen(k, v)
		}
	})
}

func (m *matcher[S, I]) forCandidateItems(r restriction, fn func(I, *mItem[S])) {
	if r == nil {
		for i, it := range m.items {
			fn(i, it)
		}
		return
	}
	for _, a := range r {
		byV := m.itemByKV[a.key]
		if a.vals == nil {
			for _, items := range byV {
				for i := range items {
					fn(i, m.items[i])
				}
			}
			continue
		}
		for _, v := range a.vals {
			for i := range byV[v] {
				fn(i, m.items[i])
			}
		}
	}
}

func (m *matcher[S, I]) forCandidateSels(labels *labelSet, fn func(S, *mSel[I])) {
	for s := range m.selAll {
		fn(s, m.sels[s])
	}
	labels.each(func(k, v string) {
		for s := range m.selByKey[k] {
			fn(s, m.sels[s])
		}
		if byV := m.selByKV[k]; byV != nil {
			for s := range byV[v] {
				fn(s, m.sels[s])
			}
		}
	})
}

func addTo[K, V comparable](m map[K]map[V]struct{}, k K, v V) {
	set := m[k]
	if set == nil {
		set = map[V]struct{}{}
		m[k] = set
	}
	set[v] = struct{}{}
}

func removeFrom[K, V comparable](m map[K]map[V]struct{}, k K, v V) {
	if set := m[k]; set != nil {
		delete(set, v)
		if len(set) == 0 {
			delete(m, k)
		}
	}
}
