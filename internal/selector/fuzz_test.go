package selector

import (
	"errors"
	"slices"
	"testing"
)

var fuzzSeeds = []string{
	``,
	` `,
	`all()`,
	`global()`,
	`has(a)`,
	`has( a )`,
	`!has(a)`,
	`!!!has(a)`,
	`a=='x'&&b in {'z','y'}`,
	`a == "x"`,
	`a != 'x'`,
	`a == 'say "hi"'`,
	`a == "it's"`,
	`a in {}`,
	`a in {"b",}`,
	`a not in {"x", "y"}`,
	`a notin{"x"}`,
	`a contains "x"`,
	`a starts with "x"`,
	`a startswith "x"`,
	`a ends with "x"`,
	`!(a == "x")`,
	`!(!a == "x")`,
	`!(has(a) && has(b))`,
	`has(a) || has(b) && has(c)`,
	`has(a) && (has(b) && has(c))`,
	`((has(a) && has(b)) || !has(c)) && d in {"1", "2", "3"}`,
	`projectcalico.org/orchestrator == 'k8s' && projectcalico.org/namespace in {"default", "kube-system"}`,
	`in == "x" && not in {"x"} && contains contains "x"`,
	`has(a) && && has(b)`,
	`!!`,
	`a inx {}`,
	`a == "x`,
	`(has(a)`,
	`has(a))`,
	"has(a)\n",
	"\xff",
}

func FuzzParse(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sel, err := Parse(s)
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("Parse(%q) error %T is not *ParseError", s, err)
			}
			if pe.Input != s || pe.Column < 1 || pe.Column > len(s)+1 || pe.Msg == "" {
				t.Fatalf("Parse(%q) gave a malformed error %+v", s, pe)
			}
			return
		}
		c := sel.String()
		again, err := Parse(c)
		if err != nil {
			t.Fatalf("Parse(%q) = %q, which does not parse: %v", s, c, err)
		}
		if again.String() != c {
			t.Fatalf("Parse(%q) = %q, which reparses as %q", s, c, again.String())
		}
		if again.UniqueID() != sel.UniqueID() {
			t.Fatalf("Parse(%q) and Parse(%q) have different IDs", s, c)
		}
		if !slices.Equal(again.LabelKeys(), sel.LabelKeys()) {
			t.Fatalf("LabelKeys(%q) = %q but LabelKeys(%q) = %q", s, sel.LabelKeys(), c, again.LabelKeys())
		}
		for _, m := range probeLabels(sel) {
			want := sel.EvaluateMap(m)
			if sel.Evaluate(Map(m)) != want || again.EvaluateMap(m) != want {
				t.Fatalf("%q and %q disagree on %v", s, c, m)
			}
		}
	})
}

// probeLabels returns label maps that exercise sel: no labels, and the
// selector's keys set to each of the values it mentions in turn.
func probeLabels(sel *Selector) []map[string]string {
	vals := appendVals([]string{""}, &sel.root)
	keys := sel.LabelKeys()
	maps := []map[string]string{nil}
	for i := range min(len(vals), 8) {
		m := make(map[string]string, len(keys))
		for j, k := range keys {
			m[k] = vals[(i+j)%len(vals)]
		}
		maps = append(maps, m)
	}
	return maps
}

func appendVals(vals []string, n *node) []string {
	vals = append(vals, n.val)
	vals = append(vals, n.set...)
	for i := range n.kids {
		vals = appendVals(vals, &n.kids[i])
	}
	return vals
}
