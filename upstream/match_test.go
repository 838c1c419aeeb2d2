package upstream_test

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dotproxy/dotproxy/internal/dottest"
	"github.com/dotproxy/dotproxy/upstream"
	"github.com/miekg/dns"
)

// tampers are resolvers that answer with an ID in flight but not the answer
// to the query sent under it.
var tampers = []struct {
	name string
	opts func(bad func(conn int) bool) dottest.Options
}{
	{"IDs swapped between queries", func(bad func(int) bool) dottest.Options {
		return dottest.Options{SwapIDs: bad}
	}},
	{"another name", func(bad func(int) bool) dottest.Options {
		return dottest.Options{Tamper: func(conn int, a *dns.Msg) {
			if bad(conn) {
				a.Question[0].Name = "evil." + a.Question[0].Name
			}
		}}
	}},
	{"another type", func(bad func(int) bool) dottest.Options {
		return dottest.Options{Tamper: func(conn int, a *dns.Msg) {
			if bad(conn) {
				a.Question[0].Qtype = dns.TypeMX
			}
		}}
	}},
	{"QR unset", func(bad func(int) bool) dottest.Options {
		return dottest.Options{Tamper: func(conn int, a *dns.Msg) {
			if bad(conn) {
				a.Response = false
			}
		}}
	}},
	{"another opcode", func(bad func(int) bool) dottest.Options {
		return dottest.Options{Tamper: func(conn int, a *dns.Msg) {
			if bad(conn) {
				a.Opcode = dns.OpcodeStatus
			}
		}}
	}},
}

// A connection whose answers do not answer their queries is retired after
// a few, and every query still gets its own answer on the next connection:
// no client ever sees an answer to another question.
func TestMismatchedAnswersNeverReachTheCaller(t *testing.T) {
	for _, tc := range tampers {
		t.Run(tc.name, func(t *testing.T) {
			first := func(conn int) bool { return conn == 0 }
			srv := dottest.Start(t, tc.opts(first))
			p, rec := newPool(t, srv, func(c *upstream.Config) { c.MaxConns = 1 })
			const clients = 14
			var wg sync.WaitGroup
			qs, answers, errs := make([][]byte, clients), make([][]byte, clients), make([]error, clients)
			for i := range clients {
				qs[i] = query(t, fmt.Sprintf("client%d.example.", i), uint16(1000+i))
				wg.Add(1)
				go func() {
					defer wg.Done()
					answers[i], errs[i] = p.Exchange(qs[i], within(10*time.Second))
				}()
			}
			wg.Wait()
			for i := range clients {
				if errs[i] != nil {
					t.Errorf("query %d failed: %v", i, errs[i])
					continue
				}
				checkAnswer(t, qs[i], answers[i])
			}
			if n := rec.mismatched.Load(); n < 4 {
				t.Errorf("%d mismatched answers counted, want at least the 4 that retire a connection", n)
			}
			if got := firstReason(t, rec); got != upstream.CloseError {
				t.Errorf("the tampering connection closed with %q, want %q", got, upstream.CloseError)
			}
		})
	}
}

func firstReason(t *testing.T, rec *recorder) upstream.CloseReason {
	t.Helper()
	return dottest.Await(t, rec.closes, "the tampering connection to close")
}

// A lone wrong answer is dropped; the query is sent once more, and when no
// right answer comes, it ends at its deadline rather than with the wrong
// one. One stray answer does not retire the connection.
func TestMismatchedAnswerEndsAtTheDeadline(t *testing.T) {
	for _, tc := range tampers[1:] { // a swap needs two queries
		t.Run(tc.name, func(t *testing.T) {
			always := func(int) bool { return true }
			srv := dottest.Start(t, tc.opts(always))
			p, rec := newPool(t, srv, func(c *upstream.Config) {
				c.AttemptTimeout = 200 * time.Millisecond
			})
			q := query(t, "lone.example.", 4242)
			ans, err := p.Exchange(q, within(400*time.Millisecond))
			if !errors.Is(err, upstream.ErrDeadline) {
				t.Fatalf("Exchange = %x, %v; want no answer and ErrDeadline", ans, err)
			}
			if n := rec.mismatched.Load(); n != 2 {
				t.Errorf("%d mismatched answers counted, want 2 (the query and its resend)", n)
			}
			if n := rec.resent.Load(); n != 1 {
				t.Errorf("%d resends, want 1", n)
			}
			if n := rec.closed.Load(); n != 0 {
				t.Errorf("%d connections closed; two stray answers must not retire one", n)
			}
		})
	}
}

// The same holds for queries sent by Start, answered by the connection's
// reader with no goroutine waiting.
func TestMismatchedAnswersNeverReachStart(t *testing.T) {
	srv := dottest.Start(t, dottest.Options{Tamper: func(conn int, a *dns.Msg) {
		if conn == 0 && strings.HasPrefix(a.Question[0].Name, "start") {
			a.Question[0].Name = "evil.example."
		}
	}})
	p, rec := openPool(t, srv, func(c *upstream.Config) { c.MaxConns = 1 })
	const clients = 8
	dones := make([]ended, clients)
	qs := make([][]byte, clients)
	for i := range clients {
		qs[i] = query(t, fmt.Sprintf("start%d.example.", i), uint16(2000+i))
		dones[i] = make(ended, 1)
		// Held, so that all are on the connection before it is retired.
		p.StartHeld(qs[i], within(10*time.Second), dones[i])
	}
	p.Flush()
	for i, d := range dones {
		e := dottest.Await(t, d, "an answer")
		if e.err != nil {
			t.Errorf("query %d failed: %v", i, e.err)
			continue
		}
		checkAnswer(t, qs[i], e.ans)
	}
	if rec.mismatched.Load() < 4 {
		t.Errorf("%d mismatched answers counted, want at least 4", rec.mismatched.Load())
	}
}
