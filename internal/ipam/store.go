package ipam

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/calico-go/calico/internal/datastore"
)

// KV is one stored key. Revision is the key's modification revision; 0
// means the key does not exist.
type KV struct {
	Key      string
	Value    []byte
	Revision int64
}

// OpType says what an Op does.
type OpType int

// Operation types of a transaction.
const (
	// OpPut writes Value if the key's revision is Revision (0: absent).
	OpPut OpType = iota + 1
	// OpDelete deletes the key if its revision is Revision.
	OpDelete
	// OpCheck writes nothing and only compares Revision (0: absent).
	OpCheck
	// OpCheckPrefix compares that no key under the prefix Key was created
	// or modified after Revision (a store revision from List). Deleted keys
	// are not noticed.
	OpCheckPrefix
)

// Op is one compare (and write) of a transaction.
type Op struct {
	Type     OpType
	Key      string
	Value    []byte
	Revision int64
}

// Store is the key-value store IPAM runs on. Implementations are safe for
// concurrent use.
//
// Errors: a transaction whose comparisons fail returns an error wrapping
// datastore.ErrConflict and changed nothing. Any other error (typically
// wrapping datastore.ErrUnavailable) may or may not have applied the
// transaction; callers find out by reading.
type Store interface {
	// Get reads keys at one revision; absent keys come back with Revision 0
	// and a nil Value, in the order asked.
	Get(ctx context.Context, keys ...string) ([]KV, error)
	// List returns every key under prefix, sorted, and the store revision
	// the read was made at.
	List(ctx context.Context, prefix string) ([]KV, int64, error)
	// Txn applies every Op if every comparison holds, atomically, and
	// returns the store revision of the write (the new Revision of every key
	// it put).
	Txn(ctx context.Context, ops ...Op) (int64, error)
}

// TxnHook lets a test interfere with MemStore transactions: it is called
// before the transaction is evaluated; when err is non-nil the transaction is
// applied first if apply is true (a lost reply) and err is returned.
type TxnHook func(ops []Op) (apply bool, err error)

// MemStore is an in-memory Store for unit tests, with etcd's revision
// semantics (one counter for all writes).
type MemStore struct {
	mu   sync.Mutex
	rev  int64
	data map[string]KV
	hook TxnHook
	txns int
}

var _ Store = (*MemStore)(nil)

// NewMemStore returns an empty store at revision 1.
func NewMemStore() *MemStore { return &MemStore{rev: 1, data: map[string]KV{}} }

// SetTxnHook installs (or with nil removes) a TxnHook.
func (m *MemStore) SetTxnHook(h TxnHook) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.hook = h
}

// Txns returns how many transactions were applied.
func (m *MemStore) Txns() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.txns
}

// Get implements Store.
func (m *MemStore) Get(ctx context.Context, keys ...string) ([]KV, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("get: %w: %w", datastore.ErrUnavailable, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]KV, len(keys))
	for i, k := range keys {
		kv, ok := m.data[k]
		if !ok {
			out[i] = KV{Key: k}
			continue
		}
		out[i] = KV{Key: k, Value: append([]byte(nil), kv.Value...), Revision: kv.Revision}
	}
	return out, nil
}

// List implements Store.
func (m *MemStore) List(ctx context.Context, prefix string) ([]KV, int64, error) {
	if err := ctx.Err(); err != nil {
		return nil, 0, fmt.Errorf("list: %w: %w", datastore.ErrUnavailable, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []KV
	for k, kv := range m.data {
		if strings.HasPrefix(k, prefix) {
			out = append(out, KV{Key: k, Value: append([]byte(nil), kv.Value...), Revision: kv.Revision})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, m.rev, nil
}

// Put writes a key without comparison (test setup).
func (m *MemStore) Put(key string, value []byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.rev++
	m.data[key] = KV{Key: key, Value: append([]byte(nil), value...), Revision: m.rev}
}

// Delete removes a key without comparison (test setup).
func (m *MemStore) Delete(key string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.rev++
	delete(m.data, key)
}

// Txn implements Store.
func (m *MemStore) Txn(ctx context.Context, ops ...Op) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("txn: %w: %w", datastore.ErrUnavailable, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var hookErr error
	if m.hook != nil {
		apply, err := m.hook(ops)
		if err != nil && !apply {
			return 0, err
		}
		hookErr = err
	}
	for _, op := range ops {
		if !m.holds(op) {
			if hookErr != nil {
				return 0, hookErr
			}
			return 0, fmt.Errorf("txn on %s: %w", op.Key, datastore.ErrConflict)
		}
	}
	m.rev++
	m.txns++
	for _, op := range ops {
		switch op.Type {
		case OpPut:
			m.data[op.Key] = KV{Key: op.Key, Value: append([]byte(nil), op.Value...), Revision: m.rev}
		case OpDelete:
			delete(m.data, op.Key)
		}
	}
	return m.rev, hookErr
}

func (m *MemStore) holds(op Op) bool {
	if op.Type == OpCheckPrefix {
		for k, kv := range m.data {
			if strings.HasPrefix(k, op.Key) && kv.Revision > op.Revision {
				return false
			}
		}
		return true
	}
	return m.data[op.Key].Revision == op.Revision
}
