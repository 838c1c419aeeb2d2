package emit_test

import (
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dotproxy/dotproxy/emit"
)

// clearDD unsets, for the test, every variable through which the Datadog
// client reads its environment, so the machine's own cannot leak in.
func clearDD(t testing.TB) {
	t.Helper()
	for _, v := range []string{"DD_AGENT_HOST", "DD_DOGSTATSD_PORT", "DD_DOGSTATSD_URL",
		"DD_ENV", "DD_SERVICE", "DD_VERSION", "DD_ENTITY_ID", "DD_EXTERNAL_ENV",
		"DD_CARDINALITY", "DATADOG_CARDINALITY"} {
		t.Setenv(v, "")
	}
}

// newEmitter builds an Emitter that flushes only when told to, and closes
// it at the end of the test.
func newEmitter(t testing.TB, cfg emit.Config) *emit.Emitter {
	t.Helper()
	if cfg.FlushInterval == 0 {
		cfg.FlushInterval = time.Hour
	}
	e, err := emit.New(cfg)
	if err != nil {
		t.Fatalf("New(%+v): %v", cfg, err)
	}
	t.Cleanup(func() {
		if err := e.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return e
}

// collector is a statsd server of the test's own. A goroutine reads every
// datagram from the moment it listens, as a real server would, so a client
// writing to a Unix datagram socket with a short queue is never held up.
type collector struct {
	t     testing.TB
	conn  net.PacketConn
	recv  chan []string // the lines of each datagram
	lines []string      // every line handed out by until so far
}

// listenUDP starts a collector on a free loopback UDP port.
func listenUDP(t testing.TB) *collector {
	t.Helper()
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	return startCollector(t, conn)
}

// listenUnix starts a collector on a Unix datagram socket in a fresh
// directory short enough for the socket path limit.
func listenUnix(t testing.TB) *collector {
	t.Helper()
	dir, err := os.MkdirTemp("", "emit")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	conn, err := net.ListenPacket("unixgram", filepath.Join(dir, "dsd.sock"))
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	return startCollector(t, conn)
}

// startCollector reads conn until the test ends.
func startCollector(t testing.TB, conn net.PacketConn) *collector {
	c := &collector{t: t, conn: conn, recv: make(chan []string, 4096)}
	done := make(chan struct{})
	t.Cleanup(func() {
		conn.Close()
		<-done
	})
	go func() {
		defer close(done)
		buf := make([]byte, 65536)
		for {
			n, _, err := conn.ReadFrom(buf)
			if err != nil {
				return
			}
			var lines []string
			for l := range strings.SplitSeq(string(buf[:n]), "\n") {
				if l != "" {
					lines = append(lines, l)
				}
			}
			select {
			case c.recv <- lines:
			default: // the test stopped reading; drop
			}
		}
	}()
	return c
}

// addr returns the Config.Addr that reaches c.
func (c *collector) addr() string {
	if c.conn.LocalAddr().Network() == "unixgram" {
		return "unix://" + c.conn.LocalAddr().String()
	}
	return c.conn.LocalAddr().String()
}

// until collects lines until done returns true for all the lines received
// so far, and returns them; it fails the test after a bounded wait.
func (c *collector) until(done func(lines []string) bool) []string {
	c.t.Helper()
	timeout := time.NewTimer(10 * time.Second)
	defer timeout.Stop()
	for !done(c.lines) {
		select {
		case lines := <-c.recv:
			c.lines = append(c.lines, lines...)
		case <-timeout.C:
			c.t.Fatalf("metrics missing after 10s; got:\n%s", strings.Join(c.lines, "\n"))
		}
	}
	return c.lines
}

// metric is one parsed line.
type metric struct {
	name, typ string
	values    []string // more than one in a DogStatsD multi-value line
	tags      []string // sorted
}

// key names the series of m: its name, type and sorted tags.
func (m metric) key() string { return m.name + "|" + m.typ + "|" + strings.Join(m.tags, ",") }

// parseDogStatsD parses a DogStatsD metric line, with one value or, from
// extended aggregation, several separated by ':'. It accepts the optional
// fields the Datadog client may add (sample rate, container ID, external
// env, cardinality) and returns the tags sorted.
func parseDogStatsD(l string) (metric, error) {
	fields := strings.Split(l, "|")
	if len(fields) < 2 {
		return metric{}, errors.New("no type")
	}
	name, value, ok := strings.Cut(fields[0], ":")
	if !ok || name == "" || value == "" {
		return metric{}, errors.New("want name:value")
	}
	m := metric{name: name, values: strings.Split(value, ":"), typ: fields[1]}
	for _, f := range fields[2:] {
		if tags, ok := strings.CutPrefix(f, "#"); ok {
			m.tags = strings.Split(tags, ",")
		}
	}
	slices.Sort(m.tags)
	return m, nil
}

// plainLine is the plain statsd grammar that every statsd server accepts:
// a dotted name of [A-Za-z0-9_-] words, a decimal value, a type among c, g
// and ms, and an optional sample rate; nothing else.
var plainLine = regexp.MustCompile(`^([A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*):([0-9]+(\.[0-9]+)?)\|(c|g|ms)(\|@(0\.[0-9]+|1))?$`)

// parseStatsD parses a plain statsd line under plainLine.
func parseStatsD(l string) (metric, error) {
	sub := plainLine.FindStringSubmatch(l)
	if sub == nil {
		return metric{}, errors.New("not a plain statsd line")
	}
	return metric{name: sub[1], values: []string{sub[3]}, typ: sub[5]}, nil
}

// byKey groups the lines whose name starts with prefix by series, failing
// the test on a line that does not parse.
func byKey(t testing.TB, lines []string, prefix string, parse func(string) (metric, error)) map[string][]string {
	t.Helper()
	got := map[string][]string{}
	for _, l := range lines {
		m, err := parse(l)
		if err != nil {
			t.Errorf("line %q: %v", l, err)
			continue
		}
		if strings.HasPrefix(m.name, prefix) {
			got[m.key()] = append(got[m.key()], m.values...)
		}
	}
	return got
}

// hasAll returns a predicate for collector.until that holds once a line of
// every series in want has arrived.
func hasAll(t testing.TB, want map[string][]string, prefix string, parse func(string) (metric, error)) func([]string) bool {
	return func(lines []string) bool {
		got := byKey(t, lines, prefix, parse)
		for k, v := range want {
			if len(got[k]) < len(v) {
				return false
			}
		}
		return true
	}
}

// newTestLogger returns a logger writing text lines, safe for concurrent
// use, and a function that returns what it wrote so far.
func newTestLogger() (*slog.Logger, func() string) {
	w := &lockedWriter{}
	return slog.New(slog.NewTextHandler(w, nil)), w.String
}

// lockedWriter is a strings.Builder safe for concurrent use.
type lockedWriter struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedWriter) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
