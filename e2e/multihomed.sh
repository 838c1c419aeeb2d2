#!/usr/bin/env bash
# A host with several addresses, dotproxy listening on the wildcard: each UDP
# reply must leave from the address its query was sent to, or the client,
# whose socket is connected to that address, never sees it. Runs in a network
# namespace of its own holding two test addresses (192.0.2.1 and 192.0.2.2,
# TEST-NET-1, on its own loopback), so nothing leaves this machine.
#
#   sudo bash e2e/multihomed.sh
#
# Needs root (netns), go, kdig, iproute2. Ends with "N passed, N failed".
set -euo pipefail

E2E_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=e2e/lib.sh
. "$E2E_ROOT/e2e/lib.sh"

e2e_require multihomed.sh root go kdig ip nsenter

WORK=$(mktemp -d "${TMPDIR:-/tmp}/dotproxy-multihomed.XXXXXX")
NS="dotproxy-mh-$$"
on_exit() {
	local rc=$?
	e2e_cleanup
	ip netns del "$NS" 2>/dev/null || true
	if [ "$e2e_fail" -gt 0 ] || [ "$rc" -ne 0 ]; then
		e2e_dump_logs "$WORK"
	fi
	rm -rf "$WORK"
	exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT TERM

e2e_section "build"
e2e_build "$WORK/dotproxy" multihomed

e2e_section "namespace with two addresses"
ip netns add "$NS"
E2E_IN=(nsenter "--net=/run/netns/$NS")
"${E2E_IN[@]}" ip link set lo up
"${E2E_IN[@]}" ip addr add 192.0.2.1/32 dev lo
"${E2E_IN[@]}" ip addr add 192.0.2.2/32 dev lo
"${E2E_IN[@]}" ip addr add 2001:db8::1/128 dev lo
"${E2E_IN[@]}" ip addr add 2001:db8::2/128 dev lo
e2e_log "$("${E2E_IN[@]}" ip -brief addr show dev lo | tr -s ' ')"

# No upstream is needed: the access list refuses every client, and REFUSED
# is a reply like any other for this purpose. ":5300" is a dual-stack
# socket, "0.0.0.0:5301" an IPv4 one.
"${E2E_IN[@]}" env -i PATH="$PATH" \
	DOTPROXY_LISTEN=:5300,0.0.0.0:5301 \
	DOTPROXY_ALLOW=203.0.113.0/24 \
	DOTPROXY_UPSTREAMS=127.0.0.1:9 \
	DOTPROXY_UPSTREAM_WARM_CONNS=0 \
	DOTPROXY_LOG_FORMAT=text \
	"$WORK/dotproxy" >"$WORK/dotproxy.log" 2>&1 &
e2e_track $!
for ((i = 0; i < 100; i++)); do
	grep -q "dotproxy started" "$WORK/dotproxy.log" && break
	sleep 0.1
done

# ask FROM TO PROTO [PORT]: the rcode kdig reads, or nothing if no reply came.
ask() {
	"${E2E_IN[@]}" kdig -b "$1" @"$2" -p "${4:-5300}" "$3" +timeout=2 +retry=0 example.test A 2>&1 |
		sed -n 's/.*status: \([A-Z]*\).*/\1/p'
}
expect_refused() { [ "$(ask "$@")" = REFUSED ]; }

e2e_section "replies leave from the queried address"
e2e_check "UDP: query to 192.0.2.2 from 192.0.2.1 is answered from 192.0.2.2" \
	expect_refused 192.0.2.1 192.0.2.2 +notcp
e2e_check "UDP: query to 192.0.2.1 from 192.0.2.2 is answered from 192.0.2.1" \
	expect_refused 192.0.2.2 192.0.2.1 +notcp
e2e_check "UDP: query to 2001:db8::2 from 2001:db8::1 is answered from 2001:db8::2" \
	expect_refused 2001:db8::1 2001:db8::2 +notcp
e2e_check "UDP: IPv4 to 127.0.0.1 from 192.0.2.1" \
	expect_refused 192.0.2.1 127.0.0.1 +notcp
e2e_check "TCP: query to 192.0.2.2 from 192.0.2.1" \
	expect_refused 192.0.2.1 192.0.2.2 +tcp
e2e_check "UDP on an IPv4-only wildcard (0.0.0.0): answered from 192.0.2.2" \
	expect_refused 192.0.2.1 192.0.2.2 +notcp 5301

e2e_summary
