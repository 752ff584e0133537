package ctl

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	v3 "github.com/calico-go/calico/api/v3"
	"github.com/calico-go/calico/internal/datastore"
	"github.com/calico-go/calico/pkg/client"
	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// operation describes one of the batch write commands.
type operation struct {
	name string // "create"
	past string // "created"
	op   client.Op
}

var (
	opCreate  = operation{"create", "created", client.OpCreate}
	opApply   = operation{"apply", "applied", client.OpApply}
	opReplace = operation{"replace", "replaced", client.OpReplace}
	opDelete  = operation{"delete", "deleted", client.OpDelete}
	// opValidate validates like a create but writes nothing.
	opValidate = operation{"validate", "validated", client.OpCreate}
)

// fileOpts are the flags shared by commands that read -f.
type fileOpts struct {
	filename  string
	recursive bool
	skipEmpty bool
	namespace string
}

func (o *fileOpts) register(cmd *cobra.Command, verb string) {
	f := cmd.Flags()
	f.StringVarP(&o.filename, "filename", "f", "", "file, directory or - (standard input) holding the resources to "+verb)
	f.BoolVarP(&o.recursive, "recursive", "R", false, "process the directory given with -f recursively")
	f.BoolVar(&o.skipEmpty, "skip-empty", false, "do not fail when a file or directory given with -f holds no resources")
	f.StringVarP(&o.namespace, "namespace", "n", "", "namespace of namespaced resources (NetworkPolicy, NetworkSet, WorkloadEndpoint, ...); default \"default\"")
}

// batchOpts adjust how a batch is written.
type batchOpts struct {
	skipExists    bool // create: treat present resources as done
	skipNotExists bool // delete: treat absent resources as done
}

func (a *app) writeCommand(op operation) *cobra.Command {
	var o fileOpts
	var b batchOpts
	desc := map[string]string{
		"create":  "Create resources from a file, a directory or standard input. A resource that already exists is an error (see --skip-exists).",
		"apply":   "Create resources that do not exist and replace those that do, from a file, a directory or standard input.",
		"replace": "Replace existing resources from a file, a directory or standard input. The complete resource must be given; a resourceVersion in the input must match the stored one.",
	}[op.name]
	cmd := &cobra.Command{
		Use:   op.name + " -f FILENAME",
		Short: strings.SplitN(desc, ".", 2)[0],
		Long: desc + `

YAML (several documents separated by '---' lines) and JSON (one object, a List
kind or an array) are accepted. Every document is validated before anything
is written: if any is invalid, nothing is ` + op.past + `.

Kubernetes networking.k8s.io/v1 NetworkPolicy documents may be mixed in: each
stands for the Calico NetworkPolicy knp.default.<name> it converts to (see
calicoctl convert), which is what is ` + op.past + `.`,
		Example: fmt.Sprintf("  calicoctl %s -f ./policy.yaml\n  cat policy.json | calicoctl %s -f -", op.name, op.name),
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.filename == "" {
				return usageError{errors.New("missing -f/--filename")}
			}
			docs, bad, err := a.loadDocs(o, false)
			if err != nil {
				return err
			}
			return a.runBatch(cmd, op, docs, bad, b)
		},
	}
	o.register(cmd, op.name)
	if op.op == client.OpCreate {
		cmd.Flags().BoolVar(&b.skipExists, "skip-exists", false, "skip over, and treat as successful, resources that already exist")
	}
	return cmd
}

func (a *app) deleteCommand() *cobra.Command {
	var o fileOpts
	var b batchOpts
	cmd := &cobra.Command{
		Use:   "delete (KIND NAME... | -f FILENAME)",
		Short: "Delete resources by kind and name, or those described in a file",
		Long: `Delete resources given by kind and name, or those described in a file, a
directory or standard input. A resource that does not exist is an error
(see --skip-not-exists); in that case nothing is deleted. A Kubernetes
networking.k8s.io/v1 NetworkPolicy document deletes the Calico policy
knp.default.<name> made from it.`,
		Example:           "  calicoctl delete -f ./policy.yaml\n  calicoctl delete policy foo bar -n prod\n  calicoctl delete ippool pool1 --skip-not-exists",
		ValidArgsFunction: kindCompletion,
		RunE: func(cmd *cobra.Command, args []string) error {
			var docs []doc
			var bad []problem
			switch {
			case o.filename != "" && len(args) > 0:
				return usageError{errors.New("give either KIND NAME... or -f, not both")}
			case o.filename != "":
				var err error
				docs, bad, err = a.loadDocs(o, true)
				if err != nil {
					return err
				}
			case len(args) < 2:
				return usageError{errors.New("delete needs KIND and at least one NAME, or -f FILENAME")}
			default:
				ki, err := lookupKind(args[0])
				if err != nil {
					return err
				}
				for _, name := range args[1:] {
					docs = append(docs, doc{res: newResource(ki, o.namespace, name)})
				}
			}
			// Delete tiers after the policies they may hold.
			sort.SliceStable(docs, func(i, j int) bool {
				return kindOf(docs[i].res) != v3.KindTier && kindOf(docs[j].res) == v3.KindTier
			})
			for _, d := range docs {
				d.res.SetResourceVersion("")
			}
			return a.runBatch(cmd, opDelete, docs, bad, b)
		},
	}
	o.register(cmd, "delete")
	cmd.Flags().BoolVarP(&b.skipNotExists, "skip-not-exists", "s", false, "skip over, and treat as successful, resources that do not exist")
	return cmd
}

// loadDocs reads and decodes -f. Documents that do not decode, or whose
// namespace contradicts -n, are returned as problems. Kubernetes
// NetworkPolicy documents are converted into their Calico policy (see
// convertDoc); with identityOnly (delete, get) only its name is worked out.
func (a *app) loadDocs(o fileOpts, identityOnly bool) ([]doc, []problem, error) {
	files, err := readInputs(a.stdin, o.filename, o.recursive)
	if err != nil {
		return nil, nil, err
	}
	if len(files) == 0 && !o.skipEmpty {
		return nil, nil, fmt.Errorf("%w in directory %s (use --skip-empty to allow empty input)", errNoInput, o.filename)
	}
	docs, bad, err := decodeInputs(files, o.skipEmpty, len(files) > 1 || o.filename != "-" && isDir(o.filename))
	if err != nil {
		return nil, nil, err
	}
	var problems []problem
	for _, b := range bad {
		problems = append(problems, problem{where: b.where, pos: b.pos, kind: b.kind, name: b.name, err: b.err})
	}
	var good []doc
	for _, d := range docs {
		var err error
		if d.k8s != nil {
			err = setNamespace(d.k8s, o.namespace)
			if err == nil {
				err = convertDoc(&d, identityOnly)
			}
		} else {
			err = applyNamespace(d.res, o.namespace)
		}
		if err != nil {
			problems = append(problems, problemFor(d, err))
			continue
		}
		good = append(good, d)
	}
	return good, problems, nil
}

// applyNamespace sets -n on namespaced resources that have no namespace,
// and refuses one that names another namespace.
func applyNamespace(r v3.Resource, ns string) error {
	ki, ok := v3.KindOf(r)
	if !ok || !ki.Namespaced {
		return nil
	}
	return setNamespace(r, ns)
}

// setNamespace gives an object of a namespaced kind the namespace -n, or
// "default" without -n, unless it names its own; one that names another
// namespace than -n is refused.
func setNamespace(m metav1.Object, ns string) error {
	switch {
	case ns == "" && m.GetNamespace() == "":
		m.SetNamespace("default")
	case ns == "":
	case m.GetNamespace() == "":
		m.SetNamespace(ns)
	case m.GetNamespace() != ns:
		return fmt.Errorf("metadata.namespace %q does not match --namespace %q", m.GetNamespace(), ns)
	}
	return nil
}

// runBatch validates every document, checks them all against the
// datastore, and only then writes them in order.
func (a *app) runBatch(cmd *cobra.Command, op operation, docs []doc, bad []problem, b batchOpts) error {
	what := describeBatch(docs, len(bad))
	prepared, bad := validateBatch(op, docs, bad)
	if len(bad) > 0 {
		sortProblems(bad)
		return a.report(fmt.Sprintf("Failed to %s %s: %d invalid resource(s), nothing was %s",
			op.name, what, len(bad), op.past), bad)
	}
	if len(docs) == 0 {
		fmt.Fprintf(a.stdout, "Successfully %s 0 resource(s)\n", op.past)
		return nil
	}
	c, err := a.connect(cmd, true)
	if err != nil {
		return err
	}
	skip, bad, hint := checkBatch(cmd.Context(), c, op, docs, prepared, b)
	if len(bad) > 0 {
		if len(docs) == 1 {
			return a.report(fmt.Sprintf("Failed to %s %s:", op.name, what), bad)
		}
		return a.report(fmt.Sprintf("Failed to %s %s: %d of %d resource(s) cannot be %s, nothing was %s%s",
			op.name, what, len(bad), len(docs), op.past, op.past, hint), bad)
	}
	return a.writeBatch(cmd.Context(), c, op, docs, prepared, skip, b)
}

// validateBatch defaults and validates every document (deletes need only
// their identity) and adds the invalid ones to bad.
func validateBatch(op operation, docs []doc, bad []problem) ([]v3.Resource, []problem) {
	resources := make([]v3.Resource, len(docs))
	for i, d := range docs {
		resources[i] = d.res
	}
	if op.op == client.OpDelete {
		return resources, bad
	}
	prepared, err := client.ValidateAll(resources)
	var be *client.BatchError
	if errors.As(err, &be) {
		for _, it := range be.Items {
			bad = append(bad, problemFor(docs[it.Index], it.Err))
		}
	} else if err != nil {
		bad = append(bad, problem{err: err})
	}
	return prepared, bad
}

// checkBatch checks every resource against the datastore. It returns which
// to skip (--skip-exists, --skip-not-exists), the problems, and a hint for
// the most common one.
func checkBatch(ctx context.Context, c *client.Client, op operation, docs []doc, prepared []v3.Resource, b batchOpts) (skip []bool, bad []problem, hint string) {
	skip = make([]bool, len(docs))
	for i, ch := range c.CheckAll(ctx, op.op, prepared) {
		switch {
		case ch.Err == nil:
		case b.skipExists && errors.Is(ch.Err, client.ErrAlreadyExists):
			skip[i] = true
		case b.skipNotExists && errors.Is(ch.Err, client.ErrNotFound):
			skip[i] = true
		default:
			bad = append(bad, problemFor(docs[i], ch.Err))
			switch {
			case op.op == client.OpCreate && errors.Is(ch.Err, client.ErrAlreadyExists):
				hint = " (use --skip-exists to skip existing resources, or apply to update them)"
			case op.op == client.OpDelete && errors.Is(ch.Err, client.ErrNotFound):
				hint = " (use --skip-not-exists to skip missing resources)"
			case op.op == client.OpReplace && errors.Is(ch.Err, client.ErrNotFound):
				hint = " (use create or apply for new resources)"
			}
		}
	}
	return skip, bad, hint
}

// writeBatch writes the checked resources in order and reports success, or
// how far it got before an error (something changed since the checks).
func (a *app) writeBatch(ctx context.Context, c *client.Client, op operation, docs []doc, prepared []v3.Resource, skip []bool, b batchOpts) error {
	for i, r := range prepared {
		if skip[i] {
			continue
		}
		err := write(ctx, c, op.op, r)
		switch {
		case err == nil:
			continue
		case b.skipExists && errors.Is(err, client.ErrAlreadyExists),
			b.skipNotExists && errors.Is(err, client.ErrNotFound):
			continue
		}
		p := problemFor(docs[i], err)
		if i > 0 {
			fmt.Fprintf(a.stdout, "Partial success: %s the first %d out of %d %sresources:\n", op.past, i, len(docs), kindQuote(docs))
			fmt.Fprintf(a.stderr, "Hit error: %s\n", strings.Join(p.lines(), "\n"))
			return errPrinted
		}
		return a.report(fmt.Sprintf("Failed to %s %s:", op.name, describeBatch(docs, 0)), []problem{p})
	}
	fmt.Fprintf(a.stdout, "Successfully %s %d %sresource(s)\n", op.past, len(docs), kindQuote(docs))
	return nil
}

// write performs one write of a batch.
func write(ctx context.Context, c *client.Client, op client.Op, r v3.Resource) error {
	var err error
	switch op {
	case client.OpCreate:
		_, err = c.Create(ctx, r)
	case client.OpReplace:
		_, err = c.Update(ctx, r)
	case client.OpApply:
		_, err = c.Apply(ctx, r)
	case client.OpDelete:
		_, err = c.Delete(ctx, datastore.KeyOf(r), r.GetResourceVersion())
	default:
		err = fmt.Errorf("unknown operation %q", op)
	}
	return err
}

// report prints a header and one line per problem on stderr.
func (a *app) report(header string, problems []problem) error {
	var lines []string
	for _, p := range problems {
		lines = append(lines, p.lines()...)
	}
	if strings.HasSuffix(header, ":") && len(lines) == 1 {
		fmt.Fprintf(a.stderr, "%s %s\n", header, lines[0])
		return errPrinted
	}
	fmt.Fprintln(a.stderr, header)
	for _, l := range lines {
		fmt.Fprintln(a.stderr, l)
	}
	return errPrinted
}

// singleKind returns the kind shared by every document, or "".
func singleKind(docs []doc) string {
	kind := ""
	for _, d := range docs {
		k := kindOf(d.res)
		if kind != "" && k != kind {
			return ""
		}
		kind = k
	}
	return kind
}

// kindQuote is "'IPPool' " when every document has that kind, else "".
func kindQuote(docs []doc) string {
	if k := singleKind(docs); k != "" {
		return "'" + k + "' "
	}
	return ""
}

// describeBatch names what a command works on: "'IPPool' resource",
// "'IPPool' resources" or "resources".
func describeBatch(docs []doc, undecoded int) string {
	if undecoded > 0 || singleKind(docs) == "" {
		return "resources"
	}
	if len(docs) == 1 {
		return kindQuote(docs) + "resource"
	}
	return kindQuote(docs) + "resources"
}

func kindOf(r v3.Resource) string {
	if ki, ok := v3.KindOf(r); ok {
		return ki.Kind
	}
	return fmt.Sprintf("%T", r)
}

// lookupKind resolves a kind name, plural or alias given on the command line.
func lookupKind(name string) (v3.KindInfo, error) {
	n := strings.ToLower(name)
	n = strings.TrimSuffix(n, "."+v3.Group)
	if ki, ok := v3.LookupKind(n); ok {
		return ki, nil
	}
	var names []string
	for _, k := range v3.Kinds() {
		names = append(names, strings.ToLower(k.Kind))
	}
	return v3.KindInfo{}, usageError{fmt.Errorf("resource type %q is not supported; valid resource types are: %s", name, strings.Join(names, ", "))}
}

// newResource makes an empty resource of a kind with a name (and, for
// namespaced kinds, a namespace: ns or "default").
func newResource(ki v3.KindInfo, ns, name string) v3.Resource {
	r := ki.New()
	r.SetName(name)
	if ki.Namespaced {
		if ns == "" {
			ns = "default"
		}
		r.SetNamespace(ns)
	}
	return r
}

func noArgs(_ *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageError{fmt.Errorf("unexpected argument %q (resources are read with -f)", args[0])}
	}
	return nil
}
