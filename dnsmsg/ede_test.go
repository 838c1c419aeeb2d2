package dnsmsg_test

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/dotproxy/dotproxy/dnsmsg"
	"github.com/miekg/dns"
)

// everyEDE lists each reason with the INFO-CODE it must carry (RFC 8914
// §4; the reasons are in dnsmsg/ede.go).
var everyEDE = []struct {
	e    dnsmsg.EDE
	code uint16
}{
	{dnsmsg.EDEProhibited, dns.ExtendedErrorCodeProhibited},
	{dnsmsg.EDENoAnswerInTime, dns.ExtendedErrorCodeNoReachableAuthority},
	{dnsmsg.EDEUpstreamFailed, dns.ExtendedErrorCodeNetworkError},
	{dnsmsg.EDEAllDown, dns.ExtendedErrorCodeNoReachableAuthority},
	{dnsmsg.EDEMalformed, dns.ExtendedErrorCodeOther},
	{dnsmsg.EDEOverloaded, dns.ExtendedErrorCodeOther},
	{dnsmsg.EDETransferNotSupported, dns.ExtendedErrorCodeNotSupported},
	{dnsmsg.EDERateLimited, dns.ExtendedErrorCodeOther},
	{dnsmsg.EDEBadClientSubnet, dns.ExtendedErrorCodeOther},
	{dnsmsg.EDESubnetNotHidden, dns.ExtendedErrorCodeOther},
}

// longestQuery is a query with EDNS and DO set whose question is as long
// as a question can be: a 255-octet name.
func longestQuery(t *testing.T) (*dns.Msg, dnsmsg.Query) {
	t.Helper()
	label := strings.Repeat("a", 63)
	name := label + "." + label + "." + label + "." + strings.Repeat("b", 61) + "."
	m := new(dns.Msg)
	m.SetQuestion(name, dns.TypeAAAA)
	m.Id = 0x5EDE
	m.SetEdns0(1232, true)
	q, err := dnsmsg.ParseQuery(pack(t, m))
	if err != nil {
		t.Fatal(err)
	}
	if len(q.Question) != 255+4 {
		t.Fatalf("question of %d bytes, want 259", len(q.Question))
	}
	return m, q
}

// edeOf returns the only EDE option of m, failing the test if there is not
// exactly one in an OPT record.
func edeOf(t *testing.T, m *dns.Msg) *dns.EDNS0_EDE {
	t.Helper()
	opt := m.IsEdns0()
	if opt == nil {
		t.Fatalf("no OPT record in %v", m)
	}
	if len(opt.Option) != 1 {
		t.Fatalf("OPT options %v, want one EDE", opt.Option)
	}
	e, ok := opt.Option[0].(*dns.EDNS0_EDE)
	if !ok {
		t.Fatalf("OPT option %v, want an EDE", opt.Option[0])
	}
	return e
}

// TestReplyEDE: each reason reads back, through miekg/dns, as its code and a
// short UTF-8 text, on the reply that echoes the client's ID, question and
// DO bit; the largest such reply fits 512 bytes.
func TestReplyEDE(t *testing.T) {
	m, q := longestQuery(t)
	texts := map[string]bool{}
	for _, tt := range everyEDE {
		t.Run(tt.e.ExtraText(), func(t *testing.T) {
			wire := dnsmsg.ReplyEDE(&q, dnsmsg.RcodeServFail, tt.e)
			if len(wire) > dnsmsg.MinUDPSize {
				t.Fatalf("reply of %d bytes, over %d", len(wire), dnsmsg.MinUDPSize)
			}
			r := unpack(t, wire)
			if r.Id != m.Id || !r.Response || r.Rcode != dns.RcodeServerFailure || len(r.Question) != 1 ||
				r.Question[0] != m.Question[0] || !r.IsEdns0().Do() || r.IsEdns0().UDPSize() != dnsmsg.AdvertisedUDPSize {
				t.Fatalf("reply %v", r)
			}
			e := edeOf(t, r)
			if e.InfoCode != tt.code || e.InfoCode != tt.e.InfoCode() || e.ExtraText != tt.e.ExtraText() {
				t.Fatalf("EDE %d %q, want %d %q", e.InfoCode, e.ExtraText, tt.code, tt.e.ExtraText())
			}
			if text := e.ExtraText; text == "" || len(text) > 34 || !utf8.ValidString(text) || texts[text] {
				t.Fatalf("EXTRA-TEXT %q: want short, UTF-8 and its own", text)
			}
			texts[e.ExtraText] = true
		})
	}
}

// TestReplyEDEWithoutEDNS: a client that sent no OPT record gets none, so
// the reply is Reply's, byte for byte; so is EDENone's, and a value that
// names no reason adds nothing.
func TestReplyEDEWithoutEDNS(t *testing.T) {
	plain := new(dns.Msg)
	plain.SetQuestion("no-edns.example.", dns.TypeA)
	withOPT := plain.Copy()
	withOPT.SetEdns0(4096, false)
	for _, m := range []*dns.Msg{plain, withOPT} {
		q, err := dnsmsg.ParseQuery(pack(t, m))
		if err != nil {
			t.Fatal(err)
		}
		want := dnsmsg.Reply(&q, dnsmsg.RcodeRefused)
		cases := []dnsmsg.EDE{dnsmsg.EDENone, dnsmsg.EDE(200)}
		if !q.EDNS {
			for _, tt := range everyEDE {
				cases = append(cases, tt.e)
			}
		}
		for _, e := range cases {
			if got := dnsmsg.ReplyEDE(&q, dnsmsg.RcodeRefused, e); !bytes.Equal(got, want) {
				t.Fatalf("EDNS %v, EDE %d: %x, want Reply's %x", q.EDNS, e, got, want)
			}
		}
	}
	if e := dnsmsg.EDE(200); e.InfoCode() != 0 || e.ExtraText() != "" {
		t.Fatalf("an unknown EDE reads as %d %q", e.InfoCode(), e.ExtraText())
	}
}

// TestTruncatedReply: the empty reply with TC set carries the EDE when the
// client sent EDNS; with EDENone it is the reply check sends a zone
// transfer asked over UDP.
func TestTruncatedReply(t *testing.T) {
	m, q := longestQuery(t)
	r := unpack(t, dnsmsg.TruncatedReply(&q, dnsmsg.EDERateLimited))
	if r.Id != m.Id || !r.Truncated || r.Rcode != dns.RcodeSuccess || len(r.Answer) != 0 || len(r.Question) != 1 {
		t.Fatalf("reply %v", r)
	}
	if e := edeOf(t, r); e.InfoCode != dns.ExtendedErrorCodeOther || e.ExtraText != "rate limited" {
		t.Fatalf("EDE %d %q", e.InfoCode, e.ExtraText)
	}
	if got, want := dnsmsg.TruncatedReply(&q, dnsmsg.EDENone), dnsmsg.Truncated(&q, dnsmsg.Reply(&q, dnsmsg.RcodeSuccess)); !bytes.Equal(got, want) {
		t.Fatalf("TruncatedReply with no EDE %x, want %x", got, want)
	}
}

// malformedCase is a query that ParseQuery rejects, and what MalformedEDNS
// must read from it.
type malformedCase struct {
	name string
	msg  []byte
	ok   bool
	size uint16
	do   bool
}

// malformedCases builds the queries from records packed by miekg/dns, then
// rearranged.
func malformedCases(t *testing.T) []malformedCase {
	t.Helper()
	withOPT := new(dns.Msg)
	withOPT.SetQuestion("one.example.", dns.TypeA)
	withOPT.SetEdns0(1400, true)
	base := pack(t, withOPT)
	qEnd := dnsmsg.HeaderLen + len("\x03one\x07example\x00") + 4
	question, opt := base[dnsmsg.HeaderLen:qEnd], base[qEnd:]

	// Two questions, then the OPT record.
	twoQ := append(append(append(bytes.Clone(base[:dnsmsg.HeaderLen]), question...), question...), opt...)
	binary.BigEndian.PutUint16(twoQ[4:], 2)
	// A question whose name is a compression pointer, which a query has
	// nothing before to point at.
	pointer := append(append(bytes.Clone(base[:dnsmsg.HeaderLen]), 0xC0, 0x0C, 0, 1, 0, 1), opt...)
	// A second OPT record.
	twoOPT := append(bytes.Clone(base), opt...)
	binary.BigEndian.PutUint16(twoOPT[10:], 2)
	// Two questions and no OPT record.
	noOPT := append(append(bytes.Clone(base[:dnsmsg.HeaderLen]), question...), question...)
	binary.BigEndian.PutUint16(noOPT[4:], 2)
	binary.BigEndian.PutUint16(noOPT[10:], 0)
	// Two questions, then an OPT record whose RDLENGTH runs past the end.
	long := bytes.Clone(twoQ)
	binary.BigEndian.PutUint16(long[len(long)-2:], 8)
	// The second question's name runs off the end, before the OPT record.
	cut := append(append(bytes.Clone(base[:dnsmsg.HeaderLen]), question...), 40, 'a', 'b')
	binary.BigEndian.PutUint16(cut[4:], 2)
	// The header alone, as a TCP query over MaxQuerySize is kept.
	header := bytes.Clone(twoQ[:dnsmsg.HeaderLen])
	// Two questions, and the OPT record in the answer section.
	inAnswer := bytes.Clone(twoQ)
	binary.BigEndian.PutUint16(inAnswer[6:], 1)
	binary.BigEndian.PutUint16(inAnswer[10:], 0)

	return []malformedCase{
		{"two questions", twoQ, true, 1400, true},
		{"compressed question name", pointer, true, 1400, true},
		{"two OPT records", twoOPT, false, 0, false},
		{"no OPT record", noOPT, false, 0, false},
		{"OPT record runs past the end", long, false, 0, false},
		{"question runs off the end", cut, false, 0, false},
		{"header alone", header, false, 0, false},
		{"OPT record in the answer section", inAnswer, false, 0, false},
	}
}

// TestMalformedEDNS: the OPT record of a malformed query is read only when
// every record can be walked and there is exactly one; the FORMERR then
// carries EDNS, with the client's DO bit, and says why.
func TestMalformedEDNS(t *testing.T) {
	for _, tt := range malformedCases(t) {
		t.Run(tt.name, func(t *testing.T) {
			q, err := dnsmsg.ParseQuery(tt.msg)
			if err != dnsmsg.ErrMalformed {
				t.Fatalf("ParseQuery = %v, want ErrMalformed", err)
			}
			size, ttl, ok := dnsmsg.MalformedEDNS(tt.msg)
			if ok != tt.ok || size != tt.size || (ttl&0x8000 != 0) != tt.do {
				t.Fatalf("MalformedEDNS = %d, %#x, %v; want %d, DO %v, %v", size, ttl, ok, tt.size, tt.do, tt.ok)
			}
			q = dnsmsg.Query{ID: q.ID, Flags: q.Flags, EDNS: ok, UDPSize: size, OPTTTL: ttl}
			r := unpack(t, dnsmsg.ReplyEDE(&q, dnsmsg.RcodeFormErr, dnsmsg.EDEMalformed))
			if r.Rcode != dns.RcodeFormatError || len(r.Question) != 0 {
				t.Fatalf("reply %v", r)
			}
			if !ok {
				if r.IsEdns0() != nil {
					t.Fatal("an OPT record in the reply to a query whose own could not be told")
				}
				return
			}
			if e := edeOf(t, r); e.InfoCode != dns.ExtendedErrorCodeOther || e.ExtraText != "malformed query" || !r.IsEdns0().Do() {
				t.Fatalf("reply %v", r)
			}
		})
	}
}

// TestMalformedEDNSAgreesWithParseQuery: on a query ParseQuery accepts,
// MalformedEDNS reads the same OPT record, or none.
func TestMalformedEDNSAgreesWithParseQuery(t *testing.T) {
	for _, size := range []uint16{0, 512, 4096} {
		m := new(dns.Msg)
		m.SetQuestion("agree.example.", dns.TypeTXT)
		if size > 0 {
			m.SetEdns0(size, size == 4096)
		}
		wire := pack(t, m)
		q, err := dnsmsg.ParseQuery(wire)
		if err != nil {
			t.Fatal(err)
		}
		if s, ttl, ok := dnsmsg.MalformedEDNS(wire); ok != q.EDNS || s != q.UDPSize || ttl != q.OPTTTL {
			t.Fatalf("MalformedEDNS = %d, %#x, %v; ParseQuery %+v", s, ttl, ok, q)
		}
	}
}

// FuzzMalformedEDNS reads any bytes as a query the proxy answers FORMERR,
// as it does every malformed query. Nothing may panic or change the input;
// on a query ParseQuery accepts, MalformedEDNS must read what it reads; and
// a FORMERR built from what it found must be a message miekg/dns reads,
// with the EDE exactly when an OPT record was found. Its seeds, in
// testdata, are malformedCases'.
func FuzzMalformedEDNS(f *testing.F) {
	f.Fuzz(func(t *testing.T, msg []byte) {
		orig := bytes.Clone(msg)
		size, ttl, ok := dnsmsg.MalformedEDNS(msg)
		if !bytes.Equal(orig, msg) {
			t.Fatal("MalformedEDNS modified its input")
		}
		q, err := dnsmsg.ParseQuery(msg)
		if err == nil && (ok != q.EDNS || size != q.UDPSize || ttl != q.OPTTTL) {
			t.Fatalf("MalformedEDNS = %d, %#x, %v; ParseQuery read %+v", size, ttl, ok, q)
		}
		if err != dnsmsg.ErrMalformed {
			return
		}
		own := dnsmsg.Query{ID: q.ID, Flags: q.Flags, EDNS: ok, UDPSize: size, OPTTTL: ttl}
		var r dns.Msg
		if err := r.Unpack(dnsmsg.ReplyEDE(&own, dnsmsg.RcodeFormErr, dnsmsg.EDEMalformed)); err != nil {
			t.Fatalf("FORMERR unreadable: %v", err)
		}
		opt := r.IsEdns0()
		if (opt != nil) != ok || (ok && (len(opt.Option) != 1 || opt.Option[0].Option() != dns.EDNS0EDE)) {
			t.Fatalf("FORMERR OPT %v, found %v", opt, ok)
		}
	})
}
