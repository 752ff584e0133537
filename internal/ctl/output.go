package ctl

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"text/template"

	v3 "github.com/calico-go/calico/api/v3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/yaml"
)

// outputFormat is a parsed -o value.
type outputFormat struct {
	kind     string // ps, wide, yaml, json, name, custom-columns, go-template
	columns  []customColumn
	template *template.Template
}

type customColumn struct {
	header string
	path   fieldPath
}

// parseOutput parses -o. It reads go-template-file templates.
func parseOutput(s string) (outputFormat, error) {
	name, arg, hasArg := strings.Cut(s, "=")
	switch name {
	case "", "ps":
		return outputFormat{kind: "ps"}, nil
	case "wide", "yaml", "json", "name":
		if hasArg {
			break
		}
		return outputFormat{kind: name}, nil
	case "custom-columns":
		cols, err := parseCustomColumns(arg)
		if err != nil {
			return outputFormat{}, err
		}
		return outputFormat{kind: name, columns: cols}, nil
	case "go-template", "go-template-file":
		text := arg
		if name == "go-template-file" {
			data, err := os.ReadFile(arg)
			if err != nil {
				return outputFormat{}, fmt.Errorf("read go-template-file: %w", err)
			}
			text = string(data)
		}
		if text == "" {
			return outputFormat{}, usageError{fmt.Errorf("%s needs a template: -o %s=...", name, name)}
		}
		t, err := template.New("output").Parse(text)
		if err != nil {
			return outputFormat{}, usageError{fmt.Errorf("invalid go-template: %w", err)}
		}
		return outputFormat{kind: "go-template", template: t}, nil
	}
	return outputFormat{}, usageError{fmt.Errorf("unknown output format %q: use ps, wide, yaml, json, name, custom-columns=..., go-template=... or go-template-file=...", s)}
}

func parseCustomColumns(spec string) ([]customColumn, error) {
	if spec == "" {
		return nil, usageError{errors.New("custom-columns needs a spec: -o custom-columns=NAME:.metadata.name,...")}
	}
	var cols []customColumn
	for _, part := range strings.Split(spec, ",") {
		header, path, ok := strings.Cut(part, ":")
		if !ok || header == "" {
			return nil, usageError{fmt.Errorf("invalid custom-columns entry %q: expected HEADER:.path.to.field", part)}
		}
		fp, err := parseFieldPath(path)
		if err != nil {
			return nil, usageError{fmt.Errorf("custom-columns %s: %w", header, err)}
		}
		cols = append(cols, customColumn{header: header, path: fp})
	}
	return cols, nil
}

// printSet is what get prints: items of one or several kinds, either as one
// object or as a list.
type printSet struct {
	items    []v3.Resource
	asList   bool   // print as a List even with one item
	listKind string // "IPPoolList" when every item has one kind; "" for mixed
	revision string
	allNS    bool // -A: show the NAMESPACE column
	kind     v3.KindInfo
}

// print writes the set in format f.
func (s printSet) print(w io.Writer, f outputFormat) error {
	switch f.kind {
	case "ps", "wide":
		return s.printTable(w, tableColumns(s.kind, f.kind == "wide", s.allNS && s.kind.Namespaced))
	case "custom-columns":
		cols := make([]column, len(f.columns))
		for i, c := range f.columns {
			cols[i] = column{header: c.header, paths: []fieldPath{c.path}, def: "<none>"}
		}
		return s.printTable(w, cols)
	case "name":
		for _, r := range s.items {
			fmt.Fprintf(w, "%s/%s\n", strings.ToLower(kindOf(r)), r.GetName())
		}
		return nil
	case "yaml", "json", "go-template":
		obj, err := s.object()
		if err != nil {
			return err
		}
		switch f.kind {
		case "yaml":
			out, err := yaml.Marshal(obj)
			if err != nil {
				return err
			}
			_, err = w.Write(out)
			return err
		case "json":
			out, err := json.MarshalIndent(obj, "", "  ")
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(w, "%s\n", out)
			return err
		default:
			data, err := toGeneric(obj)
			if err != nil {
				return err
			}
			if err := f.template.Execute(w, data); err != nil {
				return fmt.Errorf("go-template: %w", err)
			}
			return nil
		}
	}
	return fmt.Errorf("unknown output format %q", f.kind)
}

// object returns what yaml/json print: the single resource, the kind's List
// type, or a generic List for mixed kinds.
func (s printSet) object() (any, error) {
	for _, r := range s.items {
		setTypeMeta(r)
	}
	if !s.asList && len(s.items) == 1 {
		return s.items[0], nil
	}
	if s.listKind != "" {
		if ki, ok := v3.LookupKind(s.listKind); ok {
			l := ki.NewList()
			if err := l.SetItems(s.items); err != nil {
				return nil, err
			}
			l.SetResourceVersion(s.revision)
			return l, nil
		}
	}
	items := make([]any, len(s.items))
	for i, r := range s.items {
		items[i] = r
	}
	return map[string]any{"apiVersion": v3.APIVersion, "kind": "List", "items": items}, nil
}

func setTypeMeta(r v3.Resource) {
	if ki, ok := v3.KindOf(r); ok {
		r.GetObjectKind().SetGroupVersionKind(schema.GroupVersionKind{Group: v3.Group, Version: v3.Version, Kind: ki.Kind})
	}
}

// exportResource strips what only the datastore sets, so that the output can
// be created elsewhere.
func exportResource(r v3.Resource) {
	r.SetResourceVersion("")
	r.SetUID("")
	r.SetCreationTimestamp(metav1.Time{})
	r.SetGeneration(0)
	r.SetManagedFields(nil)
	r.SetSelfLink("")
}

// toGeneric turns a typed object into the maps and slices its JSON holds.
func toGeneric(obj any) (any, error) {
	data, err := json.Marshal(obj)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var out any
	if err := dec.Decode(&out); err != nil {
		return nil, err
	}
	return out, nil
}

// printTable prints one row per item.
func (s printSet) printTable(w io.Writer, cols []column) error {
	tw := tabwriter.NewWriter(w, 5, 1, 3, ' ', 0)
	headers := make([]string, len(cols))
	for i, c := range cols {
		headers[i] = c.header
	}
	fmt.Fprintln(tw, strings.Join(headers, "\t"))
	for _, r := range s.items {
		setTypeMeta(r)
		obj, err := toGeneric(r)
		if err != nil {
			return err
		}
		cells := make([]string, len(cols))
		for i, c := range cols {
			cells[i] = cleanCell(c.value(obj))
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	return tw.Flush()
}

func cleanCell(s string) string {
	return strings.NewReplacer("\t", " ", "\n", " ", "\r", " ").Replace(s)
}

// render turns a JSON value into table text: lists joined with ",", maps as
// sorted k=v pairs.
func render(v any) string {
	switch t := v.(type) {
	case nil:
		return ""
	case string:
		return t
	case bool:
		return strconv.FormatBool(t)
	case json.Number:
		return t.String()
	case []any:
		parts := make([]string, len(t))
		for i, e := range t {
			parts[i] = render(e)
		}
		return strings.Join(parts, ",")
	case map[string]any:
		keys := make([]string, 0, len(t))
		for k := range t {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = k + "=" + render(t[k])
		}
		return strings.Join(parts, ",")
	}
	return fmt.Sprint(v)
}

// fieldPath is a parsed JSON path like .spec.ingress[0].action or
// .spec.ipNetworks[*].
type fieldPath []pathStep

type pathStep struct {
	field string // map key, or "" for an index step
	index int    // -1 for [*]
	isIdx bool
}

func parseFieldPath(s string) (fieldPath, error) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "{") && strings.HasSuffix(s, "}") {
		s = strings.TrimSpace(s[1 : len(s)-1])
	}
	if !strings.HasPrefix(s, ".") {
		return nil, fmt.Errorf("path %q must start with '.'", s)
	}
	var out fieldPath
	rest := s
	for rest != "" {
		switch rest[0] {
		case '.':
			rest = rest[1:]
			end := strings.IndexAny(rest, ".[")
			if end < 0 {
				end = len(rest)
			}
			if end == 0 {
				if rest == "" && len(out) == 0 {
					return out, nil // "." is the whole object
				}
				return nil, fmt.Errorf("empty field name in path %q", s)
			}
			out = append(out, pathStep{field: rest[:end]})
			rest = rest[end:]
		case '[':
			end := strings.IndexByte(rest, ']')
			if end < 0 {
				return nil, fmt.Errorf("missing ']' in path %q", s)
			}
			idx := rest[1:end]
			rest = rest[end+1:]
			if idx == "*" {
				out = append(out, pathStep{isIdx: true, index: -1})
				continue
			}
			n, err := strconv.Atoi(idx)
			if err != nil || n < 0 {
				return nil, fmt.Errorf("invalid index %q in path %q", idx, s)
			}
			out = append(out, pathStep{isIdx: true, index: n})
		default:
			return nil, fmt.Errorf("unexpected %q in path %q", rest[0], s)
		}
	}
	return out, nil
}

// get evaluates the path on a generic object; ok is false when any step is
// missing.
func (p fieldPath) get(obj any) (any, bool) {
	cur := obj
	for i, st := range p {
		if st.isIdx {
			list, ok := cur.([]any)
			if !ok {
				return nil, false
			}
			if st.index < 0 {
				var all []any
				for _, e := range list {
					if v, ok := p[i+1:].get(e); ok {
						all = append(all, v)
					}
				}
				return all, len(all) > 0
			}
			if st.index >= len(list) {
				return nil, false
			}
			cur = list[st.index]
			continue
		}
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		cur, ok = m[st.field]
		if !ok {
			return nil, false
		}
	}
	return cur, true
}

func mustPath(s string) fieldPath {
	p, err := parseFieldPath(s)
	if err != nil {
		panic(err)
	}
	return p
}
