// Package emit owns dotproxy's metrics client. It turns the events that
// proxy, upstream and balance report through their Observer interfaces into
// statsd metrics, and pushes them to a DogStatsD agent (through
// github.com/DataDog/datadog-go/v5) or to a plain statsd server (through a
// small writer of its own, because the Datadog client always adds the DD_*
// tags and Datadog-only fields that a plain statsd server rejects).
//
// main builds one [Emitter] from a [Config] and hands its observers to the
// other packages:
//
//   - [Emitter.Upstream] returns the [upstream.Observer] of one upstream,
//     and [Emitter.RouteUpstream] that of one upstream of a route, tagged
//     with the route's name,
//   - [Emitter.Proxy] returns the [proxy.Observer],
//   - [Emitter.Balance] returns the [balance.Observer].
//
// Every series a method can emit is named and tagged when its observer is
// built, so the methods called on the query path allocate nothing and never
// block: the clients buffer in memory, send from their own goroutines, and
// drop metrics rather than wait when the statsd server is slow or gone.
//
// Gauges (open connections, queries in flight, health) are read by one
// goroutine that the Emitter owns, once per [Config.FlushInterval], from the
// [PoolStats] given to [UpstreamMetrics.Watch]. [Emitter.Close] stops it.
//
// emit imports proxy, upstream and balance only for the named types in
// their Observer method signatures; none of them imports emit.
package emit
