package ctl

import (
	"errors"
	"fmt"

	v3 "github.com/calico-go/calico/api/v3"
	"github.com/calico-go/calico/internal/k8sconv"
	"github.com/spf13/cobra"
)

// k8sKindLabel names Kubernetes NetworkPolicy documents in messages, apart
// from Calico's NetworkPolicy.
const k8sKindLabel = k8sconv.APIVersion + " " + k8sconv.Kind

// convertDoc sets d.res to the Calico policy made from d's Kubernetes
// NetworkPolicy (knp.default.<name> in the same namespace). With
// identityOnly only the name and namespace are needed, so the Kubernetes
// spec is not checked: deleting or getting needs no valid spec, as for
// Calico documents.
func convertDoc(d *doc, identityOnly bool) error {
	if identityOnly {
		if d.k8s.Name == "" {
			return errors.New("metadata.name: required")
		}
		np := v3.NewNetworkPolicy()
		np.Name = k8sconv.Name(d.k8s.Name)
		np.Namespace = d.k8s.Namespace
		d.res = np
		return nil
	}
	np, err := k8sconv.NetworkPolicy(d.k8s)
	if err != nil {
		return err
	}
	d.res = np
	return nil
}

func (a *app) convertCommand() *cobra.Command {
	var o fileOpts
	var output string
	cmd := &cobra.Command{
		Use:   "convert -f FILENAME [-o yaml|json]",
		Short: "Print the Calico policy that Kubernetes NetworkPolicy documents become",
		Long: `Convert networking.k8s.io/v1 NetworkPolicy documents (and NetworkPolicyList)
into the Calico NetworkPolicy that Calico enforces for each of them, and
print the result. The Calico policy is named knp.default.<name>, sits in
tier default at order 1000 and selects only Kubernetes pods.

projectcalico.org/v3 documents in the input are printed unchanged. A
NetworkPolicy without a namespace gets the one given with -n, or "default".
Every document is checked first: if any is invalid, nothing is printed.
The datastore is not contacted.

To store the converted policies, give the Kubernetes documents to create,
apply or replace directly; delete -f removes the converted policies.`,
		Example: "  calicoctl convert -f ./k8s-policy.yaml\n  kubectl get networkpolicy -A -o yaml | calicoctl convert -f - -o json",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.filename == "" {
				return usageError{errors.New("missing -f/--filename")}
			}
			if output != "yaml" && output != "json" {
				return usageError{fmt.Errorf("unknown output format %q: use yaml or json", output)}
			}
			docs, bad, err := a.loadDocs(o, false)
			if err != nil {
				return err
			}
			if len(bad) > 0 {
				sortProblems(bad)
				return a.report(fmt.Sprintf("Failed to convert %s: %d invalid resource(s), nothing was converted",
					describeBatch(docs, len(bad)), len(bad)), bad)
			}
			if len(docs) == 0 {
				return nil
			}
			set := printSet{asList: len(docs) > 1}
			for _, d := range docs {
				set.items = append(set.items, d.res)
			}
			if k := singleKind(docs); k != "" {
				set.kind, _ = v3.LookupKind(k)
				set.listKind = set.kind.ListKind
			}
			return set.print(a.stdout, outputFormat{kind: output})
		},
	}
	o.register(cmd, "convert")
	cmd.Flags().StringVarP(&output, "output", "o", "yaml", "output format: yaml or json")
	return cmd
}
