package ctl

import (
	"io"
	"strings"
)

// boxTable renders a table in calicoctl's boxed style:
//
//	+----------+-------------+
//	| GROUPING |    CIDR     |
//	+----------+-------------+
//	| IP Pool  | 10.0.0.0/16 |
//	+----------+-------------+
//
// Headers are centred; align holds 'l' or 'r' per column (default 'l').
type boxTable struct {
	header []string
	rows   [][]string
	align  []byte
}

func newBoxTable(header ...string) *boxTable { return &boxTable{header: header} }

func (t *boxTable) row(cells ...string) { t.rows = append(t.rows, cells) }

func (t *boxTable) render(w io.Writer) {
	widths := make([]int, len(t.header))
	for i, h := range t.header {
		widths[i] = len(h)
	}
	for _, r := range t.rows {
		for i, c := range r {
			widths[i] = max(widths[i], len(c))
		}
	}
	var b strings.Builder
	sep := func() {
		for _, n := range widths {
			b.WriteString("+" + strings.Repeat("-", n+2))
		}
		b.WriteString("+\n")
	}
	line := func(cells []string, header bool) {
		for i, n := range widths {
			c := ""
			if i < len(cells) {
				c = cleanCell(cells[i])
			}
			pad := n - len(c)
			switch {
			case header:
				c = strings.Repeat(" ", pad/2) + c + strings.Repeat(" ", pad-pad/2)
			case i < len(t.align) && t.align[i] == 'r':
				c = strings.Repeat(" ", pad) + c
			default:
				c += strings.Repeat(" ", pad)
			}
			b.WriteString("| " + c + " ")
		}
		b.WriteString("|\n")
	}
	sep()
	line(t.header, true)
	sep()
	for _, r := range t.rows {
		line(r, false)
	}
	if len(t.rows) > 0 {
		sep()
	}
	_, _ = io.WriteString(w, b.String())
}
