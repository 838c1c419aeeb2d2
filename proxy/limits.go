package proxy

import "sync/atomic"

// MaxQuerySize is the largest query dotproxy forwards, in bytes. A stub's
// query is a header, one name of at most 255 bytes and an OPT record:
// under 300 bytes, or 468 once padded as RFC 8467 advises; a TSIG-signed
// or cookie-carrying one adds a few hundred. 4096 is eight times the
// 512 bytes RFC 1035 allows a UDP message, the largest EDNS payload size
// that resolvers commonly advertised, and ten times anything a stub sends,
// while it keeps what one query can make dotproxy hold small. A larger UDP
// datagram is dropped and counted (answering it would make dotproxy a
// reflector for spoofed floods); a larger TCP query, whose sender has
// completed a handshake, is read off the stream and answered FORMERR.
const MaxQuerySize = 4096

// queryOverhead is what a query in flight holds besides its own bytes, as
// charged to the memory budget: its copy rewritten for the upstream, the
// call that tracks it and its timer. Measured in
// TestFloodKeepsMemoryBounded's small-query flood, rounded up.
const queryOverhead = 8 << 10

// tcpQueryExtra is charged on top for a TCP query: its frame buffer, and its
// reply, which may wait in its connection's queue while the client is slow
// to read. It was measured, when each TCP query also parked a goroutine, in
// TestFloodKeepsMemoryBounded's phase of largest queries over TCP; it is
// kept, since the bound it gives still holds.
const tcpQueryExtra = 8 << 10

// tcpReadBuffer is a client TCP connection's read buffer: room for any
// usual query, small enough that the connections allowed cost little while
// idle. A larger query is read past it, straight into its own buffer.
const tcpReadBuffer = 1 << 10

// memBudget bounds the memory held by the queries in flight on a whole
// Server, over every listener and both transports, so that no flood can
// grow the process without bound, whatever the count limits allow. It is
// safe for concurrent use and costs two atomic additions per query.
type memBudget struct {
	limit int64
	used  atomic.Int64
}

// cost is what a query of size bytes is charged.
func cost(size int) int64 { return int64(size) + queryOverhead }

// take charges a query of size bytes and reports whether it fits; a query
// that does not fit is not charged.
func (b *memBudget) take(size int) bool {
	c := cost(size)
	if b.used.Add(c) > b.limit {
		b.used.Add(-c)
		return false
	}
	return true
}

// give returns what take charged for a query of size bytes.
func (b *memBudget) give(size int) { b.used.Add(-cost(size)) }
