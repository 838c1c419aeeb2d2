package main_test

import (
	"net"
	"sync"
	"testing"
	"time"

	"github.com/dotproxy/dotproxy/internal/dottest"
	"github.com/miekg/dns"
)

// ecsServer is a DoT server that records the ECS options of every query it
// gets and echoes them, as an ECS-aware resolver does.
func ecsServer(t *testing.T) (*dottest.Server, func() [][]*dns.EDNS0_SUBNET) {
	var mu sync.Mutex
	var got [][]*dns.EDNS0_SUBNET
	srv := dottest.Start(t, dottest.Options{Handler: func(q *dns.Msg) *dns.Msg {
		a := dottest.DefaultHandler(q)
		var subnets []*dns.EDNS0_SUBNET
		if opt := q.IsEdns0(); opt != nil {
			for _, o := range opt.Option {
				if e, ok := o.(*dns.EDNS0_SUBNET); ok {
					subnets = append(subnets, e)
					a.IsEdns0().Option = append(a.IsEdns0().Option, e)
				}
			}
		}
		mu.Lock()
		got = append(got, subnets)
		mu.Unlock()
		return a
	}})
	return srv, func() [][]*dns.EDNS0_SUBNET {
		mu.Lock()
		defer mu.Unlock()
		return append([][]*dns.EDNS0_SUBNET(nil), got...)
	}
}

// askWithSubnet asks name over network with ecs in the query's OPT record
// and returns the answer's ECS options.
func askWithSubnet(t *testing.T, network, addr, name string, ecs dns.EDNS0) (*dns.Msg, []*dns.EDNS0_SUBNET) {
	t.Helper()
	q := new(dns.Msg)
	q.SetQuestion(dns.Fqdn(name), dns.TypeA)
	q.SetEdns0(1232, false)
	q.IsEdns0().Option = []dns.EDNS0{ecs}
	c := &dns.Client{Net: network, Timeout: 10 * time.Second}
	a, _, err := c.Exchange(q, addr)
	if err != nil {
		t.Fatalf("%s %s: %v", network, name, err)
	}
	var back []*dns.EDNS0_SUBNET
	if opt := a.IsEdns0(); opt != nil {
		for _, o := range opt.Option {
			if e, ok := o.(*dns.EDNS0_SUBNET); ok {
				back = append(back, e)
			}
		}
	}
	return a, back
}

// By default the client's subnet reaches the resolver as /0 and comes back
// to the client as it sent it; with pass it goes as it came.
func TestClientSubnetThroughTheProxy(t *testing.T) {
	v4 := &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 24, Address: net.IPv4(192, 0, 2, 0).To4()}
	for _, policy := range []string{"", "hide", "pass"} {
		srv, received := ecsServer(t)
		env := upstreamEnv(t, srv)
		if policy != "" {
			env["DOTPROXY_CLIENT_SUBNET"] = policy
		}
		p := startProxy(t, env)
		for i, network := range []string{"udp", "tcp"} {
			a, back := askWithSubnet(t, network, p.addr, "ecs.example", v4)
			if a.Rcode != dns.RcodeSuccess || len(back) != 1 || back[0].String() != v4.String() {
				t.Fatalf("policy %q %s: rcode %d, ECS back %v, want the client's %v", policy, network, a.Rcode, back, v4)
			}
			sent := received()[i]
			want := uint8(0)
			if policy == "pass" {
				want = 24
			}
			if len(sent) != 1 || sent[0].SourceNetmask != want || sent[0].Family != 1 {
				t.Fatalf("policy %q %s: the resolver got ECS %v, want FAMILY 1 /%d", policy, network, sent, want)
			}
		}
		p.stop(t)
	}
}

// A malformed option is answered FORMERR by dotproxy, and never reaches the
// resolver, whose health does not suffer: the next query goes through.
func TestMalformedClientSubnetAnsweredByTheProxy(t *testing.T) {
	srv, received := ecsServer(t)
	p := startProxy(t, upstreamEnv(t, srv))
	bad := &dns.EDNS0_LOCAL{Code: dns.EDNS0SUBNET, Data: []byte{0, 1, 24, 0, 192, 0, 2, 0}} // an octet too many
	for range 10 {
		if a, _ := askWithSubnet(t, "udp", p.addr, "bad.example", bad); a.Rcode != dns.RcodeFormatError {
			t.Fatalf("rcode %s, want FORMERR", dns.RcodeToString[a.Rcode])
		}
	}
	if n := len(received()); n != 0 {
		t.Fatalf("the resolver got %d queries", n)
	}
	if a := ask(t, "udp", p.addr, "good.example", dns.TypeA); a.Rcode != dns.RcodeSuccess || len(a.Answer) != 1 {
		t.Fatalf("the next query: %v", a)
	}
}
