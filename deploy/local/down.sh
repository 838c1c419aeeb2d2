#!/usr/bin/env bash
# down.sh: removes what deploy/local/up.sh (or `docker compose up` in the
# repository root) started: the local stack's three containers, its network
# and its tls volume (so the next start makes a new certificate), by the
# names LOCAL_STACK gives them, and nothing else.
#
#   deploy/local/down.sh             # keeps the images, for a quick next start
#   deploy/local/down.sh --images    # removes the stack's three images too
#
# The base images (debian, golang:1.26 made by e2e/images.sh) stay: CI and
# other builds use them; `docker image rm` them by name if you want them gone.
# By name rather than `compose down`, so that it works whatever the compose
# file now says and never touches another stack in the same Compose project.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=deploy/local/lib.sh
. "$HERE/lib.sh"

images=false
case ${1:-} in
'') ;;
--images) images=true ;;
*)
	echo "usage: down.sh [--images]" >&2
	exit 2
	;;
esac

docker info >/dev/null 2>&1 || {
	local_log "no Docker engine answers (docker info failed)"
	exit 1
}

# gone KIND NAME...: removes each that exists, and says so.
gone() {
	local kind=$1 n
	shift
	for n in "$@"; do
		case $kind in
		container) docker container inspect "$n" >/dev/null 2>&1 || continue ;;
		network) docker network inspect "$n" >/dev/null 2>&1 || continue ;;
		volume) docker volume inspect "$n" >/dev/null 2>&1 || continue ;;
		image) docker image inspect "$n" >/dev/null 2>&1 || continue ;;
		esac
		case $kind in
		container) docker rm -f -v "$n" >/dev/null ;;
		network) docker network rm "$n" >/dev/null ;;
		volume) docker volume rm "$n" >/dev/null ;;
		image) docker image rm "$n" >/dev/null ;;
		esac
		local_log "removed $kind $n"
	done
}

# dotproxy first: it stops within a second, answering what is in flight.
docker stop -t 10 "$LOCAL_STACK-dotproxy" >/dev/null 2>&1 || true
gone container "${LOCAL_CONTAINERS[@]}"
gone network "$LOCAL_NETWORK"
gone volume "$LOCAL_VOLUME"
if $images; then
	gone image "${LOCAL_IMAGES[@]}"
fi
local_log "$LOCAL_STACK is down"
