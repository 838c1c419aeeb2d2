// Package balance spreads queries across several upstream resolvers. It owns
// three things: selection (which upstream a query goes to, by the configured
// [Policy]), health (marking an upstream down when an exchange with it fails,
// probing it in the background and bringing it back), and the attempts of one
// query (retrying a failed attempt on another upstream and, optionally,
// hedging a slow one).
//
// It knows upstreams only through the small [Upstream] interface and never
// touches a socket itself. Selection runs on every query, so it takes no lock
// and allocates nothing: each upstream's state lives in atomics.
package balance
