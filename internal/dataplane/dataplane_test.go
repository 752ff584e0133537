package dataplane

import (
	"context"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/calico-go/calico/internal/dpapi"
	"github.com/calico-go/calico/internal/kernel/nft"
)

func offline(t *testing.T, opts Options) *Dataplane {
	t.Helper()
	opts.Offline = true
	d, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.start(context.Background()); err != nil {
		t.Fatal(err)
	}
	return d
}

func chainText(d *Dataplane, name string) string {
	r := d.table.Render()
	i := strings.Index(r, "\tchain "+name+" {")
	if i < 0 {
		return ""
	}
	j := strings.Index(r[i:], "\n\t}\n")
	return r[i : i+j]
}

// An endpoint naming a policy the dataplane does not have (a broken
// contract) gets chains that drop everything.
func TestMissingPolicyFailsClosed(t *testing.T) {
	d := offline(t, Options{})
	d.handle(batch(cfgMsg(), allowAllProfile,
		wepMsg("w1", "cali1", "10.65.0.1", []string{"kns.default"}, tier("default", ids(polA), nil)),
		dpapi.InSync{}))
	if err := d.apply(context.Background()); err != nil {
		t.Fatal(err)
	}
	tw := chainText(d, "cali-tw-cali1")
	if !strings.Contains(tw, "drop comment \"Fail closed") || strings.Contains(tw, "jump") {
		t.Errorf("endpoint chain does not fail closed:\n%s", tw)
	}
	// The policy arrives: the chain is rewritten.
	d.handle(batch(polMsg(polA, rules(allow()), nil)))
	if err := d.apply(context.Background()); err != nil {
		t.Fatal(err)
	}
	if tw := chainText(d, "cali-tw-cali1"); strings.Contains(tw, "Fail closed") {
		t.Errorf("endpoint chain still closed:\n%s", tw)
	}
}

// Nothing but the fail-closed table is written before InSync.
func TestNothingBeforeInSync(t *testing.T) {
	var applied []ApplyResult
	d := offline(t, Options{OnApply: func(r ApplyResult) { applied = append(applied, r) }})
	d.handle(batch(cfgMsg(), ipsetMsg("s:a", "10.0.0.1/32"), allowAllProfile,
		wepMsg("w1", "cali1", "10.65.0.1", []string{"kns.default"})))
	if err := d.apply(context.Background()); err != nil {
		t.Fatal(err)
	}
	if names := d.table.SetNames(); len(names) != 0 {
		t.Errorf("sets before InSync: %v", names)
	}
	if names := d.table.ChainNames(); len(names) != 3 {
		t.Errorf("chains before InSync: %v", names)
	}
	d.handle(batch(dpapi.InSync{}))
	if err := d.apply(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !d.table.HasSet("cali40s.a") || !d.table.HasChain("cali-tw-cali1") {
		t.Errorf("state not written at InSync:\n%s", d.table.Render())
	}
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	d := offline(t, Options{Registerer: reg})
	d.handle(batch(cfgMsg(), ipsetMsg("s:a", "10.0.0.1/32", "10.0.0.2/32"), allowAllProfile,
		polMsg(polA, rules(allow()), nil),
		wepMsg("w1", "cali1", "10.65.0.1", []string{"kns.default"}, tier("default", ids(polA), nil)),
		dpapi.InSync{}))
	if err := d.apply(context.Background()); err != nil {
		t.Fatal(err)
	}
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range fams {
		for _, m := range f.GetMetric() {
			switch {
			case m.GetGauge() != nil:
				got[f.GetName()] = m.GetGauge().GetValue()
			case m.GetHistogram() != nil:
				got[f.GetName()] = float64(m.GetHistogram().GetSampleCount())
			case m.GetCounter() != nil:
				name := f.GetName()
				for _, l := range m.GetLabel() {
					name += "{" + l.GetValue() + "}"
				}
				got[name] = m.GetCounter().GetValue()
			}
		}
	}
	for name, want := range map[string]float64{
		"felix_ipsets_calico":          1,
		"felix_ipset_members":          2,
		"felix_active_local_endpoints": 1,
		"felix_active_local_policies":  1,
		"felix_resync_state":           1,
		"felix_nft_chains":             float64(len(d.table.ChainNames())),
		"felix_int_dataplane_messages_total{WorkloadEndpointUpdate}": 1,
		"felix_int_dataplane_apply_time_seconds":                     2, // fail-closed table, then in sync
	} {
		if got[name] != want {
			t.Errorf("%s = %v, want %v", name, got[name], want)
		}
	}
	// A second registration of the same metrics is an error, not a panic.
	if _, err := New(Options{Offline: true, Registerer: reg}); err == nil {
		t.Error("registering twice succeeded")
	}
}

func TestChainNames(t *testing.T) {
	for _, tc := range []struct{ prefix, suffix, want string }{
		{"cali-pi-", "gnp/default.foo", "cali-pi-gnp/default.foo"},
		{"cali-tw-", "cali1234567890a", "cali-tw-cali1234567890a"},
	} {
		if got := chainName(tc.prefix, tc.suffix); got != tc.want {
			t.Errorf("chainName(%q, %q) = %q", tc.prefix, tc.suffix, got)
		}
	}
	long := chainName("cali-pi-", "gnp/default.a-very-long-policy-name")
	if len(long) != maxChainName || !strings.HasPrefix(long, "cali-pi-_") {
		t.Errorf("long name %q", long)
	}
	if got := ipSetName("s:abc", nft.IPv6); got != "cali60s.abc" {
		t.Errorf("ipSetName = %q", got)
	}
	if got := expandLogPrefix("%t|%k|%n|%p", "default", "np", "allow", "ns1"); got != "default|np|allow|ns1/allow" {
		t.Errorf("expandLogPrefix = %q", got)
	}
}

func TestMarksFromMask(t *testing.T) {
	for _, tc := range []struct {
		mask         uint32
		accept, pass uint32
	}{{0, 0x10000, 0x20000}, {0xffff0000, 0x10000, 0x20000}, {0x0000f0f0, 0x10, 0x20}} {
		m := marksFor(tc.mask)
		if m.accept != tc.accept || m.pass != tc.pass {
			t.Errorf("marksFor(%#x) = %+v", tc.mask, m)
		}
	}
}
