package upstream

import (
	"errors"
	"sync"
	"time"

	"github.com/dotproxy/dotproxy/dnsmsg"
)

// Done receives the end of a query sent by Pool.Start: the answer, carrying
// the query's own ID, or the error that ended it. It is an alias of an
// unnamed interface, so that a package that hands queries on names the same
// type without importing this one.
type Done = interface {
	ExchangeDone(answer []byte, err error)
}

// call is one query in the pool, from Start to its end. Its recovery is
// driven by its own timer rather than by a goroutine waiting for it, so
// that a query costs no goroutine: while it waits in line for a slot, the
// timer is its deadline; once it is written, at a quarter of an attempt
// timeout a connection that has read nothing since the query was sent gets
// a probe query behind it; at half, a connection that still has read
// nothing is retired (ErrSilent), and a query unanswered while the
// connection answers others is sent once more; then the deadline.
//
// A call ends exactly once, through end: run by whoever sets answered under
// the connection's lock (the reader on the answer, shut when the connection
// dies, or the timer at the deadline), or, for a call that holds no slot,
// by whoever takes it out of the pool's wait queue. Calls are pooled with
// their timers.
type call struct {
	timer *time.Timer // runs onTimer

	// Set before the call is sent, then only read.
	p        *Pool
	done     Done
	query    []byte      // as written on the wire, and resent as is
	orig     []byte      // the caller's query, for another attempt elsewhere
	wireBuf  *[]byte     // the pooled buffer that holds query, if any
	sent     dnsmsg.Sent // what the rewrite changed, to undo in the answer
	clientID uint16
	deadline time.Time
	attempt  int // the connections tried before this one

	// c is the connection whose slot the call holds; nil while it waits
	// for one. Set when the slot is reserved (under p.mu when it is handed
	// over from the line) and before the timer is armed for the write, then
	// only read.
	c      *conn
	sentAt int64 // c.now() as the query was queued for writing

	// Guarded by p.mu.
	waiting bool  // in p.waitq
	next    *call // in a list of calls handed a slot or failed at once

	// Guarded by c.mu.
	answered bool      // the call has ended or is ending
	stage    int       // the checkpoints passed
	ids      [2]uint16 // the IDs the query is pending under
	nids     int
}

type result struct {
	msg []byte
	err error
}

// probeCall marks a liveness probe in conn.pending: its answer is read for
// the sign of life and handed to nobody.
var probeCall = &call{}

// callPool has no New: a new call's timer refers to onTimer, which leads
// back to the pool, and a package variable cannot refer to itself.
var callPool sync.Pool

func getCall() *call {
	if cl, ok := callPool.Get().(*call); ok {
		return cl
	}
	cl := &call{}
	cl.timer = time.AfterFunc(time.Hour, cl.onTimer)
	cl.timer.Stop()
	return cl
}

// newCall returns a pooled call for query, sent as wire, that tells done.
func newCall(p *Pool, query, wire []byte, sent dnsmsg.Sent, deadline time.Time, done Done) *call {
	cl := getCall()
	cl.p, cl.done, cl.orig, cl.query, cl.sent = p, done, query, wire, sent
	cl.clientID, cl.deadline = dnsmsg.ID(query), deadline
	return cl
}

// putCall recycles cl, whose timer is stopped and will not run again.
func putCall(cl *call) {
	*cl = call{timer: cl.timer}
	callPool.Put(cl)
}

// waiter is the Done of a query sent by Exchange, which waits for it.
type waiter struct {
	ch chan result // capacity 1; one result per query
}

func (w *waiter) ExchangeDone(answer []byte, err error) { w.ch <- result{answer, err} }

var waiters = sync.Pool{New: func() any {
	return &waiter{ch: make(chan result, 1)}
}}

// send writes cl's query on c, which holds a slot reserved for it, and
// arms cl's timer. If c has ended, the call ends at once with errConnLost.
// cl may have ended, and been reused, by the time send returns.
func (c *conn) send(cl *call) {
	if c.lockAndQueue(cl) {
		c.unlockAndWrite()
	}
}

// hold is send, except that the query stays queued for the next write.
func (c *conn) hold(cl *call) {
	if c.lockAndQueue(cl) {
		c.mu.Unlock()
	}
}

// lockAndQueue takes c.mu, registers cl on c and queues its query, and
// returns true with c.mu still held; or, if c has ended, lets c.mu go, ends
// cl with errConnLost and returns false.
func (c *conn) lockAndQueue(cl *call) bool {
	cl.c = c
	c.mu.Lock()
	if c.ended {
		cl.answered = true
		c.mu.Unlock()
		cl.end(result{err: errConnLost}, false)
		return false
	}
	c.enqueueLocked(cl, cl.query)
	cl.sentAt = c.now()
	cl.timer.Reset(max(min(time.Until(cl.deadline), c.p.checkpoints[0]), 0))
	return true
}

// onTimer runs at each of cl's checkpoints and at its deadline.
func (cl *call) onTimer() {
	c := cl.c
	if c == nil {
		cl.lapse()
		return
	}
	now := time.Now()
	write := false
	c.mu.Lock()
	if cl.answered {
		// It ended as the timer fired; end saw the timer run and left
		// the call alone.
		c.mu.Unlock()
		return
	}
	switch {
	case !now.Before(cl.deadline) || cl.stage >= len(c.p.checkpoints):
		c.forgetLocked(cl)
		cl.answered = true
		c.mu.Unlock()
		cl.end(result{err: ErrDeadline}, true)
		return
	case cl.stage == 0:
		if !c.readSince(cl.sentAt) && !c.probing && !c.ended {
			c.probing = true
			c.enqueueLocked(probeCall, c.p.probe)
			write = true
		}
	case !c.readSince(cl.sentAt):
		// Nothing read for half an attempt timeout, the probe included:
		// the connection is dead. shut ends every query on it, this one
		// too, with ErrSilent.
		c.mu.Unlock()
		c.shut(CloseError, ErrSilent)
		return
	default:
		// The connection answers others: this query was lost, or is
		// slow. Ask again; either answer will do.
		if cl.nids < len(cl.ids) && len(c.pending) < maxPending && !c.ended {
			c.p.obs.Resent()
			c.enqueueLocked(cl, cl.query)
			write = true
		}
	}
	cl.stage++
	next := time.Until(cl.deadline)
	if cl.stage < len(c.p.checkpoints) {
		next = min(next, c.p.checkpoints[cl.stage]-c.since(cl.sentAt))
	}
	cl.timer.Reset(max(next, 0))
	if write {
		c.unlockAndWrite() // cl may end, and be reused, from here on
		return
	}
	c.mu.Unlock()
}

// lapse ends a call whose deadline came while it waited in line for a slot.
func (cl *call) lapse() {
	p := cl.p
	p.mu.Lock()
	p.unqueueLocked(cl) // or taken out already by one who left it to this timer
	p.mu.Unlock()
	cl.end(result{err: ErrDeadline}, true)
}

// end finishes the call with r: the answer gets the client's ID back and
// loses what the rewrite added, the connection's slot is freed, and the
// call's Done is told; or, when the connection died under the query, it is
// sent once more from here. fromTimer reports that end runs from cl's own
// timer, which is then not armed.
//
// A call whose timer is running at the same time is left to the garbage
// collector rather than reused: the timer finds it answered and lets it be.
func (cl *call) end(r result, fromTimer bool) {
	reusable := cl.timer.Stop() || fromTimer
	p := cl.p
	if c := cl.c; c != nil {
		if r.err == nil {
			dnsmsg.SetID(r.msg, cl.clientID)
			if p.rewrite {
				var ka time.Duration
				var ok bool
				if r.msg, ka, ok = dnsmsg.CleanAnswer(r.msg, cl.orig, cl.sent); ok {
					c.keepalive.Store(int64(ka))
				}
			}
			p.obs.Exchanged(c.since(cl.sentAt), len(cl.query), len(r.msg))
		}
		p.release(c)
	}
	done, wireBuf := cl.done, cl.wireBuf
	if errors.Is(r.err, errConnLost) && cl.attempt+1 < maxAttempts {
		// The connection died under the query: another connection
		// takes it, with the wire form and its buffer carried over.
		next := newCall(p, cl.orig, cl.query, cl.sent, cl.deadline, done)
		next.wireBuf, next.attempt = wireBuf, cl.attempt+1
		if reusable {
			putCall(cl)
		}
		p.obs.Resent()
		p.send(next, false)
		return
	}
	if reusable {
		putCall(cl)
	}
	if wireBuf != nil {
		putWire(wireBuf)
	}
	p.inflight.Add(-1)
	done.ExchangeDone(r.msg, r.err)
}
