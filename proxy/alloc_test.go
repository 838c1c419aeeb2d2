//go:build !race

// The race detector's sync.Pool drops items at random, so allocation counts
// mean something only without it; .ci/run runs these tests without -race.

package proxy_test

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/dotproxy/dotproxy/dnsmsg"
	"github.com/dotproxy/dotproxy/proxy"
	"github.com/dotproxy/dotproxy/ratelimit"
	"github.com/miekg/dns"
)

// fixedAnswer answers every query with the same bytes, its ID set to the
// query's: a resolver that costs nothing, so that what is measured is the
// proxy alone. One query at a time only.
type fixedAnswer []byte

func (a fixedAnswer) Resolve(q []byte, _ time.Time) ([]byte, fmt.Stringer, error) {
	dnsmsg.SetID(a, dnsmsg.ID(q))
	return a, named("fixed"), nil
}

// Start answers before it returns.
func (a fixedAnswer) Start(q []byte, deadline time.Time, fin proxy.Finisher) {
	fin.Resolved(a.Resolve(q, deadline))
}

func (a fixedAnswer) StartHeld(q []byte, deadline time.Time, fin proxy.Finisher) {
	a.Start(q, deadline, fin)
}

func (fixedAnswer) Flush() {}

// allocQuery returns the query the allocation tests send, ID 7, and a
// resolver that answers it.
func allocQuery(t *testing.T) ([]byte, fixedAnswer) {
	t.Helper()
	q := msg("alloc.example", dns.TypeA, 7)
	a := new(dns.Msg)
	a.SetReply(q)
	ans, err := a.Pack()
	if err != nil {
		t.Fatal(err)
	}
	wire, err := q.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return wire, fixedAnswer(ans)
}

// TestUDPAllocations pins the proxy's cost per UDP query in steady state: no
// allocation at all, from the datagram read to the reply written (query
// buffers are reused), the resolver's answer aside; with the rate limit on
// too, for a client within it.
func TestUDPAllocations(t *testing.T) {
	for _, limited := range []bool{false, true} {
		for _, listen := range []string{"127.0.0.1:0", "0.0.0.0:0"} { // a wildcard reads the destination too
			wire, ans := allocQuery(t)
			s, _, _ := startAlloc(t, ans, limited, func(c *proxy.Config) { c.Listen = []string{listen} })
			_, port, _ := net.SplitHostPort(s.Addrs()[0])
			c, err := net.Dial("udp", net.JoinHostPort("127.0.0.1", port))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			buf := make([]byte, 512)
			exchange := func() {
				if _, err := c.Write(wire); err != nil {
					t.Fatal(err)
				}
				c.SetReadDeadline(time.Now().Add(10 * time.Second))
				if n, err := c.Read(buf); err != nil || dnsmsg.ID(buf[:n]) != 7 {
					t.Fatalf("reply %x, %v", buf[:n], err)
				}
			}
			for range 100 { // the buffers exist by now
				exchange()
			}
			if n := testing.AllocsPerRun(1000, exchange); n != 0 {
				t.Errorf("%s, rate limit %v: %v allocations per query", listen, limited, n)
			}
		}
	}
}

// startAlloc starts a proxy for an allocation test, with no observer and,
// if limited, a rate limit that loopback clients are under, and high
// enough never to refuse one.
func startAlloc(t *testing.T, r proxy.Resolver, limited bool, mod func(*proxy.Config)) (*proxy.Server, string, *counter) {
	cfg := func(c *proxy.Config) {
		c.Observer = proxy.NopObserver{}
		if mod != nil {
			mod(c)
		}
	}
	if !limited {
		return start(t, r, cfg)
	}
	return startLimiting(t, r, func(c *proxy.Config) {
		cfg(c)
		c.RateLimit = ratelimit.Config{Rate: ratelimit.MaxRate, Burst: ratelimit.MaxBurst}
	})
}

// TestOverLimitUDPAllocations pins the cost of a datagram over its client's
// rate limit at no allocation: a flood that the limiter drops costs the
// proxy no garbage. Each round sends one query over the limit from one
// client, then one from an exempt client, whose answer, read from the
// same socket after it, says the first has been through.
func TestOverLimitUDPAllocations(t *testing.T) {
	wire, ans := allocQuery(t)
	_, addr, _ := startLimiting(t, ans, func(c *proxy.Config) {
		c.Observer = proxy.NopObserver{}
		c.RateLimit = ratelimit.Config{Rate: ratelimit.MinRate, Burst: 1,
			Exempt: []netip.Prefix{netip.MustParsePrefix("127.0.0.3/32")}} // Slip 0: drop every one
	})
	noisy, quiet := dialFrom(t, "127.0.0.2", addr), dialFrom(t, "127.0.0.3", addr)
	buf := make([]byte, 512)
	if _, err := noisy.Write(wire); err != nil { // its burst
		t.Fatal(err)
	}
	noisy.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := noisy.Read(buf); err != nil {
		t.Fatal(err)
	}
	round := func() {
		if _, err := noisy.Write(wire); err != nil {
			t.Fatal(err)
		}
		if _, err := quiet.Write(wire); err != nil {
			t.Fatal(err)
		}
		quiet.SetReadDeadline(time.Now().Add(10 * time.Second))
		if n, err := quiet.Read(buf); err != nil || dnsmsg.ID(buf[:n]) != 7 {
			t.Fatalf("reply %x, %v", buf[:n], err)
		}
	}
	for range 100 {
		round()
	}
	if n := testing.AllocsPerRun(1000, round); n != 0 {
		t.Errorf("%v allocations per round of a query dropped and one answered", n)
	}
	// Any reply to it would have been sent before the last answer to
	// the exempt client, and be waiting by now.
	rc, err := noisy.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	n := -1
	rc.Read(func(fd uintptr) bool {
		n, _, _ = syscall.Recvfrom(int(fd), buf, syscall.MSG_DONTWAIT)
		return true
	})
	if n >= 0 {
		t.Fatalf("the client over its limit got a reply: %x", buf[:n])
	}
}

// TestTCPAllocations pins the proxy's cost per query on an open client TCP
// connection in steady state, as TestUDPAllocations does for datagrams:
// the query, its buffer and the reply's frame are reused; with the rate
// limit on too.
func TestTCPAllocations(t *testing.T) {
	for _, limited := range []bool{false, true} {
		t.Run(fmt.Sprintf("rate limit %v", limited), func(t *testing.T) { tcpAllocations(t, limited) })
	}
}

func tcpAllocations(t *testing.T, limited bool) {
	wire, ans := allocQuery(t)
	_, addr, _ := startAlloc(t, ans, limited, nil)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	frame := append([]byte{byte(len(wire) >> 8), byte(len(wire))}, wire...)
	buf := make([]byte, 512)
	exchange := func() {
		if _, err := c.Write(frame); err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.ReadFull(c, buf[:2]); err != nil {
			t.Fatal(err)
		}
		n := int(buf[0])<<8 | int(buf[1])
		if _, err := io.ReadFull(c, buf[:n]); err != nil || dnsmsg.ID(buf[:n]) != 7 {
			t.Fatalf("reply %x, %v", buf[:n], err)
		}
	}
	for range 100 { // the buffers exist by now
		exchange()
	}
	if n := testing.AllocsPerRun(1000, exchange); n != 0 {
		t.Errorf("%v allocations per TCP query", n)
	}
}
