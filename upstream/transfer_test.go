package upstream_test

import (
	"errors"
	"testing"
	"time"

	"github.com/dotproxy/dotproxy/internal/dottest"
	"github.com/dotproxy/dotproxy/upstream"
	"github.com/miekg/dns"
)

func axfrQuery(t *testing.T, id uint16) []byte {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion("zone.example.", dns.TypeAXFR)
	m.Id = id
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// collect runs a transfer and returns the messages handed on, unpacked.
func collect(t *testing.T, p *upstream.Pool, q []byte) ([]*dns.Msg, bool, error) {
	t.Helper()
	var got []*dns.Msg
	passed, err := p.Transfer(q, within(10*time.Second), 5*time.Second, func(msg []byte) error {
		m := new(dns.Msg)
		if err := m.Unpack(msg); err != nil {
			t.Errorf("message %d does not parse: %v", len(got), err)
		}
		got = append(got, m)
		return nil
	})
	return got, passed, err
}

// Every message of a transfer is handed on, in order, with the query's ID,
// on a connection of its own that closes at the end; the pool's shared
// connections never see it.
func TestTransferPassesEveryMessage(t *testing.T) {
	srv := dottest.Start(t, dottest.Options{Stream: func(q *dns.Msg) []*dns.Msg {
		if q.Question[0].Qtype != dns.TypeAXFR {
			return nil
		}
		return dottest.ZoneTransfer(q, 250, 40)
	}})
	p, rec := openPool(t, srv, nil)
	got, passed, err := collect(t, p, axfrQuery(t, 0xA1F))
	if err != nil || !passed {
		t.Fatalf("Transfer: passed %v, %v", passed, err)
	}
	want := dottest.ZoneTransfer(&dns.Msg{Question: []dns.Question{{Name: "zone.example.", Qtype: dns.TypeAXFR, Qclass: dns.ClassINET}}}, 250, 40)
	if len(got) != len(want) {
		t.Fatalf("%d messages handed on, want %d", len(got), len(want))
	}
	records := 0
	for i, m := range got {
		if m.Id != 0xA1F {
			t.Errorf("message %d has ID %#x, want the query's", i, m.Id)
		}
		records += len(m.Answer)
	}
	if records != 252 {
		t.Errorf("%d records, want 252", records)
	}
	if s := p.Stats(); s.Open != 1 {
		t.Errorf("%d pooled connections, want the one the pool had", s.Open)
	}
	if got := dottest.Await(t, rec.closes, "the transfer's connection to close"); got != upstream.CloseIdle {
		t.Errorf("the transfer's connection closed with %q", got)
	}
}

// A resolver that refuses the transfer: the client gets its answer.
func TestTransferRefused(t *testing.T) {
	srv := dottest.Start(t, dottest.Options{Handler: func(q *dns.Msg) *dns.Msg {
		a := new(dns.Msg)
		a.SetRcode(q, dns.RcodeRefused)
		return a
	}})
	p, _ := newPool(t, srv, nil)
	got, passed, err := collect(t, p, axfrQuery(t, 9))
	if err != nil || !passed || len(got) != 1 || got[0].Rcode != dns.RcodeRefused {
		t.Fatalf("Transfer: %d messages, passed %v, %v; want the one REFUSED", len(got), passed, err)
	}
}

// A transfer cut off, or sent with another ID or question, fails with what
// was handed on said, so that the caller does not take part for a whole.
func TestTransferBroken(t *testing.T) {
	cases := []struct {
		name   string
		stream func(q *dns.Msg) []*dns.Msg
		passed int
	}{
		{"closed midway", func(q *dns.Msg) []*dns.Msg {
			return append(dottest.ZoneTransfer(q, 10, 4)[:2], nil)
		}, 2},
		{"another ID midway", func(q *dns.Msg) []*dns.Msg {
			msgs := dottest.ZoneTransfer(q, 10, 4)
			msgs[1].Id++
			return msgs
		}, 1},
		{"another question first", func(q *dns.Msg) []*dns.Msg {
			msgs := dottest.ZoneTransfer(q, 10, 4)
			msgs[0].Question[0].Name = "other.example."
			return msgs
		}, 0},
		{"no SOA first", func(q *dns.Msg) []*dns.Msg {
			msgs := dottest.ZoneTransfer(q, 10, 4)
			msgs[0].Answer = msgs[0].Answer[1:]
			return msgs
		}, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := dottest.Start(t, dottest.Options{Stream: tc.stream})
			p, _ := newPool(t, srv, nil)
			got, passed, err := collect(t, p, axfrQuery(t, 3))
			if err == nil {
				t.Fatal("a broken transfer ended without an error")
			}
			if len(got) != tc.passed || passed != (tc.passed > 0) {
				t.Fatalf("%d messages handed on (passed %v), want %d", len(got), passed, tc.passed)
			}
			if tc.name != "closed midway" && !errors.Is(err, upstream.ErrTransfer) {
				t.Errorf("err = %v, want ErrTransfer", err)
			}
		})
	}
}

// A transfer that stalls ends at its idle bound, and Close ends one under
// way at once.
func TestTransferBounded(t *testing.T) {
	release := make(chan struct{})
	srv := dottest.Start(t, dottest.Options{Stream: func(q *dns.Msg) []*dns.Msg {
		<-release
		return nil
	}})
	t.Cleanup(func() { close(release) })
	p, _ := newPool(t, srv, nil)
	start := time.Now()
	_, err := p.Transfer(axfrQuery(t, 4), within(10*time.Second), 50*time.Millisecond, func([]byte) error { return nil })
	if err == nil {
		t.Fatal("a stalled transfer ended without an error")
	}
	t.Logf("stalled transfer ended after %v: %v", time.Since(start), err)

	done := make(chan error, 1)
	go func() {
		_, err := p.Transfer(axfrQuery(t, 5), within(time.Minute), time.Minute, func([]byte) error { return nil })
		done <- err
	}()
	dottest.Await(t, srv.ConnAccepted(), "the first transfer's connection")
	dottest.Await(t, srv.ConnAccepted(), "the second transfer's connection")
	p.Close()
	if err := dottest.Await(t, done, "the transfer to end on Close"); err == nil {
		t.Fatal("a transfer cut by Close ended without an error")
	}
}

// Only zone transfer queries take this path.
func TestTransferRefusesOtherQueries(t *testing.T) {
	srv := dottest.Start(t, dottest.Options{})
	p, _ := newPool(t, srv, nil)
	if _, err := p.Transfer(query(t, "a.example.", 1), within(time.Second), time.Second, func([]byte) error { return nil }); !errors.Is(err, upstream.ErrTransfer) {
		t.Fatalf("err = %v, want ErrTransfer", err)
	}
}
