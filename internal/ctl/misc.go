package ctl

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	v3 "github.com/calico-go/calico/api/v3"
	"github.com/calico-go/calico/internal/datastore"
	"github.com/calico-go/calico/pkg/client"
	"github.com/spf13/cobra"
)

func (a *app) validateCommand() *cobra.Command {
	var o fileOpts
	cmd := &cobra.Command{
		Use:   "validate -f FILENAME",
		Short: "Check resource files for correctness without touching the datastore",
		Long: `Decode, default and validate every resource in a file, a directory or
standard input, and report every problem found. Nothing is written and the
datastore is not contacted.`,
		Example: "  calicoctl validate -f ./policy.yaml\n  calicoctl validate -f ./manifests -R",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.filename == "" {
				return usageError{errors.New("missing -f/--filename")}
			}
			docs, bad, err := a.loadDocs(o, false)
			if err != nil {
				return err
			}
			what := describeBatch(docs, len(bad))
			total := len(docs) + len(bad)
			_, bad = validateBatch(opValidate, docs, bad)
			if len(bad) > 0 {
				sortProblems(bad)
				return a.report(fmt.Sprintf("Failed to validate %s: %d of %d resource(s) invalid",
					what, len(bad), total), bad)
			}
			fmt.Fprintf(a.stdout, "Successfully validated %d %sresource(s)\n", len(docs), kindQuote(docs))
			return nil
		},
	}
	o.register(cmd, "validate")
	return cmd
}

func (a *app) versionCommand() *cobra.Command {
	var clientOnly bool
	var poll time.Duration
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Show the client version and, when reachable, the cluster version",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			version, commit := a.version()
			fmt.Fprintf(a.stdout, "Client Version:    %s\n", version)
			fmt.Fprintf(a.stdout, "Git commit:        %s\n", commit)
			if clientOnly {
				return nil
			}
			c, err := a.connect(cmd, false)
			if err != nil {
				return a.fail("Unable to retrieve Cluster Version or Type: %s", errorText(err))
			}
			ctx := cmd.Context()
			last := ""
			for {
				info, err := clusterInfo(ctx, c)
				if err != nil && poll == 0 {
					return a.fail("Unable to retrieve Cluster Version or Type: %s", errorText(err))
				}
				if err == nil {
					line := fmt.Sprintf("Cluster Version:   %s\nCluster Type:      %s\n", orUnknown(info.Spec.CalicoVersion), orUnknown(info.Spec.ClusterType))
					if line != last {
						fmt.Fprint(a.stdout, line)
						last = line
					}
				}
				if poll == 0 {
					return nil
				}
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(poll):
				}
			}
		},
	}
	cmd.Flags().BoolVar(&clientOnly, "client", false, "show the client version only")
	cmd.Flags().DurationVar(&poll, "poll", 0, "keep polling the cluster version at this interval (e.g. 5s), printing it when it changes")
	return cmd
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

func clusterInfo(ctx context.Context, c *client.Client) (*v3.ClusterInformation, error) {
	r, err := c.Get(ctx, datastore.Key{Kind: v3.KindClusterInformation, Name: "default"})
	if err != nil {
		return nil, err
	}
	info, ok := r.(*v3.ClusterInformation)
	if !ok {
		return nil, fmt.Errorf("unexpected %T for ClusterInformation", r)
	}
	return info, nil
}

// checkVersion refuses to work against a cluster of another major.minor
// version. Unstamped builds and clusters that do not say their version are
// not checked.
func (a *app) checkVersion(ctx context.Context, c *client.Client) error {
	version, _ := a.version()
	cv, ok := majorMinor(version)
	if !ok {
		return nil
	}
	info, err := clusterInfo(ctx, c)
	if err != nil {
		return nil // not initialised, or unreachable: the command will tell
	}
	sv, ok := majorMinor(info.Spec.CalicoVersion)
	if !ok || sv == cv {
		return nil
	}
	return fmt.Errorf("version mismatch.\nClient Version:   %s\nCluster Version:  %s\nUse --allow-version-mismatch to override", version, info.Spec.CalicoVersion)
}

// majorMinor extracts "X.Y" from "vX.Y.Z[-...]".
func majorMinor(v string) (string, bool) {
	v = strings.TrimPrefix(strings.TrimSpace(v), "v")
	parts := strings.SplitN(v, ".", 3)
	if len(parts) < 2 {
		return "", false
	}
	if _, err := strconv.Atoi(parts[0]); err != nil {
		return "", false
	}
	minor := parts[1]
	if i := strings.IndexAny(minor, "-+"); i >= 0 {
		minor = minor[:i]
	}
	if _, err := strconv.Atoi(minor); err != nil {
		return "", false
	}
	return parts[0] + "." + minor, true
}

func (a *app) completionCommand(root *cobra.Command) *cobra.Command {
	return &cobra.Command{
		Use:   "completion bash|zsh|fish|powershell",
		Short: "Print a shell completion script",
		Long: `Print a completion script for your shell. For example:

  bash:  source <(calicoctl completion bash)
  zsh:   calicoctl completion zsh > "${fpath[1]}/_calicoctl"
  fish:  calicoctl completion fish > ~/.config/fish/completions/calicoctl.fish`,
		ValidArgs: []string{"bash", "zsh", "fish", "powershell"},
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageError{errors.New("completion needs one shell: bash, zsh, fish or powershell")}
			}
			switch args[0] {
			case "bash":
				return root.GenBashCompletionV2(a.stdout, true)
			case "zsh":
				return root.GenZshCompletion(a.stdout)
			case "fish":
				return root.GenFishCompletion(a.stdout, true)
			case "powershell":
				return root.GenPowerShellCompletionWithDesc(a.stdout)
			}
			return usageError{fmt.Errorf("unsupported shell %q: use bash, zsh, fish or powershell", args[0])}
		},
	}
}

// kindCompletion completes the KIND argument.
func kindCompletion(_ *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var out []string
	for _, k := range v3.Kinds() {
		for _, n := range append([]string{k.Plural}, k.Aliases...) {
			if strings.HasPrefix(n, strings.ToLower(toComplete)) {
				out = append(out, n)
			}
		}
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}
