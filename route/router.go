package route

import (
	"fmt"
	"strings"
	"time"

	"github.com/dotproxy/dotproxy/dnsmsg"
)

// Resolver answers the queries of one route. *balance.Balancer implements
// it, and *Router does too: the methods are proxy.Resolver's, with the same
// contract (main asserts both). Implementations must be safe for
// concurrent use.
type Resolver interface {
	Start(query []byte, deadline time.Time, fin Finisher)
	StartHeld(query []byte, deadline time.Time, fin Finisher)
	Flush()
}

// Transferer is a Resolver that can also pass a zone transfer on, as
// proxy.Transferer says. *balance.Balancer implements it.
type Transferer interface {
	Transfer(query []byte, deadline time.Time, idle time.Duration, each func(msg []byte) error) (upstream fmt.Stringer, err error)
}

// Finisher receives the end of a query, as proxy.Finisher: the alias of
// the same unnamed interface, so that a Router passes the proxy's own
// Finisher on as it is.
type Finisher = interface {
	Resolved(answer []byte, upstream fmt.Stringer, err error)
}

// Route is one route: the domain suffixes whose names go to Resolver.
type Route struct {
	// Name names the route in New's errors.
	Name string
	// Suffixes are domain names as ParseSuffix reads them; every name
	// equal to one or under one goes to Resolver, unless a longer suffix
	// of another route takes it.
	Suffixes []string
	// Resolver answers the route's queries.
	Resolver Resolver
}

// maxLabels is the most labels a name can have: one octet each and its
// length octet, within 255 octets with the root's.
const maxLabels = 127

// Router sends each query to the Resolver of the route its question's name
// falls under, the longest suffix winning, and every other query, one with
// no question or a name that does not parse included, to the default
// Resolver. It implements proxy.Resolver and proxy.Transferer. It is safe
// for concurrent use and holds no state that a query changes.
type Router struct {
	def    Resolver
	routes []Resolver // by the index that bySuffix gives

	// bySuffix holds each suffix as wireKey writes it.
	bySuffix map[string]int
	// tops holds the last label of each suffix, as wireKey writes it: most
	// queries go to the default route, and most of those are told so by
	// their last label alone.
	tops map[string]struct{}
	// depths has bit n set when some suffix has n labels (1 to
	// maxLabels); only the suffixes of a query's name of those lengths are
	// looked up.
	depths [2]uint64
	// deepest is the most labels a suffix has.
	deepest int
}

// New returns a Router that sends the queries of each route to its
// Resolver and all others to def. It fails, naming the route, on a suffix
// ParseSuffix refuses, a suffix given twice (in one route or two), a route
// with no suffix, or a nil Resolver.
func New(def Resolver, routes []Route) (*Router, error) {
	if def == nil {
		return nil, fmt.Errorf("%w: the default", ErrNoResolver)
	}
	r := &Router{def: def, bySuffix: map[string]int{}, tops: map[string]struct{}{}}
	owner := map[string]string{} // suffix to route name, for errors
	for i, rt := range routes {
		switch {
		case rt.Resolver == nil:
			return nil, fmt.Errorf("%w: route %q", ErrNoResolver, rt.Name)
		case len(rt.Suffixes) == 0:
			return nil, fmt.Errorf("%w: route %q has none", ErrBadSuffix, rt.Name)
		}
		r.routes = append(r.routes, rt.Resolver)
		for _, s := range rt.Suffixes {
			suffix, err := ParseSuffix(s)
			if err != nil {
				return nil, fmt.Errorf("route %q: %q: %w", rt.Name, s, err)
			}
			if other, ok := owner[suffix]; ok {
				return nil, fmt.Errorf("%w: %q in routes %q and %q", ErrDuplicateSuffix, suffix, other, rt.Name)
			}
			owner[suffix] = rt.Name
			key, n := wireKey(suffix)
			r.bySuffix[key] = i
			top, _ := wireKey(suffix[strings.LastIndexByte(suffix, '.')+1:])
			r.tops[top] = struct{}{}
			r.depths[n/64] |= 1 << (n % 64)
			r.deepest = max(r.deepest, n)
		}
	}
	return r, nil
}

// Start implements proxy.Resolver: the query goes to its route's Resolver.
func (r *Router) Start(query []byte, deadline time.Time, fin Finisher) {
	r.resolver(query).Start(query, deadline, fin)
}

// StartHeld implements proxy.Resolver: the query goes to its route's
// Resolver, to be written at Flush.
func (r *Router) StartHeld(query []byte, deadline time.Time, fin Finisher) {
	r.resolver(query).StartHeld(query, deadline, fin)
}

// Flush implements proxy.Resolver: every route's Resolver writes what it
// holds. A Resolver that holds nothing returns at once (a balancer's pools
// each check one atomic flag), so the Router does not track which routes
// were given held queries.
func (r *Router) Flush() {
	r.def.Flush()
	for _, res := range r.routes {
		res.Flush()
	}
}

// Transfer implements proxy.Transferer: a zone transfer follows its
// route, like any query. It fails with ErrNoTransfer when that route's
// Resolver is no Transferer.
func (r *Router) Transfer(query []byte, deadline time.Time, idle time.Duration, each func(msg []byte) error) (fmt.Stringer, error) {
	t, ok := r.resolver(query).(Transferer)
	if !ok {
		return nil, ErrNoTransfer
	}
	return t.Transfer(query, deadline, idle, each)
}

// resolver returns the Resolver of query's route.
func (r *Router) resolver(query []byte) Resolver {
	if i := r.match(query); i >= 0 {
		return r.routes[i]
	}
	return r.def
}

// match returns the index of the route of query, -1 for the default. It
// reads untrusted bytes and allocates nothing: the name is copied, lower
// cased, into an array on the stack, and the map is indexed with a
// conversion of its bytes, which Go does not allocate for.
func (r *Router) match(query []byte) int {
	if len(r.routes) == 0 {
		return -1
	}
	name, ok := dnsmsg.QuestionName(query)
	if !ok {
		return -1
	}
	// The name in wire form, without its root octet, and where each label
	// starts in it: a name of 255 octets at most fits, and starts fit in a
	// byte.
	var (
		wire   [255]byte
		starts [maxLabels]uint8
		n, end int
	)
	for {
		label, ok := name.Next()
		if !ok {
			return -1
		}
		if len(label) == 0 {
			break
		}
		if n == len(starts) || end+1+len(label) > len(wire) {
			return -1 // past what dnsmsg lets through: not a name
		}
		starts[n] = uint8(end)
		n++
		wire[end] = byte(len(label))
		copied := wire[end+1 : end+1+copy(wire[end+1:], label)]
		for i, c := range copied {
			if 'A' <= c && c <= 'Z' {
				copied[i] = c + 'a' - 'A'
			}
		}
		end += 1 + len(label)
	}
	if n == 0 {
		return -1
	}
	if _, ok := r.tops[string(wire[starts[n-1]:end])]; !ok {
		return -1
	}
	// The longest suffix first: the one that starts at the leftmost label.
	for d := min(n, r.deepest); d > 0; d-- {
		if r.depths[d/64]&(1<<(d%64)) == 0 {
			continue
		}
		if i, ok := r.bySuffix[string(wire[starts[n-d]:end])]; ok {
			return i
		}
	}
	return -1
}
