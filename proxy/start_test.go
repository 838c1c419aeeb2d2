package proxy_test

import (
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dotproxy/dotproxy/proxy"
	"github.com/miekg/dns"
)

// starting makes a Resolver a proxy.Starter. Its queries end in a goroutine
// of their own, as a balancer's do on an upstream connection's reader, or,
// with atOnce, before Start returns, as one does when the write upstream
// fails; with decline it starts none.
type starting struct {
	proxy.Resolver
	atOnce  bool
	decline bool
	started atomic.Int64
}

func (s *starting) Start(q []byte, deadline time.Time, fin proxy.Finisher) bool {
	if s.decline {
		return false
	}
	s.started.Add(1)
	if s.atOnce {
		fin.Resolved(s.Resolve(q, deadline))
		return true
	}
	go func() { fin.Resolved(s.Resolve(q, deadline)) }()
	return true
}

// forEachPath runs test with its resolver as it is (queries wait in
// Resolve) and made a Starter that ends queries later or at once: every
// path a UDP query can take through the proxy.
func forEachPath(t *testing.T, test func(t *testing.T, wrap func(proxy.Resolver) proxy.Resolver)) {
	t.Run("Resolve", func(t *testing.T) {
		test(t, func(r proxy.Resolver) proxy.Resolver { return r })
	})
	t.Run("Start", func(t *testing.T) {
		test(t, func(r proxy.Resolver) proxy.Resolver { return &starting{Resolver: r} })
	})
	t.Run("StartAtOnce", func(t *testing.T) {
		test(t, func(r proxy.Resolver) proxy.Resolver { return &starting{Resolver: r, atOnce: true} })
	})
}

// TestUDPQueriesGoThroughStart: a Starter resolver gets UDP queries through
// Start, and TCP ones through Resolve; one that declines gets them all
// through Resolve.
func TestUDPQueriesGoThroughStart(t *testing.T) {
	r := &starting{Resolver: &echoResolver{}}
	_, addr, _ := start(t, r, nil)
	for i, network := range []string{"udp", "udp", "tcp"} {
		if a := exchange(t, network, addr, msg("start.example", dns.TypeA, uint16(i))); a.Id != uint16(i) || len(a.Answer) != 1 {
			t.Fatalf("%s: %v", network, a)
		}
	}
	if got := r.started.Load(); got != 2 {
		t.Fatalf("started %d queries, want the 2 over UDP", got)
	}

	declining := &starting{Resolver: &echoResolver{}, decline: true}
	_, addr, obs := start(t, declining, nil)
	if a := exchange(t, "udp", addr, msg("declined.example", dns.TypeA, 9)); a.Id != 9 || len(a.Answer) != 1 {
		t.Fatalf("declined query: %v", a)
	}
	if s := obs.snapshot(); s.answered != 1 {
		t.Fatalf("answered = %d, want 1", s.answered)
	}
}

// batching is a starting resolver that holds queries until Flush.
type batching struct {
	starting
	mu      sync.Mutex
	held    []func()
	nheld   atomic.Int64
	flushes atomic.Int64
}

func (b *batching) StartHeld(q []byte, deadline time.Time, fin proxy.Finisher) bool {
	b.nheld.Add(1)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.held = append(b.held, func() { b.Start(q, deadline, fin) })
	return true
}

func (b *batching) Flush() {
	b.flushes.Add(1)
	b.mu.Lock()
	held := b.held
	b.held = nil
	b.mu.Unlock()
	for _, f := range held {
		f()
	}
}

// TestUDPBurst: a burst of datagrams, read in batches, is answered whole,
// and every query held for a batch is flushed.
func TestUDPBurst(t *testing.T) {
	for _, listen := range []string{"127.0.0.1:0", "0.0.0.0:0"} {
		r := &batching{starting: starting{Resolver: &echoResolver{}}}
		s, _, _ := start(t, r, func(c *proxy.Config) { c.Listen = []string{listen} })
		_, port, _ := net.SplitHostPort(s.Addrs()[0])
		c, err := net.Dial("udp", net.JoinHostPort("127.0.0.1", port))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		const n = 64
		for i := range n {
			wire, err := msg(fmt.Sprintf("burst%d.example", i), dns.TypeA, uint16(i)).Pack()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.Write(wire); err != nil {
				t.Fatal(err)
			}
		}
		seen := map[uint16]bool{}
		buf := make([]byte, 512)
		for range n {
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			k, err := c.Read(buf)
			if err != nil {
				t.Fatalf("%s: %d of %d replies: %v", listen, len(seen), n, err)
			}
			var a dns.Msg
			if err := a.Unpack(buf[:k]); err != nil || len(a.Answer) != 1 ||
				a.Question[0].Name != fmt.Sprintf("burst%d.example.", a.Id) {
				t.Fatalf("%s: bad reply %v (%v)", listen, &a, err)
			}
			seen[a.Id] = true
		}
		if len(seen) != n {
			t.Fatalf("%s: replies to %d distinct queries, want %d", listen, len(seen), n)
		}
		if got := r.started.Load(); got != n {
			t.Fatalf("%s: %d queries started, want %d", listen, got, n)
		}
		if r.nheld.Load() > 0 && r.flushes.Load() == 0 {
			t.Fatalf("%s: %d queries held and never flushed", listen, r.nheld.Load())
		}
		t.Logf("%s: %d of %d queries held for a batch, %d flushes", listen, r.nheld.Load(), n, r.flushes.Load())
	}
}

// TestSeveralUDPSockets: with UDPSockets, clients spread by the kernel
// over several sockets on one port are all answered, and a second server
// cannot take the same address: its TCP listener, which never shares,
// fails first.
func TestSeveralUDPSockets(t *testing.T) {
	r := &starting{Resolver: &echoResolver{}}
	_, addr, obs := start(t, r, func(c *proxy.Config) { c.UDPSockets = 4 })
	const clients = 16
	for i := range clients {
		if a := exchange(t, "udp", addr, msg("spread.example", dns.TypeA, uint16(i))); a.Id != uint16(i) || len(a.Answer) != 1 {
			t.Fatalf("client %d: %v", i, a)
		}
	}
	if s := obs.snapshot(); s.answered != clients {
		t.Fatalf("answered = %d, want %d", s.answered, clients)
	}
	s, err := proxy.New(proxy.Config{Listen: []string{addr}, Resolver: &echoResolver{}, UDPSockets: 4})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err == nil {
		s.Shutdown(context.Background())
		t.Fatal("a second server started on the same address")
	}
}
