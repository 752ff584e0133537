// Package archtest holds tests that keep the tree's shape honest: the
// dependency rules of DESIGN.md section 3 and a doc comment on every package.
// It has no code of its own.
package archtest
