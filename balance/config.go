package balance

import (
	"fmt"
	"time"

	"github.com/dotproxy/dotproxy/dnsmsg"
	"github.com/dotproxy/dotproxy/upstream"
)

// Defaults used for zero Config fields, which main also gives the settings
// behind them.
const (
	DefaultPolicy          = LeastOutstanding
	DefaultMaxRetries      = 2
	DefaultProbeName       = "."
	DefaultProbeTimeout    = 2 * time.Second
	DefaultProbeMaxBackoff = 10 * time.Second
	DefaultProbeResetAfter = 30 * time.Second
)

// FirstBackoff is how long an upstream stays down after its first failure
// before it is probed. Each failed probe, and each failure soon after a
// recovery, doubles the wait up to Config.ProbeMaxBackoff.
const FirstBackoff = 100 * time.Millisecond

// AllDownProbeEvery caps the wait between two probes of an upstream while
// every upstream is unreachable (down, and probed in vain since). Client
// queries then fail at once and reach no upstream, so that the probes alone
// bring one back: at this pace an outage ends for clients within about a
// second of the resolver's return, as with dnsdist's health checks, sent
// once a second, rather than after up to Config.ProbeMaxBackoff. A shorter
// ProbeMaxBackoff still applies.
const AllDownProbeEvery = time.Second

// MaxUpstreams is the largest number of upstreams a Balancer takes.
const MaxUpstreams = 64

// maxRetries bounds Config.MaxRetries: more attempts than that are no use
// within one query's deadline.
const maxRetries = 16

// Config configures a Balancer. The zero value is valid: it means the
// default policy, no retry, no hedging and the default probe settings.
type Config struct {
	// Policy chooses the upstream for each query. Empty means
	// DefaultPolicy.
	Policy Policy
	// MaxRetries is how many more attempts a query may make, each on a
	// different upstream while there is one, after an attempt failed.
	// Zero means no retry; at most 16. An attempt that more may follow
	// gets an equal share of the time left to the query's deadline, but
	// at least AttemptTimeout, so that a stalled upstream cannot use up
	// the whole deadline while a slow name and the upstream's own recovery
	// still get their time. The last gets all that is left.
	MaxRetries int
	// HedgeAfter is how long a query waits for its first attempt before a
	// copy goes to a second upstream; the first answer wins, and the other
	// attempt's answer is dropped when it comes. Zero turns hedging off.
	HedgeAfter time.Duration
	// Unanswered names the Balancer to whoever it fails: it is handed to
	// the Finisher, as the upstream, with the error of a query that no
	// upstream answered, and returned by Transfer with the error of a
	// transfer that none passed on. main gives each route's Balancer its
	// route's metrics, so that the SERVFAILs that follow count against the
	// route. Nil hands back nil.
	Unanswered fmt.Stringer

	// ProbeName is the name queried, type NS, to probe an upstream that is
	// down. Any answer, whatever its rcode, brings the upstream back.
	// Empty means DefaultProbeName, the root, which every recursive
	// resolver answers from cache.
	ProbeName string
	// ProbeTimeout bounds one probe. Zero means DefaultProbeTimeout.
	ProbeTimeout time.Duration
	// ProbeMaxBackoff caps the wait between two probes of an upstream that
	// stays down. The wait starts at FirstBackoff and doubles after each
	// failed probe. Zero means DefaultProbeMaxBackoff.
	ProbeMaxBackoff time.Duration
	// ProbeResetAfter is how long an upstream must work without a failure
	// after it came back before its backoff starts again from
	// FirstBackoff; a failure sooner doubles the previous wait instead.
	// Zero means DefaultProbeResetAfter.
	ProbeResetAfter time.Duration

	// AttemptTimeout is the upstreams' attempt timeout (see
	// upstream.Config.AttemptTimeout), the same value: an answer later
	// than this counts as slow, and maxSlowRun slow attempts in a row,
	// with no quicker answer in between, mark the upstream down (an
	// overloaded resolver answers late rather than not at all). Zero means
	// upstream.DefaultAttemptTimeout.
	AttemptTimeout time.Duration
}

// Validate reports the first field out of range, wrapping ErrInvalidConfig
// or ErrUnknownPolicy. It does not modify c.
func (c *Config) Validate() error {
	if c.Policy != "" {
		if _, err := ParsePolicy(string(c.Policy)); err != nil {
			return err
		}
	}
	switch {
	case c.MaxRetries < 0 || c.MaxRetries > maxRetries:
		return fmt.Errorf("%w: MaxRetries %d is not within 0..%d", ErrInvalidConfig, c.MaxRetries, maxRetries)
	case c.HedgeAfter < 0:
		return fmt.Errorf("%w: HedgeAfter %v is negative", ErrInvalidConfig, c.HedgeAfter)
	case c.ProbeTimeout < 0:
		return fmt.Errorf("%w: ProbeTimeout %v is negative", ErrInvalidConfig, c.ProbeTimeout)
	case c.ProbeMaxBackoff < 0:
		return fmt.Errorf("%w: ProbeMaxBackoff %v is negative", ErrInvalidConfig, c.ProbeMaxBackoff)
	case c.AttemptTimeout < 0:
		return fmt.Errorf("%w: AttemptTimeout %v is negative", ErrInvalidConfig, c.AttemptTimeout)
	case c.ProbeResetAfter < 0:
		return fmt.Errorf("%w: ProbeResetAfter %v is negative", ErrInvalidConfig, c.ProbeResetAfter)
	}
	if _, err := dnsmsg.NewQuery(0, c.ProbeName, dnsmsg.TypeNS); err != nil {
		return fmt.Errorf("%w: ProbeName %q: %w", ErrInvalidConfig, c.ProbeName, err)
	}
	return nil
}

// withDefaults returns c with every zero field that has a default filled in
// and the policy name in its canonical form. c must be valid.
func (c Config) withDefaults() Config {
	if c.Policy == "" {
		c.Policy = DefaultPolicy
	}
	c.Policy, _ = ParsePolicy(string(c.Policy))
	if c.ProbeName == "" {
		c.ProbeName = DefaultProbeName
	}
	if c.ProbeTimeout == 0 {
		c.ProbeTimeout = DefaultProbeTimeout
	}
	if c.ProbeMaxBackoff == 0 {
		c.ProbeMaxBackoff = DefaultProbeMaxBackoff
	}
	if c.ProbeResetAfter == 0 {
		c.ProbeResetAfter = DefaultProbeResetAfter
	}
	if c.AttemptTimeout == 0 {
		c.AttemptTimeout = upstream.DefaultAttemptTimeout
	}
	return c
}
