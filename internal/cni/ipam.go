package cni

import (
	"context"
	"path/filepath"

	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/types"
)

// Delegator runs the IPAM plugin. Each call passes the whole network
// configuration, as the CNI spec asks of delegation.
type Delegator interface {
	// Add, Del, Check, Status and GC run the command with the calling
	// process's CNI environment.
	Add(ctx context.Context, plugin string, conf []byte) (types.Result, error)
	Del(ctx context.Context, plugin string, conf []byte) error
	Check(ctx context.Context, plugin string, conf []byte) error
	Status(ctx context.Context, plugin string, conf []byte) error
	GC(ctx context.Context, plugin string, conf []byte) error
	// DelAttachment runs DEL for another attachment than the current one
	// (GC of a stale attachment).
	DelAttachment(ctx context.Context, plugin string, conf []byte, att Attachment) error
}

// Attachment names one attachment of a container to the network.
type Attachment struct {
	ContainerID string
	IfName      string
	// Args is CNI_ARGS for the call (K8S_POD_NAMESPACE=...;K8S_POD_NAME=...).
	Args string
}

// ExecDelegator finds the IPAM plugin in CNI_PATH and executes it.
type ExecDelegator struct {
	// LookupEnv reads CNI_PATH (the environment the plugin was run with).
	LookupEnv func(string) (string, bool)
}

func (d ExecDelegator) path() []string {
	p, _ := d.LookupEnv("CNI_PATH")
	return filepath.SplitList(p)
}

func (d ExecDelegator) find(plugin string) (string, error) {
	path, err := invoke.FindInPath(plugin, d.path())
	if err != nil {
		return "", types.NewError(types.ErrInvalidNetworkConfig,
			"not found in CNI_PATH: install it there or fix ipam.type", err.Error())
	}
	return path, nil
}

func (d ExecDelegator) exec(ctx context.Context, plugin, cmd string, conf []byte) error {
	path, err := d.find(plugin)
	if err != nil {
		return err
	}
	return invoke.ExecPluginWithoutResult(ctx, path, conf, &invoke.DelegateArgs{Command: cmd}, nil)
}

// Add runs ADD and returns the IPAM result.
func (d ExecDelegator) Add(ctx context.Context, plugin string, conf []byte) (types.Result, error) {
	path, err := d.find(plugin)
	if err != nil {
		return nil, err
	}
	return invoke.ExecPluginWithResult(ctx, path, conf, &invoke.DelegateArgs{Command: "ADD"}, nil)
}

// Del runs DEL.
func (d ExecDelegator) Del(ctx context.Context, plugin string, conf []byte) error {
	return d.exec(ctx, plugin, "DEL", conf)
}

// Check runs CHECK.
func (d ExecDelegator) Check(ctx context.Context, plugin string, conf []byte) error {
	return d.exec(ctx, plugin, "CHECK", conf)
}

// Status runs STATUS.
func (d ExecDelegator) Status(ctx context.Context, plugin string, conf []byte) error {
	return d.exec(ctx, plugin, "STATUS", conf)
}

// GC runs GC.
func (d ExecDelegator) GC(ctx context.Context, plugin string, conf []byte) error {
	return d.exec(ctx, plugin, "GC", conf)
}

// DelAttachment runs DEL for att with no network namespace.
func (d ExecDelegator) DelAttachment(ctx context.Context, plugin string, conf []byte, att Attachment) error {
	path, err := d.find(plugin)
	if err != nil {
		return err
	}
	args := &invoke.Args{
		Command:       "DEL",
		ContainerID:   att.ContainerID,
		IfName:        att.IfName,
		PluginArgsStr: att.Args,
	}
	args.Path, _ = d.LookupEnv("CNI_PATH")
	return invoke.ExecPluginWithoutResult(ctx, path, conf, args, nil)
}
