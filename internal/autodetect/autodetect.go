// Package autodetect finds the address a node should use for BGP and
// tunnels, with Calico's IP_AUTODETECTION_METHOD language:
//
//	first-found                 the first usable address on an interface
//	                            not in DefaultExclude
//	interface=REGEX[,REGEX]     the first address on an interface matching
//	                            any regex
//	skip-interface=REGEX[,...]  like first-found, skipping matching
//	                            interfaces (instead of DefaultExclude)
//	can-reach=DEST              the source address the routing table picks
//	                            for DEST (an address or host name); a route
//	                            lookup only, nothing is sent
//	cidr=CIDR[,CIDR]            the first address inside any CIDR
//
// Addresses come with the prefix length of their interface. Detection works
// in the network namespace of the calling thread (System uses the standard
// library's interface listing and a connected UDP socket), so tests run it
// inside their own namespaces.
package autodetect

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"strings"
)

// ErrNotFound: no address matched the method.
var ErrNotFound = errors.New("no address found")

// ErrBadMethod: the method string does not parse.
var ErrBadMethod = errors.New("invalid IP autodetection method")

// DefaultExclude are the interface-name patterns first-found skips.
var DefaultExclude = []string{
	`^docker.*`, `^cbr.*`, `^dummy.*`, `^virbr.*`, `^lxcbr.*`, `^veth.*`, `^lo`,
	`^cali.*`, `^tunl.*`, `^flannel.*`, `^kube-ipvs.*`, `^cni.*`,
	`^vxlan\.calico.*`, `^vxlan-v6\.calico.*`, `^wireguard\.cali.*`, `^wg-v6\.cali.*`,
	`^nodelocaldns.*`, `^podman.*`,
}

// Interface is one network interface and its addresses.
type Interface struct {
	Name  string
	Index int
	Up    bool
	MTU   int
	Addrs []netip.Prefix
}

// System is what detection looks at.
type System interface {
	// Interfaces lists interfaces in index order.
	Interfaces() ([]Interface, error)
	// SourceFor returns the source address the kernel would use to reach
	// dest ("host" or an address).
	SourceFor(dest string, v6 bool) (netip.Addr, error)
}

// Host is the System of the calling thread's network namespace.
type Host struct{}

// Interfaces implements System.
func (Host) Interfaces() ([]Interface, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("list interfaces: %w", err)
	}
	out := make([]Interface, 0, len(ifs))
	for _, ifc := range ifs {
		addrs, err := ifc.Addrs()
		if err != nil {
			return nil, fmt.Errorf("addresses of %s: %w", ifc.Name, err)
		}
		i := Interface{Name: ifc.Name, Index: ifc.Index, Up: ifc.Flags&net.FlagUp != 0, MTU: ifc.MTU}
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok {
				continue
			}
			ip, ok := netip.AddrFromSlice(ipn.IP)
			if !ok {
				continue
			}
			ones, bits := ipn.Mask.Size()
			if bits == 32 || ip.Is4In6() {
				ip = ip.Unmap()
			}
			i.Addrs = append(i.Addrs, netip.PrefixFrom(ip, ones))
		}
		out = append(out, i)
	}
	return out, nil
}

// SourceFor implements System with a connected UDP socket: connect() on UDP
// performs the route lookup and sends nothing.
func (Host) SourceFor(dest string, v6 bool) (netip.Addr, error) {
	network := "udp4"
	if v6 {
		network = "udp6"
	}
	conn, err := net.Dial(network, net.JoinHostPort(dest, "80"))
	if err != nil {
		return netip.Addr{}, fmt.Errorf("route lookup for %s: %w", dest, err)
	}
	defer conn.Close()
	ap, err := netip.ParseAddrPort(conn.LocalAddr().String())
	if err != nil {
		return netip.Addr{}, err
	}
	return ap.Addr().Unmap(), nil
}

// Method is a parsed IP_AUTODETECTION_METHOD.
type Method struct {
	Kind    string // "first-found", "interface", "skip-interface", "can-reach", "cidr"
	Regexes []*regexp.Regexp
	Dest    string
	CIDRs   []netip.Prefix
}

// ParseMethod parses a method; "" means first-found.
func ParseMethod(s string) (Method, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "first-found" {
		return Method{Kind: "first-found"}, nil
	}
	kind, arg, ok := strings.Cut(s, "=")
	if !ok || arg == "" {
		return Method{}, fmt.Errorf("%w: %q", ErrBadMethod, s)
	}
	m := Method{Kind: kind}
	switch kind {
	case "interface", "skip-interface":
		for _, r := range strings.Split(arg, ",") {
			re, err := regexp.Compile(r)
			if err != nil {
				return Method{}, fmt.Errorf("%w: %s: %v", ErrBadMethod, s, err)
			}
			m.Regexes = append(m.Regexes, re)
		}
	case "can-reach":
		m.Dest = arg
	case "cidr":
		for _, c := range strings.Split(arg, ",") {
			p, err := netip.ParsePrefix(strings.TrimSpace(c))
			if err != nil {
				return Method{}, fmt.Errorf("%w: %s: %v", ErrBadMethod, s, err)
			}
			m.CIDRs = append(m.CIDRs, p.Masked())
		}
	default:
		return Method{}, fmt.Errorf("%w: %q (want first-found, interface=, skip-interface=, can-reach= or cidr=)", ErrBadMethod, s)
	}
	return m, nil
}

var defaultExclude = func() []*regexp.Regexp {
	out := make([]*regexp.Regexp, len(DefaultExclude))
	for i, r := range DefaultExclude {
		out[i] = regexp.MustCompile(r)
	}
	return out
}()

func matchAny(res []*regexp.Regexp, s string) bool {
	for _, re := range res {
		if re.MatchString(s) {
			return true
		}
	}
	return false
}

// usable: a global unicast address of the family (no link-local, loopback
// or multicast).
func usable(a netip.Addr, v6 bool) bool {
	return a.Is6() == v6 && a.IsGlobalUnicast() && !a.IsLinkLocalUnicast()
}

// Detect returns the address (with its interface's prefix length) the
// method picks for the family, and the interface it is on.
func Detect(sys System, m Method, v6 bool) (netip.Prefix, Interface, error) {
	ifs, err := sys.Interfaces()
	if err != nil {
		return netip.Prefix{}, Interface{}, err
	}
	fam := "IPv4"
	if v6 {
		fam = "IPv6"
	}
	pick := func(ifOK func(Interface) bool, addrOK func(netip.Prefix) bool) (netip.Prefix, Interface, error) {
		for _, ifc := range ifs {
			if !ifc.Up || !ifOK(ifc) {
				continue
			}
			for _, a := range ifc.Addrs {
				if usable(a.Addr(), v6) && addrOK(a) {
					return a, ifc, nil
				}
			}
		}
		return netip.Prefix{}, Interface{}, fmt.Errorf("%w: no %s address matches %s", ErrNotFound, fam, m)
	}
	anyAddr := func(netip.Prefix) bool { return true }
	switch m.Kind {
	case "first-found":
		return pick(func(i Interface) bool { return !matchAny(defaultExclude, i.Name) }, anyAddr)
	case "interface":
		return pick(func(i Interface) bool { return matchAny(m.Regexes, i.Name) }, anyAddr)
	case "skip-interface":
		return pick(func(i Interface) bool { return !matchAny(m.Regexes, i.Name) }, anyAddr)
	case "cidr":
		return pick(func(Interface) bool { return true }, func(a netip.Prefix) bool {
			for _, c := range m.CIDRs {
				if c.Contains(a.Addr()) {
					return true
				}
			}
			return false
		})
	case "can-reach":
		src, err := sys.SourceFor(m.Dest, v6)
		if err != nil {
			return netip.Prefix{}, Interface{}, fmt.Errorf("%w: %v", ErrNotFound, err)
		}
		return pick(func(Interface) bool { return true }, func(a netip.Prefix) bool { return a.Addr() == src })
	}
	return netip.Prefix{}, Interface{}, fmt.Errorf("%w: %q", ErrBadMethod, m.Kind)
}

// InterfaceOf finds the interface holding addr (with its prefix length).
func InterfaceOf(sys System, addr netip.Addr) (netip.Prefix, Interface, error) {
	ifs, err := sys.Interfaces()
	if err != nil {
		return netip.Prefix{}, Interface{}, err
	}
	for _, ifc := range ifs {
		for _, a := range ifc.Addrs {
			if a.Addr() == addr {
				return a, ifc, nil
			}
		}
	}
	return netip.Prefix{}, Interface{}, fmt.Errorf("%w: %s is not on any interface", ErrNotFound, addr)
}

func (m Method) String() string {
	switch m.Kind {
	case "interface", "skip-interface":
		var rs []string
		for _, r := range m.Regexes {
			rs = append(rs, r.String())
		}
		return m.Kind + "=" + strings.Join(rs, ",")
	case "can-reach":
		return "can-reach=" + m.Dest
	case "cidr":
		var cs []string
		for _, c := range m.CIDRs {
			cs = append(cs, c.String())
		}
		return "cidr=" + strings.Join(cs, ",")
	}
	return m.Kind
}
