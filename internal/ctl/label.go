package ctl

import (
	"errors"
	"fmt"
	"strings"

	v3 "github.com/calico-go/calico/api/v3"
	"github.com/calico-go/calico/internal/datastore"
	"github.com/calico-go/calico/pkg/client"
	"github.com/spf13/cobra"
)

// maxRetries bounds read-modify-write retries of label and patch when the
// resource changes under them.
const maxRetries = 5

func (a *app) labelCommand() *cobra.Command {
	var overwrite, remove bool
	var ns string
	cmd := &cobra.Command{
		Use:   "label KIND NAME (KEY=VALUE [--overwrite] | KEY --remove)",
		Short: "Add, change or remove a label of a resource",
		Long: `Set a label on an existing resource (--overwrite to change a label that is
already present with another value), or remove one with --remove.`,
		Example: "  calicoctl label workloadendpoints nginx -n default app=web\n" +
			"  calicoctl label nodes node1 cluster=frontend --overwrite\n" +
			"  calicoctl label nodes node1 cluster --remove",
		ValidArgsFunction: kindCompletion,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) != 3 {
				return usageError{errors.New("label needs KIND NAME and one KEY=VALUE (or KEY with --remove)")}
			}
			ki, err := lookupKind(args[0])
			if err != nil {
				return err
			}
			key, value, hasValue := strings.Cut(args[2], "=")
			switch {
			case key == "":
				return usageError{fmt.Errorf("invalid label %q: empty key", args[2])}
			case remove && hasValue:
				return usageError{fmt.Errorf("invalid label %q: give only the KEY with --remove", args[2])}
			case !remove && !hasValue:
				return usageError{fmt.Errorf("invalid label %q: expected KEY=VALUE, or KEY with --remove", args[2])}
			case remove && overwrite:
				return usageError{errors.New("--overwrite and --remove cannot be used together")}
			}
			return a.runLabel(cmd, newResource(ki, ns, args[1]), key, value, remove, overwrite)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&overwrite, "overwrite", false, "change the value of a label that is already present")
	f.BoolVar(&remove, "remove", false, "remove the label KEY")
	f.StringVarP(&ns, "namespace", "n", "", "namespace of a namespaced resource; default \"default\"")
	return cmd
}

func (a *app) runLabel(cmd *cobra.Command, target v3.Resource, key, value string, remove, overwrite bool) error {
	c, err := a.connect(cmd, true)
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	k := datastore.KeyOf(target)
	verb := "update"
	if remove {
		verb = "remove"
	}
	for attempt := 0; ; attempt++ {
		r, err := c.Get(ctx, k)
		if err != nil {
			return a.fail("Failed to %s label of %s: %s", verb, k, errorText(err))
		}
		labels := r.GetLabels()
		old, present := labels[key]
		switch {
		case remove && !present:
			return a.fail("Failed to remove label of %s: label %q does not exist", k, key)
		case remove:
			delete(labels, key)
		case present && old == value:
			fmt.Fprintf(a.stdout, "Label %s=%s is already set on %s\n", key, value, k)
			return nil
		case present && !overwrite:
			return a.fail("Failed to update label of %s: label %q is already present with value %q; use --overwrite to change it", k, key, old)
		default:
			if labels == nil {
				labels = map[string]string{}
			}
			labels[key] = value
		}
		r.SetLabels(labels)
		_, err = c.Update(ctx, r)
		if errors.Is(err, client.ErrConflict) && attempt < maxRetries {
			continue
		}
		if err != nil {
			return a.report(fmt.Sprintf("Failed to %s label of %s:", verb, k), []problem{{err: err}})
		}
		break
	}
	if remove {
		fmt.Fprintf(a.stdout, "Successfully removed label %s from %s\n", key, k)
	} else {
		fmt.Fprintf(a.stdout, "Successfully set label %s=%s on %s\n", key, value, k)
	}
	return nil
}
