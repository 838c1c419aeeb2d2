package proxy_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/dotproxy/dotproxy/proxy"
	"github.com/miekg/dns"
)

// resolverFunc adapts a function to proxy.Resolver.
type resolverFunc func(ctx context.Context, q []byte) ([]byte, string, error)

// Resolve runs f with a context that ends at deadline.
func (f resolverFunc) Resolve(q []byte, deadline time.Time) ([]byte, fmt.Stringer, error) {
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	ans, name, err := f(ctx, q)
	if name == "" {
		return ans, nil, err
	}
	return ans, named(name), err
}

// Start runs f in a goroutine of its own, as a balancer's upstream reader
// would end the query.
func (f resolverFunc) Start(q []byte, deadline time.Time, fin proxy.Finisher) {
	later(f, q, deadline, fin)
}

// StartHeld is Start: there is no write to hold.
func (f resolverFunc) StartHeld(q []byte, deadline time.Time, fin proxy.Finisher) {
	f.Start(q, deadline, fin)
}

// Flush implements proxy.Resolver.
func (resolverFunc) Flush() {}

// blocking is a test resolver written as a function that waits for its
// answer; later and starting make it a proxy.Resolver.
type blocking interface {
	Resolve(q []byte, deadline time.Time) ([]byte, fmt.Stringer, error)
}

// later ends a query from a goroutine of its own, as a balancer's upstream
// connection reader does.
func later(r blocking, q []byte, deadline time.Time, fin proxy.Finisher) {
	go func() { fin.Resolved(r.Resolve(q, deadline)) }()
}

// named is an upstream known by its name alone.
type named string

func (n named) String() string { return string(n) }

// echoResolver answers every query as dottest's default server would, and
// records the bytes it was given.
type echoResolver struct {
	mu   sync.Mutex
	seen [][]byte
	// answer builds the reply; nil answers with one A record.
	answer func(q *dns.Msg) *dns.Msg
}

func (r *echoResolver) Start(q []byte, deadline time.Time, fin proxy.Finisher) {
	later(r, q, deadline, fin)
}

func (r *echoResolver) StartHeld(q []byte, deadline time.Time, fin proxy.Finisher) {
	r.Start(q, deadline, fin)
}

func (r *echoResolver) Flush() {}

func (r *echoResolver) Resolve(q []byte, _ time.Time) ([]byte, fmt.Stringer, error) {
	r.mu.Lock()
	r.seen = append(r.seen, append([]byte(nil), q...))
	r.mu.Unlock()
	m := new(dns.Msg)
	if err := m.Unpack(q); err != nil {
		return nil, nil, err
	}
	var a *dns.Msg
	if r.answer != nil {
		a = r.answer(m)
	} else {
		a = new(dns.Msg)
		a.SetReply(m)
		a.Answer = append(a.Answer, &dns.A{
			Hdr: dns.RR_Header{Name: m.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60},
			A:   net.IPv4(192, 0, 2, 1),
		})
	}
	b, err := a.Pack()
	return b, named("up.test:853"), err
}

func (r *echoResolver) queries() [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([][]byte(nil), r.seen...)
}

// bigAnswer answers with n TXT records of 200 bytes each.
func bigAnswer(n int) func(q *dns.Msg) *dns.Msg {
	return func(q *dns.Msg) *dns.Msg {
		a := new(dns.Msg)
		a.SetReply(q)
		for i := range n {
			a.Answer = append(a.Answer, &dns.TXT{
				Hdr: dns.RR_Header{Name: q.Question[0].Name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60},
				Txt: []string{string(make([]byte, 199)) + string(rune('a'+i%26))},
			})
		}
		if o := q.IsEdns0(); o != nil {
			a.SetEdns0(4096, o.Do())
		}
		return a
	}
}

// counter is an Observer that counts each event kind.
type counter struct {
	mu        sync.Mutex
	answered  int
	dropped   map[proxy.DropReason]int
	malformed int
	refused   int
	truncated int
	failed    map[proxy.FailReason]int
	rcodes    map[int]int
	drops     chan proxy.DropReason // each drop, while not full
	limited   map[proxy.LimitAction]int
	limits    chan proxy.LimitAction // each query over the rate limit, while not full
}

func newCounter() *counter {
	return &counter{dropped: map[proxy.DropReason]int{}, failed: map[proxy.FailReason]int{}, rcodes: map[int]int{},
		drops: make(chan proxy.DropReason, 64), limited: map[proxy.LimitAction]int{}, limits: make(chan proxy.LimitAction, 64)}
}

func (c *counter) Answered(_ proxy.Transport, _ fmt.Stringer, rcode int, _ time.Duration, _, _ int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.answered++
	c.rcodes[rcode]++
}

func (c *counter) Dropped(_ proxy.Transport, r proxy.DropReason) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.dropped[r]++
	select {
	case c.drops <- r:
	default:
	}
}

func (c *counter) Malformed(proxy.Transport) { c.mu.Lock(); c.malformed++; c.mu.Unlock() }
func (c *counter) Refused(proxy.Transport)   { c.mu.Lock(); c.refused++; c.mu.Unlock() }
func (c *counter) Truncated()                { c.mu.Lock(); c.truncated++; c.mu.Unlock() }

func (c *counter) Failed(_ proxy.Transport, r proxy.FailReason) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.failed[r]++
}

func (c *counter) Limited(_ proxy.Transport, a proxy.LimitAction) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.limited[a]++
	select {
	case c.limits <- a:
	default:
	}
}

func (c *counter) snapshot() *counter {
	c.mu.Lock()
	defer c.mu.Unlock()
	return &counter{answered: c.answered, malformed: c.malformed, refused: c.refused, truncated: c.truncated,
		dropped: clone(c.dropped), failed: clone(c.failed), rcodes: clone(c.rcodes), limited: clone(c.limited)}
}

func clone[K comparable](m map[K]int) map[K]int {
	out := make(map[K]int, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// start runs a proxy on a free loopback port until the test ends.
func start(tb testing.TB, r proxy.Resolver, mod func(*proxy.Config)) (*proxy.Server, string, *counter) {
	tb.Helper()
	return startWith(tb, r, mod, nil)
}

// startWith is start with before, if not nil, applied to the Server
// between New and Start.
func startWith(tb testing.TB, r proxy.Resolver, mod func(*proxy.Config), before func(*proxy.Server)) (*proxy.Server, string, *counter) {
	tb.Helper()
	obs := newCounter()
	cfg := proxy.Config{
		Listen:   []string{"127.0.0.1:0"},
		Resolver: r,
		Observer: obs,
		Logger:   slog.New(slog.DiscardHandler),
	}
	if mod != nil {
		mod(&cfg)
	}
	s, err := proxy.New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	if before != nil {
		before(s)
	}
	if err := s.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.Shutdown(ctx)
	})
	return s, s.Addrs()[0], obs
}

func msg(name string, qtype uint16, id uint16) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	m.Id = id
	return m
}

// exchange sends m over net ("udp" or "tcp") with miekg's client.
func exchange(tb testing.TB, network, addr string, m *dns.Msg) *dns.Msg {
	tb.Helper()
	c := &dns.Client{Net: network, Timeout: 10 * time.Second, UDPSize: 65535}
	a, _, err := c.Exchange(m, addr)
	if err != nil {
		tb.Fatalf("%s exchange: %v", network, err)
	}
	return a
}

// rawUDP sends raw bytes and returns the reply, or nil when none comes
// within wait.
func rawUDP(tb testing.TB, addr string, b []byte, wait time.Duration) []byte {
	tb.Helper()
	c, err := net.Dial("udp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write(b); err != nil {
		tb.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, 65535)
	n, err := c.Read(buf)
	if err != nil {
		return nil
	}
	return buf[:n]
}

// dialTCP opens a DNS-over-TCP connection to addr, closed when the test
// ends, with a deadline generous enough for a loaded machine.
func dialTCP(tb testing.TB, addr string) *dns.Conn {
	tb.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return &dns.Conn{Conn: c}
}
