package balance

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/dotproxy/dotproxy/internal/dottest"
)

// resolved is a Finisher that hands each end on a channel.
type resolved chan resolution

func (r resolved) Resolved(ans []byte, from fmt.Stringer, err error) { r <- resolution{ans, from, err} }

func newStartingBalancer(t *testing.T, cfg Config, obs *recorder, acts ...behaviour) (*Balancer, []*fakeUpstream) {
	t.Helper()
	var fakes []*fakeUpstream
	for i, act := range acts {
		fakes = append(fakes, newFake(fmt.Sprintf("u%d", i), act))
	}
	var b *Balancer
	if obs != nil {
		b = newTestBalancer(t, fakes, cfg, obs)
	} else {
		b = newTestBalancer(t, fakes, cfg)
	}
	return b, fakes
}

// start sends testQuery through Start and returns how it ended.
func start(t *testing.T, b *Balancer) resolution {
	t.Helper()
	fin := make(resolved, 1)
	b.Start(testQuery, far(), fin)
	return dottest.Await(t, fin, "the query's end")
}

func TestStartAnswers(t *testing.T) {
	b, fakes := newStartingBalancer(t, Config{Policy: Failover}, nil, answer, answer)
	r := start(t, b)
	if r.err != nil || nameOf(r.from) != "u0" || len(r.answer) != len(testQuery) {
		t.Fatalf("got %v from %q (%d bytes), want an answer from u0", r.err, nameOf(r.from), len(r.answer))
	}
	if got := fakes[0].started.Load(); got != 1 {
		t.Fatalf("u0 started %d queries, want 1", got)
	}
}

// TestStartRetriesElsewhere: a started query whose upstream fails goes to
// the next one, as Resolve's would, and the failed upstream is marked down.
func TestStartRetriesElsewhere(t *testing.T) {
	rec := newRecorder()
	b, _ := newStartingBalancer(t, Config{Policy: Failover, MaxRetries: 1}, rec, refuse, answer)
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
	b, _ := newStartingBalancer(t, Config{Policy: Failover}, nil, refuse, answer)
	if r := start(t, b); !errors.Is(r.err, errRefused) || r.from != nil {
		t.Fatalf("got %v from %q, want the refusal", r.err, nameOf(r.from))
	}
}

// TestStartPastDeadline: a query whose deadline has passed ends at once
// with a timeout, and no upstream gets it.
func TestStartPastDeadline(t *testing.T) {
	b, fakes := newStartingBalancer(t, Config{}, nil, answer)
	fin := make(resolved, 1)
	b.Start(testQuery, time.Now().Add(-time.Second), fin)
	select {
	case r := <-fin:
		if !isTimeout(r.err) {
			t.Fatalf("err = %v, want a timeout", r.err)
		}
	default:
		t.Fatal("Start returned without ending the query")
	}
	if got := fakes[0].started.Load(); got != 0 {
		t.Fatalf("u0 got %d queries", got)
	}
}

// holdingFake is a fakeUpstream that holds queries until Flush.
type holdingFake struct {
	*fakeUpstream
	mu   sync.Mutex
	held []func()
}

func (h *holdingFake) StartHeld(q []byte, deadline time.Time, done Done) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.held = append(h.held, func() { h.Start(q, deadline, done) })
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
	var fakes []*holdingFake
	for i := range 2 {
		fakes = append(fakes, &holdingFake{fakeUpstream: newFake(fmt.Sprintf("u%d", i), answer)})
	}
	b, err := newBalancer(members(fakes), Config{Policy: RoundRobin}, seeded(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	fin := make(resolved, 4)
	for range 4 {
		b.StartHeld(testQuery, far(), fin)
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
