// Package lab is calico-lab: a whole multi-host Calico on one Linux machine,
// made of network namespaces, with the real product inside.
//
// A lab named N is:
//
//   - a directory /run/calico-lab/N: state.json (what the lab is made of),
//     a lock, logs, the hosts' node name and MTU files, BGP status sockets
//     and IPAM locks, and the embedded etcd's data;
//   - a datastore process (calico-lab's hidden "datastore" command): an
//     embedded single-node etcd on a free loopback port of the machine, for
//     calicoctl, plus a TCP relay listening on the underlay gateway, for
//     the hosts (or, with --etcd-endpoints, only a relay to that etcd);
//   - the namespace N.underlay holding the underlay bridge and the gateway
//     address (198.18.0.0/24 by default, a benchmarking range);
//   - one namespace N.<host> per host, with eth0 on the bridge and a
//     default route through the gateway, running the real calico-node
//     (registration, the nftables policy engine, BGP or VXLAN) as a
//     background process;
//   - one namespace N.<namespace>.<pod> per workload, attached by the real
//     calico CNI plugin and calico-ipam run in the host's namespace as a
//     kubelet would run them (K8S_POD_NAMESPACE and K8S_POD_NAME in
//     CNI_ARGS, the pod's labels through args.cni.labels), running an
//     HTTP/TCP/UDP echo server (calico-lab's hidden "serve" command) that
//     answers with the workload's namespace/name.
//
// The lab also creates the kns.<namespace> Profiles that Calico's
// Kubernetes controllers would keep (allow all, the pcns.projectcalico.org/name
// label), since there is no Kubernetes API.
//
// Every process the lab starts carries CALICO_LAB=N in its environment,
// every namespace starts with "N." and every link it makes has the alias
// "calico-lab:N"; the lab makes nothing in the machine's own namespace.
// That is how labs run side by side, and how Down removes everything even
// when `up` crashed and left no state.
//
// Up checks everything before it makes anything (root, the name is free,
// kernel features in a throwaway namespace, the ranges do not overlap the
// machine's routes) and removes all it made when a later step fails. It
// returns when the lab is ready: nodes registered, policy engines ready
// (their /readiness), BGP sessions established, and workloads answering
// across every pair of hosts. A calico-node that exits while the lab starts
// is restarted a few times, as a kubelet would.
//
// Matrix probes every ordered pair of workloads with a real connection from
// inside the source namespace. Only the sockets are made inside the
// namespace (by one goroutine per namespace that keeps a small stock); the
// connects and waits run on Go's poller, paced so that a small machine does
// not fall behind, so thousands of probes are in flight at once. Policy
// shows in the connect (a denied SYN is dropped): the timeout bounds the
// connect, and an answer from the destination's echo server, naming it,
// makes the pair allowed.
package lab
