module github.com/dotproxy/dotproxy

go 1.26.0

require (
	github.com/DataDog/datadog-go/v5 v5.9.1
	github.com/kelseyhightower/envconfig v1.4.0
	github.com/lmittmann/tint v1.2.1
	github.com/miekg/dns v1.1.73
	golang.org/x/sys v0.50.0
)

require (
	github.com/Microsoft/go-winio v0.5.0 // indirect
	golang.org/x/net v0.57.0 // indirect
)
