#!/usr/bin/env bash
# Fetch (from the Go module proxy, with `go install`) and run Prometheus' promtool, the checker
# for metrics exposition, alerting rules and rule unit tests (deploy/prometheus/). Cached like
# Kafka's jars: built once per version under $FAULTLINE_CACHE, so CI pays the build once per
# machine (about 5 minutes on 2 cores; 1.6 GB of Go module and build cache on the way).
#
#   scripts/promtool.sh path            build if needed, print the binary's path
#   scripts/promtool.sh ARGS...         build if needed, run `promtool ARGS...`
#
# Environment (all optional):
#   PROMTOOL_VERSION   module version of github.com/prometheus/prometheus (default v0.316.0,
#                      which is Prometheus 3.x; promtool's rule format is stable across them)
#   FAULTLINE_CACHE    cache root (default ~/.cache/faultline) -> promtool-<version>/promtool
#   PROMTOOL           use this promtool binary instead (no build)
set -euo pipefail

PROMTOOL_VERSION=${PROMTOOL_VERSION:-v0.316.0}
CACHE_ROOT=${FAULTLINE_CACHE:-${HOME:-/tmp}/.cache/faultline}
DIR=$CACHE_ROOT/promtool-$PROMTOOL_VERSION
BIN=${PROMTOOL:-$DIR/promtool}

if [[ ! -x $BIN ]]; then
    command -v go >/dev/null || { echo "promtool.sh: needs Go (go install) to build promtool" >&2; exit 2; }
    mkdir -p "$DIR"
    # One build at a time (.ci/run starts one in the background): a second caller waits for
    # the first and then finds the binary.
    exec 8>"$DIR.lock"
    flock 8
fi
if [[ ! -x $BIN ]]; then
    echo "promtool.sh: building promtool $PROMTOOL_VERSION into $DIR (once; a few minutes)" >&2
    # Built into a temporary directory and moved, so a build cut short never leaves a
    # half-written binary that later runs would take for the real one.
    tmp=$(mktemp -d "$DIR/build.XXXXXX")
    trap 'rm -rf "$tmp"' EXIT
    GOBIN=$tmp GOFLAGS=-mod=mod nice -n 10 go install \
        "github.com/prometheus/prometheus/cmd/promtool@$PROMTOOL_VERSION"
    mv "$tmp/promtool" "$DIR/promtool"
    # Removed here, not only by the trap: `exec` below skips EXIT traps.
    rm -rf "$tmp"
    trap - EXIT
fi
exec 8>&-

if [[ ${1:-} == path ]]; then
    echo "$BIN"
else
    exec "$BIN" "$@"
fi
