package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// cli runs calico-lab command lines. up is Up, replaceable in tests.
type cli struct {
	env    Env
	stdin  io.Reader
	stdout io.Writer
	name   string
	up     func(context.Context, Env, UpOptions) (*Matrix, error)
	// lookupEnv reads NameEnv (os.LookupEnv).
	lookupEnv func(string) (string, bool)
	code      int // exit code set by exec
}

// NameEnv names the lab when --name is not given, so that scripts such as
// examples/three-tier/workloads.sh work with any lab.
const NameEnv = "CALICO_LAB_NAME"

// Main runs one calico-lab command line (without the program name) and
// returns the process exit code.
func Main(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	c := &cli{env: Env{Out: stderr}, stdin: stdin, stdout: stdout, up: Up, lookupEnv: os.LookupEnv}
	return c.run(ctx, args, stderr)
}

func (c *cli) run(ctx context.Context, args []string, stderr io.Writer) int {
	root := c.command()
	root.SetArgs(args)
	root.SetIn(c.stdin)
	root.SetOut(c.stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	switch {
	case err == nil:
		return c.code
	case errors.Is(err, ErrInvalid) || errors.Is(err, errUsage):
		fmt.Fprintf(stderr, "calico-lab: %v\n", err)
		return 2
	default:
		fmt.Fprintf(stderr, "calico-lab: %v\n", err)
		return 1
	}
}

var errUsage = errors.New("usage")

func (c *cli) command() *cobra.Command {
	root := &cobra.Command{
		Use:   "calico-lab",
		Short: "A multi-host Calico made of network namespaces on this machine",
		Long: `calico-lab builds a whole Calico cluster on one Linux machine: hosts and
workloads are network namespaces, and everything in them is the real product
(the datastore, calico-node with its policy engine and BGP, the calico and
calico-ipam CNI plugins, the kernel dataplane, real packets).

  calico-lab up --example three-tier && calico-lab matrix
  eval "$(calico-lab env)"; calicoctl get workloadendpoints -A
  calico-lab down

It needs root. State, logs and sockets live in /run/calico-lab/<name>.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	name := DefaultName
	if v, ok := c.lookupEnv(NameEnv); ok && v != "" {
		name = v
	}
	root.PersistentFlags().StringVar(&c.name, "name", name, "the lab's name (default $"+NameEnv+", else \""+DefaultName+"\"); labs with different names run side by side")
	root.PersistentFlags().StringVar(&c.env.RunDir, "run-dir", DefaultRunDir, "where labs keep their state")
	_ = root.PersistentFlags().MarkHidden("run-dir")
	root.AddCommand(c.upCmd(), c.downCmd(), c.statusCmd(), c.matrixCmd(), c.addWorkloadCmd(), c.deleteWorkloadCmd(),
		c.addHostCmd(), c.deleteHostCmd(), c.execCmd(), c.envCmd(), c.serveCmd(), c.datastoreCmd())
	return root
}

func (c *cli) upCmd() *cobra.Command {
	o := DefaultUpOptions()
	var pool, underlay, etcd string
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Build a lab and wait until it is ready",
		Long: `Builds a lab: the datastore (an embedded etcd, or --etcd-endpoints), an underlay
bridge, one namespace per host running calico-node, and workloads attached by
the calico CNI plugin, each with an HTTP/TCP/UDP echo server on port 80. Returns
when nodes are registered, policy is in sync, BGP sessions are established and
every workload is reachable. Without --example every workload reaches every
other; --example three-tier adds the walkthrough's workloads and policies
(examples/three-tier, docs/lab.md) and prints the matrix.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.Name = c.name
			var err error
			if o.Pool, err = netip.ParsePrefix(pool); err != nil {
				return fmt.Errorf("--pool %q: %v: %w", pool, err, ErrInvalid)
			}
			if o.Underlay, err = netip.ParsePrefix(underlay); err != nil {
				return fmt.Errorf("--underlay %q: %v: %w", underlay, err, ErrInvalid)
			}
			o.EtcdEndpoints = splitList(etcd)
			m, err := c.up(cmd.Context(), c.env, o)
			if err != nil {
				return err
			}
			if m != nil {
				fmt.Fprintln(c.stdout)
				return m.WriteTable(c.stdout)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.Hosts, "hosts", o.Hosts, "number of hosts (host-1 ... host-N)")
	f.IntVar(&o.WorkloadsPerHost, "workloads-per-host", o.WorkloadsPerHost, "workloads in namespace default on each host (pod-H-K)")
	f.StringVar(&o.Backend, "backend", o.Backend, "networking: bgp (routes over a BGP full mesh) or vxlan")
	f.StringVar(&o.Dataplane, "dataplane", o.Dataplane, "policy dataplane (nftables)")
	f.StringVar(&pool, "pool", o.Pool.String(), "the workloads' IP pool")
	f.StringVar(&underlay, "underlay", o.Underlay.String(), "the hosts' network")
	f.StringVar(&o.Example, "example", "", "add an example's workloads and policies: "+strings.Join(Examples(), ", "))
	f.StringVar(&etcd, "etcd-endpoints", "", "use this etcd (comma-separated URLs) instead of the lab's own")
	f.StringVar(&o.BinDir, "bin-dir", "", "directory of calico-node, calico, calico-ipam and calicoctl (default: next to calico-lab, else built)")
	f.DurationVar(&o.Timeout, "timeout", o.Timeout, "how long to wait for each stage to be ready")
	f.BoolVar(&o.KeepOnFailure, "keep-on-failure", false, "leave a lab that failed to get ready in place (with its logs) for inspection")
	return cmd
}

func (c *cli) downCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "down",
		Short: "Remove every namespace, link, process and file of the lab (also after a failed up)",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return Down(cmd.Context(), c.env, c.name) },
	}
}

// open opens the lab named by --name.
func (c *cli) open(write bool) (*Lab, error) { return Open(c.env, c.name, write) }

func (c *cli) statusCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show hosts, workloads, addresses, BGP sessions and agent health (exit 1 when unhealthy)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			l, err := c.open(false)
			if err != nil {
				return err
			}
			defer l.Close()
			if err := requireRoot(); err != nil {
				return err
			}
			st := l.Status(cmd.Context())
			if err := st.Write(c.stdout); err != nil {
				return err
			}
			if !st.Healthy() {
				return fmt.Errorf("lab %q is not healthy (see above; logs in %s)", c.name, l.st.dir)
			}
			return nil
		},
	}
}

func (c *cli) matrixCmd() *cobra.Command {
	var o MatrixOptions
	var format string
	cmd := &cobra.Command{
		Use:   "matrix",
		Short: "Probe every ordered pair of workloads with real connections and show who reaches whom",
		Long: `Connects from inside every workload to every other workload's echo server,
all at once, with a short timeout (a denied connection is dropped, so it costs
the timeout). -o json prints
{"port": 80, "protocol": "tcp", "results": [{"from": "ns/a", "to": "ns/b", "allowed": true}, ...]};
-o html prints a self-contained page with a coloured grid.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if format != "table" && format != "json" && format != "html" {
				return fmt.Errorf("-o %q: want table, json or html: %w", format, ErrInvalid)
			}
			l, err := c.open(false)
			if err != nil {
				return err
			}
			defer l.Close()
			if err := requireRoot(); err != nil {
				return err
			}
			m, err := l.Matrix(cmd.Context(), o)
			if err != nil {
				return err
			}
			switch format {
			case "json":
				return m.WriteJSON(c.stdout)
			case "html":
				return m.WriteHTML(c.stdout)
			}
			return m.WriteTable(c.stdout)
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.Port, "port", DefaultPort, "destination port")
	f.StringVar(&o.Protocol, "protocol", TCP, "tcp or udp")
	f.StringVarP(&format, "output", "o", "table", "table, json or html")
	f.DurationVar(&o.Timeout, "timeout", time.Second, "how long each probe waits for its connection (UDP: for an answer)")
	f.IntVar(&o.Parallel, "parallel", 0, "probes in flight at most (default 2048)")
	f.IntVar(&o.Rate, "rate", 0, "probes started per second at most (default 2000)")
	return cmd
}

func (c *cli) addWorkloadCmd() *cobra.Command {
	var ns, host, labels, ports string
	cmd := &cobra.Command{
		Use:   "add-workload NAME --host HOST [--namespace NS] [--labels k=v,...] [--ports 80,...]",
		Short: "Attach a workload (a pod) to a host with the calico CNI plugin",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			spec := WorkloadSpec{Namespace: ns, Name: args[0], Host: host}
			var err error
			if spec.Labels, err = ParseLabels(labels); err != nil {
				return err
			}
			if spec.Ports, err = ParsePorts(ports); err != nil {
				return err
			}
			if host == "" {
				return fmt.Errorf("--host is required: %w", ErrInvalid)
			}
			l, err := c.open(true)
			if err != nil {
				return err
			}
			defer l.Close()
			return l.AddWorkload(cmd.Context(), spec)
		},
	}
	f := cmd.Flags()
	f.StringVar(&ns, "namespace", "default", "Kubernetes namespace")
	f.StringVar(&host, "host", "", "host to run on")
	f.StringVar(&labels, "labels", "", "labels, k=v,k2=v2")
	f.StringVar(&ports, "ports", "", "ports the echo server listens on (default 80)")
	return cmd
}

func (c *cli) deleteWorkloadCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "delete-workload NAMESPACE/NAME",
		Short: "Detach a workload (CNI DEL) and remove its namespace",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			l, err := c.open(true)
			if err != nil {
				return err
			}
			defer l.Close()
			return l.DeleteWorkload(cmd.Context(), args[0])
		},
	}
}

func (c *cli) addHostCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "add-host [NAME]",
		Short: "Add a host running calico-node (default name: the next host-N)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			l, err := c.open(true)
			if err != nil {
				return err
			}
			defer l.Close()
			name := ""
			if len(args) == 1 {
				name = args[0]
			} else {
				for i := 1; ; i++ {
					if _, ok := l.state.host(fmt.Sprintf("host-%d", i)); !ok {
						name = fmt.Sprintf("host-%d", i)
						break
					}
				}
			}
			return l.AddHost(cmd.Context(), name)
		},
	}
}

func (c *cli) deleteHostCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "delete-host NAME",
		Short: "Remove a host, its workloads and its Node",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			l, err := c.open(true)
			if err != nil {
				return err
			}
			defer l.Close()
			t := time.Now()
			if err := l.DeleteHost(cmd.Context(), args[0]); err != nil {
				return err
			}
			l.out.done(t, "host %s deleted", args[0])
			return nil
		},
	}
}

func (c *cli) execCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "exec WORKLOAD|HOST -- CMD [ARGS...]",
		Short: "Run a command inside a workload's (or a host's) network namespace",
		Args:  cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if cmd.ArgsLenAtDash() != 1 {
				return fmt.Errorf("usage: calico-lab exec WORKLOAD -- CMD [ARGS...]: %w", errUsage)
			}
			l, err := c.open(false)
			if err != nil {
				return err
			}
			defer l.Close()
			if err := requireRoot(); err != nil {
				return err
			}
			c.code, err = l.Exec(cmd.Context(), args[0], args[1:], c.stdin, c.stdout, cmd.ErrOrStderr())
			return err
		},
	}
}

func (c *cli) envCmd() *cobra.Command {
	var host string
	cmd := &cobra.Command{
		Use:   "env",
		Short: `Print the shell lines that point calicoctl at the lab: eval "$(calico-lab env)"`,
		Args:  cobra.NoArgs,
		RunE: func(_ *cobra.Command, _ []string) error {
			l, err := c.open(false)
			if err != nil {
				return err
			}
			defer l.Close()
			lines, err := l.EnvLines(host)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(c.stdout, strings.Join(lines, "\n"))
			return err
		},
	}
	cmd.Flags().StringVar(&host, "host", "", "host whose BGP status `calicoctl node status` shows (default: the first)")
	return cmd
}

// serveCmd is the echo server a workload runs (re-executed by the lab).
func (c *cli) serveCmd() *cobra.Command {
	var o ServeOptions
	var ports string
	cmd := &cobra.Command{
		Use:    "serve",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var err error
			if o.Ports, err = ParsePorts(ports); err != nil {
				return err
			}
			o.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
			return Serve(cmd.Context(), o)
		},
	}
	cmd.Flags().StringVar(&o.ID, "id", "", "workload ID")
	cmd.Flags().StringVar(&o.Host, "host", "", "host name")
	cmd.Flags().StringVar(&ports, "ports", "80", "ports")
	return cmd
}

// datastoreCmd is the lab's datastore process (started by up).
func (c *cli) datastoreCmd() *cobra.Command {
	var o DatastoreOptions
	var etcd string
	cmd := &cobra.Command{
		Use:    "datastore",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.Targets = splitList(etcd)
			o.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
			return RunDatastore(cmd.Context(), o)
		},
	}
	cmd.Flags().StringVar(&o.Dir, "dir", "", "the lab's directory")
	cmd.Flags().StringVar(&o.UnderlayNS, "underlay-netns", "", "path of the underlay namespace")
	cmd.Flags().StringVar(&o.RelayListen, "relay", "", "host:port of the relay on the underlay")
	cmd.Flags().StringVar(&etcd, "etcd-endpoints", "", "external etcd endpoints")
	return cmd
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
