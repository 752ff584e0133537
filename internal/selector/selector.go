package selector

import (
	"crypto/sha256"
	"encoding/base64"
	"slices"
	"strconv"
)

// Labels is a read-only view of a set of labels.
type Labels interface {
	// Get returns the value of the label key and whether it is present.
	Get(key string) (value string, ok bool)
}

// Map is a plain label map. It implements [Labels].
type Map map[string]string

// Get implements [Labels].
func (m Map) Get(key string) (string, bool) {
	v, ok := m[key]
	return v, ok
}

// WithParent layers own over parent: a key present in own is taken from own,
// any other key from parent. It models an endpoint's labels (own) merged with
// the labelsToApply of its profiles (parent). Either may be nil.
func WithParent(own, parent Labels) Labels {
	switch {
	case own == nil && parent == nil:
		return Map(nil)
	case parent == nil:
		return own
	case own == nil:
		return parent
	}
	return &layered{own: own, parent: parent}
}

type layered struct{ own, parent Labels }

func (l *layered) Get(key string) (string, bool) {
	if v, ok := l.own.Get(key); ok {
		return v, true
	}
	return l.parent.Get(key)
}

// Selector is a parsed selector. It is immutable after [Parse] and safe for
// concurrent use. The zero value is not useful; use [Parse] or [MustParse].
type Selector struct {
	root node
	str  string   // canonical form
	id   string   // UniqueID
	keys []string // sorted distinct label keys
}

// ParseError describes a selector that does not parse.
type ParseError struct {
	Input  string // the selector as given
	Column int    // 1-based byte offset of the problem; len(Input)+1 at end of input
	Msg    string // e.g. `unexpected "&&"`
}

// Error returns e.g. `unexpected "&&" at column 7`.
func (e *ParseError) Error() string {
	return e.Msg + " at column " + strconv.Itoa(e.Column)
}

// Parse parses s. The empty selector, or one made only of whitespace, is
// all(). Errors are of type *[ParseError].
func Parse(s string) (*Selector, error) {
	p := parser{in: s}
	root, err := p.parse()
	if err != nil {
		return nil, err
	}
	return newSelector(root), nil
}

// MustParse is like [Parse] but panics on error. It is meant for constants in
// code and tests, never for user input.
func MustParse(s string) *Selector {
	sel, err := Parse(s)
	if err != nil {
		panic("selector.MustParse(" + strconv.Quote(s) + "): " + err.Error())
	}
	return sel
}

func newSelector(root node) *Selector {
	// Hash "s:" + canonical form straight from the rendering buffer.
	buf := root.appendTo(append(make([]byte, 0, 128), "s:"...))
	sum := sha256.Sum224(buf)
	var id [2 + 38]byte // base64 of 28 bytes without padding is 38 bytes
	copy(id[:], "s:")
	base64.RawURLEncoding.Encode(id[2:], sum[:])
	keys := root.appendKeys(make([]string, 0, 8))
	slices.Sort(keys)
	keys = slices.Clip(slices.Compact(keys))
	if len(keys) == 0 {
		keys = nil
	}
	return &Selector{
		root: root,
		str:  string(buf[2:]),
		id:   string(id[:]),
		keys: keys,
	}
}

// Evaluate reports whether the labels match. A nil Labels has no labels.
func (s *Selector) Evaluate(l Labels) bool {
	if l == nil {
		return s.root.evalMap(nil)
	}
	return s.root.eval(l)
}

// EvaluateMap is [Selector.Evaluate] for a plain map, without going through
// the [Labels] interface.
func (s *Selector) EvaluateMap(m map[string]string) bool {
	return s.root.evalMap(m)
}

// String returns the canonical form (see the package documentation).
func (s *Selector) String() string {
	if s.str == "" {
		return "all()"
	}
	return s.str
}

// UniqueID returns "s:" + base64url(SHA-224("s:" + canonical form)), without
// padding, as Calico does. Equal canonical forms give equal IDs.
func (s *Selector) UniqueID() string {
	if s.id == "" {
		return allSelector.id
	}
	return s.id
}

// LabelKeys returns the sorted distinct label keys the selector refers to, in
// a new slice the caller may keep; nil when there are none (all(), global()).
func (s *Selector) LabelKeys() []string {
	return slices.Clone(s.keys)
}

var allSelector = newSelector(node{op: opAll})
