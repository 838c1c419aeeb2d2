package proxy

import (
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/dotproxy/dotproxy/dnsmsg"
)

// hidingEcho is echo behind the upstream's rewrite with the client's subnet
// hidden: it keeps the error a pool would end the query with.
type hidingEcho struct{ refused *error }

func (h hidingEcho) Start(q []byte, deadline time.Time, fin Finisher) {
	if _, _, err := dnsmsg.AppendUpstreamQuery(nil, q, dnsmsg.Rewrite{PadBlock: 128, Keepalive: true, HideClientSubnet: true}); err != nil {
		*h.refused = err
	}
	echo{}.Start(q, deadline, fin)
}

func (h hidingEcho) StartHeld(q []byte, deadline time.Time, fin Finisher) { h.Start(q, deadline, fin) }

func (hidingEcho) Flush() {}

// FuzzHandleClientSubnet runs any datagram through the client-facing path
// with Config.HideClientSubnet: no query that the upstream's rewrite would
// refuse to send reaches the resolver, where its error would count against
// the upstream's health; the proxy answers each such query itself.
func FuzzHandleClientSubnet(f *testing.F) {
	q, _ := dnsmsg.NewQuery(7, "example.org", dnsmsg.TypeNS)
	f.Add(q)
	var refused error
	s, err := New(Config{Listen: []string{"127.0.0.1:0"}, Resolver: hidingEcho{&refused}, HideClientSubnet: true,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		f.Fatal(err)
	}
	client := netip.MustParseAddr("127.0.0.1")
	f.Fuzz(func(t *testing.T, msg []byte) {
		refused = nil
		reply := handle(s, UDP, client, msg)
		if refused != nil {
			t.Fatalf("the resolver got a query the rewrite refuses (%v): %x", refused, msg)
		}
		if reply != nil && (len(reply) < dnsmsg.HeaderLen || dnsmsg.ID(reply) != dnsmsg.ID(msg)) {
			t.Fatalf("reply %x to %x", reply, msg)
		}
	})
}
