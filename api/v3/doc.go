// Package v3 is the projectcalico.org/v3 resource model: the Go types of
// every Calico resource kind with Calico's JSON field names, a registry of
// kinds (LookupKind, Kinds, KindOf), strict decoding of YAML or JSON
// documents (Decode), write-time defaulting (Default) and validation
// (Validate, ValidateUpdate).
//
// The package imports nothing of this module except internal/selector,
// which it uses to check selector fields.
//
// +kubebuilder:object:generate=true
// +groupName=projectcalico.org
package v3

//go:generate go run sigs.k8s.io/controller-tools/cmd/controller-gen@v0.23.0 object paths=./...
