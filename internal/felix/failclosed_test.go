package felix

import (
	"bufio"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os/exec"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	v3 "github.com/calico-go/calico/api/v3"
	"github.com/calico-go/calico/internal/datastore"
	"github.com/calico-go/calico/internal/testutil/wltest"
	"github.com/calico-go/calico/pkg/client"
)

// TestFailClosedAcrossRestarts stops felix (ctx cancelled) and starts a new
// one on the same host namespace and datastore several times, sometimes
// stopping it again during start-up, while a stream of policy updates is
// written. Every datastore state of the stream denies client -> server; a
// TCP and a UDP prober try that flow without pause and must never get
// through; so does a TCP prober from a second client pod attached (and
// its WorkloadEndpoint written) while felix is down. A TCP connection monitor -> server opened before the first
// restart exchanges data throughout and must survive every restart.
func TestFailClosedAcrossRestarts(t *testing.T) {
	cl := newCluster(t)
	cl.namespace("prod", nil)
	cli := cl.attachPod(t, podSpec{alias: "client", ns: "prod", labels: map[string]string{"app": "client"}})
	srv := cl.attachPod(t, podSpec{alias: "server", ns: "prod", labels: map[string]string{"app": "server"}, tcp: []uint16{80}, udp: []uint16{53}})
	mon := cl.attachPod(t, podSpec{alias: "mon", ns: "prod", labels: map[string]string{"app": "monitor"}})
	echoServer(t, srv.NS, netip.AddrPortFrom(srv.Addr, 8080))
	for _, p := range []*wpod{cli, srv, mon} {
		cl.writeEndpoint(t, p)
	}
	u := &updater{cl: cl, cli: cli}
	cl.applyAll(t, cl.decode(t, docs(tier("sec", 10, ""), u.denyClient(0),
		np("prod/allow-monitor", "app == 'server'", "ingress: [{action: Allow, source: {selector: \"app == 'monitor'\"}}]"))))

	a := cl.startFelix(t, true, nil)
	cl.check(t, []string{"client server tcp/80 -", "client server udp/53 -", "mon server tcp/80 +", "mon server tcp/8080 +"}, 5*time.Second)

	// The long-lived connection, exercised every 20 ms.
	conn := dialEcho(t, mon, netip.AddrPortFrom(srv.Addr, 8080))
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var echoes atomic.Int64
	var connErr atomic.Value
	wg.Go(func() {
		r := bufio.NewReader(conn)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
			msg := fmt.Sprintf("line %d\n", i)
			if _, err := conn.Write([]byte(msg)); err != nil {
				connErr.Store(fmt.Errorf("write %d: %w", i, err))
				return
			}
			got, err := r.ReadString('\n')
			if err != nil || got != msg {
				connErr.Store(fmt.Errorf("echo %d: %q, %v", i, got, err))
				return
			}
			echoes.Add(1)
		}
	})

	// The denied flow, probed back to back.
	var attempts, leaks atomic.Int64
	var leakMu sync.Mutex
	leaked := map[string]int{}
	dst80, dst53 := netip.AddrPortFrom(srv.Addr, 80), netip.AddrPortFrom(srv.Addr, 53)
	prober := func(name string, try func() error) {
		for {
			select {
			case <-stop:
				return
			default:
			}
			attempts.Add(1)
			if try() == nil {
				leaks.Add(1)
				leakMu.Lock()
				leaked[name]++
				leakMu.Unlock()
			}
		}
	}
	wg.Go(func() {
		prober("client tcp/80", func() error { return dialOnce(cli.NS, dst80, 20*time.Millisecond) })
	})
	wg.Go(func() {
		prober("client udp/53", func() error { return wltest.UDP(cli.NS, dst53, 30*time.Millisecond) })
	})

	// The stream of policy updates.
	var updates atomic.Int64
	var updErr atomic.Value
	wg.Go(func() {
		for i := 1; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(15 * time.Millisecond):
			}
			if err := u.step(i); err != nil {
				updErr.Store(err)
				return
			}
			updates.Add(1)
		}
	})

	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 5))
	start := time.Now()
	const restarts = 8
	for i := range restarts {
		time.Sleep(time.Duration(150+rng.IntN(350)) * time.Millisecond)
		if err := a.stop(); err != nil {
			t.Fatalf("restart %d: felix returned %v", i, err)
		}
		time.Sleep(time.Duration(50+rng.IntN(250)) * time.Millisecond)
		if i == 2 {
			// A pod added while felix is down: its interface is unknown to
			// the table left behind, then its policy denies it.
			late := cl.attachPod(t, podSpec{alias: "late", ns: "prod", labels: map[string]string{"app": "client"}})
			wg.Go(func() {
				prober("late tcp/80", func() error { return dialOnce(late.NS, dst80, 20*time.Millisecond) })
			})
			cl.writeEndpoint(t, late)
		}
		a = cl.startFelix(t, false, nil)
		if i%2 == 1 {
			// Killed again during start-up (before or around InSync).
			time.Sleep(time.Duration(rng.IntN(300)) * time.Millisecond)
			if err := a.stop(); err != nil {
				t.Fatalf("restart %d: felix stopped during start-up returned %v", i, err)
			}
			a = cl.startFelix(t, false, nil)
		}
		a.waitReady(t)
	}
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()
	elapsed := time.Since(start)
	if err, _ := updErr.Load().(error); err != nil {
		t.Fatalf("policy update: %v", err)
	}
	if err, _ := connErr.Load().(error); err != nil {
		t.Errorf("established connection broke: %v", err)
	}
	if n := leaks.Load(); n > 0 {
		t.Errorf("the denied flow got through %d times in %d attempts: %v", n, attempts.Load(), leaked)
	}
	if attempts.Load() < 100 {
		t.Errorf("only %d probe attempts", attempts.Load())
	}
	t.Logf("%d restarts in %s: %d policy updates, %d denied probe attempts (%d leaked), %d echoes on the established connection",
		restarts, elapsed.Round(time.Millisecond), updates.Load(), attempts.Load(), leaks.Load(), echoes.Load())

	// The final state is enforced, and new allowed connections work.
	cl.check(t, []string{"client server tcp/80 -", "client server udp/53 -", "late server tcp/80 -", "mon server tcp/80 +", "mon server udp/53 +"}, 5*time.Second)
}

// updater writes a stream of datastore states, every one of which denies
// client -> server (the tier "sec" denies the client before anything can
// allow it).
type updater struct {
	cl  *cluster
	cli *wpod
}

// denyClient is the "sec" tier policy in one of its three equivalent forms.
func (u *updater) denyClient(variant int) string {
	src := []string{
		"{selector: \"app == 'client'\"}",
		"{nets: [10.65.0.0/16], notSelector: \"app != 'client'\"}",
		"{selector: \"app in {'client', 'other'}\", namespaceSelector: all()}",
	}[variant%3]
	return gnp("deny-client", "app == 'server'", "tier: sec",
		"ingress: [{action: Deny, source: "+src+"}, {action: Pass}]")
}

func (u *updater) step(i int) error {
	cl := u.cl
	apply := func(doc string) error {
		rs, err := cl.tryDecode(doc)
		if err != nil {
			return err
		}
		for _, r := range rs {
			if _, err := cl.c.Apply(cl.ctx, r); err != nil {
				return fmt.Errorf("apply %s: %w", datastore.KeyOf(r), err)
			}
		}
		return nil
	}
	del := func(k datastore.Key) error {
		if _, err := cl.c.Delete(cl.ctx, k, ""); err != nil && !errors.Is(err, client.ErrNotFound) {
			return fmt.Errorf("delete %s: %w", k, err)
		}
		return nil
	}
	switch i % 8 {
	case 0, 4:
		return apply(u.denyClient(i / 8))
	case 1:
		// An allow-all in the default tier: never reached by the client.
		return apply(np("prod/allow-all", "app == 'server'", "ingress: [{action: Allow}]"))
	case 2:
		return apply(fmt.Sprintf("kind: GlobalNetworkSet\nmetadata: {name: noise, labels: {noise: \"%d\"}}\nspec: {nets: [10.99.%d.0/24]}", i%5, i%200))
	case 3:
		return apply(np("prod/allow-monitor", "app == 'server'",
			fmt.Sprintf("ingress: [{action: Allow, source: {selector: \"app == 'monitor'\"}}, {action: Allow, protocol: TCP, source: {selector: \"noise == '%d'\"}, destination: {ports: [%d]}}]", i%5, 1000+i%100)))
	case 5:
		return del(datastore.Key{Kind: v3.KindNetworkPolicy, Namespace: "prod", Name: "allow-all"})
	case 6:
		u.cli.extraLabels = map[string]string{"gen": fmt.Sprint(i % 7)}
		_, err := cl.c.Apply(cl.ctx, cl.endpoint(u.cli))
		return err
	default:
		// A lower-order policy in the same tier that passes the monitor.
		if i%16 == 7 {
			return apply(gnp("pass-monitor", "app == 'server'", "tier: sec", "order: 1",
				"ingress: [{action: Pass, source: {selector: \"app == 'monitor'\"}}]"))
		}
		return del(datastore.Key{Kind: v3.KindGlobalNetworkPolicy, Name: "pass-monitor"})
	}
}

// TestFlushedTableRepaired flushes, and then deletes, felix's nftables
// table behind its back: with nftablesRefreshInterval set to 1 s (through
// FELIX_NFTABLESREFRESHINTERVAL) felix reads the table back and rewrites
// it, so the denied flow is denied again.
func TestFlushedTableRepaired(t *testing.T) {
	cl := newCluster(t)
	cl.namespace("prod", nil)
	cli := cl.attachPod(t, podSpec{alias: "client", ns: "prod", labels: map[string]string{"app": "client"}})
	srv := cl.attachPod(t, podSpec{alias: "server", ns: "prod", labels: map[string]string{"app": "server"}, tcp: []uint16{80}})
	cl.writeEndpoint(t, cli)
	cl.writeEndpoint(t, srv)
	cl.applyAll(t, cl.decode(t, np("prod/server-in", "app == 'server'", "ingress: [{action: Allow, source: {selector: \"app == 'monitor'\"}}]")))
	cl.startFelix(t, true, func(o *Options) { o.ConfigEnv = map[string]string{"NFTABLESREFRESHINTERVAL": "1"} })
	cl.check(t, []string{"client server tcp/80 -"}, 5*time.Second)
	for _, cmd := range []string{"flush table inet calico", "delete table inet calico"} {
		if out, err := exec.Command("ip", "netns", "exec", cl.host.Name, "nft", cmd).CombinedOutput(); err != nil {
			t.Fatalf("nft %s: %v\n%s", cmd, err, out)
		}
		start := time.Now()
		cl.check(t, []string{"client server tcp/80 -"}, 5*time.Second)
		t.Logf("after %q the flow is denied again within %s", cmd, time.Since(start).Round(10*time.Millisecond))
	}
}
