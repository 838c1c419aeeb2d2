package upstream

import (
	"errors"
	"sync"
	"time"

	"github.com/dotproxy/dotproxy/dnsmsg"
)

// Done receives the end of a query sent by Pool.Start: the answer, carrying
// the query's own ID, or the error that ended it, with the same meaning as
// Exchange's. It is an alias of an unnamed interface, so that a package
// that hands queries on names the same type without importing this one.
type Done = interface {
	ExchangeDone(answer []byte, err error)
}

// call is one query sent on one connection, from the write to its end. Its
// recovery is driven by its own timer rather than by a goroutine waiting for
// it, so that a query sent by Start costs no goroutine: at a quarter of an
// attempt timeout a connection that has read nothing since the query was
// sent gets a probe query behind it; at half, a connection that still has
// read nothing is retired (ErrSilent), and a query unanswered while the
// connection answers others is sent once more; then the deadline.
//
// A call ends exactly once, through end, run by whoever sets answered under
// the connection's lock: the reader on the answer, shut when the connection
// dies, or the timer at the deadline. Calls are pooled with their timers.
type call struct {
	timer *time.Timer // runs onTimer

	// Set before the call is sent, then only read.
	c        *conn
	done     Done
	query    []byte  // as written on the wire, and resent as is
	orig     []byte  // the caller's query, for another attempt elsewhere
	wireBuf  *[]byte // the pooled buffer that holds query, if any
	added    bool    // the rewrite added the OPT record: take it out again
	clientID uint16
	deadline time.Time
	sentAt   int64 // c.now() as the query was queued for writing
	attempt  int   // the connections tried before this one
	started  bool  // sent by Start: end retries a lost connection itself

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
func newCall(query, wire []byte, added bool, deadline time.Time, done Done) *call {
	cl := getCall()
	cl.done, cl.query, cl.added = done, wire, added
	cl.clientID, cl.deadline = dnsmsg.ID(query), deadline
	return cl
}

// putCall recycles cl, whose timer is stopped and will not run again.
func putCall(cl *call) {
	*cl = call{timer: cl.timer}
	callPool.Put(cl)
}

// waiter is the Done of a query sent by Exchange, which waits for it. It
// also carries what acquire needs to wait for a slot.
type waiter struct {
	ch    chan result // capacity 1; one result per send
	slot  chan slot   // capacity 1; a slot handed over by the pool
	timer *time.Timer // bounds the wait for a slot
}

func (w *waiter) ExchangeDone(answer []byte, err error) { w.ch <- result{answer, err} }

var waiters = sync.Pool{New: func() any {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return &waiter{ch: make(chan result, 1), slot: make(chan slot, 1), timer: t}
}}

// send writes cl's query on c, which holds a slot reserved for it, and
// arms cl's timer. If c has ended, the call ends at once with errConnLost.
// cl may have ended, and been reused, by the time send returns.
func (c *conn) send(cl *call) {
	if c.queue(cl) {
		c.flushLocked()
	}
}

// hold is send, except that the query stays queued for the next write.
func (c *conn) hold(cl *call) {
	if c.queue(cl) {
		c.mu.Unlock()
	}
}

// queue registers cl on c and queues its query, and returns true with c.mu
// held; or, if c has ended, ends cl with errConnLost and returns false.
func (c *conn) queue(cl *call) bool {
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
	now := time.Now()
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
			c.probeLocked()
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
			c.flushLocked()
			c.mu.Lock()
		}
	}
	if cl.answered {
		// Answered while the lock was let go for a write.
		c.mu.Unlock()
		return
	}
	cl.stage++
	next := time.Until(cl.deadline)
	if cl.stage < len(c.p.checkpoints) {
		next = min(next, c.p.checkpoints[cl.stage]-c.since(cl.sentAt))
	}
	cl.timer.Reset(max(next, 0))
	c.mu.Unlock()
}

// end finishes the call with r: the answer gets the client's ID back and
// loses what the rewrite added, the connection's slot is freed, and the
// call's Done is told. fromTimer reports that end runs from cl's own
// timer, which is then not armed.
//
// A call whose timer is running at the same time is left to the garbage
// collector rather than reused: the timer finds it answered and lets it be.
func (cl *call) end(r result, fromTimer bool) {
	reusable := cl.timer.Stop() || fromTimer
	c := cl.c
	p := c.p
	if r.err == nil {
		dnsmsg.SetID(r.msg, cl.clientID)
		if p.rewrite {
			var ka time.Duration
			var ok bool
			if r.msg, ka, ok = dnsmsg.CleanAnswer(r.msg, cl.added); ok {
				c.keepalive.Store(int64(ka))
			}
		}
		p.obs.Exchanged(c.since(cl.sentAt), len(cl.query), len(r.msg))
	}
	p.release(c)
	done, orig, deadline, attempt, started := cl.done, cl.orig, cl.deadline, cl.attempt, cl.started
	if cl.wireBuf != nil {
		putWire(cl.wireBuf)
	}
	if reusable {
		putCall(cl)
	}
	if !started {
		done.ExchangeDone(r.msg, r.err)
		return
	}
	if errors.Is(r.err, errConnLost) && attempt+1 < maxAttempts {
		// The connection died under the query: another may need a dial
		// or a wait for room, which the goroutine that ended this one
		// (a connection's reader, or a sender) must not do.
		go p.retry(orig, deadline, attempt+1, done)
		return
	}
	p.inflight.Add(-1)
	done.ExchangeDone(r.msg, r.err)
}

// retry carries on a query sent by Start whose connection died under it.
func (p *Pool) retry(query []byte, deadline time.Time, attempt int, done Done) {
	ans, err := p.exchange(query, deadline, attempt)
	p.inflight.Add(-1)
	done.ExchangeDone(ans, err)
}
