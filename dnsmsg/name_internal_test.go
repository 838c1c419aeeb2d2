package dnsmsg

import (
	"bytes"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// label returns a length octet and n octets of c.
func label(n int, c byte) []byte {
	return append([]byte{byte(n)}, bytes.Repeat([]byte{c}, n)...)
}

// longName returns labels of in all n octets long, lengths included, and no
// root.
func longName(n int) []byte {
	var b []byte
	for n > 0 {
		l := min(n-1, 63)
		if n-1-l == 1 { // a last label of one octet would have no room
			l--
		}
		b = append(b, label(l, 'x')...)
		n -= l + 1
	}
	return b
}

func TestNameReaderRules(t *testing.T) {
	hdr := make([]byte, HeaderLen)
	at := func(parts ...[]byte) []byte { return bytes.Join(append([][]byte{hdr}, parts...), nil) }
	name := []byte("\x03www\x07example\x00")
	ptr := func(to int) []byte { return []byte{0xC0 | byte(to>>8), byte(to)} }
	const fails = -1
	tests := []struct {
		name string
		msg  []byte
		off  int
		// end under noPointer, endAtPointer, followPointers,
		// followBackwards; fails where the name is refused.
		ends [4]int
	}{
		{"plain", at(name), HeaderLen, [4]int{25, 25, 25, 25}},
		{"root", at([]byte{0}), HeaderLen, [4]int{13, 13, 13, 13}},
		{"pointer back", at(name, []byte("\x01a"), ptr(HeaderLen)), 25, [4]int{fails, 29, 29, 29}},
		{"pointer forward", at(ptr(14), name), HeaderLen, [4]int{fails, 14, 14, fails}},
		{"pointer into the header", at(ptr(2), name), HeaderLen, [4]int{fails, 14, 14, fails}}, // a zero octet: the root
		{"pointer to itself", at(ptr(HeaderLen)), HeaderLen, [4]int{fails, 14, fails, fails}},
		{"pointer cut short", at([]byte{0xC0}), HeaderLen, [4]int{fails, fails, fails, fails}},
		{"pointer off the message", at(ptr(200)), HeaderLen, [4]int{fails, 14, fails, fails}},
		{"obsolete label type 0x40", at([]byte{0x41, 'a', 0}), HeaderLen, [4]int{fails, fails, fails, fails}},
		{"obsolete label type 0x80", at([]byte{0x81, 'a', 0}), HeaderLen, [4]int{fails, fails, fails, fails}},
		{"label off the end", at([]byte("\x05ab")), HeaderLen, [4]int{fails, fails, fails, fails}},
		{"no root", at([]byte("\x02ab")), HeaderLen, [4]int{fails, fails, fails, fails}},
		{"255 octets", at(longName(254), []byte{0}), HeaderLen, [4]int{267, 267, 267, 267}},
		{"256 octets", at(longName(255), []byte{0}), HeaderLen, [4]int{fails, fails, fails, fails}},
		// The length counts what the pointers lead to, too; a reader that
		// stops at the pointer cannot tell.
		{"255 octets through a pointer", at(longName(54), []byte{0}, longName(200), ptr(HeaderLen)), 67, [4]int{fails, 269, 269, 269}},
		{"256 octets through a pointer", at(longName(55), []byte{0}, longName(200), ptr(HeaderLen)), 68, [4]int{fails, 270, fails, fails}},
	}
	for _, tt := range tests {
		for i, rule := range []pointerRule{noPointer, endAtPointer, followPointers, followBackwards} {
			end, _, ok := skipName(tt.msg, tt.off, rule)
			if want := tt.ends[i]; ok != (want != fails) || ok && end != want {
				t.Errorf("%s, rule %d: end %d ok %v, want %d", tt.name, rule, end, ok, want)
			}
		}
	}
}

// chain returns a message whose question's name goes through hops
// compression pointers, forwards, to the name a.
func chain(hops int) []byte {
	msg := []byte{0, 1, 0x80, 0, 0, 1, 0, 0, 0, 0, 0, 0}
	first := HeaderLen + 2 + 4
	msg = append(msg, byte(0xC0|first>>8), byte(first), 0, 1, 0, 1)
	for i := 1; i < hops; i++ {
		next := len(msg) + 2
		msg = append(msg, byte(0xC0|next>>8), byte(next))
	}
	return append(msg, 1, 'a', 0)
}

// The bound on pointers is miekg/dns's, per name.
func TestNamePointerBound(t *testing.T) {
	query := []byte("\x00\x01\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x01A\x00\x00\x01\x00\x01")
	for _, tt := range []struct {
		hops int
		want bool
	}{{1, true}, {maxPointers, true}, {maxPointers + 1, false}} {
		answer := chain(tt.hops)
		if got := AnswerMatches(query, answer); got != tt.want {
			t.Errorf("%d pointers: AnswerMatches = %v", tt.hops, got)
		}
		var m dns.Msg
		if err := m.Unpack(answer); (err == nil) != tt.want {
			t.Errorf("%d pointers: miekg/dns says %v", tt.hops, err)
		}
	}
}

// A query whose answer record's owner name is too long only once its
// pointer is followed is not walked, so not padded: miekg/dns cannot read
// it either.
func TestRewriteLongNameThroughPointer(t *testing.T) {
	for _, tt := range []struct {
		inPlace int
		padded  bool
	}{{191, true}, {192, false}} {
		q := []byte{0, 1, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0}
		q = append(q, longName(63)...) // 63 octets and the root
		q = append(q, 0, 0, 1, 0, 1)
		q = append(q, longName(tt.inPlace)...)
		q = append(q, 0xC0, HeaderLen, 0, 1, 0, 1, 0, 0, 0, 0, 0, 4, 192, 0, 2, 1)
		var m dns.Msg
		if err := m.Unpack(q); (err == nil) != tt.padded {
			t.Fatalf("%d+64 octets: miekg/dns says %v", tt.inPlace, err)
		}
		out, _, _ := AppendUpstreamQuery(nil, q, Rewrite{PadBlock: 128})
		if padded := !bytes.Equal(out, q); padded != tt.padded {
			t.Errorf("%d+64 octets: padded = %v", tt.inPlace, padded)
		}
	}
}

func TestSameName(t *testing.T) {
	msg := func(s string) []byte { return append(make([]byte, HeaderLen), s...) }
	for _, tt := range []struct {
		a, b string
		want bool
	}{
		{"\x03WwW\x00", "\x03www\x00", true},
		{"\x03www\x00", "\x03wwx\x00", false},
		{"\x03www\x00", "\x04www.\x00", false},
		{"\x00", "\x00", true},
		{"\x01\xc4\x00", "\x01\xe4\x00", false}, // only ASCII folds
		{"\x03www\x00", "\x03www", false},
	} {
		_, _, got := sameName(msg(tt.a), HeaderLen, msg(tt.b), HeaderLen)
		if got != tt.want {
			t.Errorf("sameName(%q, %q) = %v", tt.a, tt.b, got)
		}
	}
	if got := QuestionString(append([]byte(strings.Repeat("\x01a", 3)), 0, 0, 1, 0, 1)); got != "a.a.a. A" {
		t.Errorf("QuestionString = %q", got)
	}
}
