package emit_test

import (
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/dotproxy/dotproxy/emit"
	"github.com/dotproxy/dotproxy/proxy"
)

// A DogStatsD socket that is bound but never read holds the Datadog client
// for its write timeout (100 ms) on every buffered datagram once the
// socket's queue is full. Close must give up at CloseTimeout and say so,
// rather than keep the process from exiting for as long as that takes.
func TestCloseIsBoundedWhenTheSocketIsNotRead(t *testing.T) {
	clearDD(t)
	dir, err := os.MkdirTemp("", "emit")
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "dsd.sock")
	conn, err := net.ListenPacket("unixgram", sock)
	if err != nil {
		t.Fatal(err)
	}
	// Cleanups run last first: the socket and its file go before the test
	// ends, so that the client's sends left in the background fail at
	// once and it is done before leakcheck looks.
	t.Cleanup(func() { os.RemoveAll(dir) })
	t.Cleanup(func() { conn.Close() })

	const closeTimeout = 200 * time.Millisecond
	e, err := emit.New(emit.Config{
		Addr:          "unix://" + sock,
		FlushInterval: time.Hour,
		CloseTimeout:  closeTimeout,
		Logger:        slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	// Samples enough for hundreds of datagrams at Close: far more than the
	// socket takes before it is full (net.unix.max_dgram_qlen datagrams,
	// 10 by default, or the sender's buffer, about 25 of 8 KiB).
	p := e.Proxy()
	for i := range 100_000 {
		p.Answered(proxy.UDP, nil, 0, time.Duration(i)*time.Microsecond, 40+i%400, 100+i%1000)
	}

	start := time.Now()
	err = e.Close()
	took := time.Since(start)
	t.Logf("Close returned after %v: %v", took, err)
	if !errors.Is(err, emit.ErrCloseTimeout) {
		t.Fatalf("Close: %v, want ErrCloseTimeout", err)
	}
	// The bound is CloseTimeout; the second on top is for a loaded
	// machine, not a benchmark. Draining the queue takes tens of seconds.
	if took > closeTimeout+time.Second {
		t.Fatalf("Close took %v with CloseTimeout %v", took, closeTimeout)
	}
	if again := e.Close(); !errors.Is(again, emit.ErrCloseTimeout) {
		t.Fatalf("second Close: %v, want the first one's error", again)
	}
}
