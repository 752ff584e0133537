// Package felixconfig merges Felix's configuration from its sources into
// the typed dpapi.Config (SPEC §1.6). A higher source wins:
//
//  1. built-in defaults;
//  2. the FelixConfiguration named "default";
//  3. FelixConfigurations with a spec.nodeSelector matching this node's
//     labels (when several match, the oldest wins: it is applied last);
//  4. the FelixConfiguration named "node.<nodename>";
//  5. the [global] section of the config file (/etc/calico/felix.cfg);
//  6. FELIX_<NAME> environment variables (NAME case-insensitive);
//  7. internal overrides.
//
// Parameter names are Felix's (the JSON names of FelixConfigurationSpec),
// compared without regard to case. In the file and the environment,
// durations are seconds (Go duration strings are accepted too), booleans
// are strconv.ParseBool forms, masks may be hex (0xffff0000) and failsafe
// ports are "proto:port" or "proto:net:port" lists ("none" or "" for no
// ports). A value that does not parse is reported and ignored, so the
// value from a lower source stays in force; Merge is pure and never fails
// outright.
package felixconfig

import (
	"bufio"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	v3 "github.com/calico-go/calico/api/v3"
	"github.com/calico-go/calico/internal/dpapi"
	"github.com/calico-go/calico/internal/selector"
)

// DefaultFile is where calico-node reads its config file.
const DefaultFile = "/etc/calico/felix.cfg"

// Sources are the inputs of Merge.
type Sources struct {
	// NodeName is this node's name; NodeLabels its labels, for
	// spec.nodeSelector.
	NodeName   string
	NodeLabels map[string]string
	// Resources are all FelixConfiguration resources; Merge picks those
	// that apply to NodeName.
	Resources []*v3.FelixConfiguration
	// File holds the [global] section of the config file, Env the FELIX_*
	// variables without the prefix, Overrides internal settings. Keys are
	// parameter names in any case.
	File      map[string]string
	Env       map[string]string
	Overrides map[string]string
}

// layer is one source: raw JSON values (from a resource) or strings.
type layer struct {
	name string
	json map[string]json.RawMessage
	str  map[string]string
}

// Merge computes the effective configuration. The error (possibly several
// joined) reports values that were ignored; the Config is valid regardless.
func Merge(src Sources) (dpapi.Config, error) {
	layers, errs := src.layers()
	cfg := dpapi.Config{NodeName: src.NodeName}
	for _, p := range params {
		var v any
		if !p.noDefault {
			v = p.mustDefault()
		}
		for _, l := range layers {
			got, what, err := p.fromLayer(l)
			switch {
			case err != nil:
				errs = append(errs, fmt.Errorf("%s: %s=%s: %w", l.name, p.name, what, err))
			case got != nil:
				v = got
			}
		}
		if v != nil {
			p.apply(&cfg, v)
		}
	}
	return cfg, errors.Join(errs...)
}

// layers returns the sources in increasing priority.
func (src Sources) layers() ([]layer, []error) {
	var errs []error
	var def, node *v3.FelixConfiguration
	var matched []*v3.FelixConfiguration
	for _, r := range src.Resources {
		switch {
		case r.Name == "default":
			def = r
		case r.Name == "node."+src.NodeName:
			node = r
		case strings.HasPrefix(r.Name, "node."):
		case r.Spec.NodeSelector != "":
			sel, err := selector.Parse(r.Spec.NodeSelector)
			if err != nil {
				errs = append(errs, fmt.Errorf("FelixConfiguration %s: nodeSelector: %w", r.Name, err))
				continue
			}
			if sel.EvaluateMap(src.NodeLabels) {
				matched = append(matched, r)
			}
		}
	}
	// Oldest wins, so it goes last; ties by name.
	slices.SortFunc(matched, func(a, b *v3.FelixConfiguration) int {
		if c := b.CreationTimestamp.Compare(a.CreationTimestamp.Time); c != 0 {
			return c
		}
		return cmp.Compare(b.Name, a.Name)
	})
	var out []layer
	for _, r := range slices.Concat([]*v3.FelixConfiguration{def}, matched, []*v3.FelixConfiguration{node}) {
		if r == nil {
			continue
		}
		l, err := resourceLayer(r)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, l)
	}
	out = append(out,
		layer{name: "config file", str: lower(src.File)},
		layer{name: "environment", str: lower(src.Env)},
		layer{name: "overrides", str: lower(src.Overrides)})
	return out, errs
}

func resourceLayer(r *v3.FelixConfiguration) (layer, error) {
	b, err := json.Marshal(r.Spec)
	if err != nil {
		return layer{}, fmt.Errorf("FelixConfiguration %s: %w", r.Name, err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return layer{}, fmt.Errorf("FelixConfiguration %s: %w", r.Name, err)
	}
	l := layer{name: "FelixConfiguration " + r.Name, json: make(map[string]json.RawMessage, len(m))}
	for k, v := range m {
		l.json[strings.ToLower(k)] = v
	}
	return l, nil
}

func lower(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[strings.ToLower(k)] = v
	}
	return out
}

// ParseFile reads the [global] section of a Felix config file (INI
// format: "name = value" lines, "#" or ";" comments). Other sections are
// ignored.
func ParseFile(r io.Reader) (map[string]string, error) {
	out := map[string]string{}
	section := ""
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '[' && strings.HasSuffix(line, "]"):
			section = strings.ToLower(strings.TrimSpace(line[1 : len(line)-1]))
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				k, v, ok = strings.Cut(line, ":")
			}
			if !ok {
				return nil, fmt.Errorf("line %d: expected name = value", n)
			}
			if section == "global" {
				out[strings.TrimSpace(k)] = strings.TrimSpace(v)
			}
		}
	}
	return out, sc.Err()
}

// ReadFile reads the [global] section of the file at path; a missing file
// is not an error and gives nil.
func ReadFile(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	m, err := ParseFile(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}

// FromEnviron picks the FELIX_* variables of environ (as os.Environ
// returns it) and strips the prefix.
func FromEnviron(environ []string) map[string]string {
	out := map[string]string{}
	for _, kv := range environ {
		k, v, ok := strings.Cut(kv, "=")
		if ok && len(k) > len("FELIX_") && strings.EqualFold(k[:len("FELIX_")], "FELIX_") {
			out[k[len("FELIX_"):]] = v
		}
	}
	return out
}
