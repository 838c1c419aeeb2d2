package balance

import (
	"errors"

	"github.com/dotproxy/dotproxy/upstream"
)

var (
	// ErrNoUpstream is returned by New when given no upstream.
	ErrNoUpstream = errors.New("balance: no upstream")
	// ErrTooManyUpstreams is returned by New when given more than
	// MaxUpstreams upstreams.
	ErrTooManyUpstreams = errors.New("balance: too many upstreams")
	// ErrUnknownPolicy is returned for a policy name that is not one of
	// [Policies].
	ErrUnknownPolicy = errors.New("balance: unknown policy")
	// ErrInvalidConfig is returned by Config.Validate for a value out of
	// range.
	ErrInvalidConfig = errors.New("balance: invalid config")
)

// ErrAllDown is the error of a query that finds every upstream down, each
// with a failed probe since it went down: the query goes to none of them and
// fails at once, rather than wait on an upstream known to be unreachable.
// It reports Unreachable, by which a caller that does not import this
// package (the proxy) tells it apart.
var ErrAllDown error = allDownError{}

type allDownError struct{}

func (allDownError) Error() string { return "balance: every upstream is down" }

// Unreachable reports that no upstream could be tried at all.
func (allDownError) Unreachable() bool { return true }

// errDeadline is returned when the deadline had passed before an attempt
// could start. It is the upstreams' own, which reports Timeout.
var errDeadline = upstream.ErrDeadline
