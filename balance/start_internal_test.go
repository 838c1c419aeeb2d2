package balance

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dotproxy/dotproxy/internal/dottest"
)

// startingFake is a fakeUpstream that can also start a query: it runs the
// exchange in a goroutine of its own, or declines while full is set, as a
// pool with no room does.
type startingFake struct {
	*fakeUpstream
	full    atomic.Bool
	started atomic.Int64
}

func (s *startingFake) Start(q []byte, deadline time.Time, done exchangeDone) bool {
	if s.full.Load() {
		return false
	}
	s.started.Add(1)
	go func() { done.ExchangeDone(s.Exchange(q, deadline)) }()
	return true
}

// resolved is a Finisher that hands each end on a channel.
type resolved chan resolution

type resolution struct {
	ans  []byte
	from fmt.Stringer
	err  error
}

func (r resolved) Resolved(ans []byte, from fmt.Stringer, err error) { r <- resolution{ans, from, err} }

func newStartingBalancer(t *testing.T, cfg Config, acts ...behaviour) (*Balancer, []*startingFake) {
	t.Helper()
	var fakes []*startingFake
	var ups []Upstream
	for i, act := range acts {
		f := &startingFake{fakeUpstream: newFake(fmt.Sprintf("u%d", i), act)}
		fakes = append(fakes, f)
		ups = append(ups, f)
	}
	b, err := newBalancer(ups, cfg, seeded(1))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fakes {
		f.probe.Store(&b.probeMsg)
	}
	t.Cleanup(func() { b.Close() })
	return b, fakes
}

// start sends testQuery through Start and returns how it ended.
func start(t *testing.T, b *Balancer) resolution {
	t.Helper()
	fin := make(resolved, 1)
	if !b.Start(testQuery, far(), fin) {
		t.Fatal("Start declined")
	}
	return dottest.Await(t, fin, "the query's end")
}

func TestStartAnswers(t *testing.T) {
	b, fakes := newStartingBalancer(t, Config{Policy: Failover}, answer, answer)
	r := start(t, b)
	if r.err != nil || nameOf(r.from) != "u0" || len(r.ans) != len(testQuery) {
		t.Fatalf("got %v from %q (%d bytes), want an answer from u0", r.err, nameOf(r.from), len(r.ans))
	}
	if got := fakes[0].started.Load(); got != 1 {
		t.Fatalf("u0 started %d queries, want 1", got)
	}
}

// TestStartRetriesElsewhere: a started query whose upstream fails goes to
// the next one, as Resolve's would, and the failed upstream is marked down.
func TestStartRetriesElsewhere(t *testing.T) {
	rec := newRecorder()
	b, _ := newStartingBalancer(t, Config{Policy: Failover, MaxRetries: 1, Observer: rec}, refuse, answer)
	r := start(t, b)
	if r.err != nil || nameOf(r.from) != "u1" {
		t.Fatalf("got %v from %q, want an answer from u1", r.err, nameOf(r.from))
	}
	if e := rec.next(t); e != (event{"u0", false}) {
		t.Fatalf("health change %+v, want u0 down", e)
	}
	if got := rec.retried.Load(); got != 1 {
		t.Fatalf("retried = %d, want 1", got)
	}
}

func TestStartFailsWithNoRetry(t *testing.T) {
	b, _ := newStartingBalancer(t, Config{Policy: Failover}, refuse, answer)
	if r := start(t, b); !errors.Is(r.err, errRefused) || r.from != nil {
		t.Fatalf("got %v from %q, want the refusal", r.err, nameOf(r.from))
	}
}

// TestStartWaitsWhenUpstreamIsFull: an upstream that cannot start the
// query now gets it through Exchange, which may wait.
func TestStartWaitsWhenUpstreamIsFull(t *testing.T) {
	b, fakes := newStartingBalancer(t, Config{}, answer)
	fakes[0].full.Store(true)
	r := start(t, b)
	if r.err != nil || nameOf(r.from) != "u0" {
		t.Fatalf("got %v from %q, want an answer from u0", r.err, nameOf(r.from))
	}
	if got := fakes[0].started.Load(); got != 0 {
		t.Fatalf("u0 started %d queries, want none", got)
	}
	if got := fakes[0].calls.Load(); got != 1 {
		t.Fatalf("u0 exchanged %d queries, want 1", got)
	}
}

// TestStartDeclines: with hedging on, or an upstream that cannot start
// queries, Start does nothing and leaves the query to Resolve.
func TestStartDeclines(t *testing.T) {
	hedged, fakes := newStartingBalancer(t, Config{HedgeAfter: time.Millisecond}, answer, answer)
	if hedged.Start(testQuery, far(), make(resolved, 1)) {
		t.Fatal("Start accepted a query with hedging on")
	}
	plain := newTestBalancer(t, testPool(1), Config{})
	if plain.Start(testQuery, far(), make(resolved, 1)) {
		t.Fatal("Start accepted a query for an upstream that cannot start one")
	}
	past, _ := newStartingBalancer(t, Config{}, answer)
	if past.Start(testQuery, time.Now().Add(-time.Second), make(resolved, 1)) {
		t.Fatal("Start accepted a query past its deadline")
	}
	for _, f := range fakes {
		if f.calls.Load() != 0 {
			t.Fatalf("%s got a query", f.name)
		}
	}
}

// holdingFake is a startingFake that can hold queries until Flush.
type holdingFake struct {
	*startingFake
	mu   sync.Mutex
	held []func()
}

func (h *holdingFake) StartHeld(q []byte, deadline time.Time, done exchangeDone) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.held = append(h.held, func() { h.Start(q, deadline, done) })
	return true
}

func (h *holdingFake) Flush() {
	h.mu.Lock()
	held := h.held
	h.held = nil
	h.mu.Unlock()
	for _, f := range held {
		f()
	}
}

// TestStartHeldAndFlush: StartHeld leaves queries with the upstream's
// StartHeld, and Flush reaches every upstream.
func TestStartHeldAndFlush(t *testing.T) {
	var ups []Upstream
	var fakes []*holdingFake
	for i := range 2 {
		f := &holdingFake{startingFake: &startingFake{fakeUpstream: newFake(fmt.Sprintf("u%d", i), answer)}}
		fakes = append(fakes, f)
		ups = append(ups, f)
	}
	b, err := newBalancer(ups, Config{Policy: RoundRobin}, seeded(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	fin := make(resolved, 4)
	for range 4 {
		if !b.StartHeld(testQuery, far(), fin) {
			t.Fatal("StartHeld declined")
		}
	}
	for _, f := range fakes {
		if got := f.started.Load(); got != 0 {
			t.Fatalf("%s started %d queries before Flush", f.name, got)
		}
	}
	b.Flush()
	for range 4 {
		if r := dottest.Await(t, fin, "an answer"); r.err != nil {
			t.Fatal(r.err)
		}
	}
	for _, f := range fakes {
		if got := f.started.Load(); got != 2 {
			t.Fatalf("%s started %d queries, want 2 of the 4 in turn", f.name, got)
		}
	}
}
