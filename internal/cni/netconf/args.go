package netconf

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/calico-go/calico/pkg/client"
)

// CNIArgs are the CNI_ARGS keys Calico's plugins read: the Kubernetes keys
// a kubelet (through its runtime) puts there, and IP.
type CNIArgs struct {
	PodNamespace        string // K8S_POD_NAMESPACE
	PodName             string // K8S_POD_NAME
	PodInfraContainerID string // K8S_POD_INFRA_CONTAINER_ID
	PodUID              string // K8S_POD_UID
	// IP asks calico-ipam for one specific address (IP=10.0.0.5); see
	// Addr. It is kept as written because the calico plugin passes it on
	// to whichever IPAM plugin it delegates to.
	IP string
}

// IsPod reports whether the invocation is for a Kubernetes pod.
func (a CNIArgs) IsPod() bool { return a.PodNamespace != "" && a.PodName != "" }

// Addr parses IP; it is the zero Addr when IP is not set.
func (a CNIArgs) Addr() (netip.Addr, error) {
	if a.IP == "" {
		return netip.Addr{}, nil
	}
	ip, err := netip.ParseAddr(a.IP)
	if err != nil {
		return netip.Addr{}, invalid("CNI_ARGS IP=%q is not an IP address", a.IP)
	}
	return ip.Unmap(), nil
}

// ParseArgs reads CNI_ARGS ("K1=V1;K2=V2"). Unknown keys are ignored, as
// runtimes pass keys for other plugins (IgnoreUnknown, ...).
func ParseArgs(s string) (CNIArgs, error) {
	var a CNIArgs
	for _, pair := range strings.Split(s, ";") {
		if strings.TrimSpace(pair) == "" {
			continue
		}
		key, val, ok := strings.Cut(pair, "=")
		if !ok {
			return CNIArgs{}, invalid("CNI_ARGS entry %q is not KEY=VALUE", pair)
		}
		switch key {
		case "K8S_POD_NAMESPACE":
			a.PodNamespace = val
		case "K8S_POD_NAME":
			a.PodName = val
		case "K8S_POD_INFRA_CONTAINER_ID":
			a.PodInfraContainerID = val
		case "K8S_POD_UID":
			a.PodUID = val
		case "IP":
			a.IP = val
		}
	}
	if (a.PodNamespace == "") != (a.PodName == "") {
		return CNIArgs{}, invalid("CNI_ARGS has only one of K8S_POD_NAMESPACE and K8S_POD_NAME; a pod needs both")
	}
	return a, nil
}

// HandleID is the IPAM handle of a workload's addresses:
// "<network>.<containerID>".
func HandleID(network, containerID string) string { return network + "." + containerID }

// LegacyHandleID is the handle older Calico releases used: "<namespace>.<pod>"
// for pods, the container ID otherwise. DEL releases it too.
func (a CNIArgs) LegacyHandleID(containerID string) string {
	if a.IsPod() {
		return a.PodNamespace + "." + a.PodName
	}
	return containerID
}

// ClientConfig is the datastore connection: the calicoctl-style
// environment read through lookup (ETCD_ENDPOINTS, ETCD_CA_CERT_FILE, ...;
// nil means none) overridden by the keys set in the network configuration.
// The datastore is always etcd v3 (see checkSupported).
func (c *Common) ClientConfig(lookup func(string) (string, bool)) (client.Config, error) {
	if err := c.checkSupported(); err != nil {
		return client.Config{}, err
	}
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
		return client.Config{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	s := &cfg.Spec
	for _, o := range []struct {
		dst *string
		v   string
	}{
		{&s.EtcdEndpoints, c.EtcdEndpoints},
		{&s.EtcdDiscoverySrv, c.EtcdDiscoverySrv},
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
