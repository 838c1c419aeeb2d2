// Package ratelimit limits how fast each client network may send requests:
// a token bucket per address prefix (an IPv4 /32 and an IPv6 /64 unless
// configured otherwise), kept in a table of fixed size that is allocated
// once, so that no number of distinct sources, spoofed or not, can grow it.
//
// A Limiter answers one question per request, Take: is this request within
// its prefix's rate, and if not, is it one of the few that the caller should
// answer cheaply (a slip) rather than drop. It knows nothing of what the
// requests are.
//
// # The bucket
//
// Each prefix may send Burst requests at once and Rate per second after
// that. The bucket is kept as a single time per entry, the moment at which
// it will be full again (the generic cell rate algorithm's theoretical
// arrival time): a request is taken if, once charged, the bucket would not
// be more than Burst requests short of full. An entry whose time has passed
// is a full bucket, exactly what a new entry is, and so the one to give up
// when the table needs room.
//
// # Verified sources
//
// A request whose source address is known to be genuine (it came over a
// connection that completed a handshake) may overdraw the bucket by one more
// Burst. A client told to retry that way after its datagrams went over the
// limit is let through, while its long-run rate stays Rate: what it
// overdraws, its datagrams wait for.
//
// # The table
//
// The table is set-associative: a prefix hashes, with a key chosen at
// random at start-up, to one set of a few entries, each set under its own
// lock. A prefix not in its set takes the place of an entry whose bucket is
// full, whose state is a new entry's, so that nothing is lost; failing that,
// of the entry that presses least, counting every request it sent, those
// refused too. A flood of one-off sources, each one request, therefore replaces
// the idle and each other, while a prefix sending over its limit keeps its
// place and its empty bucket, however many sources arrive. Taking a request
// allocates nothing.
package ratelimit
