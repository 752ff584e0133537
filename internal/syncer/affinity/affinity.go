// Package affinity defines the record the syncer emits for each confirmed
// IPAM block affinity (SPEC §5: /calico/ipam/v2/host/<node>/<family>/block/<cidr>),
// so that the calculation graph can route every block to the node that
// owns it. The IPAM documents are not projectcalico.org/v3 resources, so
// the record implements v3.Resource itself; it is a leaf package that both
// the syncer and the (pure) calculation graph import.
package affinity

import (
	"net/netip"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// Kind is the Key.Kind of the syncer's affinity updates.
const Kind = "BlockAffinity"

// Block says that the IPAM block CIDR is affine to Node (with a confirmed
// affinity: pending affinities and affinities marked deleted are never
// emitted). Its Name is the affinity key below /calico/ipam/v2/host/, for
// example "node1/ipv4/block/10.0.0.0-26"; ResourceVersion is the etcd
// modification revision.
type Block struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Node string       `json:"node"`
	CIDR netip.Prefix `json:"cidr"`
}

// New returns a Block with its kind and name set.
func New(name, node string, cidr netip.Prefix) *Block {
	return &Block{
		TypeMeta:   metav1.TypeMeta{Kind: Kind},
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Node:       node,
		CIDR:       cidr,
	}
}

// DeepCopyObject implements runtime.Object.
func (b *Block) DeepCopyObject() runtime.Object {
	if b == nil {
		return nil
	}
	c := *b
	b.ObjectMeta.DeepCopyInto(&c.ObjectMeta)
	return &c
}
