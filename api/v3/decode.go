package v3

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/runtime/schema"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// Decode parses one YAML or JSON document holding a projectcalico.org/v3
// resource or List kind. A List kind (IPPoolList, ...) expands into its
// items; an item may omit apiVersion and kind, which are then taken from the
// list. Decoding is strict: a missing or wrong apiVersion, an unknown kind,
// an unknown field (reported with its path, e.g. unknown field "spec.foo")
// or a duplicate field is an error. Field names are case-sensitive.
//
// Decode neither defaults nor validates; call Default and Validate.
func Decode(data []byte) ([]Resource, error) {
	js, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		return nil, fmt.Errorf("parse document: %w", err)
	}
	js = bytes.TrimSpace(js)
	if len(js) == 0 || bytes.Equal(js, []byte("null")) {
		return nil, errors.New("empty document")
	}
	if js[0] != '{' {
		return nil, errors.New("document is not an object")
	}
	var head typeHead
	if err := json.Unmarshal(js, &head); err != nil {
		return nil, fmt.Errorf("read apiVersion and kind: %w", err)
	}
	info, isList, err := head.resolve()
	if err != nil {
		return nil, err
	}
	if !isList {
		r, err := decodeOne(info, js)
		if err != nil {
			return nil, err
		}
		return []Resource{r}, nil
	}
	return decodeList(info, js)
}

type typeHead struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
}

// resolve checks apiVersion and finds the kind by its exact name.
func (h typeHead) resolve() (KindInfo, bool, error) {
	switch {
	case h.APIVersion == "":
		return KindInfo{}, false, errors.New("apiVersion is missing")
	case h.APIVersion != APIVersion:
		return KindInfo{}, false, fmt.Errorf("apiVersion %q is not %q", h.APIVersion, APIVersion)
	case h.Kind == "":
		return KindInfo{}, false, errors.New("kind is missing")
	}
	info, ok := LookupKind(h.Kind)
	switch {
	case ok && info.Kind == h.Kind:
		return info, false, nil
	case ok && info.ListKind == h.Kind:
		return info, true, nil
	}
	return KindInfo{}, false, fmt.Errorf("unknown kind %q for apiVersion %s", h.Kind, APIVersion)
}

// decodeOne strictly decodes a single resource of a known kind.
func decodeOne(info KindInfo, js []byte) (Resource, error) {
	r := info.New()
	strict, err := sigsjson.UnmarshalStrict(js, r)
	if err != nil {
		return nil, fmt.Errorf("decode %s: %w", info.Kind, cleanJSONError(err))
	}
	if len(strict) > 0 {
		return nil, fmt.Errorf("decode %s: %w", info.Kind, joinStrict(strict))
	}
	r.GetObjectKind().SetGroupVersionKind(gvk(info.Kind))
	return r, nil
}

type listDoc struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Metadata   json.RawMessage   `json:"metadata,omitempty"`
	Items      []json.RawMessage `json:"items"`
}

func decodeList(info KindInfo, js []byte) ([]Resource, error) {
	var doc listDoc
	strict, err := sigsjson.UnmarshalStrict(js, &doc)
	if err != nil {
		return nil, fmt.Errorf("decode %s: %w", info.ListKind, cleanJSONError(err))
	}
	if len(strict) > 0 {
		return nil, fmt.Errorf("decode %s: %w", info.ListKind, joinStrict(strict))
	}
	out := make([]Resource, 0, len(doc.Items))
	for i, item := range doc.Items {
		r, err := decodeItem(info, item)
		if err != nil {
			return nil, fmt.Errorf("items[%d]: %w", i, err)
		}
		out = append(out, r)
	}
	return out, nil
}

// decodeItem fills in a list item's apiVersion and kind when absent, checks
// them when present, and decodes the item.
func decodeItem(info KindInfo, item json.RawMessage) (Resource, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(item, &fields); err != nil || fields == nil {
		return nil, errors.New("item is not an object")
	}
	var head typeHead
	_ = json.Unmarshal(item, &head)
	if _, ok := fields["apiVersion"]; !ok {
		head.APIVersion = APIVersion
		fields["apiVersion"], _ = json.Marshal(APIVersion)
	}
	if _, ok := fields["kind"]; !ok {
		head.Kind = info.Kind
		fields["kind"], _ = json.Marshal(info.Kind)
	}
	got, isList, err := head.resolve()
	if err != nil {
		return nil, err
	}
	if isList || got.Kind != info.Kind {
		return nil, fmt.Errorf("kind %q in a %s", head.Kind, info.ListKind)
	}
	js, err := json.Marshal(fields)
	if err != nil {
		return nil, err
	}
	return decodeOne(info, js)
}

// joinStrict turns strict-decoding errors (unknown or duplicate fields)
// into one error that lists them all.
func joinStrict(errs []error) error {
	msgs := make([]string, len(errs))
	for i, e := range errs {
		msgs[i] = strings.TrimPrefix(e.Error(), "json: ")
	}
	return errors.New(strings.Join(msgs, "; "))
}

// cleanJSONError drops the "json: " prefix of decoding errors, keeping the
// error itself for errors.As.
func cleanJSONError(err error) error {
	if s, ok := strings.CutPrefix(err.Error(), "json: "); ok {
		return &decodeError{msg: s, err: err}
	}
	return err
}

type decodeError struct {
	msg string
	err error
}

func (e *decodeError) Error() string { return e.msg }
func (e *decodeError) Unwrap() error { return e.err }

func gvk(kind string) schema.GroupVersionKind {
	return schema.GroupVersionKind{Group: Group, Version: Version, Kind: kind}
}
