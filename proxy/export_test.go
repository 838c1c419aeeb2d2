package proxy

// QueryCost is what the memory budget charges a query of size bytes.
func QueryCost(size int) int64 { return cost(size) }
