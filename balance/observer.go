package balance

// Observer receives balance's events. Its methods must not block.
type Observer interface {
	// Retried reports a query sent again to upstream after an attempt on
	// another one failed.
	Retried(upstream string)
	// Hedged reports a second copy of a slow query sent to upstream.
	Hedged(upstream string)
	// HealthChanged reports an upstream marked up or down.
	HealthChanged(upstream string, up bool)
}

// NopObserver is an Observer that discards every event.
type NopObserver struct{}

var _ Observer = NopObserver{}

// Retried implements [Observer].
func (NopObserver) Retried(string) {}

// Hedged implements [Observer].
func (NopObserver) Hedged(string) {}

// HealthChanged implements [Observer].
func (NopObserver) HealthChanged(string, bool) {}
