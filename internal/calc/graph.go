package calc

import (
	"log/slog"

	v3 "github.com/calico-go/calico/api/v3"
	"github.com/calico-go/calico/internal/dpapi"
	"github.com/calico-go/calico/internal/felixconfig"
	"github.com/calico-go/calico/internal/syncer/affinity"
)

// Key names a datastore resource.
type Key struct {
	Kind      string // v3 kind, e.g. "WorkloadEndpoint"
	Namespace string
	Name      string
}

// Update is one resource that is new, changed (Value set) or gone (Value
// nil). The graph does not modify Value and does not keep it beyond what
// it needs.
type Update struct {
	Key   Key
	Value v3.Resource
}

// Options configure a Graph.
type Options struct {
	// NodeName is this host's Calico node name: the endpoints whose
	// spec.node equals it are local.
	NodeName string
	// Sink receives the message batches.
	Sink dpapi.Sink
	// ConfigFile, ConfigEnv and ConfigOverrides are the local layers of
	// the Felix configuration (see package felixconfig).
	ConfigFile, ConfigEnv, ConfigOverrides map[string]string
	// Logger reports resources that are ignored because they are invalid;
	// nil discards.
	Logger *slog.Logger
}

// Graph is the calculation graph. It is not safe for concurrent use: feed
// it from one goroutine.
type Graph struct {
	opts Options
	log  *slog.Logger

	// Label index: every endpoint and network set of the cluster.
	items    map[itemKey]*item
	profiles map[string]*profile
	implicit map[[3]string]map[string]string // see implicitLabels

	// setMatcher matches the selectors of active IP sets against every
	// item; polMatcher matches policy selectors against local endpoints.
	setMatcher *matcher[*selEntry, *item]
	polMatcher *matcher[*policy, *item]
	selEntries map[string]*selEntry // by selector unique ID
	ipSets     map[string]*ipSet    // active sets by ID

	policies map[policyKey]*policy
	tiers    map[string]*tier

	config configState
	seq    sequencer
	// net resolves nodes, pools and routes.
	net *network
}

// New returns an empty Graph. It emits nothing until OnInSync.
func New(opts Options) *Graph {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	g := &Graph{
		opts:       opts,
		log:        log,
		items:      map[itemKey]*item{},
		profiles:   map[string]*profile{},
		implicit:   map[[3]string]map[string]string{},
		selEntries: map[string]*selEntry{},
		ipSets:     map[string]*ipSet{},
		policies:   map[policyKey]*policy{},
		tiers:      map[string]*tier{},
		config:     configState{resources: map[string]*v3.FelixConfiguration{}},
		seq:        newSequencer(),
		net:        newNetwork(opts.NodeName),
	}
	g.setMatcher = newMatcher(g.onSetMatch)
	g.polMatcher = newMatcher(g.onPolicyMatch)
	return g
}

// OnUpdates applies a batch of updates and, once in sync, emits the
// resulting messages as one batch.
func (g *Graph) OnUpdates(updates []Update) {
	for _, u := range updates {
		g.apply(u)
	}
	if g.seq.inSync {
		g.flush()
	}
}

// OnInSync says the initial snapshot is complete: the graph emits the
// whole state as one batch, ending with InSync. Later calls do nothing.
func (g *Graph) OnInSync() {
	if g.seq.inSync {
		return
	}
	g.seq.inSync = true
	g.seq.sendInSync = true
	g.config.dirty = true
	g.flush()
}

func (g *Graph) apply(u Update) {
	k := u.Key
	switch k.Kind {
	case v3.KindWorkloadEndpoint:
		g.updateItem(k, u.Value)
		w, _ := u.Value.(*v3.WorkloadEndpoint)
		g.net.updateWEP(itemKey{kind: kindWEP, ns: k.Namespace, name: k.Name}, w)
	case v3.KindHostEndpoint, v3.KindNetworkSet, v3.KindGlobalNetworkSet:
		g.updateItem(k, u.Value)
	case v3.KindProfile:
		p, _ := u.Value.(*v3.Profile)
		g.updateProfile(k.Name, p)
	case v3.KindNetworkPolicy, v3.KindGlobalNetworkPolicy:
		g.updatePolicy(k, u.Value)
	case v3.KindTier:
		t, _ := u.Value.(*v3.Tier)
		g.updateTier(k.Name, t)
	case v3.KindFelixConfiguration:
		fc, _ := u.Value.(*v3.FelixConfiguration)
		g.updateFelixConfig(k.Name, fc)
	case v3.KindNode:
		n, _ := u.Value.(*v3.Node)
		if k.Name == g.opts.NodeName {
			g.updateNode(n)
		}
		g.net.updateNode(k.Name, n)
	case v3.KindIPPool:
		p, _ := u.Value.(*v3.IPPool)
		g.net.updatePool(k.Name, p)
	case affinity.Kind:
		b, _ := u.Value.(*affinity.Block)
		g.net.updateAffinity(k.Name, b)
	}
	// Staged policies are never enforced; other kinds (ClusterInformation,
	// ...) do not affect the messages of dpapi yet.
}

// configState tracks the inputs of the merged configuration.
type configState struct {
	resources  map[string]*v3.FelixConfiguration
	nodeLabels map[string]string
	dirty      bool
}

func (g *Graph) updateFelixConfig(name string, fc *v3.FelixConfiguration) {
	if fc == nil {
		delete(g.config.resources, name)
	} else {
		g.config.resources[name] = fc
	}
	g.config.dirty = true
}

func (g *Graph) updateNode(n *v3.Node) {
	var labels map[string]string
	if n != nil {
		labels = n.Labels
	}
	g.config.nodeLabels = labels
	g.config.dirty = true
}

// mergedConfig computes the configuration from its sources.
func (g *Graph) mergedConfig() dpapi.Config {
	src := felixconfig.Sources{
		NodeName: g.opts.NodeName, NodeLabels: g.config.nodeLabels,
		File: g.opts.ConfigFile, Env: g.opts.ConfigEnv, Overrides: g.opts.ConfigOverrides,
	}
	for _, r := range g.config.resources {
		src.Resources = append(src.Resources, r)
	}
	cfg, err := felixconfig.Merge(src)
	if err != nil {
		g.log.Warn("ignoring invalid Felix configuration values", "error", err)
	}
	return cfg
}
