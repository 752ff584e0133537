package v3

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// doc builds a YAML document; spec is YAML flow style ("{cidr: 10.0.0.0/16}")
// and may be empty.
func doc(kind, name, ns, spec string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: projectcalico.org/v3\nkind: %s\nmetadata:\n  name: %q\n", kind, name)
	if ns != "" {
		fmt.Fprintf(&b, "  namespace: %q\n", ns)
	}
	if spec != "" {
		fmt.Fprintf(&b, "spec: %s\n", spec)
	}
	return b.String()
}

func decodeOneT(t *testing.T, y string) Resource {
	t.Helper()
	rs, err := Decode([]byte(y))
	if err != nil {
		t.Fatalf("Decode: %v\n%s", err, y)
	}
	if len(rs) != 1 {
		t.Fatalf("Decode: got %d resources, want 1", len(rs))
	}
	return rs[0]
}

// vcase is a validation case: the document, and the fields that must be
// reported (none means valid).
type vcase struct {
	name   string
	doc    string
	fields []string
}

// runValidate decodes, defaults and validates each case and checks the set
// of reported fields exactly.
func runValidate(t *testing.T, cases []vcase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := decodeOneT(t, tc.doc)
			Default(r)
			err := Validate(r)
			got := errorFields(t, err)
			want := slices.Clone(tc.fields)
			slices.Sort(want)
			want = slices.Compact(want)
			if !slices.Equal(got, want) {
				t.Errorf("fields = %q, want %q\nerror: %v", got, want, err)
			}
		})
	}
}

// errorFields returns the sorted distinct fields of a *ValidationError.
func errorFields(t *testing.T, err error) []string {
	t.Helper()
	if err == nil {
		return nil
	}
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("error %v is %T, not *ValidationError", err, err)
	}
	if !errors.Is(err, ErrInvalid) {
		t.Errorf("errors.Is(err, ErrInvalid) = false")
	}
	var out []string
	for _, fe := range ve.Errors {
		if fe.Detail == "" {
			t.Errorf("field %s has no detail", fe.Field)
		}
		out = append(out, fe.Field)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// repeat returns n copies of s joined by sep.
func repeat(s, sep string, n int) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = s
	}
	return strings.Join(parts, sep)
}
