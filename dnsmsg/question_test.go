package dnsmsg_test

import (
	"testing"

	"github.com/dotproxy/dotproxy/dnsmsg"
	"github.com/miekg/dns"
)

func TestQuestionStringAgreesWithMiekg(t *testing.T) {
	for _, tt := range []struct {
		name  string
		qtype uint16
		want  string
	}{
		{".", dns.TypeNS, ". NS"},
		{"www.example.org.", dns.TypeAAAA, "www.example.org. AAAA"},
		{"_dns.resolver.arpa.", dns.TypeSVCB, "_dns.resolver.arpa. SVCB"},
		{`odd\.label\032x.example.`, dns.TypeTXT, `odd\.label\032x.example. TXT`},
		{"x.example.", 65280, "x.example. TYPE65280"},
	} {
		t.Run(tt.want, func(t *testing.T) {
			m := new(dns.Msg)
			m.SetQuestion(tt.name, tt.qtype)
			q, err := dnsmsg.ParseQuery(pack(t, m))
			if err != nil {
				t.Fatal(err)
			}
			if got := dnsmsg.QuestionString(q.Question); got != tt.want {
				t.Fatalf("QuestionString = %q, want %q", got, tt.want)
			}
			// miekg/dns writes the same name.
			if got, want := dnsmsg.QuestionString(q.Question), m.Question[0].Name+" "+dns.TypeToString[tt.qtype]; tt.qtype != 65280 && got != want {
				t.Fatalf("QuestionString = %q, miekg/dns says %q", got, want)
			}
		})
	}
	if got := dnsmsg.QuestionString(nil); got != "" {
		t.Fatalf("QuestionString(nil) = %q", got)
	}
}
