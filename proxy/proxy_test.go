package proxy_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/dotproxy/dotproxy/dnsmsg"
	"github.com/dotproxy/dotproxy/internal/dottest"
	"github.com/dotproxy/dotproxy/proxy"
	"github.com/miekg/dns"
)

func TestForwardsBytesUnchangedAndKeepsID(t *testing.T) {
	forEachPath(t, func(t *testing.T, wrap func(blocking) proxy.Resolver) {
		for _, network := range []string{"udp", "tcp"} {
			t.Run(network, func(t *testing.T) {
				r := &echoResolver{}
				_, addr, obs := start(t, wrap(r), nil)
				q := msg("example.org", dns.TypeA, 0xABCD)
				q.SetEdns0(1232, true)
				a := exchange(t, network, addr, q)
				if a.Id != 0xABCD || a.Rcode != dns.RcodeSuccess || len(a.Answer) != 1 {
					t.Fatalf("bad answer: %v", a)
				}
				want, _ := q.Pack()
				if got := r.queries(); len(got) != 1 || !bytes.Equal(got[0], want) {
					t.Fatalf("resolver got %x, want the client's bytes %x", got, want)
				}
				if s := obs.snapshot(); s.answered != 1 || s.rcodes[0] != 1 {
					t.Fatalf("observer: %+v", s)
				}
			})
		}
	})
}

func TestListensOnIPv6(t *testing.T) {
	_, addr, _ := start(t, &echoResolver{}, func(c *proxy.Config) { c.Listen = []string{"[::1]:0"} })
	for _, network := range []string{"udp", "tcp"} {
		if a := exchange(t, network, addr, msg("v6.example", dns.TypeA, 6)); a.Id != 6 {
			t.Fatalf("%s: id %d", network, a.Id)
		}
	}
}

func TestUDPTruncation(t *testing.T) {
	forEachPath(t, func(t *testing.T, wrap func(blocking) proxy.Resolver) {
		tests := []struct {
			name    string
			edns    uint16 // 0: no OPT record
			records int    // 200-byte TXT records in the answer
			wantTC  bool
		}{
			{"no EDNS, small answer", 0, 1, false},
			{"no EDNS, 600-byte answer", 0, 3, true},
			{"EDNS 1232, 1000-byte answer", 1232, 5, false},
			{"EDNS 1232, 1400-byte answer", 1232, 7, true},
			{"EDNS below 512 counts as 512", 100, 2, false},
			{"EDNS 4096, 3000-byte answer", 4096, 15, false},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				_, addr, obs := start(t, wrap(&echoResolver{answer: bigAnswer(tt.records)}), nil)
				q := msg("big.example", dns.TypeTXT, 77)
				if tt.edns > 0 {
					q.SetEdns0(tt.edns, true)
				}
				wire, _ := q.Pack()
				reply := rawUDP(t, addr, wire, 10*time.Second)
				var a dns.Msg
				if err := a.Unpack(reply); err != nil {
					t.Fatalf("reply does not parse: %v", err)
				}
				if a.Id != 77 || a.Truncated != tt.wantTC {
					t.Fatalf("id %d TC %v, want 77 TC %v", a.Id, a.Truncated, tt.wantTC)
				}
				if len(a.Question) != 1 || a.Question[0].Name != "big.example." {
					t.Fatalf("question not echoed: %v", a.Question)
				}
				if tt.wantTC {
					if len(a.Answer) != 0 || obs.snapshot().truncated != 1 {
						t.Fatalf("truncated reply carries %d answers", len(a.Answer))
					}
					if (a.IsEdns0() != nil) != (tt.edns > 0) {
						t.Fatalf("OPT presence %v, want %v", a.IsEdns0() != nil, tt.edns > 0)
					}
					if len(reply) > 512 {
						t.Fatalf("truncated reply is %d bytes", len(reply))
					}
					// Over TCP the client gets it all.
					if full := exchange(t, "tcp", addr, q); len(full.Answer) != tt.records {
						t.Fatalf("TCP answer has %d records, want %d", len(full.Answer), tt.records)
					}
				} else if len(a.Answer) != tt.records {
					t.Fatalf("got %d records, want %d", len(a.Answer), tt.records)
				}
			})
		}
	})
}

// paddedQuery is a well-formed query of exactly size bytes, filled by an
// EDNS(0) Padding option.
func paddedQuery(t *testing.T, id uint16, size int) []byte {
	t.Helper()
	q := msg("padded.example", dns.TypeA, id)
	q.SetEdns0(1232, false)
	base, err := q.Pack()
	if err != nil {
		t.Fatal(err)
	}
	opt := q.IsEdns0()
	opt.Option = append(opt.Option, &dns.EDNS0_PADDING{Padding: make([]byte, size-len(base)-4)})
	wire, err := q.Pack()
	if err != nil || len(wire) != size {
		t.Fatalf("padded query of %d bytes, want %d (%v)", len(wire), size, err)
	}
	return wire
}

// The largest query taken reaches the resolver intact; a larger datagram
// is dropped and counted, and the reader goes on with the next.
func TestQuerySizeLimitUDP(t *testing.T) {
	forEachPath(t, func(t *testing.T, wrap func(blocking) proxy.Resolver) {
		r := &echoResolver{}
		_, addr, obs := start(t, wrap(r), nil)
		largest := paddedQuery(t, 5, proxy.MaxQuerySize)
		if reply := rawUDP(t, addr, largest, 10*time.Second); reply == nil || dnsmsg.ID(reply) != 5 {
			t.Fatalf("no answer to a %d-byte query", len(largest))
		}
		c, err := net.Dial("udp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		good, _ := msg("good.example", dns.TypeA, 2).Pack()
		// One reader handles datagrams in order: the reply to the good
		// query proves the large ones before it were read and dropped.
		for _, b := range [][]byte{paddedQuery(t, 3, proxy.MaxQuerySize+1), paddedQuery(t, 4, 60000), good} {
			if _, err := c.Write(b); err != nil {
				t.Fatal(err)
			}
		}
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		buf := make([]byte, 65535)
		n, err := c.Read(buf)
		if err != nil || dnsmsg.ID(buf[:n]) != 2 {
			t.Fatalf("first reply: id %x err %v; want the good query's", buf[:2], err)
		}
		if s := obs.snapshot(); s.dropped[proxy.DropTooLarge] != 2 {
			t.Fatalf("dropped: %v, want 2 too_large", s.dropped)
		}
		if got := r.queries(); len(got) != 2 || !bytes.Equal(got[0], largest) {
			t.Fatal("the largest query did not reach the resolver intact, or a larger one did")
		}
	})
}

// Over TCP, a query too large is read off the stream and answered FORMERR,
// and the connection goes on.
func TestQuerySizeLimitTCP(t *testing.T) {
	r := &echoResolver{}
	_, addr, obs := start(t, r, nil)
	dc := dialTCP(t, addr)
	for _, wire := range [][]byte{paddedQuery(t, 7, 60000), paddedQuery(t, 8, proxy.MaxQuerySize)} {
		if _, err := dc.Write(wire); err != nil {
			t.Fatal(err)
		}
	}
	first, err := dc.ReadMsg()
	if err != nil {
		t.Fatal(err)
	}
	if first.Id != 7 || first.Rcode != dns.RcodeFormatError {
		t.Fatalf("reply to the oversized query: id %d rcode %s, want 7 FORMERR", first.Id, dns.RcodeToString[first.Rcode])
	}
	second, err := dc.ReadMsg()
	if err != nil || second.Id != 8 || second.Rcode != dns.RcodeSuccess {
		t.Fatalf("reply to the largest query: %v, %v", second, err)
	}
	if s := obs.snapshot(); s.malformed != 1 {
		t.Fatalf("malformed = %d, want 1", s.malformed)
	}
}

func TestBadDatagramsAreDroppedAndCounted(t *testing.T) {
	forEachPath(t, func(t *testing.T, wrap func(blocking) proxy.Resolver) {
		r := &echoResolver{}
		_, addr, obs := start(t, wrap(r), nil)
		c, err := net.Dial("udp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		resp := msg("x.example", dns.TypeA, 1)
		resp.Response = true
		respWire, _ := resp.Pack()
		good, _ := msg("good.example", dns.TypeA, 2).Pack()
		// One reader handles datagrams in order: the reply to the good query
		// proves the two bad ones before it were read and dropped.
		for _, b := range [][]byte{{1, 2, 3}, respWire, good} {
			if _, err := c.Write(b); err != nil {
				t.Fatal(err)
			}
		}
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		buf := make([]byte, 4096)
		n, err := c.Read(buf)
		if err != nil || dnsmsg.ID(buf[:n]) != 2 {
			t.Fatalf("first reply: id %x err %v; want the good query's", buf[:2], err)
		}
		s := obs.snapshot()
		if s.dropped[proxy.DropShort] != 1 || s.dropped[proxy.DropResponse] != 1 {
			t.Fatalf("dropped: %v", s.dropped)
		}
		if len(r.queries()) != 1 {
			t.Fatalf("resolver saw %d queries, want 1", len(r.queries()))
		}
	})
}

func TestMalformedQueryGetsFormErr(t *testing.T) {
	forEachPath(t, func(t *testing.T, wrap func(blocking) proxy.Resolver) {
		r := &echoResolver{}
		_, addr, obs := start(t, wrap(r), nil)
		// A header that promises one question, then a label running off the end.
		bad := []byte{0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 40, 'a', 'b'}
		reply := rawUDP(t, addr, bad, 10*time.Second)
		var a dns.Msg
		if err := a.Unpack(reply); err != nil {
			t.Fatal(err)
		}
		if a.Id != 0x1234 || a.Rcode != dns.RcodeFormatError {
			t.Fatalf("got id %x rcode %d, want FORMERR", a.Id, a.Rcode)
		}
		if obs.snapshot().malformed != 1 || len(r.queries()) != 0 {
			t.Fatal("malformed query not counted, or forwarded")
		}
	})
}

func TestACLRefusesWithoutUpstreamTraffic(t *testing.T) {
	forEachPath(t, func(t *testing.T, wrap func(blocking) proxy.Resolver) {
		r := &echoResolver{}
		_, addr, obs := start(t, wrap(r), func(c *proxy.Config) {
			c.Allow = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
		})
		for _, network := range []string{"udp", "tcp"} {
			q := msg("refused.example", dns.TypeA, 9)
			q.SetEdns0(1232, false)
			a := exchange(t, network, addr, q)
			if a.Rcode != dns.RcodeRefused || a.Id != 9 || len(a.Question) != 1 || a.IsEdns0() == nil {
				t.Fatalf("%s: %v", network, a)
			}
		}
		if len(r.queries()) != 0 {
			t.Fatal("a refused client caused upstream traffic")
		}
		if obs.snapshot().refused != 2 {
			t.Fatalf("refused = %d", obs.snapshot().refused)
		}
	})
}

func TestServFailAtDeadline(t *testing.T) {
	forEachPath(t, func(t *testing.T, wrap func(blocking) proxy.Resolver) {
		block := resolverFunc(func(ctx context.Context, _ []byte) ([]byte, string, error) {
			<-ctx.Done()
			return nil, "", ctx.Err()
		})
		_, addr, obs := start(t, wrap(block), func(c *proxy.Config) { c.QueryTimeout = 50 * time.Millisecond })
		for _, network := range []string{"udp", "tcp"} {
			a := exchange(t, network, addr, msg("slow.example", dns.TypeA, 11))
			if a.Rcode != dns.RcodeServerFailure || a.Id != 11 || a.Question[0].Name != "slow.example." {
				t.Fatalf("%s: %v", network, a)
			}
		}
		if obs.snapshot().failed[proxy.FailDeadline] != 2 {
			t.Fatalf("failed: %v", obs.snapshot().failed)
		}
	})
}

func TestServFailOnUpstreamError(t *testing.T) {
	forEachPath(t, func(t *testing.T, wrap func(blocking) proxy.Resolver) {
		fail := resolverFunc(func(context.Context, []byte) ([]byte, string, error) {
			return nil, "", errors.New("all upstreams down")
		})
		_, addr, obs := start(t, wrap(fail), nil)
		a := exchange(t, "udp", addr, msg("down.example", dns.TypeA, 12))
		if a.Rcode != dns.RcodeServerFailure || a.Id != 12 {
			t.Fatalf("%v", a)
		}
		if obs.snapshot().failed[proxy.FailUpstream] != 1 {
			t.Fatalf("failed: %v", obs.snapshot().failed)
		}
	})
}

// writeFrame writes one length-prefixed message.
func writeFrame(t *testing.T, c net.Conn, m *dns.Msg) {
	t.Helper()
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(binary.BigEndian.AppendUint16(nil, uint16(len(b)))); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
}

func readFrame(t *testing.T, c net.Conn) *dns.Msg {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var hdr [2]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, binary.BigEndian.Uint16(hdr[:]))
	if _, err := io.ReadFull(c, b); err != nil {
		t.Fatal(err)
	}
	m := new(dns.Msg)
	if err := m.Unpack(b); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestTCPPipelinedAnswersOutOfOrder(t *testing.T) {
	release := make(chan struct{})
	echo := &echoResolver{}
	r := resolverFunc(func(ctx context.Context, q []byte) ([]byte, string, error) {
		m := new(dns.Msg)
		m.Unpack(q)
		if m.Question[0].Name == "slow.example." {
			select {
			case <-release:
			case <-ctx.Done():
				return nil, "", ctx.Err()
			}
		}
		ans, _, err := echo.Resolve(q, time.Time{})
		return ans, "up.test:853", err
	})
	_, addr, _ := start(t, r, nil)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	writeFrame(t, c, msg("slow.example", dns.TypeA, 1))
	writeFrame(t, c, msg("fast.example", dns.TypeA, 2))
	if first := readFrame(t, c); first.Id != 2 {
		t.Fatalf("first answer has id %d; the fast query should not wait for the slow one", first.Id)
	}
	close(release)
	if second := readFrame(t, c); second.Id != 1 || second.Question[0].Name != "slow.example." {
		t.Fatalf("second answer: %v", second)
	}
}

func TestTCPBadFrameClosesOnlyThatConnection(t *testing.T) {
	_, addr, obs := start(t, &echoResolver{}, nil)
	bad, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Close()
	good, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer good.Close()
	bad.Write([]byte{0, 5, 1, 2, 3, 4, 5})
	bad.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := bad.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("bad connection: read err %v, want EOF", err)
	}
	writeFrame(t, good, msg("still.example", dns.TypeA, 3))
	if a := readFrame(t, good); a.Id != 3 {
		t.Fatalf("good connection: %v", a)
	}
	if obs.snapshot().dropped[proxy.DropBadFrame] != 1 {
		t.Fatalf("dropped: %v", obs.snapshot().dropped)
	}
}

func TestTCPIdleTimeout(t *testing.T) {
	_, addr, _ := start(t, &echoResolver{}, func(c *proxy.Config) { c.TCPIdleTimeout = 50 * time.Millisecond })
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	writeFrame(t, c, msg("once.example", dns.TypeA, 1))
	readFrame(t, c)
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("read err %v, want EOF from the idle close", err)
	}
}

func TestTCPConnectionLimit(t *testing.T) {
	_, addr, obs := start(t, &echoResolver{}, func(c *proxy.Config) { c.TCPMaxConns = 1 })
	first, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	writeFrame(t, first, msg("first.example", dns.TypeA, 1))
	readFrame(t, first) // the first connection is being served
	second, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	second.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := second.Read(make([]byte, 1)); err == nil {
		t.Fatal("the connection over the limit was served")
	}
	if obs.snapshot().dropped[proxy.DropConnLimit] != 1 {
		t.Fatalf("dropped: %v", obs.snapshot().dropped)
	}
}

func TestShutdownAnswersQueriesInFlight(t *testing.T) {
	forEachPath(t, func(t *testing.T, wrap func(blocking) proxy.Resolver) {
		arrived := make(chan struct{}, 2)
		release := make(chan struct{})
		echo := &echoResolver{}
		r := resolverFunc(func(ctx context.Context, q []byte) ([]byte, string, error) {
			arrived <- struct{}{}
			<-release
			ans, _, err := echo.Resolve(q, time.Time{})
			return ans, "up.test:853", err
		})
		s, addr, _ := start(t, wrap(r), nil)
		replies := make(chan *dns.Msg, 2)
		for i, network := range []string{"udp", "tcp"} {
			go func() {
				c := &dns.Client{Net: network, Timeout: 10 * time.Second}
				a, _, err := c.Exchange(msg("inflight.example", dns.TypeA, uint16(i)), addr)
				if err != nil {
					a = nil
				}
				replies <- a
			}()
		}
		dottest.Await(t, arrived, "udp query")
		dottest.Await(t, arrived, "tcp query")
		stopped := make(chan error, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			stopped <- s.Shutdown(ctx)
		}()
		close(release)
		for range 2 {
			if a := dottest.Await(t, replies, "reply"); a == nil || a.Rcode != dns.RcodeSuccess {
				t.Fatalf("in-flight query not answered: %v", a)
			}
		}
		if err := dottest.Await(t, stopped, "shutdown"); err != nil {
			t.Fatal(err)
		}
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			t.Fatal("still accepting after shutdown")
		}
	})
}

func TestStartFailsOnBusyAddress(t *testing.T) {
	_, addr, _ := start(t, &echoResolver{}, nil)
	s, err := proxy.New(proxy.Config{Listen: []string{addr}, Resolver: &echoResolver{}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err == nil {
		s.Shutdown(context.Background())
		t.Fatal("Start succeeded on a busy address")
	}
}

func TestShutdownGivesUpAtItsDeadline(t *testing.T) {
	arrived := make(chan struct{}, 1)
	testOver := make(chan struct{})
	stuck := resolverFunc(func(ctx context.Context, _ []byte) ([]byte, string, error) {
		arrived <- struct{}{}
		select {
		case <-ctx.Done():
		case <-testOver:
		}
		return nil, "", errors.New("gave up")
	})
	s, addr, _ := start(t, stuck, func(c *proxy.Config) { c.QueryTimeout = time.Minute })
	t.Cleanup(func() { close(testOver) }) // runs before start's own cleanup
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	writeFrame(t, c, msg("stuck.example", dns.TypeA, 1))
	dottest.Await(t, arrived, "query at the resolver")
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // no patience at all: Shutdown must not wait for the minute-long query
	if err := s.Shutdown(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Shutdown = %v, want context.Canceled", err)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("the client connection is still open after a forced shutdown")
	}
}
