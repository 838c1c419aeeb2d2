package balance

import (
	"fmt"
	"sync"
	"time"
)

// Finisher receives the end of a query sent by Balancer.Start: what Resolve
// would have returned. It is an alias of an unnamed interface, so that the
// package that hands queries in names the same type without importing this
// one.
type Finisher = interface {
	Resolved(answer []byte, upstream fmt.Stringer, err error)
}

// exchangeDone is what an upstream that can start a query tells when it
// ends; the same type as upstream.Done.
type exchangeDone = interface {
	ExchangeDone(answer []byte, err error)
}

// starter is an Upstream that can also send a query without the caller
// waiting for its answer, as *upstream.Pool does. Start returns false,
// having sent nothing, when it cannot do so right now.
type starter interface {
	Start(query []byte, deadline time.Time, done exchangeDone) bool
}

// holder is a starter that can also leave queries unwritten until Flush,
// as *upstream.Pool does.
type holder interface {
	StartHeld(query []byte, deadline time.Time, done exchangeDone) bool
	Flush()
}

// Start resolves query as Resolve does, but returns at once: fin is told the
// answer or the error, exactly once, from another goroutine or, when the
// query fails as it is sent, from this one before Start returns. query must
// stay unchanged until then. Start returns false, having done nothing, when
// it cannot resolve without waiting: with hedging on, or when an upstream
// cannot start queries; the caller then uses Resolve.
//
// The first attempt goes out from the caller's goroutine and its answer is
// handed on by the goroutine that read it, so that a query costs no
// goroutine of its own. Whatever must wait (a connection to open, a retry
// after a failure) runs in a goroutine of its own, as Resolve would.
func (b *Balancer) Start(query []byte, deadline time.Time, fin Finisher) bool {
	return b.start(query, deadline, fin, false)
}

// StartHeld is Start, except that the query may wait unwritten until
// Flush, so that a burst of queries leaves in as few writes as it can.
// The caller must call Flush before it waits for anything.
func (b *Balancer) StartHeld(query []byte, deadline time.Time, fin Finisher) bool {
	return b.start(query, deadline, fin, true)
}

// Flush writes the queries that StartHeld left waiting.
func (b *Balancer) Flush() {
	for i := range b.hosts {
		if h := b.hosts[i].holder; h != nil {
			h.Flush()
		}
	}
}

func (b *Balancer) start(query []byte, deadline time.Time, fin Finisher, hold bool) bool {
	if !b.canStart {
		return false
	}
	now := time.Now()
	if !now.Before(deadline) {
		return false
	}
	r := runs.Get().(*run)
	r.b, r.query, r.deadline, r.fin = b, query, deadline, fin
	h := b.choose(&r.tried)
	r.h, r.start = h, now
	r.wasDown = h.state.Load() == stateDown
	h.served.Add(1)
	var started bool
	if hold && h.holder != nil {
		started = h.holder.StartHeld(query, r.attemptDeadline(), r)
	} else {
		started = h.starter.Start(query, r.attemptDeadline(), r)
	}
	if !started {
		go r.exchange()
	}
	return true
}

// run is a query sent by Start, from its first attempt to its end. Runs
// are pooled.
type run struct {
	b        *Balancer
	query    []byte
	deadline time.Time
	fin      Finisher
	tried    uint64 // the upstreams tried, as in Resolve

	h       *host // the current attempt's upstream
	start   time.Time
	wasDown bool
}

var runs = sync.Pool{New: func() any { return new(run) }}

// attemptDeadline is the first attempt's share of the query's time.
func (r *run) attemptDeadline() time.Time {
	return r.b.share(r.start, r.deadline, r.b.cfg.MaxRetries)
}

// exchange makes the first attempt as Resolve does, for an upstream that
// could not start it without waiting.
func (r *run) exchange() {
	r.ExchangeDone(r.h.up.Exchange(r.query, r.attemptDeadline()))
}

// ExchangeDone takes the end of the first attempt: the answer goes to the
// Finisher; a failure goes to the next upstream, as in Resolve.
func (r *run) ExchangeDone(answer []byte, err error) {
	b, h := r.b, r.h
	if err = b.settle(h, r.wasDown, time.Since(r.start), err); err == nil {
		r.end(answer, h.up, nil)
		return
	}
	if b.cfg.MaxRetries == 0 {
		r.end(nil, nil, err)
		return
	}
	// The goroutine that ended the attempt (a connection's reader) must not
	// wait for another.
	go r.retry(err)
}

func (r *run) retry(err error) {
	ans, from, err := r.b.resolveFrom(r.query, r.deadline, &r.tried, 1, err)
	r.end(ans, from, err)
}

// end tells the Finisher and recycles r.
func (r *run) end(answer []byte, from fmt.Stringer, err error) {
	fin := r.fin
	*r = run{}
	runs.Put(r)
	fin.Resolved(answer, from, err)
}
