package lab

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/calico-go/calico/examples"
)

// Example is a walkthrough under examples/<name>: workloads (workloads.sh,
// lines of `calico-lab add-workload`) and YAML steps applied in name order
// with calicoctl, each saying in "# expect-allowed:" comments which pairs
// the TCP matrix allows after it.
type Example struct {
	Name      string
	Workloads []WorkloadSpec
	Steps     []ExampleStep
}

// ExampleStep is one YAML file of an example.
type ExampleStep struct {
	File string // path under examples/
	Data []byte
	// Allowed are the only pairs allowed on TCP DefaultPort after the step.
	Allowed []Pair
}

// Pair is an ordered pair of workload IDs.
type Pair struct{ From, To string }

func (p Pair) String() string { return p.From + " -> " + p.To }

// Examples lists the examples calico-lab knows.
func Examples() []string {
	ents, _ := fs.ReadDir(examples.FS, ".")
	var out []string
	for _, e := range ents {
		if _, err := fs.Stat(examples.FS, path.Join(e.Name(), "workloads.sh")); e.IsDir() && err == nil {
			out = append(out, e.Name())
		}
	}
	return out
}

// LoadExample reads the named example.
func LoadExample(name string) (*Example, error) {
	if !slices.Contains(Examples(), name) {
		return nil, fmt.Errorf("example %q: known examples are %s: %w", name, strings.Join(Examples(), ", "), ErrInvalid)
	}
	ex := &Example{Name: name}
	b, err := fs.ReadFile(examples.FS, path.Join(name, "workloads.sh"))
	if err != nil {
		return nil, err
	}
	if ex.Workloads, err = parseWorkloadScript(b); err != nil {
		return nil, fmt.Errorf("example %s: workloads.sh: %w", name, err)
	}
	ents, err := fs.ReadDir(examples.FS, name)
	if err != nil {
		return nil, err
	}
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".yaml") {
			continue
		}
		file := path.Join(name, e.Name())
		data, err := fs.ReadFile(examples.FS, file)
		if err != nil {
			return nil, err
		}
		allowed, err := parseExpectations(data)
		if err != nil {
			return nil, fmt.Errorf("example %s: %s: %w", name, e.Name(), err)
		}
		ex.Steps = append(ex.Steps, ExampleStep{File: file, Data: data, Allowed: allowed})
	}
	return ex, nil
}

// parseWorkloadScript reads the `calico-lab add-workload` lines of a
// script; other lines are ignored.
func parseWorkloadScript(b []byte) ([]WorkloadSpec, error) {
	var out []WorkloadSpec
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		f := strings.Fields(sc.Text())
		if len(f) < 3 || f[0] != "calico-lab" || f[1] != "add-workload" {
			continue
		}
		spec, err := parseAddWorkload(f[2:])
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		out = append(out, spec)
	}
	return out, nil
}

// parseAddWorkload parses the arguments of add-workload (NAME first).
func parseAddWorkload(args []string) (WorkloadSpec, error) {
	var spec WorkloadSpec
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return spec, fmt.Errorf("add-workload needs a NAME first: %w", ErrInvalid)
	}
	spec.Name = args[0]
	fl := flag.NewFlagSet("add-workload", flag.ContinueOnError)
	fl.SetOutput(io.Discard)
	fl.StringVar(&spec.Namespace, "namespace", "default", "")
	fl.StringVar(&spec.Host, "host", "", "")
	labels := fl.String("labels", "", "")
	ports := fl.String("ports", "", "")
	if err := fl.Parse(args[1:]); err != nil {
		return spec, fmt.Errorf("%v: %w", err, ErrInvalid)
	}
	var err error
	if spec.Labels, err = ParseLabels(*labels); err != nil {
		return spec, err
	}
	if spec.Ports, err = ParsePorts(*ports); err != nil {
		return spec, err
	}
	return spec, nil
}

// ParsePorts parses "80,8080"; empty gives none.
func ParsePorts(s string) ([]int, error) {
	var out []int
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("port %q: want 1-65535: %w", p, ErrInvalid)
		}
		if slices.Contains(out, n) {
			return nil, fmt.Errorf("port %d given twice: %w", n, ErrInvalid)
		}
		out = append(out, n)
	}
	return out, nil
}

// parseExpectations reads the "# expect-allowed:" lines: "none", or
// "ns/a -> ns/b".
func parseExpectations(b []byte) ([]Pair, error) {
	var out []Pair
	seen := false
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		rest, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "# expect-allowed:")
		if !ok {
			continue
		}
		seen = true
		rest = strings.TrimSpace(rest)
		if rest == "none" {
			continue
		}
		from, to, ok := strings.Cut(rest, "->")
		if !ok {
			return nil, fmt.Errorf("expect-allowed %q: want \"ns/a -> ns/b\" or \"none\": %w", rest, ErrInvalid)
		}
		out = append(out, Pair{From: strings.TrimSpace(from), To: strings.TrimSpace(to)})
	}
	if !seen {
		return nil, fmt.Errorf("no \"# expect-allowed:\" line: %w", ErrInvalid)
	}
	return out, nil
}

// placeOn maps the example's host names onto the lab's hosts: host-N
// wraps around when the lab has fewer hosts.
func placeOn(host string, hosts []string) string {
	if slices.Contains(hosts, host) || len(hosts) == 0 {
		return host
	}
	if n, err := strconv.Atoi(strings.TrimPrefix(host, "host-")); err == nil && n > 0 {
		return hosts[(n-1)%len(hosts)]
	}
	return hosts[0]
}

// Apply runs `calicoctl apply -f -` with the step's YAML against the lab's
// datastore.
func (l *Lab) Apply(ctx context.Context, step ExampleStep) error {
	if _, err := runIn(ctx, nil, step.Data, l.baseEnv(false), l.bin("calicoctl"), "apply", "-f", "-"); err != nil {
		return fmt.Errorf("calicoctl apply -f examples/%s: %w", step.File, err)
	}
	return nil
}
