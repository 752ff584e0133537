package node

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/calico-go/calico/internal/autodetect"
	"github.com/calico-go/calico/internal/bgp/status"
	"github.com/calico-go/calico/pkg/client"
)

// Defaults of NodeOptions.
const (
	DefaultNodenameFile = "/var/lib/calico/nodename"
	DefaultMTUFile      = "/var/lib/calico/mtu"
	DefaultPoolV4       = "192.168.0.0/16"
	DefaultPoolNameV4   = "default-ipv4-ippool"
	DefaultPoolNameV6   = "default-ipv6-ippool"
)

// Networking backends (CALICO_NETWORKING_BACKEND).
const (
	BackendBird  = "bird" // our BGP speaker
	BackendVXLAN = "vxlan"
	BackendNone  = "none"
)

// NodeOptions configure node registration and networking. The zero value
// (plus a Name) registers the node with an autodetected IPv4 address, the
// default IPv4 pool if no pool exists, and runs BGP.
type NodeOptions struct {
	// Name is the node's name (NODENAME, else HOSTNAME, else the host
	// name).
	Name string
	// NodenameFile receives the name for the CNI plugin (default
	// DefaultNodenameFile; "-" writes nothing).
	NodenameFile string
	// IP is "autodetect", "none", an address or address/prefix; empty
	// keeps the Node's current address, else autodetects. IP6 likewise,
	// except that empty keeps the current address or has none.
	IP, IP6 string
	// IPMethod and IP6Method are IP_AUTODETECTION_METHOD and
	// IP6_AUTODETECTION_METHOD (default first-found).
	IPMethod, IP6Method string
	// AS is the node's AS number ("" keeps the Node's).
	AS string
	// Backend is bird (default), vxlan or none.
	Backend string
	Pools   PoolOptions
	// MTUFile receives the pod MTU (default DefaultMTUFile; "-" writes
	// nothing). MTU, when non-zero, is written instead of the detected one.
	MTUFile string
	MTU     int
	// BGPStatusSocket is served for `calicoctl node status` (default
	// status.DefaultSocket; "-" serves nothing).
	BGPStatusSocket string
	// RouteRefreshInterval re-applies kernel routes (repairing routes
	// deleted by hand); default 10s.
	RouteRefreshInterval time.Duration
	// BGPSecretsDir holds BGP passwords as <dir>/<secret name>/<key>, the
	// layout of a mounted Kubernetes secret. Passwords may also be given
	// as environment variables CALICO_BGP_PASSWORD_<NAME>_<KEY> (upper
	// case, other characters as "_").
	BGPSecretsDir string
	// LookupEnv reads the password variables (default os.LookupEnv).
	LookupEnv func(string) (string, bool)
	// System is where addresses and MTUs are detected (default: the
	// calling thread's network namespace).
	System autodetect.System
}

// PoolOptions are the CALICO_IPV4POOL_* and CALICO_IPV6POOL_* settings of
// the default pools, created only when no pool of the family exists.
type PoolOptions struct {
	NoDefaultPools bool
	V4, V6         PoolSpec
}

// PoolSpec configures one default pool; empty fields take Calico's defaults
// (v4 CIDR 192.168.0.0/16, v6 a random ULA /48; block size 26 / 122;
// IPIP and VXLAN Never, or VXLAN Always with the vxlan backend; NAT
// outgoing on; node selector all()).
type PoolSpec struct {
	CIDR         string
	BlockSize    int
	IPIPMode     string
	VXLANMode    string
	NATOutgoing  *bool
	NodeSelector string
}

// OptionsFromEnv reads calico-node's environment: the datastore (as
// client.ConfigFromEnv) and the node settings (NODENAME, IP, IP6,
// IP_AUTODETECTION_METHOD, IP6_AUTODETECTION_METHOD, AS,
// CALICO_NETWORKING_BACKEND, CALICO_IPV4POOL_CIDR, _BLOCK_SIZE, _IPIP,
// _VXLAN, _NAT_OUTGOING, _NODE_SELECTOR and the IPV6 equivalents,
// NO_DEFAULT_POOLS, CALICO_NODENAME_FILE, CALICO_MTU_FILE, CALICO_MTU,
// CALICO_BGP_STATUS_SOCKET, CALICO_BGP_SECRETS_DIR and
// FELIX_ROUTEREFRESHINTERVAL). Node registration is on unless
// CALICO_NODE_REGISTER=false.
func OptionsFromEnv() (Options, error) { return OptionsFromLookup(os.LookupEnv) }

// OptionsFromLookup is OptionsFromEnv over any variable lookup.
func OptionsFromLookup(lookup func(string) (string, bool)) (Options, error) {
	var opts Options
	get := func(k string) string { v, _ := lookup(k); return strings.TrimSpace(v) }
	cfg, err := client.ConfigFromLookup(lookup)
	if err != nil {
		return opts, err
	}
	opts.Datastore = cfg
	if v := get("CALICO_NODE_REGISTER"); v != "" {
		if b, err := strconv.ParseBool(v); err == nil && !b {
			return opts, nil
		}
	}
	n := &NodeOptions{
		Name: get("NODENAME"), NodenameFile: get("CALICO_NODENAME_FILE"),
		IP: get("IP"), IP6: get("IP6"), IPMethod: get("IP_AUTODETECTION_METHOD"), IP6Method: get("IP6_AUTODETECTION_METHOD"),
		AS: get("AS"), Backend: strings.ToLower(get("CALICO_NETWORKING_BACKEND")),
		MTUFile: get("CALICO_MTU_FILE"), BGPStatusSocket: get("CALICO_BGP_STATUS_SOCKET"),
		BGPSecretsDir: get("CALICO_BGP_SECRETS_DIR"), LookupEnv: lookup,
	}
	if n.Name == "" {
		n.Name = get("HOSTNAME")
	}
	if v := get("CALICO_MTU"); v != "" {
		if n.MTU, err = strconv.Atoi(v); err != nil {
			return opts, fmt.Errorf("CALICO_MTU=%q: %w", v, err)
		}
	}
	if v := get("FELIX_ROUTEREFRESHINTERVAL"); v != "" {
		secs, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return opts, fmt.Errorf("FELIX_ROUTEREFRESHINTERVAL=%q: %w", v, err)
		}
		n.RouteRefreshInterval = time.Duration(secs * float64(time.Second))
	}
	if v := get("NO_DEFAULT_POOLS"); v != "" {
		if n.Pools.NoDefaultPools, err = strconv.ParseBool(v); err != nil {
			return opts, fmt.Errorf("NO_DEFAULT_POOLS=%q: %w", v, err)
		}
	}
	for fam, spec := range map[string]*PoolSpec{"IPV4": &n.Pools.V4, "IPV6": &n.Pools.V6} {
		pre := "CALICO_" + fam + "POOL_"
		spec.CIDR, spec.IPIPMode, spec.VXLANMode, spec.NodeSelector = get(pre+"CIDR"), get(pre+"IPIP"), get(pre+"VXLAN"), get(pre+"NODE_SELECTOR")
		if v := get(pre + "BLOCK_SIZE"); v != "" {
			if spec.BlockSize, err = strconv.Atoi(v); err != nil {
				return opts, fmt.Errorf("%sBLOCK_SIZE=%q: %w", pre, v, err)
			}
		}
		if v := get(pre + "NAT_OUTGOING"); v != "" {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return opts, fmt.Errorf("%sNAT_OUTGOING=%q: %w", pre, v, err)
			}
			spec.NATOutgoing = &b
		}
	}
	opts.Node = n
	return opts, nil
}

func (n *NodeOptions) setDefaults() error {
	if n.Name == "" {
		h, err := os.Hostname()
		if err != nil {
			return fmt.Errorf("node name: set NODENAME: %w", err)
		}
		n.Name = strings.ToLower(strings.TrimSpace(h))
	}
	if n.NodenameFile == "" {
		n.NodenameFile = DefaultNodenameFile
	}
	if n.MTUFile == "" {
		n.MTUFile = DefaultMTUFile
	}
	if n.BGPStatusSocket == "" {
		n.BGPStatusSocket = status.DefaultSocket
	}
	switch n.Backend {
	case "":
		n.Backend = BackendBird
	case BackendBird, BackendVXLAN, BackendNone:
	default:
		return fmt.Errorf("CALICO_NETWORKING_BACKEND=%q: want bird, vxlan or none", n.Backend)
	}
	if n.LookupEnv == nil {
		n.LookupEnv = os.LookupEnv
	}
	if n.System == nil {
		n.System = autodetect.Host{}
	}
	return nil
}

// secret resolves a BGP password: the environment first, then the secrets
// directory.
func (n *NodeOptions) secret(name, key string) (string, bool) {
	env := "CALICO_BGP_PASSWORD_" + envName(name) + "_" + envName(key)
	if v, ok := n.LookupEnv(env); ok {
		return v, true
	}
	if n.BGPSecretsDir == "" {
		return "", false
	}
	if filepath.Base(name) != name || filepath.Base(key) != key {
		return "", false
	}
	b, err := os.ReadFile(filepath.Join(n.BGPSecretsDir, name, key))
	if err != nil {
		return "", false
	}
	return strings.TrimRight(string(b), "\r\n"), true
}

func envName(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z':
			return r - 'a' + 'A'
		case r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
			return r
		}
		return '_'
	}, s)
}

// writeFile writes data atomically (temporary file, then rename).
func writeFile(path string, data []byte) error {
	if path == "-" {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("create %s: %w", filepath.Dir(path), err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
