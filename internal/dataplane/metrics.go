package dataplane

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the dataplane's Prometheus metrics, registered in New when
// Options.Registerer is set.
type metrics struct {
	applyTime    prometheus.Histogram
	applyFails   prometheus.Counter
	routeFails   prometheus.Counter
	messages     *prometheus.CounterVec
	ipSets       prometheus.Gauge
	ipSetMembers prometheus.Gauge
	endpoints    prometheus.Gauge
	hostEPs      prometheus.Gauge
	policies     prometheus.Gauge
	chains       prometheus.Gauge
	inSync       prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		applyTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "felix_int_dataplane_apply_time_seconds",
			Help:    "Time to apply one batch of dataplane updates to the kernel.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
		applyFails: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "felix_int_dataplane_failures_total",
			Help: "Dataplane apply attempts that failed.",
		}),
		routeFails: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "felix_route_table_failures_total",
			Help: "Route and VXLAN device applies that failed.",
		}),
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "felix_int_dataplane_messages_total",
			Help: "Dataplane updates applied, by message type.",
		}, []string{"type"}),
		ipSets: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "felix_ipsets_calico",
			Help: "Number of Calico IP sets programmed.",
		}),
		ipSetMembers: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "felix_ipset_members",
			Help: "Total members of the Calico IP sets programmed.",
		}),
		endpoints: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "felix_active_local_endpoints",
			Help: "Local workload endpoints programmed.",
		}),
		hostEPs: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "felix_active_local_host_endpoints",
			Help: "Local host endpoints programmed.",
		}),
		policies: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "felix_active_local_policies",
			Help: "Policies programmed on this host.",
		}),
		chains: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "felix_nft_chains",
			Help: "Chains in the Calico nftables table.",
		}),
		inSync: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "felix_resync_state",
			Help: "1 once the dataplane has programmed the complete state, else 0.",
		}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.applyTime, m.applyFails, m.routeFails, m.messages, m.ipSets,
			m.ipSetMembers, m.endpoints, m.hostEPs, m.policies, m.chains, m.inSync} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("register dataplane metrics: %w", err)
			}
		}
	}
	return m, nil
}
