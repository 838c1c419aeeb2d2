package main

import (
	"crypto/x509"
	"errors"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"time"

	"github.com/dotproxy/dotproxy/balance"
	"github.com/dotproxy/dotproxy/dnsmsg"
	"github.com/dotproxy/dotproxy/emit"
	"github.com/dotproxy/dotproxy/proxy"
	"github.com/dotproxy/dotproxy/ratelimit"
	"github.com/dotproxy/dotproxy/upstream"
)

// config is everything dotproxy reads from its environment. Nested structs
// add their name to the variable: Upstream.MaxConns is
// DOTPROXY_UPSTREAM_MAX_CONNS. The fields carry no default tags: a default
// is the value that defaultConfig gives the field, which envconfig leaves
// alone when the variable is unset. A {name} in a description is a bound
// that -h fills in from the constant of that name.
type config struct {
	Upstreams       upstreamList        `split_words:"true" desc:"resolvers to forward to: comma-separated host[:port][#tls-name]; port 853 if omitted, and never 53 or a scheme such as udp://: only DNS-over-TLS; IPv6 as [addr]:port. Without #tls-name the certificate must be valid for the host (IP SAN for an address)"`
	Bootstrap       upstream.Bootstrap  `desc:"plain-DNS resolvers (comma-separated ip or ip:port, port 53 if omitted) used only to resolve upstream host names, instead of the system resolver; set it when the system resolver is dotproxy itself"`
	Listen          listenList          `split_words:"true" desc:"comma-separated host:port addresses, each served on UDP and TCP; an empty host means every address"`
	Allow           prefixList          `split_words:"true" desc:"client networks (CIDRs or single addresses) that may query; others get REFUSED. 0.0.0.0/0,::/0 allows everyone"`
	QueryTimeout    time.Duration       `split_words:"true" desc:"total time a query may take, retries included; the client then gets SERVFAIL. Below the 5 s that stub resolvers wait, so they see an answer rather than a timeout"`
	TransferTimeout time.Duration       `split_words:"true" desc:"longest a zone transfer (AXFR, IXFR over TCP) may take from its query to its last message; each message must also arrive within DOTPROXY_QUERY_TIMEOUT of the one before"`
	Lameduck        time.Duration       `desc:"drain period: on SIGTERM or SIGINT, report not ready (healthcheck -ready) at once but go on answering every query for this long, then stop as usual, so that a load balancer stops sending queries first; 0 stops at once. The stop then takes up to this + DOTPROXY_QUERY_TIMEOUT + 1s: the orchestrator's grace period must be longer"`
	Padding         dnsmsg.Padding      `default:"block" desc:"block: pad every query sent upstream to a multiple of 128 bytes with EDNS(0) padding (RFC 7830, RFC 8467), so the length of the encrypted record does not give away the name; off: send queries unpadded"`
	ClientSubnet    dnsmsg.ClientSubnet `split_words:"true" desc:"hide: a client's EDNS Client Subnet option (RFC 7871) goes upstream with source prefix 0, so resolvers never learn the client's network, and the answer gets the client's own option back; a query whose subnet cannot be hidden (signed, malformed) is answered REFUSED or FORMERR by dotproxy; pass: the option goes upstream as sent. dotproxy never adds one"`

	TLS struct {
		CAFile string  `split_words:"true" desc:"PEM bundle trusted instead of the system roots"`
		Pins   pinList `split_words:"true" desc:"comma-separated base64 SHA-256 SubjectPublicKeyInfo pins; when set, the verified chain must also contain a pinned key"`
	}

	Upstream struct {
		MaxConns         int           `split_words:"true" desc:"connections per upstream at most, those being opened included"`
		WarmConns        int           `split_words:"true" desc:"connections per upstream kept open without traffic (recycled every idle timeout), so a query after a quiet spell does not wait for a handshake; 0 keeps none"`
		MaxInflight      int           `split_words:"true" desc:"queries outstanding on one upstream connection at most (1 to {upstream.MaxInFlightLimit}); a new connection opens when all are full"`
		ConnectTimeout   time.Duration `split_words:"true" desc:"TCP connect timeout"`
		HandshakeTimeout time.Duration `split_words:"true" desc:"TLS handshake timeout"`
		IdleTimeout      time.Duration `split_words:"true" desc:"close an upstream connection idle this long; keep it below the resolver's own (about 10 s at public resolvers)"`
		AttemptTimeout   time.Duration `split_words:"true" desc:"paces recovery: a query unanswered for a quarter of this gets a probe behind it; at half, a connection that has read nothing since is retired (its queries go to another upstream) and a query lost on a live one is sent again; each attempt gets at least this long, and four attempts in a row slower than this mark an upstream down. Shorter than DOTPROXY_QUERY_TIMEOUT"`
		TCPFastopen      bool          `split_words:"true" desc:"use TCP Fast Open to upstreams where the kernel allows (Linux net.ipv4.tcp_fastopen bit 1)"`
	}

	Client struct {
		TCPIdleTimeout time.Duration `split_words:"true" desc:"close a client TCP connection that sends no query for this long"`
		TCPMaxConns    int           `split_words:"true" desc:"client TCP connections per listen address at most; more are closed at once"`
		TCPMaxInflight int           `split_words:"true" desc:"queries answered at once per client TCP connection"`
		UDPMaxInflight int           `split_words:"true" desc:"UDP queries answered at once per UDP socket; past it the socket is not read"`
		UDPSockets     int           `split_words:"true" desc:"UDP sockets per listen address, each with its own reader, sharing the port with SO_REUSEPORT (Linux)"`
		MaxInflightMIB int           `split_words:"true" desc:"memory (MiB, 1 to {maxInflightMIB}) held for client queries in flight at once, over every listener and both transports (each query's bytes plus a fixed allowance); past it a UDP query is dropped and counted and a TCP query gets REFUSED"`
	}

	// The rate limit per client network. Its settings are flat, not a
	// struct, since the rate itself is DOTPROXY_RATE_LIMIT.
	RateLimit           float64    `split_words:"true" desc:"queries per second that each client network (see the prefixes below) may send in the long run, fractions allowed ({ratelimit.MinRate} to {ratelimit.MaxRate}); 0 turns limiting off. Off by default: a forwarder that speaks for many clients (a router, Pi-hole, a node-local cache, NAT) puts a whole network behind one address, and any fixed limit low enough to stop a looping device would throttle it. 20 is a good start on a home network. Loopback clients are never limited"`
	RateLimitBurst      int        `split_words:"true" desc:"queries that a client network may send at once before DOTPROXY_RATE_LIMIT holds it back (1 to {ratelimit.MaxBurst}): enough for a web page's names, each asked as A, AAAA and HTTPS"`
	RateLimitSlip       int        `split_words:"true" desc:"of a client network's UDP queries over the limit, the first and then every Nth get an empty reply with TC set and the rest are dropped, so that a genuine client retries over TCP, where it may go one more burst over the limit before it gets REFUSED (0 never, 1 always, at most {ratelimit.MaxSlip})"`
	RateLimitIpv4Prefix int        `split_words:"true" desc:"prefix length (1 to 32) by which IPv4 clients share a limit"`
	RateLimitIpv6Prefix int        `split_words:"true" desc:"prefix length (1 to 128) by which IPv6 clients share a limit: one host may use any address of its /64"`
	RateLimitExempt     prefixList `split_words:"true" desc:"client networks (CIDRs or single addresses) never limited: put forwarders that speak for many clients here"`

	Policy     balance.Policy `split_words:"true" desc:"load-balancing policy: round_robin, random, historical_connections, availability, failover, least_outstanding, fastest"`
	MaxRetries int            `split_words:"true" desc:"further upstreams a query may try after an attempt failed, within DOTPROXY_QUERY_TIMEOUT"`
	HedgeAfter time.Duration  `split_words:"true" desc:"send a query still unanswered after this long to a second upstream too, first answer wins; 0 turns hedging off, and any other value must be shorter than DOTPROXY_QUERY_TIMEOUT"`
	Probe      struct {
		Name       string        `split_words:"true" desc:"name queried (type NS) to probe an upstream that is down"`
		Timeout    time.Duration `split_words:"true" desc:"timeout of one probe"`
		MaxBackoff time.Duration `split_words:"true" desc:"longest wait between probes of an upstream that stays down"`
		ResetAfter time.Duration `split_words:"true" desc:"time an upstream must work after coming back before its backoff starts from 100 ms again"`
	}

	Statsd struct {
		Addr          string        `split_words:"true" desc:"host:port (UDP) or unix:///path (DogStatsD socket); empty: metrics off unless DD_AGENT_HOST or DD_DOGSTATSD_URL name an agent"`
		Format        emit.Format   `split_words:"true" desc:"dogstatsd (tags) or statsd (plain lines, tags folded into names)"`
		Prefix        string        `split_words:"true" desc:"metric name prefix"`
		Tags          []string      `split_words:"true" desc:"constant tags for every metric in dogstatsd format, e.g. env:home,host:edge1"`
		FlushInterval time.Duration `split_words:"true" desc:"how often aggregated counts and gauges are sent"`
		SingleValue   bool          `split_words:"true" desc:"dogstatsd only: one sample per line, for relays that cannot read multi-value lines (Datadog Agent before 6.25/7.25, statsd_exporter before 0.27)"`
	}

	Log struct {
		Level  logLevel  `split_words:"true" desc:"debug (logs every query: client, question, rcode, upstream, time), info, warn or error"`
		Format logFormat `split_words:"true" desc:"auto (coloured text on a terminal, JSON otherwise), text or json"`
	}

	// defaultUpstreams is set when DOTPROXY_UPSTREAMS is not, so that
	// start-up says plainly where queries go. envconfig skips unexported
	// fields.
	defaultUpstreams bool

	// routes are the DOTPROXY_ROUTE_<NAME>_* settings (routes.go), which
	// envconfig cannot read: their names are the user's.
	routes []routeConfig
}

// routeConfig is one route, read from its variables.
type routeConfig struct {
	// name is the route's name in lower case: its metric tag.
	name string
	// upper is the name as its variables spell it.
	upper string
	// domains are the suffixes, as route.ParseSuffix returns them.
	domains   []string
	upstreams upstreamList
	// policy is empty when DOTPROXY_ROUTE_<NAME>_POLICY is not set: the
	// route then takes DOTPROXY_POLICY.
	policy balance.Policy
}

// The defaults that are main's alone, for settings that no package reads:
// where queries go by default and who may send them.
var (
	// builtinUpstreams are Cloudflare's two public resolvers, verified
	// against the IP addresses in their certificate.
	builtinUpstreams = upstreamList{
		{Addr: "1.1.1.1:853", ServerName: "1.1.1.1"},
		{Addr: "1.0.0.1:853", ServerName: "1.0.0.1"},
	}
	// privateNetworks are the loopback, private, shared (CGNAT) and
	// link-local networks of IPv4 and IPv6: a forwarder meant for a private
	// network must not answer the whole Internet by default.
	privateNetworks = prefixList{
		netip.MustParsePrefix("127.0.0.0/8"),
		netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("172.16.0.0/12"),
		netip.MustParsePrefix("192.168.0.0/16"),
		netip.MustParsePrefix("100.64.0.0/10"),
		netip.MustParsePrefix("169.254.0.0/16"),
		netip.MustParsePrefix("::1/128"),
		netip.MustParsePrefix("fc00::/7"),
		netip.MustParsePrefix("fe80::/10"),
	}
)

// defaultConfig returns the settings as they are when no variable is set.
// Each default is written once: as the package's own Default constant where
// the package has one, here where none has. envconfig then overrides only
// the variables that are set, and -h prints these values.
func defaultConfig() *config {
	c := &config{
		Upstreams:       slices.Clone(builtinUpstreams),
		Listen:          listenList{":53"},
		Allow:           slices.Clone(privateNetworks),
		QueryTimeout:    proxy.DefaultQueryTimeout,
		TransferTimeout: proxy.DefaultTransferTimeout,
		Padding:         dnsmsg.PadBlock,
		ClientSubnet:    dnsmsg.SubnetHide,
		Policy:          balance.DefaultPolicy,
		MaxRetries:      balance.DefaultMaxRetries,
	}
	c.Upstream.MaxConns = upstream.DefaultMaxConns
	// upstream keeps no connection warm unless asked: one spares the first
	// query after a quiet spell a handshake, for one idle connection.
	c.Upstream.WarmConns = 1
	c.Upstream.MaxInflight = upstream.DefaultMaxInFlight
	c.Upstream.ConnectTimeout = upstream.DefaultConnectTimeout
	c.Upstream.HandshakeTimeout = upstream.DefaultHandshakeTimeout
	c.Upstream.IdleTimeout = upstream.DefaultIdleTimeout
	c.Upstream.AttemptTimeout = upstream.DefaultAttemptTimeout
	// Fast Open puts the ClientHello in the SYN where the kernel holds a
	// cookie; a kernel that refuses it just connects as usual.
	c.Upstream.TCPFastopen = true

	c.Client.TCPIdleTimeout = proxy.DefaultTCPIdleTimeout
	c.Client.TCPMaxConns = proxy.DefaultTCPMaxConns
	c.Client.TCPMaxInflight = proxy.DefaultTCPMaxInFlight
	c.Client.UDPMaxInflight = proxy.DefaultUDPMaxInFlight
	c.Client.UDPSockets = 1                                       // proxy's zero: one socket per address
	c.Client.MaxInflightMIB = proxy.DefaultMaxInFlightBytes >> 20 // in MiB

	// No default rate: limiting is off (see the RateLimit description).
	c.RateLimitBurst = ratelimit.DefaultBurst
	c.RateLimitSlip = ratelimit.DefaultSlip
	c.RateLimitIpv4Prefix = ratelimit.DefaultIPv4Prefix
	c.RateLimitIpv6Prefix = ratelimit.DefaultIPv6Prefix

	c.Probe.Name = balance.DefaultProbeName
	c.Probe.Timeout = balance.DefaultProbeTimeout
	c.Probe.MaxBackoff = balance.DefaultProbeMaxBackoff
	c.Probe.ResetAfter = balance.DefaultProbeResetAfter

	c.Statsd.Format = emit.DogStatsD // emit's zero
	c.Statsd.Prefix = emit.DefaultPrefix
	c.Statsd.FlushInterval = emit.DefaultFlushInterval

	c.Log.Level = logLevel(slog.LevelInfo)
	c.Log.Format = formatAuto
	return c
}

// loadCAs reads a PEM bundle into a pool.
func loadCAs(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, errors.New("no PEM certificate in the file")
	}
	return pool, nil
}

// upstreamConfig is the pool's configuration for spec. Queries always carry
// edns-tcp-keepalive, so that each resolver says how long it keeps an idle
// connection (RFC 7858 §3.4).
func (c *config) upstreamConfig(spec upstream.Spec, roots *x509.CertPool, obs upstream.Observer, log *slog.Logger) upstream.Config {
	return upstream.Config{
		Addr:             spec.Addr,
		ServerName:       spec.ServerName,
		RootCAs:          roots,
		Pins:             c.TLS.Pins,
		Resolver:         c.Bootstrap.Resolver(),
		ResolverName:     c.Bootstrap.Name(),
		MaxConns:         c.Upstream.MaxConns,
		WarmConns:        c.Upstream.WarmConns,
		MaxInFlight:      c.Upstream.MaxInflight,
		ConnectTimeout:   c.Upstream.ConnectTimeout,
		HandshakeTimeout: c.Upstream.HandshakeTimeout,
		IdleTimeout:      c.Upstream.IdleTimeout,
		AttemptTimeout:   c.Upstream.AttemptTimeout,
		ProbeName:        c.Probe.Name,
		FastOpen:         c.Upstream.TCPFastopen,
		Rewrite:          dnsmsg.Rewrite{PadBlock: c.Padding.Block(), Keepalive: true, HideClientSubnet: c.ClientSubnet.Hide()},
		Observer:         obs,
		Logger:           log,
	}
}

// upstreamFields gives the field of c behind each field of upstream.Config
// that upstreamConfig fills from a setting, for upstream's errors name its
// own fields.
func (c *config) upstreamFields() map[string]any {
	return map[string]any{
		"Addr":             &c.Upstreams,
		"ServerName":       &c.Upstreams,
		"RootCAs":          &c.TLS.CAFile,
		"Pins":             &c.TLS.Pins,
		"Resolver":         &c.Bootstrap,
		"ResolverName":     &c.Bootstrap,
		"MaxConns":         &c.Upstream.MaxConns,
		"WarmConns":        &c.Upstream.WarmConns,
		"MaxInFlight":      &c.Upstream.MaxInflight,
		"ConnectTimeout":   &c.Upstream.ConnectTimeout,
		"HandshakeTimeout": &c.Upstream.HandshakeTimeout,
		"IdleTimeout":      &c.Upstream.IdleTimeout,
		"AttemptTimeout":   &c.Upstream.AttemptTimeout,
		"ProbeName":        &c.Probe.Name,
		"FastOpen":         &c.Upstream.TCPFastopen,
		"Rewrite":          &c.Padding,
	}
}

// balanceConfig is the balancer's configuration; the attempt timeout is the
// upstreams' own, the same value.
func (c *config) balanceConfig() balance.Config {
	return balance.Config{
		Policy:          c.Policy,
		MaxRetries:      c.MaxRetries,
		HedgeAfter:      c.HedgeAfter,
		ProbeName:       c.Probe.Name,
		ProbeTimeout:    c.Probe.Timeout,
		AttemptTimeout:  c.Upstream.AttemptTimeout,
		ProbeMaxBackoff: c.Probe.MaxBackoff,
		ProbeResetAfter: c.Probe.ResetAfter,
	}
}

// balanceFields gives the field of c behind each field of balance.Config
// that balanceConfig fills.
func (c *config) balanceFields() map[string]any {
	return map[string]any{
		"Policy":          &c.Policy,
		"MaxRetries":      &c.MaxRetries,
		"HedgeAfter":      &c.HedgeAfter,
		"ProbeName":       &c.Probe.Name,
		"ProbeTimeout":    &c.Probe.Timeout,
		"AttemptTimeout":  &c.Upstream.AttemptTimeout,
		"ProbeMaxBackoff": &c.Probe.MaxBackoff,
		"ProbeResetAfter": &c.Probe.ResetAfter,
	}
}

// emitConfig is the metrics client's configuration. Its close may take the
// metrics' share of the stop budget, and no more.
func (c *config) emitConfig(log *slog.Logger) emit.Config {
	return emit.Config{
		Addr:          c.Statsd.Addr,
		Format:        c.Statsd.Format,
		Prefix:        c.Statsd.Prefix,
		Tags:          c.Statsd.Tags,
		FlushInterval: c.Statsd.FlushInterval,
		SingleValue:   c.Statsd.SingleValue,
		CloseTimeout:  metricsCloseWait,
		Logger:        log,
	}
}

func (c *config) proxyConfig(r proxy.Resolver, obs proxy.Observer, log *slog.Logger) proxy.Config {
	return proxy.Config{
		Listen:           c.Listen,
		Allow:            c.Allow,
		QueryTimeout:     c.QueryTimeout,
		TransferTimeout:  c.TransferTimeout,
		TCPIdleTimeout:   c.Client.TCPIdleTimeout,
		TCPMaxConns:      c.Client.TCPMaxConns,
		TCPMaxInFlight:   c.Client.TCPMaxInflight,
		UDPMaxInFlight:   c.Client.UDPMaxInflight,
		UDPSockets:       c.Client.UDPSockets,
		MaxInFlightBytes: int64(c.Client.MaxInflightMIB) << 20,
		HideClientSubnet: c.ClientSubnet.Hide(), // as the upstreams' Rewrite
		RateLimit:        c.rateLimitConfig(),
		Resolver:         r,
		Observer:         obs,
		Logger:           log,
	}
}

// proxyFields gives the field of c behind each field of proxy.Config that
// proxyConfig fills from a setting.
func (c *config) proxyFields() map[string]any {
	return map[string]any{
		"Listen":           &c.Listen,
		"Allow":            &c.Allow,
		"QueryTimeout":     &c.QueryTimeout,
		"TransferTimeout":  &c.TransferTimeout,
		"TCPIdleTimeout":   &c.Client.TCPIdleTimeout,
		"TCPMaxConns":      &c.Client.TCPMaxConns,
		"TCPMaxInFlight":   &c.Client.TCPMaxInflight,
		"UDPMaxInFlight":   &c.Client.UDPMaxInflight,
		"UDPSockets":       &c.Client.UDPSockets,
		"MaxInFlightBytes": &c.Client.MaxInflightMIB,
		"HideClientSubnet": &c.ClientSubnet,
	}
}

// rateLimitConfig is the rate limiter's configuration, which the proxy
// builds its limiter from.
func (c *config) rateLimitConfig() ratelimit.Config {
	return ratelimit.Config{
		Rate:       c.RateLimit,
		Burst:      c.RateLimitBurst,
		Slip:       c.RateLimitSlip,
		IPv4Prefix: c.RateLimitIpv4Prefix,
		IPv6Prefix: c.RateLimitIpv6Prefix,
		Exempt:     c.RateLimitExempt,
	}
}

// rateLimitFields gives the field of c behind each field of
// ratelimit.Config that rateLimitConfig fills.
func (c *config) rateLimitFields() map[string]any {
	return map[string]any{
		"Rate":       &c.RateLimit,
		"Burst":      &c.RateLimitBurst,
		"Slip":       &c.RateLimitSlip,
		"IPv4Prefix": &c.RateLimitIpv4Prefix,
		"IPv6Prefix": &c.RateLimitIpv6Prefix,
		"Exempt":     &c.RateLimitExempt,
	}
}

// emitFields gives the field of c behind each field of emit.Config that
// emitConfig fills from a setting.
func (c *config) emitFields() map[string]any {
	return map[string]any{
		"Addr":          &c.Statsd.Addr,
		"Format":        &c.Statsd.Format,
		"Prefix":        &c.Statsd.Prefix,
		"Tags":          &c.Statsd.Tags,
		"FlushInterval": &c.Statsd.FlushInterval,
		"SingleValue":   &c.Statsd.SingleValue,
	}
}

// upstreamNames returns the upstreams as they are written in settings.
func (c *config) upstreamNames() []string {
	ups := make([]string, len(c.Upstreams))
	for i, u := range c.Upstreams {
		ups[i] = u.String()
	}
	return ups
}

// logAttrs is the effective configuration, logged once at start-up.
func (c *config) logAttrs(bound []string, metrics bool) []any {
	return []any{
		"version", version,
		"listen", bound,
		"upstreams", c.upstreamNames(),
		"policy", string(c.Policy),
		"allow", len(c.Allow),
		"query_timeout", c.QueryTimeout.String(),
		"transfer_timeout", c.TransferTimeout.String(),
		"lameduck", c.Lameduck.String(),
		"client_max_inflight_mib", c.Client.MaxInflightMIB,
		"rate_limit", c.RateLimit,
		"rate_limit_burst", c.RateLimitBurst,
		"rate_limit_exempt", len(c.RateLimitExempt),
		"max_retries", c.MaxRetries,
		"hedge_after", c.HedgeAfter.String(),
		"ca_file", c.TLS.CAFile,
		"pins", len(c.TLS.Pins),
		"upstream_max_conns", c.Upstream.MaxConns,
		"upstream_warm_conns", c.Upstream.WarmConns,
		"upstream_max_inflight", c.Upstream.MaxInflight,
		"upstream_idle_timeout", c.Upstream.IdleTimeout.String(),
		"upstream_attempt_timeout", c.Upstream.AttemptTimeout.String(),
		"tcp_fastopen", c.Upstream.TCPFastopen,
		"padding", string(c.Padding),
		"client_subnet", string(c.ClientSubnet),
		"statsd", c.Statsd.Addr,
		"statsd_format", string(c.Statsd.Format),
		"metrics", metrics,
		"log_level", c.Log.Level.String(),
	}
}
