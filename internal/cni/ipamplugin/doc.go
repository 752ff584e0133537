// Package ipamplugin is the logic of the calico-ipam CNI plugin: it gives a
// container addresses from Calico's IP pools through internal/ipam, for any
// CNI runtime, CNI spec 0.1.0 to 1.1.0, reading the network configuration
// keys Calico documents (ipam.assign_ipv4/assign_ipv6, ipv4_pools/ipv6_pools,
// datastore_type, etcd_endpoints and etcd_*_file, nodename/nodename_file,
// ipam_lock_file).
//
// ADD allocates one address per requested family from the node's own blocks
// (claiming or borrowing as IPAM allows) under the handle
// "<network name>.<container id>", with the node, pod and namespace as
// attributes (K8S_POD_NAMESPACE and K8S_POD_NAME from CNI_ARGS); CNI_ARGS
// IP=<address> asks for one specific address instead. It is all or nothing,
// and a repeated ADD for the same container returns the addresses the
// handle already owns. DEL releases the handle and then the handle older
// Calico releases used ("<namespace>.<pod>", or the container ID), and
// succeeds when they are already gone. CHECK verifies that the handle owns
// the addresses of the previous result. STATUS says whether the datastore is
// reachable and ready and a pool can serve ADD. GC releases the addresses
// this network holds on this node for containers the runtime no longer
// lists (sparing allocations younger than a grace period).
//
// ADD, DEL and GC hold a host-wide flock (ipam_lock_file, default
// /var/run/calico/ipam.lock) around their IPAM calls so that one host's
// invocations do not fight over the same block; the time limit of the
// IPAM work starts only once the lock is held. The plugin refuses to
// change anything while ClusterInformation "default" has datastoreReady
// false (calicoctl datastore migrate lock).
//
// Every failure reaches the runtime as a CNI error whose code follows the
// CNI spec (7: fix the configuration, 11: try again later) or is one of
// the plugin's own (see CodeNoPool and the others), and whose message says
// what to fix. Only the etcdv3 datastore is supported; the pod and namespace
// annotations that choose pools or addresses (cni.projectcalico.org/...)
// need the Kubernetes API and are not read.
package ipamplugin
