package ctl

import (
	"bytes"
	"context"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/calico-go/calico/internal/bgp"
	"github.com/calico-go/calico/internal/bgp/status"
)

func TestPrintBGPStatus(t *testing.T) {
	now := time.Date(2025, 3, 4, 23, 40, 0, 0, time.UTC)
	rep := status.Report{Peers: []bgp.PeerStatus{
		{Address: netip.MustParseAddr("192.0.2.2"), Type: bgp.PeerMesh, State: bgp.StateEstablished, Since: time.Date(2025, 3, 4, 23, 30, 4, 0, time.UTC)},
		{Address: netip.MustParseAddr("192.0.2.254"), Type: bgp.PeerGlobal, State: bgp.StateActive, Since: time.Date(2025, 3, 1, 1, 0, 0, 0, time.UTC)},
	}}
	var b bytes.Buffer
	printBGPStatus(&b, rep, now)
	want := `
IPv4 BGP status
+--------------+-------------------+-------+------------+-------------+
| PEER ADDRESS |     PEER TYPE     | STATE |   SINCE    |    INFO     |
+--------------+-------------------+-------+------------+-------------+
| 192.0.2.2    | node-to-node mesh | up    | 23:30:04   | Established |
| 192.0.2.254  | global            | start | 2025-03-01 | Active      |
+--------------+-------------------+-------+------------+-------------+

IPv6 BGP status
No IPv6 peers found.

`
	if b.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", b.String(), want)
	}
}

// TestNodeStatusCommand runs `calicoctl node status` against a status socket
// served by a fake source, and without one.
func TestNodeStatusCommand(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "bgp.sock")
	run := func() (int, string, string) {
		var out, errb bytes.Buffer
		r := &Runner{LookupEnv: func(k string) (string, bool) {
			if k == "CALICO_BGP_STATUS_SOCKET" {
				return sock, true
			}
			return "", false
		}}
		code := r.Run(context.Background(), []string{"node", "status"}, strings.NewReader(""), &out, &errb)
		return code, out.String(), errb.String()
	}
	if code, _, errs := run(); code != 1 || !strings.Contains(errs, "Calico process is not running.") {
		t.Fatalf("no socket: exit %d, stderr %q", code, errs)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- status.Serve(ctx, sock, func(context.Context) (status.Report, error) {
			return status.Report{Node: "n1", Peers: []bgp.PeerStatus{{Address: netip.MustParseAddr("2001:db8::2"), Type: bgp.PeerNode, State: bgp.StateConnect}}}, nil
		}, nil)
	}()
	defer func() { cancel(); <-done }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		code, out, errs := run()
		if code == 0 {
			if !strings.HasPrefix(out, "Calico process is running.\n") || !strings.Contains(out, "No IPv4 peers found.") ||
				!strings.Contains(out, "| 2001:db8::2  | node specific | start | -     | Connect |") {
				t.Fatalf("output:\n%s", out)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("exit %d: %s", code, errs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
