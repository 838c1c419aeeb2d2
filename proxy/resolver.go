package proxy

import (
	"fmt"
	"time"
)

// Resolver forwards one query and returns the answer. Implementations must be
// safe for concurrent use, must not modify query nor read it once Resolve
// has returned (the caller reuses its buffer), must return an answer that
// carries the query's own ID and that the caller may keep, and must return
// by deadline. The deadline is a value rather than a context: a query costs
// no context and no timer of its own on its way through.
//
// upstream is the upstream that answered. The proxy hands it to its Observer
// as it is, so that per-upstream metrics are found on the value itself, not
// looked up by name on every query.
type Resolver interface {
	Resolve(query []byte, deadline time.Time) (answer []byte, upstream fmt.Stringer, err error)
}

// Starter is a Resolver that can also resolve a query without the caller
// waiting: Start returns at once and the answer is handed to fin by
// whichever goroutine got it, so that a query costs no goroutine of its own
// while it waits. fin is told exactly once, possibly before Start returns;
// query must stay unchanged until then. Start returns false, having done
// nothing, when it cannot work that way; the query then goes to Resolve.
// *balance.Balancer implements it.
type Starter interface {
	Start(query []byte, deadline time.Time, fin Finisher) bool
}

// Finisher receives the end of a query sent by Starter.Start: what Resolve
// would have returned. It is an alias of an unnamed interface, so that a
// Starter names the same type without importing this package.
type Finisher = interface {
	Resolved(answer []byte, upstream fmt.Stringer, err error)
}

// BatchStarter is a Starter that can also leave the upstream writes of
// queries started together for one Flush, so that a burst of datagrams read
// in one system call leaves in one write too. *balance.Balancer implements
// it.
type BatchStarter interface {
	Starter
	// StartHeld is Start, except that the query may wait unwritten until
	// Flush, which the caller must call before it waits for anything.
	StartHeld(query []byte, deadline time.Time, fin Finisher) bool
	// Flush writes the queries that StartHeld left waiting.
	Flush()
}

// Transferer is a Resolver that can also pass a zone transfer (AXFR, IXFR)
// on: each message of the answer is handed to each, in order, until the
// transfer ends; deadline bounds the whole transfer and idle each message.
// An error after a message was handed on means the client holds part of a
// transfer. *balance.Balancer implements it; without it, a transfer over
// TCP is answered NOTIMP.
type Transferer interface {
	Transfer(query []byte, deadline time.Time, idle time.Duration, each func(msg []byte) error) (upstream fmt.Stringer, err error)
}
