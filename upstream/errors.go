package upstream

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"syscall"
)

var (
	// ErrClosed is returned by Exchange once the pool is closed.
	ErrClosed = errors.New("upstream: pool closed")
	// ErrShortQuery is returned for a query shorter than a DNS header.
	ErrShortQuery = errors.New("upstream: query shorter than a DNS header")
	// ErrPinMismatch is returned when no certificate in the verified chain
	// matches a configured pin.
	ErrPinMismatch = errors.New("upstream: no certificate matches a pin")

	// ErrSilent is returned for the queries on a connection that owed
	// answers, read nothing for half an attempt timeout, and left a probe
	// query unanswered too: the path or the resolver is broken, so the
	// query should go to another upstream.
	ErrSilent = errors.New("upstream: connection fell silent")
	// ErrDeadline is returned when a query's deadline passes before its
	// answer. It reports Timeout: the upstream was slow, not broken.
	ErrDeadline error = timeoutError("upstream: query deadline passed")

	// errConnLost means the connection a query was on ended before the
	// answer came: the query may be sent again.
	errConnLost = errors.New("upstream: connection lost")
	// errMismatch retires a connection whose answers keep failing to
	// answer the queries whose IDs they carry.
	errMismatch = errors.New("upstream: answers do not match their queries")
	// errShortAnswer is a frame too short to carry an ID: the stream can no
	// longer be trusted.
	errShortAnswer = errors.New("upstream: answer shorter than a DNS header")
)

// timeoutError is an error that reports Timeout, as net.Error does, so that
// callers can tell a slow upstream from a broken one without importing this
// package.
type timeoutError string

func (e timeoutError) Error() string { return string(e) }

// Timeout reports true: the error means that time ran out.
func (e timeoutError) Timeout() bool { return true }

// DialError reports a failure to open a connection to an upstream. Its
// message names what was really asked, so that an operator looks at the
// right box: the configured address, the address it resolved to once
// connected, and the name the certificate was checked against.
type DialError struct {
	// Upstream is the configured host:port.
	Upstream string
	// Remote is the address connected to; empty when no connection was
	// made.
	Remote string
	// ServerName is the name the certificate must be valid for.
	ServerName string
	Stage      Stage
	Err        error
}

func (e *DialError) Error() string {
	var b strings.Builder
	b.WriteString("upstream ")
	b.WriteString(e.Upstream)
	switch {
	case e.Remote != "" && e.Remote != e.Upstream:
		fmt.Fprintf(&b, " (at %s, TLS name %q)", e.Remote, e.ServerName)
	case e.Stage != StageConnect && e.ServerName != "":
		fmt.Fprintf(&b, " (TLS name %q)", e.ServerName)
	}
	fmt.Fprintf(&b, ": %s: %v", e.Stage, e.Err)
	return b.String()
}

func (e *DialError) Unwrap() error { return e.Err }

// handshakeStage tells a certificate rejection from other handshake failures.
// With TCP Fast Open the SYN leaves with the ClientHello, so a refused or
// unreachable server shows up here rather than at connect; it is still a
// connect failure.
func handshakeStage(err error) Stage {
	if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EHOSTUNREACH) ||
		errors.Is(err, syscall.ENETUNREACH) || errors.Is(err, syscall.ETIMEDOUT) {
		return StageConnect
	}
	var verr *tls.CertificateVerificationError
	var herr x509.HostnameError
	var uerr x509.UnknownAuthorityError
	var cerr x509.CertificateInvalidError
	switch {
	case errors.As(err, &verr), errors.As(err, &herr), errors.As(err, &uerr),
		errors.As(err, &cerr), errors.Is(err, ErrPinMismatch):
		return StageVerify
	}
	return StageHandshake
}
