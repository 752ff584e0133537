// Package meta holds what every datastore backend does the same way: check
// a Key against the v3 kind registry, copy resources so that callers' objects
// are never modified, stamp uid and creationTimestamp on create, encode and
// decode the stored JSON form, and sort list results.
package meta

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/google/uuid"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	v3 "github.com/calico-go/calico/api/v3"
	"github.com/calico-go/calico/internal/datastore"
)

// ErrInvalidKey is the cause of errors about keys that cannot name a stored
// resource (unknown kind, missing namespace, bad name).
var ErrInvalidKey = errors.New("invalid resource key")

// Kind resolves k.Kind in the registry. When name is true the key must also
// carry a usable name (and a namespace for namespaced kinds). A namespace on a
// cluster-scoped kind is an error for single-object keys and ignored for
// list/watch keys.
func Kind(k datastore.Key, name bool) (v3.KindInfo, error) {
	ki, ok := v3.LookupKind(k.Kind)
	if !ok || k.Kind == "" {
		return v3.KindInfo{}, fmt.Errorf("%w: unknown kind %q", ErrInvalidKey, k.Kind)
	}
	if strings.Contains(k.Namespace, "/") {
		return v3.KindInfo{}, fmt.Errorf("%w: namespace %q contains '/'", ErrInvalidKey, k.Namespace)
	}
	if !name {
		return ki, nil
	}
	switch {
	case k.Name == "":
		return v3.KindInfo{}, fmt.Errorf("%w: %s needs a name", ErrInvalidKey, ki.Kind)
	case strings.Contains(k.Name, "/"):
		return v3.KindInfo{}, fmt.Errorf("%w: name %q contains '/'", ErrInvalidKey, k.Name)
	case ki.Namespaced && k.Namespace == "":
		return v3.KindInfo{}, fmt.Errorf("%w: %s is namespaced and needs a namespace", ErrInvalidKey, ki.Kind)
	case !ki.Namespaced && k.Namespace != "":
		return v3.KindInfo{}, fmt.Errorf("%w: %s is cluster-scoped and takes no namespace (got %q)", ErrInvalidKey, ki.Kind, k.Namespace)
	}
	return ki, nil
}

// Normalize returns the Key with Kind replaced by the canonical kind name (so
// that aliases such as "ippool" or "gnp" print and compare the same) and, for
// cluster-scoped kinds, the namespace dropped.
func Normalize(k datastore.Key, ki v3.KindInfo) datastore.Key {
	k.Kind = ki.Kind
	if !ki.Namespaced {
		k.Namespace = ""
	}
	return k
}

// KeyOf returns the key of r and its kind, checked.
func KeyOf(r v3.Resource) (datastore.Key, v3.KindInfo, error) {
	if r == nil {
		return datastore.Key{}, v3.KindInfo{}, fmt.Errorf("%w: nil resource", ErrInvalidKey)
	}
	ki, ok := v3.KindOf(r)
	if !ok {
		return datastore.Key{}, v3.KindInfo{}, fmt.Errorf("%w: unregistered resource type %T", ErrInvalidKey, r)
	}
	k := datastore.Key{Kind: ki.Kind, Namespace: r.GetNamespace(), Name: r.GetName()}
	if _, err := Kind(k, true); err != nil {
		return k, ki, err
	}
	return k, ki, nil
}

// Copy deep-copies r and sets its TypeMeta from the registry.
func Copy(r v3.Resource, ki v3.KindInfo) v3.Resource {
	c := r.DeepCopyObject().(v3.Resource)
	SetTypeMeta(c, ki)
	return c
}

// SetTypeMeta sets apiVersion and kind.
func SetTypeMeta(r v3.Resource, ki v3.KindInfo) {
	r.GetObjectKind().SetGroupVersionKind(schema.GroupVersionKind{Group: v3.Group, Version: v3.Version, Kind: ki.Kind})
}

// StampCreate sets a fresh uid and the creation time (to the second, as the
// JSON form keeps it) on r.
func StampCreate(r v3.Resource) {
	r.SetUID(types.UID(uuid.NewString()))
	r.SetCreationTimestamp(metav1.Now().Rfc3339Copy())
}

// KeepImmutable copies uid and creationTimestamp from stored to r.
func KeepImmutable(r, stored v3.Resource) {
	r.SetUID(stored.GetUID())
	r.SetCreationTimestamp(stored.GetCreationTimestamp())
}

// Encode returns the stored JSON form of r: the whole object without
// resourceVersion. r itself is not modified.
func Encode(r v3.Resource) ([]byte, error) {
	rv := r.GetResourceVersion()
	if rv != "" {
		r.SetResourceVersion("")
		defer r.SetResourceVersion(rv)
	}
	b, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("encode %T: %w", r, err)
	}
	return b, nil
}

// Decode parses a stored value of kind ki. The key's namespace and name win
// over whatever the value says, and resourceVersion is set to rv.
func Decode(ki v3.KindInfo, k datastore.Key, value []byte, rv string) (v3.Resource, error) {
	r := ki.New()
	if err := json.Unmarshal(value, r); err != nil {
		return nil, fmt.Errorf("decode stored %s: %w", k, err)
	}
	SetTypeMeta(r, ki)
	r.SetName(k.Name)
	if ki.Namespaced {
		r.SetNamespace(k.Namespace)
	} else {
		r.SetNamespace("")
	}
	r.SetResourceVersion(rv)
	return r, nil
}

// Sort orders resources by namespace, then name.
func Sort(items []v3.Resource) {
	slices.SortFunc(items, func(a, b v3.Resource) int {
		if c := cmp.Compare(a.GetNamespace(), b.GetNamespace()); c != 0 {
			return c
		}
		return cmp.Compare(a.GetName(), b.GetName())
	})
}

// DecodeOrError is Decode with a failure reported as a *datastore.Error of op.
func DecodeOrError(op string, ki v3.KindInfo, k datastore.Key, value []byte, rv string) (v3.Resource, error) {
	r, err := Decode(ki, k, value, rv)
	if err != nil {
		return nil, &datastore.Error{Op: op, Key: k, Err: err}
	}
	return r, nil
}
