#!/usr/bin/env bash
# images.sh: every image the container tests need, made on a machine whose
# Docker engine starts empty and can pull nothing (no registry is reachable,
# only Debian's archive and the Go module proxy).
#
#   bash e2e/images.sh                   # the base images below, skipping those present
#   bash e2e/images.sh dotproxy TAG      # also build the repository's Dockerfile as TAG
#   . e2e/images.sh                      # in another script: the functions below
#
# Made here, each only when its tag is missing (so a second run does nothing):
#
#   dotproxy-test/debian:bookworm   Debian 12 minbase from debootstrap, imported
#                                   with `docker import`. The root file system is
#                                   kept as a tarball in $IMAGES_CACHE (default
#                                   ~/.cache/dotproxy-images) so a later run on
#                                   the same machine skips debootstrap; nothing
#                                   relies on that cache being there.
#   golang:GO_VERSION               what the Dockerfile's build stage names
#                                   (golang:${GO_VERSION}, the ARG's default):
#                                   the Debian image plus this machine's Go
#                                   toolchain (/usr/local/go), with the official
#                                   image's GOPATH, PATH and GOTOOLCHAIN=local.
#                                   A golang tag that was not made here (a real,
#                                   pulled one) is left alone.
#   dotproxy-test/unbound:bookworm  Debian's unbound, the DoT upstream.
#   dotproxy-test/statsd:bookworm   a statsd receiver stand-in (socat) that
#                                   prints every datagram it gets on 8125/udp.
#
# The build stage downloads modules from the Go module proxy, exactly as it
# does on GitHub. Where the host reaches it through a TLS-intercepting egress
# proxy, the host's CA bundle holds CAs that Debian's does not; those (and
# only those) are put in the golang image under /usr/local/share/dotproxy-build-ca
# and named by SSL_CERT_DIR there, so `go mod download` trusts what the host
# trusts while the bundle the final image copies,
# /etc/ssl/certs/ca-certificates.crt, stays Debian's own.
#
# BuildKit without buildx: the Docker CLI at /usr/local/bin (28.x) needs the
# buildx plugin for BuildKit, which is not installed; Debian's docker.io
# client (/usr/bin/docker, the engine's own release, 20.10) has BuildKit built
# in and talks to the engine's BuildKit directly. Its Dockerfile frontend
# (1.2) has RUN --mount and $BUILDPLATFORM, so the Dockerfile needs no
# `# syntax=` line (which would pull a frontend image). Set IMAGES_BUILD to
# another build command (e.g. "docker buildx build --load") to use that.
#
# Needs root (debootstrap), docker, go, awk, flock.

IMAGES_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
IMAGES_CACHE=${IMAGES_CACHE:-$HOME/.cache/dotproxy-images}
IMAGES_SUITE=bookworm
IMAGES_DEBIAN=dotproxy-test/debian:$IMAGES_SUITE
IMAGES_UNBOUND=dotproxy-test/unbound:$IMAGES_SUITE
IMAGES_STATSD=dotproxy-test/statsd:$IMAGES_SUITE
# Packages in the base root file system: ca-certificates is what the
# Dockerfile copies out of the build stage.
IMAGES_INCLUDE=ca-certificates
# Label on the images made here, so that they are never confused with real ones.
IMAGES_LABEL=org.dotproxy.test.made-by=e2e/images.sh

images_log() { printf '    images: %s\n' "$*" >&2; }

images_build() {
	if [ -n "${IMAGES_BUILD:-}" ]; then
		# shellcheck disable=SC2086 # a command line on purpose
		$IMAGES_BUILD "$@"
	elif [ -x /usr/bin/docker ]; then
		DOCKER_BUILDKIT=1 /usr/bin/docker build "$@"
	else
		DOCKER_BUILDKIT=1 docker build "$@"
	fi
}

images_have() { docker image inspect "$1" >/dev/null 2>&1; }

# images_go_version: the Dockerfile's default GO_VERSION (ARG GO_VERSION=1.26).
images_go_version() {
	sed -n 's/^ARG GO_VERSION=\([0-9.]*\)$/\1/p' "$IMAGES_ROOT/Dockerfile" | head -n 1
}

# images_mirror: the Debian mirror this machine's apt uses; empty when none
# is found, and debootstrap then uses its own default.
images_mirror() {
	grep -hsE '^(URIs:|deb) ' /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list 2>/dev/null |
		grep -oE 'https?://[^ ]*/debian/?( |$)' | grep -v security | head -n 1 | tr -d ' '
}

# images_rootfs_tar: prints the path of a tarball of the minbase root file
# system, making it with debootstrap when the cache lacks it.
images_rootfs_tar() {
	local key tar dir mirror start
	key=$(printf '%s %s' "$IMAGES_SUITE" "$IMAGES_INCLUDE" | sha256sum | cut -c1-12)
	tar="$IMAGES_CACHE/debian-$IMAGES_SUITE-minbase-$key.tar"
	if [ -s "$tar" ]; then
		echo "$tar"
		return 0
	fi
	command -v debootstrap >/dev/null || {
		echo "images.sh: debootstrap is not installed (apt-get install debootstrap)" >&2
		return 1
	}
	mirror=$(images_mirror)
	dir=$(mktemp -d "${TMPDIR:-/tmp}/dotproxy-rootfs.XXXXXX")
	start=$SECONDS
	images_log "debootstrap --variant=minbase $IMAGES_SUITE from ${mirror:-the default mirror of debootstrap}"
	if ! debootstrap --variant=minbase --include="$IMAGES_INCLUDE" "$IMAGES_SUITE" "$dir" ${mirror:+"$mirror"} >"$dir.log" 2>&1; then
		tail -n 20 "$dir.log" >&2
		rm -rf "$dir" "$dir.log"
		return 1
	fi
	rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/*
	tar -C "$dir" --numeric-owner -cf "$tar.tmp" . && mv "$tar.tmp" "$tar"
	rm -rf "$dir" "$dir.log"
	images_log "root file system made in $((SECONDS - start)) s: $tar"
	echo "$tar"
}

images_debian() {
	local tar
	images_have "$IMAGES_DEBIAN" && return 0
	tar=$(images_rootfs_tar) || return 1
	docker import \
		--change "LABEL $IMAGES_LABEL" \
		--change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
		--change 'CMD ["bash"]' \
		"$tar" "$IMAGES_DEBIAN" >/dev/null || return 1
	images_log "imported $IMAGES_DEBIAN"
}

# images_pem_blocks FILE: one line per certificate in a PEM bundle ('|' for
# the newlines), for comparing bundles.
images_pem_blocks() {
	awk '/-----BEGIN CERTIFICATE-----/{b=""} {b=b $0 "|"} /-----END CERTIFICATE-----/{print b}' "$1"
}

images_golang() {
	local ver tag gov ctx debian_bundle
	ver=$(images_go_version)
	[ -n "$ver" ] || {
		echo "images.sh: no 'ARG GO_VERSION=' in the Dockerfile" >&2
		return 1
	}
	tag=golang:$ver
	# A real golang image (pulled, e.g. on GitHub) is used as it is.
	if images_have "$tag" &&
		[ -z "$(docker image inspect --format '{{index .Config.Labels "org.dotproxy.test.made-by"}}' "$tag")" ]; then
		return 0
	fi
	gov=$(go env GOVERSION)
	case $gov in
	go"$ver" | go"$ver".*) ;;
	*)
		echo "images.sh: the Dockerfile wants Go $ver, this machine has $gov" >&2
		return 1
		;;
	esac
	if images_have "$tag"; then
		if [ "$(docker image inspect --format '{{index .Config.Labels "org.dotproxy.test.go"}}' "$tag")" = "$gov" ]; then
			return 0
		fi
		images_log "$tag was made with another Go; remaking it with $gov"
	fi
	images_debian || return 1
	ctx=$(mktemp -d "${TMPDIR:-/tmp}/dotproxy-golang.XXXXXX")
	mkdir -p "$ctx/ca"
	# The CAs the host trusts beyond Debian's bundle (an egress proxy's).
	debian_bundle="$ctx/debian-bundle.pem"
	docker run --rm --name "dotproxy-images-$$-$RANDOM" --network none "$IMAGES_DEBIAN" \
		cat /etc/ssl/certs/ca-certificates.crt >"$debian_bundle" || {
		rm -rf "$ctx"
		return 1
	}
	if [ -r /etc/ssl/certs/ca-certificates.crt ]; then
		comm -23 <(images_pem_blocks /etc/ssl/certs/ca-certificates.crt | sort -u) \
			<(images_pem_blocks "$debian_bundle" | sort -u) | tr '|' '\n' >"$ctx/ca/host-extra.pem"
	fi
	rm -f "$debian_bundle"
	local cert_env=""
	if [ -s "$ctx/ca/host-extra.pem" ]; then
		images_log "the host trusts $(grep -c 'BEGIN CERTIFICATE' "$ctx/ca/host-extra.pem") CA(s) beyond Debian's; the build stage trusts them too (SSL_CERT_DIR)"
		cert_env="ENV SSL_CERT_DIR=/etc/ssl/certs:/usr/local/share/dotproxy-build-ca"
	fi
	cat >"$ctx/Dockerfile" <<EOF
FROM $IMAGES_DEBIAN
COPY go /usr/local/go
COPY ca /usr/local/share/dotproxy-build-ca
ENV GOLANG_VERSION=${gov#go} GOTOOLCHAIN=local GOPATH=/go \\
    PATH=/go/bin:/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
$cert_env
LABEL $IMAGES_LABEL org.dotproxy.test.go=$gov
WORKDIR /go
EOF
	# The context is a tar stream: the Dockerfile and the CAs from $ctx,
	# the toolchain straight from $(go env GOROOT).
	tar -c -C "$ctx" Dockerfile ca -C "$(go env GOROOT)/.." "$(basename "$(go env GOROOT)")" --transform "s,^$(basename "$(go env GOROOT)"),go," |
		images_build -q -t "$tag" - >/dev/null
	local rc=$?
	rm -rf "$ctx"
	[ "$rc" -eq 0 ] && images_log "built $tag ($gov)"
	return "$rc"
}

# images_apt TAG PACKAGES DOCKERFILE-TAIL: an image FROM the Debian one with
# PACKAGES installed by apt-get (from Debian's archive, over the build
# container's network).
images_apt() {
	local tag=$1 pkgs=$2 tail=$3
	images_have "$tag" && return 0
	images_debian || return 1
	images_build -q -t "$tag" - >/dev/null <<EOF
FROM $IMAGES_DEBIAN
RUN apt-get update -q \\
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $pkgs \\
 && rm -rf /var/lib/apt/lists/*
LABEL $IMAGES_LABEL
$tail
EOF
	local rc=$?
	[ "$rc" -eq 0 ] && images_log "built $tag ($pkgs)"
	return "$rc"
}

images_unbound() {
	# The test mounts its configuration and certificates at /etc/dot.
	images_apt "$IMAGES_UNBOUND" "unbound" \
		'ENTRYPOINT ["unbound", "-d", "-c", "/etc/dot/unbound.conf"]'
}

images_statsd() {
	# One datagram per fork, each printed with a trailing newline, so that
	# `docker logs` shows one statsd line per line.
	images_apt "$IMAGES_STATSD" "socat" \
		'EXPOSE 8125/udp
ENTRYPOINT ["socat", "-u", "UDP4-RECVFROM:8125,fork", "SYSTEM:cat; echo"]'
}

# images_all: every base image, under a lock so that two runs on one engine
# do not build the same tag at once.
images_all() {
	local start=$SECONDS
	mkdir -p "$IMAGES_CACHE"
	(
		flock -w 1200 9 || {
			echo "images.sh: waited 20 min for $IMAGES_CACHE/lock" >&2
			exit 1
		}
		images_debian && images_golang && images_unbound && images_statsd
	) 9>"$IMAGES_CACHE/lock" || return 1
	images_log "base images ready in $((SECONDS - start)) s"
}

# images_dotproxy TAG [docker build flags]: the repository's own Dockerfile,
# built as TAG with the version, revision and date stamped as release.yml does.
# The context is the repository (IMAGES_CONTEXT names another copy of it).
images_dotproxy() {
	local tag=$1
	shift
	local version revision created
	version=$(git -C "$IMAGES_ROOT" describe --tags --always 2>/dev/null || echo dev)
	revision=$(git -C "$IMAGES_ROOT" rev-parse HEAD 2>/dev/null || echo unknown)
	created=$(date -u +%Y-%m-%dT%H:%M:%SZ)
	images_build --build-arg VERSION="$version" --build-arg REVISION="$revision" \
		--build-arg CREATED="$created" -t "$tag" "$@" "${IMAGES_CONTEXT:-$IMAGES_ROOT}"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
	set -euo pipefail
	case ${1:-all} in
	all) images_all ;;
	dotproxy)
		[ -n "${2:-}" ] || {
			echo "usage: images.sh dotproxy TAG" >&2
			exit 2
		}
		images_all
		images_dotproxy "$2"
		;;
	*)
		echo "usage: images.sh [all | dotproxy TAG]" >&2
		exit 2
		;;
	esac
fi
