package cni

import (
	"crypto/sha1"
	"encoding/hex"
	"sort"
	"strings"

	v3 "github.com/calico-go/calico/api/v3"
	"github.com/calico-go/calico/internal/cni/netconf"
)

// AnnotationNetwork records on a WorkloadEndpoint the CNI network that
// created it, so that GC of one network never touches another's endpoints.
const AnnotationNetwork = "cni.projectcalico.org/network"

// Workload is who an invocation is for, and the names derived from it.
type Workload struct {
	Orchestrator string // v3.OrchestratorKubernetes or v3.OrchestratorCNI
	Network      string // the CNI network name
	Node         string
	ContainerID  string
	IfName       string
	// Kubernetes pods only.
	PodNamespace   string
	PodName        string
	ServiceAccount string // empty unless known
}

// NewWorkload derives the identity from the invocation: Kubernetes when
// CNI_ARGS names a pod, the generic "cni" orchestrator otherwise.
func NewWorkload(network, node, containerID, ifName string, k8s netconf.CNIArgs) Workload {
	w := Workload{Orchestrator: v3.OrchestratorCNI, Network: network, Node: node, ContainerID: containerID, IfName: ifName}
	if k8s.IsPod() {
		w.Orchestrator = v3.OrchestratorKubernetes
		w.PodNamespace, w.PodName = k8s.PodNamespace, k8s.PodName
	}
	return w
}

// IsPod reports whether the workload is a Kubernetes pod.
func (w Workload) IsPod() bool { return w.Orchestrator == v3.OrchestratorKubernetes }

// HostVethName is the host-side interface name: prefix + the first 11 hex
// digits of SHA-1 of the workload key. For a pod the key is
// "<namespace>.<pod>", as in Calico, so Felix and every tool that computes
// the name from the pod agree. For other workloads it is
// "<containerID>.<ifName>": stable for the attachment, and distinct for two
// interfaces of one container on two Calico networks.
func (w Workload) HostVethName(prefix string) string {
	key := w.ContainerID + "." + w.IfName
	if w.IsPod() {
		key = w.PodNamespace + "." + w.PodName
	}
	sum := sha1.Sum([]byte(key))
	name := prefix + hex.EncodeToString(sum[:])[:11]
	if len(name) > 15 {
		name = name[:15]
	}
	return name
}

// EndpointNamespace is the namespace of the WorkloadEndpoint: the pod's, or
// "default" for other workloads.
func (w Workload) EndpointNamespace() string {
	if w.IsPod() {
		return w.PodNamespace
	}
	return "default"
}

// EndpointName is the WorkloadEndpoint name (SPEC 1.2):
// <node>-k8s-<pod>-<if> or <node>-cni-<containerID>-<if>.
func (w Workload) EndpointName() string {
	workload := w.ContainerID
	if w.IsPod() {
		workload = w.PodName
	}
	return v3.WorkloadEndpointName(w.Node, w.Orchestrator, workload, w.IfName)
}

// Profiles are the endpoint's profiles: kns.<ns> (and ksa.<ns>.<sa>) for a
// pod, the network name otherwise.
func (w Workload) Profiles() []string {
	if !w.IsPod() {
		return []string{w.Network}
	}
	p := []string{v3.ProfilePrefixNamespace + w.PodNamespace}
	if w.ServiceAccount != "" {
		p = append(p, v3.ProfilePrefixServiceAccount+w.PodNamespace+"."+w.ServiceAccount)
	}
	return p
}

// Labels are the endpoint's labels: the extra labels (from the CNI args
// convention, for non-pod workloads) overlaid with Calico's own, which win.
func (w Workload) Labels(extra map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range extra {
		out[k] = v
	}
	out[v3.LabelNamespace] = w.EndpointNamespace()
	out[v3.LabelOrchestrator] = w.Orchestrator
	if w.ServiceAccount != "" && len(w.ServiceAccount) < 63 {
		out[v3.LabelServiceAccount] = w.ServiceAccount
	}
	return out
}

// Endpoint builds the WorkloadEndpoint for the workload.
func (w Workload) Endpoint(hostVeth, mac string, nets []string, labels map[string]string) *v3.WorkloadEndpoint {
	wep := v3.NewWorkloadEndpoint()
	wep.Name = w.EndpointName()
	wep.Namespace = w.EndpointNamespace()
	wep.Labels = w.Labels(labels)
	wep.Annotations = map[string]string{AnnotationNetwork: w.Network}
	s := &wep.Spec
	s.Orchestrator = w.Orchestrator
	s.Node = w.Node
	s.ContainerID = w.ContainerID
	s.Endpoint = w.IfName
	s.InterfaceName = hostVeth
	s.MAC = mac
	s.IPNetworks = append([]string(nil), nets...)
	sort.Strings(s.IPNetworks)
	s.Profiles = w.Profiles()
	if w.IsPod() {
		s.Pod = w.PodName
		s.ServiceAccountName = w.ServiceAccount
	} else {
		s.Workload = w.ContainerID
	}
	return wep
}

// interfacePrefix is the first entry of FELIX_INTERFACEPREFIX, or "cali".
func interfacePrefix(env string) string {
	first, _, _ := strings.Cut(env, ",")
	if first = strings.TrimSpace(first); first != "" {
		return first
	}
	return netconf.DefaultInterfacePrefix
}
