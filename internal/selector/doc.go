// Package selector implements Calico's label selector language: parsing,
// evaluation against a set of labels, and the canonical string form from
// which selector IDs (and so IP set names) are derived.
//
// # Grammar
//
//	sel  := "" | or
//	or   := and ("||" and)*
//	and  := un ("&&" un)*
//	un   := "!"* term
//	term := "has(" L ")" | "all()" | "global()" | "(" or ")"
//	      | L "==" S | L "!=" S | L "in" SET | L "not in" SET
//	      | L "contains" S | L "starts with" S | L "ends with" S
//	SET  := "{" [S ("," S)* [","]] "}"
//	S    := "..." | '...'            (no escapes)
//	L    := [a-zA-Z0-9_./-]{1,512}
//
// Whitespace is a space or a tab and may appear between any two tokens, and
// inside the parentheses of has(), all() and global(), but not between
// has/all/global and their "(". The operator words (in, not in, contains,
// starts with, ends with) are recognised only right after a label and must end
// at a word boundary; like Calico, the two words of "not in", "starts with" and
// "ends with" may be separated by any amount of whitespace, including none
// ("notin"). "!" binds tightest, then "&&", then "||"; a run of "!" collapses by
// parity. The empty (or all-whitespace) selector is all().
//
// # Semantics
//
// ==, in, contains, starts with, ends with and has() need the label to be
// present; != and not in are true when it is absent. all() and global() are
// always true (global() only means something in a namespaceSelector, which is
// the caller's business). Labels inherited from profiles are layered under an
// endpoint's own labels with [WithParent].
//
// # Canonical form
//
// [Selector.String] renders the parse tree the way Calico does, so that
// canonical forms and [Selector.UniqueID] values match Calico's:
//
//   - A sequence a && b && c is one group and renders as (a && b && c); the
//     same for ||. Parentheses written by the user that group a single term are
//     dropped; parentheses that make a nested group are kept, so a && (b && c)
//     renders as (a && (b && c)) and is not flattened. A top-level single term
//     has no parentheses: a == "x".
//   - Negation renders as "!" directly followed by its operand: !has(a),
//     !a == "x" (the form of both !a == "x" and !(a == "x")), !(a || b).
//   - Double negation is removed wherever it arises, also across parentheses:
//     !(!a == "x") is a == "x". (Calico renders that input as !!a == "x",
//     which it then reparses to a == "x"; we go straight to the fixed point so
//     that Parse(s.String()).String() == s.String() always holds.)
//   - Comparisons are l == "v", l != "v", l contains "v", l starts with "v",
//     l ends with "v"; a value containing a double quote uses single quotes.
//   - Sets are sorted (bytewise) and deduplicated: l in {"a", "b"},
//     l not in {}; each member is quoted on its own as above.
//   - has(l), all(), global().
//
// # Performance
//
// Parse compiles the selector into a tree of small node values. A [Selector]
// is immutable; Evaluate and EvaluateMap are safe for concurrent use and do
// not allocate.
package selector
