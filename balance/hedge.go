package balance

import (
	"bytes"
	"fmt"
	"time"
)

// result is the outcome of one attempt of a hedged query.
type result struct {
	h   *host
	ans []byte
	err error
}

// resolveHedged is Resolve with hedging: each attempt runs in its own
// goroutine, and a query still unanswered HedgeAfter after its first attempt
// started gets one more attempt on another upstream that is up. The first
// answer wins. The attempts still running then go on to their own answer or
// deadline, their results unread; they are counted in b.wg, so that Close
// waits for them.
func (b *Balancer) resolveHedged(query []byte, deadline time.Time) ([]byte, fmt.Stringer, error) {
	if !time.Now().Before(deadline) {
		return nil, nil, errDeadline
	}
	// The attempts still running after Resolve has returned read the query
	// then, and the caller may reuse its buffer: they get a copy.
	query = bytes.Clone(query)
	// One slot per possible attempt, so that no attempt blocks on sending
	// its result after Resolve has returned.
	results := make(chan result, b.cfg.MaxRetries+2)
	start := func(h *host, left int) {
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			ans, err := b.attempt(h, query, b.share(time.Now(), deadline, left))
			results <- result{h: h, ans: ans, err: err}
		}()
	}

	var tried uint64
	start(b.choose(&tried), b.cfg.MaxRetries)
	pending, retries := 1, 0
	hedge := time.NewTimer(b.cfg.HedgeAfter)
	defer hedge.Stop()
	for {
		select {
		case r := <-results:
			pending--
			if r.err == nil {
				return r.ans, r.h.up, nil
			}
			switch {
			case retries < b.cfg.MaxRetries && time.Now().Before(deadline):
				retries++
				h := b.choose(&tried)
				b.obs.Retried(h.name)
				start(h, b.cfg.MaxRetries-retries)
				pending++
			case pending == 0:
				return nil, nil, r.err
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
		}
	}
}
