package proxy

import (
	"fmt"
	"time"
)

// Resolver forwards queries. *balance.Balancer implements it; main asserts
// so. Implementations must be safe for concurrent use.
//
// Start returns at once: fin is told the answer, which carries the query's
// own ID and which the caller may keep, or the error, exactly once, by
// deadline, by whichever goroutine gets it (possibly this one, before Start
// returns), so that a query costs no goroutine of its own while it waits.
// Start never declines. query must stay unchanged, and unread by the
// Resolver, once fin has been told; the caller then reuses its buffer. The
// deadline is a value rather than a context: a query costs no context and
// no timer of its own on its way through.
//
// The proxy answers an error with SERVFAIL, and tells why by the deadline
// and by the error itself: one with a method Unreachable() bool that
// reports true (balance.ErrAllDown has it) means that no upstream could be
// tried at all, every one being down; it is counted as FailUnreachable.
type Resolver interface {
	Start(query []byte, deadline time.Time, fin Finisher)
	// StartHeld is Start, except that the query may wait unwritten until
	// Flush, so that a burst of datagrams read in one system call leaves
	// in one write too. The caller must call Flush before it waits for
	// anything.
	StartHeld(query []byte, deadline time.Time, fin Finisher)
	// Flush writes the queries that StartHeld left waiting.
	Flush()
}

// Finisher receives the end of a query sent by Resolver.Start: the answer
// and the upstream that gave it, or the error, with nil or with what the
// Resolver names itself by (a route's balancer does), which the proxy's
// SERVFAIL is then counted against. The proxy hands upstream to
// its Observer as it is, so that per-upstream metrics are found on the
// value itself, bound when the upstream was built, not looked up by name on
// every query. It is an alias of an unnamed interface, so that a Resolver
// names the same type without importing this package.
type Finisher = interface {
	Resolved(answer []byte, upstream fmt.Stringer, err error)
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
