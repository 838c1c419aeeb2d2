package balance

import (
	"bytes"
	"fmt"
	"sync"
	"time"
)

// Finisher receives the end of a query sent by Balancer.Start: the answer
// and the Observer of the upstream that gave it, or the error with
// Config.Unanswered. It is an
// alias of an unnamed interface, so that the package that hands queries in
// names the same type without importing this one.
type Finisher = interface {
	Resolved(answer []byte, upstream fmt.Stringer, err error)
}

// Start sends query to an upstream chosen by the policy and returns at once;
// fin is told the answer, whatever its rcode, and the Observer of the
// upstream that gave it, or the error, exactly once, by whichever goroutine
// ends the query: an upstream connection's reader, a timer, or this one
// before Start returns. query must stay unchanged until then. SERVFAIL from
// an upstream is an answer, not retried. When an attempt fails, the query
// goes to another upstream, up to MaxRetries times, until deadline; with
// HedgeAfter set, a query still unanswered after that long also goes to a
// second upstream that is up, and the first answer wins. While every
// upstream is unreachable (see Balancer), fin is told ErrAllDown at once,
// before Start returns, and no upstream gets the query.
//
// It is the only way a query enters the Balancer: no goroutine waits for a
// query, and every attempt, retry and hedge is started by the goroutine that
// ended the one before, or by the hedge's timer.
func (b *Balancer) Start(query []byte, deadline time.Time, fin Finisher) {
	b.start(query, deadline, fin, false)
}

// StartHeld is Start, except that the first attempt may wait unwritten
// until Flush, so that a burst of queries leaves in as few writes as it
// can. The caller must call Flush before it waits for anything.
func (b *Balancer) StartHeld(query []byte, deadline time.Time, fin Finisher) {
	b.start(query, deadline, fin, true)
}

// Flush writes the queries that StartHeld left waiting.
func (b *Balancer) Flush() {
	for i := range b.hosts {
		b.hosts[i].up.Flush()
	}
}

func (b *Balancer) start(query []byte, deadline time.Time, fin Finisher, hold bool) {
	now := time.Now()
	if !now.Before(deadline) {
		fin.Resolved(nil, b.cfg.Unanswered, errDeadline)
		return
	}
	var tried uint64
	h := b.choose(&tried)
	if h == nil {
		fin.Resolved(nil, nil, ErrAllDown)
		return
	}
	r := runs.Get().(*run)
	r.mu.Lock()
	r.b, r.query, r.deadline, r.fin, r.tried = b, query, deadline, fin, tried
	if b.hedging {
		// The attempt that loses to a hedge goes on after fin is told,
		// and the caller may reuse its buffer by then.
		r.query = bytes.Clone(query)
		r.pending++ // the hedge timer, until it runs or is stopped
		r.hedgeArmed = true
		// Made afresh, not pooled: a timer belongs to the testing/synctest
		// bubble it was made in, if any.
		r.hedge = time.AfterFunc(b.cfg.HedgeAfter, r.onHedge)
	}
	a := r.nextLocked(h, now)
	r.mu.Unlock()
	a.send(hold)
}

// run is one query from Start to its end: its attempts, one at a time, or
// two once hedged. It is recycled once it has ended and none of its
// attempts, nor its hedge timer, can touch it any more.
type run struct {
	mu       sync.Mutex  // guards the fields below
	hedge    *time.Timer // runs onHedge, when hedging
	b        *Balancer
	query    []byte
	deadline time.Time
	fin      Finisher
	tried    uint64 // the upstreams tried, see choose
	retries  int    // attempts made after one failed
	pending  int    // attempts out, and the hedge timer while armed
	finished bool   // fin has been told, or is being told

	// hedgeArmed is set while the hedge timer counts in pending: from
	// Start until it runs or is stopped.
	hedgeArmed bool
}

var runs = sync.Pool{New: func() any { return new(run) }}

// attempt is one try of a run's query on one upstream; it is the Done the
// upstream tells. Attempts are pooled.
type attempt struct {
	r       *run
	h       *host
	start   time.Time
	wasDown bool
	until   time.Time // the attempt's share of the query's time
}

var attempts = sync.Pool{New: func() any { return new(attempt) }}

// nextLocked returns a new attempt of r's query on h, counted in pending.
func (r *run) nextLocked(h *host, now time.Time) *attempt {
	a := attempts.Get().(*attempt)
	a.r, a.h, a.start = r, h, now
	a.wasDown = h.state.Load() == stateDown
	a.until = r.b.share(now, r.deadline, r.b.cfg.MaxRetries-r.retries)
	h.served.Add(1)
	r.pending++
	if r.b.hedging {
		// Close waits for the attempts that lose to a hedge, which go on
		// after their queries have been answered.
		r.b.wg.Add(1)
	}
	return a
}

// send hands the attempt to its upstream.
func (a *attempt) send(hold bool) {
	if hold {
		a.h.up.StartHeld(a.r.query, a.until, a)
		return
	}
	a.h.up.Start(a.r.query, a.until, a)
}

// ExchangeDone takes the end of an attempt: its upstream's health is
// settled, then the first answer goes to the Finisher, and a failure to the
// next upstream while retries and time are left.
func (a *attempt) ExchangeDone(answer []byte, err error) {
	r, h := a.r, a.h
	b := r.b
	if b.hedging {
		defer b.wg.Done()
	}
	h.tally(err)
	err = b.settle(h, a.wasDown, time.Since(a.start), err)
	*a = attempt{}
	attempts.Put(a)

	r.mu.Lock()
	r.pending--
	switch {
	case r.finished:
		// A hedge's twin, ending after the answer went out.
	case err == nil:
		r.unlockAndFinish(answer, h.obs, nil)
		return
	case r.retries < b.cfg.MaxRetries && time.Now().Before(r.deadline):
		r.retryLocked()
		return
	case r.lastOutLocked():
		// Nothing else is out to answer: this error is the query's.
		r.unlockAndFinish(nil, b.cfg.Unanswered, err)
		return
	}
	r.unlockAndRecycle()
}

// retryLocked starts r's next attempt, on the upstream choose gives, and
// lets r.mu go. A query sent before every upstream was found unreachable
// has waited already, and an overloaded resolver can look unreachable to a
// probe stuck behind the queries: its retry still goes out, as in the
// window it was sent in, to the least recently failed upstream. Only the
// queries that arrive once every upstream is unreachable fail at once.
func (r *run) retryLocked() {
	h := r.b.choose(&r.tried)
	if h == nil {
		h = r.b.lastResort(&r.tried)
	}
	r.retries++
	next := r.nextLocked(h, time.Now())
	h.obs.Retried()
	r.mu.Unlock()
	next.send(false)
}

// lastOutLocked reports whether nothing of r is still out that could
// answer: no attempt, only the hedge timer at most. r.mu must be held.
func (r *run) lastOutLocked() bool {
	return r.pending == 0 || r.pending == 1 && r.hedgeArmed
}

// onHedge runs HedgeAfter after the first attempt: a query still
// unanswered goes to an upstream that is up and not tried yet, if any.
func (r *run) onHedge() {
	r.mu.Lock()
	r.pending-- // the timer's own count
	r.hedgeArmed = false
	b := r.b
	if r.finished {
		r.unlockAndRecycle()
		return
	}
	i := b.pick(r.tried)
	if i < 0 {
		r.mu.Unlock()
		return
	}
	r.tried |= uint64(1) << i
	h := &b.hosts[i]
	a := r.nextLocked(h, time.Now())
	h.obs.Hedged()
	r.mu.Unlock()
	a.send(false)
}

// unlockAndFinish lets r.mu go, which the caller holds, tells the Finisher,
// and recycles r if nothing of it is still out.
func (r *run) unlockAndFinish(answer []byte, from fmt.Stringer, err error) {
	r.finished = true
	if r.hedgeArmed && r.hedge.Stop() {
		r.hedgeArmed = false
		r.pending--
	}
	fin := r.fin
	r.unlockAndRecycle()
	fin.Resolved(answer, from, err)
}

// unlockAndRecycle lets r.mu go and puts r back in the pool if it has
// finished and nothing of it is still out.
func (r *run) unlockAndRecycle() {
	free := r.finished && r.pending == 0
	r.mu.Unlock()
	if free {
		r.b, r.query, r.fin, r.hedge = nil, nil, nil, nil
		r.tried, r.retries, r.finished = 0, 0, false
		runs.Put(r)
	}
}
