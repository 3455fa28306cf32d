# syntax=docker/dockerfile:1
# faultline's container image: a multi-stage build (docs/deploy.md).
#
#   docker build --build-arg FAULTLINE_COMMIT=$(git rev-parse --short=12 HEAD) -t faultline .
#   docker run --rm -v faultline-state:/var/lib/faultline -p 9464:9464 faultline run
#
# Not built on the project's own machines (no container engine and no
# registry there); kept to the same steps as a manual release build:
# `cargo build --release --locked`, then the binary, patterns/ and a
# default configuration in a slim runtime.

ARG RUST_VERSION=1.95
ARG DEBIAN=trixie

FROM docker.io/library/rust:${RUST_VERSION}-slim-${DEBIAN} AS build
# librdkafka is built from source by the rdkafka crate: cmake, a C++
# compiler and the TLS/SASL/curl headers it links against.
RUN apt-get update \
 && apt-get install -y --no-install-recommends cmake g++ make pkg-config perl \
      libssl-dev libsasl2-dev libcurl4-openssl-dev zlib1g-dev \
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
RUN cargo build --release --locked --bin faultline \
 && install -D target/release/faultline /out/usr/local/bin/faultline \
 && mkdir -p /out/usr/share/faultline /out/etc/faultline \
 && cp -r patterns /out/usr/share/faultline/patterns \
 && /out/usr/local/bin/faultline man > /out/usr/share/faultline/faultline.1 \
 && printf '[fingerprint]\npatterns = ["/usr/share/faultline/patterns"]\n\n[metrics]\n# Reachable from outside the container (the Service, a scraper).\nlisten = "0.0.0.0:9464"\nlog_format = "json"\n' \
      > /out/etc/faultline/faultline.toml

FROM docker.io/library/debian:${DEBIAN}-slim AS runtime
# The shared libraries `ldd faultline` lists beyond libc: OpenSSL, zlib,
# SASL and curl (librdkafka's), and CA certificates for TLS brokers.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libssl3t64 zlib1g libsasl2-2 libcurl4t64 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/faultline --shell /usr/sbin/nologin faultline \
 && install -d -o faultline -g faultline /var/lib/faultline
COPY --from=build /out/ /
USER 10001:10001
ENV FAULTLINE_CONFIG=/etc/faultline/faultline.toml
WORKDIR /var/lib/faultline
VOLUME ["/var/lib/faultline"]
EXPOSE 9464
# `run` finishes its batch, commits offsets and saves state on SIGTERM.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/faultline"]
CMD ["run", "--state", "/var/lib/faultline/state"]
