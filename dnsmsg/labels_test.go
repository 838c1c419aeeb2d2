package dnsmsg_test

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"

	"github.com/dotproxy/dotproxy/dnsmsg"
	"github.com/miekg/dns"
)

// readAll reads every label of msg's question name with a NameReader and
// returns them joined by dots, as sent; ok is false where the reader
// refused the message or the name.
func readAll(msg []byte) (string, bool) {
	r, ok := dnsmsg.QuestionName(msg)
	if !ok {
		return "", false
	}
	var labels []string
	for range 200 { // a name has at most 127 labels
		l, ok := r.Next()
		if !ok {
			return "", false
		}
		if len(l) == 0 {
			return strings.Join(labels, "."), true
		}
		labels = append(labels, string(l))
	}
	panic("NameReader never reached the root")
}

func TestQuestionName(t *testing.T) {
	packed := func(name string) []byte {
		m := new(dns.Msg)
		m.SetQuestion(name, dns.TypeA)
		b, err := m.Pack()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	hdr := func(qd uint16, rest ...byte) []byte {
		h := make([]byte, dnsmsg.HeaderLen)
		binary.BigEndian.PutUint16(h[4:], qd)
		return append(h, rest...)
	}
	// 4 labels of 63 octets, lengths included 256, with the root 257: one
	// too many; 3 of 63 and one of 61 make the longest name, 255.
	long := strings.Repeat(strings.Repeat("x", 63)+".", 3) + strings.Repeat("y", 61) + "."
	tests := []struct {
		name string
		msg  []byte
		want string
		ok   bool
	}{
		{"case kept", packed("www.Example.COM."), "www.Example.COM", true},
		{"root", packed("."), "", true},
		{"a dot inside a label", packed(`a\.b.example.`), "a.b.example", true},
		{"longest name", packed(long), long[:len(long)-1], true},
		{"name one octet too long", hdr(1, append(bytes.Repeat(append([]byte{63}, bytes.Repeat([]byte{'x'}, 63)...), 4), 0)...), "", false},
		{"no question", hdr(0, 3, 'w', 'w', 'w', 0), "", false},
		{"shorter than a header", []byte{0, 1, 0, 0, 0, 1}, "", false},
		{"header alone", hdr(1), "", false},
		{"pointer", hdr(1, 0xC0, 12), "", false},
		{"label runs off", hdr(1, 5, 'a', 'b'), "", false},
		{"no root", hdr(1, 2, 'a', 'b'), "", false},
		{"obsolete label type", hdr(1, 0x41, 'a', 0), "", false},
		// Only the name is read: what follows it does not matter here.
		{"name alone, no type", hdr(1, 1, 'a', 0), "a", true},
		{"two questions", hdr(2, 1, 'a', 0, 0, 1, 0, 1, 1, 'b', 0, 0, 1, 0, 1), "a", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := readAll(tt.msg)
			if got != tt.want || ok != tt.ok {
				t.Fatalf("got %q, %v; want %q, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

// Past its end a NameReader stays there: the root again after the root, a
// failure again after a failure.
func TestNameReaderStaysAtItsEnd(t *testing.T) {
	q, err := dnsmsg.NewQuery(1, "a.example", 1)
	if err != nil {
		t.Fatal(err)
	}
	r, _ := dnsmsg.QuestionName(q)
	for range 2 {
		r.Next()
	}
	for range 3 {
		if l, ok := r.Next(); !ok || len(l) != 0 {
			t.Fatalf("after the root: %q, %v", l, ok)
		}
	}
	bad := append(q[:dnsmsg.HeaderLen:dnsmsg.HeaderLen], 0xC0, 12)
	r, _ = dnsmsg.QuestionName(bad)
	for range 3 {
		if l, ok := r.Next(); ok {
			t.Fatalf("a pointer read as %q", l)
		}
	}
}

func BenchmarkQuestionName(b *testing.B) {
	q, err := dnsmsg.NewQuery(1, "www.corp.example.com", 1)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		r, _ := dnsmsg.QuestionName(q)
		for {
			l, ok := r.Next()
			if !ok || len(l) == 0 {
				break
			}
		}
	}
}
