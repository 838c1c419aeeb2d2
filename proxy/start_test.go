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

// starting makes a blocking resolver a proxy.Resolver that counts what it
// starts. Its queries end in a goroutine of their own, as a balancer's do on
// an upstream connection's reader, or, with atOnce, before Start returns,
// as one does when the write upstream fails.
type starting struct {
	blocking
	atOnce  bool
	started atomic.Int64
}

func (s *starting) Start(q []byte, deadline time.Time, fin proxy.Finisher) {
	s.started.Add(1)
	if s.atOnce {
		fin.Resolved(s.Resolve(q, deadline))
		return
	}
	later(s, q, deadline, fin)
}

func (s *starting) StartHeld(q []byte, deadline time.Time, fin proxy.Finisher) {
	s.Start(q, deadline, fin)
}

func (s *starting) Flush() {}

// forEachPath runs test with its resolver made one that ends queries later
// or at once: both ways a query can come back to the proxy.
func forEachPath(t *testing.T, test func(t *testing.T, wrap func(blocking) proxy.Resolver)) {
	t.Run("Start", func(t *testing.T) {
		test(t, func(r blocking) proxy.Resolver { return &starting{blocking: r} })
	})
	t.Run("StartAtOnce", func(t *testing.T) {
		test(t, func(r blocking) proxy.Resolver { return &starting{blocking: r, atOnce: true} })
	})
}

// TestQueriesGoThroughStart: UDP and TCP queries alike are started on the
// resolver; none is resolved by a goroutine that waits.
func TestQueriesGoThroughStart(t *testing.T) {
	r := &starting{blocking: &echoResolver{}}
	_, addr, _ := start(t, r, nil)
	for i, network := range []string{"udp", "udp", "tcp"} {
		if a := exchange(t, network, addr, msg("start.example", dns.TypeA, uint16(i))); a.Id != uint16(i) || len(a.Answer) != 1 {
			t.Fatalf("%s: %v", network, a)
		}
	}
	if got := r.started.Load(); got != 3 {
		t.Fatalf("started %d queries, want all 3", got)
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

func (b *batching) StartHeld(q []byte, deadline time.Time, fin proxy.Finisher) {
	b.nheld.Add(1)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.held = append(b.held, func() { b.Start(q, deadline, fin) })
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
		r := &batching{starting: starting{blocking: &echoResolver{}}}
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
	r := &starting{blocking: &echoResolver{}}
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
