#!/usr/bin/env bash
# docker-lib.sh: what e2e/docker.sh and e2e/compose.sh share. Sourced, not
# run; sources lib.sh (PASS/FAIL counting, certificates' test names) and
# images.sh (the images).
#
# Every container and network made through these helpers is named
# $DK_PREFIX-<what> (DK_PREFIX holds a run id, so runs side by side never
# meet) and removed by that name in dk_cleanup, which the scripts call from
# their EXIT trap, on failure too. Ports are published on 127.0.0.1 only.

DK_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
E2E_ROOT=${E2E_ROOT:-$DK_ROOT}
# shellcheck source=e2e/lib.sh
. "$DK_ROOT/e2e/lib.sh"
# shellcheck source=e2e/images.sh
. "$DK_ROOT/e2e/images.sh"

DK_RUN=${DK_RUN:-$(date -u +%H%M%S)-$$}
DK_PREFIX=dotproxy-ci-$DK_RUN
# The image under test: built from the repository's Dockerfile unless
# DOTPROXY_IMAGE names one already built (then it is not removed at exit).
DK_IMAGE=${DOTPROXY_IMAGE:-}
# Set by dk_image and dk_wait_healthy for the scripts' figures.
export DK_BUILD_SECONDS='' DK_HEALTHY_AFTER=''
dk_containers=()
dk_networks=()
dk_images=()

dk_name() { echo "$DK_PREFIX-$1"; }
dk_track_container() { dk_containers+=("$1"); }
dk_track_network() { dk_networks+=("$1"); }

# dk_cleanup: removes, by name, every container, network and image this run
# made. Safe to call twice.
dk_cleanup() {
	local c n i
	for c in "${dk_containers[@]}"; do docker rm -f -v "$c" >/dev/null 2>&1 || true; done
	for n in "${dk_networks[@]}"; do docker network rm "$n" >/dev/null 2>&1 || true; done
	for i in "${dk_images[@]}"; do docker rmi "$i" >/dev/null 2>&1 || true; done
	dk_containers=()
	dk_networks=()
	dk_images=()
}

# dk_image: makes the base images and builds the repository's Dockerfile as
# ghcr.io/dotproxy/dotproxy:<run tag>, the name the README and compose file
# use, unless DOTPROXY_IMAGE is set. Sets DK_IMAGE, DK_TAG, DK_BUILD_SECONDS.
dk_image() {
	local start
	if [ -n "$DK_IMAGE" ]; then
		DK_TAG=${DK_IMAGE##*:}
		DK_BUILD_SECONDS=0
		return 0
	fi
	images_all || return 1
	DK_TAG=ci-$DK_RUN
	DK_IMAGE=ghcr.io/dotproxy/dotproxy:$DK_TAG
	start=$SECONDS
	dk_images+=("$DK_IMAGE")
	images_dotproxy "$DK_IMAGE" -q >/dev/null || return 1
	DK_BUILD_SECONDS=$((SECONDS - start))
}

# dk_network NAME [docker network create flags]: a bridge network of this run.
dk_network() {
	local n=$1
	shift
	dk_track_network "$n"
	docker network create "$@" "$n" >/dev/null
}

# dk_ip CONTAINER: its address on its first (only) network.
dk_ip() {
	docker inspect --format '{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}' "$1" | awk '{print $1}'
}

# dk_gateway NETWORK: the host's address on NETWORK (where published ports'
# clients appear to come from).
dk_gateway() { docker network inspect --format '{{range .IPAM.Config}}{{.Gateway}}{{end}}' "$1"; }

# dk_certs DIR SAN...: a throwaway CA (DIR/ca.pem) and a server certificate
# (DIR/server.pem, DIR/server.key) for dns.test and each SAN ("DNS:name" or
# "IP:addr").
dk_certs() {
	local d=$1 sans="DNS:$E2E_ZONE" s
	shift
	for s in "$@"; do sans="$sans,$s"; done
	openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
		-keyout "$d/ca.key" -out "$d/ca.pem" -days 2 -subj "/CN=dotproxy container-test CA" \
		-addext "basicConstraints=critical,CA:TRUE" \
		-addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null || return 1
	openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
		-keyout "$d/server.key" -out "$d/server.csr" -subj "/CN=$E2E_ZONE" 2>/dev/null || return 1
	printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=%s\n' \
		"$sans" >"$d/server.ext"
	openssl x509 -req -in "$d/server.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" \
		-CAcreateserial -out "$d/server.pem" -days 2 -extfile "$d/server.ext" 2>/dev/null || return 1
	chmod 0644 "$d/server.key" "$d/server.pem" "$d/ca.pem"
}

# dk_unbound_dir DIR NAME CERTDIR [LOCAL-DATA...]: DIR/unbound.conf (plus the
# certificate and key) for the unbound image, mounted at /etc/dot: DoT on 853
# and plain DNS on 53 on every address, the test zone answered locally (no
# recursion, no internet), every query logged (docker logs counts them), and
# who.dns.test TXT answering NAME, so a client can tell which upstream
# answered. Extra LOCAL-DATA records are added as given.
dk_unbound_dir() {
	local d=$1 name=$2 certs=$3 rr
	shift 3
	mkdir -p "$d"
	cp "$certs/server.pem" "$certs/server.key" "$d/"
	chmod 0755 "$d"
	{
		cat <<CONF
server:
    username: ""
    chroot: ""
    directory: "/etc/dot"
    pidfile: ""
    use-syslog: no
    logfile: ""
    verbosity: 1
    log-queries: yes
    num-threads: 1
    interface: 0.0.0.0@853
    interface: 0.0.0.0@53
    tls-port: 853
    tls-service-key: "/etc/dot/server.key"
    tls-service-pem: "/etc/dot/server.pem"
    do-ip6: no
    access-control: 0.0.0.0/0 allow
    module-config: "iterator"
    auto-trust-anchor-file: ""
    trust-anchor-file: ""
    local-zone: "." static
    local-data: ". 86400 IN NS ns.$E2E_ZONE."
    local-zone: "$E2E_ZONE." static
    local-data: "$E2E_A_NAME. 300 IN A $E2E_A_ADDR"
    local-data: 'who.$E2E_ZONE. 0 IN TXT "$name"'
CONF
		for rr in "$@"; do printf "    local-data: '%s'\n" "$rr"; done
		e2e_txt_records "$E2E_MID_NAME" "$E2E_MID_COUNT"
		e2e_txt_records "$E2E_BIG_NAME" "$E2E_BIG_COUNT"
		printf 'remote-control:\n    control-enable: no\n'
	} >"$d/unbound.conf"
	chmod 0644 "$d/unbound.conf"
}

# dk_kdig ARGS...: kdig with short timeouts, for queries to the published
# ports on 127.0.0.1.
dk_kdig() { kdig +time=5 +retry=0 "$@" 2>&1; }

# dk_wait_dot HOST PORT CA: waits up to 20 s for a DoT answer from HOST.
dk_wait_dot() {
	local end=$((SECONDS + 20))
	while ((SECONDS < end)); do
		if kdig @"$1" -p "$2" +tls-ca="$3" +tls-hostname="$E2E_ZONE" +time=1 +retry=0 \
			"$E2E_A_NAME" A +short 2>/dev/null | grep -qx "$E2E_A_ADDR"; then
			return 0
		fi
		sleep 0.2
	done
	echo "no DoT answer from $1:$2 within 20 s" >&2
	return 1
}

# dk_wait_answer PORT [SECONDS]: waits for the test A record through the
# published port 127.0.0.1:PORT (default 20 s).
dk_wait_answer() {
	local end=$((SECONDS + ${2:-20}))
	while ((SECONDS < end)); do
		if kdig @127.0.0.1 -p "$1" +time=1 +retry=0 "$E2E_A_NAME" A +short 2>/dev/null | grep -qx "$E2E_A_ADDR"; then
			return 0
		fi
		sleep 0.2
	done
	echo "no answer on 127.0.0.1:$1 within ${2:-20} s" >&2
	return 1
}

# dk_health CONTAINER: its health status (starting, healthy, unhealthy).
dk_health() { docker inspect --format '{{if .State.Health}}{{.State.Health.Status}}{{end}}' "$1" 2>/dev/null; }

# dk_wait_healthy CONTAINER SECONDS: waits for "healthy"; sets DK_HEALTHY_AFTER
# to the seconds waited (with 0.1 s resolution).
dk_wait_healthy() {
	local c=$1 limit=$2 start now
	start=$(date +%s.%N)
	DK_HEALTHY_AFTER=
	while :; do
		now=$(date +%s.%N)
		if [ "$(dk_health "$c")" = healthy ]; then
			DK_HEALTHY_AFTER=$(awk -v a="$start" -v b="$now" 'BEGIN{printf "%.1f", b-a}')
			return 0
		fi
		if awk -v a="$start" -v b="$now" -v l="$limit" 'BEGIN{exit !(b-a > l)}'; then
			echo "$c: not healthy after $limit s (status: $(dk_health "$c"))" >&2
			return 1
		fi
		sleep 0.2
	done
}

# dk_log_has CONTAINER PATTERN [SECONDS]: waits (default 10 s) until a line
# of the container's log matches the grep pattern (unbound's log reaches
# docker logs a little after the query).
dk_log_has() {
	local end=$((SECONDS + ${3:-10}))
	while ((SECONDS < end)); do
		docker logs "$1" 2>&1 | grep -q -- "$2" && return 0
		sleep 0.5
	done
	return 1
}

# dk_dump CONTAINER...: the last log lines of each, for a failed run.
dk_dump() {
	local c
	for c in "$@"; do
		docker inspect "$c" >/dev/null 2>&1 || continue
		printf '\n--- last lines of docker logs %s ---\n' "$c"
		docker logs --tail 25 "$c" 2>&1
	done
}
