package main_test

import (
	"net"
	"testing"
	"time"

	"github.com/dotproxy/dotproxy/internal/dottest"
	"github.com/miekg/dns"
)

// zoneServer streams ZoneTransfer for AXFR, answers IXFR for serial
// ZoneSerial with the single SOA of an up-to-date client, refuses transfers
// of "refused.example.", and answers anything else as usual.
func zoneServer(t *testing.T) *dottest.Server {
	return dottest.Start(t, dottest.Options{Stream: func(q *dns.Msg) []*dns.Msg {
		switch {
		case q.Question[0].Name == "refused.example.":
			return nil
		case q.Question[0].Qtype == dns.TypeAXFR:
			return dottest.ZoneTransfer(q, 300, 50)
		case q.Question[0].Qtype == dns.TypeIXFR:
			full := dottest.ZoneTransfer(q, 0, 1)
			return full[:1]
		}
		return nil
	}, Handler: func(q *dns.Msg) *dns.Msg {
		if q.Question[0].Name == "refused.example." {
			a := new(dns.Msg)
			a.SetRcode(q, dns.RcodeRefused)
			return a
		}
		return dottest.DefaultHandler(q)
	}})
}

// A zone transfer through dotproxy reaches the client whole: every message
// until the closing SOA, read by miekg/dns's transfer client.
func TestZoneTransferThroughTheProxy(t *testing.T) {
	srv := zoneServer(t)
	p := startProxy(t, upstreamEnv(t, srv))

	m := new(dns.Msg)
	m.SetAxfr("zone.example.")
	tr := &dns.Transfer{DialTimeout: 5 * time.Second, ReadTimeout: 5 * time.Second}
	envs, err := tr.In(m, p.addr)
	if err != nil {
		t.Fatal(err)
	}
	records, messages := 0, 0
	for env := range envs {
		if env.Error != nil {
			t.Fatalf("after %d messages: %v", messages, env.Error)
		}
		messages++
		records += len(env.RR)
	}
	if records != 302 || messages != 7 {
		t.Fatalf("%d records in %d messages, want 302 in 7", records, messages)
	}

	// IXFR from an up-to-date client: the single SOA.
	m.SetIxfr("zone.example.", dottest.ZoneSerial, "ns.zone.example.", "admin.zone.example.")
	tr = &dns.Transfer{DialTimeout: 5 * time.Second, ReadTimeout: 5 * time.Second} // one connection each
	envs, err = tr.In(m, p.addr)
	if err != nil {
		t.Fatal(err)
	}
	for env := range envs {
		if env.Error != nil || len(env.RR) != 1 || env.RR[0].Header().Rrtype != dns.TypeSOA {
			t.Fatalf("IXFR: %v %v, want the one SOA", env.RR, env.Error)
		}
	}
}

// A resolver that refuses the transfer: the client sees its answer.
func TestZoneTransferRefusedByTheResolver(t *testing.T) {
	srv := zoneServer(t)
	p := startProxy(t, upstreamEnv(t, srv))
	m := new(dns.Msg)
	m.SetAxfr("refused.example.")
	a := exchangeTCP(t, p.addr, m)
	if a.Rcode != dns.RcodeRefused || a.Id != m.Id {
		t.Fatalf("rcode %s id %d, want REFUSED with the query's ID", dns.RcodeToString[a.Rcode], a.Id)
	}
}

// Over UDP a transfer gets TC, which sends every client to TCP; and the
// access list applies to transfers as to any query.
func TestZoneTransferOverUDPAndACL(t *testing.T) {
	srv := zoneServer(t)
	p := startProxy(t, upstreamEnv(t, srv))
	for _, qtype := range []uint16{dns.TypeAXFR, dns.TypeIXFR} {
		a := ask(t, "udp", p.addr, "zone.example.", qtype)
		if !a.Truncated || len(a.Answer) != 0 || a.Rcode != dns.RcodeSuccess {
			t.Errorf("%s over UDP: TC %v, %d records, rcode %s; want TC and none", dns.TypeToString[qtype], a.Truncated, len(a.Answer), dns.RcodeToString[a.Rcode])
		}
	}
	if srv.Queries() != 0 {
		t.Errorf("the resolver saw %d queries, want none", srv.Queries())
	}

	env := upstreamEnv(t, srv)
	env["DOTPROXY_ALLOW"] = "192.0.2.0/24"
	closed := startProxy(t, env)
	m := new(dns.Msg)
	m.SetAxfr("zone.example.")
	if a := exchangeTCP(t, closed.addr, m); a.Rcode != dns.RcodeRefused {
		t.Fatalf("a client outside DOTPROXY_ALLOW got %s", dns.RcodeToString[a.Rcode])
	}
}

func exchangeTCP(t *testing.T, addr string, m *dns.Msg) *dns.Msg {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	dc := &dns.Conn{Conn: c}
	if err := dc.WriteMsg(m); err != nil {
		t.Fatal(err)
	}
	a, err := dc.ReadMsg()
	if err != nil {
		t.Fatal(err)
	}
	return a
}
