package upstream_test

import (
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/dotproxy/dotproxy/dnsmsg"
	"github.com/dotproxy/dotproxy/internal/dottest"
	"github.com/dotproxy/dotproxy/upstream"
	"github.com/miekg/dns"
)

// subnetOf returns the ECS options of m, in order.
func subnetOf(m *dns.Msg) []*dns.EDNS0_SUBNET {
	opt := m.IsEdns0()
	if opt == nil {
		return nil
	}
	var s []*dns.EDNS0_SUBNET
	for _, o := range opt.Option {
		if e, ok := o.(*dns.EDNS0_SUBNET); ok {
			s = append(s, e)
		}
	}
	return s
}

// receivedQueries starts a DoT server that records every query as it
// arrived, and answers as DefaultHandler does, echoing the query's ECS
// options with SCOPE PREFIX-LENGTH scope when echo is set, as an ECS-aware
// resolver does (RFC 7871 §7.2.1).
func receivedQueries(t *testing.T, echo bool, scope uint8) (*dottest.Server, func() []*dns.Msg) {
	var mu sync.Mutex
	var got []*dns.Msg
	srv := dottest.Start(t, dottest.Options{
		Inspect: func(raw []byte) {
			m := new(dns.Msg)
			if err := m.Unpack(raw); err != nil {
				t.Errorf("the upstream got a query it cannot read: %v (%x)", err, raw)
				return
			}
			mu.Lock()
			got = append(got, m)
			mu.Unlock()
		},
		Handler: func(q *dns.Msg) *dns.Msg {
			a := dottest.DefaultHandler(q)
			if echo {
				for _, e := range subnetOf(q) {
					e := *e
					e.SourceScope = scope
					a.IsEdns0().Option = append(a.IsEdns0().Option, &e)
				}
			}
			return a
		},
	})
	return srv, func() []*dns.Msg {
		mu.Lock()
		defer mu.Unlock()
		return append([]*dns.Msg(nil), got...)
	}
}

// withSubnet packs an A query for name carrying opts in its OPT record.
func withSubnet(t *testing.T, name string, id uint16, opts ...dns.EDNS0) []byte {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), dns.TypeA)
	m.Id = id
	m.SetEdns0(1232, false)
	m.IsEdns0().Option = opts
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var (
	hidden       = dnsmsg.Rewrite{PadBlock: 128, Keepalive: true, HideClientSubnet: true}
	hiddenNoPad  = dnsmsg.Rewrite{Keepalive: true, HideClientSubnet: true}
	hideRewrites = map[string]dnsmsg.Rewrite{"padded": hidden, "unpadded": hiddenNoPad}
)

func TestClientSubnetReachesTheUpstreamHidden(t *testing.T) {
	subnets := map[string]*dns.EDNS0_SUBNET{
		"IPv4 /24": {Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 24, Address: net.IPv4(192, 0, 2, 0).To4()},
		"IPv6 /56": {Code: dns.EDNS0SUBNET, Family: 2, SourceNetmask: 56, Address: net.ParseIP("2001:db8:1:2300::")},
	}
	for name, ecs := range subnets {
		for rname, rw := range hideRewrites {
			t.Run(name+" "+rname, func(t *testing.T) {
				srv, received := receivedQueries(t, true, 0)
				p, _ := newPool(t, srv, func(c *upstream.Config) { c.Rewrite = rw })
				q := withSubnet(t, "hide.example", 7, ecs)
				ans, err := p.Exchange(q, within(5*time.Second))
				if err != nil {
					t.Fatal(err)
				}
				checkAnswer(t, q, ans)
				got := received()
				if len(got) != 1 {
					t.Fatalf("the upstream got %d queries", len(got))
				}
				sent := subnetOf(got[0])
				if len(sent) != 1 || sent[0].Family != ecs.Family || sent[0].SourceNetmask != 0 || sent[0].SourceScope != 0 {
					t.Fatalf("the upstream got ECS %v, want FAMILY %d /0", sent, ecs.Family)
				}
				// The client's own option back (RFC 7871 §7.3 checks it).
				var a dns.Msg
				if err := a.Unpack(ans); err != nil {
					t.Fatal(err)
				}
				back := subnetOf(&a)
				if len(back) != 1 || back[0].Family != ecs.Family || back[0].SourceNetmask != ecs.SourceNetmask ||
					!back[0].Address.Equal(ecs.Address) || back[0].SourceScope != 0 {
					t.Fatalf("the client got ECS %v, want its own %v", back, ecs)
				}
			})
		}
	}
}

// A resolver that does not implement ECS echoes nothing: the client gets no
// ECS option either (RFC 7871 §7.2.1), rather than one made up.
func TestClientSubnetNotEchoedNotAdded(t *testing.T) {
	srv, received := receivedQueries(t, false, 0)
	p, _ := newPool(t, srv, func(c *upstream.Config) { c.Rewrite = hidden })
	q := withSubnet(t, "noecho.example", 8, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 24, Address: net.IPv4(192, 0, 2, 0).To4()})
	ans, err := p.Exchange(q, within(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var a dns.Msg
	if err := a.Unpack(ans); err != nil {
		t.Fatal(err)
	}
	if s := subnetOf(&a); len(s) != 0 {
		t.Fatalf("the client got ECS %v from a resolver that sent none", s)
	}
	if s := subnetOf(received()[0]); len(s) != 1 || s[0].SourceNetmask != 0 {
		t.Fatalf("the upstream got %v", s)
	}
}

// With pass, the client's option goes as it came, and the resolver's echo,
// scope and all, comes back as the resolver sent it.
func TestClientSubnetPassedOn(t *testing.T) {
	srv, received := receivedQueries(t, true, 20)
	p, _ := newPool(t, srv, padded)
	ecs := &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 24, Address: net.IPv4(192, 0, 2, 0).To4()}
	q := withSubnet(t, "pass.example", 9, ecs)
	ans, err := p.Exchange(q, within(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	sent := subnetOf(received()[0])
	if len(sent) != 1 || sent[0].String() != ecs.String() {
		t.Fatalf("the upstream got %v, want %v", sent, ecs)
	}
	var a dns.Msg
	if err := a.Unpack(ans); err != nil {
		t.Fatal(err)
	}
	if back := subnetOf(&a); len(back) != 1 || back[0].SourceScope != 20 || back[0].SourceNetmask != 24 {
		t.Fatalf("the client got %v, want the resolver's echo", back)
	}
}

// dotproxy adds no ECS option of its own, whether it pads or not, to queries
// with EDNS or without, nor to its own probes.
func TestNoClientSubnetAdded(t *testing.T) {
	for rname, rw := range map[string]dnsmsg.Rewrite{"hide padded": hidden, "hide unpadded": hiddenNoPad,
		"pass padded": {PadBlock: 128, Keepalive: true}, "pass unpadded": {Keepalive: true}} {
		t.Run(rname, func(t *testing.T) {
			srv, received := receivedQueries(t, true, 0)
			p, _ := newPool(t, srv, func(c *upstream.Config) { c.Rewrite = rw })
			for i, q := range [][]byte{query(t, "plain.example", 1), withSubnet(t, "edns.example", 2)} {
				ans, err := p.Exchange(q, within(5*time.Second))
				if err != nil {
					t.Fatal(err)
				}
				var a dns.Msg
				if err := a.Unpack(ans); err != nil {
					t.Fatal(err)
				}
				if s := subnetOf(received()[i]); len(s) != 0 {
					t.Fatalf("query %d left with ECS %v", i, s)
				}
				if s := subnetOf(&a); len(s) != 0 {
					t.Fatalf("answer %d has ECS %v", i, s)
				}
			}
		})
	}
}

// A query whose subnet cannot be hidden never leaves: it fails at once with
// the rewrite's error, and the upstream sees nothing.
func TestUnhidableClientSubnetNeverLeaves(t *testing.T) {
	ecs := &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 24, Address: net.IPv4(192, 0, 2, 0).To4()}
	signed := new(dns.Msg)
	signed.SetQuestion("signed.example.", dns.TypeA)
	signed.SetEdns0(1232, false)
	signed.IsEdns0().Option = []dns.EDNS0{ecs}
	signed.SetTsig("key.", dns.HmacSHA256, 300, time.Now().Unix())
	signedWire, _, err := dns.TsigGenerate(signed, "c2VjcmV0c2VjcmV0", "", false)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		q    []byte
		want error
	}{
		{"TSIG-signed", signedWire, dnsmsg.ErrClientSubnetKept},
		{"trailing bytes", append(withSubnet(t, "trailing.example", 3, ecs), 0, 0, 0), dnsmsg.ErrClientSubnetKept},
		{"malformed: scope set", withSubnet(t, "scope.example", 4, &dns.EDNS0_LOCAL{Code: dns.EDNS0SUBNET, Data: []byte{0, 1, 24, 8, 192, 0, 2}}), dnsmsg.ErrBadClientSubnet},
		{"malformed: IPv4 /40", withSubnet(t, "v4.example", 5, &dns.EDNS0_LOCAL{Code: dns.EDNS0SUBNET, Data: []byte{0, 1, 40, 0, 192, 0, 2, 1, 0}}), dnsmsg.ErrBadClientSubnet},
	}
	srv, received := receivedQueries(t, true, 0)
	p, _ := newPool(t, srv, func(c *upstream.Config) {
		c.Rewrite = hidden
		c.WarmConns = 0
	})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := p.Exchange(tt.q, within(5*time.Second)); !errors.Is(err, tt.want) {
				t.Fatalf("%v, want %v", err, tt.want)
			}
		})
	}
	if n := len(received()); n != 0 || srv.Accepted() != 0 {
		t.Fatalf("the upstream got %d queries on %d connections", n, srv.Accepted())
	}
	if p.Stats().InFlight != 0 {
		t.Fatalf("%d queries left in flight", p.Stats().InFlight)
	}
}

// A zone transfer's query is hidden too, and its first message gets the
// client's option back.
func TestTransferClientSubnetHidden(t *testing.T) {
	var mu sync.Mutex
	var asked []*dns.EDNS0_SUBNET
	srv := dottest.Start(t, dottest.Options{Stream: func(q *dns.Msg) []*dns.Msg {
		mu.Lock()
		asked = subnetOf(q)
		mu.Unlock()
		soa, _ := dns.NewRR("zone.example. 60 IN SOA ns. host. 1 2 3 4 5")
		a := new(dns.Msg)
		a.SetReply(q)
		a.Answer = []dns.RR{soa, soa}
		a.SetEdns0(1232, false)
		a.IsEdns0().Option = append(a.IsEdns0().Option, subnetOf(q)[0])
		return []*dns.Msg{a}
	}})
	p, _ := newPool(t, srv, func(c *upstream.Config) { c.Rewrite = hidden })
	m := new(dns.Msg)
	m.SetAxfr("zone.example.")
	m.SetEdns0(1232, false)
	ecs := &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 2, SourceNetmask: 48, Address: net.ParseIP("2001:db8:5::")}
	m.IsEdns0().Option = []dns.EDNS0{ecs}
	q, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	var msgs []*dns.Msg
	if _, err := p.Transfer(q, within(5*time.Second), 5*time.Second, func(msg []byte) error {
		a := new(dns.Msg)
		if err := a.Unpack(msg); err != nil {
			return err
		}
		msgs = append(msgs, a)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(asked) != 1 || asked[0].SourceNetmask != 0 || asked[0].Family != 2 {
		t.Fatalf("the upstream got %v", asked)
	}
	if back := subnetOf(msgs[0]); len(msgs) != 1 || len(back) != 1 || back[0].String() != ecs.String() {
		t.Fatalf("the client got %v, want %v", back, ecs)
	}
}
