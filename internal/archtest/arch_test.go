package archtest

import (
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/calico-go/calico"

type pkg struct {
	ImportPath string
	Name       string
	Doc        string
	Imports    []string
	Deps       []string
}

// listPackages runs `go list -json -deps=false` over the whole module.
func listPackages(t *testing.T, deps bool, patterns ...string) []pkg {
	t.Helper()
	args := []string{"list", "-json"}
	if deps {
		args = append(args, "-deps")
	}
	args = append(args, patterns...)
	cmd := exec.Command("go", args...)
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("go list: %v\n%s", err, ee.Stderr)
		}
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	var pkgs []pkg
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("decode go list output: %v", err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

func ours(path string) bool { return path == module || strings.HasPrefix(path, module+"/") }

func rel(path string) string { return strings.TrimPrefix(strings.TrimPrefix(path, module), "/") }

// under reports whether rel path p is dir or inside it.
func under(p, dir string) bool { return p == dir || strings.HasPrefix(p, dir+"/") }

// rule forbids packages under from to import (directly) packages under any of to.
type rule struct {
	from    string
	to      []string
	allowed []string // exceptions inside to
	why     string
}

var rules = []rule{
	{from: "api/v3", to: []string{""}, allowed: []string{"api/v3", "internal/selector"},
		why: "api/v3 is the leaf of the tree; only the pure selector package may be used for validation"},
	{from: "internal/selector", to: []string{""}, allowed: []string{"internal/selector"},
		why: "the selector language is a pure leaf"},
	{from: "internal/calc", to: []string{"internal/datastore", "internal/dataplane", "internal/kernel"},
		why: "the calc graph is pure"},
	{from: "internal/dataplane", to: []string{"internal/calc", "internal/syncer"},
		why: "the dataplane sees only typed dpapi messages"},
	{from: "", to: []string{"cmd"}, why: "nothing imports a main package"},
}

func TestDependencyRules(t *testing.T) {
	for _, p := range listPackages(t, false, module+"/...") {
		from := rel(p.ImportPath)
		for _, imp := range p.Imports {
			if !ours(imp) {
				continue
			}
			to := rel(imp)
			for _, r := range rules {
				if !under(from, r.from) && r.from != "" {
					continue
				}
				if broken(r, to) {
					t.Errorf("%s imports %s: %s", p.ImportPath, imp, r.why)
				}
			}
		}
	}
}

func broken(r rule, to string) bool {
	for _, a := range r.allowed {
		if under(to, a) {
			return false
		}
	}
	for _, dst := range r.to {
		if dst == "" || under(to, dst) {
			return true
		}
	}
	return false
}

// TestBinaries checks what each binary links: no binary links the testing
// package, and the CNI plugins never link the agent.
func TestBinaries(t *testing.T) {
	agentOnly := []string{"internal/calc", "internal/dataplane", "internal/kernel", "internal/syncer", "internal/bgp"}
	for _, bin := range listPackages(t, false, module+"/cmd/...") {
		deps := listPackages(t, true, bin.ImportPath)
		cni := strings.HasSuffix(bin.ImportPath, "/cmd/calico") || strings.HasSuffix(bin.ImportPath, "/cmd/calico-ipam")
		for _, d := range deps {
			if d.ImportPath == "testing" {
				t.Errorf("%s links package testing", bin.ImportPath)
			}
			if cni && ours(d.ImportPath) {
				for _, a := range agentOnly {
					if under(rel(d.ImportPath), a) {
						t.Errorf("CNI binary %s links agent package %s", bin.ImportPath, d.ImportPath)
					}
				}
			}
		}
	}
}

func TestEveryPackageHasDoc(t *testing.T) {
	for _, p := range listPackages(t, false, module+"/...") {
		if p.Name == "main" {
			continue // commands document themselves through --help
		}
		if strings.TrimSpace(p.Doc) == "" {
			t.Errorf("package %s has no doc comment (add one to doc.go)", p.ImportPath)
		}
	}
}
