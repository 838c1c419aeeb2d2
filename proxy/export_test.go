package proxy

// QueryCost is what the memory budget charges a query of size bytes.
func QueryCost(size int) int64 { return cost(size) }

// LimitLoopback makes s rate-limit loopback clients, which it never does
// otherwise, so that tests can send from 127.0.0.2 and 127.0.0.3 as from two
// hosts. Call it before Start.
func LimitLoopback(s *Server) { s.limitLoopback = true }

// RateLimitEntries returns the size of s's rate-limit table.
func RateLimitEntries(s *Server) int { return s.limit.Config().Entries }
