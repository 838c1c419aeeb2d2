package balance

import "fmt"

// Observer receives the events of one upstream, to which it is bound when
// the Balancer is built (see Member), so that no event needs to name it. It
// names the upstream too: the Balancer hands it back, as a fmt.Stringer,
// with each answer the upstream gave. Its methods must not block.
type Observer interface {
	fmt.Stringer
	// Retried reports a query sent again to this upstream after an
	// attempt on another one failed.
	Retried()
	// Hedged reports a second copy of a slow query sent to this upstream.
	Hedged()
	// HealthChanged reports this upstream marked up or down.
	HealthChanged(up bool)
}

// NopObserver is an Observer that discards every event. It is named Name.
type NopObserver struct{ Name string }

var _ Observer = NopObserver{}

// String implements [Observer].
func (o NopObserver) String() string { return o.Name }

// Retried implements [Observer].
func (NopObserver) Retried() {}

// Hedged implements [Observer].
func (NopObserver) Hedged() {}

// HealthChanged implements [Observer].
func (NopObserver) HealthChanged(bool) {}

// nopNamed returns a NopObserver named after u, if u names itself.
func nopNamed(u Upstream) Observer {
	if s, ok := u.(fmt.Stringer); ok {
		return NopObserver{Name: s.String()}
	}
	return NopObserver{}
}
