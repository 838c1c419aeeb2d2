package main

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// blockedHandler is a log destination that takes nothing until released,
// as a full pipe to a log driver does, then keeps what it was given.
type blockedHandler struct {
	release chan struct{}
	mu      *sync.Mutex
	got     *[]slog.Record
}

func (h blockedHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h blockedHandler) Handle(_ context.Context, r slog.Record) error {
	<-h.release
	h.mu.Lock()
	*h.got = append(*h.got, r)
	h.mu.Unlock()
	return nil
}

func (h blockedHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h blockedHandler) WithGroup(string) slog.Handler      { return h }

// TestLogQueueNeverWaits: with the log's destination blocked, logging goes
// on without waiting; the lines that found the queue full are dropped, and
// once the destination takes lines again a warning says how many, so that
// every line logged is either written or counted.
func TestLogQueueNeverWaits(t *testing.T) {
	dest := blockedHandler{release: make(chan struct{}), mu: new(sync.Mutex), got: new([]slog.Record)}
	q := newLogQueue()
	t.Cleanup(q.stop)
	log := slog.New(q.handler(dest)).With("upstream", "u0")
	const n = logQueueSize * 3
	for i := range n {
		log.Debug("query", "i", i) // would hang here if a line waited for the destination
	}
	close(dest.release)
	if !q.flush(dest, time.Minute) {
		t.Fatal("the queue was not written out")
	}
	dest.mu.Lock()
	defer dest.mu.Unlock()
	written, dropped := 0, int64(0)
	for _, r := range *dest.got {
		if strings.HasPrefix(r.Message, "log lines dropped") {
			r.Attrs(func(a slog.Attr) bool {
				if a.Key == "dropped" {
					dropped += a.Value.Int64()
				}
				return true
			})
			continue
		}
		written++
	}
	if dropped == 0 {
		t.Fatalf("%d lines into a queue of %d with the destination blocked, none reported dropped", n, logQueueSize)
	}
	if int64(written)+dropped != n {
		t.Fatalf("%d written and %d reported dropped, want %d in all", written, dropped, n)
	}
}
