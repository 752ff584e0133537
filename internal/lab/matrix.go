package lab

import (
	"context"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/calico-go/calico/internal/netns"
)

// MatrixOptions configure a reachability matrix.
type MatrixOptions struct {
	Port     int    // default DefaultPort
	Protocol string // TCP (default) or UDP
	// Timeout bounds each probe (default 1s): a denied connection is
	// dropped, so every denied pair costs this long, in parallel.
	Timeout time.Duration
	// Parallel probes at most in flight (default 2048; each holds a
	// socket), started at Rate per second at most (default 2000): allowed
	// probes finish at once and cost CPU, denied ones only wait, so the
	// rate keeps a small machine from falling behind while the many
	// denied probes wait side by side.
	Parallel, Rate int
}

func (o *MatrixOptions) setDefaults() error {
	if o.Port == 0 {
		o.Port = DefaultPort
	}
	if o.Port < 1 || o.Port > 65535 {
		return fmt.Errorf("port %d: want 1-65535: %w", o.Port, ErrInvalid)
	}
	o.Protocol = strings.ToLower(o.Protocol)
	switch o.Protocol {
	case "":
		o.Protocol = TCP
	case TCP, UDP:
	default:
		return fmt.Errorf("protocol %q: want tcp or udp: %w", o.Protocol, ErrInvalid)
	}
	if o.Timeout <= 0 {
		o.Timeout = time.Second
	}
	if o.Parallel <= 0 {
		o.Parallel = 2048
	}
	if o.Rate <= 0 {
		o.Rate = 2000
	}
	return nil
}

// Matrix is who reaches whom. Its JSON form is
// {"port": 80, "protocol": "tcp", "results": [{"from": "ns/a", "to": "ns/b", "allowed": true}, ...]}.
type Matrix struct {
	Port     int      `json:"port"`
	Protocol string   `json:"protocol"`
	Results  []Result `json:"results"`
	// Workloads are the IDs in order (rows and columns); Lab and Time
	// title the rendered forms.
	Workloads []string  `json:"-"`
	Lab       string    `json:"-"`
	Time      time.Time `json:"-"`
}

// Result is one ordered pair.
type Result struct {
	From    string `json:"from"`
	To      string `json:"to"`
	Allowed bool   `json:"allowed"`
}

// Matrix probes every ordered pair of workloads with a real connection
// from inside the source's namespace to the destination's echo server.
func (l *Lab) Matrix(ctx context.Context, opts MatrixOptions) (*Matrix, error) {
	if err := opts.setDefaults(); err != nil {
		return nil, err
	}
	s := l.State()
	ws := s.sortedWorkloads()
	m := &Matrix{Port: opts.Port, Protocol: opts.Protocol, Lab: l.state.Name, Time: time.Now(), Results: []Result{}}
	spaces := make([]*sockets, len(ws))
	for i, w := range ws {
		m.Workloads = append(m.Workloads, w.ID())
		ns, err := openSockets(filepath.Join(netns.Dir, workloadNS(l.state.Name, w.Namespace, w.Name)), opts.Protocol)
		if err != nil {
			return nil, fmt.Errorf("workload %s: %w", w.ID(), err)
		}
		defer ns.Close()
		spaces[i] = ns
	}
	type job struct{ i, j, k int }
	var jobs []job
	for i := range ws {
		for j := range ws {
			if i != j {
				jobs = append(jobs, job{i, j, len(m.Results)})
				m.Results = append(m.Results, Result{From: ws[i].ID(), To: ws[j].ID()})
			}
		}
	}
	sem := make(chan struct{}, opts.Parallel)
	// Start the probes in batches every 10ms, Rate per second.
	const tick = 10 * time.Millisecond
	pace := time.NewTicker(tick)
	defer pace.Stop()
	batch := max(1, opts.Rate*int(tick)/int(time.Second))
	var wg sync.WaitGroup
	for n, jb := range jobs {
		if n%batch == 0 && n > 0 {
			<-pace.C
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			dst := netip.AddrPortFrom(ws[jb.j].Addr, uint16(opts.Port))
			m.Results[jb.k].Allowed = probe(ctx, spaces[jb.i], opts.Protocol, dst, ws[jb.j].ID(), opts.Timeout)
		}()
	}
	wg.Wait()
	return m, ctx.Err()
}

// Allowed counts the allowed pairs.
func (m *Matrix) Allowed() int {
	n := 0
	for _, r := range m.Results {
		if r.Allowed {
			n++
		}
	}
	return n
}

// Diff compares the matrix with an expectation: exactly the pairs in
// allowed are allowed (all pairs when allowed is nil and all is true). It
// returns one line per difference.
func (m *Matrix) Diff(allowed []Pair, all bool) []string {
	want := map[Pair]bool{}
	for _, p := range allowed {
		want[p] = true
	}
	var out []string
	for _, r := range m.Results {
		w := all || want[Pair{r.From, r.To}]
		if r.Allowed != w {
			out = append(out, fmt.Sprintf("%s -> %s: %s, want %s", r.From, r.To, verdict(r.Allowed), verdict(w)))
		}
	}
	return out
}

func verdict(allowed bool) string {
	if allowed {
		return "allowed"
	}
	return "denied"
}

// lookup returns the result of a pair.
func (m *Matrix) lookup(from, to string) (Result, bool) {
	for _, r := range m.Results {
		if r.From == from && r.To == to {
			return r, true
		}
	}
	return Result{}, false
}

// WriteJSON writes the JSON form.
func (m *Matrix) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(m)
}

// WriteTable writes a grid for a terminal: rows are sources, numbered
// columns destinations.
func (m *Matrix) WriteTable(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s port %d: ✓ allowed, ✗ denied (rows: from, columns: to)\n\n", strings.ToUpper(m.Protocol), m.Port)
	width := 0
	for _, id := range m.Workloads {
		width = max(width, len(id))
	}
	num := len(fmt.Sprint(len(m.Workloads)))
	cell := max(num, 1) + 1
	fmt.Fprintf(&b, "%*s  %-*s ", num, "", width, "")
	for j := range m.Workloads {
		fmt.Fprintf(&b, "%*d", cell, j+1)
	}
	b.WriteString("\n")
	for i, from := range m.Workloads {
		fmt.Fprintf(&b, "%*d  %-*s ", num, i+1, width, from)
		for _, to := range m.Workloads {
			mark := "-"
			if r, ok := m.lookup(from, to); ok {
				mark = map[bool]string{true: "✓", false: "✗"}[r.Allowed]
			}
			fmt.Fprintf(&b, "%*s", cell, mark)
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "\n%d of %d connections allowed.\n", m.Allowed(), len(m.Results))
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteHTML writes a self-contained page (no script, no external
// resources) with the matrix as a coloured grid.
func (m *Matrix) WriteHTML(w io.Writer) error {
	type cell struct {
		Class, Mark, Title string
	}
	type row struct {
		Name  string
		Cells []cell
	}
	data := struct {
		Lab, Protocol, Time string
		Port, Allowed, All  int
		Cols                []string
		Rows                []row
	}{Lab: m.Lab, Protocol: strings.ToUpper(m.Protocol), Port: m.Port, Time: m.Time.Format(time.RFC1123),
		Allowed: m.Allowed(), All: len(m.Results), Cols: m.Workloads}
	for _, from := range m.Workloads {
		r := row{Name: from}
		for _, to := range m.Workloads {
			c := cell{Class: "self", Mark: "", Title: from + " (itself)"}
			if res, ok := m.lookup(from, to); ok {
				c = cell{Class: "denied", Mark: "✗", Title: from + " → " + to + ": denied"}
				if res.Allowed {
					c = cell{Class: "allowed", Mark: "✓", Title: from + " → " + to + ": allowed"}
				}
			}
			r.Cells = append(r.Cells, c)
		}
		data.Rows = append(data.Rows, r)
	}
	return htmlPage.Execute(w, data)
}

var htmlPage = template.Must(template.New("matrix").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>calico-lab {{.Lab}}: {{.Protocol}} {{.Port}} reachability</title>
<style>
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 24px; color: #1d2330; background: #fff; }
h1 { font-size: 20px; margin: 0 0 4px; }
p.sub { margin: 0 0 18px; color: #5b6475; font-size: 13px; }
table { border-collapse: separate; border-spacing: 3px; }
th { font-weight: 600; font-size: 12px; color: #333a48; }
th.row { text-align: right; padding-right: 8px; white-space: nowrap; }
th.col { vertical-align: bottom; height: 130px; padding-bottom: 6px; }
th.col span { writing-mode: vertical-rl; transform: rotate(180deg); white-space: nowrap; }
th.corner { text-align: right; vertical-align: bottom; font-weight: 400; color: #5b6475; font-size: 11px; padding: 0 8px 6px 0; }
td { width: 30px; height: 30px; text-align: center; font-size: 16px; font-weight: 700; border-radius: 4px; color: #fff; }
td.allowed { background: #2e9b4f; }
td.denied { background: #d64545; }
td.self { background: #e3e6ec; }
.legend { margin-top: 16px; font-size: 13px; color: #333a48; }
.legend span { display: inline-block; width: 14px; height: 14px; border-radius: 3px; vertical-align: -2px; margin: 0 6px 0 14px; }
.legend span.a { background: #2e9b4f; margin-left: 0; }
.legend span.d { background: #d64545; }
.legend span.s { background: #e3e6ec; }
</style>
</head>
<body>
<h1>Who reaches whom: {{.Protocol}} port {{.Port}}</h1>
<p class="sub">calico-lab “{{.Lab}}” · {{.Allowed}} of {{.All}} connections allowed · probed {{.Time}}</p>
<table>
<tr><th class="corner">from ↓ &nbsp; to →</th>{{range .Cols}}<th class="col"><span>{{.}}</span></th>{{end}}</tr>
{{range .Rows}}<tr><th class="row">{{.Name}}</th>{{range .Cells}}<td class="{{.Class}}" title="{{.Title}}">{{.Mark}}</td>{{end}}</tr>
{{end}}</table>
<div class="legend"><span class="a"></span>allowed<span class="d"></span>denied<span class="s"></span>same workload</div>
</body>
</html>
`))
