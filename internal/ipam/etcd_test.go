package ipam

import (
	"context"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v3 "github.com/calico-go/calico/api/v3"
	"github.com/calico-go/calico/internal/datastore/embedded"
	"github.com/calico-go/calico/internal/datastore/etcd"
	"github.com/calico-go/calico/pkg/client"
)

// testEtcd is an embedded etcd on fixed ports, so that it can be restarted.
type testEtcd struct {
	dir, client, peer string
	srv               *embedded.Server
}

func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func startEtcd(t testing.TB) *testEtcd {
	t.Helper()
	e := &testEtcd{dir: t.TempDir(), client: freeAddr(t), peer: freeAddr(t)}
	e.start(t)
	t.Cleanup(func() { _ = e.srv.Close() })
	return e
}

func (e *testEtcd) start(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv, err := embedded.Start(ctx, embedded.Options{DataDir: e.dir, ListenClient: e.client, ListenPeer: e.peer, UnsafeNoFsync: true})
	if err != nil {
		t.Fatal(err)
	}
	e.srv = srv
}

func (e *testEtcd) endpoints() []string { return []string{"http://" + e.client} }

// connect returns an allocator and typed client over their own etcd
// connection.
func connect(t testing.TB, endpoints []string, reqTimeout time.Duration) (*Allocator, *client.Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	be, err := etcd.New(ctx, etcd.Config{Endpoints: endpoints, RequestTimeout: reqTimeout})
	if err != nil {
		t.Fatal(err)
	}
	c := client.NewFromBackend(be)
	if tt, ok := t.(interface{ Cleanup(func()) }); ok {
		tt.Cleanup(func() { _ = c.Close() })
	}
	a, err := New(Options{Store: NewEtcdStore(be.Client(), reqTimeout), Resources: ClientResources(c)})
	if err != nil {
		t.Fatal(err)
	}
	return a, c
}

func createPool(t testing.TB, c *client.Client, name, cidr string, blockSize int) {
	t.Helper()
	p := v3.NewIPPool()
	p.ObjectMeta = metav1.ObjectMeta{Name: name}
	p.Spec = v3.IPPoolSpec{CIDR: cidr, BlockSize: blockSize}
	if _, err := c.Create(ctxT(t), p); err != nil {
		t.Fatalf("create pool %s: %v", name, err)
	}
}

func TestEtcdStoreContract(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd")
	}
	e := startEtcd(t)
	ctx := ctxT(t)
	be, err := etcd.New(ctx, etcd.Config{Endpoints: e.endpoints()})
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	storeContract(t, NewEtcdStore(be.Client(), 0), "/t/")
}

// The allocator against real etcd, through the typed client for pools.
func TestEtcdAllocator(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd")
	}
	e := startEtcd(t)
	a, c := connect(t, e.endpoints(), 0)
	createPool(t, c, "p", "10.0.0.0/24", 28)
	ctx := ctxT(t)
	got := assign4(t, a, "n1", "h1", 20) // more than one block
	if err := a.AssignIP(ctx, AssignIPArgs{IP: netip4("10.0.0.200"), HandleID: "h2", Hostname: "n2"}); err != nil {
		t.Fatal(err)
	}
	s := mustClean(t, a, CheckOptions{Nodes: []string{"n1", "n2"}})
	if len(s.Allocations()) != 21 || len(s.Affinities) != 3 {
		t.Fatalf("%d allocations, affinities %+v", len(s.Allocations()), s.Affinities)
	}
	if _, err := a.ReleaseIPs(ctx, got[0].Addr(), got[19].Addr()); err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"h1", "h2"} {
		if err := a.ReleaseByHandle(ctx, h); err != nil {
			t.Fatal(err)
		}
	}
	s = mustClean(t, a, CheckOptions{})
	if len(s.Allocations()) != 0 || len(s.Handles) != 0 {
		t.Fatalf("left %d allocations %d handles", len(s.Allocations()), len(s.Handles))
	}
}

func envInt(k string) int {
	n, _ := strconv.Atoi(os.Getenv(k))
	return n
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(fmt.Sprint(err))
	}
	return v
}

func embeddedStart(ctx context.Context, e *testEtcd) (*embedded.Server, error) {
	return embedded.Start(ctx, embedded.Options{DataDir: e.dir, ListenClient: e.client, ListenPeer: e.peer, UnsafeNoFsync: true})
}

func slicesSort(s []int64)                     { slices.Sort(s) }
func slicesContains(s []string, v string) bool { return slices.Contains(s, v) }
