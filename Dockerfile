# syntax=docker/dockerfile:1
#
# ldreaper's container image: a static binary on distroless/static (CA
# certificates and time zone data, no shell), running as uid 65532 and
# writing nothing to disk, so it works with readOnlyRootFilesystem.
#
#   docker build --build-arg VERSION=1.2.3 -t ldreaper:1.2.3 .
#   docker buildx build --platform linux/amd64,linux/arm64 --build-arg VERSION=1.2.3 -t REGISTRY/ldreaper:1.2.3 --push .

ARG GO_VERSION=1.26

# The build runs on the build machine's platform and cross-compiles, which
# needs no emulation because nothing uses cgo.
FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG VERSION=dev
ARG TARGETOS
ARG TARGETARCH
# scripts/build-static.sh holds the flags (CGO_ENABLED=0, -trimpath,
# -X main.version); cmd/ldreaper/image_test.go builds with the same script.
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    GOOS=$TARGETOS GOARCH=$TARGETARCH scripts/build-static.sh /out/ldreaper "$VERSION"

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/ldreaper /ldreaper
# The nonroot user of distroless, by number so that runAsNonRoot can verify it.
USER 65532:65532
# Where the manifests in deploy/ mount the config; --config overrides it.
ENV LDREAPER_CONFIG=/etc/ldreaper/ldreaper.toml
# [http] listen: /livez, /readyz, /metrics, /status.
EXPOSE 9090
ENTRYPOINT ["/ldreaper"]
