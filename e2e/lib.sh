#!/usr/bin/env bash
# Shared helpers for the end-to-end scripts (run.sh, static.sh). Sourced, not
# run. Everything here talks only to 127.0.0.1 and ::1, on high ports, and
# every process it starts is recorded so that e2e_cleanup can stop it.

# Test names. The canary label is what the egress capture looks for: it must
# never appear in plaintext on the DoT side.
E2E_ZONE=dns.test
E2E_CANARY=plaintextcanary
E2E_A_NAME=$E2E_CANARY.$E2E_ZONE
E2E_A_ADDR=192.0.2.53
# mid: a TXT set a little over 512 bytes on the wire (fits EDNS 1232).
# big: a TXT set over 1232 bytes (fits only over TCP or with a large EDNS size).
E2E_MID_NAME=mid.$E2E_ZONE
E2E_MID_COUNT=3
E2E_BIG_NAME=big.$E2E_ZONE
E2E_BIG_COUNT=8

e2e_pass=0
e2e_fail=0
e2e_pids=()
# E2E_IN: a command prefix for everything that must run in the test's network
# namespace (static.sh sets it to "ip netns exec NAME"); empty runs in place.
E2E_IN=()

e2e_section() { printf '\n=== %s ===\n' "$*"; }
e2e_log() { printf '    %s\n' "$*"; }

# e2e_check NAME CMD...: runs CMD, counts a pass or a failure, never exits.
e2e_check() {
	local name=$1
	shift
	if "$@"; then
		e2e_pass=$((e2e_pass + 1))
		printf 'PASS  %s\n' "$name"
	else
		e2e_fail=$((e2e_fail + 1))
		printf 'FAIL  %s\n' "$name"
	fi
}

e2e_summary() {
	printf '\n%d passed, %d failed\n' "$e2e_pass" "$e2e_fail"
	[ "$e2e_fail" -eq 0 ]
}

# e2e_track PID: stopped by e2e_cleanup.
e2e_track() { e2e_pids+=("$1"); }

# e2e_stop PID: SIGTERM, wait up to 5 s, then SIGKILL. Only for our own PIDs.
e2e_stop() {
	local pid=$1 i
	kill -0 "$pid" 2>/dev/null || return 0
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < 50; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

e2e_cleanup() {
	local pid
	for pid in "${e2e_pids[@]}"; do
		e2e_stop "$pid"
	done
	e2e_pids=()
}

# e2e_dump_logs DIR: the last lines of each log in DIR, for a failed run.
e2e_dump_logs() {
	local f
	for f in "$1"/*.log "$1"/unbound.stderr; do
		[ -s "$f" ] || continue
		printf '\n--- last lines of %s ---\n' "${f##*/}"
		tail -n 25 "$f"
	done
}

# e2e_sigterm PID: sends SIGTERM and waits up to 15 s; sets E2E_RC to the
# exit status, or "timeout". (Not for $(...): a subshell cannot wait for
# this shell's children.)
# shellcheck disable=SC2034 # E2E_RC is for the caller
e2e_sigterm() {
	local pid=$1 i
	E2E_RC=timeout
	kill -TERM "$pid"
	for ((i = 0; i < 150; i++)); do
		if ! kill -0 "$pid" 2>/dev/null; then
			E2E_RC=0
			wait "$pid" || E2E_RC=$?
			break
		fi
		sleep 0.1
	done
}

# figure TEXT: prints a measured figure on a line of its own, which
# CI's log and the docs quote as it stands.
figure() { printf 'figure: %s\n' "$*"; }

# e2e_require SCRIPT [root] TOOL...: exits 2 with a message unless every TOOL
# is installed and, with "root", the script runs as root.
e2e_require() {
	local script=$1 tool
	shift
	if [ "${1:-}" = root ]; then
		shift
		if [ "$(id -u)" -ne 0 ]; then
			echo "$script needs root" >&2
			exit 2
		fi
	fi
	for tool in "$@"; do
		command -v "$tool" >/dev/null || {
			echo "$script: $tool is not installed" >&2
			exit 2
		}
	done
}

# e2e_free_port: prints a TCP+UDP port in 20000-59999 that nothing on this
# machine listens on. Bounded: 200 tries.
e2e_free_port() {
	local used port i
	used=$(ss -Htanu 2>/dev/null | awk '{print $5}' | sed -E 's/.*:([0-9]+)$/\1/' | sort -u)
	for ((i = 0; i < 200; i++)); do
		port=$((20000 + RANDOM % 40000))
		if ! grep -qx "$port" <<<"$used" && ! grep -qx "$port" <<<"${E2E_TAKEN:-}"; then
			E2E_TAKEN="${E2E_TAKEN:-}"$'\n'"$port"
			echo "$port"
			return 0
		fi
	done
	echo "e2e_free_port: no free port found" >&2
	return 1
}

# e2e_build OUT [VERSION]: builds the binary the way the Dockerfile's build
# stage does: static (CGO_ENABLED=0), -trimpath, version stamped via -ldflags.
e2e_build() {
	local out=$1 version=${2:-e2e}
	(cd "$E2E_ROOT" && CGO_ENABLED=0 go build -trimpath \
		-ldflags="-s -w -X main.version=$version" -o "$out" .)
}

# e2e_certs DIR: a throwaway CA and a server certificate for dns.test,
# 127.0.0.1 and ::1. Writes ca.pem, server.pem, server.key.
e2e_certs() {
	local d=$1
	openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
		-keyout "$d/ca.key" -out "$d/ca.pem" -days 2 -subj "/CN=dotproxy e2e CA" \
		-addext "basicConstraints=critical,CA:TRUE" \
		-addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
	openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
		-keyout "$d/server.key" -out "$d/server.csr" -subj "/CN=$E2E_ZONE" 2>/dev/null
	cat >"$d/server.ext" <<EXT
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=DNS:$E2E_ZONE,IP:127.0.0.1,IP:::1
EXT
	openssl x509 -req -in "$d/server.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" \
		-CAcreateserial -out "$d/server.pem" -days 2 -extfile "$d/server.ext" 2>/dev/null
	chmod 0644 "$d/server.key"
}

# e2e_txt_records NAME COUNT: COUNT local-data lines, one 200-byte TXT string each.
e2e_txt_records() {
	local name=$1 count=$2 i s
	for ((i = 1; i <= count; i++)); do
		s=$(printf 'r%02d-%0196d' "$i" 0)
		printf "    local-data: '%s. 300 IN TXT \"%s\"'\n" "$name" "$s"
	done
}

# e2e_unbound DIR PORT [LINE...]: starts Debian's unbound as a DoT server on
# 127.0.0.1@PORT answering the test zone from local-data (no recursion, no
# internet), with each LINE added to its server: clause. Sets
# E2E_UNBOUND_PID. Needs e2e_certs DIR first.
e2e_unbound() {
	local d=$1 port=$2 line
	shift 2
	{
		cat <<CONF
server:
    username: ""
    chroot: ""
    directory: "$d"
    pidfile: ""
    use-syslog: no
    logfile: "$d/unbound.log"
    log-time-ascii: yes
    verbosity: 1
    num-threads: 1
    interface: 127.0.0.1@$port
    tls-port: $port
    tls-service-key: "$d/server.key"
    tls-service-pem: "$d/server.pem"
    do-ip6: no
    do-udp: yes
    do-tcp: yes
    access-control: 127.0.0.0/8 allow
    module-config: "iterator"
    auto-trust-anchor-file: ""
    trust-anchor-file: ""
    # Everything is answered locally: "." is a static zone (so unbound never
    # tries to reach the root servers), with the root NS that the proxy's
    # healthcheck and probes ask for.
    local-zone: "." static
    local-data: ". 86400 IN NS ns.$E2E_ZONE."
    local-zone: "$E2E_ZONE." static
    local-data: "$E2E_A_NAME. 300 IN A $E2E_A_ADDR"
CONF
		e2e_txt_records "$E2E_MID_NAME" "$E2E_MID_COUNT"
		e2e_txt_records "$E2E_BIG_NAME" "$E2E_BIG_COUNT"
		for line in "$@"; do
			printf '    %s\n' "$line"
		done
		cat <<CONF
remote-control:
    control-enable: no
CONF
	} >"$d/unbound.conf"
	unbound-checkconf "$d/unbound.conf" >/dev/null || return 1
	"${E2E_IN[@]}" unbound -d -c "$d/unbound.conf" >"$d/unbound.stderr" 2>&1 &
	E2E_UNBOUND_PID=$!
	e2e_track "$E2E_UNBOUND_PID"
	e2e_wait_dot 127.0.0.1 "$port" "$d/ca.pem"
}

# e2e_wait_dot HOST PORT CA: waits up to 15 s for a DoT answer.
e2e_wait_dot() {
	local end=$((SECONDS + 15))
	while ((SECONDS < end)); do
		if "${E2E_IN[@]}" kdig @"$1" -p "$2" +tls-ca="$3" +tls-hostname="$E2E_ZONE" +time=1 +retry=0 \
			"$E2E_A_NAME" A +short 2>/dev/null | grep -qx "$E2E_A_ADDR"; then
			return 0
		fi
		sleep 0.1
	done
	echo "no DoT answer from $1:$2 within 15 s" >&2
	return 1
}

# e2e_wait_dns HOST PORT [PID]: waits up to 15 s for a plain-DNS UDP answer
# with any rcode (an answer, not its content, shows the listener is up);
# gives up at once if PID dies.
e2e_wait_dns() {
	local end=$((SECONDS + 15))
	while ((SECONDS < end)); do
		if [ -n "${3:-}" ] && ! kill -0 "$3" 2>/dev/null; then
			echo "process $3 exited before answering on $1:$2" >&2
			return 1
		fi
		if "${E2E_IN[@]}" kdig @"$1" -p "$2" +time=3 +retry=0 "$E2E_A_NAME" A 2>/dev/null | grep -q 'status: '; then
			return 0
		fi
		sleep 0.1
	done
	echo "no DNS answer from $1:$2 within 15 s" >&2
	return 1
}
