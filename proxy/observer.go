package proxy

import (
	"fmt"
	"time"
)

// Transport is the client-facing protocol a query arrived on.
type Transport string

// The transports a query can arrive on.
const (
	UDP Transport = "udp"
	TCP Transport = "tcp"
)

// DropReason says why a client packet got no answer at all.
type DropReason string

// The reasons a packet is dropped.
const (
	DropShort     DropReason = "short"      // shorter than a DNS header
	DropResponse  DropReason = "response"   // QR bit set: not a query
	DropBadFrame  DropReason = "bad_frame"  // TCP length prefix out of range; the connection is closed
	DropConnLimit DropReason = "conn_limit" // a TCP connection over DOTPROXY_CLIENT_TCP_MAX_CONNS, closed at once
	DropTooLarge  DropReason = "too_large"  // a UDP datagram over MaxQuerySize
	DropOverload  DropReason = "overload"   // the memory for queries in flight is full (over TCP: answered REFUSED)
)

// FailReason says why a client got SERVFAIL from the proxy itself.
type FailReason string

// The reasons the proxy answers SERVFAIL on its own.
const (
	FailDeadline    FailReason = "deadline"    // DOTPROXY_QUERY_TIMEOUT passed
	FailUpstream    FailReason = "upstream"    // every attempt failed before the deadline
	FailUnreachable FailReason = "unreachable" // every upstream is down: failed at once, none tried
)

// LimitAction says what became of a query over its client's rate limit.
type LimitAction string

// What is done with a query over the rate limit.
const (
	LimitDrop    LimitAction = "drop"    // over UDP: no reply
	LimitSlip    LimitAction = "slip"    // over UDP: an empty reply with TC set, which sends the client to TCP
	LimitRefused LimitAction = "refused" // over TCP: REFUSED
)

// Observer receives the events of the client-facing side. Its methods are
// called on the query path and must not block.
type Observer interface {
	// Answered reports a reply sent to a client: the upstream that answered,
	// as the Resolver returned it (nil for the proxy's own replies; for its
	// SERVFAIL, what the Resolver returned with the error), the
	// reply's rcode, the time from the query's arrival to the reply's
	// departure, and both sizes in bytes.
	Answered(t Transport, upstream fmt.Stringer, rcode int, rtt time.Duration, querySize, answerSize int)
	// Dropped reports a packet that got no reply.
	Dropped(t Transport, reason DropReason)
	// Malformed reports a query answered with FORMERR, a malformed client
	// subnet option under Config.HideClientSubnet included.
	Malformed(t Transport)
	// Refused reports a query refused because the client is outside
	// DOTPROXY_ALLOW, or because its client subnet cannot be hidden
	// (Config.HideClientSubnet).
	Refused(t Transport)
	// Truncated reports a UDP answer replaced by a truncated reply.
	Truncated()
	// Failed reports a query answered with the proxy's own SERVFAIL.
	Failed(t Transport, reason FailReason)
	// Limited reports a query over its client's rate limit, and what
	// became of it.
	Limited(t Transport, action LimitAction)
}

// NopObserver is an Observer that discards every event.
type NopObserver struct{}

var _ Observer = NopObserver{}

// Answered implements [Observer].
func (NopObserver) Answered(Transport, fmt.Stringer, int, time.Duration, int, int) {}

// Dropped implements [Observer].
func (NopObserver) Dropped(Transport, DropReason) {}

// Malformed implements [Observer].
func (NopObserver) Malformed(Transport) {}

// Refused implements [Observer].
func (NopObserver) Refused(Transport) {}

// Truncated implements [Observer].
func (NopObserver) Truncated() {}

// Failed implements [Observer].
func (NopObserver) Failed(Transport, FailReason) {}

// Limited implements [Observer].
func (NopObserver) Limited(Transport, LimitAction) {}
