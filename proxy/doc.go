// Package proxy serves plain DNS to clients over UDP and TCP and hands every
// query to a Resolver. It owns what the client sees: the access list, the
// rate limit per client network, UDP truncation, TCP framing and
// pipelining, and the proxy's own REFUSED, FORMERR and SERVFAIL replies. It
// reads no more of a message than that needs, and forwards the rest
// untouched.
package proxy
