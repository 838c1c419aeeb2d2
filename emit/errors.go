package emit

import "errors"

// ErrConfig is wrapped by every error that a bad [Config] causes, in
// [Config.Validate], [New] and [Format.UnmarshalText]. The message names the
// field that holds the bad value; main names its variable.
var ErrConfig = errors.New("emit: bad configuration")

// errDropped is logged when the plain statsd writer drops datagrams because
// the socket cannot keep up.
var errDropped = errors.New("emit: send queue full, datagrams dropped")

// ErrCloseTimeout is returned by [Emitter.Close] when the statsd server did
// not take every buffered metric within [Config.CloseTimeout]. Close has
// returned anyway; what was not sent by then is lost when the process
// exits.
var ErrCloseTimeout = errors.New("emit: metrics not all sent by the close deadline")
