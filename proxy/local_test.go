package proxy_test

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/dotproxy/dotproxy/internal/dottest"
	"github.com/dotproxy/dotproxy/proxy"
	"github.com/miekg/dns"
)

// lines is a StatusSource that answers fixed lines.
type lines []string

func (l lines) StatusLines() []string { return l }

// chaos is a query for name in class CHAOS.
func chaos(name string, qtype uint16) *dns.Msg {
	m := msg(name, qtype, 0x5151)
	m.Question[0].Qclass = dns.ClassCHAOS
	return m
}

// TestStatusAnsweredOnLoopback: a loopback client asking over TCP gets the
// source's lines, one TXT record each, from the proxy itself; the resolver
// never sees the question, whatever the access list says.
func TestStatusAnsweredOnLoopback(t *testing.T) {
	r := &echoResolver{}
	want := lines{"dotproxy-status 1 ready", strings.Repeat("u ", 200)}
	_, addr, obs := start(t, r, func(c *proxy.Config) {
		c.Status = want
		c.Allow = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")} // loopback may not forward
	})
	for _, name := range []string{proxy.StatusName, "STATUS.DotProxy."} {
		for _, qtype := range []uint16{dns.TypeTXT, dns.TypeANY} {
			a := exchange(t, "tcp", addr, chaos(name, qtype))
			if a.Rcode != dns.RcodeSuccess || !a.Authoritative || a.Truncated || len(a.Answer) != len(want) {
				t.Fatalf("%s %s: %v", name, dns.TypeToString[qtype], a)
			}
			for i, rr := range a.Answer {
				if got := strings.Join(rr.(*dns.TXT).Txt, ""); got != want[i] || rr.Header().Class != dns.ClassCHAOS {
					t.Fatalf("record %d: %v", i, rr)
				}
			}
		}
	}
	if a := exchange(t, "tcp", addr, msg("e2e.example", dns.TypeA, 1)); a.Rcode != dns.RcodeRefused {
		t.Fatalf("a loopback client outside the access list was forwarded: %v", a)
	}
	if n := len(r.queries()); n != 0 {
		t.Fatalf("the resolver saw %d queries", n)
	}
	if got := obs.snapshot().rcodes[dns.RcodeSuccess]; got != 4 {
		t.Fatalf("%d answers counted, want 4", got)
	}
}

// TestStatusOverUDPIsTruncated: over UDP the answer, which can be large,
// is not given: TC sends the client to TCP, as dig and every stub do.
func TestStatusOverUDPIsTruncated(t *testing.T) {
	r := &echoResolver{}
	_, addr, obs := start(t, r, func(c *proxy.Config) { c.Status = lines{"x"} })
	for _, edns := range []bool{false, true} {
		q := chaos(proxy.StatusName, dns.TypeTXT)
		if edns {
			q.SetEdns0(4096, false)
		}
		a := exchange(t, "udp", addr, q)
		if !a.Truncated || a.Rcode != dns.RcodeSuccess || len(a.Answer) != 0 || (a.IsEdns0() != nil) != edns {
			t.Fatalf("EDNS %v: %v", edns, a)
		}
	}
	if n := len(r.queries()); n != 0 {
		t.Fatalf("the resolver saw %d queries", n)
	}
	if got := obs.snapshot().truncated; got != 2 {
		t.Fatalf("%d truncations counted, want 2", got)
	}
}

// TestLocalZoneOddQuestions: every other question in the zone is the
// proxy's to answer too, and none is forwarded: other names do not exist,
// other types have no records, other opcodes are not implemented. The same
// name in class IN is anyone's, and goes on.
func TestLocalZoneOddQuestions(t *testing.T) {
	r := &echoResolver{}
	_, addr, _ := start(t, r, func(c *proxy.Config) { c.Status = lines{"x"} })
	notify := chaos(proxy.StatusName, dns.TypeTXT)
	notify.Opcode = dns.OpcodeNotify
	tests := []struct {
		name  string
		q     *dns.Msg
		rcode int
	}{
		{"other name", chaos("version."+proxy.LocalZone, dns.TypeTXT), dns.RcodeNameError},
		{"name below status", chaos("a."+proxy.StatusName, dns.TypeTXT), dns.RcodeNameError},
		{"other type", chaos(proxy.StatusName, dns.TypeA), dns.RcodeSuccess},
		{"the zone's apex", chaos(proxy.LocalZone, dns.TypeTXT), dns.RcodeSuccess},
		{"zone transfer", chaos(proxy.LocalZone, dns.TypeAXFR), dns.RcodeSuccess},
		{"NOTIFY", notify, dns.RcodeNotImplemented},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, network := range []string{"udp", "tcp"} {
				a := exchange(t, network, addr, tt.q)
				if a.Rcode != tt.rcode || len(a.Answer) != 0 || a.Id != tt.q.Id {
					t.Fatalf("%s: %v", network, a)
				}
			}
		})
	}
	if n := len(r.queries()); n != 0 {
		t.Fatalf("the resolver saw %d queries", n)
	}
	in := msg(proxy.StatusName, dns.TypeTXT, 9) // class IN
	if a := exchange(t, "tcp", addr, in); a.Rcode != dns.RcodeSuccess || len(r.queries()) != 1 {
		t.Fatalf("class IN was not forwarded: %v", a)
	}
}

// TestStatusWithoutSourceIsRefused: a proxy given no StatusSource still
// keeps its zone to itself.
func TestStatusWithoutSourceIsRefused(t *testing.T) {
	r := &echoResolver{}
	_, addr, _ := start(t, r, nil)
	if a := exchange(t, "tcp", addr, chaos(proxy.StatusName, dns.TypeTXT)); a.Rcode != dns.RcodeRefused {
		t.Fatalf("%v", a)
	}
	if n := len(r.queries()); n != 0 {
		t.Fatalf("the resolver saw %d queries", n)
	}
}

// TestStatusTooLargeIsCut: lines past what one message holds are left
// out, whole and from the end, and TC says so; the message stays readable
// (miekg's client reads the frame's 16-bit length, so it cannot be over).
func TestStatusTooLargeIsCut(t *testing.T) {
	many := make(lines, 400)
	for i := range many {
		many[i] = fmt.Sprintf("%03d %s", i, strings.Repeat("z", 250))
	}
	_, addr, _ := start(t, &echoResolver{}, func(c *proxy.Config) { c.Status = many })
	a := exchange(t, "tcp", addr, chaos(proxy.StatusName, dns.TypeTXT))
	if !a.Truncated || len(a.Answer) == 0 || len(a.Answer) >= len(many) {
		t.Fatalf("TC %v, %d of %d lines", a.Truncated, len(a.Answer), len(many))
	}
	for i, rr := range a.Answer {
		if got := strings.Join(rr.(*dns.TXT).Txt, ""); got != many[i] {
			t.Fatalf("record %d holds %.20q…, want line %d", i, got, i)
		}
	}
}

// TestStatusRefusedOffLoopback asks from one of the host's own addresses
// that is not loopback, as a client on the network would: REFUSED over
// both transports, and the question never reaches the resolver.
func TestStatusRefusedOffLoopback(t *testing.T) {
	ip := dottest.HostAddr(t)
	r := &echoResolver{}
	_, addr, obs := start(t, r, func(c *proxy.Config) {
		c.Listen = []string{net.JoinHostPort(ip.String(), "0")}
		c.Status = lines{"secret"}
	})
	for _, network := range []string{"udp", "tcp"} {
		if a := exchange(t, network, addr, chaos(proxy.StatusName, dns.TypeTXT)); a.Rcode != dns.RcodeRefused || len(a.Answer) != 0 {
			t.Fatalf("%s: %v", network, a)
		}
	}
	if n := len(r.queries()); n != 0 {
		t.Fatalf("the resolver saw %d queries", n)
	}
	if got := obs.snapshot().refused; got != 2 {
		t.Fatalf("%d refusals counted, want 2", got)
	}
}

// TestMalformedStatusQueries: a status question that does not parse is
// answered FORMERR like any other, one with QR set is dropped, and
// neither goes anywhere.
func TestMalformedStatusQueries(t *testing.T) {
	r := &echoResolver{}
	_, addr, obs := start(t, r, func(c *proxy.Config) { c.Status = lines{"x"} })
	good, err := chaos(proxy.StatusName, dns.TypeTXT).Pack()
	if err != nil {
		t.Fatal(err)
	}
	twoQuestions := append([]byte(nil), good...)
	twoQuestions[5] = 2 // QDCOUNT 2, one question there
	cut := good[:len(good)-1]
	for name, q := range map[string][]byte{"two questions": twoQuestions, "cut in the class": cut} {
		reply := rawUDP(t, addr, q, 10*time.Second)
		if len(reply) < 12 || reply[3]&0xF != dns.RcodeFormatError {
			t.Fatalf("%s: %x, want FORMERR", name, reply)
		}
	}
	response := append([]byte(nil), good...)
	response[2] |= 0x80
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write(response); err != nil {
		t.Fatal(err)
	}
	select {
	case reason := <-obs.drops:
		if reason != proxy.DropResponse {
			t.Fatalf("dropped as %s", reason)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a status question with QR set was not dropped")
	}
	if n := len(r.queries()); n != 0 {
		t.Fatalf("the resolver saw %d queries", n)
	}
	if got := obs.snapshot().malformed; got != 2 {
		t.Fatalf("%d malformed counted, want 2", got)
	}
}
