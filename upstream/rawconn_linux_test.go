package upstream

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

// rawPair returns both ends of a loopback TCP connection, the client's in
// raw mode.
func rawPair(t *testing.T) (*rawTCP, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	r, ok := wrapRaw(c).(*rawTCP)
	if !ok {
		t.Fatal("a TCP connection was not wrapped")
	}
	useRaw(r)
	t.Cleanup(func() { r.Close(); s.Close() })
	return r, s
}

// Raw reads and writes carry every byte both ways, a write larger than the
// socket's buffers waiting for the reader, and EOF ends the reads.
func TestRawTCPReadWrite(t *testing.T) {
	r, s := rawPair(t)
	big := bytes.Repeat([]byte("dotproxy"), 1<<20) // 8 MiB: past any socket buffer
	go func() {
		r.Write(big)
		r.CloseWrite()
	}()
	s.SetDeadline(time.Now().Add(10 * time.Second))
	got, err := io.ReadAll(s)
	if err != nil || !bytes.Equal(got, big) {
		t.Fatalf("server read %d bytes (%v), want %d", len(got), err, len(big))
	}
	go func() {
		s.Write(big)
		s.Close()
	}()
	r.SetReadDeadline(time.Now().Add(10 * time.Second))
	got, err = io.ReadAll(r)
	if err != nil || !bytes.Equal(got, big) {
		t.Fatalf("raw read %d bytes (%v), want %d", len(got), err, len(big))
	}
}

// A read deadline ends a raw read as it ends an ordinary one, and Close
// ends a read under way.
func TestRawTCPDeadlineAndClose(t *testing.T) {
	r, _ := rawPair(t)
	r.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	if _, err := r.Read(make([]byte, 10)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read past its deadline: %v", err)
	}
	r.SetReadDeadline(time.Time{})
	done := make(chan error, 1)
	go func() {
		_, err := r.Read(make([]byte, 10))
		done <- err
	}()
	r.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("read on a closed connection: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not end the read")
	}
}

// A write to a connection the peer reset fails with the reset, which the
// pool tells from other errors, and raises no SIGPIPE.
func TestRawTCPWriteAfterReset(t *testing.T) {
	r, s := rawPair(t)
	s.(*net.TCPConn).SetLinger(0)
	s.Close()
	r.SetWriteDeadline(time.Now().Add(10 * time.Second))
	var err error
	for range 100 {
		if _, err = r.Write([]byte("query")); err != nil {
			break
		}
	}
	if !isReset(err) {
		t.Fatalf("write after reset: %v, want a reset", err)
	}
}

// A write that must wait for room ends at the write deadline, and a
// deadline past does not fail the writes that follow it once a new one is
// set.
func TestRawTCPWriteDeadline(t *testing.T) {
	r, s := rawPair(t)
	big := make([]byte, 64<<20) // more than both socket buffers hold
	r.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
	if _, err := r.Write(big); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("write past its deadline: %v", err)
	}
	go io.Copy(io.Discard, s)
	r.SetWriteDeadline(time.Now().Add(10 * time.Second))
	for i := range 3 {
		if _, err := r.Write(make([]byte, 1<<20)); err != nil {
			t.Fatalf("write %d after a new deadline: %v", i, err)
		}
	}
}
