package selector

import "strings"

// op is the kind of a node.
type op uint8

const (
	opAll op = iota // zero value: an unset node matches everything
	opGlobal
	opHas
	opEq
	opNe
	opIn
	opNotIn
	opContains
	opStartsWith
	opEndsWith
	opNot
	opAnd
	opOr
)

// words are the canonical operator spellings of the comparison ops.
var words = [...]string{
	opEq:         " == ",
	opNe:         " != ",
	opIn:         " in ",
	opNotIn:      " not in ",
	opContains:   " contains ",
	opStartsWith: " starts with ",
	opEndsWith:   " ends with ",
}

// node is one vertex of a compiled selector. Leaves use key (and val or set);
// opNot has exactly one kid, opAnd and opOr at least two.
type node struct {
	op   op
	key  string
	val  string
	set  []string // sorted, distinct
	kids []node
}

// smallSet is the size up to which set membership is a linear scan.
const smallSet = 8

func (n *node) inSet(v string) bool {
	set := n.set
	if len(set) <= smallSet {
		for _, s := range set {
			if s == v {
				return true
			}
		}
		return false
	}
	lo, hi := 0, len(set)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if set[m] < v {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo < len(set) && set[lo] == v
}

// match evaluates a leaf given the label's value and presence.
func (n *node) match(v string, ok bool) bool {
	switch n.op {
	case opHas:
		return ok
	case opEq:
		return ok && v == n.val
	case opNe:
		return !ok || v != n.val
	case opIn:
		return ok && n.inSet(v)
	case opNotIn:
		return !ok || !n.inSet(v)
	case opContains:
		return ok && strings.Contains(v, n.val)
	case opStartsWith:
		return ok && strings.HasPrefix(v, n.val)
	case opEndsWith:
		return ok && strings.HasSuffix(v, n.val)
	}
	return true // opAll, opGlobal
}

func (n *node) eval(l Labels) bool {
	switch n.op {
	case opAll, opGlobal:
		return true
	case opNot:
		return !n.kids[0].eval(l)
	case opAnd:
		for i := range n.kids {
			if !n.kids[i].eval(l) {
				return false
			}
		}
		return true
	case opOr:
		for i := range n.kids {
			if n.kids[i].eval(l) {
				return true
			}
		}
		return false
	}
	v, ok := l.Get(n.key)
	return n.match(v, ok)
}

func (n *node) evalMap(m map[string]string) bool {
	switch n.op {
	case opAll, opGlobal:
		return true
	case opNot:
		return !n.kids[0].evalMap(m)
	case opAnd:
		for i := range n.kids {
			if !n.kids[i].evalMap(m) {
				return false
			}
		}
		return true
	case opOr:
		for i := range n.kids {
			if n.kids[i].evalMap(m) {
				return true
			}
		}
		return false
	}
	v, ok := m[n.key]
	return n.match(v, ok)
}

// appendTo appends the canonical form of n to b.
func (n *node) appendTo(b []byte) []byte {
	switch n.op {
	case opAll:
		return append(b, "all()"...)
	case opGlobal:
		return append(b, "global()"...)
	case opHas:
		b = append(b, "has("...)
		b = append(b, n.key...)
		return append(b, ')')
	case opNot:
		b = append(b, '!')
		return n.kids[0].appendTo(b)
	case opAnd, opOr:
		sep := " && "
		if n.op == opOr {
			sep = " || "
		}
		b = append(b, '(')
		for i := range n.kids {
			if i > 0 {
				b = append(b, sep...)
			}
			b = n.kids[i].appendTo(b)
		}
		return append(b, ')')
	case opIn, opNotIn:
		b = append(b, n.key...)
		b = append(b, words[n.op]...)
		b = append(b, '{')
		for i, s := range n.set {
			if i > 0 {
				b = append(b, ", "...)
			}
			b = appendQuoted(b, s)
		}
		return append(b, '}')
	}
	b = append(b, n.key...)
	b = append(b, words[n.op]...)
	return appendQuoted(b, n.val)
}

// appendQuoted quotes s with double quotes, or with single quotes when s
// contains a double quote (a literal cannot contain both).
func appendQuoted(b []byte, s string) []byte {
	q := byte('"')
	if strings.IndexByte(s, '"') >= 0 {
		q = '\''
	}
	b = append(b, q)
	b = append(b, s...)
	return append(b, q)
}

// appendKeys appends every label key n refers to, with repeats.
func (n *node) appendKeys(keys []string) []string {
	switch n.op {
	case opAll, opGlobal:
		return keys
	case opNot, opAnd, opOr:
		for i := range n.kids {
			keys = n.kids[i].appendKeys(keys)
		}
		return keys
	}
	return append(keys, n.key)
}
