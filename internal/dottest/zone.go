package dottest

import (
	"fmt"
	"net"

	"github.com/miekg/dns"
)

// ZoneSerial is the serial of the zone that ZoneTransfer sends.
const ZoneSerial = 2026120701

// ZoneTransfer answers an AXFR query for q's name with the zone's SOA, then
// records A records named host0, host1, …, then the SOA again, spread over
// messages of at most per records each, as a server streams a transfer
// (RFC 5936 §2.2): the first message carries the question, the others
// none. Each message carries q's ID.
func ZoneTransfer(q *dns.Msg, records, per int) []*dns.Msg {
	zone := q.Question[0].Name
	soa := &dns.SOA{Hdr: dns.RR_Header{Name: zone, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: 3600},
		Ns: "ns." + zone, Mbox: "admin." + zone, Serial: ZoneSerial, Refresh: 3600, Retry: 600, Expire: 86400, Minttl: 60}
	rrs := []dns.RR{soa}
	for i := range records {
		rrs = append(rrs, &dns.A{Hdr: dns.RR_Header{Name: fmt.Sprintf("host%d.%s", i, zone), Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60},
			A: net.IPv4(192, 0, 2, byte(i))})
	}
	rrs = append(rrs, soa)
	var msgs []*dns.Msg
	for i := 0; i < len(rrs); i += per {
		m := new(dns.Msg)
		m.SetReply(q)
		m.Compress = true
		if i > 0 {
			m.Question = nil
		}
		m.Answer = rrs[i:min(i+per, len(rrs))]
		msgs = append(msgs, m)
	}
	return msgs
}
