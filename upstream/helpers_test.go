package upstream_test

import (
	"bytes"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dotproxy/dotproxy/internal/dottest"
	"github.com/dotproxy/dotproxy/upstream"
	"github.com/miekg/dns"
)

// recorder is an Observer that counts events and reports handshakes on a
// channel.
type recorder struct {
	opened, closed, failed, exchanged, resent, unmatched, mismatched atomic.Int64

	mu      sync.Mutex
	stages  []upstream.Stage
	reasons []upstream.CloseReason

	handshakes chan bool // resumed flag of each opened connection
	closes     chan upstream.CloseReason
}

func newRecorder() *recorder {
	return &recorder{handshakes: make(chan bool, 4096), closes: make(chan upstream.CloseReason, 4096)}
}

func (r *recorder) ConnOpened(_ time.Duration, resumed bool) {
	r.opened.Add(1)
	r.handshakes <- resumed
}

func (r *recorder) ConnClosed(reason upstream.CloseReason) {
	r.closed.Add(1)
	r.mu.Lock()
	r.reasons = append(r.reasons, reason)
	r.mu.Unlock()
	r.closes <- reason
}

func (r *recorder) ConnFailed(stage upstream.Stage) {
	r.failed.Add(1)
	r.mu.Lock()
	r.stages = append(r.stages, stage)
	r.mu.Unlock()
}

func (r *recorder) Exchanged(time.Duration, int, int) { r.exchanged.Add(1) }
func (r *recorder) Resent()                           { r.resent.Add(1) }
func (r *recorder) Unmatched()                        { r.unmatched.Add(1) }
func (r *recorder) Mismatched()                       { r.mismatched.Add(1) }

func (r *recorder) failedStages() []upstream.Stage {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]upstream.Stage(nil), r.stages...)
}

// newPool returns a pool trusting srv's CA, closed when the test ends.
func newPool(tb testing.TB, srv *dottest.Server, mod func(*upstream.Config)) (*upstream.Pool, *recorder) {
	tb.Helper()
	rec := newRecorder()
	cfg := upstream.Config{
		Addr:       srv.Addr,
		ServerName: "dns.test",
		RootCAs:    srv.CA.Pool,
		Observer:   rec,
		Logger:     slog.New(slog.DiscardHandler),
		FastOpen:   true, // as dotproxy runs by default
	}
	if mod != nil {
		mod(&cfg)
	}
	p, err := upstream.New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { p.Close() })
	return p, rec
}

// query packs a query for name with the given ID.
func query(tb testing.TB, name string, id uint16) []byte {
	tb.Helper()
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), dns.TypeA)
	m.Id = id
	b, err := m.Pack()
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// checkAnswer fails unless ans is a well-formed answer to q.
func checkAnswer(tb testing.TB, q, ans []byte) {
	tb.Helper()
	var qm, am dns.Msg
	if err := qm.Unpack(q); err != nil {
		tb.Fatal(err)
	}
	if err := am.Unpack(ans); err != nil {
		tb.Fatalf("answer does not parse: %v", err)
	}
	if am.Id != qm.Id {
		tb.Fatalf("answer ID %d, want the query's %d", am.Id, qm.Id)
	}
	if !am.Response || len(am.Question) != 1 || am.Question[0] != qm.Question[0] {
		tb.Fatalf("answer %v does not answer %v", am.Question, qm.Question)
	}
}

// within returns the deadline d from now.
func within(d time.Duration) time.Time { return time.Now().Add(d) }

func containsName(raw []byte, name string) bool {
	return bytes.Contains(raw, []byte(name))
}
