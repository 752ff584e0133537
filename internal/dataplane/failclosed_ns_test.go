package dataplane

import (
	"context"
	"io"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/calico-go/calico/internal/dpapi"
	"github.com/calico-go/calico/internal/testutil/wltest"
)

// onlyC1 is the base state with the server accepting c1 only, through a
// group-folded policy whose set gets churned.
func onlyC1(w *world, extra bool) objs {
	o := w.base()
	set(&o, "s:c1", "10.65.0.11/32")
	in(&o, pol1, allowR(dpapi.Rule{Protocol: 6, SrcIPSetIDs: []string{"s:c1"}, DstPorts: ports(80, 80)}))
	if extra {
		in(&o, pol2, allowR(dpapi.Rule{Protocol: 6, SrcNets: nets("10.65.0.11/32"), DstPorts: ports(81, 81)}), dpapi.Rule{Action: dpapi.ActionLog})
		ingress(&o, dtier(pol1, pol2))
	} else {
		ingress(&o, dtier(pol1))
	}
	return o
}

func (w *world) waitApply(t *testing.T) ApplyResult {
	t.Helper()
	select {
	case r := <-w.applies:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("no apply")
	}
	return ApplyResult{}
}

func TestFailClosedBeforeInSync(t *testing.T) {
	w := newWorld(t, Options{})
	w.start()
	if r := w.waitApply(t); r.Err != nil || r.InSync {
		t.Fatalf("first apply %+v, want the fail-closed table", r)
	}
	check(t, []probe{tcpP(w, "c1", 80, false), {from: w.srv, kind: "icmp", dst: c1Addr, want: false}})
	// The whole state, but no InSync yet: still closed.
	o := w.base()
	w.send(append([]dpapi.Message{dpapi.ConfigUpdate{Config: o.cfg}}, diffBatch(newObjs(), o)...))
	check(t, []probe{tcpP(w, "c1", 80, false)})
	w.cur, w.inSync = o, true
	w.send([]dpapi.Message{dpapi.InSync{}})
	check(t, []probe{tcpP(w, "c1", 80, true), udpP(w, "c2", 53, true)})
}

// prober probes one flow in a loop and counts what got through.
type prober struct {
	ok, attempts atomic.Int64
	stop         chan struct{}
	wg           sync.WaitGroup
	mu           sync.Mutex
	errs         []string // the first few failures, for diagnosis
}

func startProber(p probe) *prober {
	pr := &prober{stop: make(chan struct{})}
	pr.wg.Add(1)
	go func() {
		defer pr.wg.Done()
		for {
			select {
			case <-pr.stop:
				return
			default:
			}
			pr.attempts.Add(1)
			var err error
			if p.kind == "tcp" {
				err = wltest.TCP(p.from.NS, netip.AddrPortFrom(p.dst, p.port), 100*time.Millisecond)
			} else {
				err = p.run()
			}
			if err == nil {
				pr.ok.Add(1)
			} else {
				pr.mu.Lock()
				if len(pr.errs) < 5 {
					pr.errs = append(pr.errs, time.Now().Format("15:04:05.000")+" "+err.Error())
				}
				pr.mu.Unlock()
			}
		}
	}()
	return pr
}

func (pr *prober) halt() {
	close(pr.stop)
	pr.wg.Wait()
}

// restart stops the dataplane and starts a new one, then sends the whole
// state s in several batches (and extra churn) before InSync.
func (w *world) restart(t *testing.T, s objs, churn func(i int) objs) {
	w.stop()
	time.Sleep(400 * time.Millisecond) // the agent is down; the table stays
	w.inSync = false
	w.start()
	all := diffBatch(newObjs(), s)
	w.send([]dpapi.Message{dpapi.ConfigUpdate{Config: s.cfg}})
	for i := 0; i < len(all); i += 3 {
		w.send(all[i:min(i+3, len(all))])
	}
	w.cur = s.clone()
	for i := range 3 { // updates keep flowing before InSync
		next := churn(i)
		w.send(diffBatch(w.cur, next))
		w.cur = next.clone()
		time.Sleep(50 * time.Millisecond)
	}
	w.inSync = true
	w.send([]dpapi.Message{dpapi.InSync{}})
}

// TestDeniedFlowNeverLeaks probes a denied flow continuously while the
// dataplane is stopped and restarted three times with updates flowing
// before and after InSync: not one connection may get through.
func TestDeniedFlowNeverLeaks(t *testing.T) {
	w := newWorld(t, Options{})
	w.start()
	w.sync(onlyC1(w, false))
	denied := startProber(tcpP(w, "c2", 80, false))
	deniedUDP := startProber(udpP(w, "c2", 53, false))
	allowed := startProber(tcpP(w, "c1", 80, true))
	churn := func(i int) objs {
		o := onlyC1(w, i%2 == 0)
		if i%3 == 0 {
			set(&o, "s:c1", "10.65.0.11/32", "10.65.0.77/32")
		}
		return o
	}
	for round := range 4 {
		w.restart(t, churn(round), churn)
		for i := range 10 {
			w.sync(churn(i + round))
			time.Sleep(50 * time.Millisecond)
		}
	}
	time.Sleep(200 * time.Millisecond)
	denied.halt()
	deniedUDP.halt()
	allowed.halt()
	t.Logf("denied flows: tcp %d of %d, udp %d of %d attempts got through; allowed flow: %d of %d",
		denied.ok.Load(), denied.attempts.Load(), deniedUDP.ok.Load(), deniedUDP.attempts.Load(), allowed.ok.Load(), allowed.attempts.Load())
	if denied.ok.Load()+deniedUDP.ok.Load() != 0 {
		t.Errorf("a denied flow got through")
	}
	if n := allowed.attempts.Load() - allowed.ok.Load(); n > 0 {
		t.Logf("allowed flow failures (timeouts of 100 ms on a busy machine): %v", allowed.errs)
	}
	if denied.attempts.Load() < 20 || allowed.ok.Load() == 0 {
		t.Errorf("probers did not run properly")
	}
}

// TestEstablishedSurvivesRestart keeps a TCP connection open across a
// dataplane restart whose new state no longer allows new connections.
func TestEstablishedSurvivesRestart(t *testing.T) {
	w := newWorld(t, Options{})
	w.start()
	w.sync(onlyC1(w, false))
	var conn net.Conn
	if err := w.c1.Do(func() error {
		var err error
		conn, err = net.DialTimeout("tcp", netip.AddrPortFrom(srvAddr, 80).String(), time.Second)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	echo := func(when string) {
		t.Helper()
		_ = conn.SetDeadline(time.Now().Add(time.Second))
		if _, err := conn.Write([]byte("hello")); err != nil {
			t.Fatalf("%s: write: %v", when, err)
		}
		buf := make([]byte, 5)
		if _, err := io.ReadFull(conn, buf); err != nil {
			t.Fatalf("%s: read: %v", when, err)
		}
	}
	echo("before restart")
	w.stop()
	echo("agent down")
	deny := w.base()
	in(&deny, pol1)
	ingress(&deny, dtier(pol1))
	w.restart(t, deny, func(int) objs { return deny })
	echo("after restart")
	check(t, []probe{tcpP(w, "c1", 80, false)})
	echo("after a new connection was refused")
}

// TestRefreshRepairs damages the table behind the dataplane's back; the
// refresh reads it back and repairs it.
func TestRefreshRepairs(t *testing.T) {
	w := newWorld(t, Options{})
	w.start()
	state := onlyC1(w, true)
	state.cfg.RefreshInterval = 300 * time.Millisecond // nftablesRefreshInterval
	w.sync(state)
	check(t, []probe{tcpP(w, "c2", 80, false), tcpP(w, "c1", 80, true)})
	for _, damage := range []string{
		"flush table inet calico",
		"delete table inet calico",
		"insert rule inet calico cali-tw-calisrv accept",
		"flush chain inet calico cali-from-wl-dispatch",
		"flush set inet calico cali40s.c1",
	} {
		t.Run(damage, func(t *testing.T) {
			out, err := exec.Command("ip", append([]string{"netns", "exec", w.host.Name, "nft"}, strings.Fields(damage)...)...).CombinedOutput()
			if err != nil {
				t.Fatalf("nft %s: %v\n%s", damage, err, out)
			}
			deadline := time.Now().Add(5 * time.Second)
			for {
				drift := w.drift(t, state)
				if len(drift) == 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("not repaired: %v", drift)
				}
				time.Sleep(100 * time.Millisecond)
			}
			check(t, []probe{tcpP(w, "c2", 80, false), tcpP(w, "c1", 80, true), tcpP(w, "c1", 81, true)})
		})
	}
}

// drift renders state into a second Dataplane that never writes (the
// running one's table is not safe to share) and compares it with the
// kernel.
func (w *world) drift(t *testing.T, s objs) []string {
	t.Helper()
	d, err := New(Options{NetNSFd: w.host.Fd()})
	if err != nil {
		t.Fatal(err)
	}
	defer d.table.Close()
	d.handle(append(append([]dpapi.Message{dpapi.ConfigUpdate{Config: s.cfg}}, diffBatch(newObjs(), s)...), dpapi.InSync{}))
	if err := d.render(); err != nil {
		t.Fatal(err)
	}
	drift, err := d.table.Drift(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return drift
}
