package controller

import (
	"context"
	"errors"
	"sort"
	"sync"
	"time"

	v3 "github.com/calico-go/calico/api/v3"
	"github.com/calico-go/calico/internal/bgp/desired"
	"github.com/calico-go/calico/internal/datastore"
)

// cache holds the latest copy of every watched resource, by kind and name.
type cache struct {
	mu     sync.Mutex
	items  map[string]map[string]v3.Resource
	listed map[string]bool
}

func newCache() *cache {
	return &cache{items: map[string]map[string]v3.Resource{}, listed: map[string]bool{}}
}

func (c *cache) replace(kind string, items []v3.Resource) {
	m := make(map[string]v3.Resource, len(items))
	for _, r := range items {
		m[r.GetName()] = r
	}
	c.mu.Lock()
	c.items[kind] = m
	c.listed[kind] = true
	c.mu.Unlock()
}

func (c *cache) apply(kind string, ev datastore.Event) {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.items[kind]
	if m == nil {
		m = map[string]v3.Resource{}
		c.items[kind] = m
	}
	switch ev.Type {
	case datastore.Added, datastore.Modified:
		if ev.New != nil {
			m[ev.New.GetName()] = ev.New
		}
	case datastore.Deleted:
		if ev.Old != nil {
			delete(m, ev.Old.GetName())
		}
	}
}

func (c *cache) synced() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, k := range watchedKinds {
		if !c.listed[k] {
			return false
		}
	}
	return true
}

// input snapshots the cache as a desired.Input (sorted by name).
func (c *cache) input(node string) desired.Input {
	c.mu.Lock()
	defer c.mu.Unlock()
	in := desired.Input{NodeName: node}
	for _, r := range sorted(c.items[v3.KindNode]) {
		in.Nodes = append(in.Nodes, *r.(*v3.Node))
	}
	for _, r := range sorted(c.items[v3.KindBGPConfiguration]) {
		in.Configs = append(in.Configs, *r.(*v3.BGPConfiguration))
	}
	for _, r := range sorted(c.items[v3.KindBGPPeer]) {
		in.Peers = append(in.Peers, *r.(*v3.BGPPeer))
	}
	for _, r := range sorted(c.items[v3.KindBGPFilter]) {
		in.Filters = append(in.Filters, *r.(*v3.BGPFilter))
	}
	for _, r := range sorted(c.items[v3.KindIPPool]) {
		in.Pools = append(in.Pools, *r.(*v3.IPPool))
	}
	return in
}

func sorted(m map[string]v3.Resource) []v3.Resource {
	out := make([]v3.Resource, 0, len(m))
	for _, r := range m {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].GetName() < out[j].GetName() })
	return out
}

// watch keeps one kind of the cache current: list, then watch from the
// list's revision; any watch error (compaction, a lost connection) starts
// over with a new list after a short pause.
func (c *controller) watch(ctx context.Context, kind string) {
	backoff := 200 * time.Millisecond
	for ctx.Err() == nil {
		err := c.listAndWatch(ctx, kind)
		if ctx.Err() != nil {
			return
		}
		c.log.Debug("datastore watch restarting", "kind", kind, "error", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		if backoff < 5*time.Second {
			backoff *= 2
		}
	}
}

func (c *controller) listAndWatch(ctx context.Context, kind string) error {
	res, err := c.opts.Client.List(ctx, kind, "")
	if err != nil {
		return err
	}
	c.cache.replace(kind, res.Items)
	c.markDirty()
	w, err := c.opts.Client.Watch(ctx, kind, "", res.Revision)
	if err != nil {
		return err
	}
	defer w.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case ev, ok := <-w.ResultChan():
			if !ok {
				return errors.New("watch closed")
			}
			if ev.Type == datastore.WatchError {
				return ev.Err
			}
			c.cache.apply(kind, ev)
			c.markDirty()
		}
	}
}
