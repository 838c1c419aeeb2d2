package main

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/dotproxy/dotproxy/balance"
	"github.com/kelseyhightower/envconfig"
)

// maxInflightMIB bounds DOTPROXY_CLIENT_MAX_INFLIGHT_MIB: 4 GiB of queries
// in flight is past any host dotproxy is meant for, and a larger figure is
// more likely a unit mistaken (bytes for MiB) than a wish.
const maxInflightMIB = 4096

// maxUDPSockets bounds DOTPROXY_CLIENT_UDP_SOCKETS: one reader per core is
// the most that helps.
const maxUDPSockets = 64

// knownKeys returns the name of every variable that config reads, in the
// order of the struct: the same list that -h prints, so that no setting can
// be added without being known here.
func knownKeys() ([]string, error) {
	vars, err := variables(&config{})
	if err != nil {
		return nil, err
	}
	keys := make([]string, len(vars))
	for i, v := range vars {
		keys[i] = v.name
	}
	return keys, nil
}

// loadConfig reads and checks the environment. A DOTPROXY_* variable that
// is no setting stops it too, unless an orchestrator put it there (see
// checkEnviron).
func loadConfig() (*config, error) {
	known, err := knownKeys()
	if err != nil {
		return nil, err
	}
	environ := os.Environ()
	if err := checkEnviron(environ, known); err != nil {
		return nil, err
	}
	c := defaultConfig()
	_, set := os.LookupEnv(env("UPSTREAMS"))
	c.defaultUpstreams = !set
	if err := envconfig.Process(envPrefix, c); err != nil {
		var pe *envconfig.ParseError
		if errors.As(err, &pe) {
			return nil, &settingError{key: pe.KeyName, value: pe.Value, err: unwrapAll(pe.Err)}
		}
		return nil, err
	}
	if c.routes, err = loadRoutes(environ); err != nil {
		return nil, err
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// unwrapAll strips strconv's "parsing ...: " wrapper down to the cause, since
// the message already names the variable and the value.
func unwrapAll(err error) error {
	var ne *strconv.NumError
	if errors.As(err, &ne) {
		return ne.Err
	}
	return err
}

// validate checks what decoding could not: the bounds of the settings that
// main alone reads, then each package's rules, through its own Config's
// Validate, then the rules that tie one setting to another. The error names
// the variable at fault and its value.
func (c *config) validate() error {
	vars, err := variables(c)
	if err != nil {
		return err
	}
	at := fieldVars(vars)
	if err := c.checkBounds(at); err != nil {
		return err
	}
	// The upstreams' Configs differ only in the address and name that
	// ParseSpec has checked; each is validated all the same.
	for _, spec := range c.Upstreams {
		u := c.upstreamConfig(spec, nil, nil, nil)
		if err := u.Validate(); err != nil {
			return at.packageError(err, c.upstreamFields())
		}
	}
	b := c.balanceConfig()
	if err := b.Validate(); err != nil {
		return at.packageError(err, c.balanceFields())
	}
	// The proxy's Config holds the limiter's, and would report its
	// errors under names that only rateLimitFields maps.
	rl := c.rateLimitConfig()
	if err := rl.Validate(); err != nil {
		return at.packageError(err, c.rateLimitFields())
	}
	p := c.proxyConfig(nil, nil, nil)
	if err := p.Validate(); err != nil {
		return at.packageError(err, c.proxyFields())
	}
	if err := c.emitConfig(nil).Validate(); err != nil {
		return at.packageError(err, c.emitFields())
	}
	if err := c.checkRoutes(); err != nil {
		return err
	}
	return c.checkRules(at)
}

// checkBounds checks the settings that no package's Validate sees, or sees
// only as a zero that it reads as its default.
func (c *config) checkBounds(at fieldVars) error {
	switch {
	case len(c.Upstreams) == 0:
		return at.errorAt(&c.Upstreams, errors.New("at least one upstream is required"))
	case len(c.Upstreams) > balance.MaxUpstreams:
		return at.errorAt(&c.Upstreams, fmt.Errorf("at most %d upstreams", balance.MaxUpstreams))
	case len(c.Listen) == 0:
		return at.errorAt(&c.Listen, errors.New("at least one address is required"))
	case c.Client.MaxInflightMIB < 1 || c.Client.MaxInflightMIB > maxInflightMIB:
		return at.errorAt(&c.Client.MaxInflightMIB, fmt.Errorf("must be from 1 to %d", maxInflightMIB))
	case c.Client.UDPSockets > maxUDPSockets:
		return at.errorAt(&c.Client.UDPSockets, fmt.Errorf("at most %d", maxUDPSockets))
	case c.Lameduck < 0:
		return at.errorAt(&c.Lameduck, errors.New("must not be negative (0 turns the drain period off)"))
	}
	if c.TLS.CAFile != "" {
		if _, err := loadCAs(c.TLS.CAFile); err != nil {
			return at.errorAt(&c.TLS.CAFile, err)
		}
	}
	// The packages read a zero count or duration as "the default": set on
	// purpose, it would silently become that default, so it is refused.
	for _, field := range []any{
		&c.QueryTimeout, &c.TransferTimeout,
		&c.Upstream.MaxConns, &c.Upstream.MaxInflight, &c.Upstream.ConnectTimeout,
		&c.Upstream.HandshakeTimeout, &c.Upstream.IdleTimeout, &c.Upstream.AttemptTimeout,
		&c.Client.TCPIdleTimeout, &c.Client.TCPMaxConns, &c.Client.TCPMaxInflight,
		&c.Client.UDPMaxInflight, &c.Client.UDPSockets,
		&c.RateLimitBurst, &c.RateLimitIpv4Prefix, &c.RateLimitIpv6Prefix,
		&c.Probe.Timeout, &c.Probe.MaxBackoff, &c.Probe.ResetAfter,
		&c.Statsd.FlushInterval,
	} {
		switch v := field.(type) {
		case *int:
			if *v < 1 {
				return at.errorAt(field, errors.New("must be at least 1"))
			}
		case *time.Duration:
			if *v <= 0 {
				return at.errorAt(field, errors.New("must be positive"))
			}
		}
	}
	return nil
}

// checkRules checks the rules across settings, which no package can see
// whole: QueryTimeout is the proxy's, the rest the balancer's. Broken, none
// would stop dotproxy; each would quietly take away what a setting is for.
func (c *config) checkRules(at fieldVars) error {
	// The balancer gives each attempt at least the attempt timeout; with
	// the query's whole time or more, the first attempt takes it all, and
	// a query that fails there is never retried on another upstream.
	if c.Upstream.AttemptTimeout >= c.QueryTimeout {
		return at.shorterThan(&c.Upstream.AttemptTimeout, &c.QueryTimeout,
			"each attempt gets at least this long, so the first would take the whole query and leave no time to retry it")
	}
	// A copy due at the query's deadline or later comes too late to
	// answer, yet each hedged query still costs a copy of itself and a
	// timer.
	if c.HedgeAfter > 0 && c.HedgeAfter >= c.QueryTimeout {
		return at.shorterThan(&c.HedgeAfter, &c.QueryTimeout,
			"a copy sent at the deadline or later answers no one (0s turns hedging off)")
	}
	return c.checkRateLimitOn(at)
}

// checkRateLimitOn refuses a rate-limit setting changed from its default
// while DOTPROXY_RATE_LIMIT is 0: limiting is off, and an operator who set
// a burst or an exempt list but no rate would believe it on.
func (c *config) checkRateLimitOn(at fieldVars) error {
	if c.RateLimit != 0 {
		return nil
	}
	d := defaultConfig()
	for _, s := range []struct {
		field any
		set   bool
	}{
		{&c.RateLimitBurst, c.RateLimitBurst != d.RateLimitBurst},
		{&c.RateLimitSlip, c.RateLimitSlip != d.RateLimitSlip},
		{&c.RateLimitIpv4Prefix, c.RateLimitIpv4Prefix != d.RateLimitIpv4Prefix},
		{&c.RateLimitIpv6Prefix, c.RateLimitIpv6Prefix != d.RateLimitIpv6Prefix},
		{&c.RateLimitExempt, len(c.RateLimitExempt) != 0},
	} {
		if s.set {
			rate, _ := at.of(&c.RateLimit)
			return at.errorAt(s.field, fmt.Errorf("has no effect while %s=%q: rate limiting is off; set a rate too",
				rate.name, settingText(rate.field)))
		}
	}
	return nil
}

// fieldVars finds a setting's variable by the address of its field.
type fieldVars []variable

// of returns the variable of field, a pointer to a field of the config that
// fieldVars lists.
func (vs fieldVars) of(field any) (variable, bool) {
	for _, v := range vs {
		if v.field.Addr().Interface() == field {
			return v, true
		}
	}
	return variable{}, false
}

// errorAt returns err as the settingError of field, a pointer to a field of
// the config that fieldVars lists; err itself if it is none.
func (vs fieldVars) errorAt(field any, err error) error {
	v, ok := vs.of(field)
	if !ok {
		return err
	}
	return &settingError{key: v.name, value: settingText(v.field), err: err}
}

// shorterThan is the error of a field that must be shorter than another,
// naming both variables and their values.
func (vs fieldVars) shorterThan(field, other any, why string) error {
	o, _ := vs.of(other)
	return vs.errorAt(field, fmt.Errorf("must be shorter than %s=%q: %s", o.name, settingText(o.field), why))
}

// packageError returns err, from a package's Config.Validate, as the
// settingError of the field it names first; fields gives, for each field
// of the package's Config, the field of config that fills it. An error that
// names none of them is returned as it is.
func (vs fieldVars) packageError(err error, fields map[string]any) error {
	msg := err.Error()
	var first any
	firstAt := len(msg)
	for name, field := range fields {
		if i := wordIndex(msg, name); i >= 0 && i < firstAt {
			first, firstAt = field, i
		}
	}
	if first == nil {
		return err
	}
	return vs.errorAt(first, err)
}

// wordIndex returns where word first stands in s as a whole identifier,
// not part of a longer one, or -1.
func wordIndex(s, word string) int {
	for from := 0; from < len(s); {
		i := strings.Index(s[from:], word)
		if i < 0 {
			return -1
		}
		i += from
		end := i + len(word)
		if (i == 0 || !isIdentByte(s[i-1])) && (end == len(s) || !isIdentByte(s[end])) {
			return i
		}
		from = i + 1
	}
	return -1
}

func isIdentByte(b byte) bool {
	return b == '_' || b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9'
}
