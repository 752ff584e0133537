package etcd

import (
	"context"
	"fmt"
	"strconv"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	v3 "github.com/calico-go/calico/api/v3"
	"github.com/calico-go/calico/internal/datastore"
	"github.com/calico-go/calico/internal/datastore/internal/meta"
)

// updateRetries bounds how often an unconditional Update (empty
// resourceVersion) re-reads after losing a race with another writer.
const updateRetries = 5

// Create stores r if its key is free: txn(CreateRevision == 0 → put).
func (b *Backend) Create(ctx context.Context, r v3.Resource) (v3.Resource, error) {
	k, ki, err := meta.KeyOf(r)
	if err != nil {
		return nil, &datastore.Error{Op: "create", Key: k, Err: err}
	}
	if err := checkName("create", ki, k); err != nil {
		return nil, err
	}
	obj := meta.Copy(r, ki)
	meta.StampCreate(obj)
	val, err := encodeValue(ki, obj)
	if err != nil {
		return nil, &datastore.Error{Op: "create", Key: k, Err: err}
	}
	key := path(ki, k)
	rctx, cancel := b.reqCtx(ctx)
	defer cancel()
	resp, err := b.client.Txn(rctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, string(val))).
		Commit()
	if err != nil {
		return nil, b.fail(ctx, "create", k, err)
	}
	if !resp.Succeeded {
		return nil, &datastore.Error{Op: "create", Key: k, Err: datastore.ErrAlreadyExists}
	}
	return b.decode(ki, k, val, resp.Header.Revision, "create")
}

// Update replaces a stored resource. It reads the stored value (for uid and
// creationTimestamp, and to check the resourceVersion), then writes with
// txn(ModRevision == read revision → put); the else branch reads the key
// back to tell ErrNotFound from ErrConflict.
func (b *Backend) Update(ctx context.Context, r v3.Resource) (v3.Resource, error) {
	k, ki, err := meta.KeyOf(r)
	if err != nil {
		return nil, &datastore.Error{Op: "update", Key: k, Err: err}
	}
	if err := checkName("update", ki, k); err != nil {
		return nil, err
	}
	obj := meta.Copy(r, ki)
	want := obj.GetResourceVersion()
	key := path(ki, k)
	for range updateRetries {
		cur, err := b.getKV(ctx, "update", k, key)
		if err != nil {
			return nil, err
		}
		if want != "" && want != revString(cur.ModRevision) {
			return nil, &datastore.Error{Op: "update", Key: k, Err: datastore.ErrConflict,
				Detail: fmt.Sprintf("resourceVersion %s, stored %d", want, cur.ModRevision)}
		}
		if stored, err := decodeValue(ki, k, cur.Value, ""); err == nil {
			meta.KeepImmutable(obj, stored)
			if isIPAMConfig(ki) && stored.GetUID() == "" { // written by IPAM or Calico, without metadata
				meta.StampCreate(obj)
			}
		} else {
			b.log.Warn("stored value does not decode; uid and creationTimestamp taken from the update", "key", key, "error", err)
		}
		val, err := encodeValue(ki, obj)
		if err != nil {
			return nil, &datastore.Error{Op: "update", Key: k, Err: err}
		}
		rctx, cancel := b.reqCtx(ctx)
		resp, err := b.client.Txn(rctx).
			If(clientv3.Compare(clientv3.ModRevision(key), "=", cur.ModRevision)).
			Then(clientv3.OpPut(key, string(val))).
			Else(clientv3.OpGet(key, clientv3.WithKeysOnly())).
			Commit()
		cancel()
		if err != nil {
			return nil, b.fail(ctx, "update", k, err)
		}
		if resp.Succeeded {
			return b.decode(ki, k, val, resp.Header.Revision, "update")
		}
		if len(resp.Responses) == 0 || len(resp.Responses[0].GetResponseRange().GetKvs()) == 0 {
			return nil, &datastore.Error{Op: "update", Key: k, Err: datastore.ErrNotFound}
		}
		if want != "" {
			return nil, &datastore.Error{Op: "update", Key: k, Err: datastore.ErrConflict,
				Detail: "modified concurrently, resourceVersion " + want}
		}
		// Unconditional update lost a race: read again.
	}
	return nil, &datastore.Error{Op: "update", Key: k, Err: datastore.ErrConflict,
		Detail: fmt.Sprintf("still modified concurrently after %d attempts", updateRetries)}
}

// Delete removes a resource: txn(ModRevision == rv → delete) (or
// CreateRevision > 0 when rv is empty), reading the key in the else branch to
// tell ErrNotFound from ErrConflict. The returned value carries the deletion
// revision as its resourceVersion, like the Deleted watch event.
func (b *Backend) Delete(ctx context.Context, k datastore.Key, resourceVersion string) (v3.Resource, error) {
	ki, err := meta.Kind(k, true)
	if err != nil {
		return nil, &datastore.Error{Op: "delete", Key: k, Err: err}
	}
	k = meta.Normalize(k, ki)
	if err := checkName("delete", ki, k); err != nil {
		return nil, err
	}
	key := path(ki, k)
	cmp := clientv3.Compare(clientv3.CreateRevision(key), ">", 0)
	if resourceVersion != "" {
		rev, err := strconv.ParseInt(resourceVersion, 10, 64)
		if err != nil || rev <= 0 {
			rev = -1 // matches nothing: a conflict if the key exists
		}
		cmp = clientv3.Compare(clientv3.ModRevision(key), "=", rev)
	}
	rctx, cancel := b.reqCtx(ctx)
	defer cancel()
	resp, err := b.client.Txn(rctx).
		If(cmp).
		Then(clientv3.OpDelete(key, clientv3.WithPrevKV())).
		Else(clientv3.OpGet(key, clientv3.WithKeysOnly())).
		Commit()
	if err != nil {
		return nil, b.fail(ctx, "delete", k, err)
	}
	if !resp.Succeeded {
		if len(resp.Responses) == 0 || len(resp.Responses[0].GetResponseRange().GetKvs()) == 0 {
			return nil, &datastore.Error{Op: "delete", Key: k, Err: datastore.ErrNotFound}
		}
		return nil, &datastore.Error{Op: "delete", Key: k, Err: datastore.ErrConflict,
			Detail: "resourceVersion " + resourceVersion}
	}
	prev := resp.Responses[0].GetResponseDeleteRange().GetPrevKvs()
	if len(prev) == 0 { // deleted by a concurrent txn between compare and delete: cannot happen in one txn
		return nil, &datastore.Error{Op: "delete", Key: k, Err: datastore.ErrNotFound}
	}
	return b.decode(ki, k, prev[0].Value, resp.Header.Revision, "delete")
}

// Get reads one resource.
func (b *Backend) Get(ctx context.Context, k datastore.Key) (v3.Resource, error) {
	ki, err := meta.Kind(k, true)
	if err != nil {
		return nil, &datastore.Error{Op: "get", Key: k, Err: err}
	}
	k = meta.Normalize(k, ki)
	if err := checkName("get", ki, k); err != nil {
		return nil, err
	}
	kv, err := b.getKV(ctx, "get", k, path(ki, k))
	if err != nil {
		return nil, err
	}
	return b.decode(ki, k, kv.Value, kv.ModRevision, "get")
}

// List reads a kind (narrowed to k.Namespace) with one range request.
func (b *Backend) List(ctx context.Context, k datastore.Key) (datastore.ListResult, error) {
	ki, err := meta.Kind(k, false)
	if err != nil {
		return datastore.ListResult{}, &datastore.Error{Op: "list", Key: k, Err: err}
	}
	k = meta.Normalize(k, ki)
	k.Name = ""
	rctx, cancel := b.reqCtx(ctx)
	defer cancel()
	resp, err := b.client.Get(rctx, kindPrefix(ki, k.Namespace), clientv3.WithPrefix())
	if err != nil {
		return datastore.ListResult{}, b.fail(ctx, "list", k, err)
	}
	items := make([]v3.Resource, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		rk, ok := parsePath(ki, string(kv.Key))
		if !ok {
			b.log.Warn("skipping key outside the resource layout", "key", string(kv.Key))
			continue
		}
		r, err := decodeValue(ki, rk, kv.Value, revString(kv.ModRevision))
		if err != nil {
			b.log.Warn("skipping value that does not decode", "key", string(kv.Key), "error", err)
			continue
		}
		items = append(items, r)
	}
	meta.Sort(items)
	return datastore.ListResult{Items: items, Revision: revString(resp.Header.Revision)}, nil
}

// getKV reads one key; ErrNotFound if absent.
func (b *Backend) getKV(ctx context.Context, op string, k datastore.Key, key string) (*mvccpb.KeyValue, error) {
	rctx, cancel := b.reqCtx(ctx)
	defer cancel()
	resp, err := b.client.Get(rctx, key)
	if err != nil {
		return nil, b.fail(ctx, op, k, err)
	}
	if len(resp.Kvs) == 0 {
		return nil, &datastore.Error{Op: op, Key: k, Err: datastore.ErrNotFound}
	}
	return resp.Kvs[0], nil
}

func (b *Backend) decode(ki v3.KindInfo, k datastore.Key, val []byte, rev int64, op string) (v3.Resource, error) {
	r, err := decodeValue(ki, k, val, revString(rev))
	if err != nil {
		return nil, &datastore.Error{Op: op, Key: k, Err: err}
	}
	return r, nil
}
