package proxy_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/dotproxy/dotproxy/dnsmsg"
	"github.com/dotproxy/dotproxy/internal/dottest"
	"github.com/dotproxy/dotproxy/proxy"
	"github.com/miekg/dns"
)

// The memory held for queries in flight is bounded: with a resolver that
// answers nothing, queries past the budget are dropped over UDP and refused
// over TCP, counted, and the budget is whole again once the held ones end.
func TestMemoryBudgetBoundsQueriesInFlight(t *testing.T) {
	const held = 10
	gate := make(chan struct{})
	arrived := make(chan struct{}, held+1)
	r := resolverFunc(func(ctx context.Context, q []byte) ([]byte, string, error) {
		arrived <- struct{}{}
		select {
		case <-gate:
		case <-ctx.Done():
		}
		a := append([]byte(nil), q...)
		a[2] |= 0x80
		return a, "up", nil
	})
	query := func(id uint16) []byte {
		b, err := msg("held.example", dns.TypeA, id).Pack()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	size := len(query(0))
	_, addr, obs := start(t, r, func(c *proxy.Config) { c.MaxInFlightBytes = held * proxy.QueryCost(size) })

	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := range held {
		if _, err := c.Write(query(uint16(100 + i))); err != nil {
			t.Fatal(err)
		}
		dottest.Await(t, arrived, "a held query at the resolver")
	}
	if _, err := c.Write(query(999)); err != nil {
		t.Fatal(err)
	}
	if got := dottest.Await(t, obs.drops, "the query over the budget to be dropped"); got != proxy.DropOverload {
		t.Fatalf("dropped as %q, want %q", got, proxy.DropOverload)
	}
	if a := exchange(t, "tcp", addr, msg("tcp.example", dns.TypeA, 7)); a.Rcode != dns.RcodeRefused || a.Id != 7 {
		t.Fatalf("TCP query over the budget: id %d rcode %s, want 7 REFUSED", a.Id, dns.RcodeToString[a.Rcode])
	}
	if got := dottest.Await(t, obs.drops, "the TCP query over the budget to be counted"); got != proxy.DropOverload {
		t.Fatalf("dropped as %q, want %q", got, proxy.DropOverload)
	}

	close(gate)
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 512)
	for range held {
		if _, err := c.Read(buf); err != nil {
			t.Fatalf("a held query got no answer: %v", err)
		}
	}
	// The budget is whole again: as many go through as before.
	for i := range held {
		if reply := rawUDP(t, addr, query(uint16(200+i)), 10*time.Second); reply == nil || dnsmsg.ID(reply) != uint16(200+i) {
			t.Fatalf("query %d after the release got no answer", i)
		}
	}
	if n := len(pendingDrops(obs)); n != 0 {
		t.Fatalf("%d more drops after the release", n)
	}
}

// pendingDrops drains the drops seen so far without waiting.
func pendingDrops(obs *counter) []proxy.DropReason {
	var out []proxy.DropReason
	for {
		select {
		case r := <-obs.drops:
			out = append(out, r)
		default:
			return out
		}
	}
}
