# syntax=docker/dockerfile:1
# faultline's container image: a multi-stage build (docs/deploy.md).
#
#   docker build --build-arg FAULTLINE_COMMIT=$(git rev-parse --short=12 HEAD) -t faultline .
#   docker run --rm -v faultline-state:/var/lib/faultline -p 9464:9464 faultline run
#
# Its stages are scripts/package and scripts/image, step for step: the
# build stage runs scripts/package (`cargo build --release --locked`, man
# pages, the release tarball), the runtime stage installs
# deploy/container/packages on Debian's slim base and runs
# deploy/container/install-rootfs on the tarball. scripts/image builds the
# same image as an OCI layout without a container engine or a registry
# (mmdebstrap + umoci); tests/package_image.rs checks that one.

ARG RUST_VERSION=1.95
ARG DEBIAN=trixie

FROM docker.io/library/rust:${RUST_VERSION}-slim-${DEBIAN} AS build
# librdkafka is built from source by the rdkafka crate: cmake, a C++
# compiler and the headers of what it links with the crate's features
# (cmake-build, ssl): OpenSSL and zlib. No SASL or curl: `ldd faultline`
# lists neither.
RUN apt-get update \
 && apt-get install -y --no-install-recommends cmake g++ make pkg-config perl \
      libssl-dev zlib1g-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Dependencies first, in their own layer: source edits do not rebuild them.
COPY Cargo.toml Cargo.lock build.rs ./
RUN mkdir src && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
 && cargo fetch --locked
COPY . .
# No .git in the build context: the commit comes in as a build argument.
ARG FAULTLINE_COMMIT=unknown
ENV FAULTLINE_COMMIT=${FAULTLINE_COMMIT}
RUN scripts/package --out /out

FROM docker.io/library/debian:${DEBIAN}-slim AS runtime
# The runtime's packages and the install script are the ones scripts/image
# uses (deploy/container/): the shared libraries `ldd faultline` lists
# beyond libc, then the tarball laid out as /usr/local/bin/faultline,
# /usr/share/faultline/patterns, /etc/faultline/faultline.toml, user 10001
# and its state directory.
RUN --mount=type=bind,source=deploy/container,target=/tmp/container \
    apt-get update \
 && sed 's/#.*//' /tmp/container/packages | xargs apt-get install -y --no-install-recommends \
 && rm -rf /var/lib/apt/lists/*
RUN --mount=type=bind,source=deploy/container,target=/tmp/container \
    --mount=type=bind,from=build,source=/out,target=/tmp/package \
    sh /tmp/container/install-rootfs /tmp/package/faultline-*.tar.gz /
USER 10001:10001
ENV FAULTLINE_CONFIG=/etc/faultline/faultline.toml
WORKDIR /var/lib/faultline
VOLUME ["/var/lib/faultline"]
EXPOSE 9464
# `run` finishes its batch, commits offsets and saves state on SIGTERM.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/faultline"]
CMD ["run", "--state", "/var/lib/faultline/state"]
