package netconf

import (
	"fmt"
	"strings"

	"github.com/calico-go/calico/pkg/client"
)

// K8sArgs are the Kubernetes keys a kubelet (through its runtime) puts in
// CNI_ARGS.
type K8sArgs struct {
	PodNamespace        string // K8S_POD_NAMESPACE
	PodName             string // K8S_POD_NAME
	PodInfraContainerID string // K8S_POD_INFRA_CONTAINER_ID
	PodUID              string // K8S_POD_UID
}

// IsPod reports whether the invocation is for a Kubernetes pod.
func (k K8sArgs) IsPod() bool { return k.PodNamespace != "" && k.PodName != "" }

// ParseArgs reads CNI_ARGS ("K1=V1;K2=V2"). Unknown keys are ignored, as
// runtimes pass keys for other plugins (IgnoreUnknown, IP, ...).
func ParseArgs(s string) (K8sArgs, error) {
	var k K8sArgs
	if strings.TrimSpace(s) == "" {
		return k, nil
	}
	for _, pair := range strings.Split(s, ";") {
		if pair == "" {
			continue
		}
		key, val, ok := strings.Cut(pair, "=")
		if !ok {
			return K8sArgs{}, fmt.Errorf("%w: CNI_ARGS entry %q is not KEY=VALUE", ErrInvalid, pair)
		}
		switch key {
		case "K8S_POD_NAMESPACE":
			k.PodNamespace = val
		case "K8S_POD_NAME":
			k.PodName = val
		case "K8S_POD_INFRA_CONTAINER_ID":
			k.PodInfraContainerID = val
		case "K8S_POD_UID":
			k.PodUID = val
		}
	}
	if (k.PodNamespace == "") != (k.PodName == "") {
		return K8sArgs{}, fmt.Errorf("%w: CNI_ARGS has only one of K8S_POD_NAMESPACE and K8S_POD_NAME; a pod needs both", ErrInvalid)
	}
	return k, nil
}

// HandleID is the IPAM handle of a workload's addresses:
// "<network>.<containerID>".
func HandleID(network, containerID string) string { return network + "." + containerID }

// LegacyHandleID is the handle older Calico releases used for pods:
// "<namespace>.<pod>". DEL releases it too.
func LegacyHandleID(k K8sArgs) string { return k.PodNamespace + "." + k.PodName }

// ClientConfig is the datastore connection: the calicoctl-style
// environment read through lookup (ETCD_ENDPOINTS, ETCD_CA_CERT_FILE, ...;
// nil means none) overridden by the keys set in the network configuration.
func (c *NetConf) ClientConfig(lookup func(string) (string, bool)) (client.Config, error) {
	if c.DatastoreType == DatastoreKubernetes {
		return client.Config{}, fmt.Errorf("%w: datastore_type %q is not supported by this build yet; use %q with etcd_endpoints",
			ErrInvalid, c.DatastoreType, DatastoreEtcdV3)
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
	if c.EtcdDiscoverySrv != "" && c.EtcdEndpoints == "" {
		return client.Config{}, fmt.Errorf("%w: etcd_discovery_srv is not supported yet; set etcd_endpoints", ErrInvalid)
	}
	return cfg, nil
}
