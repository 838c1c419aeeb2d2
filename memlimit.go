package main

import (
	"math"
	"os"
	"runtime/debug"
)

// memoryHeadroom is what dotproxy needs besides the queries in flight: the
// runtime, the upstream connections' buffers and the client TCP connections
// (DOTPROXY_CLIENT_TCP_MAX_CONNS of them at most).
const memoryHeadroom = 40 << 20

// limitMemory sets the Go runtime's soft memory limit, unless GOMEMLIMIT
// does, to what the settings allow dotproxy to hold: the headroom plus
// DOTPROXY_CLIENT_MAX_INFLIGHT_MIB. The memory budget bounds what is live;
// the limit makes the collector return what a flood left behind before the
// heap doubles, its habit otherwise, so that the process's size follows
// the budget. It returns the limit in force.
func limitMemory(inflightBytes int64) int64 {
	if _, set := os.LookupEnv("GOMEMLIMIT"); set {
		return debug.SetMemoryLimit(-1) // reads it without changing it
	}
	limit := int64(memoryHeadroom) + inflightBytes
	if limit <= 0 {
		limit = math.MaxInt64
	}
	debug.SetMemoryLimit(limit)
	return limit
}
