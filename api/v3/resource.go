package v3

import (
	"fmt"
	"reflect"
	"sort"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// Group and version of every resource in this package.
const (
	Group      = "projectcalico.org"
	Version    = "v3"
	APIVersion = Group + "/" + Version
)

// +kubebuilder:object:generate=false

// Resource is any top-level projectcalico.org/v3 object: it has TypeMeta,
// ObjectMeta and can deep-copy itself.
type Resource interface {
	runtime.Object
	metav1.Object
}

// +kubebuilder:object:generate=false

// ResourceList is the List form of a kind (IPPoolList, ...).
type ResourceList interface {
	runtime.Object
	metav1.ListInterface
	// GetItems returns pointers to copies of the list's items.
	GetItems() []Resource
	// SetItems replaces the list's items; each must be of the list's kind.
	SetItems([]Resource) error
}

// +kubebuilder:object:generate=false

// KindInfo describes one kind: its names, scope and constructors.
type KindInfo struct {
	Kind       string   // "GlobalNetworkPolicy"
	ListKind   string   // "GlobalNetworkPolicyList"
	Plural     string   // "globalnetworkpolicies" (also the etcd key segment)
	Namespaced bool     // true for NetworkPolicy, NetworkSet, WorkloadEndpoint, staged namespaced kinds
	Aliases    []string // lower-case short names accepted by calicoctl ("gnp")
	New        func() Resource
	NewList    func() ResourceList
}

var (
	kinds     []KindInfo
	kindIndex = map[string]int{}       // lower-case kind, list kind, plural, alias -> index
	typeIndex = map[reflect.Type]int{} // Go type of New() -> index
)

// register adds a kind to the registry. It is called from init functions in
// this package only.
func register(k KindInfo) {
	kinds = append(kinds, k)
	i := len(kinds) - 1
	typeIndex[reflect.TypeOf(k.New())] = i
	names := append([]string{k.Kind, k.ListKind, k.Plural}, k.Aliases...)
	for _, n := range names {
		n = strings.ToLower(n)
		if prev, ok := kindIndex[n]; ok && prev != i {
			panic(fmt.Sprintf("v3: kind name %q registered twice", n))
		}
		kindIndex[n] = i
	}
}

// LookupKind finds a kind by its name, list name, plural or alias, ignoring case.
func LookupKind(name string) (KindInfo, bool) {
	i, ok := kindIndex[strings.ToLower(name)]
	if !ok {
		return KindInfo{}, false
	}
	return kinds[i], true
}

// Kinds returns every registered kind, sorted by Kind.
func Kinds() []KindInfo {
	out := append([]KindInfo(nil), kinds...)
	sort.Slice(out, func(a, b int) bool { return out[a].Kind < out[b].Kind })
	return out
}

// KindOf returns the kind of a resource from its Go type (not from TypeMeta,
// which may be empty).
func KindOf(r Resource) (KindInfo, bool) {
	i, ok := typeIndex[reflect.TypeOf(r)]
	if !ok {
		return KindInfo{}, false
	}
	return kinds[i], true
}
