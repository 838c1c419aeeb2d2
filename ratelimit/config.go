package ratelimit

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"time"
)

// Defaults used for zero Config fields, which main also gives the settings
// behind them. There is no default Rate: zero turns limiting off.
const (
	// DefaultBurst fits a web page's worth of names (each asked as A,
	// AAAA and HTTPS) at once.
	DefaultBurst = 100
	// DefaultSlip answers every other request over the limit cheaply, as
	// BIND's response rate limiting does.
	DefaultSlip = 2
	// DefaultIPv4Prefix counts each IPv4 address on its own.
	DefaultIPv4Prefix = 32
	// DefaultIPv6Prefix counts each IPv6 /64, one LAN's worth of
	// addresses, together: a single host may use any of them, and public
	// resolvers count the same way.
	DefaultIPv6Prefix = 64
	// DefaultEntries is the table's size: room for tens of thousands of
	// prefixes active at once, in about 2.6 MiB.
	DefaultEntries = 1 << 16
)

// Bounds of the Config fields.
const (
	// MinRate is the slowest rate taken: one request per 100 s.
	MinRate = 0.01
	// MaxRate is the fastest: past a million per second nothing is limited.
	MaxRate = 1e6
	// MaxBurst bounds Burst, so that the bucket's arithmetic cannot
	// overflow at any rate.
	MaxBurst = 1_000_000
	// MaxSlip bounds Slip: past one in ten, a client sharing a limited
	// prefix would wait through more timeouts than a slip is worth.
	MaxSlip = 10
	// MaxEntries bounds Entries: 42 MiB of table.
	MaxEntries = 1 << 20
)

// ReportInterval is how often a prefix over its limit is reported (see
// Limiter.Take); reportBurst is how many prefixes may be reported in one
// interval, over the whole table.
const (
	ReportInterval = time.Minute
	reportBurst    = 10
)

// Config configures a Limiter.
type Config struct {
	// Rate is the requests per second that each prefix may send in the
	// long run. Zero turns limiting off; otherwise from MinRate to
	// MaxRate.
	Rate float64
	// Burst is the requests that a prefix may send at once, its bucket's
	// size, from 1 to MaxBurst. Zero means DefaultBurst.
	Burst int
	// Slip makes every Slip-th request over the limit from a prefix
	// (the first, then one in Slip) a Slip rather than a Drop: one that
	// the caller answers cheaply, so that a genuine client learns to retry
	// over a verified path. Zero never slips, one always does; at most
	// MaxSlip.
	Slip int
	// IPv4Prefix and IPv6Prefix are the prefix lengths by which addresses
	// share a bucket: 1 to 32 and 1 to 128. Zero means DefaultIPv4Prefix
	// and DefaultIPv6Prefix. An IPv4-mapped IPv6 address counts as IPv4.
	IPv4Prefix int
	IPv6Prefix int
	// Exempt lists the networks never limited.
	Exempt []netip.Prefix
	// Entries is the table's size in prefixes, rounded up to a whole
	// number of sets, a power of two; zero means DefaultEntries, at most
	// MaxEntries.
	Entries int
}

// ErrInvalidConfig is wrapped by the errors of Config.Validate.
var ErrInvalidConfig = errors.New("ratelimit: invalid config")

// Validate reports the first field of c out of range, naming the field, in
// an error that wraps ErrInvalidConfig. A zero Rate is valid: limiting is
// off.
func (c *Config) Validate() error {
	switch {
	case c.Rate != 0 && !(c.Rate >= MinRate && c.Rate <= MaxRate): // NaN too
		return fmt.Errorf("%w: Rate %v is neither 0 (off) nor within %s..%s", ErrInvalidConfig, c.Rate,
			strconv.FormatFloat(MinRate, 'f', -1, 64), strconv.FormatFloat(MaxRate, 'f', -1, 64))
	case c.Burst < 0 || c.Burst > MaxBurst:
		return fmt.Errorf("%w: Burst %d is not within 1..%d", ErrInvalidConfig, c.Burst, MaxBurst)
	case c.Slip < 0 || c.Slip > MaxSlip:
		return fmt.Errorf("%w: Slip %d is not within 0..%d", ErrInvalidConfig, c.Slip, MaxSlip)
	case c.IPv4Prefix < 0 || c.IPv4Prefix > 32:
		return fmt.Errorf("%w: IPv4Prefix %d is not within 1..32", ErrInvalidConfig, c.IPv4Prefix)
	case c.IPv6Prefix < 0 || c.IPv6Prefix > 128:
		return fmt.Errorf("%w: IPv6Prefix %d is not within 1..128", ErrInvalidConfig, c.IPv6Prefix)
	case c.Entries < 0 || c.Entries > MaxEntries:
		return fmt.Errorf("%w: Entries %d is not within 1..%d", ErrInvalidConfig, c.Entries, MaxEntries)
	}
	for _, p := range c.Exempt {
		if !p.IsValid() {
			return fmt.Errorf("%w: Exempt holds an invalid prefix", ErrInvalidConfig)
		}
	}
	return nil
}

// withDefaults returns c with every zero field that has a default filled
// in. c must be valid.
func (c Config) withDefaults() Config {
	if c.Burst == 0 {
		c.Burst = DefaultBurst
	}
	if c.IPv4Prefix == 0 {
		c.IPv4Prefix = DefaultIPv4Prefix
	}
	if c.IPv6Prefix == 0 {
		c.IPv6Prefix = DefaultIPv6Prefix
	}
	if c.Entries == 0 {
		c.Entries = DefaultEntries
	}
	return c
}
