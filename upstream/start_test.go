package upstream_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dotproxy/dotproxy/internal/dottest"
	"github.com/dotproxy/dotproxy/upstream"
	"github.com/miekg/dns"
)

// ended is a Done that hands each end of a query on a channel.
type ended chan endOf

type endOf struct {
	ans []byte
	err error
}

func (e ended) ExchangeDone(ans []byte, err error) { e <- endOf{ans, err} }

// openPool returns a pool with one connection open, so that Start has
// room on it: opened by a query answered on it.
func openPool(t *testing.T, srv *dottest.Server, mod func(*upstream.Config)) (*upstream.Pool, *recorder) {
	t.Helper()
	p, rec := newPool(t, srv, mod)
	if _, err := p.Exchange(query(t, "open.example", 1), within(5*time.Second)); err != nil {
		t.Fatal(err)
	}
	return p, rec
}

func TestStartAnswers(t *testing.T) {
	srv := dottest.Start(t, dottest.Options{})
	p, rec := openPool(t, srv, nil)
	q := query(t, "start.example", 0xBEEF)
	e := startQuery(t, p, q, within(5*time.Second))
	if e.err != nil {
		t.Fatal(e.err)
	}
	checkAnswer(t, q, e.ans)
	if got := rec.exchanged.Load(); got != 2 {
		t.Fatalf("Exchanged events = %d, want 2: the opening query's and this", got)
	}
	if got := p.InFlight(); got != 0 {
		t.Fatalf("InFlight = %d after the answer, want 0", got)
	}
}

// TestStartDeclinesWithoutRoom: with no open connection, Start sends
// nothing and says so, for the caller to use Exchange, which may dial.
func TestStartDeclinesWithoutRoom(t *testing.T) {
	srv := dottest.Start(t, dottest.Options{})
	p, _ := newPool(t, srv, nil)
	if p.Start(query(t, "cold.example", 1), within(5*time.Second), make(ended, 1)) {
		t.Fatal("Start accepted a query with no connection open")
	}
	p.Close()
	if p.Start(query(t, "closed.example", 1), within(5*time.Second), make(ended, 1)) {
		t.Fatal("Start accepted a query on a closed pool")
	}
	if got := srv.Queries(); got != 0 {
		t.Fatalf("server read %d queries, want none", got)
	}
}

// TestStartResentAfterReset: the connection a started query is on is reset
// under it; the query goes out again on a new connection and its Done gets
// the answer.
func TestStartResentAfterReset(t *testing.T) {
	var reset atomic.Bool
	srv := dottest.Start(t, dottest.Options{ResetOn: func(q *dns.Msg) bool {
		return q.Question[0].Name == "reset.example." && !reset.Swap(true)
	}})
	p, rec := openPool(t, srv, nil)
	q := query(t, "reset.example", 9)
	e := startQuery(t, p, q, within(5*time.Second))
	if e.err != nil {
		t.Fatal(e.err)
	}
	checkAnswer(t, q, e.ans)
	if got := rec.resent.Load(); got != 1 {
		t.Fatalf("resent = %d, want 1", got)
	}
	if got := srv.Accepted(); got != 2 {
		t.Fatalf("server accepted %d connections, want 2", got)
	}
}

// TestStartSilentConnection: a started query on a connection that answers
// nothing, its probe included, ends with ErrSilent.
func TestStartSilentConnection(t *testing.T) {
	var silent atomic.Bool
	srv := dottest.Start(t, dottest.Options{Handler: func(q *dns.Msg) *dns.Msg {
		if silent.Load() {
			return nil
		}
		return dottest.DefaultHandler(q)
	}})
	p, rec := openPool(t, srv, func(c *upstream.Config) { c.AttemptTimeout = 400 * time.Millisecond })
	silent.Store(true)
	if e := startQuery(t, p, query(t, "silent.example", 10), within(10*time.Second)); !errors.Is(e.err, upstream.ErrSilent) {
		t.Fatalf("err = %v, want ErrSilent", e.err)
	}
	if r := dottest.Await(t, rec.closes, "close event"); r != upstream.CloseError {
		t.Fatalf("close reason %q, want %q", r, upstream.CloseError)
	}
	if got := p.InFlight(); got != 0 {
		t.Fatalf("InFlight = %d after the end, want 0", got)
	}
}

func TestStartDeadline(t *testing.T) {
	p := silencedPool(t)
	if e := startQuery(t, p, query(t, "never.example", 1), within(50*time.Millisecond)); !errors.Is(e.err, upstream.ErrDeadline) {
		t.Fatalf("err = %v, want ErrDeadline", e.err)
	}
}

// TestStartEndsOnClose: closing the pool ends the queries started on it.
func TestStartEndsOnClose(t *testing.T) {
	p := silencedPool(t)
	done := make(ended, 1)
	if !p.Start(query(t, "never.example", 1), within(time.Minute), done) {
		t.Fatal("Start declined with a connection open")
	}
	p.Close()
	if e := dottest.Await(t, done, "the end"); !errors.Is(e.err, upstream.ErrClosed) {
		t.Fatalf("err = %v, want ErrClosed", e.err)
	}
}

// silencedPool returns a pool with a connection open to a server that has
// stopped answering.
func silencedPool(t *testing.T) *upstream.Pool {
	t.Helper()
	var silent atomic.Bool
	srv := dottest.Start(t, dottest.Options{Handler: func(q *dns.Msg) *dns.Msg {
		if silent.Load() {
			return nil
		}
		return dottest.DefaultHandler(q)
	}})
	p, _ := openPool(t, srv, nil)
	silent.Store(true)
	return p
}

// TestStartHeldWaitsForFlush: queries started held stay unwritten until
// Flush, then all are answered.
func TestStartHeldWaitsForFlush(t *testing.T) {
	srv := dottest.Start(t, dottest.Options{})
	p, _ := openPool(t, srv, nil)
	const n = 8
	done := make(ended, n)
	qs := make([][]byte, n)
	for i := range qs {
		qs[i] = query(t, fmt.Sprintf("held%d.example", i), uint16(i))
		if !p.StartHeld(qs[i], within(5*time.Second), done) {
			t.Fatal("StartHeld declined with a connection open")
		}
	}
	if got := srv.Queries(); got != 1 {
		t.Fatalf("server read %d queries before Flush, want only the opening one", got)
	}
	p.Flush()
	seen := map[uint16]bool{}
	for range n {
		e := dottest.Await(t, done, "an answer")
		if e.err != nil {
			t.Fatal(e.err)
		}
		id := binary.BigEndian.Uint16(e.ans)
		checkAnswer(t, qs[id], e.ans)
		seen[id] = true
	}
	if len(seen) != n {
		t.Fatalf("answers for %d distinct queries, want %d", len(seen), n)
	}
	p.Flush() // nothing held: a no-op
}

// startQuery sends q with Start on a pool that has room and waits for its
// end.
func startQuery(t *testing.T, p *upstream.Pool, q []byte, deadline time.Time) endOf {
	t.Helper()
	done := make(ended, 1)
	if !p.Start(q, deadline, done) {
		t.Fatal("Start declined with a connection open")
	}
	return dottest.Await(t, done, "the query's end")
}
