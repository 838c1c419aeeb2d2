package proxy

import (
	"bufio"
	"bytes"
	"errors"
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

func (echo) Start(q []byte, _ time.Time, fin Finisher) {
	a := bytes.Clone(q)
	a[2] |= 0x80
	fin.Resolved(a, echo{}, nil)
}

func (e echo) StartHeld(q []byte, deadline time.Time, fin Finisher) { e.Start(q, deadline, fin) }

func (echo) Flush() {}

// replyOf is a Finisher that keeps the reply finish makes.
type replyOf struct {
	s       *Server
	t       Transport
	client  netip.Addr
	q       dnsmsg.Query
	size    int
	arrived time.Time
	reply   []byte
}

func (r *replyOf) Resolved(answer []byte, from fmt.Stringer, err error) {
	r.reply = r.s.finish(r.t, r.client, &r.q, r.size, r.arrived, r.arrived.Add(time.Second), answer, from, err)
}

// handle runs msg through a query's whole path, check, the resolver's Start
// (echo's answers before it returns) and finish, and returns the reply.
func handle(s *Server, t Transport, client netip.Addr, msg []byte) []byte {
	r := &replyOf{s: s, t: t, client: client, size: len(msg), arrived: time.Now()}
	if reply, done := s.check(t, client, msg, r.arrived, &r.q); done {
		return reply
	}
	s.cfg.Resolver.Start(msg, r.arrived.Add(time.Second), r)
	return r.reply
}

// FuzzHandle runs any datagram through the whole client-facing path. The
// reply, when there is one, carries the client's ID and never exceeds what
// the client can take over UDP.
func FuzzHandle(f *testing.F) {
	q, _ := dnsmsg.NewQuery(7, "example.org", dnsmsg.TypeNS)
	f.Add(q, true)
	s, err := New(Config{Listen: []string{"127.0.0.1:0"}, Resolver: echo{}, Status: oneLine{}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		f.Fatal(err)
	}
	client := netip.MustParseAddr("127.0.0.1")
	f.Fuzz(func(t *testing.T, msg []byte, udp bool) {
		tr := TCP
		if udp {
			tr = UDP
		}
		reply := handle(s, tr, client, msg)
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
		// One buffer for every frame, as a client connection reuses its
		// query's; each frame must come out as the stream holds it,
		// whatever a longer one before left in the buffer.
		var buf []byte
		off := 0
		for range 100 {
			msg, err := readQueryFrame(r, buf)
			if err != nil && !errors.Is(err, errTooLarge) {
				return
			}
			n := int(stream[off])<<8 | int(stream[off+1])
			want := stream[off+2 : off+2+n]
			if errors.Is(err, errTooLarge) {
				want = want[:dnsmsg.HeaderLen] // the header alone is kept
			}
			if len(msg) < dnsmsg.HeaderLen || !bytes.Equal(msg, want) {
				t.Fatalf("frame at %d read as %x, the stream holds %x", off, msg, want)
			}
			off += 2 + n
			buf = msg
		}
	})
}
