package lab

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// DefaultPort is where every workload's echo server listens (TCP and UDP)
// unless add-workload --ports says otherwise.
const DefaultPort = 80

// ServeOptions configure Serve, the echo server each workload runs.
type ServeOptions struct {
	// ID ("namespace/name") and Host identify the workload in replies.
	ID, Host string
	// Ports are served on TCP and UDP, on every address.
	Ports  []int
	Logger *slog.Logger
}

// Serve runs the workload's echo server until ctx ends. On TCP, an HTTP
// request gets a 200 whose body names the workload (see reply); anything
// else is echoed back. On UDP every datagram is answered with the same
// line followed by the datagram.
func Serve(ctx context.Context, opts ServeOptions) error {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var wg sync.WaitGroup
	var closers []io.Closer
	defer func() {
		for _, c := range closers {
			c.Close()
		}
		wg.Wait()
	}()
	for _, port := range opts.Ports {
		addr := ":" + strconv.Itoa(port)
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return err
		}
		closers = append(closers, l)
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			return err
		}
		closers = append(closers, pc)
		wg.Add(2)
		go func() { defer wg.Done(); serveTCP(l, opts, log) }()
		go func() { defer wg.Done(); serveUDP(pc, opts) }()
	}
	log.Info("serving", "workload", opts.ID, "ports", opts.Ports)
	<-ctx.Done()
	return nil
}

// reply is the line a server answers with: the workload's ID first, so a
// prober can check who answered.
func reply(opts ServeOptions, local, remote net.Addr) string {
	return fmt.Sprintf("%s host=%s local=%s from=%s\n", opts.ID, opts.Host, local, remote)
}

func serveTCP(l net.Listener, opts ServeOptions, log *slog.Logger) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			if err := handleTCP(c, opts); err != nil && !errors.Is(err, io.EOF) {
				log.Debug("connection", "from", c.RemoteAddr().String(), "error", err)
			}
		}()
	}
}

var httpMethods = []string{"GET ", "HEAD ", "POST ", "PUT ", "DELETE ", "OPTIONS ", "PATCH "}

func handleTCP(c net.Conn, opts ServeOptions) error {
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	r := bufio.NewReader(c)
	first, err := r.ReadString('\n')
	if err != nil && first == "" {
		return err
	}
	isHTTP := false
	for _, m := range httpMethods {
		if strings.HasPrefix(first, m) && strings.Contains(first, " HTTP/") {
			isHTTP = true
		}
	}
	if !isHTTP {
		// Echo, line by line, until the peer closes or goes quiet.
		if _, err := io.WriteString(c, first); err != nil {
			return err
		}
		_, err := io.Copy(c, r)
		return err
	}
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return err
		}
		if strings.TrimSpace(line) == "" {
			break
		}
	}
	body := reply(opts, c.LocalAddr(), c.RemoteAddr())
	_, err = fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", len(body), body)
	return err
}

func serveUDP(pc net.PacketConn, opts ServeOptions) {
	buf := make([]byte, 2048)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		out := append([]byte(reply(opts, pc.LocalAddr(), from)), buf[:n]...)
		_, _ = pc.WriteTo(out, from)
	}
}

// Protocols the matrix probes.
const (
	TCP = "tcp"
	UDP = "udp"
)

// probe connects from inside ns to the workload wantID at dst and reports
// whether that workload's server answered. Policy shows in the connect (a
// denied SYN is dropped), so timeout bounds the connect; an established
// connection may take longer to be answered on a busy machine
// (answerTimeout). UDP has no connect: timeout bounds the wait for an
// answer. A refused or timed-out connection, or an answer from someone
// else, is false.
func probe(ctx context.Context, ns *sockets, proto string, dst netip.AddrPort, wantID string, timeout time.Duration) bool {
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	dial := dialIn
	if proto == TCP {
		dial = dialStaggered
	}
	c, err := dial(cctx, ns, dst)
	if err != nil {
		return false
	}
	defer c.Close()
	if proto == UDP {
		stop := context.AfterFunc(cctx, func() { c.SetDeadline(time.Now()) })
		defer stop()
		return probeUDP(cctx, c, wantID)
	}
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Now()) })
	defer stop()
	_ = c.SetDeadline(time.Now().Add(max(answerTimeout, timeout)))
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: "+dst.String()+"\r\nUser-Agent: calico-lab\r\nConnection: close\r\n\r\n"); err != nil {
		return false
	}
	b, _ := io.ReadAll(io.LimitReader(c, 4096))
	_, body, ok := bytes.Cut(b, []byte("\r\n\r\n"))
	return ok && bytes.HasPrefix(b, []byte("HTTP/1.1 200 ")) && answeredBy(body, wantID)
}

// synInterval is how long a TCP probe waits for its connect before it
// sends another SYN on a new socket: the kernel would retransmit only after
// a second, and on a busy machine a first SYN is sometimes lost to a full
// queue.
const synInterval = 250 * time.Millisecond

// dialStaggered starts a TCP connect every synInterval until one
// completes, is refused, or ctx ends; the first that completes wins.
func dialStaggered(ctx context.Context, ns *sockets, dst netip.AddrPort) (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	results := make(chan result)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pending := 0
	defer func() {
		// Close what the attempts still in flight connect.
		go func(n int) {
			for ; n > 0; n-- {
				if r := <-results; r.c != nil {
					r.c.Close()
				}
			}
		}(pending)
	}()
	tick := time.NewTicker(synInterval)
	defer tick.Stop()
	var last error = context.DeadlineExceeded
	start := func() {
		pending++
		go func() {
			c, err := dialIn(ctx, ns, dst)
			results <- result{c, err}
		}()
	}
	start()
	for {
		select {
		case r := <-results:
			pending--
			if r.err == nil {
				return r.c, nil
			}
			last = r.err
			if errors.Is(r.err, syscall.ECONNREFUSED) || pending == 0 && ctx.Err() != nil {
				return nil, r.err
			}
		case <-tick.C:
			if ctx.Err() == nil {
				start()
			}
		case <-ctx.Done():
			// The attempts in flight end with ctx: collect them.
			for ; pending > 0; pending-- {
				if r := <-results; r.c != nil {
					r.c.Close()
				} else if r.err != nil {
					last = r.err
				}
			}
			return nil, last
		}
	}
}

// answerTimeout bounds the wait for an established TCP connection's
// answer.
const answerTimeout = 10 * time.Second

func probeUDP(ctx context.Context, c net.Conn, wantID string) bool {
	buf := make([]byte, 2048)
	for ctx.Err() == nil {
		if _, err := io.WriteString(c, "calico-lab probe\n"); err != nil {
			return false
		}
		_ = c.SetReadDeadline(time.Now().Add(250 * time.Millisecond))
		n, err := c.Read(buf)
		if err == nil {
			return answeredBy(buf[:n], wantID)
		}
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			// ICMP unreachable (nothing listening) or the context ended.
			return false
		}
	}
	return false
}

func answeredBy(body []byte, wantID string) bool {
	first, _, _ := bytes.Cut(body, []byte(" "))
	return string(first) == wantID
}
