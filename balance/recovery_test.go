package balance_test

import (
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dotproxy/dotproxy/balance"
	"github.com/dotproxy/dotproxy/internal/dottest"
	"github.com/dotproxy/dotproxy/upstream"
	"github.com/miekg/dns"
)

// These tests check that each way a query goes wrong is recovered by the
// layer that owns it, over real pools and DoT servers: a lost query and a
// dead connection by the pool, a broken upstream by the Balancer, and that
// a slow answer is an answer. They assert the client's answer and the
// upstreams' health, never how long anything took.

// pair is a Balancer, in failover order, over one pool for each server.
type pair struct {
	bal    *balance.Balancer
	names  []string
	events healthEvents
	start  bool // send queries with Start rather than Resolve
}

// bothPaths runs test with queries sent through Resolve, which waits, and
// through Start, whose answers are handed on by the pools' readers: each
// way a query goes wrong must be recovered the same on both.
func bothPaths(t *testing.T, test func(t *testing.T, start bool)) {
	t.Run("Resolve", func(t *testing.T) { test(t, false) })
	t.Run("Start", func(t *testing.T) { test(t, true) })
}

// finished is a balance.Finisher that hands the end on a channel.
type finished chan resolution

type resolution struct {
	ans  []byte
	from fmt.Stringer
	err  error
}

func (f finished) Resolved(ans []byte, from fmt.Stringer, err error) { f <- resolution{ans, from, err} }

// resolve sends wire with a 4 s deadline, DOTPROXY_QUERY_TIMEOUT's default,
// by the pair's path.
func (p *pair) resolve(t *testing.T, wire []byte) ([]byte, fmt.Stringer, error) {
	deadline := time.Now().Add(4 * time.Second)
	if !p.start {
		return p.bal.Resolve(wire, deadline)
	}
	fin := make(finished, 1)
	p.bal.Start(wire, deadline, fin)
	r := dottest.Await(t, fin, "the query's end")
	return r.ans, r.from, r.err
}

func newPair(t *testing.T, start bool, attempt time.Duration, servers ...*dottest.Server) *pair {
	t.Helper()
	p := &pair{events: make(healthEvents, 64), start: start}
	var ups []balance.Member
	for _, srv := range servers {
		pool, err := upstream.New(upstream.Config{
			Addr:           srv.Addr,
			ServerName:     "dns.test",
			RootCAs:        srv.CA.Pool,
			AttemptTimeout: attempt,
			ProbeName:      probeName,
			Logger:         slog.New(slog.DiscardHandler),
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { pool.Close() })
		ups = append(ups, balance.Member{Upstream: pool, Observer: p.events.bind(pool.String())})
		p.names = append(p.names, pool.String())
	}
	bal, err := balance.New(ups, balance.Config{
		Policy:          balance.Failover,
		MaxRetries:      2,
		ProbeName:       probeName,
		ProbeMaxBackoff: 200 * time.Millisecond,
		AttemptTimeout:  attempt,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bal.Close() })
	p.bal = bal
	return p
}

// ask resolves name and returns the upstream that answered; it fails the test on an error or
// a wrong answer.
func (p *pair) ask(t *testing.T, name string, id uint16) string {
	t.Helper()
	q := new(dns.Msg)
	q.SetQuestion(name, dns.TypeA)
	q.Id = id
	wire, err := q.Pack()
	if err != nil {
		t.Fatal(err)
	}
	ans, from, err := p.resolve(t, wire)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	var m dns.Msg
	if err := m.Unpack(ans); err != nil || m.Id != id || len(m.Answer) != 1 {
		t.Fatalf("%s: bad answer %v (%v)", name, &m, err)
	}
	return from.String()
}

// noHealthChange fails the test if any upstream went down or came up. A
// failure is reported before the attempt that saw it returns, so none can
// be on its way once the queries have their answers.
func (p *pair) noHealthChange(t *testing.T) {
	t.Helper()
	select {
	case e := <-p.events:
		t.Fatalf("health changed: %+v", e)
	default:
	}
}

// TestLostQueryOnBusyConnection: the resolver drops one query on a
// connection that keeps answering others. The pool sends it once more on
// the same connection; the client gets the first upstream's answer, and no
// upstream is marked down.
func TestLostQueryOnBusyConnection(t *testing.T) {
	bothPaths(t, func(t *testing.T, start bool) {
		var dropped atomic.Bool
		lossy := dottest.Start(t, dottest.Options{
			Concurrent: true,
			Handler: func(q *dns.Msg) *dns.Msg {
				if q.Question[0].Name == "lost.dns.test." && !dropped.Swap(true) {
					return nil
				}
				return dottest.DefaultHandler(q)
			},
		})
		p := newPair(t, start, time.Second, lossy, dottest.Start(t, dottest.Options{}))
		done := make(chan struct{})
		busy := make(chan string, 1)
		go func() {
			defer close(busy)
			for i := range 100000 { // bounded: done comes long before
				select {
				case <-done:
					return
				default:
				}
				q := new(dns.Msg)
				q.SetQuestion(fmt.Sprintf("busy%d.dns.test.", i), dns.TypeA)
				wire, _ := q.Pack()
				if _, _, err := p.resolve(t, wire); err != nil {
					busy <- err.Error()
					return
				}
			}
		}()
		from := p.ask(t, "lost.dns.test.", 1)
		close(done)
		if msg, failed := <-busy; failed {
			t.Fatalf("a query on the busy connection failed: %s", msg)
		}
		if !dropped.Load() {
			t.Fatal("the query was never dropped")
		}
		if from != p.names[0] {
			t.Fatalf("answered by %s, want %s: the pool did not recover the lost query", from, p.names[0])
		}
		p.noHealthChange(t)
	})
}

// TestHalfOpenConnection: the first connection to the first upstream goes
// silent (the resolver reads and never answers, nor closes). The pool's
// probe goes unanswered too, so the connection is retired and the upstream
// marked down; the query is answered by the second upstream, and the first
// comes back once a probe on a new connection is answered.
func TestHalfOpenConnection(t *testing.T) {
	bothPaths(t, func(t *testing.T, start bool) {
		halfOpen := dottest.Start(t, dottest.Options{Silent: func(conn int) bool { return conn == 0 }})
		p := newPair(t, start, time.Second, halfOpen, dottest.Start(t, dottest.Options{}))
		if from := p.ask(t, "half.dns.test.", 2); from != p.names[1] {
			t.Fatalf("answered by %s, want %s", from, p.names[1])
		}
		if e := dottest.Await(t, p.events, "the half-open upstream marked down"); e != (healthEvent{p.names[0], false}) {
			t.Fatalf("health change %+v, want %s down", e, p.names[0])
		}
		if e := dottest.Await(t, p.events, "the upstream back after a probe"); e != (healthEvent{p.names[0], true}) {
			t.Fatalf("health change %+v, want %s up", e, p.names[0])
		}
		if from := p.ask(t, "again.dns.test.", 3); from != p.names[0] {
			t.Fatalf("answered by %s after recovery, want %s", from, p.names[0])
		}
	})
}

// TestSlowNameIsAnAnswer: the resolver takes 1.2 s over one name, as a
// public resolver does over a cold one. The client gets that answer and the
// upstream stays up. With one upstream the assertions hold however long a
// loaded machine makes the wait: a retry goes to the same upstream.
func TestSlowNameIsAnAnswer(t *testing.T) {
	bothPaths(t, func(t *testing.T, start bool) {
		slow := dottest.Start(t, dottest.Options{
			Concurrent: true,
			Delay: func(q *dns.Msg) time.Duration {
				if q.Question[0].Name == "cold.dns.test." {
					return 1200 * time.Millisecond
				}
				return 0
			},
		})
		p := newPair(t, start, upstream.DefaultAttemptTimeout, slow)
		if from := p.ask(t, "cold.dns.test.", 4); from != p.names[0] {
			t.Fatalf("answered by %s", from)
		}
		p.noHealthChange(t)
		if from := p.ask(t, "warm.dns.test.", 5); from != p.names[0] {
			t.Fatalf("answered by %s", from)
		}
	})
}
