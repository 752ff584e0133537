package selector

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

const (
	// maxLabelLen is the longest label key the grammar accepts.
	maxLabelLen = 512
	// maxDepth bounds the nesting of parentheses so that a hostile selector
	// cannot make Parse, String or Evaluate recurse without limit.
	maxDepth = 256
)

// parser is a recursive-descent parser that tokenises on demand: which
// tokens are possible depends on where we are (operator words only after a
// label), so there is no separate token stream.
type parser struct {
	in    string
	pos   int    // byte offset of the next unread byte
	depth int    // open parentheses
	stack []node // operands of the && and || groups being parsed
}

func (p *parser) parse() (node, error) {
	p.skipSpace()
	if p.pos == len(p.in) {
		return node{op: opAll}, nil
	}
	n, err := p.parseOr()
	if err != nil {
		return node{}, err
	}
	if p.pos != len(p.in) { // parseOr has skipped the whitespace before it
		return node{}, p.unexpected()
	}
	return n, nil
}

func (p *parser) fail(pos int, format string, args ...any) error {
	return &ParseError{Input: p.in, Column: pos + 1, Msg: fmt.Sprintf(format, args...)}
}

// unexpected reports the token at p.pos as unexpected.
func (p *parser) unexpected() error {
	return p.fail(p.pos, "unexpected %s", p.describe())
}

// describe names the token at p.pos for an error message.
func (p *parser) describe() string {
	rest := p.in[p.pos:]
	if rest == "" {
		return "end of input"
	}
	for _, t := range [...]string{"&&", "||", "==", "!="} {
		if strings.HasPrefix(rest, t) {
			return strconv.Quote(t)
		}
	}
	switch c := rest[0]; {
	case c == '"' || c == '\'':
		if end := strings.IndexByte(rest[1:], c); end >= 0 {
			return "string " + string(appendQuoted(nil, rest[1:1+end]))
		}
		return "unterminated string"
	case isLabelChar(c):
		n := labelLen(rest)
		if n > 32 {
			return strconv.Quote(rest[:32]) + "..."
		}
		return strconv.Quote(rest[:n])
	}
	r, size := utf8.DecodeRuneInString(rest)
	if r == utf8.RuneError && size == 1 {
		return fmt.Sprintf("byte 0x%02x", rest[0])
	}
	return strconv.Quote(string(r))
}

func (p *parser) skipSpace() {
	for p.pos < len(p.in) && (p.in[p.pos] == ' ' || p.in[p.pos] == '\t') {
		p.pos++
	}
}

// peek skips whitespace and reports whether the input continues with s.
func (p *parser) peek(s string) bool {
	p.skipSpace()
	return strings.HasPrefix(p.in[p.pos:], s)
}

func (p *parser) parseOr() (node, error) {
	first, err := p.parseAnd()
	if err != nil || !p.peek("||") {
		return first, err
	}
	base := p.push(first)
	for p.peek("||") {
		p.pos += 2
		n, err := p.parseAnd()
		if err != nil {
			return node{}, err
		}
		p.stack = append(p.stack, n)
	}
	return node{op: opOr, kids: p.pop(base)}, nil
}

func (p *parser) parseAnd() (node, error) {
	first, err := p.parseUnary()
	if err != nil || !p.peek("&&") {
		return first, err
	}
	base := p.push(first)
	for p.peek("&&") {
		p.pos += 2
		n, err := p.parseUnary()
		if err != nil {
			return node{}, err
		}
		p.stack = append(p.stack, n)
	}
	return node{op: opAnd, kids: p.pop(base)}, nil
}

// push puts the first operand of a group on the stack and returns the base
// to pop back to.
func (p *parser) push(first node) int {
	if p.stack == nil {
		p.stack = make([]node, 0, 8)
	}
	base := len(p.stack)
	p.stack = append(p.stack, first)
	return base
}

// pop removes the operands above base from the stack and returns them in
// a slice of their own.
func (p *parser) pop(base int) []node {
	kids := slices.Clone(p.stack[base:])
	clear(p.stack[base:])
	p.stack = p.stack[:base]
	return kids
}

func (p *parser) parseUnary() (node, error) {
	negated, bang := false, false
	for p.peek("!") && !p.peek("!=") {
		p.pos++
		negated, bang = !negated, true
	}
	n, err := p.parseTerm(bang)
	if err != nil || !negated {
		return n, err
	}
	return negate(n), nil
}

// negate returns !n, removing a double negation so that the canonical form
// is a fixed point of Parse.
func negate(n node) node {
	if n.op == opNot {
		return n.kids[0]
	}
	return node{op: opNot, kids: []node{n}}
}

// parseTerm parses a term; afterBang says it follows a "!" (for the error).
func (p *parser) parseTerm(afterBang bool) (node, error) {
	p.skipSpace()
	rest := p.in[p.pos:]
	switch {
	case strings.HasPrefix(rest, "("):
		return p.parseGroup()
	case strings.HasPrefix(rest, "has("):
		return p.parseHas()
	case strings.HasPrefix(rest, "all("):
		return p.parseEmptyCall("all(", opAll)
	case strings.HasPrefix(rest, "global("):
		return p.parseEmptyCall("global(", opGlobal)
	case rest != "" && isLabelChar(rest[0]):
		key, err := p.parseLabel()
		if err != nil {
			return node{}, err
		}
		return p.parseComparison(key)
	case afterBang:
		return node{}, p.fail(p.pos, `expected label after "!"`)
	}
	return node{}, p.unexpected()
}

func (p *parser) parseGroup() (node, error) {
	if p.depth == maxDepth {
		return node{}, p.fail(p.pos, "parentheses nested deeper than %d", maxDepth)
	}
	p.depth++
	p.pos++ // "("
	n, err := p.parseOr()
	if err != nil {
		return node{}, err
	}
	p.skipSpace()
	switch {
	case p.pos == len(p.in):
		return node{}, p.fail(p.pos, `expected ")"`)
	case p.in[p.pos] != ')':
		return node{}, p.unexpected()
	}
	p.pos++
	p.depth--
	return n, nil
}

func (p *parser) parseHas() (node, error) {
	p.pos += len("has(")
	p.skipSpace()
	if p.pos == len(p.in) || !isLabelChar(p.in[p.pos]) {
		return node{}, p.fail(p.pos, `expected label after "has("`)
	}
	key, err := p.parseLabel()
	if err != nil {
		return node{}, err
	}
	if !p.peek(")") {
		return node{}, p.fail(p.pos, `expected ")" after "has(%s"`, key)
	}
	p.pos++
	return node{op: opHas, key: key}, nil
}

func (p *parser) parseEmptyCall(open string, o op) (node, error) {
	p.pos += len(open)
	if !p.peek(")") {
		return node{}, p.fail(p.pos, `expected ")" after %q`, open)
	}
	p.pos++
	return node{op: o}, nil
}

// parseLabel reads a label key at p.pos, which must start with a label char.
func (p *parser) parseLabel() (string, error) {
	n := labelLen(p.in[p.pos:])
	if n > maxLabelLen {
		return "", p.fail(p.pos, "label longer than %d characters", maxLabelLen)
	}
	key := p.in[p.pos : p.pos+n]
	p.pos += n
	return key, nil
}

// parseComparison parses the operator and operand that follow label key.
func (p *parser) parseComparison(key string) (node, error) {
	p.skipSpace()
	o, ok := p.parseOperator()
	if !ok {
		return node{}, p.fail(p.pos, "expected operator after label %q", key)
	}
	if o == opIn || o == opNotIn {
		set, err := p.parseSet(o)
		if err != nil {
			return node{}, err
		}
		return node{op: o, key: key, set: set}, nil
	}
	p.skipSpace()
	val, err := p.parseString(func() error {
		return p.fail(p.pos, "expected string after %q", strings.TrimSpace(words[o]))
	})
	if err != nil {
		return node{}, err
	}
	return node{op: o, key: key, val: val}, nil
}

// parseOperator reads the comparison operator at p.pos, if there is one.
func (p *parser) parseOperator() (op, bool) {
	rest := p.in[p.pos:]
	switch {
	case strings.HasPrefix(rest, "=="):
		p.pos += 2
		return opEq, true
	case strings.HasPrefix(rest, "!="):
		p.pos += 2
		return opNe, true
	}
	for _, w := range [...]struct {
		first, second string
		op            op
	}{
		{"in", "", opIn},
		{"not", "in", opNotIn},
		{"contains", "", opContains},
		{"starts", "with", opStartsWith},
		{"ends", "with", opEndsWith},
	} {
		if n := matchWords(rest, w.first, w.second); n > 0 {
			p.pos += n
			return w.op, true
		}
	}
	return 0, false
}

// matchWords returns the length of the prefix of s made of first, optional
// whitespace and second (if not empty), ending at a word boundary; or 0.
func matchWords(s, first, second string) int {
	if !strings.HasPrefix(s, first) {
		return 0
	}
	n := len(first)
	if second != "" {
		for n < len(s) && (s[n] == ' ' || s[n] == '\t') {
			n++
		}
		if !strings.HasPrefix(s[n:], second) {
			return 0
		}
		n += len(second)
	}
	if n < len(s) && isWordChar(s[n]) {
		return 0
	}
	return n
}

// parseString reads a quoted string at p.pos; notString makes the error when
// there is no opening quote.
func (p *parser) parseString(notString func() error) (string, error) {
	if p.pos == len(p.in) || (p.in[p.pos] != '"' && p.in[p.pos] != '\'') {
		return "", notString()
	}
	q := p.in[p.pos]
	end := strings.IndexByte(p.in[p.pos+1:], q)
	if end < 0 {
		return "", p.fail(p.pos, "unterminated string")
	}
	s := p.in[p.pos+1 : p.pos+1+end]
	p.pos += end + 2
	return s, nil
}

// parseSet reads "{" [S ("," S)* [","]] "}" and returns the sorted distinct
// members.
func (p *parser) parseSet(o op) ([]string, error) {
	if !p.peek("{") {
		return nil, p.fail(p.pos, "expected \"{\" after %q", strings.TrimSpace(words[o]))
	}
	p.pos++
	set := make([]string, 0, 4)
	for {
		if p.peek("}") {
			break
		}
		s, err := p.parseString(func() error {
			return p.fail(p.pos, `expected string or "}" in set, found %s`, p.describe())
		})
		if err != nil {
			return nil, err
		}
		set = append(set, s)
		if p.peek(",") {
			p.pos++
			continue
		}
		if !p.peek("}") {
			return nil, p.fail(p.pos, `expected "," or "}" in set, found %s`, p.describe())
		}
	}
	p.pos++ // "}"
	slices.Sort(set)
	return slices.Clip(slices.Compact(set)), nil
}

func isLabelChar(c byte) bool {
	return isWordChar(c) || c == '.' || c == '/' || c == '-'
}

func isWordChar(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_'
}

// labelLen returns the length of the run of label characters starting s.
func labelLen(s string) int {
	n := 0
	for n < len(s) && isLabelChar(s[n]) {
		n++
	}
	return n
}
