package selector

import (
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestParseCanonical(t *testing.T) {
	long := strings.Repeat("k", maxLabelLen)
	tests := []struct{ in, want string }{
		// Empty and constant selectors.
		{"", "all()"},
		{" \t ", "all()"},
		{"all()", "all()"},
		{"all( \t)", "all()"},
		{"global()", "global()"},
		{" global( ) ", "global()"},
		{"has(a)", "has(a)"},
		{"has( \ta )", "has(a)"},

		// The SPEC example.
		{`a=='x'&&b in {'z','y'}`, `(a == "x" && b in {"y", "z"})`},

		// Comparisons and quoting.
		{`a == "x"`, `a == "x"`},
		{`a=="x"`, `a == "x"`},
		{`a == ''`, `a == ""`},
		{`a != 'x'`, `a != "x"`},
		{`a == 'say "hi"'`, `a == 'say "hi"'`},
		{`a == "it's"`, `a == "it's"`},
		{"a == \"tab\tand\nnewline\"", "a == \"tab\tand\nnewline\""},
		{`a contains "x"`, `a contains "x"`},
		{`a contains"x"`, `a contains "x"`},
		{`a starts with "x"`, `a starts with "x"`},
		{`a startswith 'x'`, `a starts with "x"`},
		{"a starts \t with 'x'", `a starts with "x"`},
		{`a ends with "x"`, `a ends with "x"`},
		{`a endswith "x"`, `a ends with "x"`},
		{`a ends with '"'`, `a ends with '"'`},

		// Sets.
		{`a in {}`, `a in {}`},
		{`a in{}`, `a in {}`},
		{`a in { }`, `a in {}`},
		{`a in {"b",}`, `a in {"b"}`},
		{`a in {"b", "a", "b"}`, `a in {"a", "b"}`},
		{`a in {'x"y', "z", "B"}`, `a in {"B", 'x"y', "z"}`},
		{`a not in {"x"}`, `a not in {"x"}`},
		{`a notin {"x"}`, `a not in {"x"}`},
		{"a not\tin{\"x\"}", `a not in {"x"}`},
		{`a not in {}`, `a not in {}`},

		// Negation.
		{`!has(a)`, `!has(a)`},
		{`!!has(a)`, `has(a)`},
		{`!!!has(a)`, `!has(a)`},
		{`! ! has(a)`, `has(a)`},
		{`!a == "x"`, `!a == "x"`},
		{`!(a == "x")`, `!a == "x"`},
		{`!(!a == "x")`, `a == "x"`},
		{`!(!(a == "x"))`, `a == "x"`},
		{`!(!!a == "x")`, `!a == "x"`},
		{`!a != "x"`, `!a != "x"`},
		{`!(has(a) && has(b))`, `!(has(a) && has(b))`},
		{`!(has(a) || has(b))`, `!(has(a) || has(b))`},
		{`!all()`, `!all()`},

		// Groups and precedence.
		{`has(a) && has(b)`, `(has(a) && has(b))`},
		{`has(a)&&has(b)&&has(c)`, `(has(a) && has(b) && has(c))`},
		{`has(a) || has(b) || has(c)`, `(has(a) || has(b) || has(c))`},
		{`has(a) && (has(b) && has(c))`, `(has(a) && (has(b) && has(c)))`},
		{`(has(a) && has(b)) && has(c)`, `((has(a) && has(b)) && has(c))`},
		{`(has(a))`, `has(a)`},
		{`((( has(a) )))`, `has(a)`},
		{`(has(a) && has(b))`, `(has(a) && has(b))`},
		{`has(a) || has(b) && has(c)`, `(has(a) || (has(b) && has(c)))`},
		{`has(a) && has(b) || has(c)`, `((has(a) && has(b)) || has(c))`},
		{`has(a) && (has(b) || has(c))`, `(has(a) && (has(b) || has(c)))`},
		{`!has(a) && has(b)`, `(!has(a) && has(b))`},
		{`has(a) && !has(b) || !has(c)`, `((has(a) && !has(b)) || !has(c))`},
		{`a == "x" || global()`, `(a == "x" || global())`},

		// Labels.
		{`projectcalico.org/orchestrator == 'k8s'`, `projectcalico.org/orchestrator == "k8s"`},
		{`a-b_c.d/E9 == ""`, `a-b_c.d/E9 == ""`},
		{`-- == "x"`, `-- == "x"`},
		{`in == "x"`, `in == "x"`},
		{`has == "x"`, `has == "x"`},
		{`all != "x"`, `all != "x"`},
		{`global in {}`, `global in {}`},
		{`not in {"x"}`, `not in {"x"}`},
		{`contains contains "x"`, `contains contains "x"`},
		{`has(in) && in in {"in"}`, `(has(in) && in in {"in"})`},
		{long + ` == "x"`, long + ` == "x"`},
		{"has(" + long + ")", "has(" + long + ")"},
		{"  has(a)\t", "has(a)"},
	}
	for _, tt := range tests {
		sel, err := Parse(tt.in)
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.in, err)
			continue
		}
		if got := sel.String(); got != tt.want {
			t.Errorf("Parse(%q).String() = %q, want %q", tt.in, got, tt.want)
		}
		again, err := Parse(sel.String())
		if err != nil {
			t.Errorf("Parse(%q) of canonical form: %v", sel.String(), err)
			continue
		}
		if again.String() != sel.String() || again.UniqueID() != sel.UniqueID() {
			t.Errorf("canonical form of %q is not a fixed point: %q then %q", tt.in, sel, again)
		}
	}
}

func TestParseError(t *testing.T) {
	long := strings.Repeat("k", maxLabelLen+1)
	deep := strings.Repeat("(", maxDepth+1) + "has(a)" + strings.Repeat(")", maxDepth+1)
	tests := []struct {
		in  string
		col int
		msg string
	}{
		{`has(a) && && has(b)`, 11, `unexpected "&&"`},
		{`&& has(a)`, 1, `unexpected "&&"`},
		{`has(a) ||`, 10, `unexpected end of input`},
		{`a == "x" && `, 13, `unexpected end of input`},
		{`!`, 2, `expected label after "!"`},
		{`!!`, 3, `expected label after "!"`},
		{`!)`, 2, `expected label after "!"`},
		{`!= "x"`, 1, `unexpected "!="`},
		{`a`, 2, `expected operator after label "a"`},
		{`a b`, 3, `expected operator after label "a"`},
		{`a = "x"`, 3, `expected operator after label "a"`},
		{`a inx {}`, 3, `expected operator after label "a"`},
		{`a in_ {}`, 3, `expected operator after label "a"`},
		{`a not {}`, 3, `expected operator after label "a"`},
		{`a starts "x"`, 3, `expected operator after label "a"`},
		{`a containsx "x"`, 3, `expected operator after label "a"`},
		{`a ! = "x"`, 3, `expected operator after label "a"`},
		{`has (a)`, 5, `expected operator after label "has"`},
		{`all ()`, 5, `expected operator after label "all"`},
		{`a ==`, 5, `expected string after "=="`},
		{`a == x`, 6, `expected string after "=="`},
		{`a != {}`, 6, `expected string after "!="`},
		{`a starts with x`, 15, `expected string after "starts with"`},
		{`a == "x`, 6, `unterminated string`},
		{`a == 'x"`, 6, `unterminated string`},
		{`a in "x"`, 6, `expected "{" after "in"`},
		{`a not in`, 9, `expected "{" after "not in"`},
		{`a in {"x" "y"}`, 11, `expected "," or "}" in set, found string "y"`},
		{`a in {"x"`, 10, `expected "," or "}" in set, found end of input`},
		{`a in {,}`, 7, `expected string or "}" in set, found ","`},
		{`a in {"x",,}`, 11, `expected string or "}" in set, found ","`},
		{`a in {x}`, 7, `expected string or "}" in set, found "x"`},
		{`a in {"x`, 7, `unterminated string`},
		{`has()`, 5, `expected label after "has("`},
		{`has( `, 6, `expected label after "has("`},
		{`has(a`, 6, `expected ")" after "has(a"`},
		{`has(a b)`, 7, `expected ")" after "has(a"`},
		{`all(x)`, 5, `expected ")" after "all("`},
		{`global(`, 8, `expected ")" after "global("`},
		{`(has(a)`, 8, `expected ")"`},
		{`(has(a) has(b))`, 9, `unexpected "has"`},
		{`has(a))`, 7, `unexpected ")"`},
		{`()`, 2, `unexpected ")"`},
		{`has(a) &`, 8, `unexpected "&"`},
		{`has(a) | has(b)`, 8, `unexpected "|"`},
		{`has(a) "x"`, 8, `unexpected string "x"`},
		{`has(a) 'x`, 8, `unexpected unterminated string`},
		{"has(a)\n", 7, `unexpected "\n"`},
		{"has(a)\r\n", 7, `unexpected "\r"`},
		{`a == "x" $`, 10, `unexpected "$"`},
		{`é == "x"`, 1, `unexpected "é"`},
		{"\xff", 1, `unexpected byte 0xff`},
		{`{}`, 1, `unexpected "{"`},
		{long + ` == "x"`, 1, `label longer than 512 characters`},
		{`has(` + long + `)`, 5, `label longer than 512 characters`},
		{deep, maxDepth + 1, `parentheses nested deeper than 256`},
	}
	for _, tt := range tests {
		sel, err := Parse(tt.in)
		if err == nil {
			t.Errorf("Parse(%q) = %q, want error", tt.in, sel)
			continue
		}
		var pe *ParseError
		if !errors.As(err, &pe) {
			t.Errorf("Parse(%q) error %T is not *ParseError", tt.in, err)
			continue
		}
		if pe.Input != tt.in || pe.Column != tt.col || pe.Msg != tt.msg {
			t.Errorf("Parse(%q) = column %d %q, want column %d %q", tt.in, pe.Column, pe.Msg, tt.col, tt.msg)
		}
	}
}

func TestParseErrorString(t *testing.T) {
	_, err := Parse(`!!`)
	if got, want := err.Error(), `expected label after "!" at column 3`; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	_, err = Parse(`a == "x" &&&& b`)
	if got, want := err.Error(), `unexpected "&&" at column 12`; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

func TestEvaluate(t *testing.T) {
	labels := Map{
		"a":     "x",
		"b":     "yes",
		"empty": "",
		"quote": `say "hi"`,
		"path":  "projectcalico.org/v3",
	}
	tests := []struct {
		sel  string
		want bool
	}{
		{``, true},
		{`all()`, true},
		{`global()`, true},
		{`!all()`, false},

		{`has(a)`, true},
		{`has(empty)`, true},
		{`has(missing)`, false},
		{`!has(missing)`, true},

		{`a == "x"`, true},
		{`a == "y"`, false},
		{`empty == ""`, true},
		{`missing == ""`, false},
		{`quote == 'say "hi"'`, true},

		{`a != "y"`, true},
		{`a != "x"`, false},
		{`missing != "x"`, true},
		{`missing != ""`, true},
		{`empty != ""`, false},

		{`a in {"x", "y"}`, true},
		{`a in {"y", "z"}`, false},
		{`a in {}`, false},
		{`missing in {""}`, false},
		{`empty in {""}`, true},
		{`a in {"a1", "a2", "a3", "a4", "a5", "a6", "a7", "a8", "a9", "x"}`, true},
		{`a in {"a1", "a2", "a3", "a4", "a5", "a6", "a7", "a8", "a9", "y"}`, false},
		{`a in {"a1", "a2", "a3", "a4", "a5", "a6", "a7", "a8", "a9", "w"}`, false},

		{`a not in {"y", "z"}`, true},
		{`a not in {"x"}`, false},
		{`a not in {}`, true},
		{`missing not in {"x"}`, true},
		{`missing not in {}`, true},
		{`a not in {"a1", "a2", "a3", "a4", "a5", "a6", "a7", "a8", "a9", "x"}`, false},

		{`b contains "e"`, true},
		{`b contains "yes"`, true},
		{`b contains ""`, true},
		{`b contains "no"`, false},
		{`missing contains ""`, false},

		{`path starts with "projectcalico.org/"`, true},
		{`path starts with ""`, true},
		{`path starts with "v3"`, false},
		{`missing starts with ""`, false},

		{`path ends with "/v3"`, true},
		{`path ends with ""`, true},
		{`path ends with "projectcalico"`, false},
		{`missing ends with ""`, false},

		{`a == "x" && b == "yes"`, true},
		{`a == "x" && b == "no"`, false},
		{`a == "y" || b == "yes"`, true},
		{`a == "y" || b == "no"`, false},
		{`a == "y" || b == "no" || has(empty)`, true},
		{`!(a == "x" && b == "yes")`, false},
		{`!a == "y" && !has(missing)`, true},
		{`has(missing) || has(a) && has(b)`, true},
		{`(has(missing) || has(a)) && !has(b)`, false},
		{`!!has(a)`, true},
	}
	for _, tt := range tests {
		sel := MustParse(tt.sel)
		if got := sel.Evaluate(labels); got != tt.want {
			t.Errorf("%q.Evaluate(%v) = %v, want %v", tt.sel, labels, got, tt.want)
		}
		if got := sel.EvaluateMap(labels); got != tt.want {
			t.Errorf("%q.EvaluateMap(%v) = %v, want %v", tt.sel, labels, got, tt.want)
		}
		// Moving every label to the parent changes nothing.
		if got := sel.Evaluate(WithParent(Map{}, labels)); got != tt.want {
			t.Errorf("%q.Evaluate(WithParent({}, %v)) = %v, want %v", tt.sel, labels, got, tt.want)
		}
	}
}

func TestEvaluateParent(t *testing.T) {
	own := Map{"role": "db", "env": "prod"}
	parent := Map{"env": "dev", "team": "blue"}
	tests := []struct {
		sel  string
		want bool
	}{
		{`role == "db"`, true},
		{`team == "blue"`, true},  // inherited
		{`env == "prod"`, true},   // own wins
		{`env == "dev"`, false},   // parent value hidden
		{`env in {"dev"}`, false}, // parent value hidden
		{`has(team) && has(role)`, true},
		{`team != "blue"`, false},
		{`missing not in {"x"}`, true},
	}
	l := WithParent(own, parent)
	merged := map[string]string{"role": "db", "env": "prod", "team": "blue"}
	for _, tt := range tests {
		sel := MustParse(tt.sel)
		if got := sel.Evaluate(l); got != tt.want {
			t.Errorf("%q.Evaluate(own+parent) = %v, want %v", tt.sel, got, tt.want)
		}
		if got := sel.EvaluateMap(merged); got != tt.want {
			t.Errorf("%q.EvaluateMap(merged) = %v, want %v", tt.sel, got, tt.want)
		}
	}
	if v, ok := WithParent(nil, nil).Get("x"); ok || v != "" {
		t.Errorf("WithParent(nil, nil).Get = %q, %v", v, ok)
	}
	if v, ok := WithParent(nil, parent).Get("team"); !ok || v != "blue" {
		t.Errorf("WithParent(nil, parent).Get = %q, %v", v, ok)
	}
	if v, ok := WithParent(own, nil).Get("env"); !ok || v != "prod" {
		t.Errorf("WithParent(own, nil).Get = %q, %v", v, ok)
	}
}

func TestEvaluateNil(t *testing.T) {
	if !MustParse(`a != "x"`).Evaluate(nil) || MustParse(`has(a)`).Evaluate(nil) {
		t.Error("Evaluate(nil) does not behave as no labels")
	}
	if !MustParse(`a not in {"x"}`).EvaluateMap(nil) || MustParse(`a == ""`).EvaluateMap(nil) {
		t.Error("EvaluateMap(nil) does not behave as no labels")
	}
}

func TestUniqueID(t *testing.T) {
	tests := []struct{ sel, want string }{
		// all() is the ID Calico gives the all() selector.
		{``, "s:5y5I3VdRZfDU01O--xXAPx2yxCQQqMf0M6IWug"},
		{`all()`, "s:5y5I3VdRZfDU01O--xXAPx2yxCQQqMf0M6IWug"},
		{`a=='x'&&b in {'z','y'}`, "s:KYKajnLMlKo1SdBQbzfZpl0JuD0vVvpgliR4kw"},
		{`projectcalico.org/orchestrator == 'k8s'`, "s:WP38oCqDbAT2ANRZlXRDeKIcMPtyI8UP8QIKZA"},
	}
	for _, tt := range tests {
		if got := MustParse(tt.sel).UniqueID(); got != tt.want {
			t.Errorf("UniqueID(%q) = %q, want %q", tt.sel, got, tt.want)
		}
	}
	for _, in := range []string{`has(a)`, `a in {"x", "y"} || !has(b)`, `a == 'say "hi"'`} {
		sel := MustParse(in)
		sum := sha256.Sum224([]byte("s:" + sel.String()))
		if want := "s:" + base64.RawURLEncoding.EncodeToString(sum[:]); sel.UniqueID() != want {
			t.Errorf("UniqueID(%q) = %q, want %q", in, sel.UniqueID(), want)
		}
	}
	// Different spellings of one selector share an ID; different selectors don't.
	a, b := MustParse(`a in {"y","x",} && (has(c))`), MustParse(`a in {'x', 'y'}&&has(c)`)
	if a.UniqueID() != b.UniqueID() {
		t.Errorf("UniqueID(%q) != UniqueID(%q)", a, b)
	}
	if c := MustParse(`a in {"x"} && has(c)`); c.UniqueID() == a.UniqueID() {
		t.Errorf("UniqueID(%q) == UniqueID(%q)", c, a)
	}
}

func TestLabelKeys(t *testing.T) {
	tests := []struct {
		sel  string
		want []string
	}{
		{``, nil},
		{`global()`, nil},
		{`has(b) && a == "x" || !(c in {} && b != "y")`, []string{"a", "b", "c"}},
		{`z starts with "" || y ends with "" || x contains "" || w not in {}`, []string{"w", "x", "y", "z"}},
	}
	for _, tt := range tests {
		sel := MustParse(tt.sel)
		got := sel.LabelKeys()
		if !slices.Equal(got, tt.want) {
			t.Errorf("LabelKeys(%q) = %q, want %q", tt.sel, got, tt.want)
		}
		if len(got) > 0 {
			got[0] = "mutated"
			if sel.LabelKeys()[0] == "mutated" {
				t.Errorf("LabelKeys(%q) returned shared storage", tt.sel)
			}
		}
	}
}

func TestZeroSelector(t *testing.T) {
	var s Selector
	if s.String() != "all()" || s.UniqueID() != MustParse("").UniqueID() || !s.Evaluate(Map{}) || len(s.LabelKeys()) != 0 {
		t.Errorf("zero Selector is not all(): %q %q", s.String(), s.UniqueID())
	}
}

func TestMustParsePanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("MustParse of a bad selector did not panic")
		}
	}()
	MustParse("a ==")
}

func TestEvaluateDoesNotAllocate(t *testing.T) {
	sel := MustParse(`a == "x" && b in {"1", "2", "3"} && !has(c) && (d starts with "p" || e != "q")`)
	m := map[string]string{"a": "x", "b": "2", "d": "pq"}
	var l Labels = WithParent(Map(m), Map{"e": "r"})
	if n := testing.AllocsPerRun(100, func() { sel.EvaluateMap(m) }); n != 0 {
		t.Errorf("EvaluateMap allocates %v times", n)
	}
	if n := testing.AllocsPerRun(100, func() { sel.Evaluate(l) }); n != 0 {
		t.Errorf("Evaluate allocates %v times", n)
	}
}
