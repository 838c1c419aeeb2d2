// Package dottest runs DNS-over-TLS servers on loopback for tests: a real TLS
// listener with a certificate generated in the test, built on miekg/dns so
// that dotproxy's own wire code is checked against an independent
// implementation. A server can answer in order, out of order, slowly, close
// idle connections, go silent, or reset a connection halfway through an
// answer, and it records every byte it received before decryption.
package dottest
