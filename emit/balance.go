package emit

import "github.com/dotproxy/dotproxy/balance"

// BalanceMetrics records the balancer's events. It implements the
// [balance.Observer] interface. It is safe for concurrent use; its methods
// allocate nothing and do not block once the upstream they name has been
// passed to [Emitter.Upstream].
type BalanceMetrics struct {
	e *Emitter
}

var _ balance.Observer = (*BalanceMetrics)(nil)

// Retried implements [balance.Observer].
func (b *BalanceMetrics) Retried(upstream string) {
	m := b.e.Upstream(upstream)
	m.count(m.retry)
}

// Hedged implements [balance.Observer].
func (b *BalanceMetrics) Hedged(upstream string) {
	m := b.e.Upstream(upstream)
	m.count(m.hedge)
}

// HealthChanged implements [balance.Observer]. It also sets the upstream's
// health gauge, sent at the next flush.
func (b *BalanceMetrics) HealthChanged(upstream string, up bool) {
	m := b.e.Upstream(upstream)
	m.healthy.Store(up)
	m.count(m.healthChange[boolIndex(up)])
}
