package proxy

import (
	"log/slog"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dotproxy/dotproxy/dnsmsg"
	"github.com/miekg/dns"
)

// counted is echo that counts the queries it was given.
type counted struct {
	echo
	n atomic.Int64
}

func (c *counted) Start(q []byte, deadline time.Time, fin Finisher) {
	c.n.Add(1)
	c.echo.Start(q, deadline, fin)
}

type oneLine struct{}

func (oneLine) StatusLines() []string { return []string{"ok"} }

// TestWhoIsLocal pins who gets the status: loopback in every spelling,
// and no one else, over either transport; and none of it is forwarded.
func TestWhoIsLocal(t *testing.T) {
	r := &counted{}
	s, err := New(Config{Listen: []string{"127.0.0.1:0"}, Resolver: r, Status: oneLine{}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	m := new(dns.Msg)
	m.SetQuestion(StatusName, dns.TypeTXT)
	m.Question[0].Qclass = dns.ClassCHAOS
	q, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		client string
		local  bool
	}{
		{"127.0.0.1", true},
		{"127.1.2.3", true},
		{"::1", true},
		{"::ffff:127.0.0.1", true},
		{"192.0.2.1", false},
		{"10.0.0.1", false},
		{"172.17.0.1", false}, // Docker's bridge gateway: a published port's clients
		{"::ffff:192.0.2.1", false},
		{"fe80::1", false},
		{"::", false},
		{"0.0.0.0", false},
	}
	for _, tt := range tests {
		for _, tr := range []Transport{UDP, TCP} {
			reply := handle(s, tr, netip.MustParseAddr(tt.client), q)
			var rcode, want int = dnsmsg.Rcode(reply), dnsmsg.RcodeSuccess
			if !tt.local {
				want = dnsmsg.RcodeRefused
			}
			if rcode != want {
				t.Errorf("%s over %s: %s, want %s", tt.client, tr, dnsmsg.RcodeName(rcode), dnsmsg.RcodeName(want))
			}
		}
	}
	if n := r.n.Load(); n != 0 {
		t.Fatalf("%d status queries were forwarded", n)
	}
}

// BenchmarkCheck measures check on a usual query, which now also asks
// whether the query is about the proxy itself: one compare of its class.
func BenchmarkCheck(b *testing.B) {
	s, err := New(Config{Listen: []string{"127.0.0.1:0"}, Resolver: echo{}, Status: oneLine{}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	q, err := dnsmsg.NewQuery(7, "www.example.org", dnsmsg.TypeNS)
	if err != nil {
		b.Fatal(err)
	}
	client := netip.MustParseAddr("192.0.2.1")
	now := time.Now()
	var parsed dnsmsg.Query
	b.ReportAllocs()
	for b.Loop() {
		if _, done := s.check(UDP, client, q, now, &parsed); done {
			b.Fatal("a usual query went no further")
		}
	}
}
