package ctl

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	v3 "github.com/calico-go/calico/api/v3"
	"github.com/calico-go/calico/internal/datastore"
	"github.com/calico-go/calico/pkg/client"
	jsonpatch "github.com/evanphx/json-patch/v5"
	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"
)

func (a *app) patchCommand() *cobra.Command {
	var patch, patchType, ns string
	cmd := &cobra.Command{
		Use:   "patch KIND NAME -p PATCH [-t strategic|merge|json]",
		Short: "Change fields of an existing resource with a patch",
		Long: `Patch an existing resource in place. The patch is JSON or YAML:

  merge      a JSON merge patch (RFC 7386): objects are merged, lists replaced
             and null removes a field
  json       a JSON patch (RFC 6902): a list of {op, path, value} operations
  strategic  (the default) applied as a JSON merge patch: Calico resources
             have no strategic-merge list keys, so lists are replaced

The result is validated like any other write before it is stored.`,
		Example: `  calicoctl patch node node-0 -p '{"spec":{"bgp":{"routeReflectorClusterID":"244.0.0.1"}}}'
  calicoctl patch ippool pool1 -p '{"spec":{"disabled":true}}' -t merge
  calicoctl patch gnp deny-all -t json -p '[{"op":"replace","path":"/spec/order","value":10}]'`,
		ValidArgsFunction: kindCompletion,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) != 2 {
				return usageError{errors.New("patch needs KIND and NAME")}
			}
			if patch == "" {
				return usageError{errors.New("missing -p/--patch")}
			}
			switch patchType {
			case "strategic", "merge", "json":
			default:
				return usageError{fmt.Errorf("invalid patch type %q: use strategic, merge or json", patchType)}
			}
			ki, err := lookupKind(args[0])
			if err != nil {
				return err
			}
			return a.runPatch(cmd, newResource(ki, ns, args[1]), patch, patchType)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&patch, "patch", "p", "", "the patch, as JSON or YAML")
	f.StringVarP(&patchType, "type", "t", "strategic", "patch type: strategic, merge or json")
	f.StringVarP(&ns, "namespace", "n", "", "namespace of a namespaced resource; default \"default\"")
	return cmd
}

func (a *app) runPatch(cmd *cobra.Command, target v3.Resource, patch, patchType string) error {
	k := datastore.KeyOf(target)
	what := fmt.Sprintf("'%s' resource", k.Kind)
	patchJSON, err := yaml.YAMLToJSON([]byte(patch))
	if err != nil {
		return a.fail("Failed to patch %s: the patch is neither JSON nor YAML: %v", what, err)
	}
	apply, err := patcher(patchJSON, patchType)
	if err != nil {
		return a.fail("Failed to patch %s: %v", what, err)
	}
	if patchType == "strategic" && hasList(patchJSON) {
		fmt.Fprintln(a.stderr, "Note: strategic merge patches are applied as JSON merge patches: lists in the patch replace the stored lists.")
	}
	c, err := a.connect(cmd, true)
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	for attempt := 0; ; attempt++ {
		cur, err := c.Get(ctx, k)
		if err != nil {
			return a.fail("Failed to patch %s: %s", what, errorText(err))
		}
		setTypeMeta(cur)
		doc, err := json.Marshal(cur)
		if err != nil {
			return err
		}
		out, err := apply(doc)
		if err != nil {
			return a.fail("Failed to patch %s: apply the patch: %v", what, err)
		}
		rs, err := v3.Decode(out)
		if err != nil {
			return a.fail("Failed to patch %s: the patched resource is invalid: %s", what, errorText(err))
		}
		if len(rs) != 1 || kindOf(rs[0]) != k.Kind {
			return a.fail("Failed to patch %s: the patch must not change the kind", what)
		}
		r := rs[0]
		if r.GetName() != cur.GetName() || r.GetNamespace() != cur.GetNamespace() {
			return a.fail("Failed to patch %s: the patch must not change metadata.name or metadata.namespace", what)
		}
		pinned := r.GetResourceVersion() != cur.GetResourceVersion()
		_, err = c.Update(ctx, r)
		if errors.Is(err, client.ErrConflict) && !pinned && attempt < maxRetries {
			continue
		}
		if err != nil {
			return a.report(fmt.Sprintf("Failed to patch %s:", what), []problem{{err: err}})
		}
		break
	}
	fmt.Fprintf(a.stdout, "Successfully patched 1 %s\n", what)
	return nil
}

// patcher returns the function that applies a patch of the given type to a
// JSON document.
func patcher(patchJSON []byte, patchType string) (func(doc []byte) ([]byte, error), error) {
	if patchType == "json" {
		p, err := jsonpatch.DecodePatch(patchJSON)
		if err != nil {
			return nil, fmt.Errorf("invalid JSON patch (expected a list of {\"op\", \"path\", \"value\"}): %v", err)
		}
		return p.Apply, nil
	}
	if !bytes.HasPrefix(bytes.TrimSpace(patchJSON), []byte("{")) {
		return nil, fmt.Errorf("a %s patch must be an object", patchType)
	}
	return func(doc []byte) ([]byte, error) { return jsonpatch.MergePatch(doc, patchJSON) }, nil
}

// hasList reports whether a JSON document contains an array anywhere.
func hasList(data []byte) bool {
	var v any
	if json.Unmarshal(data, &v) != nil {
		return false
	}
	var walk func(any) bool
	walk = func(v any) bool {
		switch t := v.(type) {
		case []any:
			return true
		case map[string]any:
			for _, e := range t {
				if walk(e) {
					return true
				}
			}
		}
		return false
	}
	return walk(v)
}
