package etcd

import (
	"encoding/json"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v3 "github.com/calico-go/calico/api/v3"
	"github.com/calico-go/calico/internal/datastore"
	"github.com/calico-go/calico/internal/datastore/internal/meta"
)

// IPAMConfigKey is where the IPAMConfiguration "default" is stored: the
// key Calico's IPAM reads its settings from, in Calico's JSON
// (strict_affinity, auto_allocate_blocks, maxBlocksPerHost), so that
// `calicoctl get/apply ipamconfiguration default`, `calicoctl ipam
// configure` and the allocator (internal/ipam, which reads and writes the
// same key) always agree. The document also carries the resource's
// metadata (uid, creationTimestamp, labels, annotations) under "metadata",
// which Calico ignores and internal/ipam writes back unchanged.
const IPAMConfigKey = "/calico/ipam/v2/config"

// ipamConfigName is the only name an IPAMConfiguration may have.
const ipamConfigName = "default"

// storedIPAMConfig is the document at IPAMConfigKey. Its fields
// mirror internal/ipam.StoredConfig (which this package cannot import);
// a test keeps the two in step.
type storedIPAMConfig struct {
	StrictAffinity               bool               `json:"strict_affinity"`
	AutoAllocateBlocks           bool               `json:"auto_allocate_blocks"`
	MaxBlocksPerHost             int                `json:"maxBlocksPerHost,omitempty"`
	IPCooldownSeconds            *int32             `json:"ipCooldownSeconds,omitempty"`
	KubeVirtVMAddressPersistence string             `json:"kubeVirtVMAddressPersistence,omitempty"`
	Metadata                     *metav1.ObjectMeta `json:"metadata,omitempty"`
}

func isIPAMConfig(ki v3.KindInfo) bool { return ki.Kind == v3.KindIPAMConfiguration }

// checkName refuses keys that can have no stored value: an
// IPAMConfiguration other than "default" does not exist (get, update,
// delete) and cannot be created.
func checkName(op string, ki v3.KindInfo, k datastore.Key) error {
	if !isIPAMConfig(ki) || k.Name == ipamConfigName {
		return nil
	}
	if op == "create" {
		return &datastore.Error{Op: op, Key: k, Err: fmt.Errorf("%w: an IPAMConfiguration must be named %q",
			meta.ErrInvalidKey, ipamConfigName)}
	}
	return &datastore.Error{Op: op, Key: k, Err: datastore.ErrNotFound}
}

// encodeValue returns the stored form of r.
func encodeValue(ki v3.KindInfo, r v3.Resource) ([]byte, error) {
	if !isIPAMConfig(ki) {
		return meta.Encode(r)
	}
	c, ok := r.(*v3.IPAMConfiguration)
	if !ok {
		return nil, fmt.Errorf("encode %T as IPAMConfiguration", r)
	}
	s := c.Spec
	doc := storedIPAMConfig{
		StrictAffinity:     s.StrictAffinity,
		AutoAllocateBlocks: s.AutoAllocateBlocks == nil || *s.AutoAllocateBlocks,
		MaxBlocksPerHost:   int(s.MaxBlocksPerHost),
		IPCooldownSeconds:  s.IPCooldownSeconds,
		Metadata: &metav1.ObjectMeta{UID: c.UID, CreationTimestamp: c.CreationTimestamp,
			Labels: c.Labels, Annotations: c.Annotations},
	}
	if s.KubeVirtVMAddressPersistence != nil {
		doc.KubeVirtVMAddressPersistence = string(*s.KubeVirtVMAddressPersistence)
	}
	b, err := json.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("encode IPAMConfiguration: %w", err)
	}
	return b, nil
}

// decodeValue parses a stored value of kind ki with resourceVersion rv.
func decodeValue(ki v3.KindInfo, k datastore.Key, value []byte, rv string) (v3.Resource, error) {
	if !isIPAMConfig(ki) {
		return meta.Decode(ki, k, value, rv)
	}
	var doc storedIPAMConfig
	if err := json.Unmarshal(value, &doc); err != nil {
		return nil, fmt.Errorf("decode stored %s (%s): %w", k, IPAMConfigKey, err)
	}
	c := v3.NewIPAMConfiguration()
	meta.SetTypeMeta(c, ki)
	if m := doc.Metadata; m != nil {
		c.UID, c.CreationTimestamp, c.Labels, c.Annotations = m.UID, m.CreationTimestamp, m.Labels, m.Annotations
	}
	c.Name = ipamConfigName
	c.ResourceVersion = rv
	auto := doc.AutoAllocateBlocks
	c.Spec = v3.IPAMConfigurationSpec{
		StrictAffinity:     doc.StrictAffinity,
		MaxBlocksPerHost:   int32(doc.MaxBlocksPerHost),
		AutoAllocateBlocks: &auto,
		IPCooldownSeconds:  doc.IPCooldownSeconds,
	}
	if doc.KubeVirtVMAddressPersistence != "" {
		p := v3.VMAddressPersistence(doc.KubeVirtVMAddressPersistence)
		c.Spec.KubeVirtVMAddressPersistence = &p
	}
	return c, nil
}
