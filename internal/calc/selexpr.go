package calc

import (
	"errors"
	"strings"
)

// This file reads the canonical form of a selector (selector.String) back
// into a small tree, for two things the selector package does not offer:
// prefixing every label key (SPEC §2 "How selectors are compiled") and
// finding the labels a selector requires (the index restriction used by
// matcher). The canonical form is regular (see the selector package
// documentation), so this reader is strict; callers fall back to a safe
// answer when it fails.

// sexpr is a node of a canonical selector.
type sexpr struct {
	op   sop
	key  string
	cmp  string   // comparison word with spaces, e.g. " == ", for sCmp
	vals []string // the value (one) or the set members
	kids []*sexpr
}

type sop uint8

const (
	sAll sop = iota
	sGlobal
	sHas
	sCmp // key cmp value(s)
	sNot
	sAnd
	sOr
)

var errCanonical = errors.New("not a canonical selector")

// parseCanonical reads a canonical selector.
func parseCanonical(s string) (*sexpr, error) {
	r := &sreader{s: s}
	e, err := r.expr()
	if err != nil {
		return nil, err
	}
	if r.pos != len(s) {
		return nil, errCanonical
	}
	return e, nil
}

type sreader struct {
	s   string
	pos int
}

func (r *sreader) eat(tok string) bool {
	if strings.HasPrefix(r.s[r.pos:], tok) {
		r.pos += len(tok)
		return true
	}
	return false
}

func (r *sreader) expr() (*sexpr, error) {
	switch {
	case r.eat("!"):
		k, err := r.expr()
		if err != nil {
			return nil, err
		}
		return &sexpr{op: sNot, kids: []*sexpr{k}}, nil
	case r.eat("("):
		return r.group()
	case r.eat("all()"):
		return &sexpr{op: sAll}, nil
	case r.eat("global()"):
		return &sexpr{op: sGlobal}, nil
	case r.eat("has("):
		key := r.label()
		if key == "" || !r.eat(")") {
			return nil, errCanonical
		}
		return &sexpr{op: sHas, key: key}, nil
	}
	return r.comparison()
}

func (r *sreader) group() (*sexpr, error) {
	first, err := r.expr()
	if err != nil {
		return nil, err
	}
	g := &sexpr{kids: []*sexpr{first}}
	switch {
	case strings.HasPrefix(r.s[r.pos:], " && "):
		g.op = sAnd
	case strings.HasPrefix(r.s[r.pos:], " || "):
		g.op = sOr
	default:
		return nil, errCanonical
	}
	sep := " && "
	if g.op == sOr {
		sep = " || "
	}
	for r.eat(sep) {
		k, err := r.expr()
		if err != nil {
			return nil, err
		}
		g.kids = append(g.kids, k)
	}
	if !r.eat(")") {
		return nil, errCanonical
	}
	return g, nil
}

var cmpWords = []string{" == ", " != ", " not in ", " in ", " contains ", " starts with ", " ends with "}

func (r *sreader) comparison() (*sexpr, error) {
	key := r.label()
	if key == "" {
		return nil, errCanonical
	}
	for _, w := range cmpWords {
		if !r.eat(w) {
			continue
		}
		e := &sexpr{op: sCmp, key: key, cmp: w}
		if w == " in " || w == " not in " {
			vals, err := r.set()
			e.vals = vals
			return e, err
		}
		v, err := r.str()
		e.vals = []string{v}
		return e, err
	}
	return nil, errCanonical
}

func (r *sreader) label() string {
	start := r.pos
	for r.pos < len(r.s) {
		c := r.s[r.pos]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '/' || c == '-' {
			r.pos++
			continue
		}
		break
	}
	return r.s[start:r.pos]
}

func (r *sreader) str() (string, error) {
	if r.pos >= len(r.s) || (r.s[r.pos] != '"' && r.s[r.pos] != '\'') {
		return "", errCanonical
	}
	q := r.s[r.pos]
	end := strings.IndexByte(r.s[r.pos+1:], q)
	if end < 0 {
		return "", errCanonical
	}
	v := r.s[r.pos+1 : r.pos+1+end]
	r.pos += end + 2
	return v, nil
}

func (r *sreader) set() ([]string, error) {
	if !r.eat("{") {
		return nil, errCanonical
	}
	vals := []string{}
	for !r.eat("}") {
		if len(vals) > 0 && !r.eat(", ") {
			return nil, errCanonical
		}
		v, err := r.str()
		if err != nil {
			return nil, err
		}
		vals = append(vals, v)
	}
	return vals, nil
}

// render writes e in selector syntax, with prefix before every label key.
// The result parses to a selector equivalent to e over prefixed labels.
func (e *sexpr) render(b *strings.Builder, prefix string) {
	switch e.op {
	case sAll:
		b.WriteString("all()")
	case sGlobal:
		b.WriteString("global()")
	case sHas:
		b.WriteString("has(" + prefix + e.key + ")")
	case sCmp:
		b.WriteString(prefix + e.key + e.cmp)
		if e.cmp == " in " || e.cmp == " not in " {
			b.WriteString("{")
			for i, v := range e.vals {
				if i > 0 {
					b.WriteString(", ")
				}
				b.WriteString(quote(v))
			}
			b.WriteString("}")
		} else {
			b.WriteString(quote(e.vals[0]))
		}
	case sNot:
		b.WriteString("!(")
		e.kids[0].render(b, prefix)
		b.WriteString(")")
	case sAnd, sOr:
		sep := " && "
		if e.op == sOr {
			sep = " || "
		}
		b.WriteString("(")
		for i, k := range e.kids {
			if i > 0 {
				b.WriteString(sep)
			}
			k.render(b, prefix)
		}
		b.WriteString(")")
	}
}

// quote quotes a selector value: double quotes unless it contains one.
func quote(v string) string {
	if strings.Contains(v, `"`) {
		return "'" + v + "'"
	}
	return `"` + v + `"`
}

// alt is one way for a selector to match: the item has label key, with
// one of vals (any value when vals is nil).
type alt struct {
	key  string
	vals []string
}

// restriction is a disjunction of alts: every item the selector matches
// satisfies at least one alt. A nil restriction means "unrestricted".
type restriction []alt

// restrictions returns the restrictions a selector's matches satisfy,
// each one on its own sufficient (a conjunction yields one per restricted
// operand, and the caller picks the cheapest). Empty means unrestricted.
// An empty set member list ("k in {}") gives the restriction with no alts:
// nothing matches.
func (e *sexpr) restrictions() []restriction {
	switch e.op {
	case sHas:
		return []restriction{{{key: e.key}}}
	case sCmp:
		switch e.cmp {
		case " == ", " in ":
			return []restriction{{{key: e.key, vals: e.vals}}}
		case " contains ", " starts with ", " ends with ":
			return []restriction{{{key: e.key}}}
		}
	case sAnd:
		var out []restriction
		for _, k := range e.kids {
			out = append(out, k.restrictions()...)
		}
		return out
	case sOr:
		var out restriction
		for _, k := range e.kids {
			rs := k.restrictions()
			if len(rs) == 0 {
				return nil
			}
			out = append(out, rs[0]...)
		}
		if out == nil {
			out = restriction{}
		}
		return []restriction{out}
	}
	return nil
}
