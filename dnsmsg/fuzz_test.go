package dnsmsg_test

import (
	"bytes"
	"testing"

	"github.com/dotproxy/dotproxy/dnsmsg"
	"github.com/miekg/dns"
)

// FuzzParseQuery feeds client bytes through everything the proxy does with
// them: the parse, and the replies built from what was parsed. Nothing may
// panic, and what is built must be a DNS message miekg/dns can read.
func FuzzParseQuery(f *testing.F) {
	q, err := dnsmsg.NewQuery(1, "example.org", dnsmsg.TypeNS)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(q)
	f.Fuzz(func(t *testing.T, msg []byte) {
		orig := bytes.Clone(msg)
		q, err := dnsmsg.ParseQuery(msg)
		if !bytes.Equal(orig, msg) {
			t.Fatal("ParseQuery modified its input")
		}
		if err != nil {
			return
		}
		_ = dnsmsg.QuestionString(q.Question) // logged at debug level: must not panic
		for _, rcode := range []int{dnsmsg.RcodeRefused, dnsmsg.RcodeServFail, dnsmsg.RcodeFormErr} {
			r := dnsmsg.Reply(&q, rcode)
			if dnsmsg.ID(r) != q.ID || dnsmsg.Rcode(r) != rcode || !dnsmsg.IsResponse(r) {
				t.Fatalf("Reply header wrong: %x", r[:4])
			}
			var m dns.Msg
			if err := m.Unpack(r); err != nil && q.Question != nil && validQuestion(q.Question) {
				t.Fatalf("Reply unreadable: %v (%x)", err, r)
			}
		}
		if len(msg) >= dnsmsg.HeaderLen {
			tc := dnsmsg.Truncated(&q, msg) // the query standing in for an answer
			if dnsmsg.ID(tc) != dnsmsg.ID(msg) {
				t.Fatal("Truncated changed the ID")
			}
		}
	})
}

// validQuestion reports whether miekg/dns accepts a question section alone;
// it is stricter than the wire format in places (escaping, for one).
func validQuestion(question []byte) bool {
	hdr := []byte{0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0}
	var m dns.Msg
	return m.Unpack(append(hdr, question...)) == nil
}

// FuzzFindOPT reads any message, as answers from upstreams are read.
func FuzzFindOPT(f *testing.F) {
	m := new(dns.Msg)
	m.SetQuestion("example.", dns.TypeA)
	m.SetEdns0(1232, true)
	b, _ := m.Pack()
	f.Add(b)
	f.Fuzz(func(t *testing.T, msg []byte) {
		s, e, ok := dnsmsg.FindOPT(msg)
		if ok && (s < dnsmsg.HeaderLen || e > len(msg) || e-s < 11 || msg[s] != 0) {
			t.Fatalf("FindOPT returned bad bounds %d..%d of %d", s, e, len(msg))
		}
	})
}
