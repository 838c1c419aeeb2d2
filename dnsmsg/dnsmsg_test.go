package dnsmsg_test

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/dotproxy/dotproxy/dnsmsg"
	"github.com/miekg/dns"
)

func pack(tb testing.TB, m *dns.Msg) []byte {
	tb.Helper()
	b, err := m.Pack()
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func unpack(tb testing.TB, b []byte) *dns.Msg {
	tb.Helper()
	m := new(dns.Msg)
	if err := m.Unpack(b); err != nil {
		tb.Fatalf("miekg/dns cannot read %x: %v", b, err)
	}
	return m
}

func TestParseQueryAgreesWithMiekg(t *testing.T) {
	tests := []struct {
		name  string
		qname string
		qtype uint16
		edns  uint16
		do    bool
	}{
		{"root NS", ".", dns.TypeNS, 0, false},
		{"A without EDNS", "example.org.", dns.TypeA, 0, false},
		{"AAAA with EDNS", "www.example.org.", dns.TypeAAAA, 1232, false},
		{"DO bit", "signed.example.", dns.TypeDNSKEY, 4096, true},
		{"tiny EDNS size", "x.", dns.TypeTXT, 100, false},
		{"long name", "a123456789012345678901234567890123456789012345678901234567890.b123456789.c.", dns.TypeMX, 1400, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := new(dns.Msg)
			m.SetQuestion(tt.qname, tt.qtype)
			m.Id = 0xBEEF
			m.CheckingDisabled = true
			if tt.edns > 0 {
				m.SetEdns0(tt.edns, tt.do)
			}
			wire := pack(t, m)
			q, err := dnsmsg.ParseQuery(wire)
			if err != nil {
				t.Fatal(err)
			}
			qonly := new(dns.Msg)
			qonly.Question = m.Question
			wantQ := pack(t, qonly)[dnsmsg.HeaderLen:]
			if q.ID != 0xBEEF || !bytes.Equal(q.Question, wantQ) || q.EDNS != (tt.edns > 0) || q.UDPSize != tt.edns {
				t.Fatalf("parsed %+v", q)
			}
			want := max(512, int(tt.edns))
			if q.MaxUDPAnswer() != want {
				t.Fatalf("MaxUDPAnswer %d, want %d", q.MaxUDPAnswer(), want)
			}

			for _, rcode := range []int{dnsmsg.RcodeRefused, dnsmsg.RcodeServFail} {
				r := unpack(t, dnsmsg.Reply(&q, rcode))
				if r.Id != m.Id || !r.Response || r.Rcode != rcode || !r.RecursionDesired || !r.CheckingDisabled ||
					len(r.Question) != 1 || r.Question[0] != m.Question[0] || len(r.Answer) != 0 {
					t.Fatalf("Reply(%d) = %v", rcode, r)
				}
				if opt := r.IsEdns0(); (opt != nil) != (tt.edns > 0) || (opt != nil && opt.Do() != tt.do) {
					t.Fatalf("Reply OPT %v for a query with EDNS %d DO %v", opt, tt.edns, tt.do)
				}
			}
		})
	}
}

func TestTruncated(t *testing.T) {
	for _, edns := range []bool{false, true} {
		t.Run(fmt.Sprint("edns=", edns), func(t *testing.T) {
			m := new(dns.Msg)
			m.SetQuestion("big.example.", dns.TypeTXT)
			if edns {
				m.SetEdns0(1232, true)
			}
			q, err := dnsmsg.ParseQuery(pack(t, m))
			if err != nil {
				t.Fatal(err)
			}
			a := new(dns.Msg)
			a.SetReply(m)
			a.Rcode = dns.RcodeNameError
			a.Authoritative = true
			for range 10 {
				a.Answer = append(a.Answer, &dns.TXT{Hdr: dns.RR_Header{Name: "big.example.", Rrtype: dns.TypeTXT, Class: dns.ClassINET}, Txt: []string{string(make([]byte, 200))}})
			}
			if edns {
				a.SetEdns0(4096, true)
				a.Rcode = dns.RcodeBadVers // 16: its high bits live in the OPT record
			}
			tc := unpack(t, dnsmsg.Truncated(&q, pack(t, a)))
			if !tc.Truncated || tc.Id != m.Id || !tc.Authoritative || len(tc.Answer) != 0 || len(tc.Question) != 1 {
				t.Fatalf("truncated reply: %v", tc)
			}
			if edns {
				opt := tc.IsEdns0()
				if opt == nil || opt.UDPSize() != 4096 || tc.Rcode != dns.RcodeBadVers {
					t.Fatalf("the answer's OPT record was not kept: %v", tc)
				}
			} else if tc.IsEdns0() != nil || tc.Rcode != dns.RcodeNameError {
				t.Fatalf("reply to a query without EDNS: %v", tc)
			}
		})
	}
}

func TestParseQueryRejects(t *testing.T) {
	ok := func() []byte {
		m := new(dns.Msg)
		m.SetQuestion("example.", dns.TypeA)
		m.SetEdns0(1232, false)
		return pack(t, m)
	}
	tests := []struct {
		name string
		msg  func() []byte
		want error
	}{
		{"empty", func() []byte { return nil }, dnsmsg.ErrShort},
		{"eleven bytes", func() []byte { return ok()[:11] }, dnsmsg.ErrShort},
		{"response", func() []byte { b := ok(); b[2] |= 0x80; return b }, dnsmsg.ErrNotQuery},
		{"two questions", func() []byte { b := ok(); b[5] = 2; return b }, dnsmsg.ErrMalformed},
		{"cut in the question", func() []byte { return ok()[:15] }, dnsmsg.ErrMalformed},
		{"cut in the OPT record", func() []byte { b := ok(); return b[:len(b)-3] }, dnsmsg.ErrMalformed},
		{"pointer in the question", func() []byte {
			return []byte{0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xC0, 12, 0, 1, 0, 1}
		}, dnsmsg.ErrMalformed},
		{"two OPT records", func() []byte {
			b := ok()
			opt := b[len(b)-11:]
			b = append(b, opt...)
			b[11] = 2
			return b
		}, dnsmsg.ErrMalformed},
		{"label too long for a name", func() []byte {
			b := []byte{0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0}
			for range 5 {
				b = append(b, 63)
				b = append(b, make([]byte, 63)...)
			}
			return append(b, 0, 0, 1, 0, 1)
		}, dnsmsg.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := dnsmsg.ParseQuery(tt.msg()); err != tt.want {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestNoQuestionIsAllowed(t *testing.T) {
	// A DNS Cookie refresh may carry no question (RFC 7873 §5.4).
	m := new(dns.Msg)
	m.Id = 5
	m.SetEdns0(1232, false)
	q, err := dnsmsg.ParseQuery(pack(t, m))
	if err != nil || len(q.Question) != 0 || !q.EDNS {
		t.Fatalf("%+v %v", q, err)
	}
	r := unpack(t, dnsmsg.Reply(&q, dnsmsg.RcodeServFail))
	if len(r.Question) != 0 || r.Rcode != dns.RcodeServerFailure {
		t.Fatalf("%v", r)
	}
}

func TestRcodeName(t *testing.T) {
	for rc, want := range map[int]string{0: "NOERROR", 2: "SERVFAIL", 3: "NXDOMAIN", 5: "REFUSED", 15: "RCODE15", 99: "RCODE_OTHER"} {
		if got := dnsmsg.RcodeName(rc); got != want {
			t.Errorf("RcodeName(%d) = %s, want %s", rc, got, want)
		}
	}
}
