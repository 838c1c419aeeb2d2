// Package route sends each query to the resolver of the route its name
// falls under: split horizon. A route is a set of domain suffixes and the
// resolver (in dotproxy, a balancer over its own upstreams) that answers
// for every name under them; a query that no route takes, or that asks no
// name, goes to the default resolver.
//
// The longest suffix wins, compared label by label and ignoring ASCII case
// (RFC 4343): corp.example takes a.CORP.Example. but not evilcorp.example,
// and 168.192.in-addr.arpa is preferred to in-addr.arpa. Reverse zones are
// suffixes like any other.
//
// A [Router] sits between the client side and the balancers and implements
// the same three methods as each (Start, StartHeld, Flush) and zone
// transfers: choosing costs one walk of the question's name, through
// dnsmsg's name reader, and a few map lookups, and allocates nothing.
package route
