package meta

import (
	"errors"
	"strings"
	"testing"

	v3 "github.com/calico-go/calico/api/v3"
	"github.com/calico-go/calico/internal/datastore"
)

func TestKind(t *testing.T) {
	cases := []struct {
		k    datastore.Key
		name bool
		ok   bool
	}{
		{datastore.Key{Kind: "IPPool", Name: "p"}, true, true},
		{datastore.Key{Kind: "ippool", Name: "p"}, true, true}, // registry lookup ignores case
		{datastore.Key{Kind: "IPPool", Namespace: "ns", Name: "p"}, true, false},
		{datastore.Key{Kind: "IPPool", Namespace: "ns"}, false, true}, // ignored for lists
		{datastore.Key{Kind: "NetworkPolicy", Name: "p"}, true, false},
		{datastore.Key{Kind: "NetworkPolicy", Namespace: "ns", Name: "p"}, true, true},
		{datastore.Key{Kind: "NetworkPolicy", Namespace: "a/b"}, false, false},
		{datastore.Key{Kind: "IPPool", Name: "a/b"}, true, false},
		{datastore.Key{Kind: "IPPool"}, true, false},
		{datastore.Key{Kind: ""}, false, false},
		{datastore.Key{Kind: "Nope", Name: "x"}, true, false},
	}
	for _, c := range cases {
		_, err := Kind(c.k, c.name)
		if (err == nil) != c.ok {
			t.Errorf("Kind(%+v, %v) = %v, want ok=%v", c.k, c.name, err, c.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalidKey) {
			t.Errorf("Kind(%+v): %v does not wrap ErrInvalidKey", c.k, err)
		}
	}
}

func TestEncodeDecode(t *testing.T) {
	ki, _ := v3.LookupKind("NetworkPolicy")
	r := ki.New()
	r.SetName("n")
	r.SetNamespace("ns")
	r.SetResourceVersion("42")
	c := Copy(r, ki)
	StampCreate(c)
	b, err := Encode(c)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "resourceVersion") || !strings.Contains(string(b), `"kind":"NetworkPolicy"`) ||
		!strings.Contains(string(b), `"apiVersion":"projectcalico.org/v3"`) {
		t.Errorf("encoded %s", b)
	}
	if c.GetResourceVersion() != "42" || r.GetUID() != "" {
		t.Errorf("Encode/Copy changed the inputs: rv %q, original uid %q", c.GetResourceVersion(), r.GetUID())
	}
	// The key wins over the value's own name and namespace.
	d, err := Decode(ki, datastore.Key{Kind: ki.Kind, Namespace: "other", Name: "renamed"}, b, "7")
	if err != nil {
		t.Fatal(err)
	}
	if d.GetName() != "renamed" || d.GetNamespace() != "other" || d.GetResourceVersion() != "7" || d.GetUID() != c.GetUID() {
		t.Errorf("decoded %s/%s rv %s uid %s", d.GetNamespace(), d.GetName(), d.GetResourceVersion(), d.GetUID())
	}
	if _, err := DecodeOrError("get", ki, datastore.Key{}, []byte("{"), "1"); err == nil {
		t.Error("DecodeOrError accepted bad JSON")
	}
}

func TestSort(t *testing.T) {
	ki, _ := v3.LookupKind("NetworkPolicy")
	var items []v3.Resource
	for _, nn := range [][2]string{{"b", "a"}, {"a-b", "a"}, {"a", "z"}, {"a", "b"}} {
		r := ki.New()
		r.SetNamespace(nn[0])
		r.SetName(nn[1])
		items = append(items, r)
	}
	Sort(items)
	var got []string
	for _, r := range items {
		got = append(got, r.GetNamespace()+"/"+r.GetName())
	}
	if strings.Join(got, " ") != "a/b a/z a-b/a b/a" {
		t.Errorf("Sort: %v", got)
	}
}
