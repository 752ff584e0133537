package ctl

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	v3 "github.com/calico-go/calico/api/v3"
	"github.com/calico-go/calico/internal/k8sconv"
	networkingv1 "k8s.io/api/networking/v1"
	"sigs.k8s.io/yaml"
)

// doc is one resource read from the input, with the words that name where it
// came from ("document 2", "dir/a.yaml: document 1, item 3").
type doc struct {
	where string
	pos   int // order in the input, across files
	res   v3.Resource
	// k8s is the Kubernetes NetworkPolicy the document holds; res is nil
	// until loadDocs converts it into the Calico policy.
	k8s *networkingv1.NetworkPolicy
}

// docError is a document that could not be decoded.
type docError struct {
	where string
	pos   int
	kind  string // as far as it could be read, for the message
	name  string
	err   error
}

// inputFile is one file (or stdin) to read.
type inputFile struct {
	name string // "" for stdin
	data []byte
}

var errNoInput = errors.New("no resources")

// readInputs reads -f: "-" for stdin, a file, or a directory (its .yaml,
// .yml and .json files; with recursive, those of every subdirectory too).
func readInputs(stdin io.Reader, path string, recursive bool) ([]inputFile, error) {
	if path == "-" {
		data, err := io.ReadAll(stdin)
		if err != nil {
			return nil, fmt.Errorf("read standard input: %w", err)
		}
		return []inputFile{{data: data}}, nil
	}
	st, err := os.Stat(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("file %s does not exist", path)
		}
		return nil, err
	}
	if !st.IsDir() {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		return []inputFile{{name: path, data: data}}, nil
	}
	var names []string
	err = filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p != path && !recursive {
				return filepath.SkipDir
			}
			return nil
		}
		switch strings.ToLower(filepath.Ext(p)) {
		case ".yaml", ".yml", ".json":
			names = append(names, p)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read directory %s: %w", path, err)
	}
	sort.Strings(names)
	out := make([]inputFile, 0, len(names))
	for _, n := range names {
		data, err := os.ReadFile(n)
		if err != nil {
			return nil, err
		}
		out = append(out, inputFile{name: n, data: data})
	}
	return out, nil
}

// decodeInputs splits every file into documents and decodes them. It returns
// all the resources that decoded and every document that did not. Empty
// files are an error unless skipEmpty. multiFile says whether to name the
// file in each document's description.
func decodeInputs(files []inputFile, skipEmpty, multiFile bool) ([]doc, []docError, error) {
	var docs []doc
	var bad []docError
	for _, f := range files {
		prefix := ""
		if multiFile && f.name != "" {
			prefix = f.name + ": "
		}
		chunks, err := splitDocuments(f.data)
		if err != nil {
			bad = append(bad, docError{where: strings.TrimSuffix(prefix, ": "), err: err})
			continue
		}
		if len(chunks) == 0 {
			if skipEmpty {
				continue
			}
			src := "standard input"
			if f.name != "" {
				src = "file " + f.name
			}
			return nil, nil, fmt.Errorf("%w in %s (use --skip-empty to allow empty input)", errNoInput, src)
		}
		for i, c := range chunks {
			where := fmt.Sprintf("%sdocument %d", prefix, i+1)
			d, e := decodeDocument(where, c)
			for j := range d {
				d[j].pos = len(docs) + len(bad) + j
			}
			// Errors of one document sort after its good items; order
			// within a document is approximate, across documents exact.
			for j := range e {
				e[j].pos = len(docs) + len(bad) + len(d) + j
			}
			docs = append(docs, d...)
			bad = append(bad, e...)
		}
	}
	return docs, bad, nil
}

// splitDocuments cuts YAML on "---" lines, or reads a stream of JSON values
// when the input starts with '{' or '['. Empty documents (blank or only
// comments) are dropped. A JSON array or YAML sequence of objects yields one
// document per element.
func splitDocuments(data []byte) ([][]byte, error) {
	trimmed := bytes.TrimSpace(data)
	trimmed = bytes.TrimPrefix(trimmed, []byte("\xef\xbb\xbf"))
	if len(trimmed) == 0 {
		return nil, nil
	}
	var raw [][]byte
	if trimmed[0] == '{' || trimmed[0] == '[' {
		dec := json.NewDecoder(bytes.NewReader(trimmed))
		for {
			var v json.RawMessage
			err := dec.Decode(&v)
			if err == io.EOF {
				break
			}
			if err != nil {
				return nil, fmt.Errorf("invalid JSON: %w", err)
			}
			raw = append(raw, v)
		}
	} else {
		raw = splitYAML(data)
	}
	var out [][]byte
	for _, d := range raw {
		if isEmptyDocument(d) {
			continue
		}
		out = append(out, d)
	}
	return out, nil
}

// splitYAML splits on document separator lines ("---", optionally followed by
// a comment) and drops "..." end markers.
func splitYAML(data []byte) [][]byte {
	var out [][]byte
	var cur bytes.Buffer
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64*1024), 64*1024*1024)
	for sc.Scan() {
		line := sc.Text()
		if isSeparator(line) {
			out = append(out, append([]byte(nil), cur.Bytes()...))
			cur.Reset()
			continue
		}
		if strings.TrimRight(line, " \t\r") == "..." {
			continue
		}
		cur.WriteString(line)
		cur.WriteByte('\n')
	}
	return append(out, cur.Bytes())
}

func isSeparator(line string) bool {
	if !strings.HasPrefix(line, "---") {
		return false
	}
	rest := strings.TrimSpace(strings.TrimRight(line[3:], "\r"))
	return rest == "" || strings.HasPrefix(rest, "#")
}

func isEmptyDocument(d []byte) bool {
	for _, line := range strings.Split(string(d), "\n") {
		t := strings.TrimSpace(line)
		if t != "" && !strings.HasPrefix(t, "#") {
			return false
		}
	}
	return true
}

// decodeDocument decodes one document into resources. A top-level array is
// decoded element by element; a List kind is expanded by v3.Decode.
func decodeDocument(where string, data []byte) ([]doc, []docError) {
	js, err := yaml.YAMLToJSON(data)
	if err != nil {
		return nil, []docError{{where: where, err: fmt.Errorf("invalid YAML: %w", err)}}
	}
	js = bytes.TrimSpace(js)
	if kind, _ := peekIdentity(js); kind == "List" {
		// A generic List (what `get -o yaml` prints for mixed kinds).
		var l struct {
			Items json.RawMessage `json:"items"`
		}
		if err := json.Unmarshal(js, &l); err != nil || len(l.Items) == 0 || l.Items[0] != '[' {
			return nil, []docError{{where: where, kind: "List", err: errors.New("a List needs an items array")}}
		}
		js = l.Items
	}
	if len(js) > 0 && js[0] == '[' {
		var elems []json.RawMessage
		if err := json.Unmarshal(js, &elems); err != nil {
			return nil, []docError{{where: where, err: err}}
		}
		var docs []doc
		var bad []docError
		for i, e := range elems {
			d, b := decodeOne(fmt.Sprintf("%s, item %d", where, i+1), e, false)
			docs = append(docs, d...)
			bad = append(bad, b...)
		}
		return docs, bad
	}
	if len(js) == 0 || js[0] != '{' {
		return nil, []docError{{where: where, err: errors.New("not a resource: expected an object with apiVersion, kind, metadata and spec")}}
	}
	return decodeOne(where, data, true)
}

// decodeOne decodes one object (which may be a List).
func decodeOne(where string, data []byte, allowItems bool) ([]doc, []docError) {
	if apiVersion, _ := peekType(data); apiVersion == k8sconv.APIVersion {
		return decodeKubernetes(where, data, allowItems)
	}
	rs, err := v3.Decode(data)
	if err != nil {
		kind, name := peekIdentity(data)
		return nil, []docError{{where: where, kind: kind, name: name, err: err}}
	}
	kind, _ := peekIdentity(data)
	isList := strings.HasSuffix(kind, "List") || len(rs) != 1
	out := make([]doc, 0, len(rs))
	for i, r := range rs {
		w := where
		if isList && allowItems {
			w = fmt.Sprintf("%s, item %d", where, i+1)
		}
		out = append(out, doc{where: w, res: r})
	}
	return out, nil
}

// decodeKubernetes decodes a networking.k8s.io/v1 NetworkPolicy or
// NetworkPolicyList.
func decodeKubernetes(where string, data []byte, allowItems bool) ([]doc, []docError) {
	nps, err := k8sconv.Decode(data)
	if err != nil {
		kind, name := peekIdentity(data)
		if kind == k8sconv.Kind {
			kind = k8sKindLabel
		}
		return nil, []docError{{where: where, kind: kind, name: name, err: err}}
	}
	_, kind := peekType(data)
	out := make([]doc, 0, len(nps))
	for i, np := range nps {
		w := where
		if kind == k8sconv.ListKind && allowItems {
			w = fmt.Sprintf("%s, item %d", where, i+1)
		}
		out = append(out, doc{where: w, k8s: np})
	}
	return out, nil
}

// peekType reads apiVersion and kind leniently.
func peekType(data []byte) (apiVersion, kind string) {
	var v struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
	}
	if err := yaml.Unmarshal(data, &v); err != nil {
		return "", ""
	}
	return v.APIVersion, v.Kind
}

// peekIdentity reads kind and metadata.name leniently, for error messages.
func peekIdentity(data []byte) (kind, name string) {
	var v struct {
		Kind     string `json:"kind"`
		Metadata struct {
			Name      string `json:"name"`
			Namespace string `json:"namespace"`
		} `json:"metadata"`
	}
	if err := yaml.Unmarshal(data, &v); err != nil {
		return "", ""
	}
	name = v.Metadata.Name
	if v.Metadata.Namespace != "" && name != "" {
		name = v.Metadata.Namespace + "/" + name
	}
	return v.Kind, name
}
