package ctl

import (
	"strings"

	v3 "github.com/calico-go/calico/api/v3"
)

// column is one column of a `get` table.
type column struct {
	header string
	paths  []fieldPath // the first path present gives the value
	def    string      // shown when no path is present
	wide   bool        // only with -o wide
	format func(v any) string
}

func (c column) value(obj any) string {
	for _, p := range c.paths {
		if v, ok := p.get(obj); ok && v != nil {
			f := c.format
			if f == nil {
				f = render
			}
			if s := f(v); s != "" {
				return s
			}
		}
	}
	return c.def
}

// col builds a column from one or more paths ("|" separated fallbacks).
func col(header, paths, def string) column {
	c := column{header: header, def: def}
	for _, p := range strings.Split(paths, "|") {
		c.paths = append(c.paths, mustPath(p))
	}
	return c
}

func wide(c column) column { c.wide = true; return c }

func withFormat(c column, f func(any) string) column { c.format = f; return c }

var nameCol = col("NAME", ".metadata.name", "")

// kindColumns are the `get` columns of each kind; kinds not listed show NAME
// only.
var kindColumns = map[string][]column{
	v3.KindIPPool: {
		nameCol,
		col("CIDR", ".spec.cidr", ""),
		wide(col("NAT", ".spec.natOutgoing", "false")),
		wide(col("IPIPMODE", ".spec.ipipMode", "Never")),
		wide(col("VXLANMODE", ".spec.vxlanMode", "Never")),
		wide(col("DISABLED", ".spec.disabled", "false")),
		wide(col("DISABLEBGPEXPORT", ".spec.disableBGPExport", "false")),
		wide(col("ASSIGNMENTMODE", ".spec.assignmentMode", "Automatic")),
		col("SELECTOR", ".spec.nodeSelector", "all()"),
	},
	v3.KindNetworkPolicy:             policyColumns(false),
	v3.KindGlobalNetworkPolicy:       policyColumns(false),
	v3.KindStagedNetworkPolicy:       policyColumns(true),
	v3.KindStagedGlobalNetworkPolicy: policyColumns(true),
	v3.KindStagedKubernetesNetworkPolicy: {
		nameCol,
		wide(col("STAGEDACTION", ".spec.stagedAction", "Set")),
	},
	v3.KindTier: {
		nameCol,
		col("ORDER", ".spec.order", ""),
		wide(col("DEFAULTACTION", ".spec.defaultAction", "Deny")),
	},
	v3.KindWorkloadEndpoint: {
		wide(nameCol),
		col("WORKLOAD", ".spec.workload|.spec.pod", ""),
		col("NODE", ".spec.node", ""),
		col("NETWORKS", ".spec.ipNetworks", ""),
		col("INTERFACE", ".spec.interfaceName", ""),
		wide(col("PROFILES", ".spec.profiles", "")),
		wide(withFormat(col("NATS", ".spec.ipNATs", ""), renderNATs)),
	},
	v3.KindHostEndpoint: {
		nameCol,
		col("NODE", ".spec.node", ""),
		wide(col("INTERFACE", ".spec.interfaceName", "")),
		wide(col("IPS", ".spec.expectedIPs", "")),
		wide(col("PROFILES", ".spec.profiles", "")),
	},
	v3.KindNetworkSet:       {nameCol, wide(col("NETS", ".spec.nets", ""))},
	v3.KindGlobalNetworkSet: {nameCol, wide(col("NETS", ".spec.nets", ""))},
	v3.KindProfile:          {nameCol, wide(col("LABELS", ".spec.labelsToApply", ""))},
	v3.KindNode: {
		nameCol,
		wide(col("ASN", ".spec.bgp.asNumber", "(global)")),
		wide(col("IPV4", ".spec.bgp.ipv4Address", "")),
		wide(col("IPV6", ".spec.bgp.ipv6Address", "")),
	},
	v3.KindBGPPeer: {
		nameCol,
		col("PEERIP", ".spec.peerIP|.spec.peerSelector", ""),
		col("NODE", ".spec.node|.spec.nodeSelector", "(global)"),
		col("ASN", ".spec.asNumber", ""),
	},
	v3.KindBGPConfiguration: {
		nameCol,
		col("LOGSEVERITY", ".spec.logSeverityScreen", ""),
		col("MESHENABLED", ".spec.nodeToNodeMeshEnabled", ""),
		col("ASNUMBER", ".spec.asNumber", ""),
	},
	v3.KindIPReservation: {nameCol, wide(col("CIDRS", ".spec.reservedCIDRs", ""))},
	v3.KindIPAMConfiguration: {
		nameCol,
		wide(col("STRICTAFFINITY", ".spec.strictAffinity", "false")),
		wide(col("MAXBLOCKSPERHOST", ".spec.maxBlocksPerHost", "0")),
	},
	v3.KindClusterInformation: {
		nameCol,
		wide(col("CALICOVERSION", ".spec.calicoVersion", "")),
		wide(col("CLUSTERTYPE", ".spec.clusterType", "")),
		wide(col("DATASTOREREADY", ".spec.datastoreReady", "")),
	},
}

func policyColumns(staged bool) []column {
	cols := []column{
		nameCol,
		col("TIER", ".spec.tier", v3.DefaultTierName),
		wide(col("ORDER", ".spec.order", "")),
		wide(col("SELECTOR", ".spec.selector", "all()")),
	}
	if staged {
		cols = append(cols, wide(col("STAGEDACTION", ".spec.stagedAction", "Set")))
	}
	return cols
}

// tableColumns returns the columns for a kind: the narrow ones, or all of
// them with wideOut; with namespaced, a NAMESPACE column comes first.
func tableColumns(ki v3.KindInfo, wideOut, namespaced bool) []column {
	all, ok := kindColumns[ki.Kind]
	if !ok {
		all = []column{nameCol}
	}
	var out []column
	if namespaced {
		out = append(out, col("NAMESPACE", ".metadata.namespace", ""))
	}
	for _, c := range all {
		if c.wide && !wideOut {
			continue
		}
		out = append(out, c)
	}
	return out
}

// renderNATs shows ipNATs as internal->external pairs.
func renderNATs(v any) string {
	list, ok := v.([]any)
	if !ok {
		return render(v)
	}
	parts := make([]string, 0, len(list))
	for _, e := range list {
		m, ok := e.(map[string]any)
		if !ok {
			parts = append(parts, render(e))
			continue
		}
		parts = append(parts, render(m["internalIP"])+"->"+render(m["externalIP"]))
	}
	return strings.Join(parts, ",")
}
