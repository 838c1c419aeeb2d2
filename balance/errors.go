package balance

import "errors"

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

// errDeadline is returned by Resolve when the deadline had passed before an
// attempt could start. It reports Timeout, as the upstreams' own do.
var errDeadline error = timeoutError("balance: query deadline passed")

// timeoutError is an error that reports Timeout, as net.Error does.
type timeoutError string

func (e timeoutError) Error() string { return string(e) }

// Timeout reports true: the error means that time ran out.
func (e timeoutError) Timeout() bool { return true }
