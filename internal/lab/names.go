package lab

import (
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// ErrInvalid marks bad input: a name, a label or a flag value that cannot be
// used. The message says what to fix.
var ErrInvalid = errors.New("invalid input")

// DefaultName is the lab's name when --name is not given.
const DefaultName = "lab"

// underlayRole is the second part of the underlay namespace's name; it is
// therefore not a valid host name.
const underlayRole = "underlay"

// labNameRE: lower-case letters, digits and dashes, 1-12 characters. The
// bound keeps derived names (namespaces, link aliases) short.
var labNameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?$`)

// CheckLabName reports whether name can name a lab.
func CheckLabName(name string) error {
	if !labNameRE.MatchString(name) {
		return fmt.Errorf("lab name %q: use 1-12 lower-case letters, digits or dashes, starting and ending with a letter or digit: %w", name, ErrInvalid)
	}
	return nil
}

// CheckHostName reports whether name can name a host: a DNS label (it is
// also the Calico Node's name), not "underlay".
func CheckHostName(name string) error {
	if errs := validation.IsDNS1123Label(name); len(errs) > 0 {
		return fmt.Errorf("host name %q: %s: %w", name, strings.Join(errs, "; "), ErrInvalid)
	}
	if name == underlayRole {
		return fmt.Errorf("host name %q is reserved for the lab's underlay: %w", name, ErrInvalid)
	}
	return nil
}

// CheckWorkloadName reports whether namespace and name can name a
// Kubernetes-style workload: the namespace a DNS label, the pod name a DNS
// subdomain.
func CheckWorkloadName(namespace, name string) error {
	if errs := validation.IsDNS1123Label(namespace); len(errs) > 0 {
		return fmt.Errorf("namespace %q: %s: %w", namespace, strings.Join(errs, "; "), ErrInvalid)
	}
	if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
		return fmt.Errorf("workload name %q: %s: %w", name, strings.Join(errs, "; "), ErrInvalid)
	}
	return nil
}

// ParseLabels parses "k=v,k2=v2" into Kubernetes labels. Empty input gives
// no labels. Calico's own projectcalico.org/ labels are refused: the CNI
// plugin sets them.
func ParseLabels(s string) (map[string]string, error) {
	out := map[string]string{}
	if strings.TrimSpace(s) == "" {
		return out, nil
	}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("label %q: want key=value: %w", kv, ErrInvalid)
		}
		if errs := validation.IsQualifiedName(k); len(errs) > 0 {
			return nil, fmt.Errorf("label key %q: %s: %w", k, strings.Join(errs, "; "), ErrInvalid)
		}
		if errs := validation.IsValidLabelValue(v); len(errs) > 0 {
			return nil, fmt.Errorf("label %s value %q: %s: %w", k, v, strings.Join(errs, "; "), ErrInvalid)
		}
		if strings.HasPrefix(k, "projectcalico.org/") {
			return nil, fmt.Errorf("label %q: projectcalico.org/ labels are set by Calico: %w", k, ErrInvalid)
		}
		if _, dup := out[k]; dup {
			return nil, fmt.Errorf("label %q given twice: %w", k, ErrInvalid)
		}
		out[k] = v
	}
	return out, nil
}

// FormatLabels is the inverse of ParseLabels, keys sorted.
func FormatLabels(l map[string]string) string {
	keys := slices.Sorted(maps.Keys(l))
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + l[k]
	}
	return strings.Join(parts, ",")
}

// ID names a workload as "namespace/name".
func ID(namespace, name string) string { return namespace + "/" + name }

// ParseID splits "namespace/name"; a bare name is in namespace "default".
func ParseID(s string) (namespace, name string) {
	if ns, n, ok := strings.Cut(s, "/"); ok {
		return ns, n
	}
	return "default", s
}

// Namespace names. Every namespace a lab makes starts with "<lab>." so that
// labs never collide and `down` finds them all even without state: the
// underlay is "<lab>.underlay", a host "<lab>.<host>" and a workload
// "<lab>.<namespace>.<name>" (a host name has no dot and a Kubernetes
// namespace neither, so the forms cannot be confused).
func nsPrefix(lab string) string             { return lab + "." }
func underlayNS(lab string) string           { return nsPrefix(lab) + underlayRole }
func hostNS(lab, host string) string         { return nsPrefix(lab) + host }
func workloadNS(lab, ns, name string) string { return nsPrefix(lab) + ns + "." + name }

// linkAlias is the alias (IFLA_IFALIAS) set on every link the lab makes, so
// that `ip link` shows which lab owns it.
func linkAlias(lab string) string { return "calico-lab:" + lab }

// markerEnv is set in the environment of every process a lab starts, with
// the lab's name as value; `down` finds the processes by it.
const markerEnv = "CALICO_LAB"

// plural is "1 host", "2 hosts".
func plural(n int, word string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, word)
	}
	return fmt.Sprintf("%d %ss", n, word)
}
