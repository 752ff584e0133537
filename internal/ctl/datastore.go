package ctl

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/google/uuid"
	"github.com/spf13/cobra"

	v3 "github.com/calico-go/calico/api/v3"
	"github.com/calico-go/calico/internal/datastore"
	"github.com/calico-go/calico/pkg/client"
)

// datastoreCommand is `calicoctl datastore migrate lock|unlock`.
func (a *app) datastoreCommand() *cobra.Command {
	ds := &cobra.Command{
		Use:   "datastore",
		Short: "Calico datastore management",
		RunE:  subcommandArgs,
	}
	migrate := &cobra.Command{
		Use:   "migrate",
		Short: "Lock and unlock the datastore for migrations and IPAM repairs",
		RunE:  subcommandArgs,
	}
	migrate.AddCommand(
		a.lockCommand(true, "lock", "Lock the datastore",
			`Lock the datastore to prepare it for a migration or an IPAM repair: set
datastoreReady to false in ClusterInformation "default" (created when
missing). While it is locked the CNI plugins refuse to add or delete
workloads, so that IPAM does not change under "calicoctl ipam release
--from-report" or "calicoctl ipam split". Resources can still be created
and updated.`),
		a.lockCommand(false, "unlock", "Unlock the datastore",
			`Unlock the datastore once the migration or repair is done: set
datastoreReady back to true in ClusterInformation "default".`),
	)
	ds.AddCommand(migrate)
	return ds
}

// subcommandArgs is the RunE of a command group: it is reached only
// without a subcommand or with an unknown one.
func subcommandArgs(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return usageError{fmt.Errorf("%s needs a subcommand: %s", cmd.CommandPath(), subcommandNames(cmd))}
	}
	return usageError{fmt.Errorf("unknown command %q for %q; use one of: %s", args[0], cmd.CommandPath(), subcommandNames(cmd))}
}

func subcommandNames(cmd *cobra.Command) string {
	var names []string
	for _, c := range cmd.Commands() {
		if c.IsAvailableCommand() {
			names = append(names, c.Name())
		}
	}
	return strings.Join(names, ", ")
}

func (a *app) lockCommand(lock bool, use, short, long string) *cobra.Command {
	return &cobra.Command{
		Use:   use,
		Short: short,
		Long:  long,
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.connect(cmd, true)
			if err != nil {
				return err
			}
			what := map[bool]string{true: "locking", false: "unlocking"}[lock]
			if err := a.setDatastoreReady(cmd.Context(), c, !lock); err != nil {
				return fmt.Errorf("error updating ClusterInformation for %s: %w", what, err)
			}
			fmt.Fprintf(a.stdout, "Datastore %sed.\n", use)
			return nil
		},
	}
}

// setDatastoreReady sets ClusterInformation "default" datastoreReady,
// creating the object (with a new cluster GUID) when it is missing, and
// retrying when someone else updates it at the same time.
func (a *app) setDatastoreReady(ctx context.Context, c *client.Client, ready bool) error {
	for attempt := 0; ; attempt++ {
		ci, err := client.Get[*v3.ClusterInformation](ctx, c, "", "default")
		switch {
		case errors.Is(err, client.ErrNotFound):
			ci = v3.NewClusterInformation()
			ci.Name = "default"
			version, _ := a.version()
			ci.Spec = v3.ClusterInformationSpec{ClusterGUID: strings.ReplaceAll(uuid.NewString(), "-", ""), CalicoVersion: version}
			ci.Spec.DatastoreReady = &ready
			_, err = c.Create(ctx, ci)
		case err != nil:
			return err
		default:
			ci.Spec.DatastoreReady = &ready
			_, err = c.Update(ctx, ci)
		}
		if err == nil || attempt >= 5 || !(errors.Is(err, datastore.ErrConflict) || errors.Is(err, datastore.ErrAlreadyExists)) {
			return err
		}
	}
}

// datastoreLock reads ClusterInformation "default": whether the datastore
// is locked (datastoreReady false) and the object itself (nil when absent).
func datastoreLock(ctx context.Context, c *client.Client) (bool, *v3.ClusterInformation, error) {
	ci, err := client.Get[*v3.ClusterInformation](ctx, c, "", "default")
	switch {
	case errors.Is(err, client.ErrNotFound):
		return false, nil, nil
	case err != nil:
		return false, nil, fmt.Errorf("error while checking if datastore was locked: %w", err)
	}
	return ci.Spec.DatastoreReady != nil && !*ci.Spec.DatastoreReady, ci, nil
}
