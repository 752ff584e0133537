// Package netconf reads the network configuration of Calico's CNI plugins
// ("type": "calico" and "calico-ipam"): the JSON keys Calico documents, their
// defaults, and the values derived from them and from the invocation (node
// name, MTU, workload identity and IP from CNI_ARGS, the datastore
// connection, the logger).
//
// Parse reads the configuration for the calico plugin and ParseIPAM for
// calico-ipam; each refuses only what its own plugin acts on, so that
// calico-ipam does not reject keys that only the calico plugin validates.
// The keys both read the same way are in Common, which both configuration
// types embed. The package is shared by both plugins and does no networking.
package netconf

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/containernetworking/cni/pkg/types"
)

// Defaults Calico documents.
const (
	DefaultNetworkName  = "k8s-pod-network"
	DefaultNodenameFile = "/var/lib/calico/nodename"
	DefaultMTUFile      = "/var/lib/calico/mtu"
	DefaultMTU          = 1500
	DefaultIPAMLockFile = "/var/run/calico/ipam.lock"
	// DefaultInterfacePrefix names host-side veths ("cali" + hash).
	DefaultInterfacePrefix = "cali"
)

// IPAM types the calico plugin knows how to delegate to.
const (
	IPAMCalico    = "calico-ipam"
	IPAMHostLocal = "host-local"
)

// Datastore types.
const (
	DatastoreEtcdV3     = "etcdv3"
	DatastoreKubernetes = "kubernetes"
)

// ErrInvalid marks a configuration that cannot be used. The message names
// the key and what to write instead.
var ErrInvalid = errors.New("invalid network configuration")

// NetConf is the network configuration of "type": "calico". Unknown keys are
// ignored, as the CNI spec asks of plugins.
type NetConf struct {
	types.PluginConf

	Common

	// Interface.
	MTU            int    `json:"mtu,omitempty"`
	RequireMTUFile bool   `json:"require_mtu_file,omitempty"`
	NumQueues      int    `json:"num_queues,omitempty"`
	DeviceType     string `json:"device_type,omitempty"`

	IPAM IPAM `json:"ipam"`

	// Kubernetes.
	Policy     Policy     `json:"policy,omitempty"`
	Kubernetes Kubernetes `json:"kubernetes,omitempty"`

	// Log file rotation (log_level and log_file_path are in Common).
	LogFileMaxSize  int `json:"log_file_max_size,omitempty"`
	LogFileMaxAge   int `json:"log_file_max_age,omitempty"`
	LogFileMaxCount int `json:"log_file_max_count,omitempty"`

	// Features.
	FeatureControl    FeatureControl    `json:"feature_control,omitempty"`
	ContainerSettings ContainerSettings `json:"container_settings,omitempty"`

	// Readiness.
	ReadinessGates            []string `json:"readiness_gates,omitempty"`
	PolicySetupTimeoutSeconds int      `json:"policy_setup_timeout_seconds,omitempty"`

	IncludeDefaultRoutes bool `json:"include_default_routes,omitempty"`

	// Args is the CNI "args" convention; Args.CNI.Labels label the
	// endpoint of a non-Kubernetes workload.
	Args Args `json:"args,omitempty"`
	// RuntimeConfig holds what the runtime fills in (capability arguments).
	RuntimeConfig RuntimeConfig `json:"runtimeConfig,omitempty"`
}

// IPAM is the "ipam" section. The calico plugin passes every key on
// unchanged to the IPAM plugin, which reads the whole network configuration
// itself.
type IPAM struct {
	Type string `json:"type"`
	// AssignIPv4 and AssignIPv6 are the strings "true"/"false" as Calico
	// documents them (JSON booleans are accepted too); see WantIPv4.
	AssignIPv4 json.RawMessage `json:"assign_ipv4,omitempty"`
	AssignIPv6 json.RawMessage `json:"assign_ipv6,omitempty"`
	// IPv4Pools and IPv6Pools name pools by name or CIDR (calico-ipam).
	IPv4Pools []string `json:"ipv4_pools,omitempty"`
	IPv6Pools []string `json:"ipv6_pools,omitempty"`
	// Subnet is host-local's.
	Subnet string `json:"subnet,omitempty"`
}

// Policy is the "policy" section.
type Policy struct {
	Type string `json:"type,omitempty"`
}

// Kubernetes is the "kubernetes" section.
type Kubernetes struct {
	Kubeconfig string `json:"kubeconfig,omitempty"`
	K8sAPIRoot string `json:"k8s_api_root,omitempty"`
}

// FeatureControl is the "feature_control" section.
type FeatureControl struct {
	IPAddrsNoIpam bool `json:"ip_addrs_no_ipam,omitempty"`
	FloatingIPs   bool `json:"floating_ips,omitempty"`
}

// ContainerSettings is the "container_settings" section.
type ContainerSettings struct {
	AllowIPForwarding bool `json:"allow_ip_forwarding,omitempty"`
}

// Args is the CNI "args" convention object.
type Args struct {
	CNI struct {
		Labels Labels `json:"labels,omitempty"`
	} `json:"cni,omitempty"`
}

// RuntimeConfig is the "runtimeConfig" object a runtime fills in. Labels
// may be given as a capability ("capabilities": {"labels": true}) or under
// args.cni.labels, as in the network configuration.
type RuntimeConfig struct {
	Labels Labels `json:"labels,omitempty"`
	Args   Args   `json:"args,omitempty"`
}

// Labels are key/value labels. They decode from the CNI convention
// [{"key": "app", "value": "web"}] and from a plain JSON object.
type Labels map[string]string

// UnmarshalJSON accepts a list of {key, value} or an object.
func (l *Labels) UnmarshalJSON(b []byte) error {
	var list []struct {
		Key   string `json:"key"`
		Value string `json:"value"`
	}
	if err := json.Unmarshal(b, &list); err == nil {
		m := make(Labels, len(list))
		for _, kv := range list {
			m[kv.Key] = kv.Value
		}
		*l = m
		return nil
	}
	var m map[string]string
	if err := json.Unmarshal(b, &m); err != nil {
		return errors.New(`labels must be a list of {"key": ..., "value": ...} or an object of strings`)
	}
	*l = m
	return nil
}

// Parse decodes and checks the network configuration of the calico
// plugin and fills in defaults. Errors wrap ErrInvalid.
func Parse(data []byte) (*NetConf, error) {
	c := &NetConf{}
	if err := decode(data, c); err != nil {
		return nil, err
	}
	if c.Name == "" {
		c.Name = DefaultNetworkName
	}
	c.setDefaults()
	if err := c.check(); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *NetConf) check() error {
	if err := c.Common.check(); err != nil {
		return err
	}
	if err := c.IPAM.check(); err != nil {
		return err
	}
	if c.IPAM.Type == "" {
		return invalid(`"ipam" needs a "type" (%q or %q)`, IPAMCalico, IPAMHostLocal)
	}
	if c.MTU < 0 || c.MTU > 65535 {
		return invalid("mtu %d is out of range; use 68-65535, or 0 to read %s", c.MTU, DefaultMTUFile)
	}
	if c.MTU != 0 && c.MTU < 68 {
		return invalid("mtu %d is too small; IPv4 needs at least 68", c.MTU)
	}
	if c.NumQueues < 0 {
		return invalid("num_queues %d must not be negative", c.NumQueues)
	}
	switch c.DeviceType {
	case "", "veth":
	case "netkit":
		return invalid(`device_type "netkit" is not supported by this build; use "veth"`)
	default:
		return invalid("device_type %q is unknown; use \"veth\"", c.DeviceType)
	}
	if c.IPAM.Subnet != "" && c.IPAM.Type != IPAMHostLocal {
		return invalid(`ipam.subnet is only used with "type": %q`, IPAMHostLocal)
	}
	return nil
}

// check validates the keys of the section both plugins read.
func (i IPAM) check() error {
	for _, f := range []struct {
		key string
		v   json.RawMessage
	}{{"ipam.assign_ipv4", i.AssignIPv4}, {"ipam.assign_ipv6", i.AssignIPv6}} {
		if _, err := boolString(f.key, f.v, false); err != nil {
			return err
		}
	}
	return nil
}

// WantIPv4 reports whether IPv4 addresses are requested (default true).
func (i IPAM) WantIPv4() bool { v, _ := boolString("", i.AssignIPv4, true); return v }

// WantIPv6 reports whether IPv6 addresses are requested (default false).
func (i IPAM) WantIPv6() bool { v, _ := boolString("", i.AssignIPv6, false); return v }

// boolString parses a boolean written as a JSON string ("true", any
// spelling strconv.ParseBool takes) or as a JSON boolean; an absent value
// is def. The error names key.
func boolString(key string, data json.RawMessage, def bool) (bool, error) {
	if len(data) == 0 || string(data) == "null" {
		return def, nil
	}
	var v bool
	if err := json.Unmarshal(data, &v); err == nil {
		return v, nil
	}
	var s string
	if err := json.Unmarshal(data, &s); err == nil {
		if v, err := strconv.ParseBool(strings.TrimSpace(s)); err == nil {
			return v, nil
		}
	}
	return def, invalid(`%s is %s; it must be the string "true" or "false"`, key, data)
}

// Labels returns the workload labels passed through the CNI args
// convention: runtimeConfig labels win over runtimeConfig.args.cni.labels,
// which win over the network configuration's args.cni.labels.
func (c *NetConf) Labels() map[string]string {
	out := map[string]string{}
	for _, src := range []Labels{c.Args.CNI.Labels, c.RuntimeConfig.Args.CNI.Labels, c.RuntimeConfig.Labels} {
		for k, v := range src {
			out[k] = v
		}
	}
	return out
}

// ResolveMTU returns the MTU to use: the "mtu" key, or when it is 0 the
// integer in mtuFile (DefaultMTUFile in production), or DefaultMTU when that
// file does not exist (an error with require_mtu_file).
func (c *NetConf) ResolveMTU(mtuFile string) (int, error) {
	if c.MTU != 0 {
		return c.MTU, nil
	}
	data, err := os.ReadFile(mtuFile)
	switch {
	case errors.Is(err, os.ErrNotExist) && !c.RequireMTUFile:
		return DefaultMTU, nil
	case errors.Is(err, os.ErrNotExist):
		return 0, invalid("MTU file %s does not exist and require_mtu_file is set: wait for calico-node to write it, or set \"mtu\"", mtuFile)
	case err != nil:
		return 0, fmt.Errorf("read MTU file: %w", err)
	}
	mtu, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || mtu < 68 || mtu > 65535 {
		return 0, invalid("MTU file %s holds %q, not an MTU between 68 and 65535", mtuFile, strings.TrimSpace(string(data)))
	}
	return mtu, nil
}
