//go:build !race

// The race detector's sync.Pool drops items at random, so allocation counts
// mean something only without it; .ci/run runs these tests without -race.

package route_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/dotproxy/dotproxy/dnsmsg"
	"github.com/dotproxy/dotproxy/proxy"
	"github.com/dotproxy/dotproxy/route"
	"github.com/miekg/dns"
)

// fixedAnswer answers every query at once with the same bytes, its ID set
// to the query's: a resolver that costs nothing, so that what is measured
// is the proxy and the router. One query at a time only.
type fixedAnswer []byte

func (a fixedAnswer) Start(q []byte, _ time.Time, fin route.Finisher) {
	dnsmsg.SetID(a, dnsmsg.ID(q))
	fin.Resolved(a, nil, nil)
}

func (a fixedAnswer) StartHeld(q []byte, deadline time.Time, fin route.Finisher) {
	a.Start(q, deadline, fin)
}

func (fixedAnswer) Flush() {}

// answerOf returns an answer to any query that names group in a TXT record.
func answerOf(t *testing.T, group string) fixedAnswer {
	t.Helper()
	a := new(dns.Msg)
	a.SetQuestion("x.", dns.TypeTXT)
	a.Response = true
	a.Answer = []dns.RR{&dns.TXT{Hdr: dns.RR_Header{Name: "x.", Rrtype: dns.TypeTXT, Class: dns.ClassINET}, Txt: []string{group}}}
	b, err := a.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestRoutedUDPAllocations pins the cost of routing on the proxy's path:
// with routes configured, a UDP query in steady state still costs no
// allocation, from the datagram read through the choice of its route to
// the reply written, whichever route it takes.
func TestRoutedUDPAllocations(t *testing.T) {
	answers := map[string]fixedAnswer{"default": answerOf(t, "default"), "corp": answerOf(t, "corp"), "lab": answerOf(t, "lab")}
	router, err := route.New(answers["default"], []route.Route{
		{Name: "corp", Suffixes: []string{"corp.example", "10.in-addr.arpa"}, Resolver: answers["corp"]},
		{Name: "lab", Suffixes: []string{"lab.corp.example"}, Resolver: answers["lab"]},
	})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := proxy.New(proxy.Config{
		Listen:   []string{"127.0.0.1:0"},
		Resolver: router,
		Observer: proxy.NopObserver{},
		Logger:   slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	c, err := net.Dial("udp", srv.Addrs()[0])
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 512)
	for name, group := range map[string]string{
		"alloc.example.":          "default",
		"alloc.corp.example.":     "corp",
		"4.3.2.10.in-addr.arpa.":  "corp",
		"alloc.LAB.corp.example.": "lab",
	} {
		q := new(dns.Msg)
		q.SetQuestion(name, dns.TypeA)
		q.Id = 7
		wire, err := q.Pack()
		if err != nil {
			t.Fatal(err)
		}
		exchange := func() {
			if _, err := c.Write(wire); err != nil {
				t.Fatal(err)
			}
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			n, err := c.Read(buf)
			if err != nil || dnsmsg.ID(buf[:n]) != 7 || !bytes.Equal(buf[2:n], answers[group][2:]) {
				t.Fatalf("%s: reply %x, %v; want %s's", name, buf[:n], err, group)
			}
		}
		for range 100 { // the buffers exist by now
			exchange()
		}
		if n := testing.AllocsPerRun(1000, exchange); n != 0 {
			t.Errorf("%s: %v allocations per query", name, n)
		}
	}
}

// nothing ends no query: the Router's own cost is what is measured.
type nothing struct{}

func (nothing) Start([]byte, time.Time, route.Finisher)     {}
func (nothing) StartHeld([]byte, time.Time, route.Finisher) {}
func (nothing) Flush()                                      {}

// TestRouterAllocations pins the Router's own cost: choosing a route,
// whatever the query holds, allocates nothing.
func TestRouterAllocations(t *testing.T) {
	var routes []route.Route
	for i := range 50 {
		routes = append(routes, route.Route{Name: fmt.Sprint(i), Suffixes: []string{fmt.Sprintf("z%d.corp.example", i)}, Resolver: nothing{}})
	}
	r, err := route.New(nothing{}, routes)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Hour)
	for _, wire := range [][]byte{
		packed(t, "host.z7.CORP.example.", dns.TypeA),
		packed(t, "www.example.org.", dns.TypeA),
		packed(t, "x.x.x.x.x.x.x.x.x.x.x.x.x.x.x.x.x.x.x.x.x.x.corp.example.", dns.TypeA),
		{0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xC0, 12},
		nil,
	} {
		if n := testing.AllocsPerRun(1000, func() {
			r.Start(wire, deadline, nil)
			r.StartHeld(wire, deadline, nil)
			r.Flush()
		}); n != 0 {
			t.Errorf("%x: %v allocations per query", wire, n)
		}
	}
}
