// Package balance spreads queries across several upstream resolvers: it
// chooses one by the configured policy, tracks each one's health, retries a
// failed attempt on another, and (optionally) hedges slow queries. It knows
// upstreams only through the small Upstream interface, so it never touches a
// socket itself.
package balance
