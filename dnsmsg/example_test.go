package dnsmsg_test

import (
	"fmt"

	"github.com/dotproxy/dotproxy/dnsmsg"
)

// A client's query is parsed only as far as forwarding needs: the ID, the
// question, and the UDP size it accepts.
func ExampleParseQuery() {
	query, _ := dnsmsg.NewQuery(0x1234, "www.example.org", 28)
	q, err := dnsmsg.ParseQuery(query)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("id %#x, %s, EDNS %v, up to %d bytes over UDP\n",
		q.ID, dnsmsg.QuestionString(q.Question), q.EDNS, q.MaxUDPAnswer())
	// Output: id 0x1234, www.example.org. AAAA, EDNS false, up to 512 bytes over UDP
}

// The proxy's own answers keep the client's ID and question.
func ExampleReply() {
	query, _ := dnsmsg.NewQuery(7, "blocked.example", 1)
	q, _ := dnsmsg.ParseQuery(query)
	reply := dnsmsg.Reply(&q, dnsmsg.RcodeRefused)
	fmt.Println(dnsmsg.ID(reply), dnsmsg.IsResponse(reply), dnsmsg.RcodeName(dnsmsg.Rcode(reply)))
	// Output: 7 true REFUSED
}

// A client that sent EDNS learns why the proxy answered itself: an
// Extended DNS Error with a fixed text.
func ExampleReplyEDE() {
	query, _ := dnsmsg.NewQuery(9, "down.example", 1)
	q, _ := dnsmsg.ParseQuery(query)
	q.EDNS = true // as if the query had carried an OPT record
	reply := dnsmsg.ReplyEDE(&q, dnsmsg.RcodeServFail, dnsmsg.EDEAllDown)
	fmt.Println(dnsmsg.RcodeName(dnsmsg.Rcode(reply)), dnsmsg.EDEAllDown.InfoCode(), dnsmsg.EDEAllDown.ExtraText(), len(reply), "bytes")
	// Output: SERVFAIL 22 every upstream is down 69 bytes
}
