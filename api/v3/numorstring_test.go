package v3

import (
	"encoding/json"
	"testing"
)

func TestPortJSON(t *testing.T) {
	cases := []struct {
		in   string
		want Port
		out  string
	}{
		{`80`, SinglePort(80), `80`},
		{`"80"`, SinglePort(80), `80`},
		{`"8080:8090"`, PortRange(8080, 8090), `"8080:8090"`},
		{`"http"`, NamedPort("http"), `"http"`},
		{`"1:"`, NamedPort("1:"), `"1:"`},
		{`65535`, SinglePort(65535), `65535`},
		{`"90:80"`, PortRange(90, 80), `"90:80"`}, // rejected by Validate, not by decoding
	}
	for _, tc := range cases {
		var p Port
		if err := json.Unmarshal([]byte(tc.in), &p); err != nil {
			t.Errorf("unmarshal %s: %v", tc.in, err)
			continue
		}
		if p != tc.want {
			t.Errorf("unmarshal %s = %+v, want %+v", tc.in, p, tc.want)
		}
		b, err := json.Marshal(p)
		if err != nil || string(b) != tc.out {
			t.Errorf("marshal %+v = %s, %v; want %s", p, b, err, tc.out)
		}
	}
	// Numbers and strings that are not ports decode into an invalid Port
	// (so that Validate reports them with their field path) and encode back
	// as they were written.
	for _, bad := range []string{`65536`, `-1`, `1.5`, `"70000"`, `"1:70000"`, `""`} {
		var p Port
		if err := json.Unmarshal([]byte(bad), &p); err != nil {
			t.Errorf("unmarshal %s: %v, want an invalid Port", bad, err)
			continue
		}
		if p.Invalid() != bad {
			t.Errorf("unmarshal %s: Invalid() = %q, want %q", bad, p.Invalid(), bad)
		}
		if b, _ := json.Marshal(p); string(b) != bad {
			t.Errorf("marshal invalid %s = %s", bad, b)
		}
		c := checker{}
		c.port("spec.ports[0]", p)
		if len(c.errs) != 1 || c.errs[0].Field != "spec.ports[0]" {
			t.Errorf("validate invalid port %s: %+v, want one error on spec.ports[0]", bad, c.errs)
		}
	}
	// Other JSON types are not ports at all.
	for _, bad := range []string{`true`, `{}`, `[]`} {
		var p Port
		if err := json.Unmarshal([]byte(bad), &p); err == nil {
			t.Errorf("unmarshal %s = %+v, want error", bad, p)
		}
	}
}

func TestProtocolJSON(t *testing.T) {
	cases := []struct {
		in    string
		num   uint8
		out   string
		ports bool
	}{
		{`"TCP"`, 6, `"TCP"`, true},
		{`"tcp"`, 6, `"tcp"`, true},
		{`"UDPLite"`, 136, `"UDPLite"`, false},
		{`"icmpv6"`, 58, `"icmpv6"`, false},
		{`"Sctp"`, 132, `"Sctp"`, true},
		{`17`, 17, `17`, true},
		{`"17"`, 17, `"17"`, true},
		{`1`, 1, `1`, false},
	}
	for _, tc := range cases {
		var p Protocol
		if err := json.Unmarshal([]byte(tc.in), &p); err != nil {
			t.Errorf("unmarshal %s: %v", tc.in, err)
			continue
		}
		n, err := p.NumValue()
		if err != nil || n != tc.num {
			t.Errorf("%s: NumValue = %d, %v; want %d", tc.in, n, err, tc.num)
		}
		if p.SupportsPorts() != tc.ports {
			t.Errorf("%s: SupportsPorts = %v", tc.in, p.SupportsPorts())
		}
		b, _ := json.Marshal(p)
		if string(b) != tc.out {
			t.Errorf("marshal %s = %s, want %s", tc.in, b, tc.out)
		}
	}
	for _, bad := range []string{`256`, `-1`, `true`, `[]`} {
		var p Protocol
		if err := json.Unmarshal([]byte(bad), &p); err == nil {
			t.Errorf("unmarshal %s: want error", bad)
		}
	}
	if _, err := ProtocolFromString("GRE").NumValue(); err == nil {
		t.Error("GRE: want error")
	}
}

func TestASNumberJSON(t *testing.T) {
	cases := []struct {
		in   string
		want ASNumber
	}{
		{`64512`, 64512},
		{`"64512"`, 64512},
		{`"1.10"`, 65546},
		{`"65535.65535"`, 4294967295},
		{`4294967295`, 4294967295},
	}
	for _, tc := range cases {
		var a ASNumber
		if err := json.Unmarshal([]byte(tc.in), &a); err != nil || a != tc.want {
			t.Errorf("unmarshal %s = %d, %v; want %d", tc.in, a, err, tc.want)
		}
		b, _ := json.Marshal(a)
		if string(b) != a.String() {
			t.Errorf("marshal %d = %s", a, b)
		}
	}
	for _, bad := range []string{`4294967296`, `-1`, `"1.65536"`, `"1."`, `".1"`, `"a"`, `"1.2.3"`, `"+1"`} {
		var a ASNumber
		if err := json.Unmarshal([]byte(bad), &a); err == nil {
			t.Errorf("unmarshal %s = %d, want error", bad, a)
		}
	}
}
