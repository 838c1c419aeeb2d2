package upstream

import (
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/dotproxy/dotproxy/dnsmsg"
)

// Defaults used for zero Config fields.
const (
	DefaultMaxConns         = 4
	DefaultMaxInFlight      = 256
	DefaultConnectTimeout   = 2 * time.Second
	DefaultHandshakeTimeout = 2 * time.Second
	DefaultIdleTimeout      = 8 * time.Second
	DefaultAttemptTimeout   = 1500 * time.Millisecond
)

// MaxInFlightLimit is the most MaxInFlight may be: the queries of one
// connection must leave a free 16-bit ID for a resent copy or a probe.
const MaxInFlightLimit = maxPending

// Config describes one upstream resolver and how to talk to it.
type Config struct {
	// Addr is the host:port to connect to.
	Addr string
	// ServerName is the name the certificate must be valid for. It is sent
	// as SNI when it is a host name; an IP address is checked against the
	// certificate's IP SANs.
	ServerName string
	// RootCAs verifies the server's chain; nil means the system roots.
	RootCAs *x509.CertPool
	// Pins, when not empty, are SHA-256 digests of SubjectPublicKeyInfo;
	// the verified chain must contain a certificate matching one of them.
	Pins [][sha256.Size]byte
	// Resolver looks up Addr's host name at each new connection; nil means
	// the system resolver (DOTPROXY_BOOTSTRAP sets one of its own).
	Resolver *net.Resolver
	// ResolverName names Resolver in errors, e.g. "bootstrap 192.0.2.53:53",
	// in place of the system resolver's server that Go's messages name.
	// Empty leaves the messages as they are.
	ResolverName string

	// MaxConns caps the connections open or being opened. Zero means
	// DefaultMaxConns.
	MaxConns int
	// WarmConns is how many connections are kept open even without traffic,
	// reopened in the background when they close, so that a query after a
	// quiet spell does not wait for a handshake. Zero keeps none.
	WarmConns int
	// MaxInFlight caps the queries outstanding on one connection. Zero
	// means DefaultMaxInFlight; at most MaxInFlightLimit.
	MaxInFlight int

	// ConnectTimeout bounds the TCP connect. Zero means the default.
	ConnectTimeout time.Duration
	// HandshakeTimeout bounds the TLS handshake. Zero means the default.
	HandshakeTimeout time.Duration
	// IdleTimeout closes a connection with no query in flight for this
	// long. It should be shorter than the server's own idle timeout
	// (about 10 s at public resolvers), so that we close first rather than
	// write into a connection the server is closing. Zero means the default.
	IdleTimeout time.Duration
	// AttemptTimeout paces the pool's recovery of a query that waits for
	// its answer: at a quarter of it, a connection that has read nothing
	// since the query was sent gets a probe query; at half, a connection
	// that still has read nothing is retired and its queries fail with
	// ErrSilent, while a query unanswered on a connection that answers
	// others is sent once more. Balance gives each attempt at least this
	// long, so that the pool's recovery comes first. Zero means the
	// default.
	AttemptTimeout time.Duration
	// ProbeName is the name queried (type NS) to test whether a quiet
	// connection is alive. Empty means the root, which every resolver
	// answers from its cache.
	ProbeName string
	// FastOpen enables TCP Fast Open on connect where the kernel allows it.
	FastOpen bool
	// Rewrite is what the pool changes in each query it sends: EDNS(0)
	// padding to a block (RFC 8467), the edns-tcp-keepalive option (RFC
	// 7828), the client's subnet hidden (RFC 7871). When it asks for
	// anything, answers are cleaned of what the rewrite caused (see
	// dnsmsg.CleanAnswer: the client's own subnet option goes back in) and a
	// keepalive timeout the resolver advertises replaces IdleTimeout for
	// that connection. With HideClientSubnet, a query whose subnet cannot
	// be hidden fails at once without being sent (see Start). The zero
	// value sends queries byte for byte.
	Rewrite dnsmsg.Rewrite

	// Observer receives the pool's events; nil means NopObserver.
	Observer Observer
	// Logger receives connection-level logs; nil means slog.Default().
	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	if c.MaxConns <= 0 {
		c.MaxConns = DefaultMaxConns
	}
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = DefaultMaxInFlight
	}
	if c.ConnectTimeout <= 0 {
		c.ConnectTimeout = DefaultConnectTimeout
	}
	if c.HandshakeTimeout <= 0 {
		c.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.AttemptTimeout <= 0 {
		c.AttemptTimeout = DefaultAttemptTimeout
	}
	if c.ProbeName == "" {
		c.ProbeName = "."
	}
	if c.Observer == nil {
		c.Observer = NopObserver{}
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// ErrInvalidConfig is wrapped by the errors of Config.Validate.
var ErrInvalidConfig = errors.New("upstream: invalid config")

// Validate reports the first field of c that is out of range, naming the
// field, in an error that wraps ErrInvalidConfig. Zero fields are valid:
// they mean their defaults.
func (c *Config) Validate() error {
	bad := func(field string, v any, why string) error {
		return fmt.Errorf("%w: %s %v: %s", ErrInvalidConfig, field, v, why)
	}
	maxConns := c.MaxConns
	if maxConns == 0 {
		maxConns = DefaultMaxConns
	}
	switch {
	case c.MaxConns < 0:
		return bad("MaxConns", c.MaxConns, "is negative")
	case c.MaxInFlight < 0 || c.MaxInFlight > MaxInFlightLimit:
		return bad("MaxInFlight", c.MaxInFlight, fmt.Sprintf("is not within 0..%d, the queries that fit the ID space of one connection", MaxInFlightLimit))
	case c.WarmConns < 0 || c.WarmConns > maxConns:
		return bad("WarmConns", c.WarmConns, fmt.Sprintf("is not within 0..MaxConns (%d)", maxConns))
	case c.ConnectTimeout < 0:
		return bad("ConnectTimeout", c.ConnectTimeout, "is negative")
	case c.HandshakeTimeout < 0:
		return bad("HandshakeTimeout", c.HandshakeTimeout, "is negative")
	case c.IdleTimeout < 0:
		return bad("IdleTimeout", c.IdleTimeout, "is negative")
	case c.AttemptTimeout < 0:
		return bad("AttemptTimeout", c.AttemptTimeout, "is negative")
	}
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		return bad("Addr", fmt.Sprintf("%q", c.Addr), err.Error())
	}
	if c.ProbeName != "" {
		if _, err := dnsmsg.NewQuery(0, c.ProbeName, dnsmsg.TypeNS); err != nil {
			return bad("ProbeName", fmt.Sprintf("%q", c.ProbeName), err.Error())
		}
	}
	return nil
}
