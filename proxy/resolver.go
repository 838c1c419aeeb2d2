package proxy

import "context"

// Resolver forwards one query and returns the answer. Implementations must be
// safe for concurrent use, must not modify query, must return an answer that
// carries the query's own ID and that the caller may keep, and must return
// promptly once ctx is done.
type Resolver interface {
	Resolve(ctx context.Context, query []byte) (answer []byte, upstream string, err error)
}
