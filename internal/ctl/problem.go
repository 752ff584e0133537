package ctl

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"

	v3 "github.com/calico-go/calico/api/v3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// problem is one thing wrong with the input, named the way a user finds it:
// `document 2 (GlobalNetworkPolicy "deny-all"): spec.ingress[0]...: ...`.
type problem struct {
	where string // "document 2"; empty for resources named on the command line
	pos   int
	kind  string
	name  string // "name" or "namespace/name"
	err   error
}

// problemFor describes an error about a decoded document. A Kubernetes
// NetworkPolicy document is named as the user wrote it, not by the Calico
// policy it became.
func problemFor(d doc, err error) problem {
	var m metav1.Object
	var kind string
	if d.k8s != nil {
		m, kind = d.k8s, k8sKindLabel
	} else {
		m, kind = d.res, kindOf(d.res)
	}
	name := m.GetName()
	if ns := m.GetNamespace(); ns != "" && name != "" {
		name = ns + "/" + name
	}
	return problem{where: d.where, pos: d.pos, kind: kind, name: name, err: err}
}

// lines renders the problem, one line per field error.
func (p problem) lines() []string {
	id := p.kind
	if p.kind != "" && p.name != "" {
		id = fmt.Sprintf("%s %q", p.kind, p.name)
	}
	// Resources named on the command line have no "where": their errors
	// name them already, except field errors, which get the kind and name.
	prefix := p.where
	if prefix != "" && id != "" {
		prefix += " (" + id + ")"
	}
	var ve *v3.ValidationError
	if errors.As(p.err, &ve) && len(ve.Errors) > 0 {
		if prefix == "" {
			prefix = id
		}
		out := make([]string, 0, len(ve.Errors))
		for _, fe := range ve.Errors {
			msg := fe.Detail
			if fe.Field != "" {
				msg = fe.Field + ": " + msg
			}
			out = append(out, join(prefix, msg))
		}
		return out
	}
	return []string{join(prefix, errorText(p.err))}
}

func join(prefix, msg string) string {
	if prefix == "" {
		return msg
	}
	return prefix + ": " + msg
}

// errorText flattens an error for a one-line message.
func errorText(err error) string {
	return strings.ReplaceAll(err.Error(), "\n", "; ")
}

// sortProblems orders problems as their documents appear in the input.
func sortProblems(ps []problem) {
	sort.SliceStable(ps, func(i, j int) bool { return ps[i].pos < ps[j].pos })
}

func isDir(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.IsDir()
}
