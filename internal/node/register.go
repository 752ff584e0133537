package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"

	v3 "github.com/calico-go/calico/api/v3"
	"github.com/calico-go/calico/internal/autodetect"
	"github.com/calico-go/calico/internal/datastore"
	"github.com/calico-go/calico/pkg/client"
)

// ErrAddressInUse: another Node already uses the address this node
// detected or was given.
var ErrAddressInUse = errors.New("address already in use by another node")

// ErrNoAddress: the BGP backend needs an address and none was found.
var ErrNoAddress = errors.New("no IP address for the node")

// addresses resolves the node's IPv4 and IPv6 addresses (CIDR form, the
// interface's prefix length) from the options and the existing Node.
func addresses(n *NodeOptions, existing *v3.Node, log *slog.Logger) (v4, v6 netip.Prefix, err error) {
	var cur4, cur6 string
	if existing != nil && existing.Spec.BGP != nil {
		cur4, cur6 = existing.Spec.BGP.IPv4Address, existing.Spec.BGP.IPv6Address
	}
	v4, err = address(n, n.IP, n.IPMethod, cur4, false, true, log)
	if err != nil {
		return v4, v6, err
	}
	v6, err = address(n, n.IP6, n.IP6Method, cur6, true, false, log)
	return v4, v6, err
}

func address(n *NodeOptions, setting, method, current string, v6, detectByDefault bool, log *slog.Logger) (netip.Prefix, error) {
	fam := "IP"
	if v6 {
		fam = "IP6"
	}
	switch strings.ToLower(setting) {
	case "none":
		return netip.Prefix{}, nil
	case "":
		if current != "" {
			if p, err := netip.ParsePrefix(current); err == nil {
				return p, nil
			}
		}
		if !detectByDefault {
			return netip.Prefix{}, nil
		}
		fallthrough
	case "autodetect":
		m, err := autodetect.ParseMethod(method)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%s_AUTODETECTION_METHOD: %w", fam, err)
		}
		p, ifc, err := autodetect.Detect(n.System, m, v6)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("autodetect %s: %w", fam, err)
		}
		log.Info("autodetected node address", "family", fam, "address", p.String(), "interface", ifc.Name, "method", m.String())
		return p, nil
	}
	if p, err := netip.ParsePrefix(setting); err == nil {
		if p.Addr().Is6() != v6 {
			return netip.Prefix{}, fmt.Errorf("%s=%q: wrong address family", fam, setting)
		}
		return p, nil
	}
	a, err := netip.ParseAddr(setting)
	if err != nil || a.Is6() != v6 {
		return netip.Prefix{}, fmt.Errorf("%s=%q: want autodetect, none or an IPv%s address", fam, setting, map[bool]string{false: "4", true: "6"}[v6])
	}
	if p, _, err := autodetect.InterfaceOf(n.System, a); err == nil {
		return p, nil
	}
	log.Warn("configured node address is not on any interface", "family", fam, "address", a.String())
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// registerNode creates or updates this host's Node: BGP addresses, AS
// number and the CalicoNodeIP addresses. Other fields (labels, tunnel
// addresses, route reflector cluster ID, orchRefs) are kept.
func registerNode(ctx context.Context, c *client.Client, n *NodeOptions, log *slog.Logger) (*v3.Node, error) {
	for attempt := 0; ; attempt++ {
		existing, err := client.Get[*v3.Node](ctx, c, "", n.Name)
		if err != nil && !errors.Is(err, datastore.ErrNotFound) {
			return nil, fmt.Errorf("read Node %s: %w", n.Name, err)
		}
		if err != nil {
			existing = nil
		}
		v4, v6, err := addresses(n, existing, log)
		if err != nil {
			return nil, err
		}
		if !v4.IsValid() && !v6.IsValid() && n.Backend == BackendBird {
			return nil, fmt.Errorf("%w: the BGP backend needs IP or IP6 (autodetect or an address)", ErrNoAddress)
		}
		if err := checkConflicts(ctx, c, n.Name, v4, v6); err != nil {
			return nil, err
		}
		node := existing
		if node == nil {
			node = v3.NewNode()
			node.Name = n.Name
		} else {
			node = node.DeepCopyObject().(*v3.Node)
		}
		if err := setBGPSpec(node, n, v4, v6); err != nil {
			return nil, err
		}
		var out v3.Resource
		if existing == nil {
			out, err = c.Create(ctx, node)
		} else {
			out, err = c.Update(ctx, node)
		}
		if (errors.Is(err, datastore.ErrAlreadyExists) || errors.Is(err, datastore.ErrConflict)) && attempt < 5 {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("write Node %s: %w", n.Name, err)
		}
		log.Info("node registered", "node", n.Name, "ipv4", v4.String(), "ipv6", v6.String())
		return out.(*v3.Node), nil
	}
}

func setBGPSpec(node *v3.Node, n *NodeOptions, v4, v6 netip.Prefix) error {
	spec := node.Spec.BGP
	if spec == nil {
		spec = &v3.NodeBGPSpec{}
	}
	spec.IPv4Address, spec.IPv6Address = "", ""
	if v4.IsValid() {
		spec.IPv4Address = v4.String()
	}
	if v6.IsValid() {
		spec.IPv6Address = v6.String()
	}
	if n.AS != "" {
		as, err := v3.ASNumberFromString(n.AS)
		if err != nil {
			return fmt.Errorf("AS=%q: %w", n.AS, err)
		}
		spec.ASNumber = &as
	}
	if spec.IPv4Address == "" && spec.IPv6Address == "" {
		// An empty bgp object is invalid; a node without addresses has none.
		node.Spec.BGP = nil
	} else {
		node.Spec.BGP = spec
	}
	var addrs []v3.NodeAddress
	for _, a := range node.Spec.Addresses {
		if a.Type != v3.NodeAddressCalicoNodeIP {
			addrs = append(addrs, a)
		}
	}
	for _, p := range []netip.Prefix{v4, v6} {
		if p.IsValid() {
			addrs = append(addrs, v3.NodeAddress{Address: p.String(), Type: v3.NodeAddressCalicoNodeIP})
		}
	}
	node.Spec.Addresses = addrs
	return nil
}

// checkConflicts refuses an address another Node already has, as
// calico-node does (two nodes with one address would break routing).
func checkConflicts(ctx context.Context, c *client.Client, name string, v4, v6 netip.Prefix) error {
	nodes, err := client.List[*v3.Node](ctx, c, "")
	if err != nil {
		return fmt.Errorf("list Nodes: %w", err)
	}
	for _, other := range nodes {
		if other.Name == name || other.Spec.BGP == nil {
			continue
		}
		for _, pair := range [][2]string{{other.Spec.BGP.IPv4Address, prefixString(v4)}, {other.Spec.BGP.IPv6Address, prefixString(v6)}} {
			if pair[0] == "" || pair[1] == "" {
				continue
			}
			a, err1 := netip.ParsePrefix(pair[0])
			b, err2 := netip.ParsePrefix(pair[1])
			if err1 == nil && err2 == nil && a.Addr() == b.Addr() {
				return fmt.Errorf("%w: %s is node %q's address; set IP/IP6 or IP_AUTODETECTION_METHOD, or delete the stale Node", ErrAddressInUse, b.Addr(), other.Name)
			}
		}
	}
	return nil
}

func prefixString(p netip.Prefix) string {
	if !p.IsValid() {
		return ""
	}
	return p.String()
}
