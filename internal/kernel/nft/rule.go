package nft

import (
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
)

// Stmt is one statement of a rule: a match or an action. Statements are
// made by the constructors of this package.
type Stmt interface {
	text() string
	build(b *builder)
}

// Matcher is a match statement that can be negated.
type Matcher interface {
	Stmt
	// Not returns the negated match.
	Not() Matcher
}

// Rule is a list of statements evaluated left to right, plus an optional
// human comment kept in the kernel next to the rule's hash.
type Rule struct {
	Stmts   []Stmt
	Comment string
}

// R builds a rule from statements.
func R(stmts ...Stmt) Rule { return Rule{Stmts: stmts} }

// WithComment returns the rule with a comment.
func (r Rule) WithComment(c string) Rule {
	r.Comment = c
	return r
}

// String renders the rule in nft syntax (its identity).
func (r Rule) String() string {
	var sb strings.Builder
	for i, s := range r.Stmts {
		if i > 0 {
			sb.WriteByte(' ')
		}
		sb.WriteString(s.text())
	}
	if r.Comment != "" {
		fmt.Fprintf(&sb, " comment %q", r.Comment)
	}
	return sb.String()
}

// hashRule returns the rule's identity: 16 characters of base64url
// SHA-256 of its text.
func hashRule(text string) string {
	sum := sha256.Sum256([]byte(text))
	return base64.RawURLEncoding.EncodeToString(sum[:12])
}

// commentPrefix starts every rule comment this driver writes.
const commentPrefix = "cali:"

// maxUserdata is NFT_USERDATA_MAXLEN, less the TLV header and the NUL.
const maxUserdata = 256 - 3

func ruleComment(hash, comment string) string {
	c := commentPrefix + hash
	if comment != "" {
		c += " " + comment
	}
	if len(c) > maxUserdata {
		c = c[:maxUserdata]
	}
	return c
}

// hashFromComment extracts the hash from a comment this driver wrote.
func hashFromComment(c string) (string, bool) {
	if !strings.HasPrefix(c, commentPrefix) || len(c) < len(commentPrefix)+16 {
		return "", false
	}
	return c[len(commentPrefix) : len(commentPrefix)+16], true
}

// builder accumulates a rule's expressions and the anonymous sets they use.
type builder struct {
	table   *nftables.Table
	exprs   []expr.Any
	anon    []anonSet
	nfproto Family
	nextID  func() uint32
	err     error
}

type anonSet struct {
	set   *nftables.Set
	elems []nftables.SetElement
}

func (b *builder) add(es ...expr.Any) { b.exprs = append(b.exprs, es...) }

func (b *builder) fail(err error) {
	if b.err == nil {
		b.err = err
	}
}

// family adds the "meta nfproto" guard an address match needs in the inet
// family, once per rule.
func (b *builder) family(f Family) {
	if b.nfproto == f {
		return
	}
	if b.nfproto != 0 {
		b.fail(errors.New("rule mixes IPv4 and IPv6 matches"))
		return
	}
	b.nfproto = f
	p := byte(nfprotoIPv4)
	if f == IPv6 {
		p = nfprotoIPv6
	}
	b.add(&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1}, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{p}})
}

const (
	nfprotoIPv4 = 2
	nfprotoIPv6 = 10
	regVerdict  = 0
	reg1        = 1
	reg2        = 2
	reg32x00    = 8
)

// anonymous adds a constant anonymous interval set holding the ranges and
// returns its name for a lookup.
func (b *builder) anonymous(keyType nftables.SetDatatype, ranges [][2][]byte) *nftables.Set {
	s := &nftables.Set{
		Table: b.table, ID: b.nextID(), Name: "__set%d",
		Anonymous: true, Constant: true, Interval: !exact(ranges), KeyType: keyType,
	}
	var elems []nftables.SetElement
	for _, r := range ranges {
		elems = append(elems, nftables.SetElement{Key: r[0]})
		if !s.Interval {
			continue
		}
		if end, ok := increment(r[1]); ok {
			elems = append(elems, nftables.SetElement{Key: end, IntervalEnd: true})
		}
	}
	b.anon = append(b.anon, anonSet{s, elems})
	return s
}

// exact reports whether every range is a single value: such sets need no
// interval flag, and the kernel builds hash or bitmap sets for them much
// faster than interval ones.
func exact(ranges [][2][]byte) bool {
	for _, r := range ranges {
		if string(r[0]) != string(r[1]) {
			return false
		}
	}
	return true
}

// increment returns b+1 as a big-endian number, or false on overflow.
func increment(b []byte) ([]byte, bool) {
	out := append([]byte(nil), b...)
	for i := len(out) - 1; i >= 0; i-- {
		out[i]++
		if out[i] != 0 {
			return out, true
		}
	}
	return nil, false
}

// VerdictKind says what a verdict does.
type VerdictKind uint8

// Verdict kinds.
const (
	KindAccept VerdictKind = iota + 1
	KindDrop
	KindReturn
	KindJump
	KindGoto
)

// Verdict ends rule evaluation (accept, drop), returns from a chain, or
// moves to another chain. It is a Stmt and the value type of verdict maps.
type Verdict struct {
	Kind  VerdictKind
	Chain string // jump and goto only
}

// Accept accepts the packet (in this table's hook).
func Accept() Verdict { return Verdict{Kind: KindAccept} }

// Drop drops the packet.
func Drop() Verdict { return Verdict{Kind: KindDrop} }

// Return returns to the calling chain.
func Return() Verdict { return Verdict{Kind: KindReturn} }

// Jump calls chain; evaluation resumes after this rule when it returns.
func Jump(chain string) Verdict { return Verdict{Kind: KindJump, Chain: chain} }

// Goto continues in chain; when it returns, evaluation resumes in the
// caller of this chain.
func Goto(chain string) Verdict { return Verdict{Kind: KindGoto, Chain: chain} }

func (v Verdict) String() string { return v.text() }

func (v Verdict) text() string {
	switch v.Kind {
	case KindAccept:
		return "accept"
	case KindDrop:
		return "drop"
	case KindReturn:
		return "return"
	case KindJump:
		return "jump " + v.Chain
	case KindGoto:
		return "goto " + v.Chain
	}
	return "verdict(" + strconv.Itoa(int(v.Kind)) + ")"
}

func (v Verdict) expr() (*expr.Verdict, error) {
	switch v.Kind {
	case KindAccept:
		return &expr.Verdict{Kind: expr.VerdictAccept}, nil
	case KindDrop:
		return &expr.Verdict{Kind: expr.VerdictDrop}, nil
	case KindReturn:
		return &expr.Verdict{Kind: expr.VerdictReturn}, nil
	case KindJump, KindGoto:
		if v.Chain == "" {
			return nil, fmt.Errorf("%s without a chain", v.text())
		}
		k := expr.VerdictJump
		if v.Kind == KindGoto {
			k = expr.VerdictGoto
		}
		return &expr.Verdict{Kind: k, Chain: v.Chain}, nil
	}
	return nil, fmt.Errorf("unknown verdict kind %d", v.Kind)
}

func (v Verdict) build(b *builder) {
	e, err := v.expr()
	if err != nil {
		b.fail(err)
		return
	}
	b.add(e)
}

// ProtoName returns the nft name of an IP protocol number, or the number.
func ProtoName(p uint8) string {
	switch p {
	case 1:
		return "icmp"
	case 6:
		return "tcp"
	case 17:
		return "udp"
	case 58:
		return "icmpv6"
	case 132:
		return "sctp"
	case 136:
		return "udplite"
	}
	return strconv.Itoa(int(p))
}
