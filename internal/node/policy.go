package node

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/calico-go/calico/internal/dataplane"
	"github.com/calico-go/calico/internal/felix"
	"github.com/calico-go/calico/internal/felixconfig"
	"github.com/calico-go/calico/pkg/client"
)

// PolicyOptions configure the policy engine that calico-node runs for its
// node.
type PolicyOptions struct {
	// Dataplane selects the namespace and table the engine programs.
	Dataplane dataplane.Options
	// ConfigFile is Felix's local file (default felix.DefaultConfigFile;
	// a missing file is fine).
	ConfigFile string
	// Env holds the FELIX_* variables, without the prefix.
	Env map[string]string
	// Registry receives the engine's metrics; nil makes a private one.
	Registry *prometheus.Registry
}

// PolicyOptionsFromEnv reads the FELIX_* variables of the process.
func PolicyOptionsFromEnv() PolicyOptions {
	return PolicyOptions{Env: felixconfig.FromEnviron(os.Environ())}
}

func runPolicy(ctx context.Context, c *client.Client, nodeName string, opts PolicyOptions, log *slog.Logger) error {
	path := opts.ConfigFile
	if path == "" {
		path = felix.DefaultConfigFile
	}
	file, err := felixconfig.ReadFile(path)
	if err != nil {
		return fmt.Errorf("felix configuration file: %w", err)
	}
	return felix.Run(ctx, felix.Options{
		NodeName:   nodeName,
		Backend:    c.Backend(),
		Dataplane:  opts.Dataplane,
		ConfigFile: file,
		ConfigEnv:  opts.Env,
		Registry:   opts.Registry,
		Logger:     log,
	})
}
