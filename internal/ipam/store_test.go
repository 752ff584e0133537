package ipam

import (
	"errors"
	"testing"

	"github.com/calico-go/calico/internal/datastore"
)

// storeContract checks the Store semantics the allocator relies on.
func storeContract(t *testing.T, st Store, prefix string) {
	ctx := ctxT(t)
	k1, k2, k3 := prefix+"a/1", prefix+"a/2", prefix+"b/1"
	kvs, err := st.Get(ctx, k1, k2)
	if err != nil || len(kvs) != 2 || kvs[0].Revision != 0 || kvs[0].Value != nil || kvs[1].Key != k2 {
		t.Fatalf("get absent: %+v %v", kvs, err)
	}
	// Create-only puts.
	rev, err := st.Txn(ctx, Op{Type: OpPut, Key: k1, Value: []byte("v1")}, Op{Type: OpPut, Key: k2, Value: []byte("v2")})
	if err != nil || rev == 0 {
		t.Fatalf("create: %v", err)
	}
	if _, err := st.Txn(ctx, Op{Type: OpPut, Key: k1, Value: []byte("again")}); !errors.Is(err, datastore.ErrConflict) {
		t.Fatalf("create of existing: %v", err)
	}
	kvs, _ = st.Get(ctx, k1, k2)
	if kvs[0].Revision != rev || kvs[1].Revision != rev || string(kvs[1].Value) != "v2" {
		t.Fatalf("after create: %+v (rev %d)", kvs, rev)
	}
	// A failed comparison writes nothing, not even the other ops.
	if _, err := st.Txn(ctx, Op{Type: OpPut, Key: k3, Value: []byte("x")}, Op{Type: OpDelete, Key: k1, Revision: rev - 1}); !errors.Is(err, datastore.ErrConflict) {
		t.Fatalf("stale delete: %v", err)
	}
	if kvs, _ := st.Get(ctx, k3); kvs[0].Revision != 0 {
		t.Fatal("a failed transaction wrote")
	}
	// OpCheck and OpCheckPrefix.
	list, lrev, err := st.List(ctx, prefix+"a/")
	if err != nil || len(list) != 2 || list[0].Key != k1 || lrev < rev {
		t.Fatalf("list: %+v %d %v", list, lrev, err)
	}
	guard := Op{Type: OpCheckPrefix, Key: prefix + "a/", Revision: lrev}
	if _, err := st.Txn(ctx, Op{Type: OpPut, Key: k3, Value: []byte("x")}, guard, Op{Type: OpCheck, Key: k2, Revision: rev}); err != nil {
		t.Fatalf("guarded write: %v", err)
	}
	if _, err := st.Txn(ctx, Op{Type: OpPut, Key: prefix + "a/3", Value: []byte("new")}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Txn(ctx, Op{Type: OpCheck, Key: k3, Revision: -5}, guard); !errors.Is(err, datastore.ErrConflict) {
		t.Fatalf("guard after a new key under the prefix: %v", err)
	}
	if _, err := st.Txn(ctx, Op{Type: OpCheckPrefix, Key: prefix + "empty/", Revision: 1}); err != nil {
		t.Fatalf("guard on an empty prefix: %v", err)
	}
	// Deletes compare the revision.
	if _, err := st.Txn(ctx, Op{Type: OpDelete, Key: k1, Revision: rev}); err != nil {
		t.Fatal(err)
	}
	if kvs, _ := st.Get(ctx, k1); kvs[0].Revision != 0 {
		t.Fatal("not deleted")
	}
}

func TestMemStoreContract(t *testing.T) { storeContract(t, NewMemStore(), "/t/") }
