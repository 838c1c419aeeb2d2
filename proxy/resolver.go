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
