package syncer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/calico-go/calico/internal/datastore"
	"github.com/calico-go/calico/internal/ipam"
	"github.com/calico-go/calico/internal/syncer/affinity"
)

// affinityPrefix holds Calico's block affinities (SPEC §0):
// <prefix><node>/<ipv4|ipv6>/block/<cidr with "/" as "-">.
const affinityPrefix = ipam.Prefix + "host/"

// etcdClient is implemented by backends that keep Calico's IPAM documents
// (internal/datastore/etcd.Backend).
type etcdClient interface{ Client() *clientv3.Client }

// affinitySync lists and watches the block affinities under
// affinityPrefix, like kindSync does for a resource kind, and emits an
// affinity.Block for each confirmed one.
type affinitySync struct {
	s    *Syncer
	cli  *clientv3.Client
	out  chan<- kindBatch
	rev  int64
	seen map[string]int64 // name -> modification revision of what was emitted
}

// runAffinities runs the affinity source until ctx is done. A backend
// without Calico IPAM reports the kind as listed, with nothing in it.
func (s *Syncer) runAffinities(ctx context.Context, out chan<- kindBatch) {
	be, ok := s.opts.Backend.(etcdClient)
	if !ok || be.Client() == nil {
		s.log.Info("the datastore holds no Calico IPAM: no block affinities", "backend", fmt.Sprintf("%T", s.opts.Backend))
		select {
		case out <- kindBatch{kind: affinity.Kind, listed: true}:
		case <-ctx.Done():
		}
		return
	}
	a := &affinitySync{s: s, cli: be.Client(), out: out, seen: map[string]int64{}}
	bo := backoff{min: s.opts.MinBackoff, max: s.opts.MaxBackoff}
	needList := true
	for ctx.Err() == nil {
		if needList {
			if err := a.list(ctx); err != nil {
				s.log.Warn("list failed, will retry", "kind", affinity.Kind, "error", err, "retry_in", bo.next())
				bo.wait(ctx)
				continue
			}
			needList = false
			bo.reset()
		}
		err := a.watch(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case errors.Is(err, errRelist):
			s.log.Info("watch revision compacted, listing again", "kind", affinity.Kind, "revision", a.rev)
			needList = true
		case err != nil:
			s.log.Warn("watch failed, will resume", "kind", affinity.Kind, "revision", a.rev, "error", err, "retry_in", bo.next())
			bo.wait(ctx)
		default:
			bo.reset()
		}
	}
}

func (a *affinitySync) send(ctx context.Context, b kindBatch) bool {
	select {
	case a.out <- b:
		return true
	case <-ctx.Done():
		return false
	}
}

// list reads every affinity and emits the differences from what was
// emitted before.
func (a *affinitySync) list(ctx context.Context) error {
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	resp, err := a.cli.Get(clientv3.WithRequireLeader(rctx), affinityPrefix, clientv3.WithPrefix())
	if err != nil {
		return fmt.Errorf("list %s: %w: %w", affinityPrefix, datastore.ErrUnavailable, err)
	}
	rev := resp.Header.Revision
	var updates []Update
	present := map[string]struct{}{}
	for _, kv := range resp.Kvs {
		if u, ok := a.change(string(kv.Key), kv, rev); ok {
			updates = append(updates, u)
		}
		if _, ok := a.seen[strings.TrimPrefix(string(kv.Key), affinityPrefix)]; ok {
			present[strings.TrimPrefix(string(kv.Key), affinityPrefix)] = struct{}{}
		}
	}
	for name := range a.seen {
		if _, ok := present[name]; !ok {
			delete(a.seen, name)
			updates = append(updates, Update{Key: affinityKey(name), Revision: strconv.FormatInt(rev, 10)})
		}
	}
	a.rev = rev
	a.send(ctx, kindBatch{kind: affinity.Kind, updates: updates, listed: true})
	return nil
}

// watch follows the prefix from a.rev until the watch ends.
func (a *affinitySync) watch(ctx context.Context) error {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	wch := a.cli.Watch(wctx, affinityPrefix, clientv3.WithPrefix(), clientv3.WithRev(a.rev+1))
	for {
		var resp clientv3.WatchResponse
		var ok bool
		select {
		case resp, ok = <-wch:
		case <-ctx.Done():
			return ctx.Err()
		}
		if !ok {
			return errors.New("watch channel closed")
		}
		if resp.CompactRevision != 0 || errors.Is(resp.Err(), rpctypes.ErrCompacted) {
			return errRelist
		}
		if err := resp.Err(); err != nil {
			return err
		}
		var updates []Update
		for _, ev := range resp.Events {
			a.rev = ev.Kv.ModRevision
			kv := ev.Kv
			if ev.Type == mvccpb.DELETE {
				kv = nil
			}
			if u, ok := a.change(string(ev.Kv.Key), kv, ev.Kv.ModRevision); ok {
				updates = append(updates, u)
			}
		}
		if len(updates) > 0 && !a.send(ctx, kindBatch{kind: affinity.Kind, updates: updates}) {
			return ctx.Err()
		}
	}
}

// change returns the update to emit, if any, for a key that now holds kv
// (nil: deleted) at revision rev. A confirmed affinity that differs from
// what was emitted is emitted; an emitted one that is gone, or no longer
// confirmed (pending deletion, marked deleted), is deleted. Keys that are
// not affinities are ignored.
func (a *affinitySync) change(key string, kv *mvccpb.KeyValue, rev int64) (Update, bool) {
	node, cidr, ok := parseAffinityKey(key)
	if !ok {
		return Update{}, false
	}
	name := strings.TrimPrefix(key, affinityPrefix)
	var doc ipam.Affinity
	if kv != nil && json.Unmarshal(kv.Value, &doc) == nil && doc.State == ipam.StateConfirmed && !doc.Deleted {
		if a.seen[name] == kv.ModRevision {
			return Update{}, false
		}
		a.seen[name] = kv.ModRevision
		rv := strconv.FormatInt(kv.ModRevision, 10)
		b := affinity.New(name, node, cidr)
		b.ResourceVersion = rv
		return Update{Key: affinityKey(name), Value: b, Revision: rv}, true
	}
	if _, ok := a.seen[name]; !ok {
		return Update{}, false
	}
	delete(a.seen, name)
	return Update{Key: affinityKey(name), Revision: strconv.FormatInt(rev, 10)}, true
}

func affinityKey(name string) datastore.Key { return datastore.Key{Kind: affinity.Kind, Name: name} }

// parseAffinityKey returns the node and block of an affinity key.
func parseAffinityKey(key string) (string, netip.Prefix, bool) {
	rest, ok := strings.CutPrefix(key, affinityPrefix)
	if !ok {
		return "", netip.Prefix{}, false
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 4 || parts[0] == "" || parts[2] != "block" {
		return "", netip.Prefix{}, false
	}
	i := strings.LastIndexByte(parts[3], '-')
	if i < 0 {
		return "", netip.Prefix{}, false
	}
	p, err := netip.ParsePrefix(parts[3][:i] + "/" + parts[3][i+1:])
	if err != nil || p != p.Masked() || (parts[1] == "ipv4") != p.Addr().Is4() || (parts[1] != "ipv4" && parts[1] != "ipv6") {
		return "", netip.Prefix{}, false
	}
	return parts[0], p, true
}
