package proxy

import (
	"net/netip"
	"time"

	"github.com/dotproxy/dotproxy/dnsmsg"
	"github.com/dotproxy/dotproxy/ratelimit"
)

// overLimit answers a query over its client's rate limit (Config.RateLimit)
// and reports whether it was. Over UDP the query is dropped, or, one in
// RateLimit.Slip, answered with an empty reply with TC set: a genuine client
// asks again over TCP, whose source address its handshake has proved and
// where it may overdraw by one more burst, so it gets its answer, while a
// spoofed source's victim receives no more than the query's size. Over TCP
// past that overdraft the client gets REFUSED, which it does not retry at
// once as it would a silence. Loopback clients, this host's own programs,
// are never limited.
func (s *Server) overLimit(t Transport, client netip.Addr, q *dnsmsg.Query, arrived time.Time, querySize int) (reply []byte, limited bool) {
	if s.limit == nil || client.IsLoopback() && !s.limitLoopback {
		return nil, false
	}
	v, report := s.limit.Take(client, arrived, t == TCP)
	if v == ratelimit.Allow {
		return nil, false
	}
	if report {
		s.reportLimited(t, client)
	}
	switch {
	case t == TCP:
		s.obs.Limited(t, LimitRefused)
		return s.reply(t, client, q, nil, dnsmsg.ReplyEDE(q, dnsmsg.RcodeRefused, dnsmsg.EDERateLimited), arrived, querySize), true
	case v == ratelimit.Slip:
		s.obs.Limited(t, LimitSlip)
		// The source of a datagram may be forged: the slip must never be
		// larger than the query, or the proxy would amplify a flood
		// towards the forged address. It says why only when that fits.
		tc := dnsmsg.TruncatedReply(q, dnsmsg.EDERateLimited)
		if len(tc) > querySize {
			tc = dnsmsg.TruncatedReply(q, dnsmsg.EDENone)
		}
		return s.reply(t, client, q, nil, tc, arrived, querySize), true
	}
	s.obs.Limited(t, LimitDrop)
	return nil, true
}

// reportLimited logs a client network over its rate limit, as the limiter
// paces it: once a minute per network, and ten networks a minute at most,
// counting those it held back. The operator finds the noisy device by its
// prefix; metrics carry no client address.
func (s *Server) reportLimited(t Transport, client netip.Addr) {
	cfg := s.limit.Config()
	s.log.Warn("client over the rate limit: its queries past it are dropped, or refused over TCP",
		"prefix", s.limit.Prefix(client).String(), "transport", string(t),
		"rate", cfg.Rate, "burst", cfg.Burst, "other_prefixes_not_logged", s.limit.Unreported())
}
