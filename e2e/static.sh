#!/usr/bin/env bash
# Proof, without a Docker engine, that the container image works: build the
# binary exactly as the Dockerfile's build stage does, check that it is
# statically linked, and run it the way `FROM scratch` + `USER 65532:65532`
# runs it: in an empty root holding only /dotproxy and the CA bundle, as
# UID 65532 with no capabilities, in its own network namespace where
# net.ipv4.ip_unprivileged_port_start=0 (what Docker sets in every container),
# binding port 53. It must answer a query through a real unbound DoT server
# listening on port 853 of that namespace, pass its own healthcheck, and exit 0
# on SIGTERM.
#
#   sudo bash e2e/static.sh
#
# Needs root (netns, chroot), go, openssl, unbound, kdig, file, iproute2.
# Ends with "N passed, N failed".
set -euo pipefail

E2E_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=e2e/lib.sh
. "$E2E_ROOT/e2e/lib.sh"

e2e_require static.sh root go openssl unbound unbound-checkconf kdig file ldd ip nsenter chroot unshare

APP_UID=65532
WORK=$(mktemp -d "${TMPDIR:-/tmp}/dotproxy-static.XXXXXX")
chmod 0755 "$WORK"
NS="dotproxy-static-$$"
on_exit() {
	local rc=$?
	e2e_cleanup
	ip netns del "$NS" 2>/dev/null || true
	if [ "$e2e_fail" -gt 0 ] || [ "$rc" -ne 0 ]; then
		e2e_dump_logs "$WORK"
	fi
	if [ "${E2E_KEEP:-0}" = 1 ]; then echo "work directory kept: $WORK"; else rm -rf "$WORK"; fi
	exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------------------
e2e_section "build exactly as the Dockerfile does"
# The Dockerfile's build command and e2e_build must stay the same command.
dockerfile_builds_the_same() {
	local flags='-s -w -X main.version='
	grep -q 'CGO_ENABLED=0' "$E2E_ROOT/Dockerfile" &&
		grep -qF "go build -trimpath -ldflags=\"${flags}\${VERSION}\"" "$E2E_ROOT/Dockerfile" &&
		grep -qF 'CGO_ENABLED=0 go build -trimpath' "$E2E_ROOT/e2e/lib.sh" &&
		grep -qF -- "-ldflags=\"${flags}\$version\"" "$E2E_ROOT/e2e/lib.sh"
}
e2e_check "Dockerfile and e2e_build use the same build command" dockerfile_builds_the_same
VERSION="static-$(git -C "$E2E_ROOT" rev-parse --short HEAD 2>/dev/null || echo dev)"
BIN=$WORK/dotproxy
e2e_build "$BIN" "$VERSION"
e2e_log "$(file -b "$BIN")"
statically_linked() { file -b "$BIN" | grep -q 'statically linked'; }
not_dynamic() { ! ldd "$BIN" >/dev/null 2>&1; }
e2e_check "file(1): statically linked" statically_linked
e2e_check "ldd: not a dynamic executable" not_dynamic
build_settings() {
	local m
	m=$(go version -m "$BIN")
	grep -q 'CGO_ENABLED=0' <<<"$m" && grep -q -- '-trimpath=true' <<<"$m"
}
e2e_check "go version -m: built with CGO_ENABLED=0 and -trimpath" build_settings
# (-trimpath keeps -ldflags out of the build info, so ask the binary.)
version_stamped() {
	local out
	out=$("$BIN" -version 2>&1) && grep -qF -- "$VERSION" <<<"$out"
}
e2e_check "-version prints the version stamped through -ldflags" version_stamped

# ---------------------------------------------------------------------------
e2e_section "empty root: /dotproxy and the CA bundle, nothing else"
ROOTFS=$WORK/rootfs
mkdir -p "$ROOTFS/etc/ssl/certs"
install -m 0755 "$BIN" "$ROOTFS/dotproxy"
e2e_certs "$WORK"
# The image carries Debian's bundle at this path; the test CA is appended, as
# an operator would add a private CA, so that the system-roots path is the one
# that verifies the upstream (no DOTPROXY_TLS_CA_FILE).
{
	[ -f /etc/ssl/certs/ca-certificates.crt ] && cat /etc/ssl/certs/ca-certificates.crt
	cat "$WORK/ca.pem"
} >"$ROOTFS/etc/ssl/certs/ca-certificates.crt"
chmod 0644 "$ROOTFS/etc/ssl/certs/ca-certificates.crt"
e2e_log "root contents: $(cd "$ROOTFS" && find . -type f | sort | tr '\n' ' ')"
only_two_files() { [ "$(find "$ROOTFS" -type f | wc -l)" -eq 2 ] && [ "$(find "$ROOTFS" -type l | wc -l)" -eq 0 ]; }
e2e_check "the root holds exactly two files" only_two_files

# ---------------------------------------------------------------------------
e2e_section "network namespace as Docker sets it up"
ip netns add "$NS"
# nsenter execs its command (ip netns exec forks and waits), so the PIDs that
# e2e_track records are those of unbound and dotproxy themselves.
E2E_IN=(nsenter "--net=/run/netns/$NS")
"${E2E_IN[@]}" ip link set lo up
"${E2E_IN[@]}" sysctl -qw net.ipv4.ip_unprivileged_port_start=0
e2e_log "netns $NS: lo up, net.ipv4.ip_unprivileged_port_start=$("${E2E_IN[@]}" cat /proc/sys/net/ipv4/ip_unprivileged_port_start)"
e2e_unbound "$WORK" 853
e2e_log "unbound DoT on 127.0.0.1:853 inside $NS"

# The binary as the image runs it. env -i: nothing from this shell leaks in
# but the settings given (hence the absolute paths).
NSENTER_BIN=$(command -v nsenter)
UNSHARE_BIN=$(command -v unshare)
CHROOT_BIN=$(command -v chroot)
# Every program in the chain execs the next, so the PID of a backgrounded
# "${IN_ROOT[@]}" is the PID of dotproxy itself.
IN_ROOT=(env -i DOTPROXY_UPSTREAMS="127.0.0.1:853#$E2E_ZONE" DOTPROXY_LISTEN=":53"
	DOTPROXY_QUERY_TIMEOUT=5s DOTPROXY_LOG_FORMAT=json DOTPROXY_LOG_LEVEL=debug
	"$NSENTER_BIN" "--net=/run/netns/$NS" "$UNSHARE_BIN" --mount --uts --ipc
	"$CHROOT_BIN" --userspec="$APP_UID:$APP_UID" "$ROOTFS" /dotproxy)

e2e_section "run it"
"${IN_ROOT[@]}" >"$WORK/dotproxy.log" 2>&1 &
PID=$!
e2e_track "$PID"
e2e_check "starts and answers on :53" e2e_wait_dns 127.0.0.1 53 "$PID"
runs_unprivileged() {
	local uid cap
	uid=$(awk '/^Uid:/ {print $2}' "/proc/$PID/status")
	cap=$(awk '/^CapEff:/ {print $2}' "/proc/$PID/status")
	e2e_log "pid $PID: uid $uid, CapEff $cap, root $(readlink "/proc/$PID/root")"
	[ "$uid" = "$APP_UID" ] && [ "$cap" = 0000000000000000 ] &&
		[ "$(readlink "/proc/$PID/root")" = "$ROOTFS" ]
}
e2e_check "runs as UID $APP_UID with no capabilities inside the empty root" runs_unprivileged
answers_a() {
	local out
	out=$("${E2E_IN[@]}" kdig @127.0.0.1 -p 53 +time=6 +retry=0 "$E2E_A_NAME" A 2>&1) || true
	grep -Eq "IN[[:space:]]+A[[:space:]]+$E2E_A_ADDR" <<<"$out"
}
answers_big_tcp() {
	local out
	out=$("${E2E_IN[@]}" kdig @127.0.0.1 -p 53 +time=6 +retry=0 +tcp "$E2E_BIG_NAME" TXT 2>&1) || true
	[ "$(grep -Ec "^$E2E_BIG_NAME\.[[:space:]]+[0-9]+[[:space:]]+IN[[:space:]]+TXT" <<<"$out")" -eq "$E2E_BIG_COUNT" ]
}
e2e_check "A over UDP through the DoT upstream" answers_a
e2e_check "large TXT over TCP through the DoT upstream" answers_big_tcp
e2e_check "/dotproxy healthcheck exits 0 (the image's HEALTHCHECK)" "${IN_ROOT[@]}" healthcheck

e2e_sigterm "$PID"
rc=$E2E_RC
e2e_check "SIGTERM: exit status 0 (got $rc)" test "$rc" = 0

e2e_summary
