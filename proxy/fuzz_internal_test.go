package proxy

import (
	"bufio"
	"bytes"
	"fmt"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/dotproxy/dotproxy/dnsmsg"
)

// echo answers a query with the query itself, QR set: an answer as large
// and as odd as the query.
type echo struct{}

func (echo) String() string { return "echo" }

func (echo) Resolve(q []byte, _ time.Time) ([]byte, fmt.Stringer, error) {
	a := bytes.Clone(q)
	a[2] |= 0x80
	return a, echo{}, nil
}

// FuzzHandle runs any datagram through the whole client-facing path. The
// reply, when there is one, carries the client's ID and never exceeds what
// the client can take over UDP.
func FuzzHandle(f *testing.F) {
	q, _ := dnsmsg.NewQuery(7, "example.org", dnsmsg.TypeNS)
	f.Add(q, true)
	s, err := New(Config{Listen: []string{"127.0.0.1:0"}, Resolver: echo{}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		f.Fatal(err)
	}
	client := netip.MustParseAddr("127.0.0.1")
	f.Fuzz(func(t *testing.T, msg []byte, udp bool) {
		tr := TCP
		if udp {
			tr = UDP
		}
		reply := s.handle(tr, client, msg, time.Now())
		if reply == nil {
			return
		}
		if len(reply) < dnsmsg.HeaderLen || dnsmsg.ID(reply) != dnsmsg.ID(msg) || !dnsmsg.IsResponse(reply) {
			t.Fatalf("reply %x to %x", reply, msg)
		}
		if !udp {
			return
		}
		limit := dnsmsg.MinUDPSize
		if q, err := dnsmsg.ParseQuery(msg); err == nil {
			limit = q.MaxUDPAnswer()
		}
		if len(reply) > limit {
			t.Fatalf("%d-byte UDP reply for a client that takes %d", len(reply), limit)
		}
	})
}

// FuzzReadQueryFrame reads a client's TCP stream: frames come out whole or
// the stream is rejected, and nothing panics.
func FuzzReadQueryFrame(f *testing.F) {
	q, _ := dnsmsg.NewQuery(7, "example.org", dnsmsg.TypeNS)
	f.Add(append([]byte{0, byte(len(q))}, q...))
	f.Fuzz(func(t *testing.T, stream []byte) {
		r := bufio.NewReader(bytes.NewReader(stream))
		for range 100 {
			msg, err := readQueryFrame(r)
			if err != nil {
				return
			}
			if len(msg) < dnsmsg.HeaderLen {
				t.Fatalf("frame of %d bytes accepted", len(msg))
			}
		}
	})
}
