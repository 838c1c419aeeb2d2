package emit

import (
	"math/rand/v2"
	"net"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Sizes of the plain statsd writer's datagrams and queue.
const (
	// plainMaxPayload keeps a datagram inside one Ethernet frame, as the
	// Datadog client does for UDP.
	plainMaxPayload = 1432
	// plainMaxQueued is how many full datagrams may wait for the socket
	// before new ones are dropped.
	plainMaxQueued = 64
)

// plainSink writes plain statsd lines, "name:value|type", to a UDP socket.
// It never writes tags, sample rates, telemetry or container fields, so
// every statsd server accepts its output. Counts are summed in atomic
// counters and gauges overwritten in memory, both sent once per interval;
// timings and histograms, both sent as "ms" timers since plain statsd has no
// histogram type, are written into one of several line buffers, chosen at
// random per call so that concurrent queries seldom meet on a lock, and
// full datagrams go to a goroutine of its own that writes them. It is safe
// for concurrent use.
type plainSink struct {
	conn  net.Conn
	onErr func(error)

	// writeMu is held while datagrams are taken and written, so that Flush
	// returns only after every earlier datagram is on the socket. It is
	// taken before mu.
	writeMu    sync.Mutex
	sending    [][]byte // datagrams being written; guarded by writeMu
	connClosed bool     // set by Close; guarded by writeMu

	// counts holds a counter per name, summed since the last send. The
	// map is replaced, never changed, when a name is added (under mu), so
	// that Count reads it with no lock.
	counts atomic.Pointer[map[string]*atomic.Int64]
	closed atomic.Bool

	// shards are the line buffers timings are written into.
	shards []plainShard

	// mu guards the fields below it. It is never held during I/O, and a
	// shard's lock is taken before it, never after.
	mu      sync.Mutex
	buf     []byte             // the datagram being filled by the writer
	queued  [][]byte           // full datagrams waiting for the writer
	free    [][]byte           // empty buffers to fill next
	gauges  map[string]float64 // set since the last send
	dropped int                // datagrams dropped since the last send

	wake chan struct{} // signals the writer that a datagram is queued
	quit chan struct{} // closed by Close
	done chan struct{} // closed when the writer goroutine returns
}

// plainShard is one line buffer for timings, padded to its own cache line.
type plainShard struct {
	mu  sync.Mutex
	buf []byte
	_   [32]byte
}

var _ client = (*plainSink)(nil)

// newPlainSink connects a UDP socket to addr and starts the writer, which
// sends the summed counts and gauges every interval.
func newPlainSink(addr string, interval time.Duration, onErr func(error)) (*plainSink, error) {
	conn, err := net.Dial("udp", addr)
	if err != nil {
		return nil, err
	}
	s := &plainSink{
		conn:    conn,
		onErr:   onErr,
		sending: make([][]byte, 0, plainMaxQueued+1),
		buf:     make([]byte, 0, plainMaxPayload),
		queued:  make([][]byte, 0, plainMaxQueued+1),
		free:    make([][]byte, 0, plainMaxQueued+1),
		gauges:  make(map[string]float64),
		shards:  make([]plainShard, runtime.GOMAXPROCS(0)),
		wake:    make(chan struct{}, 1),
		quit:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	s.counts.Store(&map[string]*atomic.Int64{})
	for i := range s.shards {
		s.shards[i].buf = make([]byte, 0, plainMaxPayload)
	}
	go s.run(interval)
	return s, nil
}

// Count adds value to the count sent at the next interval. tags and rate
// are ignored: plainSink's series carry no tags and are never sampled.
func (s *plainSink) Count(name string, value int64, _ []string, _ float64) error {
	if s.closed.Load() {
		return nil
	}
	c := (*s.counts.Load())[name]
	if c == nil {
		c = s.counter(name)
	}
	c.Add(value)
	return nil
}

// counter returns the counter of name, adding it on first use.
func (s *plainSink) counter(name string) *atomic.Int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := *s.counts.Load()
	if c := old[name]; c != nil {
		return c
	}
	next := make(map[string]*atomic.Int64, len(old)+1)
	for k, v := range old {
		next[k] = v
	}
	c := new(atomic.Int64)
	next[name] = c
	s.counts.Store(&next)
	return c
}

// Gauge sets the gauge sent at the next interval.
func (s *plainSink) Gauge(name string, value float64, _ []string, _ float64) error {
	if s.closed.Load() {
		return nil
	}
	s.mu.Lock()
	s.gauges[name] = value
	s.mu.Unlock()
	return nil
}

// Histogram sends value as a timer, the one distribution type of statsd.
func (s *plainSink) Histogram(name string, value float64, _ []string, _ float64) error {
	s.sample(name, value, -1)
	return nil
}

// TimeInMilliseconds sends value as a timer, to the microsecond.
func (s *plainSink) TimeInMilliseconds(name string, value float64, _ []string, _ float64) error {
	s.sample(name, value, 3)
	return nil
}

// sample appends one timer line to a shard's datagram, queueing the
// datagram for the writer when the line would not fit.
func (s *plainSink) sample(name string, value float64, prec int) {
	if s.closed.Load() {
		return
	}
	sh := &s.shards[rand.N(len(s.shards))]
	sh.mu.Lock()
	wake := false
	if len(sh.buf) > 0 && len(sh.buf)+len(name)+lineRoom > plainMaxPayload {
		s.mu.Lock()
		wake = s.queueLocked(&sh.buf)
		s.mu.Unlock()
	}
	sh.buf = appendLine(sh.buf, name)
	sh.buf = strconv.AppendFloat(sh.buf, value, 'f', prec, 64)
	sh.buf = append(sh.buf, "|ms"...)
	sh.mu.Unlock()
	if wake {
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
}

// lineRoom bounds the bytes of a line other than its name: a newline, the
// ':', a number and the "|ms" type.
const lineRoom = 1 + 1 + 32 + 3

// queueLocked moves the datagram *buf to the writer's queue and gives *buf
// an empty buffer; when the queue is full the datagram is dropped instead.
// It reports whether it queued one.
func (s *plainSink) queueLocked(buf *[]byte) bool {
	if len(s.queued) >= plainMaxQueued {
		*buf = (*buf)[:0]
		s.dropped++
		return false
	}
	s.queued = append(s.queued, *buf)
	*buf = s.takeFreeLocked()
	return true
}

// roomLocked makes room in s.buf for a line whose name has nameLen bytes,
// moving a full datagram to *dst. When *dst already holds limit datagrams
// the full one is dropped instead. It reports whether it moved one.
func (s *plainSink) roomLocked(nameLen int, dst *[][]byte, limit int) bool {
	if len(s.buf) == 0 || len(s.buf)+nameLen+lineRoom <= plainMaxPayload {
		return false
	}
	if len(*dst) >= limit {
		s.buf = s.buf[:0]
		s.dropped++
		return false
	}
	*dst = append(*dst, s.buf)
	s.buf = s.takeFreeLocked()
	return true
}

// takeFreeLocked returns an empty buffer, reusing a written one if it can.
func (s *plainSink) takeFreeLocked() []byte {
	if n := len(s.free); n > 0 {
		b := s.free[n-1]
		s.free = s.free[:n-1]
		return b
	}
	return make([]byte, 0, plainMaxPayload)
}

// appendLine starts a line for name in buf: a separating newline unless buf
// is empty, then "name:".
func appendLine(buf []byte, name string) []byte {
	if len(buf) > 0 {
		buf = append(buf, '\n')
	}
	buf = append(buf, name...)
	return append(buf, ':')
}

// run writes queued datagrams when woken, and everything, sums included,
// every interval, until Close.
func (s *plainSink) run(interval time.Duration) {
	defer close(s.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-s.wake:
			s.send(false)
		case <-t.C:
			s.send(true)
		case <-s.quit:
			return
		}
	}
}

// send writes the queued datagrams; with all set, it first adds the summed
// counts and gauges and the datagram being filled. It does nothing once
// Close has closed the socket.
func (s *plainSink) send(all bool) {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if !s.connClosed {
		s.sendLocked(all)
	}
}

// sendLocked is send with s.writeMu held.
func (s *plainSink) sendLocked(all bool) {
	if all {
		// The shards' partial datagrams go too; a shard's lock before mu.
		for i := range s.shards {
			sh := &s.shards[i]
			sh.mu.Lock()
			if len(sh.buf) > 0 {
				s.mu.Lock()
				s.sending = append(s.sending, sh.buf)
				sh.buf = s.takeFreeLocked()
				s.mu.Unlock()
			}
			sh.mu.Unlock()
		}
	}
	s.mu.Lock()
	s.sending = append(s.sending, s.queued...)
	s.queued = s.queued[:0]
	if all {
		s.appendSumsLocked()
		if len(s.buf) > 0 {
			s.sending = append(s.sending, s.buf)
			s.buf = s.takeFreeLocked()
		}
	}
	dropped := s.dropped
	s.dropped = 0
	s.mu.Unlock()

	var werr error
	for _, b := range s.sending {
		if _, err := s.conn.Write(b); err != nil && werr == nil {
			werr = err
		}
	}

	s.mu.Lock()
	for _, b := range s.sending {
		if len(s.free) < cap(s.free) {
			s.free = append(s.free, b[:0])
		}
	}
	s.mu.Unlock()
	s.sending = s.sending[:0]

	if werr != nil {
		s.onErr(werr)
	}
	if dropped > 0 {
		s.onErr(errDropped)
	}
}

// appendSumsLocked appends a line for every count that changed and every
// gauge that was set since the last call, moving full datagrams to
// s.sending, and resets them.
func (s *plainSink) appendSumsLocked() {
	for name, c := range *s.counts.Load() {
		v := c.Swap(0)
		if v == 0 {
			continue
		}
		s.roomLocked(len(name), &s.sending, len(s.sending)+1)
		s.buf = appendLine(s.buf, name)
		s.buf = strconv.AppendInt(s.buf, v, 10)
		s.buf = append(s.buf, "|c"...)
	}
	for name, v := range s.gauges {
		s.roomLocked(len(name), &s.sending, len(s.sending)+1)
		s.buf = appendLine(s.buf, name)
		s.buf = strconv.AppendFloat(s.buf, v, 'f', -1, 64)
		s.buf = append(s.buf, "|g"...)
	}
	clear(s.gauges)
}

// Flush writes everything buffered and summed, and returns once it is on
// the socket.
func (s *plainSink) Flush() error {
	s.send(true)
	return nil
}

// Close stops the writer, writes what is left and closes the socket. Later
// calls to the metric methods and Flush do nothing.
func (s *plainSink) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	close(s.quit)
	<-s.done

	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	s.sendLocked(true)
	s.connClosed = true
	return s.conn.Close()
}
