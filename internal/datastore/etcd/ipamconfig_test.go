package etcd_test

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v3 "github.com/calico-go/calico/api/v3"
	"github.com/calico-go/calico/internal/datastore"
	"github.com/calico-go/calico/internal/datastore/etcd"
	"github.com/calico-go/calico/internal/ipam"
	"github.com/calico-go/calico/pkg/client"
)

// TestIPAMConfiguration: the IPAMConfiguration "default" of the resource
// API and the IPAM allocator's settings are one document at
// /calico/ipam/v2/config, in Calico's JSON.
func TestIPAMConfiguration(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b := newBackend(t, etcd.Config{Endpoints: sharedEmbedded(t).Endpoints()})
	c := client.NewFromBackend(b)
	alloc, err := ipam.New(ipam.Options{Store: ipam.NewEtcdStore(b.Client(), 0), Resources: ipam.StaticResources{}})
	if err != nil {
		t.Fatal(err)
	}
	key := datastore.Key{Kind: v3.KindIPAMConfiguration, Name: "default"}
	if _, err := c.Get(ctx, key); !errors.Is(err, datastore.ErrNotFound) {
		t.Fatalf("Get before anything was written: %v", err)
	}

	// Written through the resource API: IPAM sees it, in Calico's JSON.
	cfg := v3.NewIPAMConfiguration()
	cfg.Name = "default"
	cfg.Labels = map[string]string{"team": "net"}
	cfg.Spec = v3.IPAMConfigurationSpec{StrictAffinity: true, MaxBlocksPerHost: 4, IPCooldownSeconds: ptr(int32(30))}
	created, err := c.Create(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if created.GetUID() == "" || created.GetResourceVersion() == "" || created.GetCreationTimestamp().Time.IsZero() {
		t.Errorf("created without uid, resourceVersion or creationTimestamp: %+v", created)
	}
	spec, err := alloc.Config(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !spec.StrictAffinity || spec.MaxBlocksPerHost != 4 || spec.AutoAllocateBlocks == nil || !*spec.AutoAllocateBlocks ||
		spec.IPCooldownSeconds == nil || *spec.IPCooldownSeconds != 30 {
		t.Errorf("IPAM reads %+v", spec)
	}
	resp, err := b.Client().Get(ctx, etcd.IPAMConfigKey)
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("raw key: %v %v", resp, err)
	}
	var raw map[string]any
	if err := json.Unmarshal(resp.Kvs[0].Value, &raw); err != nil {
		t.Fatal(err)
	}
	if raw["strict_affinity"] != true || raw["auto_allocate_blocks"] != true || raw["maxBlocksPerHost"] != float64(4) {
		t.Errorf("stored document is not Calico's: %s", resp.Kvs[0].Value)
	}
	if n, _ := b.Client().Get(ctx, etcd.Prefix+"ipamconfigurations/", clientv3.WithPrefix()); n != nil && len(n.Kvs) != 0 {
		t.Errorf("IPAMConfiguration also stored under the resource prefix: %s", n.Kvs[0].Key)
	}

	// A watch from now sees IPAM's own write.
	w, err := c.Watch(ctx, v3.KindIPAMConfiguration, "", "")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	if err := alloc.UpdateConfig(ctx, func(s *v3.IPAMConfigurationSpec) error { s.MaxBlocksPerHost = 7; return nil }); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-w.ResultChan():
		got, ok := ev.New.(*v3.IPAMConfiguration)
		if ev.Type != datastore.Modified || !ok || got.Spec.MaxBlocksPerHost != 7 || got.Name != "default" {
			t.Errorf("watch event %v %+v", ev.Type, ev.New)
		}
	case <-ctx.Done():
		t.Fatal("no watch event for IPAM's write")
	}

	// Read back through the resource API: IPAM's write kept the metadata
	// (labels set with calicoctl apply, uid, creationTimestamp).
	r, err := c.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	got := r.(*v3.IPAMConfiguration)
	if got.Spec.MaxBlocksPerHost != 7 || !got.Spec.StrictAffinity {
		t.Errorf("Get after IPAM's write: %+v", got.Spec)
	}
	if got.Labels["team"] != "net" || got.GetUID() != created.GetUID() ||
		got.GetCreationTimestamp().Unix() != created.GetCreationTimestamp().Unix() {
		t.Errorf("IPAM's write lost the metadata: labels %v uid %q (want %q) created %v (want %v)", got.Labels,
			got.GetUID(), created.GetUID(), got.GetCreationTimestamp(), created.GetCreationTimestamp())
	}
	if err := alloc.SetConfig(ctx, got.Spec); err != nil {
		t.Fatal(err)
	}
	if r, err = c.Get(ctx, key); err != nil || r.GetLabels()["team"] != "net" {
		t.Fatalf("SetConfig lost the labels: %v %v", r, err)
	}
	got = r.(*v3.IPAMConfiguration)
	got.Spec.StrictAffinity = false
	got.Spec.MaxBlocksPerHost = 0
	updated, err := c.Update(ctx, got)
	if err != nil {
		t.Fatal(err)
	}
	if updated.GetUID() == "" {
		t.Error("update kept no uid")
	}
	if spec, _ := alloc.Config(ctx); spec.StrictAffinity || spec.MaxBlocksPerHost != 0 {
		t.Errorf("IPAM after update: %+v", spec)
	}
	list, err := c.List(ctx, v3.KindIPAMConfiguration, "")
	if err != nil || len(list.Items) != 1 || list.Items[0].GetName() != "default" {
		t.Fatalf("List: %v %v", list.Items, err)
	}

	// Only "default" exists.
	other := v3.NewIPAMConfiguration()
	other.Name = "other"
	if _, err := b.Create(ctx, other); err == nil || !strings.Contains(err.Error(), `must be named "default"`) {
		t.Errorf("Create other: %v", err)
	}
	if _, err := b.Get(ctx, datastore.Key{Kind: v3.KindIPAMConfiguration, Name: "other"}); !errors.Is(err, datastore.ErrNotFound) {
		t.Errorf("Get other: %v", err)
	}

	// Calico's own document (no metadata) reads fine.
	if _, err := b.Client().Put(ctx, etcd.IPAMConfigKey, `{"strict_affinity":true,"auto_allocate_blocks":false}`); err != nil {
		t.Fatal(err)
	}
	r, err = c.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if s := r.(*v3.IPAMConfiguration).Spec; !s.StrictAffinity || s.AutoAllocateBlocks == nil || *s.AutoAllocateBlocks {
		t.Errorf("Calico's document read as %+v", s)
	}

	// Delete puts IPAM back on its defaults.
	if _, err := c.Delete(ctx, key, ""); err != nil {
		t.Fatal(err)
	}
	if spec, _ := alloc.Config(ctx); spec.StrictAffinity || spec.AutoAllocateBlocks == nil || !*spec.AutoAllocateBlocks {
		t.Errorf("IPAM after delete: %+v", spec)
	}
}

// TestIPAMConfigDocumentFields keeps the backend's copy of the document in
// step with internal/ipam.StoredConfig: the same JSON keys.
func TestIPAMConfigDocumentFields(t *testing.T) {
	want := jsonKeys(reflect.TypeOf(ipam.StoredConfig{}))
	spec := v3.IPAMConfigurationSpec{StrictAffinity: true, MaxBlocksPerHost: 3, IPCooldownSeconds: ptr(int32(1)),
		KubeVirtVMAddressPersistence: ptr(v3.VMAddressPersistenceDisabled)}
	ki, _ := v3.LookupKind(v3.KindIPAMConfiguration)
	r := ki.New().(*v3.IPAMConfiguration)
	r.Name, r.Spec = "default", spec
	r.ObjectMeta.CreationTimestamp = metav1.Now()
	b := newBackend(t, etcd.Config{Endpoints: sharedEmbedded(t).Endpoints()})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := b.Create(ctx, r); err != nil {
		t.Fatal(err)
	}
	resp, err := b.Client().Get(ctx, etcd.IPAMConfigKey)
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatal(resp, err)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(resp.Kvs[0].Value, &raw); err != nil {
		t.Fatal(err)
	}
	for _, k := range want {
		if _, ok := raw[k]; !ok {
			t.Errorf("stored document lacks %q (internal/ipam.StoredConfig has it): %s", k, resp.Kvs[0].Value)
		}
	}
	for k := range raw {
		if k != "metadata" && !contains(want, k) {
			t.Errorf("stored document has %q, which internal/ipam.StoredConfig does not know", k)
		}
	}
}

func jsonKeys(t reflect.Type) []string {
	var out []string
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		out = append(out, name)
	}
	return out
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func ptr[T any](v T) *T { return &v }
