package emit

import (
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"
)

// Defaults filled in by [Config.Validate] and [New] for zero fields.
const (
	DefaultPrefix        = "dotproxy"
	DefaultFlushInterval = time.Second
	DefaultCloseTimeout  = 300 * time.Millisecond
)

// unixPrefix marks an Addr that names a Unix datagram socket.
const unixPrefix = "unix://"

// Format is the wire format of the metrics: [DogStatsD] or [StatsD].
type Format string

// The formats a Config can ask for.
const (
	// DogStatsD sends tags as "|#key:value" through the Datadog client, with
	// its client-side aggregation, telemetry and origin detection.
	DogStatsD Format = "dogstatsd"
	// StatsD sends plain "name:value|type" lines that any statsd server
	// accepts. What would have been tags is folded into the metric name.
	StatsD Format = "statsd"
)

// UnmarshalText implements [encoding.TextUnmarshaler], so that envconfig
// rejects an unknown format at start-up. Empty text means [DogStatsD]. The
// error wraps [ErrConfig]; it names no field, since a Format can be held by
// any.
func (f *Format) UnmarshalText(text []byte) error {
	switch v := Format(text); v {
	case "":
		*f = DogStatsD
	case DogStatsD, StatsD:
		*f = v
	default:
		return fmt.Errorf("%w: format %q: want %s or %s", ErrConfig, text, DogStatsD, StatsD)
	}
	return nil
}

// String returns the format's name.
func (f Format) String() string { return string(f) }

// Config configures an [Emitter]. The zero Config is valid and turns metrics
// off, unless the Datadog agent variables are set (see Addr).
type Config struct {
	// Addr is where metrics go: "host:port" for UDP, or "unix:///path" for
	// DogStatsD over a Unix socket, datagram or stream, whichever the agent
	// listens on (dogstatsd format only). A host
	// name is resolved once, in New. Empty means metrics are off, except that
	// in dogstatsd format the Datadog client then looks for the agent in
	// DD_AGENT_HOST (with DD_DOGSTATSD_PORT) or DD_DOGSTATSD_URL, as
	// Datadog's own clients do, and metrics are on if it finds one.
	Addr string
	// Format is the wire format. Empty means DogStatsD.
	Format Format
	// Prefix starts every metric name, followed by a dot. Letters, digits,
	// '_', '-' and inner dots only. Empty means "dotproxy".
	Prefix string
	// Tags are added to every metric in dogstatsd format, each "key:value"
	// or a bare "value"; the Datadog client adds DD_ENV, DD_SERVICE and
	// DD_VERSION as env, service and version tags. StatsD format ignores
	// Tags: put constant parts of the name in Prefix instead.
	Tags []string
	// FlushInterval is how often counts and gauges are summed and sent, and
	// how often the gauges are read. Timings and sizes are sent as soon as a
	// datagram fills, or within FlushInterval. Zero means one second.
	FlushInterval time.Duration
	// SingleValue makes the dogstatsd format send every timing and size as
	// a line of its own. By default the Datadog client's extended
	// aggregation packs the samples of one series taken in a FlushInterval
	// into one multi-value line ("name:1.2:3.4|ms", DogStatsD protocol 1.1:
	// Datadog Agent 6.25 or 7.25 and later, statsd_exporter 0.27 and
	// later), which costs the query path several times less. Set it for a
	// relay that cannot parse such lines. StatsD format ignores it.
	SingleValue bool
	// CloseTimeout bounds how long [Emitter.Close] waits for the last
	// metrics to be sent. A statsd server that does not read its socket
	// would otherwise hold Close for the client's write timeout once per
	// buffered datagram: seconds, or minutes after a long run, longer than
	// an orchestrator waits before it kills the process. Zero means
	// DefaultCloseTimeout.
	CloseTimeout time.Duration
	// Logger receives send failures at Warn level, at most one line every
	// ten seconds. Nil means slog.Default().
	Logger *slog.Logger
}

// withDefaults returns cfg with its zero fields filled in.
func (cfg Config) withDefaults() Config {
	if cfg.Format == "" {
		cfg.Format = DogStatsD
	}
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultPrefix
	}
	if cfg.FlushInterval == 0 {
		cfg.FlushInterval = DefaultFlushInterval
	}
	if cfg.CloseTimeout <= 0 {
		cfg.CloseTimeout = DefaultCloseTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return cfg
}

// Validate reports the first bad field of cfg, after filling its defaults,
// as an error that wraps [ErrConfig] and names the field first, right after
// ErrConfig's text: "emit: bad configuration: Prefix "a/b": ...". Which
// variable fills the field is for the caller to say.
func (cfg Config) Validate() error {
	cfg = cfg.withDefaults()
	if cfg.Format != DogStatsD && cfg.Format != StatsD {
		return fmt.Errorf("%w: Format %q: want %s or %s", ErrConfig, cfg.Format, DogStatsD, StatsD)
	}
	if err := validateAddr(cfg.Addr, cfg.Format); err != nil {
		return fmt.Errorf("%w: Addr %q: %s", ErrConfig, cfg.Addr, err)
	}
	if !validPrefix(cfg.Prefix) {
		return fmt.Errorf("%w: Prefix %q: want letters, digits, '_', '-' and inner dots", ErrConfig, cfg.Prefix)
	}
	for _, tag := range cfg.Tags {
		if tag == "" || strings.ContainsAny(tag, ",|#\n") {
			return fmt.Errorf("%w: Tags: tag %q is empty or holds ',', '|', '#' or a newline", ErrConfig, tag)
		}
	}
	if cfg.FlushInterval < 0 {
		return fmt.Errorf("%w: FlushInterval %s: must not be negative", ErrConfig, cfg.FlushInterval)
	}
	return nil
}

// validateAddr checks the shape of addr; it does no I/O.
func validateAddr(addr string, f Format) error {
	if addr == "" {
		return nil
	}
	if path, ok := strings.CutPrefix(addr, unixPrefix); ok {
		if f != DogStatsD {
			return fmt.Errorf("a Unix socket needs Format %s", DogStatsD)
		}
		if !strings.HasPrefix(path, "/") {
			return fmt.Errorf("want unix:///absolute/path")
		}
		return nil
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("want host:port or unix:///path")
	}
	if host == "" {
		return fmt.Errorf("missing host")
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		return fmt.Errorf("port %q is not a number from 1 to 65535", port)
	}
	return nil
}

// validPrefix reports whether p is dot-separated words of letters, digits,
// '_' and '-'.
func validPrefix(p string) bool {
	for word := range strings.SplitSeq(p, ".") {
		if word == "" {
			return false
		}
		for i := 0; i < len(word); i++ {
			if !nameByte(word[i]) {
				return false
			}
		}
	}
	return true
}

// nameByte reports whether c may appear in a metric name's word.
func nameByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}
