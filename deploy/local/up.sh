#!/usr/bin/env bash
# up.sh: the local stack (the repository root's docker-compose.yml: dotproxy,
# unbound as its DoT upstream, a statsd receiver) from nothing, with no
# registry and no internet, then a first query through it.
#
#   deploy/local/up.sh        # again at any time: rebuilds what changed, keeps what runs
#   deploy/local/down.sh      # removes it
#
# What it makes when missing, each only once (a second run makes nothing):
#   - a Debian 12 base for unbound and statsd: debian:bookworm-slim if the
#     engine has it, else one made by debootstrap from Debian's archive
#     (e2e/images.sh: dotproxy-test/debian:bookworm, about 1 to 5 minutes;
#     needs root and debootstrap);
#   - golang:1.26 for the Dockerfile's build stage, if the engine has none:
#     that Debian plus this machine's Go toolchain (e2e/images.sh);
#   - the stack's three images, built by Compose (`up --build`: the layer
#     cache makes an unchanged rebuild take seconds).
# The builds fetch Debian packages and Go modules as usual; nothing is pulled
# from a container registry.
#
# Settings: LOCAL_PORT, LOCAL_BIND, LOCAL_RECURSION, LOCAL_STACK,
# LOCAL_DEBIAN_IMAGE (see docker-compose.yml), from the environment or the
# root's .env, as Compose reads them; LOCAL_COMPOSE names the Compose tool
# (default: `docker compose` if the CLI has it, else docker-compose);
# LOCAL_WAIT, the seconds to wait for the first answer (default 120).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=deploy/local/lib.sh
. "$HERE/lib.sh"
# shellcheck source=e2e/images.sh
. "$LOCAL_ROOT/e2e/images.sh"

START=$(date +%s.%N)
elapsed() { awk -v a="$START" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}'; }
die() {
	local_log "$*"
	exit 1
}

docker info >/dev/null 2>&1 || die "no Docker engine answers (docker info failed); start it, or run as a user who may use it"
[ "${#LOCAL_COMPOSE_BIN[@]}" -gt 0 ] ||
	die "no Compose tool: install Debian's docker-compose (apt-get install docker-compose) or the Compose v2 plugin"
if local_homelab_here; then
	die "the homelab stack (graphite, grafana) still runs from the repository root, where it was before it moved to deploy/homelab; Compose would replace its dotproxy. Stop it first: see deploy/homelab/docker-compose.yml"
fi
local_log "using $("${LOCAL_COMPOSE_BIN[@]}" version 2>/dev/null | head -n 1)"

# ---------------------------------------------------------------------------
# Base images, under e2e/images.sh's lock (CI may be making them too).
LOCAL_DEBIAN_IMAGE=$(local_setting LOCAL_DEBIAN_IMAGE "")
if [ -z "$LOCAL_DEBIAN_IMAGE" ] && images_have debian:bookworm-slim; then
	LOCAL_DEBIAN_IMAGE=debian:bookworm-slim
fi
GOLANG_IMAGE=golang:$(images_go_version)
bases() {
	if [ -z "$LOCAL_DEBIAN_IMAGE" ] || ! images_have "$GOLANG_IMAGE"; then
		if ! images_have "$IMAGES_DEBIAN" && [ "$(id -u)" -ne 0 ] && ! ls "$IMAGES_CACHE"/debian-*.tar >/dev/null 2>&1; then
			die "making the Debian base image needs root (debootstrap): run this once with sudo, or give the engine debian:bookworm-slim (docker pull, or docker load)"
		fi
		images_debian
	fi
	if ! images_have "$GOLANG_IMAGE"; then
		# sudo's PATH leaves out Go's usual home.
		command -v go >/dev/null || PATH=$PATH:/usr/local/go/bin
		command -v go >/dev/null ||
			die "making $GOLANG_IMAGE needs this machine's Go ${GOLANG_IMAGE#golang:} on PATH (under sudo: sudo env PATH=\"\$PATH\" $0)"
		images_golang
	fi
}
mkdir -p "$IMAGES_CACHE"
(
	flock -w 1200 9 || die "waited 20 min for $IMAGES_CACHE/lock"
	bases
) 9>"$IMAGES_CACHE/lock"
LOCAL_DEBIAN_IMAGE=${LOCAL_DEBIAN_IMAGE:-$IMAGES_DEBIAN}
export LOCAL_DEBIAN_IMAGE
local_log "base images ready after $(elapsed) s ($LOCAL_DEBIAN_IMAGE, $GOLANG_IMAGE)"

# ---------------------------------------------------------------------------
"${COMPOSE[@]}" up -d --build
local_log "compose up done after $(elapsed) s"

# ---------------------------------------------------------------------------
# The first answer, through the published port when the host has a DNS
# client, else from inside the stack's network (unbound's image has dig).
ADDR=$(docker port "$LOCAL_STACK-dotproxy" 53/udp | head -n 1)
PORT=${ADDR##*:}
HOST=${ADDR%:*}
case $HOST in 0.0.0.0 | '[::]' | '::') HOST=127.0.0.1 ;; esac
QUESTION=(hello.dotproxy.test TXT)
if command -v dig >/dev/null; then
	ASK=(dig @"$HOST" -p "$PORT" +time=2 +tries=1 +short "${QUESTION[@]}")
	SHOW="dig @$HOST -p $PORT ${QUESTION[*]}"
elif command -v kdig >/dev/null; then
	ASK=(kdig @"$HOST" -p "$PORT" +time=2 +retry=0 +short "${QUESTION[@]}")
	SHOW="kdig @$HOST -p $PORT ${QUESTION[*]}"
else
	ASK=(docker exec "$LOCAL_STACK-unbound" dig @dotproxy +time=2 +tries=1 +short "${QUESTION[@]}")
	SHOW="docker exec $LOCAL_STACK-unbound dig @dotproxy ${QUESTION[*]}   (no dig on this host)"
fi
END=$((SECONDS + ${LOCAL_WAIT:-120}))
ANSWER=
while ((SECONDS < END)); do
	ANSWER=$("${ASK[@]}" 2>/dev/null || true)
	case $ANSWER in *dotproxy*) break ;; esac
	ANSWER=
	sleep 0.2
done
if [ -z "$ANSWER" ]; then
	"${COMPOSE[@]}" ps >&2 || true
	"${COMPOSE[@]}" logs --tail 20 >&2 || true
	die "no answer to '${ASK[*]}' within ${LOCAL_WAIT:-120} s (the logs above say why); deploy/local/down.sh removes the stack"
fi

LOGS="${LOCAL_COMPOSE_BIN[*]} logs -f"
cat <<EOF

$LOCAL_STACK is up: first answer $(elapsed) s after this script started.

  \$ $SHOW
  $ANSWER

  $LOGS statsd      # dotproxy's metrics, as statsd lines, as they arrive
  $LOGS unbound     # each query unbound gets from dotproxy over TLS
  $LOGS dotproxy    # dotproxy's own log
  deploy/local/down.sh               # removes the stack (--images: its images too)

(Compose commands in $LOCAL_ROOT, the repository root.)
EOF
