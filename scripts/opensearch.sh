#!/usr/bin/env bash
# Local OpenSearch server for faultline development and CI: no Docker, no tarball.
#
#   scripts/opensearch.sh start     # fetch jars (once), start in background, wait until ready
#   scripts/opensearch.sh stop      # SIGTERM, bounded wait, then SIGKILL
#   scripts/opensearch.sh status    # exit 0 if running and answering HTTP, else 1
#   scripts/opensearch.sh restart   # stop + start (data kept)
#
# The server is OpenSearch (default 2.19.6) run as an embedded node from the jars that
# Maven fetches from Maven Central (scripts/opensearch/pom.xml), started by
# scripts/opensearch/Launcher.java. See scripts/opensearch/README.md.
#
# Environment (all optional):
#   OPENSEARCH_PORT=9200            HTTP port (bound to 127.0.0.1 only)
#   OPENSEARCH_TRANSPORT_PORT=9300  transport port (127.0.0.1)
#   OPENSEARCH_FRESH=1              wipe the data directory before starting
#   OPENSEARCH_VERSION=2.19.6       OpenSearch 2.x version to fetch
#   OPENSEARCH_START_TIMEOUT=120    seconds to wait for the node to answer
#   OPENSEARCH_STOP_TIMEOUT=30      seconds to wait after SIGTERM before SIGKILL
#   OPENSEARCH_JAVA_HOME            JDK to use (else JAVA_HOME, else java/javac on PATH); 11..21
#   OPENSEARCH_JAVA_OPTS            extra JVM options, appended last
#   FAULTLINE_CACHE=~/.cache/faultline   jars + compiled launcher (opensearch-<version>/)
#   FAULTLINE_RUN=<repo>/target/servers  node home: <run>/opensearch/{config,data,logs,tmp}
#   OPENSEARCH_PLUGINS=""           plugins to install at start, in order, each a Maven artifact
#                                   of org.opensearch.plugin (e.g. "opensearch-job-scheduler
#                                   opensearch-index-management" for ISM) or a path to a plugin zip;
#                                   see "Plugins" below. Empty: a core node.
#   OPENSEARCH_PLUGIN_VERSION       plugin version (default <OPENSEARCH_VERSION>.0: must match the node)
#   OPENSEARCH_MAVEN_REPO           where plugin zips come from (default https://repo1.maven.org/maven2)
#
# Plugins: OpenSearch publishes plugin zips to Maven Central as
# org.opensearch.plugin:<name>:<version>:zip, for some plugins and versions only
# (on 2026-12-05: opensearch-job-scheduler 2.19.6.0 yes, opensearch-index-management
# no version at all). A zip is fetched once into <cache>/opensearch-<version>/plugins/;
# the node's plugins/ directory is rewritten at each start to hold exactly the listed
# plugins that could be had. A plugin that cannot be fetched, is built for another
# OpenSearch version, or extends one that is missing is left out with a message saying
# which and why, and the node starts without it: CI still works, and the tests that
# need the plugin skip and say so.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$SCRIPT_DIR/.." && pwd)"
SRC_DIR="$SCRIPT_DIR/opensearch"

OS_VERSION="${OPENSEARCH_VERSION:-2.19.6}"
PORT="${OPENSEARCH_PORT:-9200}"
TPORT="${OPENSEARCH_TRANSPORT_PORT:-9300}"
START_TIMEOUT="${OPENSEARCH_START_TIMEOUT:-120}"
STOP_TIMEOUT="${OPENSEARCH_STOP_TIMEOUT:-30}"

abspath() { case "$1" in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }

CACHE_ROOT="$(abspath "${FAULTLINE_CACHE:-${HOME:-/root}/.cache/faultline}")"
DIST_DIR="$CACHE_ROOT/opensearch-$OS_VERSION"
LIBS_DIR="$DIST_DIR/libs"

RUN_ROOT="$(abspath "${FAULTLINE_RUN:-$REPO_DIR/target/servers}")"
NODE_HOME="$RUN_ROOT/opensearch"
CONF_DIR="$NODE_HOME/config"
DATA_DIR="$NODE_HOME/data"
LOGS_DIR="$NODE_HOME/logs"
TMP_DIR="$NODE_HOME/tmp"
PID_FILE="$NODE_HOME/opensearch.pid"
LOG_FILE="$LOGS_DIR/opensearch.log"
URL="http://127.0.0.1:$PORT"

say() { echo "opensearch: $*"; }
die() { echo "opensearch: error: $*" >&2; exit 1; }

# ---------------------------------------------------------------- tools
find_java() {
  local jh="${OPENSEARCH_JAVA_HOME:-${JAVA_HOME:-}}"
  if [[ -n "$jh" && -x "$jh/bin/java" && -x "$jh/bin/javac" ]]; then
    JAVA="$jh/bin/java"; JAVAC="$jh/bin/javac"
  elif command -v java >/dev/null 2>&1 && command -v javac >/dev/null 2>&1; then
    JAVA="$(command -v java)"; JAVAC="$(command -v javac)"
  else
    JAVA=""; JAVAC=""
  fi
}

ensure_tools() {
  find_java
  local missing=()
  [[ -n "$JAVA" ]] || missing+=(openjdk-17-jdk-headless)
  command -v mvn  >/dev/null 2>&1 || missing+=(maven)
  command -v curl >/dev/null 2>&1 || missing+=(curl)
  if ((${#missing[@]})); then
    if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
      say "installing ${missing[*]} with apt-get"
      apt-get update -qq >/dev/null
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
      find_java
    else
      die "missing tools: ${missing[*]} (install a JDK 17, maven and curl)"
    fi
  fi
  [[ -n "$JAVA" ]] || die "no java/javac found"
  JAVA_MAJOR="$("$JAVA" -XshowSettings:properties -version 2>&1 \
    | sed -n 's/^ *java\.specification\.version = \([0-9.]*\).*/\1/p' | head -n1)"
  JAVA_MAJOR="${JAVA_MAJOR#1.}"; JAVA_MAJOR="${JAVA_MAJOR%%.*}"
  if [[ -z "$JAVA_MAJOR" || "$JAVA_MAJOR" -lt 11 || "$JAVA_MAJOR" -gt 21 ]]; then
    say "warning: OpenSearch 2.x is meant for Java 11..21, $JAVA is Java ${JAVA_MAJOR:-?}" >&2
  fi
}

# ---------------------------------------------------------------- jars
pom_key() {
  # the jar set depends on the pom and on the version only
  { cat "$SRC_DIR/pom.xml"; echo "$OS_VERSION"; } | sha256sum | cut -c1-16
}

fetch_libs() {
  local key; key="$(pom_key)"
  if [[ -f "$LIBS_DIR/.complete" && "$(cat "$LIBS_DIR/.complete")" == "$key" ]]; then
    return 0
  fi
  mkdir -p "$DIST_DIR"
  local tmp="$DIST_DIR/libs.tmp.$$"
  rm -rf "$tmp"
  say "fetching OpenSearch $OS_VERSION jars with Maven into $LIBS_DIR"
  local t0=$SECONDS
  if ! mvn -q -B -Dstyle.color=never -f "$SRC_DIR/pom.xml" \
        -Dopensearch.version="$OS_VERSION" \
        dependency:copy-dependencies -DoutputDirectory="$tmp" >"$DIST_DIR/mvn.log" 2>&1; then
    cat "$DIST_DIR/mvn.log" >&2
    rm -rf "$tmp"
    die "maven could not fetch the OpenSearch jars"
  fi
  [[ -f "$tmp/opensearch-$OS_VERSION.jar" ]] || die "opensearch-$OS_VERSION.jar missing after maven"
  echo "$key" >"$tmp/.complete"
  rm -rf "$LIBS_DIR"
  mv "$tmp" "$LIBS_DIR"
  say "fetched $(find "$LIBS_DIR" -name '*.jar' | wc -l) jars ($(du -sh "$LIBS_DIR" | cut -f1)) in $((SECONDS - t0))s"
}

compile_launcher() {
  local sha; sha="$(sha256sum "$SRC_DIR/Launcher.java" | cut -c1-12)"
  CLASSES_DIR="$DIST_DIR/launcher-$sha-java$JAVA_MAJOR"
  [[ -f "$CLASSES_DIR/Launcher.class" ]] && return 0
  rm -rf "$DIST_DIR"/launcher-*   # builds of older Launcher.java versions
  local tmp="$CLASSES_DIR.tmp.$$"
  mkdir -p "$tmp"
  "$JAVAC" -nowarn -d "$tmp" -cp "$LIBS_DIR/*" "$SRC_DIR/Launcher.java" \
    || { rm -rf "$tmp"; die "javac failed on $SRC_DIR/Launcher.java"; }
  mv "$tmp" "$CLASSES_DIR"
}

# ---------------------------------------------------------------- plugins
PLUGINS="${OPENSEARCH_PLUGINS:-}"
PLUGIN_VERSION="${OPENSEARCH_PLUGIN_VERSION:-$OS_VERSION.0}"
MAVEN_REPO="${OPENSEARCH_MAVEN_REPO:-https://repo1.maven.org/maven2}"
PLUGIN_CACHE="$DIST_DIR/plugins"

# A plugin zip's path on stdout: a given path, or the Maven artifact, fetched once.
fetch_plugin() {
  local p=$1
  if [[ "$p" == *.zip || "$p" == */* ]]; then
    [[ -f "$p" ]] && { abspath "$p"; return 0; }
    say "plugin zip $p: no such file" >&2
    return 1
  fi
  local zip="$PLUGIN_CACHE/$p-$PLUGIN_VERSION.zip"
  [[ -s "$zip" ]] && { echo "$zip"; return 0; }
  local url="$MAVEN_REPO/org/opensearch/plugin/$p/$PLUGIN_VERSION/$p-$PLUGIN_VERSION.zip"
  mkdir -p "$PLUGIN_CACHE"
  local code
  code="$(curl -sS -L --max-time 300 -o "$zip.tmp" -w '%{http_code}' "$url" 2>"$zip.err" || true)"
  if [[ "$code" == 200 ]] && unzip -tqq "$zip.tmp" >/dev/null 2>&1; then
    mv -f "$zip.tmp" "$zip"; rm -f "$zip.err"
    echo "$zip"
    return 0
  fi
  say "plugin $p $PLUGIN_VERSION is not available: $url answered HTTP ${code:-000}$(head -c 200 "$zip.err" | tr '\n' ' ' | sed 's/^./: &/')" >&2
  rm -f "$zip.tmp" "$zip.err"
  return 1
}

descriptor() { sed -n "s/^$2=//p" "$1/plugin-descriptor.properties" | tr -d '\r' | head -n1; }

# Rewrites the node's plugins/ to hold the listed plugins that can be had.
install_plugins() {
  local dir="$NODE_HOME/plugins"
  rm -rf "$dir"
  mkdir -p "$dir"
  [[ -n "$PLUGINS" ]] || return 0
  command -v unzip >/dev/null 2>&1 || { say "unzip not found: starting without plugins ($PLUGINS)" >&2; return 0; }
  local p zip tmp name osv ext e installed=() left=()
  for p in $PLUGINS; do
    zip="$(fetch_plugin "$p")" || { left+=("$p"); continue; }
    tmp="$dir/.unpack"
    rm -rf "$tmp"; mkdir -p "$tmp"
    if ! unzip -qq "$zip" -d "$tmp" || [[ ! -f "$tmp/plugin-descriptor.properties" ]]; then
      say "plugin $p: $zip is not an OpenSearch plugin zip, left out" >&2
      rm -rf "$tmp"; left+=("$p"); continue
    fi
    name="$(descriptor "$tmp" name)"
    osv="$(descriptor "$tmp" opensearch.version)"
    if [[ "$osv" != "$OS_VERSION" ]]; then
      say "plugin $name is built for OpenSearch $osv, the node is $OS_VERSION: left out" >&2
      rm -rf "$tmp"; left+=("$p"); continue
    fi
    ext="$(descriptor "$tmp" extended.plugins)"
    for e in ${ext//,/ }; do
      if [[ ! -d "$dir/$e" ]]; then
        case "$e" in
          lang-painless|analysis-common|transport-netty4)
            # PluginsService resolves extensions among plugin bundles only
            say "plugin $name extends the module $e, which this embedded node loads from the classpath, not as a bundle: left out" >&2 ;;
          *) say "plugin $name extends $e, which is not installed (list it before $name): left out" >&2 ;;
        esac
        rm -rf "$tmp"; left+=("$p"); continue 2
      fi
    done
    mv "$tmp" "$dir/$name"
    installed+=("$name")
  done
  ((${#installed[@]})) && say "plugins: ${installed[*]}"
  ((${#left[@]})) && say "starting without: ${left[*]}" >&2
  return 0
}

# ---------------------------------------------------------------- process
read_pid() {
  [[ -f "$PID_FILE" ]] || return 1
  local p; p="$(cat "$PID_FILE" 2>/dev/null || true)"
  [[ "$p" =~ ^[0-9]+$ ]] || return 1
  echo "$p"
}

# pid exists and is not a zombie (an exited server stays a zombie until init reaps it,
# which can take a second or two: it holds no port, lock or file any more)
alive() {
  kill -0 "$1" 2>/dev/null || return 1
  local st
  st="$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' "/proc/$1/status" 2>/dev/null || true)"
  [[ "$st" != Z && "$st" != X ]]
}

# our node is running: pid alive and its command line names this node home
is_running() {
  local p; p="$(read_pid)" || return 1
  alive "$p" || return 1
  tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep -F -- "-Dfaultline.opensearch.home=$NODE_HOME " >/dev/null || return 1
  PID="$p"
}

http_ready() {
  local code
  code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 \
    "$URL/_cluster/health?wait_for_status=yellow&timeout=2s" 2>/dev/null || true)"
  [[ "$code" == 200 ]]
}

server_version() {
  curl -s --max-time 5 "$URL/" 2>/dev/null \
    | sed -n 's/.*"number"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p' | head -n1
}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

log_tail() {
  echo "---- last lines of $LOG_FILE ----" >&2
  tail -n 60 "$LOG_FILE" >&2 2>/dev/null || true
  echo "----" >&2
}

with_lock() {
  mkdir -p "$NODE_HOME"
  if command -v flock >/dev/null 2>&1; then
    exec 9>"$NODE_HOME/.lock"
    flock -w 300 9 || die "another opensearch.sh holds $NODE_HOME/.lock"
  fi
}

write_config() {
  mkdir -p "$CONF_DIR" "$DATA_DIR" "$LOGS_DIR" "$TMP_DIR"
  cp "$SRC_DIR/log4j2.properties" "$CONF_DIR/log4j2.properties"
  cat >"$CONF_DIR/opensearch.yml" <<EOF
# written by scripts/opensearch.sh at each start: edit the script, not this file
cluster.name: faultline-dev
node.name: faultline-dev
path.data: $DATA_DIR
path.logs: $LOGS_DIR
discovery.type: single-node
network.host: 127.0.0.1
http.port: $PORT
transport.port: $TPORT
# shared machines may have little free disk: never block allocation or make indices read-only
cluster.routing.allocation.disk.threshold_enabled: false
# NB: like a real single-node ES, indices default to 1 replica and so stay "yellow";
# ask for green only on indices created with "number_of_replicas": 0
# dev node: allow wildcard deletes (DELETE /faultline-test-*)
action.destructive_requires_name: false
EOF
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
    local t1=$SECONDS
    while alive "$p" && ((SECONDS - t1 < 10)); do sleep 0.1; done
    alive "$p" && die "pid $p survived SIGKILL"
  fi
  rm -f "$PID_FILE"
  say "stopped (pid $p, $((SECONDS - t0))s)"
}

do_start() {
  if [[ "${OPENSEARCH_FRESH:-0}" == 1 ]]; then
    do_stop >/dev/null
    rm -rf "$DATA_DIR"
    say "fresh start: data wiped"
  fi

  if is_running; then
    local t0=$SECONDS
    until http_ready; do
      ((SECONDS - t0 < START_TIMEOUT)) || { log_tail; die "pid $PID runs but $URL does not answer"; }
      is_running || break
      sleep 0.5
    done
    if is_running; then
      say "already running (pid $PID)"
      say "ready on $URL (version $(server_version))"
      return 0
    fi
  fi
  rm -f "$PID_FILE"

  port_busy "$PORT"  && die "port $PORT on 127.0.0.1 is taken by another process (set OPENSEARCH_PORT)"
  port_busy "$TPORT" && die "port $TPORT on 127.0.0.1 is taken by another process (set OPENSEARCH_TRANSPORT_PORT)"

  local t_start=$SECONDS
  ensure_tools
  fetch_libs
  compile_launcher
  write_config
  install_plugins

  # keep the previous run's log for post-mortems, start this one clean
  [[ -s "$LOG_FILE" ]] && mv -f "$LOG_FILE" "$LOG_FILE.1"

  local heap_dir="$LOGS_DIR"
  # shellcheck disable=SC2054  # the comma in SPI,COMPAT is part of the value
  local opts=(
    -Xms256m -Xmx512m
    -XX:MaxDirectMemorySize=256m
    -XX:+UseG1GC -XX:G1ReservePercent=25 -XX:InitiatingHeapOccupancyPercent=30
    -Xss1m
    -XX:-OmitStackTraceInFastThrow -XX:+ShowCodeDetailsInExceptionMessages
    -XX:ErrorFile="$LOGS_DIR/hs_err_pid%p.log"
    -Djava.io.tmpdir="$TMP_DIR"
    -Djava.awt.headless=true -Dfile.encoding=UTF-8 -Djna.nosys=true
    # same locale providers as OpenSearch 2.x's own launcher: date parsing depends on it
    -Djava.locale.providers=SPI,COMPAT
    -Dopensearch.networkaddress.cache.ttl=60 -Dopensearch.networkaddress.cache.negative.ttl=10
    -Dio.netty.noUnsafe=true -Dio.netty.noKeySetOptimization=true
    -Dio.netty.recycler.maxCapacityPerThread=0 -Dio.netty.allocator.numDirectArenas=0
    -Dlog4j.shutdownHookEnabled=false -Dlog4j2.disable.jmx=true -Dlog4j2.formatMsgNoLookups=true
    -Dfaultline.opensearch.home="$NODE_HOME"
  )
  if [[ -n "${OPENSEARCH_JAVA_OPTS:-}" ]]; then
    # shellcheck disable=SC2206
    opts+=(${OPENSEARCH_JAVA_OPTS})
  fi

  # own session (setsid), so a Ctrl-C in the calling terminal or test runner does not
  # reach the server; `exec` keeps $! == the java pid
  (
    exec 9>&-   # do not hand the start/stop lock to the server
    cd "$heap_dir"
    exec setsid "$JAVA" "${opts[@]}" -cp "$CLASSES_DIR:$LIBS_DIR/*" Launcher \
      </dev/null >>"$LOG_FILE" 2>&1
  ) &
  local pid=$!
  echo "$pid" >"$PID_FILE"
  say "starting OpenSearch $OS_VERSION (pid $pid), log: $LOG_FILE"

  local t0=$SECONDS
  while :; do
    if ! alive "$pid"; then
      rm -f "$PID_FILE"
      log_tail
      die "the node exited during startup"
    fi
    http_ready && break
    if ((SECONDS - t0 >= START_TIMEOUT)); then
      log_tail
      say "not ready after ${START_TIMEOUT}s, stopping it" >&2
      do_stop >&2 || true
      exit 1
    fi
    sleep 0.5
  done
  say "ready on $URL (version $(server_version)) after $((SECONDS - t_start))s"
}

do_status() {
  if is_running; then
    if http_ready; then
      say "running (pid $PID) on $URL (version $(server_version))"
      return 0
    fi
    say "pid $PID alive but $URL does not answer (starting or wedged)"
    return 1
  fi
  say "not running"
  return 1
}

case "${1:-}" in
  start)   with_lock; do_start ;;
  stop)    with_lock; do_stop ;;
  restart) with_lock; do_stop; do_start ;;
  status)  do_status ;;
  *) echo "usage: $0 start|stop|status|restart" >&2; exit 2 ;;
esac
