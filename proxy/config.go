package proxy

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"github.com/dotproxy/dotproxy/ratelimit"
)

// Defaults used for zero Config fields.
const (
	DefaultQueryTimeout   = 4 * time.Second
	DefaultTCPIdleTimeout = 10 * time.Second
	DefaultTCPMaxConns    = 1000
	DefaultTCPMaxInFlight = 64
	DefaultUDPMaxInFlight = 10000
	// DefaultMaxInFlightBytes bounds the memory held for client queries in
	// flight; see Config.MaxInFlightBytes.
	DefaultMaxInFlightBytes = 16 << 20
	// DefaultTransferTimeout bounds a zone transfer from its query to its
	// last message.
	DefaultTransferTimeout = time.Minute
)

// Config configures a Server.
type Config struct {
	// Listen lists the addresses to serve; each is served on UDP and TCP.
	// A zero port picks a free one, the same for UDP and TCP.
	Listen []string
	// Allow lists the client networks that may query; others get REFUSED.
	// Empty allows every client.
	Allow []netip.Prefix
	// QueryTimeout is the total time a query may take, retries included;
	// at the deadline the client gets SERVFAIL. Zero means the default.
	QueryTimeout time.Duration
	// TCPIdleTimeout closes a client TCP connection that sends no query
	// for this long (RFC 7766 §6.2.3). Zero means the default.
	TCPIdleTimeout time.Duration
	// TCPMaxConns caps open client TCP connections per listener; further
	// connections are closed at once. Zero means the default.
	TCPMaxConns int
	// TCPMaxInFlight caps the queries answered at once on one client TCP
	// connection; the connection is not read further until one ends. Zero
	// means the default.
	TCPMaxInFlight int
	// UDPMaxInFlight caps the UDP queries answered at once per socket;
	// past it the socket is not read and the kernel buffers or drops. Zero
	// means the default.
	UDPMaxInFlight int
	// UDPSockets is how many UDP sockets serve each listen address, each
	// with a reader of its own, sharing the address with SO_REUSEPORT
	// (Linux only; the kernel spreads clients across them by address).
	// UDPMaxInFlight applies to each. Zero means one.
	UDPSockets int
	// MaxInFlightBytes caps the memory held for the client queries in
	// flight at once, over every listener and both transports, counted as
	// each query's bytes and a fixed allowance for what travels with it.
	// Past it a UDP query is dropped (and counted) and a TCP query gets
	// REFUSED, so that no flood can grow the process without bound. Zero
	// means the default.
	MaxInFlightBytes int64
	// TransferTimeout bounds a zone transfer (AXFR, IXFR over TCP) from its
	// query to its last message; each message must also arrive within
	// QueryTimeout of the one before. Zero means the default.
	TransferTimeout time.Duration
	// HideClientSubnet answers at once, sending it nowhere, a query whose
	// EDNS Client Subnet option the Resolver's upstreams are set to hide
	// (upstream.Config.Rewrite.HideClientSubnet) and could not: FORMERR for
	// a malformed option, REFUSED for a subnet in a query that cannot be
	// rewritten (see dnsmsg.CheckClientSubnet). Set it exactly when the
	// upstreams hide subnets, so that such queries never reach them.
	HideClientSubnet bool
	// RateLimit limits the queries of each client network (see
	// package ratelimit); its zero Rate turns limiting off. Over the limit
	// a UDP query is dropped, or one in RateLimit.Slip answered with TC set
	// so that a genuine client asks again over TCP, where it may overdraw
	// by one more burst; past that a TCP query gets REFUSED. Loopback
	// clients, this host's own programs, are never limited.
	RateLimit ratelimit.Config

	// Resolver answers the queries. Required.
	Resolver Resolver
	// Status answers a client on loopback that asks for StatusName in
	// class CHAOS (see local.go); nil answers REFUSED.
	Status StatusSource
	// Observer receives events; nil means NopObserver.
	Observer Observer
	// Logger receives logs; nil means slog.Default().
	Logger *slog.Logger
}

// ErrInvalidConfig is wrapped by the errors of Config.Validate.
var ErrInvalidConfig = errors.New("proxy: invalid config")

// Validate reports the first field of c out of range, naming the field, in
// an error that wraps ErrInvalidConfig. Zero fields are valid: they mean
// their defaults. It does not look at Resolver, Observer and Logger.
func (c *Config) Validate() error {
	durations := []struct {
		field string
		v     time.Duration
	}{
		{"QueryTimeout", c.QueryTimeout}, {"TCPIdleTimeout", c.TCPIdleTimeout}, {"TransferTimeout", c.TransferTimeout},
	}
	for _, d := range durations {
		if d.v < 0 {
			return fmt.Errorf("%w: %s %v is negative", ErrInvalidConfig, d.field, d.v)
		}
	}
	counts := []struct {
		field string
		v     int64
	}{
		{"TCPMaxConns", int64(c.TCPMaxConns)}, {"TCPMaxInFlight", int64(c.TCPMaxInFlight)},
		{"UDPMaxInFlight", int64(c.UDPMaxInFlight)}, {"UDPSockets", int64(c.UDPSockets)},
		{"MaxInFlightBytes", c.MaxInFlightBytes},
	}
	for _, n := range counts {
		if n.v < 0 {
			return fmt.Errorf("%w: %s %d is negative", ErrInvalidConfig, n.field, n.v)
		}
	}
	return c.RateLimit.Validate()
}

func (c *Config) setDefaults() error {
	if err := c.Validate(); err != nil {
		return err
	}
	if c.Resolver == nil {
		return errors.New("proxy: no Resolver")
	}
	if len(c.Listen) == 0 {
		return errors.New("proxy: no listen address")
	}
	if c.QueryTimeout <= 0 {
		c.QueryTimeout = DefaultQueryTimeout
	}
	if c.TCPIdleTimeout <= 0 {
		c.TCPIdleTimeout = DefaultTCPIdleTimeout
	}
	if c.TCPMaxConns <= 0 {
		c.TCPMaxConns = DefaultTCPMaxConns
	}
	if c.TCPMaxInFlight <= 0 {
		c.TCPMaxInFlight = DefaultTCPMaxInFlight
	}
	if c.UDPMaxInFlight <= 0 {
		c.UDPMaxInFlight = DefaultUDPMaxInFlight
	}
	if c.MaxInFlightBytes <= 0 {
		c.MaxInFlightBytes = DefaultMaxInFlightBytes
	}
	if c.TransferTimeout <= 0 {
		c.TransferTimeout = DefaultTransferTimeout
	}
	if c.Observer == nil {
		c.Observer = NopObserver{}
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}
