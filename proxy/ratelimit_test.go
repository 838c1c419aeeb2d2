package proxy_test

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/dotproxy/dotproxy/balance"
	"github.com/dotproxy/dotproxy/internal/dottest"
	"github.com/dotproxy/dotproxy/proxy"
	"github.com/dotproxy/dotproxy/ratelimit"
	"github.com/dotproxy/dotproxy/upstream"
	"github.com/miekg/dns"
)

// These tests send from 127.0.0.2, 127.0.0.3 and other loopback addresses,
// as from distinct hosts, to a proxy told to limit loopback clients too
// (proxy.LimitLoopback), in front of real DNS-over-TLS servers.

// startLimiting runs a proxy as start does, rate-limiting loopback clients.
func startLimiting(tb testing.TB, r proxy.Resolver, mod func(*proxy.Config)) (*proxy.Server, string, *counter) {
	tb.Helper()
	return startWith(tb, r, mod, proxy.LimitLoopback)
}

// dotResolver is the balancer over one pool to a DNS-over-TLS server with
// opts, as dotproxy wires them, and counts the queries it is given whose
// question name starts with each label in counted.
type dotResolver struct {
	*balance.Balancer
	mu     sync.Mutex
	counts map[string]int
}

func newDoTResolver(tb testing.TB, opts dottest.Options, mod func(*upstream.Config)) *dotResolver {
	tb.Helper()
	srv := dottest.Start(tb, opts)
	cfg := upstream.Config{
		Addr:       srv.Addr,
		ServerName: "dns.test",
		RootCAs:    srv.CA.Pool,
		Logger:     slog.New(slog.DiscardHandler),
	}
	if mod != nil {
		mod(&cfg)
	}
	p, err := upstream.New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { p.Close() })
	b, err := balance.New([]balance.Member{{Upstream: p}}, balance.Config{AttemptTimeout: cfg.AttemptTimeout})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { b.Close() })
	return &dotResolver{Balancer: b, counts: map[string]int{}}
}

func (r *dotResolver) Start(q []byte, deadline time.Time, fin proxy.Finisher) {
	r.count(q)
	r.Balancer.Start(q, deadline, fin)
}

func (r *dotResolver) StartHeld(q []byte, deadline time.Time, fin proxy.Finisher) {
	r.count(q)
	r.Balancer.StartHeld(q, deadline, fin)
}

// count counts q under its question's first label.
func (r *dotResolver) count(q []byte) {
	if len(q) <= 12 || int(q[12]) >= len(q)-13 {
		return
	}
	label := string(q[13 : 13+int(q[12])])
	r.mu.Lock()
	r.counts[label]++
	r.mu.Unlock()
}

func (r *dotResolver) sent(label string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.counts[label]
}

// from returns a client that sends over network from the loopback address
// ip, skipping the test where the system has no such address (only Linux
// gives all of 127/8 to the loopback interface).
func from(tb testing.TB, network, ip string) *dns.Client {
	tb.Helper()
	a := net.ParseIP(ip)
	var local net.Addr = &net.UDPAddr{IP: a}
	if network == "tcp" {
		local = &net.TCPAddr{IP: a}
	}
	probe, err := net.ListenPacket("udp", net.JoinHostPort(ip, "0"))
	if err != nil {
		tb.Skipf("cannot send from %s: %v", ip, err)
	}
	probe.Close()
	return &dns.Client{Net: network, Timeout: 10 * time.Second, Dialer: &net.Dialer{LocalAddr: local}}
}

// ask sends a query for name from c and returns the answer.
func ask(tb testing.TB, c *dns.Client, addr, name string, id uint16) *dns.Msg {
	tb.Helper()
	a, _, err := c.Exchange(msg(name, dns.TypeA, id), addr)
	if err != nil {
		tb.Fatalf("%s query for %s from %s: %v", c.Net, name, c.Dialer.LocalAddr, err)
	}
	if a.Id != id {
		tb.Fatalf("answer ID %d, want %d", a.Id, id)
	}
	return a
}

// answered fails the test unless a is a full answer from the resolver:
// NOERROR, not truncated, the A record dottest gives.
func answered(tb testing.TB, a *dns.Msg, what string) {
	tb.Helper()
	if a.Rcode != dns.RcodeSuccess || a.Truncated || len(a.Answer) != 1 {
		tb.Fatalf("%s: rcode %s, TC %v, %d answers; want the resolver's answer", what, dns.RcodeToString[a.Rcode], a.Truncated, len(a.Answer))
	}
}

// dialFrom opens a UDP socket from ip to addr, closed when the test ends.
func dialFrom(tb testing.TB, ip, addr string) *net.UDPConn {
	tb.Helper()
	raddr, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	c, err := net.DialUDP("udp", &net.UDPAddr{IP: net.ParseIP(ip)}, raddr)
	if err != nil {
		tb.Skipf("cannot send from %s: %v", ip, err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

// A flood from one client takes no more of the upstream than its burst, so
// another client is answered. The upstream holds every flood query it gets
// until the test ends, and its one connection takes 32 at once: without the
// limit the flood holds all 32, and the other client's queries wait in
// line behind it until the flood's deadlines pass. The flood is a hundred
// datagrams, which the proxy's socket buffers whole, so that the other
// client's queries, sent after it, are read after it.
func TestRateLimitFloodSparesOtherClients(t *testing.T) {
	for _, tt := range []struct {
		name    string
		limited bool
	}{{"limited", true}, {"unlimited", false}} {
		t.Run(tt.name, func(t *testing.T) {
			const burst, flood, slots = 10, 100, 32
			gate := make(chan struct{})
			var release sync.Once
			open := func() { release.Do(func() { close(gate) }) }
			held := make(chan struct{}, 4*flood) // resent queries are held again
			r := newDoTResolver(t, dottest.Options{
				Concurrent: true,
				Hold: func(q *dns.Msg) {
					if q.Question[0].Name == "flood.example." {
						held <- struct{}{}
						<-gate
					}
				},
			}, func(c *upstream.Config) {
				c.MaxConns, c.MaxInFlight, c.AttemptTimeout = 1, slots, time.Second
			})
			t.Cleanup(open) // before the server's close, which waits for its answers
			_, addr, _ := startLimiting(t, r, func(c *proxy.Config) {
				c.QueryTimeout = 3 * time.Second
				if tt.limited {
					c.RateLimit = ratelimit.Config{Rate: ratelimit.MinRate, Burst: burst}
				}
			})
			defer open() // the held queries end before the proxy shuts down

			flooder := dialFrom(t, "127.0.0.2", addr)
			query := packed(t, msg("flood.example", dns.TypeA, 0))
			for i := range flood {
				query[0], query[1] = byte(i>>8), byte(i)
				if _, err := flooder.Write(query); err != nil {
					t.Fatal(err)
				}
			}
			if !tt.limited {
				for range slots {
					dottest.Await(t, held, "the flood to take every slot of the upstream connection")
				}
				return
			}
			victim := from(t, "udp", "127.0.0.3")
			for i := range burst { // the other client, within its own limit
				answered(t, ask(t, victim, addr, "quiet.example", uint16(100+i)), "the other client")
			}
			if n := r.sent("flood"); n != burst {
				t.Fatalf("%d flood queries reached the upstream, want the burst, %d", n, burst)
			}
			if n := r.sent("quiet"); n != burst {
				t.Fatalf("%d of the other client's queries reached the upstream, want %d", n, burst)
			}
		})
	}
}

// Over UDP past its limit a client's queries are dropped, one in Slip
// answered with TC set and nothing else; the client asks again over TCP and
// gets the resolver's answer.
func TestRateLimitSlipSendsClientToTCP(t *testing.T) {
	r := newDoTResolver(t, dottest.Options{}, nil)
	_, addr, obs := startLimiting(t, r, func(c *proxy.Config) {
		c.RateLimit = ratelimit.Config{Rate: ratelimit.MinRate, Burst: 2, Slip: 2}
	})
	udp, tcp := from(t, "udp", "127.0.0.2"), from(t, "tcp", "127.0.0.2")
	for i := range 2 {
		answered(t, ask(t, udp, addr, "slip.example", uint16(i+1)), "within the burst")
	}

	q := msg("slip.example", dns.TypeA, 3)
	q.SetEdns0(1232, false)
	tc, _, err := udp.Exchange(q, addr)
	if err != nil {
		t.Fatal(err)
	}
	if !tc.Truncated || tc.Rcode != dns.RcodeSuccess || tc.Id != 3 || len(tc.Answer)+len(tc.Ns) != 0 ||
		len(tc.Question) != 1 || tc.Question[0] != q.Question[0] || len(tc.Extra) != 1 || tc.IsEdns0() == nil {
		t.Fatalf("the first query over the limit got %v; want the question and OPT alone, TC set", tc)
	}
	if got := dottest.Await(t, obs.limits, "the slip"); got != proxy.LimitSlip {
		t.Fatalf("counted as %q, want %q", got, proxy.LimitSlip)
	}
	if size := len(packed(t, tc)); size > len(packed(t, q)) {
		t.Fatalf("the slip is %d bytes, more than the query's %d: an amplifier", size, len(packed(t, q)))
	}
	// The next is dropped: no reply, counted. (Slip 2: every other.)
	c := dialFrom(t, "127.0.0.2", addr)
	if _, err := c.Write(packed(t, msg("slip.example", dns.TypeA, 4))); err != nil {
		t.Fatal(err)
	}
	if got := dottest.Await(t, obs.limits, "the drop"); got != proxy.LimitDrop {
		t.Fatalf("counted as %q, want %q", got, proxy.LimitDrop)
	}

	// As a stub does on TC: the same query over TCP, which gets through.
	answered(t, ask(t, tcp, addr, "slip.example", 3), "the TCP retry after the slip")
	if n := r.sent("slip"); n != 3 {
		t.Fatalf("%d queries reached the upstream, want 3: two within the burst and the TCP retry", n)
	}
	if s := obs.snapshot(); s.limited[proxy.LimitSlip] != 1 || s.limited[proxy.LimitDrop] != 1 || s.truncated != 0 {
		t.Fatalf("counted %v, truncated %d; want one slip, one drop, no truncation", s.limited, s.truncated)
	}
}

// Over TCP a client may overdraw its limit by one burst; past it each query
// gets REFUSED, on a connection that stays open, while another client is
// answered.
func TestRateLimitRefusesOverTCP(t *testing.T) {
	const burst = 3
	r := newDoTResolver(t, dottest.Options{}, nil)
	_, addr, obs := startLimiting(t, r, func(c *proxy.Config) {
		c.RateLimit = ratelimit.Config{Rate: ratelimit.MinRate, Burst: burst}
	})
	client := from(t, "tcp", "127.0.0.2")
	conn, err := client.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for i := range 2*burst + 2 {
		q := msg("tcp.example", dns.TypeA, uint16(i))
		q.SetEdns0(1232, true)
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		a, _, err := client.ExchangeWithConn(q, conn)
		if err != nil {
			t.Fatalf("query %d: %v", i, err)
		}
		if i < 2*burst {
			answered(t, a, "within the burst and its overdraft")
			continue
		}
		if a.Rcode != dns.RcodeRefused || a.Id != uint16(i) || len(a.Question) != 1 || a.Question[0] != q.Question[0] || len(a.Answer) != 0 {
			t.Fatalf("query %d, over the limit: %v; want REFUSED with the question", i, a)
		}
		// It says why: Extended DNS Error 0 (Other), "rate limited".
		wantEDE(t, a, true, dns.ExtendedErrorCodeOther, "rate limited")
	}
	if s := obs.snapshot(); s.limited[proxy.LimitRefused] != 2 || len(s.limited) != 1 {
		t.Fatalf("counted %v, want two refused", s.limited)
	}
	answered(t, ask(t, from(t, "tcp", "127.0.0.3"), addr, "other.example", 1), "another client")
	if n := r.sent("tcp"); n != 2*burst {
		t.Fatalf("%d queries reached the upstream, want %d", n, 2*burst)
	}
}

// Loopback clients are never limited, nor those in the exempt list.
func TestRateLimitExemptions(t *testing.T) {
	cfg := func(c *proxy.Config) {
		c.RateLimit = ratelimit.Config{Rate: ratelimit.MinRate, Burst: 1, Slip: 1,
			Exempt: []netip.Prefix{netip.MustParsePrefix("127.0.0.3/32")}}
	}
	r := newDoTResolver(t, dottest.Options{}, nil)
	_, addr, obs := start(t, r, cfg) // as dotproxy runs: loopback exempt
	for _, ip := range []string{"127.0.0.1", "127.0.0.2"} {
		for _, network := range []string{"udp", "tcp"} {
			c := from(t, network, ip)
			for i := range 10 {
				answered(t, ask(t, c, addr, "loopback.example", uint16(i)), network+" from "+ip)
			}
		}
	}
	if s := obs.snapshot(); len(s.limited) != 0 {
		t.Fatalf("loopback clients were limited: %v", s.limited)
	}

	_, addr, obs = startLimiting(t, r, cfg) // loopback limited: the exempt list still holds
	for _, network := range []string{"udp", "tcp"} {
		c := from(t, network, "127.0.0.3")
		for i := range 10 {
			answered(t, ask(t, c, addr, "exempt.example", uint16(i)), network+" from the exempt 127.0.0.3")
		}
	}
	if s := obs.snapshot(); len(s.limited) != 0 {
		t.Fatalf("an exempt client was limited: %v", s.limited)
	}
	c := from(t, "udp", "127.0.0.2")
	answered(t, ask(t, c, addr, "limited.example", 1), "the burst")
	if a := ask(t, c, addr, "limited.example", 2); !a.Truncated {
		t.Fatalf("a client neither loopback-exempt nor listed: %v; want limited (TC)", a)
	}
}

// logRecords is a slog handler that keeps the records at warn level.
type logRecords struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (h *logRecords) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }
func (h *logRecords) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.recs = append(h.recs, r.Clone())
	return nil
}
func (h *logRecords) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *logRecords) WithGroup(string) slog.Handler      { return h }

// prefixes returns the prefix attribute of each record.
func (h *logRecords) prefixes() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, r := range h.recs {
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "prefix" {
				out = append(out, a.Value.String())
			}
			return true
		})
	}
	return out
}

// A client over its limit is logged once, at warn level, with its prefix,
// however many of its queries are limited.
func TestRateLimitLogsEachPrefixOnce(t *testing.T) {
	logs := &logRecords{}
	r := newDoTResolver(t, dottest.Options{}, nil)
	_, addr, obs := startLimiting(t, r, func(c *proxy.Config) {
		c.RateLimit = ratelimit.Config{Rate: ratelimit.MinRate, Burst: 1, IPv4Prefix: 24}
		c.Logger = slog.New(logs)
	})
	for _, ip := range []string{"127.0.0.2", "127.0.1.2"} {
		c := dialFrom(t, ip, addr)
		for i := range 30 {
			if _, err := c.Write(packed(t, msg("noisy.example", dns.TypeA, uint16(i)))); err != nil {
				t.Fatal(err)
			}
		}
		for range 29 {
			dottest.Await(t, obs.limits, "a query over the limit")
		}
	}
	// 127.0.0.3 shares 127.0.0.2's /24, already reported.
	c := dialFrom(t, "127.0.0.3", addr)
	c.Write(packed(t, msg("noisy.example", dns.TypeA, 99)))
	dottest.Await(t, obs.limits, "a query over the limit")
	got := logs.prefixes()
	if len(got) != 2 || got[0] != "127.0.0.0/24" || got[1] != "127.0.1.0/24" {
		t.Fatalf("logged prefixes %q, want 127.0.0.0/24 and 127.0.1.0/24 once each", got)
	}
}

// A flood from thousands of sources, each a new loopback address, as
// spoofed sources would come, leaves a client that was over its limit
// limited: in a table of one set of eight entries, which every source
// shares, its entry outlasts fifty newcomers between two of its queries,
// every time. Each source is let through: one query is within any limit.
func TestRateLimitSpoofedSourcesKeepHeavyHitterLimited(t *testing.T) {
	r := newDoTResolver(t, dottest.Options{}, nil)
	s, addr, obs := startLimiting(t, r, func(c *proxy.Config) {
		c.RateLimit = ratelimit.Config{Rate: ratelimit.MinRate, Burst: 1, Entries: 8}
	})
	heavy := dialFrom(t, "127.0.0.2", addr)
	send := func(c *net.UDPConn, name string, id uint16) {
		if _, err := c.Write(packed(t, msg(name, dns.TypeA, id))); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 10 {
		send(heavy, "heavy.example", uint16(i))
	}
	for range 9 {
		dottest.Await(t, obs.limits, "the heavy hitter over its limit")
	}
	const sources, between = 3000, 50
	for i := range sources {
		ip := netip.AddrFrom4([4]byte{127, 1 + byte(i>>16), byte(i >> 8), byte(i)}).String()
		c, err := net.DialUDP("udp", &net.UDPAddr{IP: net.ParseIP(ip)}, heavy.RemoteAddr().(*net.UDPAddr))
		if err != nil {
			t.Skipf("cannot send from %s: %v", ip, err)
		}
		send(c, "spoofed.example", uint16(i))
		c.Close()
		if i%between == between-1 {
			// The proxy reads its socket in order: once this is
			// counted, every source before it has been through the
			// table, and the socket's buffer is empty again.
			send(heavy, "heavy.example", uint16(i))
			dottest.Await(t, obs.limits, "a heavy query over its limit (none: it got through)")
		}
	}
	if n := r.sent("heavy"); n != 1 {
		t.Fatalf("%d of the heavy hitter's queries reached the upstream, want its burst of 1", n)
	}
	if n := r.sent("spoofed"); n != sources {
		t.Fatalf("%d of %d one-off sources reached the upstream", n, sources)
	}
	if n := proxy.RateLimitEntries(s); n != 8 {
		t.Fatalf("table of %d entries after the flood, want 8", n)
	}
	if s := obs.snapshot(); s.limited[proxy.LimitDrop]+s.limited[proxy.LimitSlip] != 9+sources/between {
		t.Fatalf("limited %v, want only the heavy hitter's %d", s.limited, 9+sources/between)
	}
}
