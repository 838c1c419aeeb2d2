package route_test

import (
	"encoding/binary"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/dotproxy/dotproxy/balance"
	"github.com/dotproxy/dotproxy/dnsmsg"
	"github.com/dotproxy/dotproxy/internal/dottest"
	"github.com/dotproxy/dotproxy/route"
	"github.com/dotproxy/dotproxy/upstream"
	"github.com/miekg/dns"
)

// These tests run a Router over balancers over real upstream.Pools, each
// talking DNS over TLS to servers on loopback, as main wires them: one
// group of servers per route, each group answering so that the answer says
// which group it came from.

// The routes main would build from
//
//	DOTPROXY_ROUTE_CORP_DOMAINS=corp.example,10.in-addr.arpa
//	DOTPROXY_ROUTE_LAB_DOMAINS=lab.corp.example,168.192.in-addr.arpa
var suffixes = map[string][]string{
	"corp": {"corp.example", "10.in-addr.arpa"},
	"lab":  {"lab.corp.example", "168.192.in-addr.arpa"},
}

// zoneRecords is how many A records a group's servers put in a zone
// transfer: the count tells which group passed a transfer on.
var zoneRecords = map[string]int{"default": 3, "corp": 5, "lab": 7}

// group is the DoT servers of one route and the balancer over their pools.
type group struct {
	servers []*dottest.Server
	bal     *balance.Balancer
	health  chan bool // each HealthChanged of any of its upstreams
}

// newGroup starts n servers that answer every question with a TXT record
// holding name, and zone transfers with zoneRecords[name] records, and
// balances over them with policy.
func newGroup(t *testing.T, name string, n int, policy balance.Policy) *group {
	t.Helper()
	ca := dottest.NewCA(t)
	leaf := ca.Leaf(t, "dns.test")
	g := &group{health: make(chan bool, 64)}
	var members []balance.Member
	for range n {
		srv := dottest.Start(t, dottest.Options{
			Cert: &leaf,
			Handler: func(q *dns.Msg) *dns.Msg {
				a := new(dns.Msg)
				a.SetReply(q)
				owner := "."
				if len(q.Question) > 0 {
					owner = q.Question[0].Name
				}
				a.Answer = []dns.RR{&dns.TXT{
					Hdr: dns.RR_Header{Name: owner, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60},
					Txt: []string{name},
				}}
				return a
			},
			Stream: func(q *dns.Msg) []*dns.Msg {
				if len(q.Question) == 0 || q.Question[0].Qtype != dns.TypeAXFR {
					return nil
				}
				return dottest.ZoneTransfer(q, zoneRecords[name], 4)
			},
		})
		g.servers = append(g.servers, srv)
		p, err := upstream.New(upstream.Config{
			Addr: srv.Addr, ServerName: "dns.test", RootCAs: ca.Pool,
			Logger: slog.New(slog.DiscardHandler),
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Close() })
		members = append(members, balance.Member{Upstream: p, Observer: healthTo(g.health)})
	}
	bal, err := balance.New(members, balance.Config{
		Policy:          policy,
		MaxRetries:      1,
		ProbeTimeout:    200 * time.Millisecond,
		ProbeMaxBackoff: 200 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bal.Close() })
	g.bal = bal
	return g
}

// healthTo is a balance.Observer that sends each health change to ch.
type healthTo chan bool

func (h healthTo) HealthChanged(up bool) { h <- up }
func (healthTo) Retried()                {}
func (healthTo) Hedged()                 {}
func (healthTo) String() string          { return "upstream" }

// routed is a Router over three groups: corp, lab and the default.
type routed struct {
	router *route.Router
	groups map[string]*group
}

func newRouted(t *testing.T) *routed {
	t.Helper()
	r := &routed{groups: map[string]*group{
		"default": newGroup(t, "default", 2, balance.LeastOutstanding),
		"corp":    newGroup(t, "corp", 2, balance.Failover),
		"lab":     newGroup(t, "lab", 1, balance.RoundRobin),
	}}
	var routes []route.Route
	for _, name := range []string{"corp", "lab"} {
		routes = append(routes, route.Route{Name: name, Suffixes: suffixes[name], Resolver: r.groups[name].bal})
	}
	router, err := route.New(r.groups["default"].bal, routes)
	if err != nil {
		t.Fatal(err)
	}
	r.router = router
	return r
}

// waiter is the Finisher of one query, which the test waits for.
type waiter chan result

type result struct {
	answer []byte
	err    error
}

func (w waiter) Resolved(answer []byte, _ fmt.Stringer, err error) { w <- result{answer, err} }

// ask sends wire through the Router, held or not, and returns the group
// named in the answer, or the error.
func (r *routed) ask(t *testing.T, wire []byte, held bool) (string, error) {
	t.Helper()
	w := make(waiter, 1)
	deadline := time.Now().Add(5 * time.Second)
	if held {
		r.router.StartHeld(wire, deadline, w)
		r.router.Flush()
	} else {
		r.router.Start(wire, deadline, w)
	}
	res := <-w
	if res.err != nil {
		return "", res.err
	}
	var m dns.Msg
	if err := m.Unpack(res.answer); err != nil {
		t.Fatal(err)
	}
	if len(m.Answer) != 1 {
		t.Fatalf("answer %v", &m)
	}
	return m.Answer[0].(*dns.TXT).Txt[0], nil
}

func packed(t *testing.T, name string, qtype uint16) []byte {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Each query reaches the servers of its own route, and only those, held
// for Flush or not.
func TestRoutesReachTheirOwnUpstreams(t *testing.T) {
	r := newRouted(t)
	noQuestion := packed(t, "corp.example.", dns.TypeA)[:dnsmsg.HeaderLen]
	binary.BigEndian.PutUint16(noQuestion[4:], 0)
	tests := []struct {
		what string
		wire []byte
		want string
	}{
		{"a name under a route", packed(t, "www.corp.example.", dns.TypeA), "corp"},
		{"the suffix itself", packed(t, "corp.example.", dns.TypeSOA), "corp"},
		{"the longest suffix wins", packed(t, "db.lab.corp.example.", dns.TypeA), "lab"},
		{"label boundary", packed(t, "evilcorp.example.", dns.TypeA), "default"},
		{"case", packed(t, "WWW.CoRp.ExAmPlE.", dns.TypeA), "corp"},
		{"case, longer suffix", packed(t, "x.LAB.Corp.example.", dns.TypeA), "lab"},
		{"reverse zone", packed(t, "4.3.2.10.in-addr.arpa.", dns.TypePTR), "corp"},
		{"another reverse zone", packed(t, "1.0.168.192.in-addr.arpa.", dns.TypePTR), "lab"},
		{"a reverse zone of no route", packed(t, "1.0.0.127.in-addr.arpa.", dns.TypePTR), "default"},
		{"no route", packed(t, "www.example.org.", dns.TypeA), "default"},
		{"the root", packed(t, ".", dns.TypeNS), "default"},
		{"no question", noQuestion, "default"},
	}
	for _, tt := range tests {
		for _, held := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s held=%v", tt.what, held), func(t *testing.T) {
				got, err := r.ask(t, tt.wire, held)
				if err != nil || got != tt.want {
					t.Fatalf("answered by %q (%v), want %q", got, err, tt.want)
				}
			})
		}
	}
}

// A zone transfer follows its route, as a query does.
func TestTransfersFollowTheRoute(t *testing.T) {
	r := newRouted(t)
	for zone, want := range map[string]string{
		"lab.corp.example.":     "lab",
		"corp.example.":         "corp",
		"10.in-addr.arpa.":      "corp",
		"example.org.":          "default",
		"168.192.in-addr.arpa.": "lab",
	} {
		t.Run(zone, func(t *testing.T) {
			m := new(dns.Msg)
			m.SetAxfr(zone)
			wire, err := m.Pack()
			if err != nil {
				t.Fatal(err)
			}
			records := 0
			_, err = r.router.Transfer(wire, time.Now().Add(5*time.Second), 5*time.Second, func(msg []byte) error {
				var a dns.Msg
				if err := a.Unpack(msg); err != nil {
					return err
				}
				for _, rr := range a.Answer {
					if rr.Header().Rrtype == dns.TypeA {
						records++
					}
				}
				return nil
			})
			if err != nil || records != zoneRecords[want] {
				t.Fatalf("%d records (%v), want %d from %s", records, err, zoneRecords[want], want)
			}
		})
	}
}

// One route's upstream down marks that upstream down in that route's
// balancer alone: the other routes' upstreams stay up, and their queries
// are answered as before.
func TestEachRouteHasItsOwnHealth(t *testing.T) {
	r := newRouted(t)
	lab := r.groups["lab"]
	lab.servers[0].Close()
	if _, err := r.ask(t, packed(t, "db.lab.corp.example.", dns.TypeA), false); err == nil {
		t.Fatal("a query to the route whose only upstream is down was answered")
	}
	select {
	case up := <-lab.health:
		if up {
			t.Fatal("lab's upstream came up")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("lab's upstream not marked down")
	}
	for name, qname := range map[string]string{"corp": "www.corp.example.", "default": "www.example.org."} {
		for range 5 {
			if got, err := r.ask(t, packed(t, qname, dns.TypeA), false); err != nil || got != name {
				t.Fatalf("%s answered by %q (%v), want %s", qname, got, err, name)
			}
		}
		select {
		case up := <-r.groups[name].health:
			t.Fatalf("%s's health changed (up %v) with lab's upstream down", name, up)
		default:
		}
	}
}
