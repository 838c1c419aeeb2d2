package dnsmsg_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/dotproxy/dotproxy/dnsmsg"
	"github.com/miekg/dns"
)

func question(name string, qtype uint16) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	return m
}

func TestAnswerMatches(t *testing.T) {
	q := question("www.Example.org.", dns.TypeAAAA)
	q.SetEdns0(1232, true)
	query := pack(t, q)
	reply := func(edit func(a *dns.Msg)) []byte {
		a := new(dns.Msg)
		a.SetReply(q)
		a.Answer = append(a.Answer, &dns.AAAA{Hdr: dns.RR_Header{Name: q.Question[0].Name, Rrtype: dns.TypeAAAA, Class: dns.ClassINET, Ttl: 60}})
		if edit != nil {
			edit(a)
		}
		return pack(t, a)
	}
	cases := []struct {
		name   string
		answer []byte
		want   bool
	}{
		{"the answer", reply(nil), true},
		{"the name in other case", reply(func(a *dns.Msg) { a.Question[0].Name = "WWW.example.ORG." }), true},
		{"another name", reply(func(a *dns.Msg) { a.Question[0].Name = "www.example.net." }), false},
		{"a longer name", reply(func(a *dns.Msg) { a.Question[0].Name = "x.www.example.org." }), false},
		{"a name one label short", reply(func(a *dns.Msg) { a.Question[0].Name = "example.org." }), false},
		{"another type", reply(func(a *dns.Msg) { a.Question[0].Qtype = dns.TypeA }), false},
		{"another class", reply(func(a *dns.Msg) { a.Question[0].Qclass = dns.ClassCHAOS }), false},
		{"QR unset", reply(func(a *dns.Msg) { a.Response = false }), false},
		{"another opcode", reply(func(a *dns.Msg) { a.Opcode = dns.OpcodeNotify }), false},
		{"no question, SERVFAIL", reply(func(a *dns.Msg) { a.Question = nil; a.Answer = nil; a.Rcode = dns.RcodeServerFailure }), true},
		{"no question, REFUSED", reply(func(a *dns.Msg) { a.Question = nil; a.Answer = nil; a.Rcode = dns.RcodeRefused }), true},
		{"no question, NOERROR", reply(func(a *dns.Msg) { a.Question = nil }), false},
		{"no question, NXDOMAIN", reply(func(a *dns.Msg) { a.Question = nil; a.Answer = nil; a.Rcode = dns.RcodeNameError }), false},
		{"two questions", reply(func(a *dns.Msg) { a.Question = append(a.Question, a.Question[0]) }), false},
		{"the header alone", reply(nil)[:dnsmsg.HeaderLen], false},
		{"cut in the name", reply(nil)[:dnsmsg.HeaderLen+5], false},
		{"cut in the type", reply(nil)[:dnsmsg.HeaderLen+len("www.Example.org.")+2], false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			orig := bytes.Clone(tc.answer)
			if got := dnsmsg.AnswerMatches(query, tc.answer); got != tc.want {
				t.Errorf("AnswerMatches = %v, want %v", got, tc.want)
			}
			if !bytes.Equal(orig, tc.answer) {
				t.Error("AnswerMatches modified the answer")
			}
		})
	}
}

func TestAnswerMatchesEmptyQuestion(t *testing.T) {
	q := new(dns.Msg)
	q.Id = 7
	q.SetEdns0(1232, false) // a cookie-style query with no question
	query := pack(t, q)
	a := new(dns.Msg)
	a.SetReply(q)
	if !dnsmsg.AnswerMatches(query, pack(t, a)) {
		t.Error("an answer with no question to a query with none was refused")
	}
	a.Question = []dns.Question{{Name: "example.", Qtype: dns.TypeA, Qclass: dns.ClassINET}}
	if dnsmsg.AnswerMatches(query, pack(t, a)) {
		t.Error("an answer with a question to a query with none was taken")
	}
}

// A compressed name matches its uncompressed twin, in either message, and a
// pointer loop ends the comparison.
func TestAnswerMatchesCompression(t *testing.T) {
	// Two questions, the second compressed against the first.
	hdr := []byte{0, 1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0}
	q1 := []byte("\x03www\x07example\x03org\x00\x00\x01\x00\x01")
	compressed := append(append(bytes.Clone(hdr), q1...), 0xC0, 16, 0, 28, 0, 1) // example.org AAAA
	plain := append(append(bytes.Clone(hdr), q1...), []byte("\x07EXAMPLE\x03org\x00\x00\x1c\x00\x01")...)
	resp := func(m []byte) []byte {
		r := bytes.Clone(m)
		r[2] |= 0x80
		return r
	}
	if !dnsmsg.AnswerMatches(compressed, resp(plain)) || !dnsmsg.AnswerMatches(plain, resp(compressed)) {
		t.Error("a compressed question does not match its plain twin")
	}
	loop := append(append(bytes.Clone(hdr), q1...), 0xC0, byte(len(hdr)+len(q1)), 0, 28, 0, 1)
	if dnsmsg.AnswerMatches(plain, resp(loop)) {
		t.Error("a pointer loop matched")
	}
}

// The oracle: an answer matches exactly when miekg/dns reads the same
// questions from both, the header agrees, and the empty-question rule holds.
func FuzzAnswerMatches(f *testing.F) {
	for _, name := range []string{"example.org.", "a.b.c.", "."} {
		q := question(name, dns.TypeA)
		query := pack(f, q)
		a := new(dns.Msg)
		a.SetReply(q)
		f.Add(query, pack(f, a))
		a.Question[0].Name = strings.ToUpper(name)
		f.Add(query, pack(f, a))
		a.Question = nil
		a.Rcode = dns.RcodeRefused
		f.Add(query, pack(f, a))
	}
	f.Fuzz(func(t *testing.T, query, answer []byte) {
		qc, ac := bytes.Clone(query), bytes.Clone(answer)
		got := dnsmsg.AnswerMatches(query, answer)
		if !bytes.Equal(qc, query) || !bytes.Equal(ac, answer) {
			t.Fatal("AnswerMatches modified its input")
		}
		if got && !dnsmsg.TransferMessageMatches(query, answer) {
			t.Fatal("a matching answer is refused as a transfer message")
		}
		var qm, am dns.Msg
		if qm.Unpack(query) != nil || am.Unpack(answer) != nil ||
			!wholeQuestions(query) || !wholeQuestions(answer) {
			// The oracle cannot read them, or stopped short of the
			// count, as miekg/dns does quietly: no panic is all we ask.
			return
		}
		want := am.Response && am.Opcode == qm.Opcode && sameQuestions(qm.Question, am.Question)
		if len(am.Question) == 0 && len(qm.Question) != 0 {
			want = am.Response && am.Opcode == qm.Opcode && am.Rcode != dns.RcodeSuccess && am.Rcode != dns.RcodeNameError
		}
		if got != want {
			t.Fatalf("AnswerMatches = %v, miekg/dns says %v\nquery  %x\nanswer %x", got, want, query, answer)
		}
	})
}

func sameQuestions(a, b []dns.Question) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !strings.EqualFold(a[i].Name, b[i].Name) || a[i].Qtype != b[i].Qtype || a[i].Qclass != b[i].Qclass {
			return false
		}
	}
	return true
}

// wholeQuestions reports whether the question section is all there, read
// with miekg/dns's name reader: it takes a question cut short quietly.
func wholeQuestions(m []byte) bool {
	off := dnsmsg.HeaderLen
	for range int(m[4])<<8 | int(m[5]) {
		_, next, err := dns.UnpackDomainName(m, off)
		if err != nil || next+4 > len(m) {
			return false
		}
		off = next + 4
	}
	return true
}
