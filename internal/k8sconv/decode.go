package k8sconv

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	networkingv1 "k8s.io/api/networking/v1"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

const (
	// APIVersion is the apiVersion of the Kubernetes documents read here.
	APIVersion = "networking.k8s.io/v1"
	// Kind is the kind of the Kubernetes documents read here.
	Kind = "NetworkPolicy"
	// ListKind is the list kind of Kind.
	ListKind = Kind + "List"
)

// Handles reports whether a document with this apiVersion and kind is read
// by Decode.
func Handles(apiVersion, kind string) bool {
	return apiVersion == APIVersion && (kind == Kind || kind == ListKind)
}

// Decode parses one YAML or JSON document holding a networking.k8s.io/v1
// NetworkPolicy or NetworkPolicyList (whose items may omit apiVersion and
// kind). Decoding is strict, like v3.Decode: an unknown or duplicate field
// is an error. Decode neither defaults nor validates; NetworkPolicy does.
func Decode(data []byte) ([]*networkingv1.NetworkPolicy, error) {
	js, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		return nil, fmt.Errorf("parse document: %w", err)
	}
	js = bytes.TrimSpace(js)
	if len(js) == 0 || js[0] != '{' {
		return nil, errors.New("document is not an object")
	}
	var head typeHead
	if err := json.Unmarshal(js, &head); err != nil {
		return nil, fmt.Errorf("read apiVersion and kind: %w", err)
	}
	if err := head.check(); err != nil {
		return nil, err
	}
	if head.Kind == Kind {
		np, err := decodeOne(js)
		if err != nil {
			return nil, err
		}
		return []*networkingv1.NetworkPolicy{np}, nil
	}
	var list struct {
		APIVersion string            `json:"apiVersion"`
		Kind       string            `json:"kind"`
		Metadata   json.RawMessage   `json:"metadata,omitempty"`
		Items      []json.RawMessage `json:"items"`
	}
	if err := strictUnmarshal(js, &list, ListKind); err != nil {
		return nil, err
	}
	out := make([]*networkingv1.NetworkPolicy, 0, len(list.Items))
	for i, item := range list.Items {
		np, err := decodeItem(item)
		if err != nil {
			return nil, fmt.Errorf("items[%d]: %w", i, err)
		}
		out = append(out, np)
	}
	return out, nil
}

type typeHead struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
}

func (h typeHead) check() error {
	switch {
	case h.APIVersion == "":
		return errors.New("apiVersion is missing")
	case h.APIVersion != APIVersion:
		return fmt.Errorf("apiVersion %q is not %q", h.APIVersion, APIVersion)
	case h.Kind == "":
		return errors.New("kind is missing")
	case h.Kind != Kind && h.Kind != ListKind:
		return fmt.Errorf("kind %q of %s is not supported: only %s is converted to Calico policy", h.Kind, APIVersion, Kind)
	}
	return nil
}

// decodeItem decodes a list item, filling in apiVersion and kind when
// absent.
func decodeItem(item json.RawMessage) (*networkingv1.NetworkPolicy, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(item, &fields); err != nil || fields == nil {
		return nil, errors.New("item is not an object")
	}
	head := typeHead{APIVersion: APIVersion, Kind: Kind}
	if v, ok := fields["apiVersion"]; ok {
		head.APIVersion = ""
		_ = json.Unmarshal(v, &head.APIVersion)
	}
	if v, ok := fields["kind"]; ok {
		head.Kind = ""
		_ = json.Unmarshal(v, &head.Kind)
	}
	if err := head.check(); err != nil {
		return nil, err
	}
	if head.Kind != Kind {
		return nil, fmt.Errorf("kind %q in a %s", head.Kind, ListKind)
	}
	return decodeOne(item)
}

func decodeOne(js []byte) (*networkingv1.NetworkPolicy, error) {
	np := &networkingv1.NetworkPolicy{}
	if err := strictUnmarshal(js, np, Kind); err != nil {
		return nil, err
	}
	np.APIVersion, np.Kind = APIVersion, Kind
	return np, nil
}

func strictUnmarshal(js []byte, v any, kind string) error {
	strict, err := sigsjson.UnmarshalStrict(js, v)
	if err != nil {
		return fmt.Errorf("decode %s: %s", kind, strings.TrimPrefix(err.Error(), "json: "))
	}
	if len(strict) > 0 {
		msgs := make([]string, len(strict))
		for i, e := range strict {
			msgs[i] = strings.TrimPrefix(e.Error(), "json: ")
		}
		return fmt.Errorf("decode %s: %s", kind, strings.Join(msgs, "; "))
	}
	return nil
}
