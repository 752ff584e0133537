// Package ctl implements calicoctl's commands: create, apply, replace,
// delete, get, label, patch, validate, convert, ipam (show, check, release,
// split, configure), datastore migrate lock|unlock, version and completion,
// with Calico's flags, messages and output formats. Every command reads from an
// injected stdin and writes to injected stdout/stderr, so Run is what both
// the cmd/calicoctl binary and the unit tests call.
//
// Writes from files are all-or-nothing as far as can be checked up front:
// every document is decoded, defaulted and validated, and then checked
// against the datastore (presence, resourceVersion, immutable fields,
// tiers), before the first write.
//
// Files may also hold Kubernetes networking.k8s.io/v1 NetworkPolicy
// documents, mixed with Calico ones: they stand for the Calico policy
// knp.default.<name> that Calico enforces for them (internal/k8sconv), which
// is what create, apply, replace, delete, get and validate work on and what
// convert prints. This is how a cluster without Kubernetes (etcd datastore)
// is given Kubernetes policy YAML.
package ctl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/calico-go/calico/internal/buildinfo"
	"github.com/calico-go/calico/pkg/client"
	"github.com/spf13/cobra"
)

// Runner runs calicoctl command lines. The zero value talks to the datastore
// named by the configuration file or environment.
type Runner struct {
	// NewClient connects to the datastore; nil means client.New.
	NewClient func(ctx context.Context, cfg client.Config) (*client.Client, error)
	// LookupEnv reads environment variables; nil means os.LookupEnv.
	LookupEnv func(string) (string, bool)
	// Version and GitCommit override the build stamp when non-empty.
	Version, GitCommit string
}

// Run runs one calicoctl command line (without the program name) and returns
// the process exit code.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return (&Runner{}).Run(ctx, args, stdin, stdout, stderr)
}

// exitError carries an exit code for an error whose message was already
// printed.
type exitError struct{ code int }

func (e *exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// errPrinted is returned by commands that printed their own failure
// message; Run exits 1 without printing more.
var errPrinted = &exitError{code: 1}

// Run runs one command line and returns the exit code. It never panics: a
// panic inside a command is reported as an internal error.
func (r *Runner) Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) (code int) {
	defer func() {
		if p := recover(); p != nil {
			fmt.Fprintf(stderr, "Internal error: %v\nThis is a bug in calicoctl; please report it with the command you ran.\n", p)
			code = 1
		}
	}()
	a := &app{runner: r, stdin: stdin, stdout: stdout, stderr: stderr,
		log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	root := a.rootCommand()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if a.client != nil {
		_ = a.client.Close()
	}
	if err == nil {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	fmt.Fprintln(stderr, capitalize(err.Error()))
	if isUsageError(err) {
		fmt.Fprintln(stderr, "Run 'calicoctl --help' for usage.")
	}
	return 1
}

// app is the state of one Run.
type app struct {
	runner         *Runner
	stdin          io.Reader
	stdout, stderr io.Writer
	log            *slog.Logger

	// Global flags.
	configPath           string
	logLevel             string
	kubeContext          string
	allowVersionMismatch bool

	client *client.Client
}

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "calicoctl",
		Short: "Manage Calico resources and the Calico datastore",
		Long: `calicoctl manages Calico network and security policy, IP pools, BGP and
other Calico configuration stored in the Calico datastore.

The datastore is configured by the file given with -c (default
` + client.DefaultConfigPath + `) or, when that file does not exist, by
environment variables such as DATASTORE_TYPE and ETCD_ENDPOINTS (each may
also carry a CALICO_ prefix). With nothing configured, calicoctl uses the
etcdv3 datastore at ` + client.DefaultEtcdEndpoint + `.`,
		SilenceUsage:      true,
		SilenceErrors:     true,
		DisableAutoGenTag: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return a.setupLogging()
		},
	}
	root.CompletionOptions.DisableDefaultCmd = true
	pf := root.PersistentFlags()
	pf.StringVarP(&a.configPath, "config", "c", client.DefaultConfigPath, "path to the file containing the connection configuration in YAML or JSON format")
	pf.StringVarP(&a.logLevel, "log-level", "l", "panic", "log level: panic, fatal, error, warn, info, debug or trace")
	pf.StringVar(&a.kubeContext, "context", "", "the name of the kubeconfig context to use (Kubernetes datastore only)")
	pf.BoolVar(&a.allowVersionMismatch, "allow-version-mismatch", false, "allow a client/cluster version mismatch")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })

	root.AddCommand(
		a.writeCommand(opCreate),
		a.writeCommand(opApply),
		a.writeCommand(opReplace),
		a.deleteCommand(),
		a.getCommand(),
		a.labelCommand(),
		a.patchCommand(),
		a.validateCommand(),
		a.convertCommand(),
		a.ipamCommand(),
		a.datastoreCommand(),
		a.nodeCommand(),
		a.versionCommand(),
		a.completionCommand(root),
	)
	return root
}

// usageError marks a wrong command line.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func isUsageError(err error) bool {
	var ue usageError
	if errors.As(err, &ue) {
		return true
	}
	msg := err.Error()
	return strings.HasPrefix(msg, "unknown command") || strings.HasPrefix(msg, "unknown flag") ||
		strings.HasPrefix(msg, "unknown shorthand flag") || strings.Contains(msg, "accepts ") ||
		strings.Contains(msg, "arg(s)")
}

func (a *app) setupLogging() error {
	var lvl slog.Level
	switch strings.ToLower(a.logLevel) {
	case "panic", "fatal":
		lvl = slog.LevelError + 4
	case "error":
		lvl = slog.LevelError
	case "warn", "warning":
		lvl = slog.LevelWarn
	case "info":
		lvl = slog.LevelInfo
	case "debug", "trace":
		lvl = slog.LevelDebug
	default:
		return usageError{fmt.Errorf("invalid log level %q: use panic, fatal, error, warn, info, debug or trace", a.logLevel)}
	}
	a.log = slog.New(slog.NewTextHandler(a.stderr, &slog.HandlerOptions{Level: lvl}))
	return nil
}

func (a *app) lookupEnv(name string) (string, bool) {
	if a.runner.LookupEnv != nil {
		return a.runner.LookupEnv(name)
	}
	return os.LookupEnv(name)
}

func (a *app) version() (version, commit string) {
	version, commit = buildinfo.Version, buildinfo.GitCommit
	if a.runner.Version != "" {
		version = a.runner.Version
	}
	if a.runner.GitCommit != "" {
		commit = a.runner.GitCommit
	}
	return version, commit
}

// loadConfig reads the client configuration (file or environment).
func (a *app) loadConfig(cmd *cobra.Command) (client.Config, error) {
	explicit := cmd.Flags().Changed("config")
	return client.LoadConfigWith(a.configPath, explicit, a.lookupEnv)
}

// connect returns the datastore client, connecting on first use, and checks
// the cluster version unless checkVersion is false or
// --allow-version-mismatch is set.
func (a *app) connect(cmd *cobra.Command, checkVersion bool) (*client.Client, error) {
	if a.client != nil {
		return a.client, nil
	}
	cfg, err := a.loadConfig(cmd)
	if err != nil {
		return nil, err
	}
	newClient := a.runner.NewClient
	if newClient == nil {
		newClient = client.New
	}
	c, err := newClient(cmd.Context(), cfg)
	if err != nil {
		return nil, fmt.Errorf("failed to connect to the datastore: %w", err)
	}
	a.client = c
	a.log.Debug("connected to datastore", "datastore_type", cfg.Spec.DatastoreType, "etcd_endpoints", cfg.Spec.EtcdEndpoints)
	if checkVersion && !a.allowVersionMismatch {
		if err := a.checkVersion(cmd.Context(), c); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// fail prints a failure message (first line capitalised) and returns
// errPrinted.
func (a *app) fail(format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	fmt.Fprintln(a.stderr, capitalize(msg))
	return errPrinted
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
