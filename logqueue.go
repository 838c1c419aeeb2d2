package main

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"
)

// logQueueSize is how many log records may wait for the writer: enough for
// a burst of per-query debug lines, small next to the memory budget.
const logQueueSize = 4096

// logQueue hands log records to a goroutine of its own that writes them,
// so that no caller ever waits on where the log goes. A query's last steps
// run on an upstream connection's reader, and at debug level each query is
// logged there: a destination that blocks (a full pipe to a container's log
// driver, a stalled terminal) would otherwise stall every query on the
// connection. A record that finds the queue full is dropped and counted,
// and the count is logged once there is room again: the log may lose lines
// under a flood, the queries do not wait.
type logQueue struct {
	records chan queuedRecord
	dropped atomic.Int64
	done    chan struct{} // closed by stop
}

// queuedRecord is a record and the handler, with its attributes and
// groups, that writes it.
type queuedRecord struct {
	h       slog.Handler
	r       slog.Record
	flushed chan struct{} // a flush marker: closed when reached, nothing written
}

// newLogQueue starts the writer goroutine. It runs until stop, which
// main leaves to the exit: records may come from anywhere until then.
func newLogQueue() *logQueue {
	q := &logQueue{records: make(chan queuedRecord, logQueueSize), done: make(chan struct{})}
	go q.write()
	return q
}

// stop ends the writer goroutine. Records queued after it are never
// written; the queue fills and counts them dropped, so a late logger
// still never waits.
func (q *logQueue) stop() { close(q.done) }

// handler returns a handler that queues records for h.
func (q *logQueue) handler(h slog.Handler) slog.Handler { return queuedHandler{q, h} }

func (q *logQueue) write() {
	ctx := context.Background()
	for {
		var rec queuedRecord
		select {
		case rec = <-q.records:
		case <-q.done:
			return
		}
		if n := q.dropped.Swap(0); n > 0 {
			r := slog.NewRecord(time.Now(), slog.LevelWarn, "log lines dropped: the log's destination took them too slowly", 0)
			r.AddAttrs(slog.Int64("dropped", n))
			_ = rec.h.Handle(ctx, r)
		}
		if rec.flushed != nil {
			close(rec.flushed)
			continue
		}
		_ = rec.h.Handle(ctx, rec.r)
	}
}

// flush waits until the records queued so far are written, or wait has
// passed, and reports which.
func (q *logQueue) flush(h slog.Handler, wait time.Duration) bool {
	marker := queuedRecord{h: h, flushed: make(chan struct{})}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case q.records <- marker:
	case <-t.C:
		return false
	}
	select {
	case <-marker.flushed:
		return true
	case <-t.C:
		return false
	}
}

// queuedHandler is a slog.Handler that queues its records on a logQueue.
type queuedHandler struct {
	q *logQueue
	h slog.Handler
}

func (h queuedHandler) Enabled(ctx context.Context, l slog.Level) bool { return h.h.Enabled(ctx, l) }

// Handle queues r, never waiting: a full queue drops it, counted.
func (h queuedHandler) Handle(_ context.Context, r slog.Record) error {
	select {
	case h.q.records <- queuedRecord{h: h.h, r: r.Clone()}:
	default:
		h.q.dropped.Add(1)
	}
	return nil
}

func (h queuedHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return queuedHandler{h.q, h.h.WithAttrs(attrs)}
}

func (h queuedHandler) WithGroup(name string) slog.Handler {
	return queuedHandler{h.q, h.h.WithGroup(name)}
}
