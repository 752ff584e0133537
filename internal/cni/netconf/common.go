package netconf

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
)

// Common are the keys both plugins read the same way: where the datastore
// is, how to find the node name, the host-wide IPAM lock and logging. NetConf
// and IPAMConf embed it, so the keys sit at the top level of the JSON.
type Common struct {
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

	// IPAMLockFile serialises one host's IPAM calls (calico-ipam takes it).
	IPAMLockFile string `json:"ipam_lock_file,omitempty"`

	// Logging.
	LogLevel    string `json:"log_level,omitempty"`
	LogFilePath string `json:"log_file_path,omitempty"`
}

// decode unmarshals a network configuration into v; errors wrap ErrInvalid
// and name the key of a value of the wrong JSON type.
func decode(data []byte, v any) error {
	if err := json.Unmarshal(data, v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return invalid("%s must not be a JSON %s (see the Calico CNI configuration reference)", te.Field, te.Value)
		}
		return invalid("%s", strings.TrimPrefix(err.Error(), "json: "))
	}
	return nil
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// setDefaults fills in the documented defaults and turns the deprecated
// etcd_authority/etcd_scheme into etcd_endpoints.
func (c *Common) setDefaults() {
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
}

// check refuses values no Calico release understands.
func (c *Common) check() error {
	switch c.DatastoreType {
	case DatastoreEtcdV3, DatastoreKubernetes:
	default:
		return invalid("datastore_type %q is unknown; use %q or %q", c.DatastoreType, DatastoreEtcdV3, DatastoreKubernetes)
	}
	if _, err := c.logLevel(slog.LevelInfo); err != nil {
		return err
	}
	return nil
}

// checkSupported refuses the datastore settings this build cannot connect
// to: the Kubernetes datastore and etcd found through DNS discovery.
func (c *Common) checkSupported() error {
	if c.DatastoreType == DatastoreKubernetes {
		return invalid("datastore_type %q is not supported by this build yet; use %q with etcd_endpoints",
			c.DatastoreType, DatastoreEtcdV3)
	}
	if c.EtcdDiscoverySrv != "" && c.EtcdEndpoints == "" {
		return invalid("etcd_discovery_srv is not supported yet; set etcd_endpoints")
	}
	return nil
}

// ResolveNodename works out the node name the way Calico does: the
// "nodename" key, then the nodename file (written by calico-node), then the
// host name. A missing nodename file is an error unless
// nodename_file_optional is set, because a plugin that guesses the wrong node
// name writes endpoints Felix never sees and claims addresses from another
// host's blocks.
func (c *Common) ResolveNodename() (string, error) {
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

// logLevel is the slog level of log_level; def when it is not set.
func (c *Common) logLevel(def slog.Level) (slog.Level, error) {
	switch strings.ToLower(c.LogLevel) {
	case "":
		return def, nil
	case "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warning", "warn":
		return slog.LevelWarn, nil
	case "error", "fatal", "panic":
		return slog.LevelError, nil
	}
	return 0, invalid("log_level %q is unknown; use ERROR, WARNING, INFO or DEBUG", c.LogLevel)
}

// Logger logs to stderr and, with log_file_path, appends to that file as
// well (without rotation; the file is closed when the process exits), at
// log_level or def when it is not set.
func (c *Common) Logger(stderr io.Writer, def slog.Level) (*slog.Logger, error) {
	level, err := c.logLevel(def)
	if err != nil {
		return nil, err
	}
	w := stderr
	if c.LogFilePath != "" {
		if err := os.MkdirAll(dirOf(c.LogFilePath), 0o755); err != nil {
			return nil, invalid("log_file_path %s: %v", c.LogFilePath, err)
		}
		f, err := os.OpenFile(c.LogFilePath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return nil, invalid("log_file_path %s: %v", c.LogFilePath, err)
		}
		w = io.MultiWriter(w, f)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level})), nil
}

func dirOf(path string) string {
	if i := strings.LastIndexByte(path, '/'); i > 0 {
		return path[:i]
	}
	return "."
}

// Env is what a plugin process talks to besides its network configuration:
// its standard streams (results on Stdout, the log on Stderr) and its
// environment (ETCD_ENDPOINTS, FELIX_INTERFACEPREFIX, CNI_PATH, ...). A nil
// field stands for the process's own; see WithDefaults.
type Env struct {
	Stdout, Stderr io.Writer
	LookupEnv      func(string) (string, bool)
}

// WithDefaults returns e with its nil fields set to os.Stdout, os.Stderr
// and os.LookupEnv.
func (e Env) WithDefaults() Env {
	if e.Stdout == nil {
		e.Stdout = os.Stdout
	}
	if e.Stderr == nil {
		e.Stderr = os.Stderr
	}
	if e.LookupEnv == nil {
		e.LookupEnv = os.LookupEnv
	}
	return e
}
