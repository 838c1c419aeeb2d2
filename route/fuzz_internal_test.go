package route

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// FuzzMatch feeds client bytes to the route matcher: it must never panic,
// never change them, and must send each query where a reference does that
// is built another way, on miekg/dns's parse of the question and a
// comparison of label strings.
func FuzzMatch(f *testing.F) {
	for _, name := range []string{"www.corp.example.", "x.LAB.corp.example.", "evilcorp.example.", "1.2.168.192.in-addr.arpa.", `a\.corp.example.`, "."} {
		f.Add(query(f, name))
	}
	r := newTestRouter(f, testRoutes)
	f.Fuzz(func(t *testing.T, msg []byte) {
		orig := bytes.Clone(msg)
		got := r.nameOf(msg)
		if !bytes.Equal(orig, msg) {
			t.Fatal("the matcher changed the query")
		}
		want, ok := referenceRoute(msg, testRoutes)
		if ok && got != want {
			t.Fatalf("%x went to %s, want %s", msg, got, want)
		}
	})
}

// referenceRoute is where msg should go under routes: the route with the
// longest suffix whose labels, compared ignoring ASCII case, end the name
// of msg's first question, as miekg/dns reads it. ok is false when miekg
// cannot read the first question, which leaves the answer open.
func referenceRoute(msg []byte, routes []Route) (route string, ok bool) {
	if len(msg) < 12 {
		return "default", true
	}
	// Only the first question counts: the other sections are not read.
	first := bytes.Clone(msg)
	binary.BigEndian.PutUint16(first[4:], min(binary.BigEndian.Uint16(first[4:]), 1))
	clear(first[6:12])
	var m dns.Msg
	if err := m.Unpack(first); err != nil {
		return "", false
	}
	if len(m.Question) == 0 {
		return "default", true
	}
	name := m.Question[0].Name
	// miekg follows compression pointers in a question; a query has
	// nothing before its question to point at, and dotproxy refuses them.
	// Written back without one, the name must be the bytes that were sent.
	wire := make([]byte, 256)
	n, err := dns.PackDomainName(name, wire, 0, nil, false)
	if err != nil || len(msg) < 12+n || !bytes.Equal(wire[:n], msg[12:12+n]) {
		return "default", true
	}
	labels := dns.SplitDomainName(name) // escaped: "a\.b" stays one label
	best, bestLen := "default", 0
	for _, rt := range routes {
		for _, s := range rt.Suffixes {
			want := strings.Split(strings.ToLower(strings.TrimSuffix(s, ".")), ".")
			if len(want) <= bestLen || len(want) > len(labels) {
				continue
			}
			tail := labels[len(labels)-len(want):]
			same := true
			for i := range want {
				same = same && asciiLower(tail[i]) == want[i]
			}
			if same {
				best, bestLen = rt.Name, len(want)
			}
		}
	}
	return best, true
}

// asciiLower lowers ASCII letters only, as RFC 4343 compares names.
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}
