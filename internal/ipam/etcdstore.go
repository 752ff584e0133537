package ipam

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/calico-go/calico/internal/datastore"
)

// DefaultRequestTimeout bounds one etcd request of EtcdStore.
const DefaultRequestTimeout = 5 * time.Second

// EtcdStore is a Store over an etcd v3 client (for example the one of
// internal/datastore/etcd.Backend.Client). It does not close the client.
type EtcdStore struct {
	client  *clientv3.Client
	timeout time.Duration
}

var _ Store = (*EtcdStore)(nil)

// NewEtcdStore wraps client; timeout bounds each request (0 means
// DefaultRequestTimeout).
func NewEtcdStore(client *clientv3.Client, timeout time.Duration) *EtcdStore {
	if timeout <= 0 {
		timeout = DefaultRequestTimeout
	}
	return &EtcdStore{client: client, timeout: timeout}
}

func (s *EtcdStore) reqCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	return clientv3.WithRequireLeader(ctx), cancel
}

// Get implements Store.
func (s *EtcdStore) Get(ctx context.Context, keys ...string) ([]KV, error) {
	rctx, cancel := s.reqCtx(ctx)
	defer cancel()
	out := make([]KV, len(keys))
	if len(keys) == 1 {
		resp, err := s.client.Get(rctx, keys[0])
		if err != nil {
			return nil, etcdErr(ctx, "get "+keys[0], err)
		}
		out[0] = KV{Key: keys[0]}
		if len(resp.Kvs) == 1 {
			out[0].Value, out[0].Revision = resp.Kvs[0].Value, resp.Kvs[0].ModRevision
		}
		return out, nil
	}
	gets := make([]clientv3.Op, len(keys))
	for i, k := range keys {
		gets[i] = clientv3.OpGet(k)
	}
	resp, err := s.client.Txn(rctx).Then(gets...).Commit()
	if err != nil {
		return nil, etcdErr(ctx, fmt.Sprintf("get %d keys", len(keys)), err)
	}
	for i, k := range keys {
		out[i] = KV{Key: k}
		if r := resp.Responses[i].GetResponseRange(); r != nil && len(r.Kvs) == 1 {
			out[i].Value, out[i].Revision = r.Kvs[0].Value, r.Kvs[0].ModRevision
		}
	}
	return out, nil
}

// List implements Store.
func (s *EtcdStore) List(ctx context.Context, prefix string) ([]KV, int64, error) {
	rctx, cancel := s.reqCtx(ctx)
	defer cancel()
	resp, err := s.client.Get(rctx, prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, 0, etcdErr(ctx, "list "+prefix, err)
	}
	out := make([]KV, len(resp.Kvs))
	for i, kv := range resp.Kvs {
		out[i] = KV{Key: string(kv.Key), Value: kv.Value, Revision: kv.ModRevision}
	}
	return out, resp.Header.Revision, nil
}

// Txn implements Store.
func (s *EtcdStore) Txn(ctx context.Context, ops ...Op) (int64, error) {
	var cmps []clientv3.Cmp
	var writes []clientv3.Op
	for _, op := range ops {
		switch op.Type {
		case OpCheckPrefix:
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(op.Key), "<", op.Revision+1).WithPrefix())
			continue
		default:
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(op.Key), "=", op.Revision))
		}
		switch op.Type {
		case OpPut:
			writes = append(writes, clientv3.OpPut(op.Key, string(op.Value)))
		case OpDelete:
			writes = append(writes, clientv3.OpDelete(op.Key))
		}
	}
	rctx, cancel := s.reqCtx(ctx)
	defer cancel()
	resp, err := s.client.Txn(rctx).If(cmps...).Then(writes...).Commit()
	if err != nil {
		return 0, etcdErr(ctx, "txn", err)
	}
	if !resp.Succeeded {
		return 0, fmt.Errorf("txn on %s: %w", opKeys(ops), datastore.ErrConflict)
	}
	return resp.Header.Revision, nil
}

func opKeys(ops []Op) string {
	s := ""
	for i, op := range ops {
		if i > 0 {
			s += ", "
		}
		s += op.Key
	}
	return s
}

// etcdErr classifies an etcd client error: unreachable, leaderless and timed
// out requests wrap datastore.ErrUnavailable.
func etcdErr(parent context.Context, what string, err error) error {
	if parent.Err() != nil {
		return fmt.Errorf("%s: %w: %w", what, datastore.ErrUnavailable, context.Cause(parent))
	}
	if unavailable(err) {
		return fmt.Errorf("%s: %w: %w", what, datastore.ErrUnavailable, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

func unavailable(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) ||
		errors.Is(err, clientv3.ErrNoAvailableEndpoints) {
		return true
	}
	for _, e := range []error{rpctypes.ErrNoLeader, rpctypes.ErrNotLeader, rpctypes.ErrLeaderChanged,
		rpctypes.ErrStopped, rpctypes.ErrTimeout, rpctypes.ErrTimeoutDueToLeaderFail,
		rpctypes.ErrTimeoutDueToConnectionLost, rpctypes.ErrUnhealthy, rpctypes.ErrTooManyRequests} {
		if errors.Is(err, e) {
			return true
		}
	}
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled, codes.Aborted:
		return true
	}
	return false
}
