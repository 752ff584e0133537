package v3

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Port is a single port, a port range or a named port. In JSON a single port
// is a number (80), a range is a string ("8080:8090") and a named port is a
// string ("http").
type Port struct {
	MinPort  uint16 `json:"minPort,omitempty"`
	MaxPort  uint16 `json:"maxPort,omitempty"`
	PortName string `json:"portName,omitempty"`
	// invalid holds the JSON text of a value that could not be read as a port
	// (70000, "1:99999", 1.5). Decoding keeps it instead of failing so that
	// Validate can report it with its field path next to every other problem.
	invalid string
}

// Invalid returns the JSON text of a value that was decoded but is not a port,
// or "" for a well-formed port.
func (p Port) Invalid() string { return p.invalid }

// SinglePort returns the Port for one port number.
func SinglePort(p uint16) Port { return Port{MinPort: p, MaxPort: p} }

// PortRange returns the Port for the inclusive range [lo, hi]. Whether the
// range is valid (1 ≤ lo ≤ hi) is checked by Validate, not here.
func PortRange(lo, hi uint16) Port { return Port{MinPort: lo, MaxPort: hi} }

// NamedPort returns the Port that refers to a named port of an endpoint.
func NamedPort(name string) Port { return Port{PortName: name} }

// PortFromString parses "80", "8080:8090" or a port name. Numbers must fit
// in 16 bits; anything that does not look like a number or a range is taken
// as a name (Validate checks the name's syntax).
func PortFromString(s string) (Port, error) {
	if s == "" {
		return Port{}, errors.New("empty port")
	}
	if isDigits(s) {
		n, err := strconv.ParseUint(s, 10, 16)
		if err != nil {
			return Port{}, fmt.Errorf("port %q out of range", s)
		}
		return SinglePort(uint16(n)), nil
	}
	if lo, hi, ok := strings.Cut(s, ":"); ok && isDigits(lo) && isDigits(hi) {
		l, err1 := strconv.ParseUint(lo, 10, 16)
		h, err2 := strconv.ParseUint(hi, 10, 16)
		if err1 != nil || err2 != nil {
			return Port{}, fmt.Errorf("port range %q out of range", s)
		}
		return PortRange(uint16(l), uint16(h)), nil
	}
	return NamedPort(s), nil
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// IsNamed reports whether p refers to a named port.
func (p Port) IsNamed() bool { return p.PortName != "" }

// String returns the port in its JSON string form: "80", "1:2" or the name.
func (p Port) String() string {
	switch {
	case p.PortName != "":
		return p.PortName
	case p.MinPort == p.MaxPort:
		return strconv.Itoa(int(p.MinPort))
	default:
		return fmt.Sprintf("%d:%d", p.MinPort, p.MaxPort)
	}
}

// MarshalJSON writes a single port as a number and anything else as a string.
func (p Port) MarshalJSON() ([]byte, error) {
	if p.invalid != "" {
		return []byte(p.invalid), nil
	}
	if p.PortName == "" && p.MinPort == p.MaxPort {
		return []byte(strconv.Itoa(int(p.MinPort))), nil
	}
	return json.Marshal(p.String())
}

// UnmarshalJSON accepts a number or a string (see PortFromString).
func (p *Port) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		v, err := PortFromString(s)
		if err != nil {
			*p = Port{invalid: string(b)}
			return nil
		}
		*p = v
		return nil
	}
	var n uint16
	if err := json.Unmarshal(b, &n); err != nil {
		if len(b) == 0 || (b[0] != '-' && (b[0] < '0' || b[0] > '9')) {
			return fmt.Errorf("invalid port %s: must be a number, \"min:max\" or a port name", b)
		}
		*p = Port{invalid: string(b)}
		return nil
	}
	*p = SinglePort(n)
	return nil
}

// NumOrStringType says which half of a number-or-string value is in use.
type NumOrStringType int

// The two kinds of number-or-string value.
const (
	NumOrStringNum NumOrStringType = iota
	NumOrStringString
)

// Protocol names accepted in rules, endpoint ports and failsafe ports.
// Names are matched without regard to case.
const (
	ProtocolTCP     = "TCP"
	ProtocolUDP     = "UDP"
	ProtocolICMP    = "ICMP"
	ProtocolICMPv6  = "ICMPv6"
	ProtocolSCTP    = "SCTP"
	ProtocolUDPLite = "UDPLite"
)

var protocolNumbers = map[string]uint8{
	"tcp": 6, "udp": 17, "icmp": 1, "icmpv6": 58, "sctp": 132, "udplite": 136,
}

// Protocol is an IP protocol given by name ("TCP") or number (6). In JSON it
// is a string or a number, kept as the user wrote it.
type Protocol struct {
	Type   NumOrStringType `json:"type"`
	NumVal uint8           `json:"numVal,omitempty"`
	StrVal string          `json:"strVal,omitempty"`
}

// ProtocolFromInt returns a numeric protocol.
func ProtocolFromInt(n uint8) Protocol { return Protocol{Type: NumOrStringNum, NumVal: n} }

// ProtocolFromString returns a named protocol; the name is kept as given.
func ProtocolFromString(s string) Protocol { return Protocol{Type: NumOrStringString, StrVal: s} }

// NumValue returns the protocol number. Names are matched without regard to
// case; a numeric string ("6") is accepted too.
func (p Protocol) NumValue() (uint8, error) {
	if p.Type == NumOrStringNum {
		return p.NumVal, nil
	}
	if n, ok := protocolNumbers[strings.ToLower(p.StrVal)]; ok {
		return n, nil
	}
	if isDigits(p.StrVal) {
		n, err := strconv.ParseUint(p.StrVal, 10, 8)
		if err == nil {
			return uint8(n), nil
		}
	}
	return 0, fmt.Errorf("unknown protocol %q", p.StrVal)
}

// SupportsPorts reports whether port matches make sense for the protocol
// (TCP, UDP and SCTP).
func (p Protocol) SupportsPorts() bool {
	n, err := p.NumValue()
	return err == nil && (n == 6 || n == 17 || n == 132)
}

// String returns the name or the number in decimal.
func (p Protocol) String() string {
	if p.Type == NumOrStringNum {
		return strconv.Itoa(int(p.NumVal))
	}
	return p.StrVal
}

// MarshalJSON writes a number or a string.
func (p Protocol) MarshalJSON() ([]byte, error) {
	if p.Type == NumOrStringNum {
		return []byte(strconv.Itoa(int(p.NumVal))), nil
	}
	return json.Marshal(p.StrVal)
}

// UnmarshalJSON accepts a number 0-255 or a string.
func (p *Protocol) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*p = ProtocolFromString(s)
		return nil
	}
	var n uint8
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("invalid protocol %s: must be a name or 1-255", b)
	}
	*p = ProtocolFromInt(n)
	return nil
}

// ASNumber is a BGP autonomous system number. JSON accepts a number, a
// decimal string or the dotted form "X.Y" (two 16-bit halves); it is always
// written as a number.
type ASNumber uint32

// ASNumberFromString parses "65000" or "1.10".
func ASNumberFromString(s string) (ASNumber, error) {
	if hi, lo, ok := strings.Cut(s, "."); ok {
		h, err1 := strconv.ParseUint(hi, 10, 16)
		l, err2 := strconv.ParseUint(lo, 10, 16)
		if err1 != nil || err2 != nil || !isDigits(hi) || !isDigits(lo) {
			return 0, fmt.Errorf("invalid AS number %q: dotted form needs two 16-bit numbers", s)
		}
		return ASNumber(h<<16 | l), nil
	}
	if !isDigits(s) {
		return 0, fmt.Errorf("invalid AS number %q", s)
	}
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("invalid AS number %q: must fit in 32 bits", s)
	}
	return ASNumber(n), nil
}

// String returns the AS number in plain decimal.
func (a ASNumber) String() string { return strconv.FormatUint(uint64(a), 10) }

// UnmarshalJSON accepts a number or a string (see ASNumberFromString).
func (a *ASNumber) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		v, err := ASNumberFromString(s)
		if err != nil {
			return err
		}
		*a = v
		return nil
	}
	var n uint32
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("invalid AS number %s: must fit in 32 bits", b)
	}
	*a = ASNumber(n)
	return nil
}
