package dnsmsg_test

import (
	"errors"
	"testing"

	"github.com/dotproxy/dotproxy/dnsmsg"
	"github.com/miekg/dns"
)

func soa(serial uint32) dns.RR {
	return &dns.SOA{Hdr: dns.RR_Header{Name: "zone.example.", Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: 60},
		Ns: "ns.zone.example.", Mbox: "admin.zone.example.", Serial: serial, Refresh: 1, Retry: 1, Expire: 1, Minttl: 1}
}

func a(name string) dns.RR {
	return &dns.A{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: []byte{192, 0, 2, 1}}
}

// xfrMessages packs the records of a transfer's answer into messages of
// per records each, the first with the question.
func xfrMessages(t testing.TB, qtype uint16, per int, rcode int, rrs ...dns.RR) [][]byte {
	t.Helper()
	q := new(dns.Msg)
	q.SetQuestion("zone.example.", qtype)
	var out [][]byte
	for i := 0; i == 0 || i < len(rrs); i += per {
		m := new(dns.Msg)
		m.SetReply(q)
		m.Rcode = rcode
		m.Compress = true
		if i > 0 {
			m.Question = nil
		}
		m.Answer = rrs[i:min(i+per, len(rrs))]
		out = append(out, pack(t, m))
	}
	return out
}

func TestTransferEnd(t *testing.T) {
	cases := []struct {
		name  string
		qtype uint16
		per   int
		rcode int
		rrs   []dns.RR
		want  error
	}{
		{"AXFR in one message", dns.TypeAXFR, 10, 0, []dns.RR{soa(5), a("a.zone.example."), soa(5)}, nil},
		{"AXFR in many", dns.TypeAXFR, 1, 0, []dns.RR{soa(5), a("a.zone.example."), a("b.zone.example."), soa(5)}, nil},
		{"AXFR refused", dns.TypeAXFR, 1, dns.RcodeRefused, nil, nil},
		{"IXFR up to date", dns.TypeIXFR, 1, 0, []dns.RR{soa(5)}, nil},
		{"IXFR as a full zone", dns.TypeIXFR, 2, 0, []dns.RR{soa(5), a("a.zone.example."), a("b.zone.example."), soa(5)}, nil},
		// A first message of one SOA alone says "up to date" (RFC 1995
		// §2), so an incremental answer puts more in it.
		{"IXFR incremental", dns.TypeIXFR, 2, 0, []dns.RR{
			soa(7), soa(5), a("old.zone.example."), soa(6), a("new.zone.example."),
			soa(6), a("old2.zone.example."), soa(7), a("new2.zone.example."), soa(7)}, nil},
		{"no SOA first", dns.TypeAXFR, 1, 0, []dns.RR{a("a.zone.example."), soa(5)}, dnsmsg.ErrBadTransfer},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			msgs := xfrMessages(t, tc.qtype, tc.per, tc.rcode, tc.rrs...)
			end := dnsmsg.NewTransferEnd(tc.qtype)
			for i, m := range msgs {
				last, err := end.Next(m)
				if tc.want != nil {
					if !errors.Is(err, tc.want) {
						t.Fatalf("message %d: err %v, want %v", i, err, tc.want)
					}
					return
				}
				if err != nil {
					t.Fatalf("message %d: %v", i, err)
				}
				if last != (i == len(msgs)-1) {
					t.Fatalf("message %d of %d: last = %v", i, len(msgs), last)
				}
			}
		})
	}
}

func TestIsTransfer(t *testing.T) {
	for qtype, want := range map[uint16]bool{dns.TypeAXFR: true, dns.TypeIXFR: true, dns.TypeSOA: false, dns.TypeA: false} {
		q := new(dns.Msg)
		q.SetQuestion("zone.example.", qtype)
		pq, err := dnsmsg.ParseQuery(pack(t, q))
		if err != nil {
			t.Fatal(err)
		}
		if got := dnsmsg.IsTransfer(&pq); got != want {
			t.Errorf("IsTransfer(%s) = %v", dns.TypeToString[qtype], got)
		}
	}
}

// FuzzTransferEnd reads any stream of messages as a transfer's answer:
// never a panic, and never past its end.
func FuzzTransferEnd(f *testing.F) {
	for _, m := range xfrMessages(f, dns.TypeAXFR, 1, 0, soa(5), a("a.zone.example."), soa(5)) {
		f.Add(m, true)
	}
	f.Fuzz(func(t *testing.T, msg []byte, ixfr bool) {
		qtype := uint16(dns.TypeAXFR)
		if ixfr {
			qtype = dns.TypeIXFR
		}
		end := dnsmsg.NewTransferEnd(qtype)
		for range 3 {
			if last, err := end.Next(msg); last || err != nil {
				return
			}
		}
	})
}
