package proxy

import (
	"encoding/binary"
	"io"
	"net"
	"testing"
	"time"
)

// TestReplyWriterNeverWaitsOnTheClient: replies to a client that reads
// nothing are queued, send returning each time, until they pass
// maxQueuedReplies, when the connection has no room for more queries; once
// the client reads, every reply arrives whole and in order, and there is
// room again.
func TestReplyWriterNeverWaitsOnTheClient(t *testing.T) {
	server, client := net.Pipe() // no buffer: a write waits for its read
	defer client.Close()
	w := newReplyWriter(server, time.Minute)
	defer w.close()
	reply := make([]byte, 1000)
	n := 0
	for {
		binary.BigEndian.PutUint16(reply, uint16(n))
		w.send(reply) // would hang here if it waited on the client
		n++
		w.mu.Lock()
		room := w.hasRoomLocked()
		w.mu.Unlock()
		if !room {
			break
		}
		if n > 2*maxQueuedReplies/len(reply)+2 {
			t.Fatalf("%d KB of replies queued and still room for more queries", n)
		}
	}
	roomed := make(chan error, 1)
	go func() { roomed <- w.waitRoom() }()
	frame := make([]byte, 2+len(reply))
	for i := range n {
		if _, err := io.ReadFull(client, frame); err != nil {
			t.Fatalf("reply %d of %d: %v", i, n, err)
		}
		if l := binary.BigEndian.Uint16(frame); int(l) != len(reply) {
			t.Fatalf("reply %d: frame length %d, want %d", i, l, len(reply))
		}
		if id := binary.BigEndian.Uint16(frame[2:]); int(id) != i {
			t.Fatalf("reply %d arrived as number %d", id, i)
		}
	}
	if err := <-roomed; err != nil {
		t.Fatal(err)
	}
	if err := w.waitWritten(); err != nil {
		t.Fatal(err)
	}
}
