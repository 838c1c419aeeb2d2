//go:build !race

// The race detector's sync.Pool drops items at random, so allocation counts
// mean something only without it; .ci/run runs these tests without -race.

package proxy_test

import (
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/dotproxy/dotproxy/dnsmsg"
	"github.com/dotproxy/dotproxy/proxy"
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
// buffers are reused), the resolver's answer aside.
func TestUDPAllocations(t *testing.T) {
	{
		for _, listen := range []string{"127.0.0.1:0", "0.0.0.0:0"} { // a wildcard reads the destination too
			wire, ans := allocQuery(t)
			s, _, _ := start(t, ans, func(c *proxy.Config) {
				c.Listen = []string{listen}
				c.Observer = proxy.NopObserver{}
			})
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
				t.Errorf("%s: %v allocations per query", listen, n)
			}
		}
	}
}

// TestTCPAllocations pins the proxy's cost per query on an open client TCP
// connection in steady state, as TestUDPAllocations does for datagrams:
// the query, its buffer and the reply's frame are reused.
func TestTCPAllocations(t *testing.T) {
	wire, ans := allocQuery(t)
	_, addr, _ := start(t, ans, func(c *proxy.Config) { c.Observer = proxy.NopObserver{} })
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
