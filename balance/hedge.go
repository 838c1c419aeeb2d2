package balance

import (
	"context"
	"errors"
	"time"
)

// errHedgeLost is the cause with which the attempts still running when a
// hedged query has its answer are cancelled.
var errHedgeLost = errors.New("balance: another attempt answered first")

// result is the outcome of one attempt of a hedged query.
type result struct {
	h   *host
	ans []byte
	err error
}

// resolveHedged is Resolve with hedging: each attempt runs in its own
// goroutine, and a query still unanswered HedgeAfter after its first attempt
// started gets one more attempt on another upstream that is up. The first
// answer wins; the attempts still running are then cancelled, and their
// goroutines end as soon as their upstreams return.
func (b *Balancer) resolveHedged(ctx context.Context, query []byte) ([]byte, string, error) {
	if err := ctx.Err(); err != nil {
		return nil, "", err
	}
	qctx, cancel := context.WithCancelCause(ctx)
	defer cancel(errHedgeLost)
	// One slot per possible attempt, so that no attempt blocks on sending
	// its result after Resolve has returned.
	results := make(chan result, b.cfg.MaxRetries+2)
	start := func(h *host, left int) {
		go func() {
			ans, err := b.attempt(qctx, h, query, left)
			results <- result{h: h, ans: ans, err: err}
		}()
	}

	var tried uint64
	start(b.choose(&tried), b.cfg.MaxRetries)
	pending, retries := 1, 0
	hedge := time.NewTimer(b.cfg.HedgeAfter)
	defer hedge.Stop()
	var err error
	for {
		select {
		case r := <-results:
			pending--
			if r.err == nil {
				return r.ans, r.h.name, nil
			}
			err = r.err
			switch {
			case ctx.Err() != nil:
				return nil, "", err
			case retries < b.cfg.MaxRetries:
				retries++
				h := b.choose(&tried)
				b.obs.Retried(h.name)
				start(h, b.cfg.MaxRetries-retries)
				pending++
			case pending == 0:
				return nil, "", err
			}
		case <-hedge.C:
			// Hedge only to an upstream that is up and not tried yet.
			if i := b.pick(tried); i >= 0 && pending > 0 {
				tried |= uint64(1) << i
				h := &b.hosts[i]
				b.obs.Hedged(h.name)
				start(h, b.cfg.MaxRetries-retries)
				pending++
			}
		case <-ctx.Done():
			return nil, "", ctx.Err()
		}
	}
}
