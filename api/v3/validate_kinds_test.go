package v3

import (
	"errors"
	"strings"
	"testing"
)

func TestValidateEndpointsAndSets(t *testing.T) {
	hep := func(spec string) string { return doc("HostEndpoint", "h", "", spec) }
	wep := func(spec string) string { return doc("WorkloadEndpoint", "n1-k8s-pod-eth0", "ns1", spec) }
	runValidate(t, []vcase{
		{"hep valid", hep(`{node: n1, interfaceName: eth0, expectedIPs: [10.0.0.1, "fd00::1"], profiles: [p1], ports: [{name: http, protocol: TCP, port: 80}]}`), nil},
		{"hep wildcard", hep(`{node: n1, interfaceName: "*"}`), nil},
		{"hep ips only", hep(`{node: n1, expectedIPs: [10.0.0.1]}`), nil},
		{"hep no node", hep(`{interfaceName: eth0}`), []string{"spec.node"}},
		{"hep neither", hep(`{node: n1}`), []string{"spec"}},
		{"hep long iface", hep(`{node: n1, interfaceName: abcdefghijklmnop}`), []string{"spec.interfaceName"}},
		{"hep iface chars", hep(`{node: n1, interfaceName: "eth 0"}`), []string{"spec.interfaceName"}},
		{"hep bad ip", hep(`{node: n1, expectedIPs: [10.0.0.0/8]}`), []string{"spec.expectedIPs[0]"}},
		{"hep port protocol", hep(`{node: n1, interfaceName: eth0, ports: [{name: x, protocol: ICMP, port: 1}]}`), []string{"spec.ports[0].protocol"}},
		{"hep port zero", hep(`{node: n1, interfaceName: eth0, ports: [{name: x, protocol: UDP, port: 0}]}`), []string{"spec.ports[0].port"}},
		{"hep port name", hep(`{node: n1, interfaceName: eth0, ports: [{name: "", protocol: UDP, port: 1}]}`), []string{"spec.ports[0].name"}},
		{"hep namespaced", doc("HostEndpoint", "h", "ns1", `{node: n1, interfaceName: eth0}`), []string{"metadata.namespace"}},
		{"wep valid", wep(`{orchestrator: k8s, node: n1, pod: pod, endpoint: eth0, ipNetworks: [10.0.0.1/32, "fd00::1/128"], ipNATs: [{internalIP: 10.0.0.1, externalIP: 1.2.3.4}], interfaceName: cali12345, mac: "ee:ee:ee:ee:ee:ee", profiles: [kns.ns1], ports: [{name: dns, protocol: UDP, port: 53, hostPort: 0, hostIP: ""}], qosControls: {ingressBandwidth: 1000, dscp: AF11}}`), nil},
		{"wep /24", wep(`{ipNetworks: [10.0.0.0/24]}`), []string{"spec.ipNetworks[0]"}},
		{"wep bare ip", wep(`{ipNetworks: [10.0.0.1]}`), nil},
		{"wep bad mac", wep(`{mac: "zz"}`), []string{"spec.mac"}},
		{"wep gateway family", wep(`{ipv4Gateway: "fd00::1"}`), []string{"spec.ipv4Gateway"}},
		{"wep nat", wep(`{ipNATs: [{internalIP: x, externalIP: 1.2.3.4}]}`), []string{"spec.ipNATs[0].internalIP"}},
		{"wep dscp", wep(`{qosControls: {dscp: 64}}`), []string{"spec.qosControls.dscp"}},
		{"wep dscp name", wep(`{qosControls: {dscp: XX}}`), []string{"spec.qosControls.dscp"}},
		{"wep negative bw", wep(`{qosControls: {egressBandwidth: -1}}`), []string{"spec.qosControls.egressBandwidth"}},
		{"wep spoof", wep(`{allowSpoofedSourcePrefixes: [nope]}`), []string{"spec.allowSpoofedSourcePrefixes[0]"}},
		{"wep no namespace", doc("WorkloadEndpoint", "w", "", `{}`), []string{"metadata.namespace"}},
		{"netset valid", doc("NetworkSet", "s", "ns1", `{nets: [10.0.0.0/8, 1.2.3.4, "fd00::/64"]}`), nil},
		{"netset bad net", doc("NetworkSet", "s", "ns1", `{nets: [10.0.0.0/99]}`), []string{"spec.nets[0]"}},
		{"netset ns label", "apiVersion: projectcalico.org/v3\nkind: NetworkSet\nmetadata: {name: s, namespace: ns1, labels: {projectcalico.org/namespace: x}}\n", []string{"metadata.labels"}},
		{"gns valid", doc("GlobalNetworkSet", "s", "", `{nets: [10.0.0.0/8]}`), nil},
		{"gns ns label", "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkSet\nmetadata: {name: s, labels: {projectcalico.org/namespace: x}}\n", []string{"metadata.labels"}},
		{"gns namespaced", doc("GlobalNetworkSet", "s", "ns1", `{}`), []string{"metadata.namespace"}},
	})
}

func TestValidateIPAM(t *testing.T) {
	pool := func(spec string) string { return doc("IPPool", "p", "", spec) }
	runValidate(t, []vcase{
		{"pool valid", pool(`{cidr: 10.0.0.0/16, ipipMode: CrossSubnet, natOutgoing: true}`), nil},
		{"pool v6 valid", pool(`{cidr: "fd00::/48", vxlanMode: Always}`), nil},
		{"pool no cidr", pool(`{}`), []string{"spec.cidr"}},
		{"pool not masked", pool(`{cidr: 10.0.0.1/16}`), []string{"spec.cidr"}},
		{"pool bare ip", pool(`{cidr: 10.0.0.1}`), []string{"spec.cidr"}},
		{"pool link local", pool(`{cidr: 169.254.0.0/16}`), []string{"spec.cidr"}},
		{"pool covers link local", pool(`{cidr: 128.0.0.0/1, blockSize: 26}`), []string{"spec.cidr"}},
		{"pool v6 link local", pool(`{cidr: "fe80::/64"}`), []string{"spec.cidr"}},
		{"pool block v4 small", pool(`{cidr: 10.0.0.0/8, blockSize: 19}`), []string{"spec.blockSize"}},
		{"pool block v4 33", pool(`{cidr: 10.0.0.0/8, blockSize: 33}`), []string{"spec.blockSize"}},
		{"pool block v6 range", pool(`{cidr: "fd00::/48", blockSize: 115}`), []string{"spec.blockSize"}},
		{"pool block v6 ok", pool(`{cidr: "fd00::/48", blockSize: 128}`), nil},
		{"pool block bigger than pool", pool(`{cidr: 10.0.0.0/28}`), []string{"spec.blockSize"}},
		{"pool block bigger than disabled pool", pool(`{cidr: 10.0.0.0/28, disabled: true}`), nil},
		{"pool both encaps", pool(`{cidr: 10.0.0.0/16, ipipMode: Always, vxlanMode: Always}`), []string{"spec.ipipMode"}},
		{"pool ipip v6", pool(`{cidr: "fd00::/48", ipipMode: Always}`), []string{"spec.ipipMode"}},
		{"pool bad mode", pool(`{cidr: 10.0.0.0/16, vxlanMode: always}`), []string{"spec.vxlanMode"}},
		{"pool node selector global", pool(`{cidr: 10.0.0.0/16, nodeSelector: "global()"}`), []string{"spec.nodeSelector"}},
		{"pool node selector bad", pool(`{cidr: 10.0.0.0/16, nodeSelector: "a ="}`), []string{"spec.nodeSelector"}},
		{"pool assignment", pool(`{cidr: 10.0.0.0/16, assignmentMode: Sometimes}`), []string{"spec.assignmentMode"}},
		{"pool manual", pool(`{cidr: 10.0.0.0/16, assignmentMode: Manual}`), nil},
		{"pool use unknown", pool(`{cidr: 10.0.0.0/16, allowedUses: [Pods]}`), []string{"spec.allowedUses[0]"}},
		{"pool lb ok", pool(`{cidr: 10.0.0.0/16, allowedUses: [LoadBalancer]}`), nil},
		{"pool lb mixed", pool(`{cidr: 10.0.0.0/16, allowedUses: [LoadBalancer, Workload]}`), []string{"spec.allowedUses"}},
		{"pool lb encap", pool(`{cidr: 10.0.0.0/16, allowedUses: [LoadBalancer], vxlanMode: Always}`), []string{"spec.allowedUses"}},
		{"pool lb no export", pool(`{cidr: 10.0.0.0/16, allowedUses: [LoadBalancer], disableBGPExport: true}`), []string{"spec.disableBGPExport"}},
		{"pool lb selector", pool(`{cidr: 10.0.0.0/16, allowedUses: [LoadBalancer], nodeSelector: "has(a)"}`), []string{"spec.nodeSelector"}},
		{"pool tunnel ns selector", pool(`{cidr: 10.0.0.0/16, namespaceSelector: "has(a)"}`), []string{"spec.namespaceSelector"}},
		{"pool workload ns selector", pool(`{cidr: 10.0.0.0/16, namespaceSelector: "has(a)", allowedUses: [Workload]}`), nil},
		{"pool namespaced", doc("IPPool", "p", "ns1", `{cidr: 10.0.0.0/16}`), []string{"metadata.namespace"}},
		{"reservation valid", doc("IPReservation", "r", "", `{reservedCIDRs: [10.0.0.0/24, 10.1.1.1, "fd00::/120"]}`), nil},
		{"reservation bad", doc("IPReservation", "r", "", `{reservedCIDRs: [10.0.0.0/24, bad]}`), []string{"spec.reservedCIDRs[1]"}},
		{"ipam valid", doc("IPAMConfiguration", "default", "", `{strictAffinity: true, maxBlocksPerHost: 4, autoAllocateBlocks: false, ipCooldownSeconds: 1200, kubeVirtVMAddressPersistence: Disabled}`), nil},
		{"ipam name", doc("IPAMConfiguration", "other", "", `{strictAffinity: false}`), []string{"metadata.name"}},
		{"ipam max needs strict", doc("IPAMConfiguration", "default", "", `{strictAffinity: false, maxBlocksPerHost: 1}`), []string{"spec.maxBlocksPerHost"}},
		{"ipam negative max", doc("IPAMConfiguration", "default", "", `{strictAffinity: true, maxBlocksPerHost: -1}`), []string{"spec.maxBlocksPerHost"}},
		{"ipam no auto no strict", doc("IPAMConfiguration", "default", "", `{strictAffinity: false, autoAllocateBlocks: false}`), []string{"spec.autoAllocateBlocks"}},
		{"ipam cooldown", doc("IPAMConfiguration", "default", "", `{ipCooldownSeconds: 1201}`), []string{"spec.ipCooldownSeconds"}},
		{"ipam persistence", doc("IPAMConfiguration", "default", "", `{kubeVirtVMAddressPersistence: Maybe}`), []string{"spec.kubeVirtVMAddressPersistence"}},
	})
}

func TestValidateBGP(t *testing.T) {
	cfg := func(name, spec string) string { return doc("BGPConfiguration", name, "", spec) }
	peer := func(spec string) string { return doc("BGPPeer", "p", "", spec) }
	filter := func(spec string) string { return doc("BGPFilter", "f", "", spec) }
	runValidate(t, []vcase{
		{"cfg valid", cfg("default", `{asNumber: 64513, nodeToNodeMeshEnabled: true, listenPort: 1179, logSeverityScreen: debug, serviceClusterIPs: [{cidr: 10.96.0.0/12}], communities: [{name: c1, value: "65000:100"}, {name: c2, value: "1:2:3"}], prefixAdvertisements: [{cidr: 10.0.0.0/8, communities: [c1, c2, "64512:1"]}], nodeMeshPassword: {secretKeyRef: {name: s, key: k}}, bindMode: NodeIP, ignoredInterfaces: ["eth*"], serviceLoadBalancerAggregation: Disabled, programClusterRoutes: EnabledNoEncapOnly}`), nil},
		{"cfg dotted as", cfg("default", `{asNumber: "1.10"}`), nil},
		{"cfg node name", cfg("node.n1", `{listenPort: 1179}`), nil},
		{"cfg bad name", cfg("n1", `{}`), []string{"metadata.name"}},
		{"cfg node as", cfg("node.n1", `{asNumber: 1, nodeToNodeMeshEnabled: false}`), []string{"spec.asNumber", "spec.nodeToNodeMeshEnabled"}},
		{"cfg log level", cfg("default", `{logSeverityScreen: Loud}`), []string{"spec.logSeverityScreen"}},
		{"cfg cidr", cfg("default", `{serviceExternalIPs: [{cidr: x}], serviceLoadBalancerIPs: [{cidr: 10.0.0.0/40}]}`), []string{"spec.serviceExternalIPs[0].cidr", "spec.serviceLoadBalancerIPs[0].cidr"}},
		{"cfg community value", cfg("default", `{communities: [{name: c, value: "70000:1"}], prefixAdvertisements: [{cidr: 10.0.0.0/8, communities: [c]}]}`), []string{"spec.communities[0].value"}},
		{"cfg large community", cfg("default", `{communities: [{name: c, value: "4294967295:1:1"}], prefixAdvertisements: [{cidr: 10.0.0.0/8, communities: [c]}]}`), nil},
		{"cfg community unused", cfg("default", `{communities: [{name: c, value: "1:1"}]}`), []string{"spec.communities[0]"}},
		{"cfg community unknown", cfg("default", `{prefixAdvertisements: [{cidr: 10.0.0.0/8, communities: [nope]}]}`), []string{"spec.prefixAdvertisements[0].communities[0]"}},
		{"cfg password mesh off", cfg("default", `{nodeToNodeMeshEnabled: false, nodeMeshPassword: {secretKeyRef: {name: s, key: k}}}`), []string{"spec.nodeMeshPassword"}},
		{"cfg password no key", cfg("default", `{nodeMeshPassword: {secretKeyRef: {name: s, key: ""}}}`), []string{"spec.nodeMeshPassword.secretKeyRef.key"}},
		{"cfg bind", cfg("default", `{bindMode: All}`), []string{"spec.bindMode"}},
		{"cfg lwp family", cfg("default", `{localWorkloadPeeringIPV4: "fd00::1", localWorkloadPeeringIPV6: 10.0.0.1}`), []string{"spec.localWorkloadPeeringIPV4", "spec.localWorkloadPeeringIPV6"}},
		{"cfg priority", cfg("default", `{ipv4NormalRoutePriority: 0}`), []string{"spec.ipv4NormalRoutePriority"}},
		{"cfg restart", cfg("default", `{nodeMeshMaxRestartTime: -1s}`), []string{"spec.nodeMeshMaxRestartTime"}},
		{"peer valid", peer(`{node: n1, peerIP: 192.0.2.1, asNumber: 64500, password: {secretKeyRef: {name: s, key: k}}, sourceAddress: None, nextHopMode: Self, filters: [f1], reachableBy: 10.0.0.1, keepaliveTime: 10s}`), nil},
		{"peer ip port", peer(`{peerIP: "192.0.2.1:1179", asNumber: 1}`), nil},
		{"peer v6 port", peer(`{peerIP: "[fd00::1]:1179", asNumber: 1}`), nil},
		{"peer v6 bare", peer(`{peerIP: "fd00::1", asNumber: 1}`), nil},
		{"peer bad ip", peer(`{peerIP: "300.1.1.1"}`), []string{"spec.peerIP"}},
		{"peer bad port", peer(`{peerIP: "192.0.2.1:0"}`), []string{"spec.peerIP"}},
		{"peer bad port 2", peer(`{peerIP: "192.0.2.1:70000"}`), []string{"spec.peerIP"}},
		{"peer selectors", peer(`{nodeSelector: "has(rr)", peerSelector: "has(rr)"}`), nil},
		{"peer node and selector", peer(`{node: n1, nodeSelector: "has(a)"}`), []string{"spec.nodeSelector"}},
		{"peer ip and selector", peer(`{peerIP: 10.0.0.1, peerSelector: "has(a)"}`), []string{"spec.peerSelector"}},
		{"peer selector with as", peer(`{peerSelector: "has(a)", asNumber: 64512}`), []string{"spec.asNumber"}},
		{"peer bad selector", peer(`{nodeSelector: "has("}`), []string{"spec.nodeSelector"}},
		{"peer next hop both", peer(`{peerIP: 10.0.0.1, nextHopMode: Keep, keepOriginalNextHop: true}`), []string{"spec.nextHopMode"}},
		{"peer next hop bad", peer(`{peerIP: 10.0.0.1, nextHopMode: Other}`), []string{"spec.nextHopMode"}},
		{"peer reachable family", peer(`{peerIP: 10.0.0.1, reachableBy: "fd00::1"}`), []string{"spec.reachableBy"}},
		{"peer reachable no ip", peer(`{peerSelector: "has(a)", reachableBy: 10.0.0.1}`), []string{"spec.reachableBy"}},
		{"peer lws ok", peer(`{localWorkloadSelector: "has(bgp)", asNumber: 65000}`), nil},
		{"peer lws no as", peer(`{localWorkloadSelector: "has(bgp)"}`), []string{"spec.asNumber"}},
		{"peer lws with ip", peer(`{localWorkloadSelector: "has(bgp)", asNumber: 1, peerIP: 10.0.0.1}`), []string{"spec.peerIP"}},
		{"peer source", peer(`{sourceAddress: Any}`), []string{"spec.sourceAddress"}},
		{"peer reverse", peer(`{reversePeering: Always}`), []string{"spec.reversePeering"}},
		{"peer filter name", peer(`{filters: [Bad_Name]}`), []string{"spec.filters[0]"}},
		{"filter valid", filter(`{exportV4: [{action: Accept, cidr: 10.0.0.0/8, matchOperator: In, prefixLength: {min: 16, max: 24}, source: RemotePeers, interface: "eth*", peerType: eBGP, communities: {values: ["1:1"]}, priority: 10, operations: [{addCommunity: {value: "2:2"}}, {prependASPath: {prefix: [65000]}}, {setPriority: {value: 5}}]}], importV6: [{action: Reject, cidr: "fd00::/8", matchOperator: NotEqual}]}`), nil},
		{"filter no action", filter(`{importV4: [{cidr: 10.0.0.0/8, matchOperator: Equal}]}`), []string{"spec.importV4[0].action"}},
		{"filter bad action", filter(`{importV4: [{action: Allow}]}`), []string{"spec.importV4[0].action"}},
		{"filter bad operator", filter(`{exportV4: [{action: Accept, cidr: 10.0.0.0/8, matchOperator: Within}]}`), []string{"spec.exportV4[0].matchOperator"}},
		{"filter cidr no operator", filter(`{exportV4: [{action: Accept, cidr: 10.0.0.0/8}]}`), []string{"spec.exportV4[0].matchOperator"}},
		{"filter operator no cidr", filter(`{exportV4: [{action: Accept, matchOperator: In}]}`), []string{"spec.exportV4[0].cidr"}},
		{"filter v6 in v4", filter(`{exportV4: [{action: Accept, cidr: "fd00::/8", matchOperator: In}]}`), []string{"spec.exportV4[0].cidr"}},
		{"filter v4 in v6", filter(`{exportV6: [{action: Accept, cidr: 10.0.0.0/8, matchOperator: In}]}`), []string{"spec.exportV6[0].cidr"}},
		{"filter prefix range", filter(`{exportV4: [{action: Accept, cidr: 10.0.0.0/8, matchOperator: In, prefixLength: {min: 24, max: 33}}]}`), []string{"spec.exportV4[0].prefixLength.max"}},
		{"filter prefix order", filter(`{exportV4: [{action: Accept, cidr: 10.0.0.0/8, matchOperator: In, prefixLength: {min: 24, max: 16}}]}`), []string{"spec.exportV4[0].prefixLength"}},
		{"filter prefix needs cidr", filter(`{exportV6: [{action: Accept, prefixLength: {min: 64}}]}`), []string{"spec.exportV6[0].prefixLength"}},
		{"filter source", filter(`{exportV4: [{action: Accept, source: Local}]}`), []string{"spec.exportV4[0].source"}},
		{"filter peer type", filter(`{exportV4: [{action: Accept, peerType: EBGP}]}`), []string{"spec.exportV4[0].peerType"}},
		{"filter interface", filter(`{exportV4: [{action: Accept, interface: "a very long interface"}]}`), []string{"spec.exportV4[0].interface"}},
		{"filter ops with reject", filter(`{exportV4: [{action: Reject, operations: [{setPriority: {value: 1}}]}]}`), []string{"spec.exportV4[0].operations"}},
		{"filter op two fields", filter(`{exportV4: [{action: Accept, operations: [{setPriority: {value: 1}, addCommunity: {value: "1:1"}}]}]}`), []string{"spec.exportV4[0].operations[0]"}},
		{"filter community values", filter(`{exportV4: [{action: Accept, communities: {values: ["1:1", "2:2"]}}]}`), []string{"spec.exportV4[0].communities.values"}},
	})
}

func TestValidateNodeAndSingletons(t *testing.T) {
	node := func(spec string) string { return doc("Node", "n1", "", spec) }
	runValidate(t, []vcase{
		{"node valid", node(`{bgp: {asNumber: 65001, ipv4Address: 10.0.0.1/24, ipv6Address: "fd00::1/64", ipv4IPIPTunnelAddr: 10.244.0.1, routeReflectorClusterID: 224.0.0.1}, ipv4VXLANTunnelAddr: 10.244.0.2, vxlanTunnelMACAddr: "66:aa:bb:cc:dd:ee", wireguard: {interfaceIPv4Address: 10.244.0.3}, addresses: [{address: 10.0.0.1, type: InternalIP}], orchRefs: [{nodeName: n1, orchestrator: k8s}]}`), nil},
		{"node empty bgp", node(`{bgp: {}}`), []string{"spec.bgp"}},
		{"node bgp as only", node(`{bgp: {asNumber: 1}}`), nil},
		{"node v4 family", node(`{bgp: {ipv4Address: "fd00::1/64"}}`), []string{"spec.bgp.ipv4Address"}},
		{"node v6 bad", node(`{bgp: {ipv6Address: "fd00::1/129"}}`), []string{"spec.bgp.ipv6Address"}},
		{"node rr id", node(`{bgp: {ipv4Address: 10.0.0.1/24, routeReflectorClusterID: "fd00::1"}}`), []string{"spec.bgp.routeReflectorClusterID"}},
		{"node vxlan mac", node(`{vxlanTunnelMACAddr: nope}`), []string{"spec.vxlanTunnelMACAddr"}},
		{"node address type", node(`{addresses: [{address: 10.0.0.1, type: Public}]}`), []string{"spec.addresses[0].type"}},
		{"node orch", node(`{orchRefs: [{nodeName: n1}]}`), []string{"spec.orchRefs[0].orchestrator"}},
		{"node wg key", "apiVersion: projectcalico.org/v3\nkind: Node\nmetadata: {name: n1}\nstatus: {wireguardPublicKey: abc}\n", []string{"status.wireguardPublicKey"}},
		{"node wg key ok", "apiVersion: projectcalico.org/v3\nkind: Node\nmetadata: {name: n1}\nstatus: {wireguardPublicKey: " + strings.Repeat("A", 43) + "=, podCIDRs: [10.0.0.0/24]}\n", nil},
		{"ci valid", doc("ClusterInformation", "default", "", `{clusterGUID: abc, clusterType: "k8s,bgp", calicoVersion: v3.30.0, datastoreReady: true}`), nil},
		{"ci name", doc("ClusterInformation", "info", "", `{}`), []string{"metadata.name"}},
		{"kcc valid", doc("KubeControllersConfiguration", "default", "", `{logSeverityScreen: Info, healthChecks: Enabled, etcdV3CompactionPeriod: 10m, controllers: {node: {reconcilerPeriod: 5m, syncLabels: Enabled, hostEndpoint: {autoCreate: Disabled}}, policy: {reconcilerPeriod: 5m}, loadBalancer: {assignIPs: AllServices}}}`), nil},
		{"kcc name", doc("KubeControllersConfiguration", "kcc", "", `{controllers: {}}`), []string{"metadata.name"}},
		{"kcc enums", doc("KubeControllersConfiguration", "default", "", `{healthChecks: Sometimes, controllers: {node: {syncLabels: Maybe}, loadBalancer: {assignIPs: Some}}}`), []string{"spec.healthChecks", "spec.controllers.node.syncLabels", "spec.controllers.loadBalancer.assignIPs"}},
		{"felix valid", doc("FelixConfiguration", "default", "", `{defaultEndpointToHostAction: Return, failsafeInboundHostPorts: [{protocol: tcp, port: 22}, {protocol: udp, port: 68, net: 10.0.0.0/8}], iptablesRefreshInterval: 180s, iptablesBackend: nft, routeTableRanges: [{min: 1, max: 250}], vxlanPort: 4789, bpfPSNATPorts: "20000:29999", kubeNodePortRanges: ["30000:32767"], interfaceExclude: "kube-ipvs0,/^veth.*/", logSeverityScreen: Info, programClusterRoutes: EnabledIPIPOnly}`), nil},
		{"felix empty failsafe", doc("FelixConfiguration", "default", "", `{failsafeInboundHostPorts: []}`), nil},
		{"felix node", doc("FelixConfiguration", "node.n1", "", `{}`), nil},
		{"felix bad name", doc("FelixConfiguration", "foo", "", `{}`), []string{"metadata.name"}},
		{"felix selector name", doc("FelixConfiguration", "foo", "", `{nodeSelector: "has(x)"}`), nil},
		{"felix bad selector", doc("FelixConfiguration", "foo", "", `{nodeSelector: "has("}`), []string{"spec.nodeSelector"}},
		{"felix enums", doc("FelixConfiguration", "default", "", `{chainInsertMode: Prepend, iptablesFilterDenyAction: Accept, nftablesMode: Sometimes, bpfEnforceRPF: Lax}`), []string{"spec.chainInsertMode", "spec.iptablesFilterDenyAction", "spec.nftablesMode", "spec.bpfEnforceRPF"}},
		{"felix failsafe", doc("FelixConfiguration", "default", "", `{failsafeOutboundHostPorts: [{protocol: icmp, port: 0, net: x}]}`), []string{"spec.failsafeOutboundHostPorts[0].protocol", "spec.failsafeOutboundHostPorts[0].port", "spec.failsafeOutboundHostPorts[0].net"}},
		{"felix route tables", doc("FelixConfiguration", "default", "", `{routeTableRanges: [{min: 200, max: 300}, {min: 5, max: 1}]}`), []string{"spec.routeTableRanges[0]", "spec.routeTableRanges[1]"}},
		{"felix ports", doc("FelixConfiguration", "default", "", `{vxlanPort: 0, healthPort: 70000, natPortRange: "10:5"}`), []string{"spec.vxlanPort", "spec.healthPort", "spec.natPortRange"}},
		{"felix regex", doc("FelixConfiguration", "default", "", `{mtuIfacePattern: "(", interfaceExclude: "/(/"}`), []string{"spec.mtuIfacePattern", "spec.interfaceExclude"}},
		{"felix duration", doc("FelixConfiguration", "default", "", `{routeRefreshInterval: -5s}`), []string{"spec.routeRefreshInterval"}},
		{"felix addresses", doc("FelixConfiguration", "default", "", `{natOutgoingAddress: x, deviceRouteSourceAddress: "fd00::1"}`), []string{"spec.natOutgoingAddress", "spec.deviceRouteSourceAddress"}},
	})
}

func TestValidationErrorMessage(t *testing.T) {
	r := decodeOneT(t, doc("NetworkPolicy", "p", "ns1", "{ingress: [{ipVersion: 5}]}"))
	err := Validate(r)
	want := `invalid NetworkPolicy "ns1/p": spec.ingress[0].action: required; spec.ingress[0].ipVersion: 5 is not 4 or 6`
	if err == nil || err.Error() != want {
		t.Errorf("Error() = %v\nwant %s", err, want)
	}
	var ve *ValidationError
	if !errors.As(err, &ve) || ve.Kind != "NetworkPolicy" || ve.Namespace != "ns1" || ve.Name != "p" {
		t.Errorf("ValidationError = %+v", ve)
	}
}

func TestValidateSelectorDetail(t *testing.T) {
	r := decodeOneT(t, np(`{selector: "a == 'b' && && c"}`))
	err := Validate(r)
	if err == nil || !strings.Contains(err.Error(), "spec.selector: invalid selector") || !strings.Contains(err.Error(), "column") {
		t.Errorf("error = %v; want the selector parse error with its column", err)
	}
}

func TestValidateUpdate(t *testing.T) {
	oldPool := decodeOneT(t, doc("IPPool", "p", "", "{cidr: 10.0.0.0/16}"))
	Default(oldPool)
	cases := []struct {
		name   string
		spec   string
		fields []string
	}{
		{"same (defaulted later)", "{cidr: 10.0.0.0/16, natOutgoing: true}", nil},
		{"same explicit block size", "{cidr: 10.0.0.0/16, blockSize: 26}", nil},
		{"cidr changed", "{cidr: 10.1.0.0/16}", []string{"spec.cidr"}},
		{"block size changed", "{cidr: 10.0.0.0/16, blockSize: 28}", []string{"spec.blockSize"}},
		{"both changed", "{cidr: 10.1.0.0/16, blockSize: 28}", []string{"spec.blockSize", "spec.cidr"}},
		{"new invalid", "{cidr: 10.0.0.1/16}", []string{"spec.cidr"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			newPool := decodeOneT(t, doc("IPPool", "p", "", tc.spec))
			got := errorFields(t, ValidateUpdate(oldPool, newPool))
			if strings.Join(got, ",") != strings.Join(tc.fields, ",") {
				t.Errorf("fields = %q, want %q", got, tc.fields)
			}
		})
	}
	if err := ValidateUpdate(oldPool, NewTier()); err == nil {
		t.Error("ValidateUpdate across kinds: want error")
	}
}
