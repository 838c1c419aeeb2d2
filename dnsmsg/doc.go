// Package dnsmsg reads and writes the few parts of a DNS message that a
// forwarding proxy must understand to be correct: the header (ID, flags,
// counts), the question, and the EDNS(0) OPT record; and it builds the
// proxy's own replies, with an Extended DNS Error (RFC 8914) that says why,
// and the TXT records of its answers about itself (local.go). Everything
// else in a message is opaque bytes that pass through untouched.
//
// The functions here read untrusted bytes from the network; every one of them
// is bounds-checked and fuzzed, and none of them allocates except where a new
// message is built.
package dnsmsg
