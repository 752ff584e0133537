package node

import (
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	v3 "github.com/calico-go/calico/api/v3"
	"github.com/calico-go/calico/internal/testutil/netnstest"
)

// TestKillAgentFailsClosed SIGKILLs calico-node (no clean-up of any kind)
// three times while a denied flow is probed back to back and policy keeps
// changing: the denied flow never connects, and an established allowed
// connection keeps working while the agent is dead and after it restarts.
func TestKillAgentFailsClosed(t *testing.T) {
	v := newVNet(t, v3.VXLANModeAlways)
	h := v.host("host-1", subnet1(1), underlayGW, "CALICO_NETWORKING_BACKEND=vxlan")
	client, server := v.pod(h), v.pod(h)

	// Only port 8081 is allowed into the pods; 8082 is denied.
	gnp := v3.NewGlobalNetworkPolicy()
	gnp.Name = "only-8081"
	tcp := v3.ProtocolFromString("TCP")
	gnp.Spec.Selector = "all()"
	gnp.Spec.Ingress = []v3.Rule{{Action: v3.Allow, Protocol: &tcp, Destination: v3.EntityRule{Ports: []v3.Port{v3.SinglePort(8081)}}}}
	v.create(gnp)

	echo := listen(t, server.ns, server.addr.String(), 8081, func(c net.Conn) { _, _ = io.Copy(c, c) })
	var accepted atomic.Int64
	listen(t, server.ns, server.addr.String(), 8082, func(c net.Conn) { accepted.Add(1) })
	_ = echo

	dial := func(port int, timeout time.Duration) (net.Conn, error) {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		return client.ns.Dial(ctx, "tcp", net.JoinHostPort(server.addr.String(), fmt.Sprint(port)))
	}
	waitUntil(t, "policy in force (8081 open, 8082 closed)", converge, func() (bool, string) {
		c, err := dial(8081, 300*time.Millisecond)
		if err != nil {
			return false, "8081: " + err.Error()
		}
		c.Close()
		if c, err := dial(8082, 300*time.Millisecond); err == nil {
			c.Close()
			return false, "8082 still open"
		}
		return true, ""
	})

	accepted.Store(0) // the convergence check itself reached 8082 before the policy was in force
	conn, err := dial(8081, 2*time.Second)
	if err != nil {
		t.Fatalf("open the long-lived connection: %v", err)
	}
	defer conn.Close()
	checkEcho := func(when string) {
		t.Helper()
		_ = conn.SetDeadline(time.Now().Add(3 * time.Second))
		msg := []byte("still here " + when)
		if _, err := conn.Write(msg); err != nil {
			t.Fatalf("established connection %s: write: %v", when, err)
		}
		buf := make([]byte, len(msg))
		if _, err := io.ReadFull(conn, buf); err != nil {
			t.Fatalf("established connection %s: read: %v", when, err)
		}
	}
	checkEcho("before the kills")

	// Probe the denied flow back to back until told to stop.
	var attempts, leaks atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			attempts.Add(1)
			if c, err := dial(8082, 100*time.Millisecond); err == nil {
				leaks.Add(1)
				c.Close()
			}
		}
	}()

	unrelated := 0
	write := func() {
		p := v3.NewGlobalNetworkPolicy()
		p.Name = fmt.Sprintf("unrelated-%d", unrelated)
		unrelated++
		p.Spec.Selector = "app == 'nothing-here'"
		p.Spec.Ingress = []v3.Rule{{Action: v3.Allow}}
		v.create(p)
	}
	for round := 1; round <= 3; round++ {
		insync := strings.Count(readFile(t, h.logf), "dataplane in sync")
		if err := h.cmd.Process.Kill(); err != nil {
			t.Fatalf("SIGKILL calico-node: %v", err)
		}
		select {
		case <-h.done:
		case <-time.After(10 * time.Second):
			t.Fatal("calico-node did not die after SIGKILL")
		}
		h.cmd = nil
		write()
		write()
		time.Sleep(time.Second) // probes run against the dead agent's table
		checkEcho(fmt.Sprintf("with the agent dead (round %d)", round))
		h.start()
		waitUntil(t, "dataplane in sync after restart", converge, func() (bool, string) {
			return strings.Count(readFile(t, h.logf), "dataplane in sync") > insync, ""
		})
		write()
		time.Sleep(500 * time.Millisecond)
		checkEcho(fmt.Sprintf("after restart %d", round))
	}
	close(stop)
	wg.Wait()
	t.Logf("denied flow: %d attempts across 3 SIGKILL/restart rounds, %d connected, %d accepted by the server",
		attempts.Load(), leaks.Load(), accepted.Load())
	if leaks.Load() != 0 || accepted.Load() != 0 {
		t.Fatalf("the denied flow got through %d times (server accepted %d)", leaks.Load(), accepted.Load())
	}
	if attempts.Load() < 30 {
		t.Fatalf("only %d probes ran; the test proves nothing", attempts.Load())
	}
}

// listen serves port on addr inside ns, handing each connection to fn.
func listen(t *testing.T, ns *netnstest.NS, addr string, port int, fn func(net.Conn)) net.Listener {
	t.Helper()
	l, err := ns.Listen("tcp", net.JoinHostPort(addr, fmt.Sprint(port)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); fn(c) }()
		}
	}()
	return l
}
