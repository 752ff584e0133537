package felixconfig

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	v3 "github.com/calico-go/calico/api/v3"
	"github.com/calico-go/calico/internal/dpapi"
)

// kind is the type of a parameter's value.
type kind uint8

const (
	kString   kind = iota // string
	kList                 // []string, comma-separated in every source
	kBool                 // bool
	kInt                  // int
	kMask                 // uint32
	kDuration             // time.Duration: seconds in strings, Go form in JSON
	kPorts                // []dpapi.ProtoPort
)

// param is one Felix parameter that ends up in dpapi.Config.
type param struct {
	name string // Felix / JSON name
	kind kind
	def  string // default, in string form
	// noDefault: apply only when some source sets it (a newer name that
	// overrides an older one, e.g. nftablesFilterAllowAction).
	noDefault bool
	enum      []string // allowed values, matched without regard to case
	apply     func(*dpapi.Config, any)
}

var params = []param{
	{name: "interfacePrefix", kind: kList, def: "cali", apply: func(c *dpapi.Config, v any) { c.InterfacePrefixes = v.([]string) }},
	{name: "interfaceExclude", kind: kList, def: "kube-ipvs0", apply: func(c *dpapi.Config, v any) { c.InterfaceExclude = v.([]string) }},
	{name: "failsafeInboundHostPorts", kind: kPorts, def: "tcp:22,udp:68,tcp:179,tcp:2379,tcp:2380,tcp:5473,tcp:6443,tcp:6666,tcp:6667",
		apply: func(c *dpapi.Config, v any) { c.FailsafeInbound = v.([]dpapi.ProtoPort) }},
	{name: "failsafeOutboundHostPorts", kind: kPorts, def: "udp:53,udp:67,tcp:179,tcp:2379,tcp:2380,tcp:5473,tcp:6443,tcp:6666,tcp:6667",
		apply: func(c *dpapi.Config, v any) { c.FailsafeOutbound = v.([]dpapi.ProtoPort) }},
	{name: "defaultEndpointToHostAction", def: "Drop", enum: []string{"Drop", "Return", "Accept"},
		apply: func(c *dpapi.Config, v any) { c.DefaultEndpointToHostAction = v.(string) }},
	{name: "iptablesFilterAllowAction", def: "Accept", enum: []string{"Accept", "Return"},
		apply: func(c *dpapi.Config, v any) { c.FilterAllowAction = v.(string) }},
	{name: "nftablesFilterAllowAction", noDefault: true, enum: []string{"Accept", "Return"},
		apply: func(c *dpapi.Config, v any) { c.FilterAllowAction = v.(string) }},
	{name: "iptablesMangleAllowAction", def: "Accept", enum: []string{"Accept", "Return"},
		apply: func(c *dpapi.Config, v any) { c.MangleAllowAction = v.(string) }},
	{name: "nftablesMangleAllowAction", noDefault: true, enum: []string{"Accept", "Return"},
		apply: func(c *dpapi.Config, v any) { c.MangleAllowAction = v.(string) }},
	{name: "iptablesFilterDenyAction", def: "Drop", enum: []string{"Drop", "Reject"},
		apply: func(c *dpapi.Config, v any) { c.FilterDenyAction = v.(string) }},
	{name: "nftablesFilterDenyAction", noDefault: true, enum: []string{"Drop", "Reject"},
		apply: func(c *dpapi.Config, v any) { c.FilterDenyAction = v.(string) }},
	{name: "chainInsertMode", def: "Insert", enum: []string{"Insert", "Append"},
		apply: func(c *dpapi.Config, v any) { c.ChainInsertMode = v.(string) }},
	{name: "iptablesMarkMask", kind: kMask, def: "0xffff0000", apply: func(c *dpapi.Config, v any) { c.MarkMask = v.(uint32) }},
	{name: "nftablesMarkMask", kind: kMask, noDefault: true, apply: func(c *dpapi.Config, v any) { c.MarkMask = v.(uint32) }},
	{name: "logPrefix", def: "calico-packet", apply: func(c *dpapi.Config, v any) { c.LogPrefix = v.(string) }},
	{name: "disableConntrackInvalidCheck", kind: kBool, def: "false",
		apply: func(c *dpapi.Config, v any) { c.DisableConntrackInvalidCheck = v.(bool) }},
	{name: "workloadSourceSpoofing", def: "Disabled", enum: []string{"Disabled", "Any"},
		apply: func(c *dpapi.Config, v any) { c.WorkloadSourceSpoofing = v.(string) }},
	{name: "nftablesMode", def: "Auto", enum: []string{"Auto", "Enabled", "Disabled"},
		apply: func(c *dpapi.Config, v any) { c.NFTablesMode = v.(string) }},
	{name: "nftablesRefreshInterval", kind: kDuration, def: "180", apply: func(c *dpapi.Config, v any) { c.RefreshInterval = v.(time.Duration) }},
	{name: "ipsetsRefreshInterval", kind: kDuration, def: "90", apply: func(c *dpapi.Config, v any) { c.IPSetsRefreshInterval = v.(time.Duration) }},
	{name: "routeRefreshInterval", kind: kDuration, def: "90", apply: func(c *dpapi.Config, v any) { c.RouteRefreshInterval = v.(time.Duration) }},
	{name: "interfaceRefreshInterval", kind: kDuration, def: "90",
		apply: func(c *dpapi.Config, v any) { c.InterfaceRefreshInterval = v.(time.Duration) }},
	{name: "ipv6Support", kind: kBool, def: "true", apply: func(c *dpapi.Config, v any) { c.IPv6Support = v.(bool) }},
	{name: "vxlanPort", kind: kInt, def: "4789", apply: func(c *dpapi.Config, v any) { c.VXLANPort = v.(int) }},
	{name: "vxlanVNI", kind: kInt, def: "4096", apply: func(c *dpapi.Config, v any) { c.VXLANVNI = v.(int) }},
	{name: "vxlanMTU", kind: kInt, def: "0", apply: func(c *dpapi.Config, v any) { c.VXLANMTU = v.(int) }},
	{name: "natOutgoingAddress", def: "", apply: func(c *dpapi.Config, v any) {
		// An address that does not parse leaves masquerading in force.
		c.NATOutgoingAddress, _ = netip.ParseAddr(v.(string))
	}},
	{name: "natOutgoingExclusions", def: "IPPoolsOnly", enum: []string{"IPPoolsOnly", "IPPoolsAndHostIPs"},
		apply: func(c *dpapi.Config, v any) { c.NATOutgoingExclusions = v.(string) }},
	{name: "healthEnabled", kind: kBool, def: "false", apply: func(c *dpapi.Config, v any) { c.HealthEnabled = v.(bool) }},
	{name: "healthHost", def: "localhost", apply: func(c *dpapi.Config, v any) { c.HealthHost = v.(string) }},
	{name: "healthPort", kind: kInt, def: "9099", apply: func(c *dpapi.Config, v any) { c.HealthPort = v.(int) }},
	{name: "prometheusMetricsEnabled", kind: kBool, def: "false", apply: func(c *dpapi.Config, v any) { c.PrometheusMetricsEnabled = v.(bool) }},
	{name: "prometheusMetricsHost", def: "", apply: func(c *dpapi.Config, v any) { c.PrometheusMetricsHost = v.(string) }},
	{name: "prometheusMetricsPort", kind: kInt, def: "9091", apply: func(c *dpapi.Config, v any) { c.PrometheusMetricsPort = v.(int) }},
	{name: "logSeverityScreen", def: "Info", enum: []string{"Debug", "Info", "Warning", "Error", "Fatal"},
		apply: func(c *dpapi.Config, v any) { c.LogSeverityScreen = v.(string) }},
}

// mustDefault parses the built-in default; the table is tested.
func (p param) mustDefault() any {
	v, err := p.parseString(p.def)
	if err != nil {
		panic(fmt.Sprintf("felixconfig: bad default for %s: %v", p.name, err))
	}
	return v
}

// fromLayer returns the parameter's value in l: nil when l does not set
// it. On error it also returns the offending text.
func (p param) fromLayer(l layer) (any, string, error) {
	key := strings.ToLower(p.name)
	if raw, ok := l.json[key]; ok {
		v, err := p.kind.parseJSON(raw)
		if err == nil {
			v, err = p.normalize(v)
		}
		return v, string(raw), err
	}
	if s, ok := l.str[key]; ok {
		v, err := p.parseString(s)
		return v, strconv.Quote(s), err
	}
	return nil, "", nil
}

func (p param) parseString(s string) (any, error) {
	v, err := p.kind.parseString(strings.TrimSpace(s))
	if err != nil {
		return nil, err
	}
	return p.normalize(v)
}

// normalize checks an enum value and returns its canonical spelling.
func (p param) normalize(v any) (any, error) {
	if p.enum == nil {
		return v, nil
	}
	s, _ := v.(string)
	if s == "" && p.def != "" {
		return nil, errors.New("empty value")
	}
	for _, e := range p.enum {
		if strings.EqualFold(e, s) {
			return e, nil
		}
	}
	return nil, fmt.Errorf("not one of %s", strings.Join(p.enum, ", "))
}

func (k kind) parseString(s string) (any, error) {
	switch k {
	case kList:
		var out []string
		for f := range strings.SplitSeq(s, ",") {
			if f = strings.TrimSpace(f); f != "" {
				out = append(out, f)
			}
		}
		return out, nil
	case kBool:
		return strconv.ParseBool(s)
	case kInt:
		return strconv.Atoi(s)
	case kMask:
		n, err := strconv.ParseUint(s, 0, 32)
		return uint32(n), err
	case kDuration:
		if secs, err := strconv.ParseFloat(s, 64); err == nil {
			if secs < 0 {
				return nil, errors.New("negative duration")
			}
			return time.Duration(secs * float64(time.Second)), nil
		}
		return parseGoDuration(s)
	case kPorts:
		return parsePortList(s)
	}
	return s, nil
}

func (k kind) parseJSON(raw json.RawMessage) (any, error) {
	switch k {
	case kString:
		var s string
		err := json.Unmarshal(raw, &s)
		return s, err
	case kList:
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, err
		}
		return k.parseString(s)
	case kBool:
		var b bool
		err := json.Unmarshal(raw, &b)
		return b, err
	case kInt:
		var n int
		err := json.Unmarshal(raw, &n)
		return n, err
	case kMask:
		var n uint32
		err := json.Unmarshal(raw, &n)
		return n, err
	case kDuration:
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, err
		}
		return parseGoDuration(s)
	case kPorts:
		var pps []v3.ProtoPort
		if err := json.Unmarshal(raw, &pps); err != nil {
			return nil, err
		}
		out := make([]dpapi.ProtoPort, 0, len(pps))
		for _, pp := range pps {
			p, err := protoPort(pp.Protocol, pp.Net, strconv.Itoa(int(pp.Port)))
			if err != nil {
				return nil, err
			}
			out = append(out, p)
		}
		return out, nil
	}
	return nil, fmt.Errorf("unknown kind %d", k)
}

func parseGoDuration(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, errors.New("not a duration")
	}
	if d < 0 {
		return 0, errors.New("negative duration")
	}
	return d, nil
}

// parsePortList parses "tcp:22,udp:68,tcp:10.0.0.0/8:179,tcp:[fd00::/8]:22"
// (a bare port means TCP); "none" and "" mean no ports.
func parsePortList(s string) ([]dpapi.ProtoPort, error) {
	out := []dpapi.ProtoPort{}
	if s == "" || strings.EqualFold(s, "none") {
		return out, nil
	}
	for f := range strings.SplitSeq(s, ",") {
		f = strings.TrimSpace(f)
		proto, net, port := "tcp", "", f
		if i := strings.LastIndexByte(f, ':'); i >= 0 {
			port = f[i+1:]
			rest := f[:i]
			proto, net, _ = strings.Cut(rest, ":")
			net = strings.TrimSuffix(strings.TrimPrefix(net, "["), "]")
		}
		p, err := protoPort(proto, net, port)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", f, err)
		}
		out = append(out, p)
	}
	return out, nil
}

func protoPort(proto, net, port string) (dpapi.ProtoPort, error) {
	var p dpapi.ProtoPort
	switch strings.ToLower(proto) {
	case "", "tcp":
		p.Protocol = dpapi.ProtoTCP
	case "udp":
		p.Protocol = dpapi.ProtoUDP
	case "sctp":
		p.Protocol = dpapi.ProtoSCTP
	default:
		return p, fmt.Errorf("protocol %q is not tcp, udp or sctp", proto)
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return p, fmt.Errorf("bad port %q", port)
	}
	p.Port = uint16(n)
	if net != "" {
		pfx, err := netip.ParsePrefix(net)
		if err != nil {
			addr, aerr := netip.ParseAddr(net)
			if aerr != nil {
				return p, fmt.Errorf("bad net %q", net)
			}
			pfx = netip.PrefixFrom(addr, addr.BitLen())
		}
		p.Net = pfx.Masked()
	}
	return p, nil
}
