package status_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/dotproxy/dotproxy/dnsmsg"
	"github.com/dotproxy/dotproxy/internal/status"
	"github.com/miekg/dns"
)

// ms is a time on the millisecond, as the encoding keeps it.
func ms(n int64) time.Time { return time.UnixMilli(n) }

func sample() *status.Report {
	return &status.Report{
		Version: "v1.2.3", Started: ms(1_700_000_000_000), Now: ms(1_700_000_042_500),
		Ready: false, Reason: "every upstream of the default route is down",
		Upstreams: []status.Upstream{
			{Route: "default", Name: "1.1.1.1:853", State: "up", Since: ms(1_700_000_000_000), Conns: 2, InFlight: 1,
				Latency: 12345 * time.Microsecond, Answers: 1000, Failures: 3,
				ErrorAt: ms(1_700_000_040_000), LastError: "upstream 1.1.1.1:853: io: read: connection reset by peer"},
			{Route: "corp", Name: "[2001:db8::53]:853", State: "down", Since: ms(1_700_000_041_000),
				Failures: 7, ErrorAt: ms(1_700_000_042_000), LastError: "upstream [2001:db8::53]:853: connect: no route to host"},
			{Route: "default", Name: "9.9.9.9:853", State: "probation", Since: ms(1_700_000_030_000)},
		},
	}
}

// answer wraps lines in the DNS answer the proxy gives, with ID 7.
func answer(tb testing.TB, lines []string) []byte {
	tb.Helper()
	q, err := dnsmsg.ParseQuery(status.Query(7))
	if err != nil {
		tb.Fatal(err)
	}
	return dnsmsg.LocalReply(&q, dnsmsg.RcodeSuccess, lines, dnsmsg.MaxMessage)
}

func TestLinesRoundTrip(t *testing.T) {
	want := sample()
	got, err := status.DecodeAnswer(answer(t, want.Lines()), 7)
	if err != nil {
		t.Fatal(err)
	}
	if got.Version != want.Version || !got.Started.Equal(want.Started) || !got.Now.Equal(want.Now) ||
		got.Ready != want.Ready || got.Reason != want.Reason || got.Truncated || len(got.Upstreams) != len(want.Upstreams) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
	for i, u := range want.Upstreams {
		g := got.Upstreams[i]
		if g.Route != u.Route || g.Name != u.Name || g.State != u.State || !g.Since.Equal(u.Since) ||
			g.Conns != u.Conns || g.InFlight != u.InFlight || g.Latency != u.Latency || g.Answers != u.Answers ||
			g.Failures != u.Failures || !g.ErrorAt.Equal(u.ErrorAt) || g.LastError != u.LastError {
			t.Errorf("upstream %d: got %+v\nwant %+v", i, g, u)
		}
	}
	ready := &status.Report{Version: "dev", Ready: true, Reason: "ignored when ready"}
	got, err = status.Decode(ready.Lines())
	if err != nil || !got.Ready || got.Reason != "" {
		t.Fatalf("ready: %+v %v", got, err)
	}
}

// TestLinesAreSafe: what the encoder is given cannot break a line or a
// field, however odd: a space in a name, a newline or a terminal escape in
// an error, an error longer than a line holds.
func TestLinesAreSafe(t *testing.T) {
	r := &status.Report{Version: "v 1", Ready: true, Upstreams: []status.Upstream{{
		Route: "", Name: "a b", State: "up", ErrorAt: ms(5),
		LastError: "first\nsecond\x1b[31mred " + strings.Repeat("é", 400),
	}}}
	lines := r.Lines()
	for _, l := range lines {
		if len(l) > status.LineMax || strings.ContainsFunc(l, unicode.IsControl) {
			t.Fatalf("line of %d bytes: %q", len(l), l)
		}
	}
	got, err := status.Decode(lines)
	if err != nil {
		t.Fatal(err)
	}
	u := got.Upstreams[0]
	if got.Version != "v_1" || u.Route != "-" || u.Name != "a_b" || !strings.HasPrefix(u.LastError, "first second [31mred é") {
		t.Fatalf("%+v", got)
	}
}

// TestDecodeRejects: each way the lines can be wrong is an error that
// wraps ErrBadStatus, never a panic nor a half-read report.
func TestDecodeRejects(t *testing.T) {
	head := "dotproxy-status/1 version=v started=1 now=2 ready=yes"
	up := "upstream route=default name=a state=up since=1 conns=0 inflight=0 latency_us=0 answers=0 failures=0"
	tests := map[string][]string{
		"nothing":               nil,
		"another program":       {"v=spf1 -all"},
		"another version":       {"dotproxy-status/2 version=v started=1 now=2 ready=yes"},
		"no version number":     {"dotproxy-status/ version=v started=1 now=2 ready=yes"},
		"field without =":       {head + " junk"},
		"field with empty key":  {head + " =x"},
		"field twice":           {head + " now=3"},
		"no now":                {"dotproxy-status/1 version=v started=1 ready=yes"},
		"ready maybe":           {"dotproxy-status/1 version=v started=1 now=2 ready=maybe"},
		"not ready, no reason":  {"dotproxy-status/1 version=v started=1 now=2 ready=no"},
		"time not a number":     {"dotproxy-status/1 version=v started=soon now=2 ready=yes"},
		"time past 9999":        {"dotproxy-status/1 version=v started=1 now=999999999999999999 ready=yes"},
		"negative count":        {head, strings.Replace(up, "conns=0", "conns=-1", 1)},
		"count too large":       {head, strings.Replace(up, "answers=0", "answers=99999999999999999999", 1)},
		"upstream with no name": {head, strings.Replace(up, " name=a", "", 1)},
		"error time, no error":  {head, up + " error_at=5"},
	}
	for name, lines := range tests {
		if r, err := status.Decode(lines); !errors.Is(err, status.ErrBadStatus) || r != nil {
			t.Errorf("%s: %+v, %v", name, r, err)
		}
	}
	// What a later version may add is skipped.
	r, err := status.Decode([]string{head + " uptime_ns=5", "route name=x", up + " weight=3"})
	if err != nil || len(r.Upstreams) != 1 {
		t.Fatalf("unknown keys and kinds of line: %+v %v", r, err)
	}
}

// TestDecodeAnswerRejects: the DNS message around the lines.
func TestDecodeAnswerRejects(t *testing.T) {
	good := answer(t, sample().Lines())
	refused := func() []byte {
		q, _ := dnsmsg.ParseQuery(status.Query(7))
		return dnsmsg.Reply(&q, dnsmsg.RcodeRefused)
	}()
	if _, err := status.DecodeAnswer(refused, 7); !errors.Is(err, status.ErrRefused) {
		t.Fatalf("REFUSED: %v", err)
	}
	servfail := bytes.Clone(good)
	servfail[3] = servfail[3]&0xF0 | dnsmsg.RcodeServFail
	tests := map[string][]byte{
		"another ID": good,
		"short":      good[:5],
		"a query":    status.Query(7),
		"SERVFAIL":   servfail,
		"cut short":  good[:len(good)-3],
		"no records": answer(t, nil),
		"not status": answer(t, []string{"hello"}),
	}
	for name, msg := range tests {
		id := uint16(7)
		if name == "another ID" {
			id = 8
		}
		if r, err := status.DecodeAnswer(msg, id); !errors.Is(err, status.ErrBadStatus) || r != nil {
			t.Errorf("%s: %+v, %v", name, r, err)
		}
	}
}

// TestDecodeAnswerTruncated: an answer cut at the limit says so, and the
// table does too.
func TestDecodeAnswerTruncated(t *testing.T) {
	lines := sample().Lines()
	q, _ := dnsmsg.ParseQuery(status.Query(7))
	full := dnsmsg.LocalReply(&q, dnsmsg.RcodeSuccess, lines, dnsmsg.MaxMessage)
	cut := dnsmsg.LocalReply(&q, dnsmsg.RcodeSuccess, lines, len(full)-1)
	r, err := status.DecodeAnswer(cut, 7)
	if err != nil || !r.Truncated || len(r.Upstreams) != 2 {
		t.Fatalf("%+v %v", r, err)
	}
	var b strings.Builder
	status.Render(&b, r)
	if !strings.Contains(b.String(), "2 upstreams shown: the rest did not fit") {
		t.Fatalf("%s", b.String())
	}
}

// TestRenderTable pins the table as a person reads it.
func TestRenderTable(t *testing.T) {
	var b strings.Builder
	status.Render(&b, sample())
	want := `dotproxy v1.2.3, up 42s, NOT READY: every upstream of the default route is down

ROUTE    UPSTREAM            STATE      SINCE  CONNS  INFLIGHT  LATENCY  ANSWERS  FAILURES  LAST ERROR
default  1.1.1.1:853         up         42s    2      1         12.3ms   1000     3         2s ago: upstream 1.1.1.1:853: io: read: connection reset by peer
corp     [2001:db8::53]:853  down       1s     0      0         -        0        7         0s ago: upstream [2001:db8::53]:853: connect: no route to host
default  9.9.9.9:853         probation  12s    0      0         -        0        0         -
`
	if got := b.String(); got != want {
		t.Fatalf("got:\n%s\nwant:\n%s", got, want)
	}
}

// TestQueryIsReadByMiekg: the question is what it says.
func TestQueryIsReadByMiekg(t *testing.T) {
	var m dns.Msg
	if err := m.Unpack(status.Query(0x4242)); err != nil {
		t.Fatal(err)
	}
	if m.Id != 0x4242 || m.RecursionDesired || len(m.Question) != 1 || m.Question[0] !=
		(dns.Question{Name: "status.dotproxy.", Qtype: dns.TypeTXT, Qclass: dns.ClassCHAOS}) {
		t.Fatalf("%v", &m)
	}
}

// FuzzDecodeAnswer reads any bytes as `dotproxy status` reads its socket,
// then renders what it read: nothing may panic, and nothing from the
// socket may reach the terminal as a control character.
func FuzzDecodeAnswer(f *testing.F) {
	f.Add(answer(f, sample().Lines()))
	f.Add(answer(f, (&status.Report{Ready: true}).Lines()))
	f.Fuzz(func(t *testing.T, msg []byte) {
		if len(msg) < 2 {
			return
		}
		r, err := status.DecodeAnswer(msg, dnsmsg.ID(msg))
		if err != nil {
			if r != nil {
				t.Fatal("a report with an error")
			}
			return
		}
		var b strings.Builder
		status.Render(&b, r)
		for _, c := range b.String() {
			if c != '\n' && unicode.IsControl(c) {
				t.Fatalf("control character %U in the table:\n%q", c, b.String())
			}
		}
	})
}

// FuzzDecode reads any lines, one per "\n", as Decode reads the records of
// an answer: a report or an ErrBadStatus, never a panic, and no control
// character in any text it returns.
func FuzzDecode(f *testing.F) {
	f.Add(strings.Join(sample().Lines(), "\n"))
	f.Fuzz(func(t *testing.T, data string) {
		r, err := status.Decode(strings.Split(data, "\n"))
		if err != nil {
			if !errors.Is(err, status.ErrBadStatus) || r != nil {
				t.Fatalf("%+v, %v", r, err)
			}
			return
		}
		texts := []string{r.Version, r.Reason}
		for _, u := range r.Upstreams {
			texts = append(texts, u.Route, u.Name, u.State, u.LastError)
		}
		for _, s := range texts {
			if strings.ContainsFunc(s, unicode.IsControl) {
				t.Fatalf("control character in %q", s)
			}
		}
	})
}
