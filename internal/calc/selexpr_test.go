package calc

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/calico-go/calico/internal/selector"
)

var exprSeeds = []string{
	"", "all()", "global()", "has(a)", "!has(a)", "a == 'x'", `a == 'say "hi"'`, "a != 'x'",
	"a in {'x', 'y'}", "a not in {}", "a in {}", "a contains 'x'", "a starts with 'x'", "a ends with 'x'",
	"a == 'x' && b == 'y'", "a == 'x' || b == 'y'", "!(a == 'x' || has(b)) && c in {'1'}",
	"(a == 'x' && (b == 'y' || has(c))) || !d != 'z'", "projectcalico.org/namespace == 'ns1' && app/x-y_z.w == 'v'",
}

// randomSelector builds a random selector of the language.
func randomSelector(rng *rand.Rand, depth int) string {
	keys := []string{"a", "b", "c"}
	vals := []string{"'x'", "'y'", `'"'`, `"'"`}
	if depth > 2 || rng.IntN(3) == 0 {
		k := pick(rng, keys)
		switch rng.IntN(9) {
		case 0:
			return "has(" + k + ")"
		case 1:
			return k + " == " + pick(rng, vals)
		case 2:
			return k + " != " + pick(rng, vals)
		case 3:
			return k + " in {" + pick(rng, vals) + ", " + pick(rng, vals) + "}"
		case 4:
			return k + " not in {" + pick(rng, vals) + "}"
		case 5:
			return k + " contains 'x'"
		case 6:
			return pick(rng, []string{"all()", "global()", k + " in {}"})
		case 7:
			return k + " starts with 'y'"
		}
		return k + " ends with 'x'"
	}
	l, r := randomSelector(rng, depth+1), randomSelector(rng, depth+1)
	switch rng.IntN(3) {
	case 0:
		return "(" + l + ") && (" + r + ")"
	case 1:
		return "(" + l + ") || (" + r + ")"
	}
	return "!(" + l + ")"
}

func randomLabels(rng *rand.Rand) map[string]string {
	m := map[string]string{}
	for _, k := range []string{"a", "b", "c"} {
		if rng.IntN(3) > 0 {
			m[k] = pick(rng, []string{"x", "y", `"`, "'", "xy"})
		}
	}
	return m
}

func satisfies(r restriction, labels map[string]string) bool {
	for _, a := range r {
		v, ok := labels[a.key]
		if ok && (a.vals == nil || contains(a.vals, v)) {
			return true
		}
	}
	return false
}

func contains(vals []string, v string) bool {
	for _, x := range vals {
		if x == v {
			return true
		}
	}
	return false
}

// checkExpr checks the canonical reader on one selector against label sets.
func checkExpr(t *testing.T, s string, labelSets []map[string]string) {
	sel, err := selector.Parse(s)
	if err != nil {
		return
	}
	c := sel.String()
	e, err := parseCanonical(c)
	if err != nil {
		t.Fatalf("parseCanonical(%q): %v", c, err)
	}
	var b strings.Builder
	e.render(&b, "")
	back, err := selector.Parse(b.String())
	if err != nil || back.String() != c {
		t.Fatalf("render(%q) = %q, which reparses to %v (%v)", c, b.String(), back, err)
	}
	b.Reset()
	e.render(&b, "p.")
	pre, err := selector.Parse(b.String())
	if err != nil {
		t.Fatalf("prefixed render of %q = %q: %v", c, b.String(), err)
	}
	for _, l := range labelSets {
		pl := map[string]string{}
		for k, v := range l {
			pl["p."+k] = v
		}
		if sel.EvaluateMap(l) != pre.EvaluateMap(pl) {
			t.Fatalf("%q and its prefixed form %q disagree on %v", c, pre, l)
		}
		if !sel.EvaluateMap(l) {
			continue
		}
		for _, r := range e.restrictions() {
			if !satisfies(r, l) {
				t.Fatalf("%q matches %v but restriction %v excludes it", c, l, r)
			}
		}
	}
}

func TestCanonicalExpressions(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	var labelSets []map[string]string
	for range 64 {
		labelSets = append(labelSets, randomLabels(rng))
	}
	labelSets = append(labelSets, map[string]string{})
	for _, s := range exprSeeds {
		checkExpr(t, s, labelSets)
	}
	for range 3000 {
		checkExpr(t, randomSelector(rng, 0), labelSets)
	}
}

func TestRestrictions(t *testing.T) {
	tests := map[string]string{
		"a == 'x'":                           "[[{a [x]}]]",
		"has(a) && b in {'x', 'y'}":          "[[{a []}] [{b [x y]}]]",
		"a == 'x' || has(b)":                 "[[{a [x]} {b []}]]",
		"a == 'x' || !has(b)":                "[]",
		"!has(a)":                            "[]",
		"a in {}":                            "[[{a []}]]",
		"all()":                              "[]",
		"(a == 'x' && b == 'y') || c == 'z'": "[[{a [x]} {c [z]}]]",
	}
	for s, want := range tests {
		e, err := parseCanonical(selector.MustParse(s).String())
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.ReplaceAll(fmtRestrictions(e.restrictions()), "<nil>", ""); got != want {
			t.Errorf("%s: restrictions %s, want %s", s, got, want)
		}
	}
}

func fmtRestrictions(rs []restriction) string {
	var b strings.Builder
	b.WriteString("[")
	for i, r := range rs {
		if i > 0 {
			b.WriteString(" ")
		}
		b.WriteString("[")
		for j, a := range r {
			if j > 0 {
				b.WriteString(" ")
			}
			b.WriteString("{" + a.key + " [" + strings.Join(a.vals, " ") + "]}")
		}
		b.WriteString("]")
	}
	b.WriteString("]")
	return b.String()
}

// TestMatcherIncremental checks the matcher's index against brute force
// through random selector and label changes.
func TestMatcherIncremental(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	type pair struct{ s, i int }
	got := map[pair]bool{}
	m := newMatcher(func(s, i int, matched bool) {
		p := pair{s, i}
		if got[p] == matched {
			t.Fatalf("duplicate report %v %v", p, matched)
		}
		got[p] = matched
	})
	sels, items := map[int]*selector.Selector{}, map[int]map[string]string{}
	for step := range 3000 {
		switch n := rng.IntN(10); {
		case n < 3:
			id := rng.IntN(20)
			sel, err := selector.Parse(randomSelector(rng, 1))
			if err != nil {
				continue
			}
			sels[id] = sel
			m.updateSelector(id, sel)
		case n < 4:
			id := rng.IntN(20)
			delete(sels, id)
			m.removeSelector(id, true)
		case n < 9:
			id := rng.IntN(30)
			l := randomLabels(rng)
			items[id] = l
			m.updateItem(id, newLabelSet(l))
		default:
			id := rng.IntN(30)
			delete(items, id)
			m.removeItem(id)
		}
		for s, sel := range sels {
			for i, l := range items {
				if want := sel.EvaluateMap(l); got[pair{s, i}] != want {
					t.Fatalf("step %d: selector %d (%s) on item %d %v: matched=%v, want %v", step, s, sel, i, l, got[pair{s, i}], want)
				}
			}
		}
		for p, v := range got {
			_, sok := sels[p.s]
			_, iok := items[p.i]
			if v && (!sok || !iok) {
				t.Fatalf("step %d: stale match %v", step, p)
			}
		}
	}
}

func FuzzCanonical(f *testing.F) {
	for _, s := range exprSeeds {
		f.Add(s)
	}
	rng := rand.New(rand.NewPCG(1, 1))
	var labelSets []map[string]string
	for range 16 {
		labelSets = append(labelSets, randomLabels(rng))
	}
	f.Fuzz(func(t *testing.T, s string) { checkExpr(t, s, labelSets) })
}
