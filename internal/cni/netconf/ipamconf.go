package netconf

import (
	"encoding/json"
	"net/netip"
	"strings"

	"github.com/containernetworking/cni/pkg/types"
)

// IPAMConf is the network configuration as calico-ipam reads it: the keys
// it shares with the calico plugin (Common, the "ipam" section) and what
// the runtime adds for CHECK and GC. ParseIPAM checks only these, so a
// configuration whose network plugin is not calico, or that sets keys only
// the calico plugin validates (mtu, device_type, ...), is not refused.
type IPAMConf struct {
	CNIVersion string `json:"cniVersion"`
	// Name is the network name; the handle of a container's addresses is
	// HandleID(Name, container id).
	Name string `json:"name"`
	Type string `json:"type"`

	Common

	IPAM IPAM `json:"ipam"`

	// PrevResult is the result CHECK compares with.
	PrevResult json.RawMessage `json:"prevResult,omitempty"`
	// ValidAttachments are what GC keeps ("cni.dev/valid-attachments",
	// or the earlier "cni.dev/attachments").
	ValidAttachments []types.GCAttachment `json:"cni.dev/valid-attachments,omitempty"`
	Attachments      []types.GCAttachment `json:"cni.dev/attachments,omitempty"`
}

// ParseIPAM decodes and checks a network configuration for calico-ipam and
// fills in the defaults. Beyond what Parse checks of the shared keys, it
// refuses a datastore this build cannot reach, a request for no address
// family and malformed pool lists, since calico-ipam acts on them. Errors
// wrap ErrInvalid.
func ParseIPAM(data []byte) (*IPAMConf, error) {
	c := &IPAMConf{}
	if err := decode(data, c); err != nil {
		return nil, err
	}
	if c.CNIVersion == "" {
		c.CNIVersion = "0.1.0" // what the CNI spec implies for a config without one
	}
	if c.Name == "" {
		c.Name = DefaultNetworkName
	}
	c.setDefaults()
	for _, check := range []func() error{c.Common.check, c.checkSupported, c.IPAM.check, c.IPAM.checkPools} {
		if err := check(); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// checkPools refuses what calico-ipam could not act on: no address family,
// empty pool names, a CIDR of the wrong family.
func (i IPAM) checkPools() error {
	if !i.WantIPv4() && !i.WantIPv6() {
		return invalid(`ipam.assign_ipv4 and ipam.assign_ipv6 are both "false": nothing to assign; set one of them to "true"`)
	}
	for _, f := range []struct {
		key   string
		pools []string
		v6    bool
	}{{"ipam.ipv4_pools", i.IPv4Pools, false}, {"ipam.ipv6_pools", i.IPv6Pools, true}} {
		for _, p := range f.pools {
			if strings.TrimSpace(p) == "" {
				return invalid("%s has an empty entry; name pools by name or CIDR", f.key)
			}
			if pfx, err := netip.ParsePrefix(p); err == nil && pfx.Addr().Is6() != f.v6 {
				return invalid("%s lists %s, which is not an IPv%s CIDR", f.key, p, map[bool]string{false: "4", true: "6"}[f.v6])
			}
		}
	}
	return nil
}

// Valid returns the container IDs GC must keep.
func (c *IPAMConf) Valid() map[string]bool {
	out := map[string]bool{}
	for _, a := range append(c.ValidAttachments, c.Attachments...) {
		out[a.ContainerID] = true
	}
	return out
}
