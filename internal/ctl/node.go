package ctl

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/calico-go/calico/internal/bgp"
	"github.com/calico-go/calico/internal/bgp/status"
)

// nodeCommand is `calicoctl node`: status of the calico-node on this host.
func (a *app) nodeCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "node",
		Short: "Calico node management",
		Args:  noArgs,
	}
	cmd.AddCommand(a.nodeStatusCommand())
	return cmd
}

func (a *app) nodeStatusCommand() *cobra.Command {
	var socket string
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the status of the calico-node on this host and its BGP sessions",
		Long: `Shows whether calico-node runs on this host and the state of each of its BGP
sessions (one table per IP family), read from the status socket calico-node
serves (default ` + status.DefaultSocket + `, or CALICO_BGP_STATUS_SOCKET).`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if socket == "" {
				socket, _ = a.lookupEnv("CALICO_BGP_STATUS_SOCKET")
			}
			if socket == "" {
				socket = status.DefaultSocket
			}
			rep, err := status.Fetch(cmd.Context(), socket)
			if errors.Is(err, status.ErrNotRunning) {
				return a.fail("Calico process is not running.")
			}
			if err != nil {
				return a.fail("Calico process is running, but its BGP status cannot be read: %v", err)
			}
			fmt.Fprintln(a.stdout, "Calico process is running.")
			printBGPStatus(a.stdout, rep, time.Now())
			return nil
		},
	}
	cmd.Flags().StringVar(&socket, "bgp-status-socket", "", "the unix socket calico-node serves its BGP status on")
	return cmd
}

// printBGPStatus prints calicoctl's two tables: PEER ADDRESS | PEER TYPE |
// STATE | SINCE | INFO for IPv4 and for IPv6 peers. STATE is BIRD's
// protocol state (up once established, else start); SINCE is the time of
// the last state change (HH:MM:SS today, else the date).
func printBGPStatus(w io.Writer, rep status.Report, now time.Time) {
	for _, fam := range []struct {
		name string
		v6   bool
	}{{"IPv4", false}, {"IPv6", true}} {
		t := newBoxTable("PEER ADDRESS", "PEER TYPE", "STATE", "SINCE", "INFO")
		for _, p := range rep.Peers {
			if p.Address.Is6() != fam.v6 {
				continue
			}
			state, info := "start", string(p.State)
			if p.State == bgp.StateEstablished {
				state = "up"
			}
			if p.Info != "" {
				info += " " + p.Info
			}
			typ := string(p.Type)
			if typ == "" {
				typ = "unknown"
			}
			t.row(p.Address.String(), typ, state, since(p.Since, now), info)
		}
		fmt.Fprintf(w, "\n%s BGP status\n", fam.name)
		if len(t.rows) == 0 {
			fmt.Fprintf(w, "No %s peers found.\n", fam.name)
			continue
		}
		t.render(w)
	}
	fmt.Fprintln(w)
}

func since(t, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	t = t.In(now.Location())
	if y1, m1, d1 := t.Date(); true {
		if y2, m2, d2 := now.Date(); y1 == y2 && m1 == m2 && d1 == d2 {
			return t.Format("15:04:05")
		}
	}
	return t.Format("2006-01-02")
}
