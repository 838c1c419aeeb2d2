#!/usr/bin/env bash
# docker.sh: the container image, built from the repository's own Dockerfile
# and run the way the README's `docker run` line runs it, on a Docker engine
# that can pull nothing (e2e/images.sh makes every base image first).
#
#   bash e2e/docker.sh            # as root, with the engine running
#   DOCKER_MULTIARCH=0 bash e2e/docker.sh   # skip the arm64 and arm/v7 builds
#
# The DoT upstream is Debian's unbound in a container on a network this
# script creates; dotproxy runs with only -e DOTPROXY_* settings and -p to
# high ports on 127.0.0.1, plus the two things the test itself needs: the
# network (--network, to reach that upstream) and its private CA
# (-v ...:ro with DOTPROXY_TLS_CA_FILE), as a user of a private resolver
# would pass them. kdig on the host is the client. Every container and the
# network are named dotproxy-ci-<run>-* and removed at exit, also on failure.
#
# While the image is built, a marker secret of this run's own sits in the
# build context as .env (unless there is one already: the user's own is left
# alone, and looked for instead) and as .env.<run>; the image, and the
# Dockerfile's build stage built alone (--target build), must hold neither.
# The markers are removed once those are built, and at exit whatever happens.
#
# Needs: docker, kdig, openssl, jq, file, and what e2e/images.sh needs.
# Ends with "N passed, N failed"; prints "figure:" lines with what it measured.
set -euo pipefail

E2E_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=e2e/docker-lib.sh
. "$E2E_ROOT/e2e/docker-lib.sh"

e2e_require docker.sh root docker kdig openssl jq file go debootstrap

WORK=$(mktemp -d "${TMPDIR:-/tmp}/dotproxy-docker.XXXXXX")
chmod 0755 "$WORK"
NET=$(dk_name net)
UP=$(dk_name upstream)
DP=$(dk_name dotproxy)
HARD=$(dk_name hardened)
REF=$(dk_name refused)
BAD=$(dk_name badsetting)
CONTEXT=${IMAGES_CONTEXT:-$IMAGES_ROOT}
SECRET=dotproxy-ci-secret-$DK_RUN-$RANDOM
secret_files=() # the markers this run wrote; nothing else is ever removed
# remove_secrets: removes the marker files, by name. Safe to call twice.
remove_secrets() {
	local f
	for f in "${secret_files[@]}"; do rm -f -- "$f"; done
	secret_files=()
}
on_exit() {
	local rc=$?
	remove_secrets
	if [ "$e2e_fail" -gt 0 ] || [ "$rc" -ne 0 ]; then dk_dump "$UP" "$DP" "$HARD" "$REF"; fi
	dk_cleanup
	rm -rf "$WORK"
	exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------------------
e2e_section "image: docker build of the repository's Dockerfile"
# Secrets go in .env next to the compose file (docs/deploy.md); a marker
# stands for them in the build context.
for f in "$CONTEXT/.env" "$CONTEXT/.env.$DK_PREFIX"; do
	[ -e "$f" ] && continue # the user's own: never written, never removed
	secret_files+=("$f")
	printf 'DD_API_KEY=%s\nGRAFANA_ADMIN_PASSWORD=%s\n' "$SECRET" "$SECRET" >"$f"
done
e2e_log "marker secret in the build context: ${secret_files[*]:-none (.env files there already)}"
built() { dk_image; }
e2e_check "base images made (e2e/images.sh) and the Dockerfile builds" built
if [ -z "$DK_IMAGE" ] || ! images_have "$DK_IMAGE"; then
	e2e_summary
	exit 1
fi
figure "image build (base images present, BuildKit caches warm or cold as found): ${DK_BUILD_SECONDS} s"
SIZE=$(docker image inspect --format '{{.Size}}' "$DK_IMAGE")
figure "image size: $SIZE bytes ($(awk -v s="$SIZE" 'BEGIN{printf "%.2f", s/1048576}') MiB)"
size_small() { [ "$SIZE" -lt $((15 * 1024 * 1024)) ]; }
e2e_check "image is a few MiB (under 15 MiB)" size_small

# The files in the image, from its layers: exactly the binary and the bundle.
mkdir -p "$WORK/save"
docker save "$DK_IMAGE" | tar -x -C "$WORK/save"
image_files() {
	local l
	for l in $(jq -r '.[0].Layers[]' "$WORK/save/manifest.json"); do
		tar -tf "$WORK/save/$l"
	done | grep -v '/$' | sort
}
only_binary_and_bundle() {
	local files
	files=$(image_files | tr '\n' ' ')
	e2e_log "files in the image: $files"
	[ "$files" = "dotproxy etc/ssl/certs/ca-certificates.crt " ]
}
e2e_check "FROM scratch: the image holds /dotproxy and the CA bundle, nothing else" only_binary_and_bundle
no_secret_in_image() {
	if [ -n "${DOTPROXY_IMAGE:-}" ]; then
		e2e_log "DOTPROXY_IMAGE was built elsewhere, without the marker; only the build stage below is checked"
		return 0
	fi
	if grep -rlF "$SECRET" "$WORK/save"; then
		e2e_log "the marker secret from .env is in the image's layers (above)"
		return 1
	fi
}
e2e_check "a .env in the build context does not reach the image" no_secret_in_image
# The build stage copies the whole context (COPY . .); built alone it is an
# image of its own, which must not hold .env either.
build_stage_clean() {
	local tag name entries
	tag=$(dk_name build-stage):ci
	name=$(dk_name build-stage)
	dk_images+=("$tag")
	images_dotproxy "$tag" -q --target build >/dev/null || return 1
	dk_track_container "$name"
	docker create --name "$name" "$tag" >/dev/null || return 1
	docker cp "$name:/src" - >"$WORK/build-src.tar" || return 1
	entries=$(tar -tf "$WORK/build-src.tar") || return 1
	e2e_log "$(grep -c . <<<"$entries") entries under /src; .env files: $(grep -E '(^|/)\.env' <<<"$entries" | tr '\n' ' ')"
	if grep -Eq '(^|/)\.env($|[./])' <<<"$entries" || grep -qF "$SECRET" "$WORK/build-src.tar"; then
		return 1
	fi
}
e2e_check "docker build --target build: the build stage holds no .env and no marker secret" build_stage_clean
remove_secrets
mkdir -p "$WORK/out"
CID=$(docker create --name "$(dk_name extract)" "$DK_IMAGE")
dk_track_container "$(dk_name extract)"
docker cp "$CID:/dotproxy" "$WORK/out/dotproxy"
docker cp "$CID:/etc/ssl/certs/ca-certificates.crt" "$WORK/out/bundle.crt"
static_binary() {
	local f
	f=$(file -b "$WORK/out/dotproxy")
	e2e_log "$f"
	grep -q 'statically linked' <<<"$f" && grep -q 'x86-64' <<<"$f"
}
e2e_check "/dotproxy is one static x86-64 binary" static_binary
debian_bundle() {
	docker run --rm --name "$(dk_name bundle)" --network none "$IMAGES_DEBIAN" \
		cat /etc/ssl/certs/ca-certificates.crt >"$WORK/out/debian.crt" &&
		cmp -s "$WORK/out/bundle.crt" "$WORK/out/debian.crt"
}
e2e_check "the CA bundle is Debian's ca-certificates, nothing added" debian_bundle
cfg() { docker image inspect --format "$1" "$DK_IMAGE"; }
runs_as_65532() { [ "$(cfg '{{.Config.User}}')" = 65532:65532 ]; }
entrypoint() { [ "$(cfg '{{json .Config.Entrypoint}}')" = '["/dotproxy"]' ]; }
healthcheck_cmd() {
	[ "$(cfg '{{json .Config.Healthcheck.Test}}')" = '["CMD","/dotproxy","healthcheck"]' ]
}
ports_53() { [ "$(cfg '{{json .Config.ExposedPorts}}')" = '{"53/tcp":{},"53/udp":{}}' ]; }
oci_labels() {
	local l k
	l=$(cfg '{{json .Config.Labels}}')
	for k in title description source url documentation version revision created base.name; do
		jq -e --arg k "org.opencontainers.image.$k" '.[$k] | length > 0' <<<"$l" >/dev/null || {
			e2e_log "missing label org.opencontainers.image.$k"
			return 1
		}
	done
	jq -e --arg v "$(git -C "$E2E_ROOT" describe --tags --always 2>/dev/null || echo dev)" \
		'.["org.opencontainers.image.version"] == $v' <<<"$l" >/dev/null
}
version_stamped() {
	local out
	out=$(docker run --rm --name "$(dk_name version)" --network none "$DK_IMAGE" -version)
	e2e_log "$out"
	[ "$out" = "dotproxy $(git -C "$E2E_ROOT" describe --tags --always 2>/dev/null || echo dev)" ]
}
e2e_check "docker inspect: runs as 65532:65532" runs_as_65532
e2e_check "docker inspect: entry point /dotproxy" entrypoint
e2e_check "docker inspect: health check /dotproxy healthcheck" healthcheck_cmd
e2e_check "docker inspect: exposes 53/udp and 53/tcp" ports_53
e2e_check "docker inspect: OCI labels, version = git describe" oci_labels
e2e_check "-version prints the stamped version" version_stamped

if [ "${DOCKER_MULTIARCH:-1}" = 1 ]; then
	# The release builds these from the same Dockerfile with buildx; here each
	# is built alone (the engine's store holds one platform per tag). The
	# build stage runs on this machine's platform and cross-compiles, so no
	# emulation is needed.
	cross() {
		local platform=$1 want=$2 tag start f
		tag=$DK_IMAGE-${platform//\//-}
		dk_images+=("$tag")
		start=$SECONDS
		images_dotproxy "$tag" -q --platform "$platform" >/dev/null || return 1
		figure "image build for $platform: $((SECONDS - start)) s, $(docker image inspect --format '{{.Size}}' "$tag") bytes"
		[ "$(docker image inspect --format '{{.Os}}/{{.Architecture}}{{with .Variant}}/{{.}}{{end}}' "$tag")" = "$platform" ] || return 1
		docker create --name "$(dk_name "x-${platform//\//-}")" "$tag" >/dev/null
		dk_track_container "$(dk_name "x-${platform//\//-}")"
		docker cp "$(dk_name "x-${platform//\//-}"):/dotproxy" "$WORK/out/dotproxy-${platform//\//-}"
		f=$(file -b "$WORK/out/dotproxy-${platform//\//-}")
		e2e_log "$platform: $f"
		grep -q 'statically linked' <<<"$f" && grep -q "$want" <<<"$f"
	}
	e2e_check "linux/arm64 image from the same Dockerfile: static aarch64 binary" cross linux/arm64 'ARM aarch64'
	e2e_check "linux/arm/v7 image from the same Dockerfile: static 32-bit ARM binary" cross linux/arm/v7 'ARM, EABI5'
fi

# ---------------------------------------------------------------------------
e2e_section "bad settings, as a container user sees them"
bad_upstream() {
	local out rc=0
	out=$(timeout 60 docker run --name "$BAD" -e DOTPROXY_UPSTREAMS=1.1.1.1:99999 "$DK_IMAGE" 2>&1) || rc=$?
	dk_track_container "$BAD"
	e2e_log "exit $rc: $out"
	[ "$rc" -eq 2 ] && [ "$(wc -l <<<"$out")" -eq 1 ] &&
		grep -q '^dotproxy: DOTPROXY_UPSTREAMS="1.1.1.1:99999": ' <<<"$out" &&
		[ "$(docker inspect --format '{{.State.ExitCode}}' "$BAD")" = 2 ]
}
e2e_check "docker run -e DOTPROXY_UPSTREAMS=1.1.1.1:99999 exits 2 with one line naming it" bad_upstream

# ---------------------------------------------------------------------------
e2e_section "upstream: unbound over DoT in a container"
dk_network "$NET"
dk_certs "$WORK" >/dev/null
dk_unbound_dir "$WORK/up" upstream "$WORK"
dk_track_container "$UP"
docker run -d --name "$UP" --network "$NET" -v "$WORK/up:/etc/dot:ro" "$IMAGES_UNBOUND" >/dev/null
UP_IP=$(dk_ip "$UP")
e2e_log "upstream $UP at $UP_IP"
e2e_check "unbound answers DoT on $UP_IP:853" dk_wait_dot "$UP_IP" 853 "$WORK/ca.pem"

# ---------------------------------------------------------------------------
e2e_section "the README's docker run"
PORT=$(e2e_free_port)
# What the README types, with the test's network, CA and loopback ports.
DP_START=$(date +%s.%N)
dk_track_container "$DP"
docker run -d --name "$DP" --restart unless-stopped --network "$NET" \
	-p "127.0.0.1:$PORT:53/udp" -p "127.0.0.1:$PORT:53/tcp" \
	-v "$WORK/ca.pem:/etc/dotproxy/ca.pem:ro" \
	-e DOTPROXY_UPSTREAMS="$UP_IP:853#$E2E_ZONE" \
	-e DOTPROXY_TLS_CA_FILE=/etc/dotproxy/ca.pem \
	"$DK_IMAGE" >/dev/null
e2e_check "dotproxy answers on 127.0.0.1:$PORT" dk_wait_answer "$PORT"
DP_ANSWER_AFTER=$(awk -v a="$DP_START" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')
figure "docker run to first answer: $DP_ANSWER_AFTER s"

a_udp() { [ "$(dk_kdig @127.0.0.1 -p "$PORT" "$E2E_A_NAME" A +short)" = "$E2E_A_ADDR" ]; }
a_tcp() { [ "$(dk_kdig @127.0.0.1 -p "$PORT" +tcp "$E2E_A_NAME" A +short)" = "$E2E_A_ADDR" ]; }
e2e_check "A over UDP" a_udp
e2e_check "A over TCP" a_tcp
tc_udp() {
	local out
	out=$(dk_kdig @127.0.0.1 -p "$PORT" +noedns +notcp +ignore "$E2E_MID_NAME" TXT)
	grep -Eiq '^;; flags:[^;]* tc( |;)' <<<"$out" && grep -q 'status: NOERROR' <<<"$out" &&
		grep -q '^;; From .*(UDP)' <<<"$out"
}
full_tcp() {
	local out size
	out=$(dk_kdig @127.0.0.1 -p "$PORT" +tcp +noedns "$E2E_MID_NAME" TXT)
	size=$(sed -n 's/^;; Received \([0-9]*\) B$/\1/p' <<<"$out")
	e2e_log "over TCP: $size bytes, $(grep -c "^$E2E_MID_NAME.*TXT" <<<"$out") TXT records"
	[ "${size:-0}" -gt 512 ] && [ "$(grep -c "^$E2E_MID_NAME.*TXT" <<<"$out")" -eq "$E2E_MID_COUNT" ]
}
e2e_check "an answer over 512 bytes: TC over UDP without EDNS" tc_udp
e2e_check "the same answer in full over TCP" full_tcp

e2e_check "the health check turns healthy" dk_wait_healthy "$DP" 90
HEALTHY_AFTER=$(awk -v a="$DP_START" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')
figure "docker run to healthy: $HEALTHY_AFTER s (HEALTHCHECK interval $(cfg '{{.Config.Healthcheck.Interval}}'))"

json_logs() {
	local out n
	out=$(docker logs "$DP" 2>&1)
	n=$(grep -c . <<<"$out")
	e2e_log "$n log lines; first: $(head -n 1 <<<"$out" | cut -c1-160)"
	[ "$n" -gt 0 ] && jq -e -R -s 'split("\n") | map(select(length > 0) | fromjson) | length > 0' <<<"$out" >/dev/null &&
		jq -e -R -s 'split("\n") | map(select(length > 0) | fromjson) | any(.msg == "dotproxy started")' <<<"$out" >/dev/null
}
e2e_check "logs are JSON lines (no terminal), starting with 'dotproxy started'" json_logs

# ---------------------------------------------------------------------------
e2e_section "REFUSED for a client outside DOTPROXY_ALLOW"
RPORT=$(e2e_free_port)
dk_track_container "$REF"
# Host clients reach a published port from the network's gateway address;
# this instance allows only TEST-NET-1, so the host's kdig is outside.
docker run -d --name "$REF" --network "$NET" \
	-p "127.0.0.1:$RPORT:53/udp" -p "127.0.0.1:$RPORT:53/tcp" \
	-v "$WORK/ca.pem:/etc/dotproxy/ca.pem:ro" \
	-e DOTPROXY_UPSTREAMS="$UP_IP:853#$E2E_ZONE" \
	-e DOTPROXY_TLS_CA_FILE=/etc/dotproxy/ca.pem \
	-e DOTPROXY_ALLOW=192.0.2.0/24 \
	"$DK_IMAGE" >/dev/null
refused() {
	local end=$((SECONDS + 20)) out
	while ((SECONDS < end)); do
		out=$(dk_kdig @127.0.0.1 -p "$RPORT" +time=1 "$E2E_A_NAME" A)
		if grep -q 'status: ' <<<"$out"; then
			grep -q 'status: REFUSED' <<<"$out"
			return
		fi
		sleep 0.2
	done
	return 1
}
e2e_check "a host client (from $(dk_gateway "$NET")) outside DOTPROXY_ALLOW=192.0.2.0/24 gets REFUSED" refused

# ---------------------------------------------------------------------------
e2e_section "hardened: --read-only --cap-drop ALL --security-opt no-new-privileges"
HPORT=$(e2e_free_port)
dk_track_container "$HARD"
docker run -d --name "$HARD" --network "$NET" \
	--read-only --cap-drop ALL --security-opt no-new-privileges \
	-p "127.0.0.1:$HPORT:53/udp" -p "127.0.0.1:$HPORT:53/tcp" \
	-v "$WORK/ca.pem:/etc/dotproxy/ca.pem:ro" \
	-e DOTPROXY_UPSTREAMS="$UP_IP:853#$E2E_ZONE" \
	-e DOTPROXY_TLS_CA_FILE=/etc/dotproxy/ca.pem \
	"$DK_IMAGE" >/dev/null
hard_answers() {
	dk_wait_answer "$HPORT" &&
		[ "$(dk_kdig @127.0.0.1 -p "$HPORT" +tcp "$E2E_A_NAME" A +short)" = "$E2E_A_ADDR" ]
}
e2e_check "still serves DNS (UDP and TCP) on port 53 inside the container" hard_answers
no_privilege() {
	local pid status
	pid=$(docker inspect --format '{{.State.Pid}}' "$HARD")
	status=$(cat "/proc/$pid/status")
	e2e_log "$(grep -E '^(Uid|CapEff|CapBnd|NoNewPrivs)' <<<"$status" | tr '\t\n' '  ')"
	grep -Eq '^Uid:\s+65532\s+65532\s+65532\s+65532' <<<"$status" &&
		grep -Eq '^CapEff:\s+0000000000000000' <<<"$status" &&
		grep -Eq '^CapBnd:\s+0000000000000000' <<<"$status" &&
		grep -Eq '^NoNewPrivs:\s+1' <<<"$status" &&
		[ "$(docker inspect --format '{{.HostConfig.ReadonlyRootfs}}' "$HARD")" = true ]
}
e2e_check "its process: UID 65532, no capabilities at all, no_new_privs, read-only root" no_privilege
e2e_check "the hardened container turns healthy too" dk_wait_healthy "$HARD" 90

# ---------------------------------------------------------------------------
e2e_section "docker stop"
STOP_START=$(date +%s.%N)
docker stop "$DP" >/dev/null
STOP_SECONDS=$(awk -v a="$STOP_START" -v b="$(date +%s.%N)" 'BEGIN{printf "%.2f", b-a}')
figure "docker stop took $STOP_SECONDS s"
stopped_0() {
	[ "$(docker inspect --format '{{.State.ExitCode}}' "$DP")" = 0 ] &&
		awk -v s="$STOP_SECONDS" 'BEGIN{exit !(s < 4)}'
}
e2e_check "docker stop: exit 0 within the query timeout (4 s)" stopped_0
stop_logged() {
	local tail
	tail=$(docker logs --tail 5 "$DP" 2>&1)
	e2e_log "last lines: $(tr '\n' ' ' <<<"$tail" | cut -c1-400)"
	jq -e -R -s 'split("\n") | map(select(length > 0) | fromjson) | any(.msg | test("shutting down")) ' <<<"$tail" >/dev/null &&
		jq -e -R -s 'split("\n") | map(select(length > 0) | fromjson) | last | .msg == "dotproxy stopped"' <<<"$tail" >/dev/null
}
e2e_check "the JSON logs say it is shutting down, then 'dotproxy stopped'" stop_logged
stop_cause() {
	docker logs --tail 5 "$DP" 2>&1 | grep -Eq 'SIGTERM|terminated'
}
e2e_check "the logs say why it stopped (the signal)" stop_cause

e2e_summary
