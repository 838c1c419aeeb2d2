package balance

import (
	"fmt"
	"math/bits"
	"strings"
)

// Policy names a way of choosing an upstream for each query. Every policy
// chooses only among the upstreams that are up (see the package's health
// rules); the policies differ in how they pick among those.
type Policy string

// The policies. Their names are fixed; ParsePolicy also accepts them in any
// case and with or without '_' and '-', so "RoundRobin" and "round-robin"
// both mean RoundRobin.
const (
	// RoundRobin sends each query to the next upstream in turn.
	RoundRobin Policy = "round_robin"
	// Random picks uniformly at random.
	Random Policy = "random"
	// HistoricalConnections picks the upstream that has been sent the
	// fewest queries so far, so that all carry equal load over time. An
	// upstream that was down catches up by taking all new queries until its
	// count has reached the others'.
	HistoricalConnections Policy = "historical_connections"
	// Availability picks at random among the upstreams with a clean record,
	// that is, those that have not failed since ProbeResetAfter before;
	// an upstream that came back recently gets queries only when no
	// clean one is up.
	Availability Policy = "availability"
	// Failover sends every query to the first upstream in the listed order
	// that is up, and to the next only while the earlier ones are down.
	Failover Policy = "failover"
	// LeastOutstanding picks the upstream with the fewest queries in
	// flight, breaking ties at random.
	LeastOutstanding Policy = "least_outstanding"
	// Fastest picks the upstream with the lowest moving average of answer
	// latency, and sends about one query in 16 to a random upstream so that
	// one that became faster, or came back, is noticed.
	Fastest Policy = "fastest"
)

// Policies lists every policy, in the order the documentation gives them.
var Policies = []Policy{
	RoundRobin, Random, HistoricalConnections, Availability, Failover,
	LeastOutstanding, Fastest,
}

// ParsePolicy returns the policy that name denotes, ignoring case, '_' and
// '-'. An unknown name gives an error wrapping ErrUnknownPolicy that lists
// the allowed names.
func ParsePolicy(name string) (Policy, error) {
	key := policyKey(name)
	for _, p := range Policies {
		if policyKey(string(p)) == key {
			return p, nil
		}
	}
	names := make([]string, len(Policies))
	for i, p := range Policies {
		names[i] = string(p)
	}
	return "", fmt.Errorf("%w %q (allowed: %s)", ErrUnknownPolicy, name, strings.Join(names, ", "))
}

func policyKey(name string) string {
	return strings.Map(func(r rune) rune {
		if r == '_' || r == '-' {
			return -1
		}
		return r
	}, strings.ToLower(name))
}

// UnmarshalText implements [encoding.TextUnmarshaler], so that envconfig
// rejects an unknown DOTPROXY_POLICY at start-up.
func (p *Policy) UnmarshalText(text []byte) error {
	v, err := ParsePolicy(string(text))
	if err != nil {
		return err
	}
	*p = v
	return nil
}

// MarshalText implements [encoding.TextMarshaler].
func (p Policy) MarshalText() ([]byte, error) { return []byte(p), nil }

// exploreMask makes Fastest send a query to a random upstream when the low
// bits of a random number are all zero: one query in 16.
const exploreMask = 15

// pick returns the index of the upstream the policy chooses among those that
// are up and not in skip, or -1 when there is none. It takes no lock and
// does not allocate.
func (b *Balancer) pick(skip uint64) int {
	live, clean := b.candidates(skip)
	if live == 0 {
		return -1
	}
	switch b.policy {
	case RoundRobin:
		return b.rotate(live)
	case HistoricalConnections:
		return b.least(live, byServed)
	case Availability:
		if clean != 0 {
			live = clean
		}
		return b.anyOf(live)
	case Failover:
		return bits.TrailingZeros64(live)
	case LeastOutstanding:
		return b.least(live, byInFlight)
	case Fastest:
		if b.rnd()&exploreMask == 0 {
			return b.anyOf(live)
		}
		return b.least(live, byLatency)
	default: // Random
		return b.anyOf(live)
	}
}

// candidates returns, as bit sets, the upstreams not in skip that are up,
// and among them those with a clean record.
func (b *Balancer) candidates(skip uint64) (live, clean uint64) {
	for i := range b.hosts {
		bit := uint64(1) << i
		if skip&bit != 0 {
			continue
		}
		switch b.hosts[i].state.Load() {
		case stateUp:
			live |= bit
			clean |= bit
		case stateProbation:
			live |= bit
		}
	}
	return live, clean
}

// rotate returns the first upstream in set at or after the next position of
// the round-robin counter, wrapping around.
func (b *Balancer) rotate(set uint64) int {
	s := (b.next.Add(1) - 1) % uint64(len(b.hosts))
	if later := set >> s << s; later != 0 {
		return bits.TrailingZeros64(later)
	}
	return bits.TrailingZeros64(set)
}

// anyOf returns a member of the non-empty set, uniformly at random.
func (b *Balancer) anyOf(set uint64) int {
	for r := b.uniform(bits.OnesCount64(set)); r > 0; r-- {
		set &= set - 1
	}
	return bits.TrailingZeros64(set)
}

// uniform returns a random number in [0, n).
func (b *Balancer) uniform(n int) int {
	return int((b.rnd() >> 32) * uint64(n) >> 32)
}

// metric is what least compares.
type metric uint8

const (
	byInFlight metric = iota
	byServed
	byLatency
)

// least returns the member of the non-empty set with the lowest metric,
// choosing uniformly among ties (reservoir sampling).
func (b *Balancer) least(set uint64, m metric) int {
	best, ties := -1, 0
	var low int64
	for ; set != 0; set &= set - 1 {
		i := bits.TrailingZeros64(set)
		v := b.hosts[i].metric(m)
		switch {
		case best < 0 || v < low:
			best, low, ties = i, v, 1
		case v == low:
			ties++
			if b.uniform(ties) == 0 {
				best = i
			}
		}
	}
	return best
}

// leastRecentlyFailed returns the upstream not in skip whose last failure
// is the oldest, leaving out the unreachable ones unless withUnreachable,
// or -1 when there is none. It is the choice when every candidate is down.
func (b *Balancer) leastRecentlyFailed(skip uint64, withUnreachable bool) int {
	best := -1
	var oldest int64
	for i := range b.hosts {
		h := &b.hosts[i]
		if skip&(uint64(1)<<i) != 0 || !withUnreachable && h.unreachable.Load() {
			continue
		}
		if t := h.lastFail.Load(); best < 0 || t < oldest {
			best, oldest = i, t
		}
	}
	return best
}
