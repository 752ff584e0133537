// Package netconf reads the network configuration of Calico's CNI plugins
// ("type": "calico" and "calico-ipam"): the JSON keys Calico documents, their
// defaults, and the values derived from them and from the invocation (node
// name, MTU, workload identity from CNI_ARGS, the datastore connection).
//
// It is shared by both plugins and does no networking.
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

	// Datastore.
	DatastoreType    string `json:"datastore_type,omitempty"`
	EtcdEndpoints    string `json:"etcd_endpoints,omitempty"`
	EtcdDiscoverySrv string `json:"etcd_discovery_srv,omitempty"`
	EtcdKeyFile      string `json:"etcd_key_file,omitempty"`
	EtcdCertFile     string `json:"etcd_cert_file,omitempty"`
	EtcdCACertFile   string `json:"etcd_ca_cert_file,omitempty"`
	// Deprecated etcd location keys (etcd_endpoints wins).
	EtcdAuthority string `json:"etcd_authority,omitempty"`
	EtcdScheme    string `json:"etcd_scheme,omitempty"`

	// Node name.
	Nodename             string `json:"nodename,omitempty"`
	NodenameFile         string `json:"nodename_file,omitempty"`
	NodenameFileOptional bool   `json:"nodename_file_optional,omitempty"`

	// Interface.
	MTU            int    `json:"mtu,omitempty"`
	RequireMTUFile bool   `json:"require_mtu_file,omitempty"`
	NumQueues      int    `json:"num_queues,omitempty"`
	DeviceType     string `json:"device_type,omitempty"`

	IPAM         IPAM   `json:"ipam"`
	IPAMLockFile string `json:"ipam_lock_file,omitempty"`

	// Kubernetes.
	Policy     Policy     `json:"policy,omitempty"`
	Kubernetes Kubernetes `json:"kubernetes,omitempty"`

	// Logging.
	LogLevel        string `json:"log_level,omitempty"`
	LogFilePath     string `json:"log_file_path,omitempty"`
	LogFileMaxSize  int    `json:"log_file_max_size,omitempty"`
	LogFileMaxAge   int    `json:"log_file_max_age,omitempty"`
	LogFileMaxCount int    `json:"log_file_max_count,omitempty"`

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

// IPAM is the "ipam" section. Every key is passed on unchanged to the IPAM
// plugin, which reads the whole network configuration itself.
type IPAM struct {
	Type string `json:"type"`
	// AssignIPv4 and AssignIPv6 are strings ("true"/"false"), as Calico
	// documents them.
	AssignIPv4 *string  `json:"assign_ipv4,omitempty"`
	AssignIPv6 *string  `json:"assign_ipv6,omitempty"`
	IPv4Pools  []string `json:"ipv4_pools,omitempty"`
	IPv6Pools  []string `json:"ipv6_pools,omitempty"`
	Subnet     string   `json:"subnet,omitempty"`
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

// Parse decodes and checks a network configuration and fills in defaults.
// Errors wrap ErrInvalid.
func Parse(data []byte) (*NetConf, error) {
	c := &NetConf{}
	if err := json.Unmarshal(data, c); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if c.Name == "" {
		c.Name = DefaultNetworkName
	}
	if c.DatastoreType == "" {
		c.DatastoreType = DatastoreEtcdV3
	}
	if c.NodenameFile == "" {
		c.NodenameFile = DefaultNodenameFile
	}
	if c.IPAMLockFile == "" {
		c.IPAMLockFile = DefaultIPAMLockFile
	}
	if c.EtcdEndpoints == "" && c.EtcdAuthority != "" {
		scheme := c.EtcdScheme
		if scheme == "" {
			scheme = "http"
		}
		c.EtcdEndpoints = scheme + "://" + c.EtcdAuthority
	}
	if err := c.check(); err != nil {
		return nil, err
	}
	return c, nil
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

func (c *NetConf) check() error {
	switch c.DatastoreType {
	case DatastoreEtcdV3, DatastoreKubernetes:
	default:
		return invalid("datastore_type %q is unknown; use %q or %q", c.DatastoreType, DatastoreEtcdV3, DatastoreKubernetes)
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
	for _, f := range []struct {
		key string
		v   *string
	}{{"ipam.assign_ipv4", c.IPAM.AssignIPv4}, {"ipam.assign_ipv6", c.IPAM.AssignIPv6}} {
		if f.v == nil {
			continue
		}
		if _, err := strconv.ParseBool(*f.v); err != nil {
			return invalid(`%s is %q; it must be the string "true" or "false"`, f.key, *f.v)
		}
	}
	if c.IPAM.Subnet != "" && c.IPAM.Type != IPAMHostLocal {
		return invalid(`ipam.subnet is only used with "type": %q`, IPAMHostLocal)
	}
	return nil
}

// WantIPv4 reports whether IPv4 addresses are requested (default true).
func (i IPAM) WantIPv4() bool { return boolString(i.AssignIPv4, true) }

// WantIPv6 reports whether IPv6 addresses are requested (default false).
func (i IPAM) WantIPv6() bool { return boolString(i.AssignIPv6, false) }

func boolString(s *string, def bool) bool {
	if s == nil {
		return def
	}
	b, err := strconv.ParseBool(*s)
	if err != nil {
		return def
	}
	return b
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

// ResolveNodename works out the node name the way Calico does: the "nodename" key,
// then the nodename file, then the host name. A missing nodename file is an
// error unless nodename_file_optional is set, because a plugin that guesses
// the wrong node name writes endpoints Felix never sees.
func (c *NetConf) ResolveNodename() (string, error) {
	if n := strings.TrimSpace(c.Nodename); n != "" {
		return n, nil
	}
	data, err := os.ReadFile(c.NodenameFile)
	switch {
	case err == nil:
		if n := strings.TrimSpace(string(data)); n != "" {
			return n, nil
		}
		return "", invalid("nodename file %s is empty; is calico-node running on this host?", c.NodenameFile)
	case errors.Is(err, os.ErrNotExist) && c.NodenameFileOptional:
	case errors.Is(err, os.ErrNotExist):
		return "", invalid("nodename file %s does not exist: start calico-node on this host (it writes the file), "+
			`or set "nodename" in the network configuration, or set "nodename_file_optional": true to use the host name`, c.NodenameFile)
	default:
		return "", fmt.Errorf("read nodename file: %w", err)
	}
	h, err := os.Hostname()
	if err != nil {
		return "", fmt.Errorf("node name: no nodename configured and the host name is unknown: %w", err)
	}
	return strings.ToLower(strings.TrimSpace(h)), nil
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
