package ctl

import (
	"errors"
	"fmt"
	"strings"

	v3 "github.com/calico-go/calico/api/v3"
	"github.com/calico-go/calico/internal/datastore"
	"github.com/spf13/cobra"
)

type getOpts struct {
	fileOpts
	output        string
	allNamespaces bool
	allNSShort    bool
	export        bool
}

func (a *app) getCommand() *cobra.Command {
	var o getOpts
	cmd := &cobra.Command{
		Use:   "get (KIND [NAME...] | -f FILENAME)",
		Short: "Show resources of a kind, resources by name, or those described in a file",
		Long: `Show all resources of a kind, specific ones by name, or those described in a
file. Output is a table (ps, the default, or wide), YAML, JSON, names,
custom columns or a Go template. YAML and JSON of several resources is a
List, which create, apply and replace accept back.

Output formats (-o):
  ps                   table with the main columns (default)
  wide                 table with more columns
  yaml, json           the resources (a List when several are shown)
  name                 kind/name, one per line
  custom-columns=SPEC  table of HEADER:.json.path pairs, e.g.
                       custom-columns=NAME:.metadata.name,CIDR:.spec.cidr
  go-template=TPL      a Go template over the JSON form of the output
  go-template-file=F   the same, with the template read from a file`,
		Example: "  calicoctl get ippools -o wide\n  calicoctl get networkpolicy -A\n  calicoctl get gnp allow-dns -o yaml\n" +
			"  calicoctl get ippool -o custom-columns=NAME:.metadata.name,CIDR:.spec.cidr",
		ValidArgsFunction: kindCompletion,
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.runGet(cmd, args, o)
		},
	}
	o.fileOpts.register(cmd, "get")
	f := cmd.Flags()
	f.StringVarP(&o.output, "output", "o", "ps", "output format: ps, wide, yaml, json, name, custom-columns=..., go-template=..., go-template-file=...")
	f.BoolVarP(&o.allNamespaces, "all-namespaces", "A", false, "show namespaced resources of every namespace")
	f.BoolVarP(&o.allNSShort, "all-namespaces-a", "a", false, "same as -A")
	_ = f.MarkHidden("all-namespaces-a")
	f.BoolVar(&o.export, "export", false, "leave out fields the datastore sets (resourceVersion, uid, creationTimestamp)")
	return cmd
}

func (a *app) runGet(cmd *cobra.Command, args []string, o getOpts) error {
	format, err := parseOutput(o.output)
	if err != nil {
		return err
	}
	allNS := o.allNamespaces || o.allNSShort
	var set printSet
	var missing []error
	switch {
	case o.filename != "" && len(args) > 0:
		return usageError{errors.New("give either KIND [NAME...] or -f, not both")}
	case o.filename != "":
		set, missing, err = a.getFromFile(cmd, o)
	case len(args) == 0:
		return usageError{fmt.Errorf("get needs a KIND (or -f FILENAME); valid resource types are: %s", kindNames())}
	default:
		set, missing, err = a.getByKind(cmd, args, o.namespace, allNS)
	}
	if err != nil {
		return err
	}
	if o.export {
		for _, r := range set.items {
			exportResource(r)
		}
		set.revision = ""
	}
	if len(set.items) > 0 || len(missing) == 0 {
		if err := a.printGet(set, format); err != nil {
			return err
		}
	}
	if len(missing) > 0 {
		for _, e := range missing {
			fmt.Fprintf(a.stderr, "Failed to get resources: %s\n", errorText(e))
		}
		return errPrinted
	}
	return nil
}

// printGet prints the set; tables of mixed kinds are printed one per kind.
func (a *app) printGet(set printSet, format outputFormat) error {
	if (format.kind != "ps" && format.kind != "wide") || set.listKind != "" || len(set.items) == 0 {
		return set.print(a.stdout, format)
	}
	var order []string
	groups := map[string][]v3.Resource{}
	for _, r := range set.items {
		k := kindOf(r)
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], r)
	}
	for i, k := range order {
		if i > 0 {
			fmt.Fprintln(a.stdout)
		}
		ki, _ := v3.LookupKind(k)
		sub := printSet{items: groups[k], kind: ki, listKind: ki.ListKind, allNS: true}
		if err := sub.print(a.stdout, format); err != nil {
			return err
		}
	}
	return nil
}

// getByKind lists a kind or gets resources by name.
func (a *app) getByKind(cmd *cobra.Command, args []string, ns string, allNS bool) (printSet, []error, error) {
	ki, err := lookupKind(args[0])
	if err != nil {
		return printSet{}, nil, err
	}
	names := args[1:]
	if allNS && len(names) > 0 && ki.Namespaced {
		return printSet{}, nil, usageError{errors.New("a resource cannot be retrieved by name across all namespaces; use -n NAMESPACE")}
	}
	if ki.Namespaced && ns == "" && !allNS {
		ns = "default"
	}
	if !ki.Namespaced {
		ns, allNS = "", false
	}
	c, err := a.connect(cmd, true)
	if err != nil {
		return printSet{}, nil, err
	}
	set := printSet{kind: ki, listKind: ki.ListKind, allNS: allNS}
	ctx := cmd.Context()
	if len(names) == 0 {
		res, err := c.List(ctx, ki.Kind, ns)
		if err != nil {
			return printSet{}, nil, fmt.Errorf("failed to list %s resources: %w", ki.Kind, err)
		}
		set.items, set.revision, set.asList = res.Items, res.Revision, true
		return set, nil, nil
	}
	var missing []error
	for _, n := range names {
		r, err := c.Get(ctx, datastore.Key{Kind: ki.Kind, Namespace: ns, Name: n})
		if err != nil {
			missing = append(missing, err)
			continue
		}
		set.items = append(set.items, r)
	}
	set.asList = len(names) > 1
	return set, missing, nil
}

// getFromFile gets the resources a file names.
func (a *app) getFromFile(cmd *cobra.Command, o getOpts) (printSet, []error, error) {
	docs, bad, err := a.loadDocs(o.fileOpts, true)
	if err != nil {
		return printSet{}, nil, err
	}
	if len(bad) > 0 {
		return printSet{}, nil, a.report(fmt.Sprintf("Failed to get resources: %d invalid document(s)", len(bad)), bad)
	}
	c, err := a.connect(cmd, true)
	if err != nil {
		return printSet{}, nil, err
	}
	var set printSet
	var missing []error
	for _, d := range docs {
		r, err := c.Get(cmd.Context(), datastore.KeyOf(d.res))
		if err != nil {
			missing = append(missing, err)
			continue
		}
		set.items = append(set.items, r)
	}
	if k := singleKind(docs); k != "" {
		set.kind, _ = v3.LookupKind(k)
		set.listKind = set.kind.ListKind
	}
	set.asList = len(docs) > 1
	set.allNS = true
	return set, missing, nil
}

func kindNames() string {
	var names []string
	for _, k := range v3.Kinds() {
		names = append(names, strings.ToLower(k.Kind))
	}
	return strings.Join(names, ", ")
}
