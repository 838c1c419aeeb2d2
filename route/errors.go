package route

import "errors"

var (
	// ErrBadSuffix is returned by ParseSuffix and New for a suffix that is
	// not a domain name a route can take.
	ErrBadSuffix = errors.New("route: bad domain suffix")
	// ErrDuplicateSuffix is returned by New for a suffix given twice, in
	// one route or two: a name under it could go to either.
	ErrDuplicateSuffix = errors.New("route: suffix in more than one route")
	// ErrNoResolver is returned by New for a route, or a default, with no
	// resolver.
	ErrNoResolver = errors.New("route: no resolver")
	// ErrNoTransfer is returned by Router.Transfer when the resolver of the
	// query's route cannot pass zone transfers on.
	ErrNoTransfer = errors.New("route: resolver does not pass zone transfers on")
)
