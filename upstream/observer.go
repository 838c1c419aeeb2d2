package upstream

import "time"

// Stage names the step of opening a connection that failed.
type Stage string

// The stages of opening or using a connection, as reported to an Observer.
const (
	StageConnect   Stage = "connect"   // TCP connect
	StageHandshake Stage = "handshake" // TLS handshake, other than verification
	StageVerify    Stage = "verify"    // certificate chain, name or pin rejected
	StageIO        Stage = "io"        // read or write on an open connection
)

// CloseReason says why a connection was closed.
type CloseReason string

// The reasons a connection closes, as reported to an Observer.
const (
	CloseIdle         CloseReason = "idle"          // unused for IdleTimeout
	CloseServerClosed CloseReason = "server_closed" // EOF or reset from the server
	CloseError        CloseReason = "error"         // I/O error, protocol error or silence
	CloseShutdown     CloseReason = "shutdown"      // the pool was closed
)

// Observer receives the events of one upstream's pool. Its methods are called
// on the query path and must not block. An Observer is bound to one upstream,
// so no method names it.
type Observer interface {
	// ConnOpened reports a connection ready for queries, with the time
	// taken by connect and TLS handshake together.
	ConnOpened(handshake time.Duration, resumed bool)
	// ConnClosed reports a connection closed after it had opened.
	ConnClosed(reason CloseReason)
	// ConnFailed reports a failed connection attempt or a failed connection.
	ConnFailed(stage Stage)
	// Exchanged reports one query answered by the upstream: the time from
	// writing the query to reading its answer, and both sizes in bytes.
	Exchanged(latency time.Duration, querySize, answerSize int)
	// Resent reports a query sent again on another connection because the
	// one it was on closed or fell silent.
	Resent()
	// Unmatched reports an answer whose ID matches no query in flight.
	Unmatched()
	// Mismatched reports an answer dropped because it does not answer the
	// query in flight under its ID: another question, QR unset, another
	// opcode.
	Mismatched()
}

// NopObserver is an Observer that discards every event.
type NopObserver struct{}

var _ Observer = NopObserver{}

// ConnOpened implements [Observer].
func (NopObserver) ConnOpened(time.Duration, bool) {}

// ConnClosed implements [Observer].
func (NopObserver) ConnClosed(CloseReason) {}

// ConnFailed implements [Observer].
func (NopObserver) ConnFailed(Stage) {}

// Exchanged implements [Observer].
func (NopObserver) Exchanged(time.Duration, int, int) {}

// Resent implements [Observer].
func (NopObserver) Resent() {}

// Unmatched implements [Observer].
func (NopObserver) Unmatched() {}

// Mismatched implements [Observer].
func (NopObserver) Mismatched() {}
