package dnsmsg_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/dotproxy/dotproxy/dnsmsg"
	"github.com/miekg/dns"
)

// chaosQuery is a query for name in class CHAOS, with EDNS when edns.
func chaosQuery(tb testing.TB, name string, qtype uint16, edns bool) dnsmsg.Query {
	tb.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.Question[0].Qclass = dns.ClassCHAOS
	m.Id = 0x1234
	m.CheckingDisabled = true
	if edns {
		m.SetEdns0(1232, true)
	}
	q, err := dnsmsg.ParseQuery(pack(tb, m))
	if err != nil {
		tb.Fatal(err)
	}
	return q
}

// TestLocalReplyAgreesWithMiekg builds the proxy's own TXT answers and
// reads them with miekg/dns: header bits, question, each record whole
// (texts longer than one character-string split at 255 bytes), the OPT
// record last.
func TestLocalReplyAgreesWithMiekg(t *testing.T) {
	long := strings.Repeat("x", 600)
	texts := []string{"first line", "", long}
	for _, edns := range []bool{false, true} {
		q := chaosQuery(t, "Status.DotProxy.", dns.TypeTXT, edns)
		m := unpack(t, dnsmsg.LocalReply(&q, dnsmsg.RcodeSuccess, texts, dnsmsg.MaxMessage))
		if m.Id != 0x1234 || !m.Response || !m.Authoritative || !m.RecursionDesired || !m.CheckingDisabled ||
			m.Truncated || m.Rcode != dns.RcodeSuccess {
			t.Fatalf("header: %+v", m.MsgHdr)
		}
		if len(m.Question) != 1 || m.Question[0].Name != "Status.DotProxy." || m.Question[0].Qclass != dns.ClassCHAOS {
			t.Fatalf("question: %v", m.Question)
		}
		if len(m.Answer) != len(texts) {
			t.Fatalf("%d records, want %d", len(m.Answer), len(texts))
		}
		for i, rr := range m.Answer {
			txt, ok := rr.(*dns.TXT)
			if !ok || txt.Hdr.Class != dns.ClassCHAOS || txt.Hdr.Ttl != 0 || txt.Hdr.Name != "Status.DotProxy." {
				t.Fatalf("record %d: %v", i, rr)
			}
			if got := strings.Join(txt.Txt, ""); got != texts[i] {
				t.Fatalf("record %d holds %q, want %q", i, got, texts[i])
			}
		}
		if got := len(m.Answer[2].(*dns.TXT).Txt); got != 3 {
			t.Fatalf("600 bytes in %d strings, want 3", got)
		}
		if (m.IsEdns0() != nil) != edns {
			t.Fatalf("EDNS in the answer: %v, in the query: %v", m.IsEdns0() != nil, edns)
		}
		if edns && !m.IsEdns0().Do() {
			t.Fatal("the DO bit of the query is not kept")
		}
	}
}

// TestLocalReplyStopsAtTheLimit: what does not fit is left out whole, and
// TC says so.
func TestLocalReplyStopsAtTheLimit(t *testing.T) {
	q := chaosQuery(t, "status.dotproxy.", dns.TypeTXT, true)
	texts := []string{strings.Repeat("a", 100), strings.Repeat("b", 100), strings.Repeat("c", 100)}
	full := dnsmsg.LocalReply(&q, dnsmsg.RcodeSuccess, texts, dnsmsg.MaxMessage)
	limit := len(full) - 1
	r := dnsmsg.LocalReply(&q, dnsmsg.RcodeSuccess, texts, limit)
	if len(r) > limit {
		t.Fatalf("%d bytes, limit %d", len(r), limit)
	}
	m := unpack(t, r)
	if !m.Truncated || len(m.Answer) != 2 || m.IsEdns0() == nil {
		t.Fatalf("TC %v, %d records, OPT %v; want TC, 2 records, OPT", m.Truncated, len(m.Answer), m.IsEdns0() != nil)
	}
	got, err := dnsmsg.TXTAnswers(r)
	if err != nil || len(got) != 2 || string(got[1]) != texts[1] {
		t.Fatalf("TXTAnswers: %q %v", got, err)
	}
}

// TestLocalReplyRcodes: an empty answer carries its rcode and AA.
func TestLocalReplyRcodes(t *testing.T) {
	q := chaosQuery(t, "other.dotproxy.", dns.TypeTXT, false)
	m := unpack(t, dnsmsg.LocalReply(&q, dnsmsg.RcodeNXDomain, nil, dnsmsg.MaxMessage))
	if m.Rcode != dns.RcodeNameError || !m.Authoritative || len(m.Answer) != 0 {
		t.Fatalf("%v", m)
	}
}

func TestInZone(t *testing.T) {
	zone, err := dnsmsg.WireName("dotproxy.")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		in, exact bool
	}{
		{"dotproxy.", true, true},
		{"DotProxy.", true, true},
		{"status.dotproxy.", true, false},
		{"a.b.STATUS.dotproxy.", true, false},
		{"xdotproxy.", false, false},
		{"dotproxy.org.", false, false},
		{"dotproxy.dotproxy.x.", false, false},
		{".", false, false},
	}
	for _, tt := range tests {
		q := chaosQuery(t, tt.name, dns.TypeTXT, false)
		if in, exact := dnsmsg.InZone(q.Question, zone); in != tt.in || exact != tt.exact {
			t.Errorf("%s: in %v exact %v, want %v %v", tt.name, in, exact, tt.in, tt.exact)
		}
		if got := dnsmsg.QuestionClass(q.Question); got != dns.ClassCHAOS {
			t.Errorf("%s: class %d", tt.name, got)
		}
		if got := dnsmsg.QuestionType(q.Question); got != dns.TypeTXT {
			t.Errorf("%s: type %d", tt.name, got)
		}
	}
	if in, _ := dnsmsg.InZone(nil, zone); in {
		t.Error("no question is in the zone")
	}
	if dnsmsg.QuestionClass(nil) != 0 || dnsmsg.QuestionType([]byte{0, 0, 1, 0}) != 0 {
		t.Error("a question too short has a class or type")
	}
}

// TestTXTAnswersReadsMiekg reads answers miekg/dns wrote, compressed, with
// records of other types among the TXT ones.
func TestTXTAnswersReadsMiekg(t *testing.T) {
	m := new(dns.Msg)
	m.SetQuestion("status.dotproxy.", dns.TypeTXT)
	m.Question[0].Qclass = dns.ClassCHAOS
	m.Response = true
	hdr := dns.RR_Header{Name: "status.dotproxy.", Rrtype: dns.TypeTXT, Class: dns.ClassCHAOS}
	m.Answer = []dns.RR{
		&dns.TXT{Hdr: hdr, Txt: []string{"one ", "two"}},
		&dns.A{Hdr: dns.RR_Header{Name: "x.status.dotproxy.", Rrtype: dns.TypeA, Class: dns.ClassINET}, A: []byte{1, 2, 3, 4}},
		&dns.TXT{Hdr: hdr, Txt: []string{""}},
		&dns.TXT{Hdr: hdr, Txt: []string{"three"}},
	}
	m.Compress = true
	got, err := dnsmsg.TXTAnswers(pack(t, m))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"one two", "", "three"}
	if len(got) != len(want) {
		t.Fatalf("%q, want %q", got, want)
	}
	for i := range want {
		if string(got[i]) != want[i] {
			t.Fatalf("%q, want %q", got, want)
		}
	}
}

// TestTXTAnswersRejects: each way the bytes from the socket can be wrong.
func TestTXTAnswersRejects(t *testing.T) {
	q := chaosQuery(t, "status.dotproxy.", dns.TypeTXT, false)
	good := dnsmsg.LocalReply(&q, dnsmsg.RcodeSuccess, []string{"hello"}, dnsmsg.MaxMessage)
	if _, err := dnsmsg.TXTAnswers(good); err != nil {
		t.Fatal(err)
	}
	rdata := len(good) - len("hello") - 1 // the string's length octet
	tests := map[string][]byte{
		"empty":          nil,
		"header only":    good[:dnsmsg.HeaderLen],
		"not a response": append([]byte{good[0], good[1], good[2] &^ 0x80}, good[3:]...),
		"cut short":      good[:len(good)-1],
		"string overruns the record": func() []byte {
			b := bytes.Clone(good)
			b[rdata] = 6
			return b
		}(),
		"empty rdata": func() []byte {
			b := bytes.Clone(good[:rdata])
			b[len(b)-1] = 0 // rdlength 0
			return b
		}(),
		"more records than there are": func() []byte {
			b := bytes.Clone(good)
			b[7] = 2
			return b
		}(),
	}
	for name, msg := range tests {
		if got, err := dnsmsg.TXTAnswers(msg); err == nil {
			t.Errorf("%s: read as %q", name, got)
		}
	}
}

// FuzzTXTAnswers reads any bytes as the status command reads what its
// socket gave it: nothing may panic, the input stays as it was, and no
// text is longer than the message.
func FuzzTXTAnswers(f *testing.F) {
	q := chaosQuery(f, "status.dotproxy.", dns.TypeTXT, true)
	f.Add(dnsmsg.LocalReply(&q, dnsmsg.RcodeSuccess, []string{"a", strings.Repeat("b", 300)}, dnsmsg.MaxMessage))
	f.Fuzz(func(t *testing.T, msg []byte) {
		orig := bytes.Clone(msg)
		texts, err := dnsmsg.TXTAnswers(msg)
		if !bytes.Equal(orig, msg) {
			t.Fatal("TXTAnswers modified its input")
		}
		if err != nil {
			return
		}
		total := 0
		for _, text := range texts {
			total += len(text)
		}
		if total > len(msg) {
			t.Fatalf("%d bytes of text from a %d-byte message", total, len(msg))
		}
	})
}
