package dnsmsg

import (
	"errors"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

func TestNewQuery(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		qtype uint16
		want  string
	}{
		{name: "root", in: ".", qtype: TypeNS, want: "."},
		{name: "empty is root", in: "", qtype: TypeNS, want: "."},
		{name: "no trailing dot", in: "example.com", qtype: dns.TypeA, want: "example.com."},
		{name: "trailing dot", in: "probe.dns.test.", qtype: dns.TypeSOA, want: "probe.dns.test."},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			msg, err := NewQuery(0x1234, tc.in, tc.qtype)
			if err != nil {
				t.Fatal(err)
			}
			var m dns.Msg
			if err := m.Unpack(msg); err != nil {
				t.Fatalf("miekg/dns cannot unpack the query: %v", err)
			}
			if m.Id != 0x1234 || m.Response || !m.RecursionDesired || m.Opcode != dns.OpcodeQuery {
				t.Errorf("header = %+v", m.MsgHdr)
			}
			if len(m.Question) != 1 {
				t.Fatalf("questions = %d, want 1", len(m.Question))
			}
			q := m.Question[0]
			if q.Name != tc.want || q.Qtype != tc.qtype || q.Qclass != dns.ClassINET {
				t.Errorf("question = %v, want %s type %d IN", q, tc.want, tc.qtype)
			}
			if _, err := ParseQuery(msg); err != nil {
				t.Errorf("ParseQuery: %v", err)
			}
		})
	}
}

func TestNewQueryBadName(t *testing.T) {
	tests := []struct {
		name string
		in   string
	}{
		{name: "empty label", in: "a..b"},
		{name: "leading dot", in: ".a"},
		{name: "long label", in: strings.Repeat("x", 64) + ".test"},
		{name: "long name", in: strings.Repeat("abcdefg.", 32) + "test"},
		{name: "escape", in: `a\.b.test`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := NewQuery(1, tc.in, TypeNS); !errors.Is(err, ErrBadName) {
				t.Errorf("NewQuery(%q) error = %v, want ErrBadName", tc.in, err)
			}
		})
	}
}
