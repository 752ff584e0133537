package client

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"

	"sigs.k8s.io/yaml"
)

// DefaultConfigPath is where calicoctl looks for its configuration file when
// no -c flag is given.
const DefaultConfigPath = "/etc/calico/calicoctl.cfg"

// DefaultEtcdEndpoint is used when the etcdv3 datastore is selected and no
// endpoints are configured.
const DefaultEtcdEndpoint = "http://127.0.0.1:2379"

// Kind and apiVersion of a configuration file.
const (
	ConfigKind       = "CalicoAPIConfig"
	ConfigAPIVersion = "projectcalico.org/v3"
)

// DatastoreType selects the backend a Client talks to.
type DatastoreType string

// The datastore types Calico knows.
const (
	EtcdV3     DatastoreType = "etcdv3"
	Kubernetes DatastoreType = "kubernetes"
)

// Config is Calico's CalicoAPIConfig: how to reach the datastore. It is read
// from a YAML or JSON file (see LoadConfig) or from the environment (see
// ConfigFromEnv).
type Config struct {
	APIVersion string         `json:"apiVersion,omitempty"`
	Kind       string         `json:"kind,omitempty"`
	Metadata   map[string]any `json:"metadata,omitempty"`
	Spec       ConfigSpec     `json:"spec"`
}

// ConfigSpec holds the connection settings. Field names and their
// environment variables are Calico's.
type ConfigSpec struct {
	DatastoreType DatastoreType `json:"datastoreType,omitempty"`

	// EtcdEndpoints is a comma-separated list of URLs.
	EtcdEndpoints    string `json:"etcdEndpoints,omitempty"`
	EtcdDiscoverySrv string `json:"etcdDiscoverySrv,omitempty"`
	EtcdUsername     string `json:"etcdUsername,omitempty"`
	EtcdPassword     string `json:"etcdPassword,omitempty"`
	EtcdKeyFile      string `json:"etcdKeyFile,omitempty"`
	EtcdCertFile     string `json:"etcdCertFile,omitempty"`
	EtcdCACertFile   string `json:"etcdCACertFile,omitempty"`
	// Inline PEM forms of the three files above.
	EtcdKey    string `json:"etcdKey,omitempty"`
	EtcdCert   string `json:"etcdCert,omitempty"`
	EtcdCACert string `json:"etcdCACert,omitempty"`

	Kubeconfig               string  `json:"kubeconfig,omitempty"`
	K8sAPIEndpoint           string  `json:"k8sAPIEndpoint,omitempty"`
	K8sKeyFile               string  `json:"k8sKeyFile,omitempty"`
	K8sCertFile              string  `json:"k8sCertFile,omitempty"`
	K8sCAFile                string  `json:"k8sCAFile,omitempty"`
	K8sAPIToken              string  `json:"k8sAPIToken,omitempty"`
	K8sInsecureSkipTLSVerify bool    `json:"k8sInsecureSkipTLSVerify,omitempty"`
	K8sDisableNodePoll       bool    `json:"k8sDisableNodePoll,omitempty"`
	KubeconfigInline         string  `json:"kubeconfigInline,omitempty"`
	K8sClientQPS             float32 `json:"k8sClientQPS,omitempty"`
}

// ErrConfig marks a configuration that cannot be used: a missing explicit
// file, a file that does not parse, a bad environment value.
var ErrConfig = errors.New("invalid client configuration")

// envVars maps each string setting to its environment variable name (without
// the optional CALICO_ prefix).
func (s *ConfigSpec) envStrings() []struct {
	name string
	dst  *string
} {
	return []struct {
		name string
		dst  *string
	}{
		{"ETCD_ENDPOINTS", &s.EtcdEndpoints},
		{"ETCD_DISCOVERY_SRV", &s.EtcdDiscoverySrv},
		{"ETCD_USERNAME", &s.EtcdUsername},
		{"ETCD_PASSWORD", &s.EtcdPassword},
		{"ETCD_KEY_FILE", &s.EtcdKeyFile},
		{"ETCD_CERT_FILE", &s.EtcdCertFile},
		{"ETCD_CA_CERT_FILE", &s.EtcdCACertFile},
		{"ETCD_KEY", &s.EtcdKey},
		{"ETCD_CERT", &s.EtcdCert},
		{"ETCD_CA_CERT", &s.EtcdCACert},
		{"KUBECONFIG", &s.Kubeconfig},
		{"K8S_API_ENDPOINT", &s.K8sAPIEndpoint},
		{"K8S_KEY_FILE", &s.K8sKeyFile},
		{"K8S_CERT_FILE", &s.K8sCertFile},
		{"K8S_CA_FILE", &s.K8sCAFile},
		{"K8S_API_TOKEN", &s.K8sAPIToken},
		{"KUBECONFIG_INLINE", &s.KubeconfigInline},
	}
}

// ConfigFromEnv builds a Config from the process environment.
func ConfigFromEnv() (Config, error) {
	return ConfigFromLookup(os.LookupEnv)
}

// ConfigFromLookup builds a Config from environment variables read through
// lookup. Each variable may carry a CALICO_ prefix, which wins over the bare
// name. With no datastore type set the etcdv3 datastore is used, at
// DefaultEtcdEndpoint unless ETCD_ENDPOINTS says otherwise.
func ConfigFromLookup(lookup func(string) (string, bool)) (Config, error) {
	get := func(name string) (string, bool) {
		if v, ok := lookup("CALICO_" + name); ok {
			return v, true
		}
		return lookup(name)
	}
	cfg := Config{APIVersion: ConfigAPIVersion, Kind: ConfigKind}
	s := &cfg.Spec
	if v, ok := get("DATASTORE_TYPE"); ok {
		s.DatastoreType = DatastoreType(strings.TrimSpace(v))
	}
	for _, e := range s.envStrings() {
		if v, ok := get(e.name); ok {
			*e.dst = v
		}
	}
	for _, b := range []struct {
		name string
		dst  *bool
	}{
		{"K8S_INSECURE_SKIP_TLS_VERIFY", &s.K8sInsecureSkipTLSVerify},
		{"K8S_DISABLE_NODE_POLL", &s.K8sDisableNodePoll},
	} {
		v, ok := get(b.name)
		if !ok || v == "" {
			continue
		}
		parsed, err := strconv.ParseBool(v)
		if err != nil {
			return Config{}, fmt.Errorf("%w: environment variable %s=%q is not a boolean", ErrConfig, b.name, v)
		}
		*b.dst = parsed
	}
	if v, ok := get("K8S_CLIENT_QPS"); ok && v != "" {
		qps, err := strconv.ParseFloat(v, 32)
		if err != nil {
			return Config{}, fmt.Errorf("%w: environment variable K8S_CLIENT_QPS=%q is not a number", ErrConfig, v)
		}
		s.K8sClientQPS = float32(qps)
	}
	cfg.setDefaults()
	return cfg, nil
}

// ParseConfig decodes a CalicoAPIConfig document (YAML or JSON). Unknown
// fields are errors, so that a misspelt setting is not silently ignored.
func ParseConfig(data []byte) (Config, error) {
	cfg, err := parseConfig(data)
	if err != nil {
		return Config{}, fmt.Errorf("%w: %s", ErrConfig, err)
	}
	return cfg, nil
}

func parseConfig(data []byte) (Config, error) {
	var cfg Config
	if err := yaml.UnmarshalStrict(data, &cfg); err != nil {
		msg := err.Error()
		if i := strings.LastIndex(msg, "json: "); i >= 0 {
			msg = msg[i+len("json: "):]
		}
		return Config{}, errors.New(msg)
	}
	if cfg.Kind != ConfigKind {
		return Config{}, fmt.Errorf("kind is %q, expected %q", cfg.Kind, ConfigKind)
	}
	if cfg.APIVersion != ConfigAPIVersion {
		return Config{}, fmt.Errorf("apiVersion is %q, expected %q", cfg.APIVersion, ConfigAPIVersion)
	}
	cfg.setDefaults()
	return cfg, nil
}

// LoadConfig reads the configuration the way calicoctl does. path is the
// file to read (DefaultConfigPath when empty); explicit says the user named
// it (calicoctl -c). When the file exists it is used instead of the
// environment. A missing file falls back to the environment, except that a
// missing explicitly named file other than DefaultConfigPath is an error.
func LoadConfig(path string, explicit bool) (Config, error) {
	return LoadConfigWith(path, explicit, os.LookupEnv)
}

// LoadConfigWith is LoadConfig with the environment read through lookup.
func LoadConfigWith(path string, explicit bool, lookup func(string) (string, bool)) (Config, error) {
	if path == "" {
		path = DefaultConfigPath
	}
	data, err := os.ReadFile(path)
	switch {
	case err == nil:
		cfg, err := parseConfig(data)
		if err != nil {
			return Config{}, fmt.Errorf("%w: config file %s: %s", ErrConfig, path, err)
		}
		return cfg, nil
	case errors.Is(err, fs.ErrNotExist):
		if explicit && path != DefaultConfigPath {
			return Config{}, fmt.Errorf("%w: config file %s does not exist", ErrConfig, path)
		}
		return ConfigFromLookup(lookup)
	default:
		return Config{}, fmt.Errorf("%w: read config file: %v", ErrConfig, err)
	}
}

func (c *Config) setDefaults() {
	if c.APIVersion == "" {
		c.APIVersion = ConfigAPIVersion
	}
	if c.Kind == "" {
		c.Kind = ConfigKind
	}
	if c.Spec.DatastoreType == "" {
		c.Spec.DatastoreType = EtcdV3
	}
	if c.Spec.DatastoreType == EtcdV3 && strings.TrimSpace(c.Spec.EtcdEndpoints) == "" && c.Spec.EtcdDiscoverySrv == "" {
		c.Spec.EtcdEndpoints = DefaultEtcdEndpoint
	}
}

// Endpoints returns the etcd endpoints as a list, without blanks.
func (s ConfigSpec) Endpoints() []string {
	var out []string
	for _, e := range strings.Split(s.EtcdEndpoints, ",") {
		if e = strings.TrimSpace(e); e != "" {
			out = append(out, e)
		}
	}
	return out
}
