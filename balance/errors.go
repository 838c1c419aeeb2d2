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

// errDeadline is returned when the deadline had passed before an attempt
// could start. It is the upstreams' own, which reports Timeout.
var errDeadline = upstream.ErrDeadline
