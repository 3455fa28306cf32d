#!/usr/bin/env bash
# A real Prometheus Alertmanager for faultline development and CI: no Docker, no tarball.
#
#   scripts/alertmanager.sh start    # build (once, cached), start in background, wait until ready
#   scripts/alertmanager.sh stop     # SIGTERM, bounded wait, then SIGKILL
#   scripts/alertmanager.sh status   # exit 0 if running and answering HTTP, else 1
#   scripts/alertmanager.sh restart  # stop + start (silences kept; alerts live in memory only)
#   scripts/alertmanager.sh env      # print `export FAULTLINE_ALERTMANAGER…=` lines for the tests
#   scripts/alertmanager.sh bin      # build if needed and print the binary's path
#
# The binary is built from its Go module with
#   GOBIN=<cache> go install github.com/prometheus/alertmanager/cmd/alertmanager@v<version>
# once per version (v0.32 and later do not build from the module: their web UI assets are
# not in it). Clustering is off (--cluster.listen-address=), so no second port is taken.
#
# Environment (all optional):
#   ALERTMANAGER_PORT=9193        HTTP port on 127.0.0.1 (9093, Alertmanager's own default,
#                                 is the Kafka controller's port in scripts/kafka.sh)
#   ALERTMANAGER_VERSION=0.31.1   version to build
#   ALERTMANAGER_START_TIMEOUT=30 seconds to wait until it answers
#   ALERTMANAGER_STOP_TIMEOUT=15  seconds to wait after SIGTERM before SIGKILL
#   FAULTLINE_RUN=<repo>/target/servers  run root: <run>/alertmanager/{data,alertmanager.yml,log}
#   ALERTMANAGER_CACHE=<run>/cache       binary cache: <cache>/alertmanager-v<version>/alertmanager
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$SCRIPT_DIR/.." && pwd)"

VERSION="${ALERTMANAGER_VERSION:-0.31.1}"
PORT="${ALERTMANAGER_PORT:-9193}"
START_TIMEOUT="${ALERTMANAGER_START_TIMEOUT:-30}"
STOP_TIMEOUT="${ALERTMANAGER_STOP_TIMEOUT:-15}"

abspath() { case "$1" in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }

RUN_ROOT="$(abspath "${FAULTLINE_RUN:-$REPO_DIR/target/servers}")"
CACHE_ROOT="$(abspath "${ALERTMANAGER_CACHE:-$RUN_ROOT/cache}")"
BIN_DIR="$CACHE_ROOT/alertmanager-v$VERSION"
BIN="$BIN_DIR/alertmanager"
HOME_DIR="$RUN_ROOT/alertmanager"
DATA_DIR="$HOME_DIR/data"
CONF="$HOME_DIR/alertmanager.yml"
PID_FILE="$HOME_DIR/alertmanager.pid"
LOG_FILE="$HOME_DIR/alertmanager.log"
URL="http://127.0.0.1:$PORT"

say() { echo "alertmanager: $*"; }
die() { echo "alertmanager: error: $*" >&2; exit 1; }

build() {
  [[ -x "$BIN" ]] && return 0
  command -v go >/dev/null 2>&1 || die "no go toolchain on PATH (scripts/setup installs one; Go >= 1.24)"
  mkdir -p "$CACHE_ROOT"
  # One build at a time (.ci/run starts one in the background): a second
  # caller waits for the first and then finds the binary.
  exec 8>"$CACHE_ROOT/alertmanager-v$VERSION.lock"
  flock 8
  [[ -x "$BIN" ]] && { exec 8>&-; return 0; }
  local tmp="$BIN_DIR.tmp.$$" t0=$SECONDS
  rm -rf "$tmp"; mkdir -p "$tmp"
  say "building Alertmanager v$VERSION with go install into $BIN_DIR (once)"
  # outside the repo, so no go.mod around changes what is built
  if ! (cd / && GOBIN="$tmp" GOFLAGS=-mod=mod go install \
        "github.com/prometheus/alertmanager/cmd/alertmanager@v$VERSION") >"$CACHE_ROOT/alertmanager-build.log" 2>&1; then
    tail -n 30 "$CACHE_ROOT/alertmanager-build.log" >&2
    rm -rf "$tmp"
    die "go install of Alertmanager v$VERSION failed"
  fi
  rm -rf "$BIN_DIR"; mv "$tmp" "$BIN_DIR"
  exec 8>&-
  say "built in $((SECONDS - t0))s"
}

read_pid() {
  [[ -f "$PID_FILE" ]] || return 1
  local p; p="$(cat "$PID_FILE" 2>/dev/null || true)"
  [[ "$p" =~ ^[0-9]+$ ]] || return 1
  echo "$p"
}

alive() {
  kill -0 "$1" 2>/dev/null || return 1
  local st
  st="$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' "/proc/$1/status" 2>/dev/null || true)"
  [[ "$st" != Z && "$st" != X ]]
}

# our server is running: pid alive and its command line names our data directory
is_running() {
  local p; p="$(read_pid)" || return 1
  alive "$p" || return 1
  tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep -F -- "--storage.path=$DATA_DIR " >/dev/null || return 1
  PID="$p"
}

http_ready() {
  [[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 3 "$URL/-/ready" 2>/dev/null || true)" == 200 ]]
}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

with_lock() {
  mkdir -p "$HOME_DIR"
  if command -v flock >/dev/null 2>&1; then
    exec 9>"$HOME_DIR/.lock"
    flock -w 300 9 || die "another alertmanager.sh holds $HOME_DIR/.lock"
  fi
}

write_config() {
  mkdir -p "$DATA_DIR"
  # Alerts are grouped per service and alert name; the receiver sends nowhere:
  # the tests read what Alertmanager holds through its API.
  cat >"$CONF" <<YAML
# written by scripts/alertmanager.sh at each start: edit the script, not this file
route:
  receiver: 'null'
  group_by: ['alertname', 'service']
  group_wait: 1s
  group_interval: 5s
  repeat_interval: 1h
receivers:
  - name: 'null'
YAML
}

do_stop() {
  if ! is_running; then
    rm -f "$PID_FILE"
    say "not running"
    return 0
  fi
  local p="$PID" t0=$SECONDS
  kill -TERM "$p" 2>/dev/null || true
  while alive "$p" && ((SECONDS - t0 < STOP_TIMEOUT)); do sleep 0.1; done
  if alive "$p"; then
    say "pid $p still alive after ${STOP_TIMEOUT}s, sending SIGKILL"
    kill -KILL "$p" 2>/dev/null || true
  fi
  rm -f "$PID_FILE"
  say "stopped (pid $p)"
}

do_start() {
  if is_running && http_ready; then
    say "already running (pid $PID) on $URL"
    return 0
  fi
  port_busy "$PORT" && die "port $PORT on 127.0.0.1 is taken by another process (set ALERTMANAGER_PORT)"
  build
  write_config
  [[ -s "$LOG_FILE" ]] && mv -f "$LOG_FILE" "$LOG_FILE.1"
  (
    exec 9>&-
    exec setsid "$BIN" --config.file="$CONF" --storage.path="$DATA_DIR" \
      --web.listen-address="127.0.0.1:$PORT" --cluster.listen-address= \
      </dev/null >>"$LOG_FILE" 2>&1
  ) &
  local pid=$!
  echo "$pid" >"$PID_FILE"
  local t0=$SECONDS
  until http_ready; do
    if ! alive "$pid"; then
      rm -f "$PID_FILE"; tail -n 30 "$LOG_FILE" >&2 || true
      die "Alertmanager exited during startup"
    fi
    if ((SECONDS - t0 >= START_TIMEOUT)); then
      tail -n 30 "$LOG_FILE" >&2 || true
      do_stop >&2 || true
      die "not ready after ${START_TIMEOUT}s"
    fi
    sleep 0.2
  done
  say "ready on $URL (pid $pid, v$VERSION)"
}

do_status() {
  if is_running && http_ready; then
    say "running (pid $PID) on $URL"
    return 0
  fi
  say "not running"
  return 1
}

case "${1:-}" in
  start)   with_lock; do_start ;;
  stop)    with_lock; do_stop ;;
  restart) with_lock; do_stop; do_start ;;
  status)  do_status ;;
  bin)     build >&2; echo "$BIN" ;;
  env)     printf 'export FAULTLINE_ALERTMANAGER=%q\n' "$URL"
           printf 'export FAULTLINE_ALERTMANAGER_BIN=%q\n' "$BIN" ;;
  *) echo "usage: $0 start|stop|status|restart|env|bin" >&2; exit 2 ;;
esac
