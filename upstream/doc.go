// Package upstream keeps a pool of long-lived DNS-over-TLS connections to one
// resolver and multiplexes queries over them (RFC 7766, RFC 7858).
//
// Each connection carries many queries at once: a query gets an ID unique on
// its connection, the answer is matched back by that ID whatever order the
// server answers in, and the caller's ID is restored. A new connection is
// opened only when the open ones are full. When a connection dies or falls
// silent, the queries that were on it are sent again on another one, within
// each query's own deadline. There is no plaintext path: a connection is
// either verified TLS or an error.
package upstream
