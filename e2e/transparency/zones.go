package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// The two zones the resolver serves. plainZone is answered from unbound's
// local-data (no DNSSEC); signedZone is an auth-zone signed by
// e2e/transparency.sh and validated by unbound against a trust anchor, so
// that AD, DO, CD and the DNSSEC record types take part.
const (
	plainZone  = "plain.test."
	signedZone = "signed.test."
)

// txtSizes are the approximate RRset sizes, in KB, of the big TXT names:
// txt1k, txt2k, txt4k and txt16k in both zones (txt16k in plainZone only).
var txtSizes = []int{1, 2, 4, 16}

// name255 is a name of exactly 255 octets on the wire under zone.
func name255(zone, first string) string {
	// Wire length: len(first)+1 for the first label, then 63+1 labels,
	// then the zone's labels and the root byte.
	zoneWire := len(zone) + 1 // "signed.test." is 12 chars, 13 octets
	left := 255 - zoneWire - (len(first) + 1)
	var labels []string
	labels = append(labels, first)
	for left > 0 {
		n := min(63, left-1)
		if left-(n+1) == 1 { // a 0-length remainder cannot be a label
			n--
		}
		labels = append(labels, strings.Repeat(string(rune('a'+len(labels)%26)), n))
		left -= n + 1
	}
	return strings.Join(labels, ".") + "." + zone
}

// txtStrings returns kb KB of TXT data as records of four 250-byte strings.
func txtStrings(tag string, kb int) [][]string {
	var recs [][]string
	for r := 0; r < kb; r++ {
		var ss []string
		for s := 0; s < 4; s++ {
			head := fmt.Sprintf("%s-r%02d-s%d-", tag, r, s)
			ss = append(ss, head+strings.Repeat(string(rune('a'+(r+s)%26)), 250-len(head)))
		}
		recs = append(recs, ss)
	}
	return recs
}

func quoted(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = `"` + s + `"`
	}
	return strings.Join(q, " ")
}

// plainRecords are the records of plainZone, in zone-file syntax with
// absolute names.
func plainRecords() []string {
	z := plainZone
	rr := []string{
		z + " 3600 IN SOA ns." + z + " hostmaster." + z + " 2024010101 3600 600 86400 300",
		z + " 3600 IN NS ns." + z,
		"ns." + z + " 3600 IN A 192.0.2.53",
		"www." + z + " 3600 IN A 192.0.2.1",
		"www." + z + " 3600 IN A 192.0.2.2",
		"www." + z + " 3600 IN A 192.0.2.3",
		"www." + z + " 3600 IN AAAA 2001:db8::1",
		"www." + z + " 3600 IN AAAA 2001:db8::2",
		"mail." + z + " 3600 IN MX 10 mx1." + z,
		"mail." + z + " 3600 IN MX 20 mx2." + z,
		"mx1." + z + " 3600 IN A 192.0.2.25",
		"mx2." + z + " 3600 IN AAAA 2001:db8::25",
		"c1." + z + " 3600 IN CNAME c2." + z,
		"c2." + z + " 3600 IN CNAME c3." + z,
		"c3." + z + " 3600 IN CNAME www." + z,
		"tosigned." + z + " 3600 IN CNAME www." + signedZone,
		"_sip._udp." + z + " 3600 IN SRV 10 60 5060 www." + z,
		"caa." + z + " 3600 IN CAA 0 issue \"ca.example\"",
		"hinfo." + z + " 3600 IN HINFO \"dotproxy e2e\" \"Debian\"",
		"quote." + z + " 3600 IN TXT \"hello; world\" \"with spaces\" \"\"",
		"unknown." + z + " 3600 IN TYPE65280 \\# 4 01020304",
		name255(z, "long") + " 3600 IN A 192.0.2.255",
	}
	for _, kb := range txtSizes {
		for _, ss := range txtStrings(fmt.Sprintf("p%dk", kb), kb) {
			rr = append(rr, fmt.Sprintf("txt%dk.%s 3600 IN TXT %s", kb, z, quoted(ss)))
		}
	}
	return rr
}

// signedRecords is signedZone's unsigned zone file.
func signedRecords() []string {
	z := signedZone
	rr := []string{
		z + " 3600 IN SOA ns." + z + " hostmaster." + z + " 2024010101 3600 600 86400 300",
		z + " 3600 IN NS ns." + z,
		"ns." + z + " 3600 IN A 192.0.2.53",
		"www." + z + " 3600 IN A 192.0.2.10",
		"www." + z + " 3600 IN AAAA 2001:db8::10",
		"mail." + z + " 3600 IN MX 10 www." + z,
		"c1." + z + " 3600 IN CNAME c2." + z,
		"c2." + z + " 3600 IN CNAME c3." + z,
		"c3." + z + " 3600 IN CNAME www." + z,
		"*.wild." + z + " 3600 IN TXT \"wildcard\"",
		// A delegation with a signed DS set; nothing below it is asked.
		"child." + z + " 3600 IN NS ns.child." + z,
		"ns.child." + z + " 3600 IN A 192.0.2.54",
		"child." + z + " 3600 IN DS 11111 13 2 " + strings.Repeat("0123456789ABCDEF", 4),
		"child." + z + " 3600 IN DS 22222 8 2 " + strings.Repeat("FEDCBA9876543210", 4),
		name255(z, "long") + " 3600 IN A 192.0.2.255",
	}
	for _, kb := range txtSizes[:3] {
		for _, ss := range txtStrings(fmt.Sprintf("s%dk", kb), kb) {
			rr = append(rr, fmt.Sprintf("txt%dk.%s 3600 IN TXT %s", kb, z, quoted(ss)))
		}
	}
	return rr
}

// writeZones writes dir/local-data.conf (unbound server: clauses for
// plainZone) and dir/signed.test.zone (unsigned).
func writeZones(dir string) error {
	var b strings.Builder
	fmt.Fprintf(&b, "    local-zone: %q static\n", plainZone)
	for _, r := range plainRecords() {
		fmt.Fprintf(&b, "    local-data: '%s'\n", r)
	}
	if err := os.WriteFile(filepath.Join(dir, "local-data.conf"), []byte(b.String()), 0o644); err != nil {
		return err
	}
	zone := "$ORIGIN " + signedZone + "\n" + strings.Join(signedRecords(), "\n") + "\n"
	return os.WriteFile(filepath.Join(dir, "signed.test.zone"), []byte(zone), 0o644)
}
