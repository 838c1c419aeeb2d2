package emit

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestPlainSink_datagrams checks that timings fill datagrams no larger than
// plainMaxPayload, split only between lines, each arriving once, and that
// counts are summed into one line.
func TestPlainSink_datagrams(t *testing.T) {
	srv, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	s, err := newPlainSink(srv.LocalAddr().String(), time.Hour, func(err error) { t.Errorf("send: %v", err) })
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	const n = 300 // well over one datagram of lines
	for i := range n {
		_ = s.TimeInMilliseconds("dotproxy.t", float64(i), nil, 1)
		_ = s.Count("dotproxy.c", 2, nil, 1)
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}

	var timings []string
	var counts []string
	buf := make([]byte, 65536)
	for len(timings) < n || len(counts) < 1 {
		if err := srv.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
			t.Fatal(err)
		}
		m, _, err := srv.ReadFrom(buf)
		if err != nil {
			t.Fatalf("got %d timings, %d counts: %v", len(timings), len(counts), err)
		}
		if m > plainMaxPayload {
			t.Errorf("datagram of %d bytes, want at most %d", m, plainMaxPayload)
		}
		for _, l := range strings.Split(string(buf[:m]), "\n") {
			switch {
			case strings.HasPrefix(l, "dotproxy.t:"):
				timings = append(timings, l)
			case strings.HasPrefix(l, "dotproxy.c:"):
				counts = append(counts, l)
			default:
				t.Errorf("unexpected line %q", l)
			}
		}
	}
	// Every timing once; their order across datagrams is the shards'.
	seen := make(map[string]bool, n)
	for _, l := range timings {
		seen[l] = true
	}
	for i := range n {
		if want := "dotproxy.t:" + strconv.Itoa(i) + ".000|ms"; !seen[want] {
			t.Fatalf("timing %q missing; got %d timings", want, len(timings))
		}
	}
	if len(timings) != n {
		t.Fatalf("%d timings, want %d", len(timings), n)
	}
	if want := "dotproxy.c:" + strconv.Itoa(2*n) + "|c"; len(counts) != 1 || counts[0] != want {
		t.Fatalf("counts = %q, want [%q]", counts, want)
	}
}

// TestPlainSink_closed checks that metrics after Close are ignored and that
// Flush and Close then do nothing.
func TestPlainSink_closed(t *testing.T) {
	srv, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	s, err := newPlainSink(srv.LocalAddr().String(), time.Hour, func(err error) { t.Errorf("send: %v", err) })
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	_ = s.Count("x", 1, nil, 1)
	_ = s.Gauge("x", 1, nil, 1)
	_ = s.TimeInMilliseconds("x", 1, nil, 1)
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestErrorLog_rateLimit checks that a burst of errors makes one log line,
// and that the next line counts the errors kept quiet.
func TestErrorLog_rateLimit(t *testing.T) {
	var lines atomic.Int64
	var last atomic.Value
	h := handlerFunc(func(r slog.Record) {
		lines.Add(1)
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "suppressed" {
				last.Store(a.Value.Int64())
			}
			return true
		})
	})
	l := &errorLog{log: slog.New(h), every: time.Hour}
	for range 100 {
		l.handle(errors.New("boom"))
	}
	if got := lines.Load(); got != 1 {
		t.Fatalf("%d log lines for a burst, want 1", got)
	}
	l.last.Store(1) // as if the last line were long ago
	l.handle(errors.New("boom"))
	if got := lines.Load(); got != 2 || last.Load() != int64(99) {
		t.Fatalf("second line: %d lines, suppressed=%v; want 2 lines, suppressed=99", got, last.Load())
	}
}

// handlerFunc is a slog.Handler that passes every record to a function.
type handlerFunc func(slog.Record)

func (h handlerFunc) Enabled(_ context.Context, _ slog.Level) bool { return true }
func (h handlerFunc) Handle(_ context.Context, r slog.Record) error {
	h(r)
	return nil
}
func (h handlerFunc) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h handlerFunc) WithGroup(string) slog.Handler      { return h }
