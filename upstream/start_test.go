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

// TestStartNeverDeclines: with no connection open, a started query waits
// for the one it causes to be dialed and is answered on it; on a closed
// pool it ends at once with ErrClosed, and a short one with ErrShortQuery,
// each before Start returns, with nothing sent.
func TestStartNeverDeclines(t *testing.T) {
	srv := dottest.Start(t, dottest.Options{})
	p, _ := newPool(t, srv, nil)
	q := query(t, "cold.example", 0xC01D)
	e := startQuery(t, p, q, within(5*time.Second))
	if e.err != nil {
		t.Fatal(e.err)
	}
	checkAnswer(t, q, e.ans)

	short := make(ended, 1)
	p.Start(q[:5], within(5*time.Second), short)
	if e := immediate(t, short); !errors.Is(e.err, upstream.ErrShortQuery) {
		t.Fatalf("short query: err = %v, want ErrShortQuery", e.err)
	}
	p.Close()
	closed := make(ended, 1)
	p.Start(query(t, "closed.example", 1), within(5*time.Second), closed)
	if e := immediate(t, closed); !errors.Is(e.err, upstream.ErrClosed) {
		t.Fatalf("closed pool: err = %v, want ErrClosed", e.err)
	}
	if got := srv.Queries(); got != 1 {
		t.Fatalf("server read %d queries, want the first only", got)
	}
	if got := p.InFlight(); got != 0 {
		t.Fatalf("InFlight = %d, want 0", got)
	}
}

// immediate returns the end already told to done, failing if there is
// none: it must have come before Start returned.
func immediate(t *testing.T, done ended) endOf {
	t.Helper()
	select {
	case e := <-done:
		return e
	default:
		t.Fatal("Start returned without ending the query")
		return endOf{}
	}
}

// TestStartWaitsInLineForRoom: with one connection of one slot, queries
// started while it is taken wait in line and are written, in the order
// they came, as answers free the slot; one whose deadline passes in line
// ends with ErrDeadline without being sent.
func TestStartWaitsInLineForRoom(t *testing.T) {
	release := make(chan struct{})
	srv := dottest.Start(t, dottest.Options{Hold: func(q *dns.Msg) {
		if q.Question[0].Name == "first.example." {
			<-release
		}
	}})
	p, _ := openPool(t, srv, func(c *upstream.Config) { c.MaxConns, c.MaxInFlight, c.AttemptTimeout = 1, 1, time.Minute })
	first := make(ended, 1)
	p.Start(query(t, "first.example", 1), within(10*time.Second), first)
	lapsed := make(ended, 1)
	p.Start(query(t, "lapsed.example", 2), within(50*time.Millisecond), lapsed)
	const n = 4
	order := make(ended, n)
	for i := range n {
		p.Start(query(t, fmt.Sprintf("next%d.example", i), uint16(10+i)), within(10*time.Second), order)
	}
	if e := dottest.Await(t, lapsed, "the lapsed query's end"); !errors.Is(e.err, upstream.ErrDeadline) {
		t.Fatalf("lapsed: err = %v, want ErrDeadline", e.err)
	}
	close(release)
	if e := dottest.Await(t, first, "the first answer"); e.err != nil {
		t.Fatal(e.err)
	}
	for i := range n {
		e := dottest.Await(t, order, "an answer in line")
		if e.err != nil {
			t.Fatal(e.err)
		}
		if id := binary.BigEndian.Uint16(e.ans); id != uint16(10+i) {
			t.Fatalf("answer %d is for query %d: the line was overtaken", i, id)
		}
	}
	if got := srv.Queries(); got != 1+1+n {
		t.Fatalf("server read %d queries, want %d: the opening one, first and the %d in line, not the lapsed one", got, 2+n, n)
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
	p.Start(query(t, "never.example", 1), within(time.Minute), done)
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
		p.StartHeld(qs[i], within(5*time.Second), done)
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
	p.Start(q, deadline, done)
	return dottest.Await(t, done, "the query's end")
}
