package upstream_test

import (
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dotproxy/dotproxy/internal/dottest"
	"github.com/dotproxy/dotproxy/upstream"
	"github.com/miekg/dns"
)

func TestExchangeRestoresID(t *testing.T) {
	srv := dottest.Start(t, dottest.Options{})
	p, rec := newPool(t, srv, nil)
	for _, id := range []uint16{0, 1, 0xBEEF, 0xFFFF} {
		q := query(t, "example.org", id)
		orig := slices.Clone(q)
		ans, err := p.Exchange(q, within(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		checkAnswer(t, q, ans)
		if !slices.Equal(q, orig) {
			t.Fatal("Exchange modified the query")
		}
	}
	if got := rec.exchanged.Load(); got != 4 {
		t.Fatalf("Exchanged events = %d, want 4", got)
	}
}

func TestExchangeOverIPv6(t *testing.T) {
	srv := dottest.Start(t, dottest.Options{Addr: "[::1]:0"})
	p, _ := newPool(t, srv, func(c *upstream.Config) { c.ServerName = "::1" })
	q := query(t, "v6.example", 7)
	ans, err := p.Exchange(q, within(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	checkAnswer(t, q, ans)
}

// exchangeMany sends n queries at once, each with the same client ID so that
// only the pool's own IDs can tell them apart, and checks every answer.
func exchangeMany(t *testing.T, p *upstream.Pool, n int) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			q := query(t, fmt.Sprintf("q%d.example", i), 42)
			ans, err := p.Exchange(q, within(20*time.Second))
			if err != nil {
				errs <- err
				return
			}
			var am dns.Msg
			if err := am.Unpack(ans); err != nil || am.Id != 42 ||
				am.Question[0].Name != fmt.Sprintf("q%d.example.", i) {
				errs <- fmt.Errorf("query %d got a wrong answer: %v %v", i, err, am.Question)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestOutOfOrderAnswers(t *testing.T) {
	const n = 16
	srv := dottest.Start(t, dottest.Options{Reverse: n})
	p, _ := newPool(t, srv, func(c *upstream.Config) { c.MaxConns = 1 })
	exchangeMany(t, p, n)
	if got := srv.Accepted(); got != 1 {
		t.Fatalf("server accepted %d connections, want 1", got)
	}
}

func TestThousandQueriesOnOneConnection(t *testing.T) {
	srv := dottest.Start(t, dottest.Options{Concurrent: true})
	p, _ := newPool(t, srv, func(c *upstream.Config) {
		c.MaxConns = 1
		c.MaxInFlight = 1000
		// What is counted is multiplexing, not recovery: on a starved
		// machine an answer may take longer than the default's quarter
		// (when a probe would follow the query) without anything lost.
		c.AttemptTimeout = 16 * time.Second
	})
	exchangeMany(t, p, 1000)
	if got := srv.Accepted(); got != 1 {
		t.Fatalf("server accepted %d connections, want 1", got)
	}
	if got := srv.Queries(); got != 1000 {
		t.Fatalf("server read %d queries, want 1000", got)
	}
}

func TestInOrderServerPipelined(t *testing.T) {
	srv := dottest.Start(t, dottest.Options{})
	p, _ := newPool(t, srv, func(c *upstream.Config) { c.MaxConns = 1 })
	exchangeMany(t, p, 200)
}

func TestNewConnectionOnlyWhenFull(t *testing.T) {
	// Four slots per connection and a server that holds every answer
	// until eight queries are in: exactly two connections must open.
	arrived := make(chan struct{}, 8)
	release := make(chan struct{})
	srv := dottest.Start(t, dottest.Options{Concurrent: true, Hold: func(*dns.Msg) {
		arrived <- struct{}{}
		<-release
	}})
	p, _ := newPool(t, srv, func(c *upstream.Config) {
		c.MaxConns = 8
		c.MaxInFlight = 4
	})
	done := make(chan struct{})
	go func() {
		defer close(done)
		exchangeMany(t, p, 8)
	}()
	for range 8 {
		dottest.Await(t, arrived, "query at the server")
	}
	close(release)
	dottest.Await(t, done, "answers")
	if got := srv.Accepted(); got != 2 {
		t.Fatalf("server accepted %d connections, want 2", got)
	}
}

func TestServerClosingConnectionsFailsNoQuery(t *testing.T) {
	// The server hangs up after every answer, as a resolver closing idle
	// connections does; no query may notice.
	srv := dottest.Start(t, dottest.Options{CloseAfter: 1})
	p, rec := newPool(t, srv, nil)
	for i := range 20 {
		q := query(t, fmt.Sprintf("n%d.example", i), uint16(i))
		ans, err := p.Exchange(q, within(5*time.Second))
		if err != nil {
			t.Fatalf("query %d: %v", i, err)
		}
		checkAnswer(t, q, ans)
	}
	if rec.opened.Load() < 2 {
		t.Fatalf("only %d connections opened; the server closed each after one answer", rec.opened.Load())
	}
}

func TestResetMidAnswerIsResent(t *testing.T) {
	srv := dottest.Start(t, dottest.Options{ResetMidAnswer: func(conn int) bool { return conn == 0 }})
	p, rec := newPool(t, srv, nil)
	q := query(t, "reset.example", 9)
	ans, err := p.Exchange(q, within(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	checkAnswer(t, q, ans)
	if rec.resent.Load() != 1 {
		t.Fatalf("resent = %d, want 1", rec.resent.Load())
	}
	if r := dottest.Await(t, rec.closes, "close event"); r != upstream.CloseServerClosed {
		t.Fatalf("close reason %q, want %q", r, upstream.CloseServerClosed)
	}
}

// TestSilentConnectionIsRetired: a connection that reads nothing, not even
// the answer to the probe sent behind the query, is retired and its query
// fails with ErrSilent, for balance to take elsewhere; the pool then opens
// a new connection for the next query.
func TestSilentConnectionIsRetired(t *testing.T) {
	srv := dottest.Start(t, dottest.Options{Silent: func(conn int) bool { return conn == 0 }})
	p, rec := newPool(t, srv, func(c *upstream.Config) { c.AttemptTimeout = 400 * time.Millisecond })
	_, err := p.Exchange(query(t, "silent.example", 10), within(10*time.Second))
	if !errors.Is(err, upstream.ErrSilent) {
		t.Fatalf("err = %v, want ErrSilent", err)
	}
	if r := dottest.Await(t, rec.closes, "close event"); r != upstream.CloseError {
		t.Fatalf("close reason %q, want %q", r, upstream.CloseError)
	}
	// The server got the probe on the silent connection too.
	if got := srv.Queries(); got < 2 {
		t.Fatalf("server saw %d queries, want the query and a probe", got)
	}
	q := query(t, "next.example", 11)
	ans, err := p.Exchange(q, within(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	checkAnswer(t, q, ans)
}

// TestLostQueryIsResent: on a connection that answers other queries, a
// query whose answer never comes is sent once more, and the second copy's
// answer is the query's answer; the connection stays.
func TestLostQueryIsResent(t *testing.T) {
	var dropped atomic.Bool
	srv := dottest.Start(t, dottest.Options{
		Concurrent: true,
		Handler: func(q *dns.Msg) *dns.Msg {
			if q.Question[0].Name == "lost.example." && !dropped.Swap(true) {
				return nil // the first copy is lost
			}
			return dottest.DefaultHandler(q)
		},
	})
	// An attempt timeout long enough that the busy loop below, on a loaded
	// machine under the race detector, never leaves the connection with
	// nothing read for half of it, which would retire it as silent.
	p, rec := newPool(t, srv, func(c *upstream.Config) { c.AttemptTimeout = 2 * time.Second; c.MaxConns = 1 })
	// Keep the connection busy, answering others, while the lost query
	// waits: a probe would do the same.
	stop := make(chan struct{})
	busy := make(chan error, 1)
	go func() {
		for i := range 100000 { // bounded: stop comes long before
			select {
			case <-stop:
				busy <- nil
				return
			default:
			}
			if _, err := p.Exchange(query(t, fmt.Sprintf("busy%d.example", i), uint16(i)), within(10*time.Second)); err != nil {
				busy <- err
				return
			}
		}
		busy <- nil
	}()
	q := query(t, "lost.example", 12)
	ans, err := p.Exchange(q, within(10*time.Second))
	close(stop)
	if err != nil {
		t.Fatal(err)
	}
	checkAnswer(t, q, ans)
	if err := <-busy; err != nil {
		t.Fatalf("a query on the busy connection failed: %v", err)
	}
	if got := rec.resent.Load(); got < 1 {
		t.Fatalf("resent = %d, want at least 1", got)
	}
	if got := srv.Accepted(); got != 1 {
		t.Fatalf("%d connections, want the one", got)
	}
}

func TestDeadlineWithSilentServer(t *testing.T) {
	srv := dottest.Start(t, dottest.Options{Silent: func(int) bool { return true }})
	p, _ := newPool(t, srv, nil)
	_, err := p.Exchange(query(t, "never.example", 1), within(50*time.Millisecond))
	if !errors.Is(err, upstream.ErrDeadline) {
		t.Fatalf("err = %v, want deadline exceeded", err)
	}
}

func TestUnmatchedAnswerIsDropped(t *testing.T) {
	srv := dottest.Start(t, dottest.Options{Handler: func(q *dns.Msg) *dns.Msg {
		a := dottest.DefaultHandler(q)
		if q.Question[0].Name == "stray.example." {
			a.Id += 0x8000 // an answer to nothing in flight, nor soon to be
		}
		return a
	}})
	p, rec := newPool(t, srv, func(c *upstream.Config) { c.MaxConns = 1 })
	// Open the connection first, so that the short deadline below cannot
	// expire before the query is written.
	if _, err := p.Exchange(query(t, "open.example", 2), within(5*time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Exchange(query(t, "stray.example", 3), within(50*time.Millisecond)); !errors.Is(err, upstream.ErrDeadline) {
		t.Fatalf("err = %v, want deadline exceeded", err)
	}
	// The connection stays usable: the next query is answered on it. The
	// server answers in order, so the stray answer has been read by then.
	q := query(t, "fine.example", 4)
	ans, err := p.Exchange(q, within(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	checkAnswer(t, q, ans)
	if rec.unmatched.Load() != 1 {
		t.Fatalf("unmatched = %d, want 1", rec.unmatched.Load())
	}
}

func TestWrongCertificateSendsNoPlaintext(t *testing.T) {
	ca := dottest.NewCA(t)
	cert := ca.Leaf(t, "other.test")
	srv := dottest.Start(t, dottest.Options{Cert: &cert})
	p, rec := newPool(t, srv, func(c *upstream.Config) { c.RootCAs = ca.Pool })
	_, err := p.Exchange(query(t, "secretname.example", 5), within(5*time.Second))
	var de *upstream.DialError
	if !errors.As(err, &de) || de.Stage != upstream.StageVerify {
		t.Fatalf("err = %v, want a verify DialError", err)
	}
	if slices.Contains(rec.failedStages(), upstream.StageVerify) == false {
		t.Fatalf("stages %v lack verify", rec.failedStages())
	}
	dottest.Await(t, srv.ConnClosed(), "server side of the rejected connection to end")
	raw := srv.Raw()
	if len(raw) == 0 || raw[0] != 0x16 {
		t.Fatalf("the first byte on the wire is not a TLS handshake record: % x", raw[:min(len(raw), 8)])
	}
	if containsName(raw, "secretname") {
		t.Fatal("the query name crossed the wire in plaintext")
	}
	if srv.Queries() != 0 {
		t.Fatalf("server read %d queries", srv.Queries())
	}
}

func TestUnknownCAIsRejected(t *testing.T) {
	srv := dottest.Start(t, dottest.Options{})
	other := dottest.NewCA(t)
	p, _ := newPool(t, srv, func(c *upstream.Config) { c.RootCAs = other.Pool })
	_, err := p.Exchange(query(t, "x.example", 5), within(5*time.Second))
	var de *upstream.DialError
	if !errors.As(err, &de) || de.Stage != upstream.StageVerify {
		t.Fatalf("err = %v, want a verify DialError", err)
	}
}

func TestPins(t *testing.T) {
	srv := dottest.Start(t, dottest.Options{})
	pin := func(s string) [sha256.Size]byte {
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			t.Fatal(err)
		}
		return [sha256.Size]byte(b)
	}
	tests := []struct {
		name string
		pins [][sha256.Size]byte
		ok   bool
	}{
		{"CA pinned", [][sha256.Size]byte{pin(dottest.Pin(srv.CA.Cert()))}, true},
		{"other key pinned", [][sha256.Size]byte{sha256.Sum256([]byte("nothing"))}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, _ := newPool(t, srv, func(c *upstream.Config) { c.Pins = tt.pins })
			_, err := p.Exchange(query(t, "pin.example", 5), within(5*time.Second))
			if tt.ok && err != nil {
				t.Fatal(err)
			}
			if !tt.ok && !errors.Is(err, upstream.ErrPinMismatch) {
				t.Fatalf("err = %v, want ErrPinMismatch", err)
			}
		})
	}
}

func TestConnectRefused(t *testing.T) {
	srv := dottest.Start(t, dottest.Options{})
	addr := srv.Addr
	srv.Close()
	for _, fastOpen := range []bool{false, true} {
		t.Run(fmt.Sprint("fastopen=", fastOpen), func(t *testing.T) {
			p, err := upstream.New(upstream.Config{
				Addr: addr, ServerName: "dns.test", RootCAs: srv.CA.Pool, FastOpen: fastOpen,
				Logger: slog.New(slog.DiscardHandler),
			})
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			_, err = p.Exchange(query(t, "x.example", 5), within(5*time.Second))
			var de *upstream.DialError
			if !errors.As(err, &de) || de.Stage != upstream.StageConnect {
				t.Fatalf("err = %v, want a connect DialError", err)
			}
		})
	}
}

func TestIdleConnectionsClose(t *testing.T) {
	srv := dottest.Start(t, dottest.Options{})
	p, rec := newPool(t, srv, func(c *upstream.Config) { c.IdleTimeout = 20 * time.Millisecond })
	q := query(t, "idle.example", 1)
	if _, err := p.Exchange(q, within(5*time.Second)); err != nil {
		t.Fatal(err)
	}
	if r := dottest.Await(t, rec.closes, "idle close"); r != upstream.CloseIdle {
		t.Fatalf("close reason %q, want idle", r)
	}
	dottest.Await(t, srv.ConnClosed(), "server to see the close")
	if st := p.Stats(); st.Open != 0 {
		t.Fatalf("open = %d after idle close", st.Open)
	}
}

func TestWarmConnectionAndResumption(t *testing.T) {
	srv := dottest.Start(t, dottest.Options{})
	p, rec := newPool(t, srv, func(c *upstream.Config) {
		c.WarmConns = 1
		c.IdleTimeout = 30 * time.Millisecond
	})
	// Opened with no query at all, then recycled when idle: the second
	// handshake resumes the first session.
	if resumed := dottest.Await(t, rec.handshakes, "warm connection"); resumed {
		t.Fatal("first handshake claims resumption")
	}
	// TLS 1.3 tickets arrive after the handshake: the first connection
	// must read before it can resume, so give it a query.
	q := query(t, "warm.example", 1)
	ans, err := p.Exchange(q, within(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	checkAnswer(t, q, ans)
	dottest.Await(t, rec.closes, "idle recycle")
	if resumed := dottest.Await(t, rec.handshakes, "second warm connection"); !resumed {
		t.Fatal("second handshake did not resume the session")
	}
}

func TestCloseFailsQueriesInFlight(t *testing.T) {
	srv := dottest.Start(t, dottest.Options{Silent: func(int) bool { return true }})
	p, _ := newPool(t, srv, nil)
	errs := make(chan error, 10)
	for i := range 10 {
		go func() {
			_, err := p.Exchange(query(t, "stuck.example", uint16(i)), within(time.Minute))
			errs <- err
		}()
	}
	dottest.Await(t, srv.ConnAccepted(), "connection")
	p.Close()
	for range 10 {
		if err := dottest.Await(t, errs, "query to end"); !errors.Is(err, upstream.ErrClosed) {
			t.Fatalf("err = %v, want ErrClosed", err)
		}
	}
}

func TestShortQueryRejected(t *testing.T) {
	srv := dottest.Start(t, dottest.Options{})
	p, _ := newPool(t, srv, nil)
	if _, err := p.Exchange([]byte{1, 2, 3}, within(time.Minute)); !errors.Is(err, upstream.ErrShortQuery) {
		t.Fatalf("err = %v", err)
	}
}

// TestWaitersServedInOrder: when the pool is full, the queries waiting for
// room are handed freed slots one at a time, first come first served.
func TestWaitersServedInOrder(t *testing.T) {
	release := make(chan struct{})
	seen := make(chan string, 16)
	srv := dottest.Start(t, dottest.Options{
		Hold: func(q *dns.Msg) {
			if q.Question[0].Name == "first.example." {
				<-release
			}
		},
		Inspect: func(raw []byte) {
			var m dns.Msg
			if m.Unpack(raw) == nil && len(m.Question) == 1 && m.Question[0].Name != "." {
				seen <- m.Question[0].Name
			}
		},
	})
	p, _ := newPool(t, srv, func(c *upstream.Config) {
		c.MaxConns, c.MaxInFlight = 1, 1
		c.AttemptTimeout = time.Minute // no probe or resend while the first is held
	})
	errs := make(chan error, 8)
	send := func(name string) {
		go func() {
			_, err := p.Exchange(query(t, name, 1), within(time.Minute))
			errs <- err
		}()
	}
	send("first.example")
	if got := dottest.Await(t, seen, "the first query"); got != "first.example." {
		t.Fatalf("server saw %s first", got)
	}
	// The others queue behind it, one by one, in this order.
	names := []string{"second.example.", "third.example.", "fourth.example."}
	for i, name := range names {
		send(name)
		for tries := 0; p.InFlight() != i+2; tries++ { // bounded wait for it to be queued
			if tries == 10000 {
				t.Fatalf("query %s never queued", name)
			}
			time.Sleep(time.Millisecond)
		}
	}
	close(release)
	for _, want := range names {
		if got := dottest.Await(t, seen, want); got != want {
			t.Fatalf("server saw %s, want %s: a later query overtook an earlier one", got, want)
		}
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}
