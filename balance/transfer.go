package balance

import (
	"errors"
	"fmt"
	"time"
)

// Transferer is an Upstream that can pass a zone transfer on, on a
// connection of its own. *upstream.Pool implements it; main asserts so.
type Transferer interface {
	Transfer(query []byte, deadline time.Time, idle time.Duration, each func(msg []byte) error) (passed bool, err error)
}

// errNoTransfer reports an upstream that cannot pass zone transfers on.
var errNoTransfer = errors.New("balance: upstream does not pass zone transfers on")

// Transfer sends a zone transfer query (AXFR, IXFR) to an upstream chosen
// by the policy and hands each message of its answer to each, in order,
// until the transfer ends (see upstream.Pool.Transfer): deadline bounds the
// whole transfer, idle each message. While nothing has been handed on, a
// failed attempt goes to another upstream, up to MaxRetries times, as
// Resolve's do; once a message has been handed on, an error ends it, since
// the client holds part of a transfer. It returns the upstream that
// answered, or Config.Unanswered when none did. Transfers leave the
// upstreams' health alone: one long stream says little about how a
// resolver answers queries. With every upstream unreachable it fails at
// once with ErrAllDown, as Start does. It implements proxy.Transferer.
func (b *Balancer) Transfer(query []byte, deadline time.Time, idle time.Duration, each func(msg []byte) error) (fmt.Stringer, error) {
	var tried uint64
	err := errDeadline
	for n := 0; n <= b.cfg.MaxRetries && time.Now().Before(deadline); n++ {
		h := b.choose(&tried)
		if h == nil {
			if n == 0 {
				return nil, ErrAllDown
			}
			return nil, err // what the last attempt met
		}
		t, ok := h.up.(Transferer)
		if !ok {
			return b.cfg.Unanswered, fmt.Errorf("%s: %w", h.obs, errNoTransfer)
		}
		if n > 0 {
			h.obs.Retried()
		}
		var passed bool
		passed, err = t.Transfer(query, deadline, idle, each)
		if err == nil || passed {
			return h.obs, err
		}
		err = fmt.Errorf("%s: %w", h.obs, err)
	}
	return b.cfg.Unanswered, err
}
