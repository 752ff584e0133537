package ipamplugin

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/calico-go/calico/pkg/client"
)

// Defaults Calico documents for the network configuration.
const (
	DefaultNetworkName  = "k8s-pod-network"
	DefaultNodenameFile = "/var/lib/calico/nodename"
	DefaultLockFile     = "/var/run/calico/ipam.lock"
)

// Datastore types of the datastore_type key.
const (
	DatastoreEtcdV3     = "etcdv3"
	DatastoreKubernetes = "kubernetes"
)

// ErrConfig marks a network configuration (or CNI_ARGS) that cannot be
// used. The message names the key and what to write instead.
var ErrConfig = errors.New("invalid network configuration")

// Config is the part of the network configuration calico-ipam reads: the
// keys of Calico's CNI plugins (SPEC section 6) that matter for addresses.
// Unknown keys are ignored, as the CNI spec asks.
type Config struct {
	CNIVersion string `json:"cniVersion"`
	// Name is the network name; the handle of a container's addresses is
	// "<Name>.<container id>".
	Name string     `json:"name"`
	Type string     `json:"type"`
	IPAM IPAMConfig `json:"ipam"`

	DatastoreType    string `json:"datastore_type"`
	EtcdEndpoints    string `json:"etcd_endpoints"`
	EtcdDiscoverySrv string `json:"etcd_discovery_srv"`
	EtcdKeyFile      string `json:"etcd_key_file"`
	EtcdCertFile     string `json:"etcd_cert_file"`
	EtcdCACertFile   string `json:"etcd_ca_cert_file"`
	// EtcdAuthority and EtcdScheme are the deprecated spelling of
	// etcd_endpoints (which wins).
	EtcdAuthority string `json:"etcd_authority"`
	EtcdScheme    string `json:"etcd_scheme"`

	Nodename             string `json:"nodename"`
	NodenameFile         string `json:"nodename_file"`
	NodenameFileOptional bool   `json:"nodename_file_optional"`

	// LockFile serialises this host's IPAM calls (ipam_lock_file).
	LockFile string `json:"ipam_lock_file"`

	LogLevel    string `json:"log_level"`
	LogFilePath string `json:"log_file_path"`

	// PrevResult is the result CHECK compares with.
	PrevResult json.RawMessage `json:"prevResult,omitempty"`
	// ValidAttachments are what GC keeps ("cni.dev/valid-attachments",
	// or the earlier "cni.dev/attachments").
	ValidAttachments []types.GCAttachment `json:"cni.dev/valid-attachments,omitempty"`
	Attachments      []types.GCAttachment `json:"cni.dev/attachments,omitempty"`
}

// IPAMConfig is the "ipam" section.
type IPAMConfig struct {
	Type string `json:"type"`
	// AssignIPv4 and AssignIPv6 are the strings "true"/"false" as Calico
	// documents them (JSON booleans are accepted too); see WantIPv4.
	AssignIPv4 json.RawMessage `json:"assign_ipv4,omitempty"`
	AssignIPv6 json.RawMessage `json:"assign_ipv6,omitempty"`
	// want4 and want6 are the parsed values.
	want4, want6 bool
	// IPv4Pools and IPv6Pools name pools by name or CIDR.
	IPv4Pools []string `json:"ipv4_pools,omitempty"`
	IPv6Pools []string `json:"ipv6_pools,omitempty"`
}

// boolString parses a boolean written as a JSON string ("true", any
// spelling strconv.ParseBool takes) or as a JSON boolean; an absent value
// is def.
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
	return false, configErr(`%s is %s; it must be the string "true" or "false"`, key, data)
}

// ParseConfig decodes and checks a network configuration and fills in the
// defaults. Errors wrap ErrConfig.
func ParseConfig(data []byte) (*Config, error) {
	c := &Config{}
	if err := json.Unmarshal(data, c); err != nil {
		return nil, fmt.Errorf("%w: %s", ErrConfig, jsonError(err))
	}
	if c.CNIVersion == "" {
		c.CNIVersion = "0.1.0" // what the CNI spec implies for a config without one
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
	if c.LockFile == "" {
		c.LockFile = DefaultLockFile
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

// jsonError names the key of a decoding error.
func jsonError(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		return fmt.Sprintf("%s must not be a JSON %s (see the Calico CNI configuration reference)", te.Field, te.Value)
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}

func configErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrConfig, fmt.Sprintf(format, args...))
}

func (c *Config) check() error {
	switch c.DatastoreType {
	case DatastoreEtcdV3:
	case DatastoreKubernetes:
		return configErr("datastore_type %q is not supported by this build of calico-ipam; use %q with etcd_endpoints",
			c.DatastoreType, DatastoreEtcdV3)
	default:
		return configErr("datastore_type %q is unknown; use %q", c.DatastoreType, DatastoreEtcdV3)
	}
	if c.EtcdDiscoverySrv != "" && c.EtcdEndpoints == "" {
		return configErr("etcd_discovery_srv is not supported yet; set etcd_endpoints")
	}
	var err error
	if c.IPAM.want4, err = boolString("ipam.assign_ipv4", c.IPAM.AssignIPv4, true); err != nil {
		return err
	}
	if c.IPAM.want6, err = boolString("ipam.assign_ipv6", c.IPAM.AssignIPv6, false); err != nil {
		return err
	}
	if !c.WantIPv4() && !c.WantIPv6() {
		return configErr(`ipam.assign_ipv4 and ipam.assign_ipv6 are both "false": nothing to assign; set one of them to "true"`)
	}
	for _, f := range []struct {
		key   string
		pools []string
		v6    bool
	}{{"ipam.ipv4_pools", c.IPAM.IPv4Pools, false}, {"ipam.ipv6_pools", c.IPAM.IPv6Pools, true}} {
		for _, p := range f.pools {
			if strings.TrimSpace(p) == "" {
				return configErr("%s has an empty entry; name pools by name or CIDR", f.key)
			}
			if pfx, err := netip.ParsePrefix(p); err == nil && pfx.Addr().Is6() != f.v6 {
				return configErr("%s lists %s, which is not an IPv%s CIDR", f.key, p, map[bool]string{false: "4", true: "6"}[f.v6])
			}
		}
	}
	switch strings.ToLower(c.LogLevel) {
	case "", "debug", "info", "warning", "warn", "error", "fatal", "panic":
	default:
		return configErr("log_level %q is unknown; use ERROR, WARNING, INFO or DEBUG", c.LogLevel)
	}
	return nil
}

// WantIPv4 reports whether IPv4 is requested (default true).
func (c *Config) WantIPv4() bool { return c.IPAM.want4 }

// WantIPv6 reports whether IPv6 is requested (default false).
func (c *Config) WantIPv6() bool { return c.IPAM.want6 }

// Valid returns the container IDs GC must keep.
func (c *Config) Valid() map[string]bool {
	out := map[string]bool{}
	for _, a := range append(c.ValidAttachments, c.Attachments...) {
		out[a.ContainerID] = true
	}
	return out
}

// HandleID is the handle of a container's addresses: "<network>.<id>".
func (c *Config) HandleID(containerID string) string { return c.Name + "." + containerID }

// ResolveNodename works out the node name the way Calico does: the
// "nodename" key, then the nodename file (written by calico-node), then the
// host name. A missing nodename file is an error unless
// nodename_file_optional is set, because addresses claimed under a wrong
// node name come from another host's blocks.
func (c *Config) ResolveNodename() (string, error) {
	if n := strings.TrimSpace(c.Nodename); n != "" {
		return n, nil
	}
	data, err := os.ReadFile(c.NodenameFile)
	switch {
	case err == nil:
		if n := strings.TrimSpace(string(data)); n != "" {
			return n, nil
		}
		return "", configErr("nodename file %s is empty; is calico-node running on this host?", c.NodenameFile)
	case errors.Is(err, os.ErrNotExist) && c.NodenameFileOptional:
	case errors.Is(err, os.ErrNotExist):
		return "", configErr("nodename file %s does not exist: start calico-node on this host (it writes the file), "+
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

// ClientConfig is the datastore connection: the calicoctl-style environment
// read through lookup (ETCD_ENDPOINTS, ETCD_CA_CERT_FILE, ...; nil means
// none), overridden by the keys of the network configuration.
func (c *Config) ClientConfig(lookup func(string) (string, bool)) (client.Config, error) {
	if lookup == nil {
		lookup = func(string) (string, bool) { return "", false }
	}
	env := func(k string) (string, bool) {
		if k == "DATASTORE_TYPE" || k == "CALICO_DATASTORE_TYPE" {
			return DatastoreEtcdV3, true
		}
		return lookup(k)
	}
	cfg, err := client.ConfigFromLookup(env)
	if err != nil {
		return client.Config{}, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	s := &cfg.Spec
	for _, o := range []struct {
		dst *string
		v   string
	}{
		{&s.EtcdEndpoints, c.EtcdEndpoints},
		{&s.EtcdKeyFile, c.EtcdKeyFile},
		{&s.EtcdCertFile, c.EtcdCertFile},
		{&s.EtcdCACertFile, c.EtcdCACertFile},
	} {
		if o.v != "" {
			*o.dst = o.v
		}
	}
	return cfg, nil
}

// Args are the CNI_ARGS keys calico-ipam reads.
type Args struct {
	PodNamespace string // K8S_POD_NAMESPACE
	PodName      string // K8S_POD_NAME
	// IP asks for one specific address (IP=10.0.0.5), as Calico allows.
	IP netip.Addr
}

// IsPod reports whether the invocation is for a Kubernetes pod.
func (a Args) IsPod() bool { return a.PodNamespace != "" && a.PodName != "" }

// LegacyHandleID is the handle older Calico releases used: "<ns>.<pod>"
// for pods, the container ID otherwise. DEL releases it too.
func (a Args) LegacyHandleID(containerID string) string {
	if a.IsPod() {
		return a.PodNamespace + "." + a.PodName
	}
	return containerID
}

// ParseArgs reads CNI_ARGS ("K1=V1;K2=V2"). Unknown keys are ignored,
// as runtimes pass keys meant for other plugins.
func ParseArgs(s string) (Args, error) {
	var a Args
	for _, pair := range strings.Split(s, ";") {
		if strings.TrimSpace(pair) == "" {
			continue
		}
		key, val, ok := strings.Cut(pair, "=")
		if !ok {
			return Args{}, configErr("CNI_ARGS entry %q is not KEY=VALUE", pair)
		}
		switch key {
		case "K8S_POD_NAMESPACE":
			a.PodNamespace = val
		case "K8S_POD_NAME":
			a.PodName = val
		case "IP":
			ip, err := netip.ParseAddr(val)
			if err != nil {
				return Args{}, configErr("CNI_ARGS IP=%q is not an IP address", val)
			}
			a.IP = ip.Unmap()
		}
	}
	if (a.PodNamespace == "") != (a.PodName == "") {
		return Args{}, configErr("CNI_ARGS has only one of K8S_POD_NAMESPACE and K8S_POD_NAME; a pod needs both")
	}
	return a, nil
}
