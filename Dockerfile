#
# dotproxy container image: one static binary and the CA bundle, nothing else.
#
#   docker build --build-arg VERSION=$(git describe --tags --always) -t dotproxy .
#   docker buildx build --platform linux/amd64,linux/arm64,linux/arm/v7 -t dotproxy .
#
# Any builder reads it: BuildKit (buildx, or DOCKER_BUILDKIT=1 with a CLI that
# has it) and the legacy builder (a Docker 23+ CLI without the buildx plugin
# falls back to it; docker-compose 1.29 uses it). So it has no `# syntax=`
# line and no RUN --mount, which the legacy builder rejects, and the build
# stage's platform falls back to the host's where the legacy builder leaves
# $BUILDPLATFORM empty (an empty --platform is its `"" is an invalid
# component` error). Modules are a layer of their own, so only a change to
# go.mod or go.sum downloads them again. A build pulls nothing but the golang
# base image, and works where no registry is reachable once that image is
# there (e2e/images.sh makes it).
#
# Port 53 as a non-root user: Docker (20.10 and later) sets
# net.ipv4.ip_unprivileged_port_start=0 inside every container's network
# namespace, so UID 65532 may bind :53 with no capability at all. The binary
# deliberately carries no file capability (setcap): a file capability makes
# execve fail outright when the runtime drops CAP_NET_BIND_SERVICE from the
# bounding set (cap_drop: ALL, Kubernetes' restricted profile), whereas the
# sysctl needs nothing from the binary. Kubernetes, Fargate and host networking
# do not always set that sysctl; docs/deploy.md says what to set there.
#
# e2e/docker.sh builds this file and runs the image as the README does;
# e2e/static.sh builds the binary with the same command as the build stage
# below and runs it in an empty root holding only itself and the CA bundle.

ARG GO_VERSION=1.26

# BuildKit sets BUILDPLATFORM (e.g. linux/amd64) and TARGET*, so the stage
# runs natively and cross-compiles; the legacy builder sets none of them, and
# "linux" alone means linux on the host's architecture, where the empty
# GOOS/GOARCH below build for the host too.
FROM --platform=${BUILDPLATFORM:-linux} golang:${GO_VERSION} AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# One ARG instruction: the legacy builder commits a layer for each.
ARG TARGETOS TARGETARCH TARGETVARIANT VERSION=dev
# GOARM comes from the variant (linux/arm/v7 -> 7); it is ignored elsewhere.
# The build cache is emptied in the same step: no later build can use it
# from a layer, and committing it (over 100 MB) made the legacy builder
# slower by half.
RUN CGO_ENABLED=0 GOOS="$TARGETOS" GOARCH="$TARGETARCH" GOARM="${TARGETVARIANT#v}" \
    go build -trimpath -ldflags="-s -w -X main.version=${VERSION}" -o /out/dotproxy . \
 && go clean -cache

FROM scratch
ARG VERSION=dev
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="dotproxy" \
      org.opencontainers.image.description="Plain DNS in, multiplexed DNS-over-TLS out: an edge proxy for private networks" \
      org.opencontainers.image.source="https://github.com/dotproxy/dotproxy" \
      org.opencontainers.image.url="https://github.com/dotproxy/dotproxy" \
      org.opencontainers.image.documentation="https://github.com/dotproxy/dotproxy/blob/main/docs/deploy.md" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.base.name="scratch"
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/dotproxy /dotproxy
USER 65532:65532
EXPOSE 53/udp 53/tcp
# The health check sends one query to the local listener (DOTPROXY_LISTEN) and
# exits 0 or 1; the image has no shell, so it is the binary's own subcommand.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["/dotproxy", "healthcheck"]
ENTRYPOINT ["/dotproxy"]
