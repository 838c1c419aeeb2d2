package route_test

import (
	"fmt"

	"github.com/dotproxy/dotproxy/route"
)

// A route's domains are read as a person writes them and compared in one
// form: lower case, no trailing dot.
func ExampleParseSuffix() {
	for _, s := range []string{"CoRp.Example.", "168.192.in-addr.arpa", ".", "*.corp.example"} {
		suffix, err := route.ParseSuffix(s)
		fmt.Printf("%q %v\n", suffix, err != nil)
	}
	// Output:
	// "corp.example" false
	// "168.192.in-addr.arpa" false
	// "" true
	// "" true
}
