#!/usr/bin/env bash
# Fetch (from Maven Central, with Maven) and run a real single-node Apache Kafka 4.x
# broker in KRaft mode (combined broker+controller) for development and CI. No Docker.
#
#   scripts/kafka.sh start                        fetch if needed, format if needed, start, wait until ready
#   scripts/kafka.sh stop                         SIGTERM, wait for a clean exit, SIGKILL after a timeout
#   scripts/kafka.sh status                       exit 0 when up, 1 when down
#   scripts/kafka.sh topic-create NAME PARTITIONS create a topic (idempotent), replication factor 1
#   scripts/kafka.sh tool CLASS [ARGS...]         run a Kafka CLI class on the broker's classpath,
#                                                 e.g. org.apache.kafka.tools.ConsoleProducer
#   scripts/kafka.sh env                          print `export FAULTLINE_KAFKA...=` lines for the tests
#                                                 (the SASL ones only while the SASL_SSL listener is up)
#
# Besides PLAINTEXT on KAFKA_PORT, the broker listens with SASL_SSL (SCRAM-SHA-512 over TLS)
# on KAFKA_SASL_PORT. The script makes a self-signed CA and a broker certificate for 127.0.0.1
# with the JDK's keytool (once, in <run>/kafka/tls; the CA for clients is tls/ca.pem) and
# creates the SCRAM user (at format time, or with the admin tool on older storage).
#
# Environment (all optional):
#   KAFKA_VERSION        Kafka version to fetch (default 4.4.0)
#   KAFKA_PORT           client (PLAINTEXT) port on 127.0.0.1 (default 9092)
#   KAFKA_CONTROLLER_PORT  KRaft controller port on 127.0.0.1 (default 9093)
#   KAFKA_SASL_PORT      SASL_SSL (SCRAM-SHA-512) client port on 127.0.0.1 (default 9094)
#   KAFKA_SASL_USER      SCRAM user made for the tests (default faultline)
#   KAFKA_SASL_PASSWORD  its password (default faultline-test-secret; a test broker only)
#   KAFKA_FRESH=1        on start: stop a running broker and wipe data + logs first
#   KAFKA_HEAP_OPTS      broker heap (default "-Xmx512m -Xms256m")
#   KAFKA_START_TIMEOUT  seconds to wait for readiness (default 90)
#   KAFKA_STOP_TIMEOUT   seconds to wait for a clean exit before SIGKILL (default 30)
#   KAFKA_MVN_OPTS       extra arguments for mvn (e.g. -o, -Dmaven.repo.local=...)
#   FAULTLINE_CACHE      jar cache root (default ~/.cache/faultline) -> kafka-<version>/libs
#   FAULTLINE_RUN        run root (default <repo>/target/servers) -> kafka/{data,logs,...}
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
ASSETS=$SCRIPT_DIR/kafka

KAFKA_VERSION=${KAFKA_VERSION:-4.4.0}
KAFKA_HOST=127.0.0.1
KAFKA_PORT=${KAFKA_PORT:-9092}
KAFKA_CONTROLLER_PORT=${KAFKA_CONTROLLER_PORT:-9093}
KAFKA_SASL_PORT=${KAFKA_SASL_PORT:-9094}
KAFKA_SASL_USER=${KAFKA_SASL_USER:-faultline}
KAFKA_SASL_PASSWORD=${KAFKA_SASL_PASSWORD:-faultline-test-secret}
SCRAM_MECHANISM=SCRAM-SHA-512
KAFKA_HEAP_OPTS=${KAFKA_HEAP_OPTS:--Xmx512m -Xms256m}
KAFKA_START_TIMEOUT=${KAFKA_START_TIMEOUT:-90}
KAFKA_STOP_TIMEOUT=${KAFKA_STOP_TIMEOUT:-30}
KAFKA_MVN_OPTS=${KAFKA_MVN_OPTS:-}

CACHE_ROOT=${FAULTLINE_CACHE:-${HOME:-/tmp}/.cache/faultline}
DIST_DIR=$CACHE_ROOT/kafka-$KAFKA_VERSION
LIBS=$DIST_DIR/libs
RUN_DIR=${FAULTLINE_RUN:-$REPO_ROOT/target/servers}/kafka
DATA_DIR=$RUN_DIR/data
LOG_DIR=$RUN_DIR/logs
PID_FILE=$RUN_DIR/kafka.pid
PROPS=$RUN_DIR/server.properties
OUT_FILE=$LOG_DIR/kafka.out
SERVER_LOG=$LOG_DIR/server.log
TLS_DIR=$RUN_DIR/tls
# The key stores guard a throwaway test key on a loopback-only broker.
TLS_STORE_PASS=faultline-test-store
BOOTSTRAP=$KAFKA_HOST:$KAFKA_PORT

# Logged by KafkaRaftServer once the broker is started *and unfenced*.
READY_MARKER='Kafka Server started'

log() { printf '%s\n' "$*"; }
die() { printf 'kafka: error: %s\n' "$*" >&2; exit 1; }

need_java() {
    command -v java >/dev/null 2>&1 || die "java not found (Kafka ${KAFKA_VERSION} needs Java 17+)"
    local v major
    v=$(java -version 2>&1 | awk -F'"' '/version/ {print $2; exit}')
    major=${v%%.*}
    [[ $major =~ ^[0-9]+$ ]] || die "cannot parse java version '$v'"
    (( major >= 17 )) || die "java $v found; Kafka ${KAFKA_VERSION} needs Java 17+"
}

# A small, fast-starting JVM for the Kafka CLI tools, on the cached classpath.
TOOL_JVM=(java -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true
    "-Dlog4j2.configurationFile=$ASSETS/tools-log4j2.properties" -cp "$LIBS/*")

run_class() { "${TOOL_JVM[@]}" "$@"; }

# Same, killed after SECS seconds: run_class_t SECS CLASS [ARGS...]
run_class_t() {
    local secs=$1
    shift
    timeout "$secs" "${TOOL_JVM[@]}" "$@"
}

# --- download ------------------------------------------------------------------------------

fetch() {
    [[ -f $LIBS/.complete ]] && return 0
    command -v mvn >/dev/null 2>&1 || die "mvn not found (needed once to fetch Kafka jars into $LIBS)"
    mkdir -p "$DIST_DIR"
    exec 8>"$DIST_DIR/.fetch.lock"
    flock -w 600 8 || die "timed out waiting for another fetch of Kafka $KAFKA_VERSION"
    if [[ ! -f $LIBS/.complete ]]; then
        log "kafka: fetching Apache Kafka $KAFKA_VERSION jars from Maven Central into $LIBS (first run only)"
        local tmp t0=$SECONDS
        tmp=$(mktemp -d "$DIST_DIR/libs.tmp.XXXXXX")
        # (sed: Maven 3.8 prints stray ANSI resets even in batch/quiet mode.)
        # shellcheck disable=SC2086
        if ! mvn -B -q -Dstyle.color=never -f "$ASSETS/pom.xml" -Dkafka.version="$KAFKA_VERSION" $KAFKA_MVN_OPTS \
                dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$tmp" 2>&1 \
                | sed 's/\x1b\[[0-9;]*m//g' >&2; then
            rm -rf "$tmp"
            die "mvn could not fetch org.apache.kafka:kafka_2.13:$KAFKA_VERSION and its dependencies (is Maven Central reachable?)"
        fi
        [[ -f $tmp/kafka_2.13-$KAFKA_VERSION.jar && -f $tmp/kafka-tools-$KAFKA_VERSION.jar ]] \
            || { rm -rf "$tmp"; die "mvn finished but kafka jars are missing in $tmp"; }
        rm -rf "$LIBS"
        mv "$tmp" "$LIBS"
        touch "$LIBS/.complete"
        log "kafka: fetched $(find "$LIBS" -name '*.jar' | wc -l) jars in $((SECONDS - t0))s"
    fi
    exec 8>&-
}

# --- process helpers -----------------------------------------------------------------------

read_pid() {
    if [[ -s $PID_FILE ]]; then tr -dc '0-9' <"$PID_FILE"; fi
}

# True when PID is a live (non-zombie) broker JVM started for this run dir.
is_broker_pid() {
    local pid=$1
    [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 1
    local state
    state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) || return 1
    [[ $state != Z ]] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -F -- "kafka.Kafka $PROPS" >/dev/null
}

# The broker's pid: from the pid file, else (pid file lost, e.g. target/ cleaned under a
# running broker) by looking for a JVM running kafka.Kafka with this run dir's config.
running_pid() {
    local pid f
    pid=$(read_pid)
    if is_broker_pid "$pid"; then
        echo "$pid"
        return 0
    fi
    for f in /proc/[0-9]*/cmdline; do
        pid=${f#/proc/}
        pid=${pid%/cmdline}
        if is_broker_pid "$pid"; then
            echo "$pid"
            return 0
        fi
    done
}

port_open() { timeout 2 bash -c "exec 3<>/dev/tcp/$KAFKA_HOST/$1" 2>/dev/null; }

take_lock() {
    mkdir -p "$RUN_DIR"
    exec 9>"$RUN_DIR/.lock"
    flock -w 300 9 || die "timed out waiting for another kafka.sh start/stop in $RUN_DIR"
}

# --- TLS + SCRAM ---------------------------------------------------------------------------

# A self-signed CA and a broker certificate signed by it (SAN 127.0.0.1 and localhost, so
# clients verify the hostname as they do by default), made once with the JDK's keytool.
# Built in a temporary directory and renamed, so an interrupted run leaves nothing half made.
make_tls() {
    [[ -f $TLS_DIR/broker.p12 && -f $TLS_DIR/ca.pem ]] && return 0
    # keytool ships with every JDK/JRE: the one beside `java` when it is not on PATH.
    local keytool
    keytool=$(command -v keytool || true)
    [[ -n $keytool ]] || keytool=$(dirname "$(readlink -f "$(command -v java)")")/keytool
    [[ -x $keytool ]] || die "keytool not found (on PATH or beside java; it ships with the JDK/JRE)"
    local tmp kt=("$keytool" -storetype PKCS12 -storepass "$TLS_STORE_PASS" -keypass "$TLS_STORE_PASS")
    mkdir -p "$RUN_DIR"
    tmp=$(mktemp -d "$RUN_DIR/tls.tmp.XXXXXX")
    {
        "${kt[@]}" -genkeypair -alias ca -keystore "$tmp/ca.p12" -keyalg RSA -keysize 2048 \
            -dname "CN=faultline test CA" -ext bc:c -validity 3650 \
            && "${kt[@]}" -exportcert -rfc -alias ca -keystore "$tmp/ca.p12" -file "$tmp/ca.pem" \
            && "${kt[@]}" -genkeypair -alias broker -keystore "$tmp/broker.p12" -keyalg RSA -keysize 2048 \
                -dname "CN=localhost" -validity 3650 \
            && "${kt[@]}" -certreq -alias broker -keystore "$tmp/broker.p12" -file "$tmp/broker.csr" \
            && "${kt[@]}" -gencert -alias ca -keystore "$tmp/ca.p12" -infile "$tmp/broker.csr" \
                -outfile "$tmp/broker.pem" -rfc -validity 3650 \
                -ext san=ip:127.0.0.1,dns:localhost -ext eku=serverAuth \
            && "${kt[@]}" -importcert -noprompt -alias ca -keystore "$tmp/broker.p12" -file "$tmp/ca.pem" \
            && "${kt[@]}" -importcert -noprompt -alias broker -keystore "$tmp/broker.p12" -file "$tmp/broker.pem"
    } >"$tmp/keytool.out" 2>&1 || {
        cat "$tmp/keytool.out" >&2
        rm -rf "$tmp"
        die "keytool could not make the test CA and broker certificate"
    }
    rm -f "$tmp/broker.csr" "$tmp/keytool.out"
    rm -rf "$TLS_DIR"
    mv "$tmp" "$TLS_DIR"
    log "kafka: made a self-signed test CA and broker certificate in $TLS_DIR"
}

scram_spec() { printf '%s=[name=%s,password=%s]' "$SCRAM_MECHANISM" "$KAFKA_SASL_USER" "$KAFKA_SASL_PASSWORD"; }

# Storage formatted before the SASL listener existed (or with another user/password) gets the
# SCRAM user through the admin client once the broker is up. The marker names user and password.
SCRAM_MARKER() { printf '%s/.scram-%s' "$DATA_DIR" "$(printf '%s' "$(scram_spec)" | sha256sum | cut -c1-16)"; }

ensure_scram_user() {
    [[ -f $(SCRAM_MARKER) ]] && return 0
    run_class_t 60 org.apache.kafka.tools.ConfigCommand --bootstrap-server "$BOOTSTRAP" --alter \
        --entity-type users --entity-name "$KAFKA_SASL_USER" \
        --add-config "$SCRAM_MECHANISM=[password=$KAFKA_SASL_PASSWORD]" >"$LOG_DIR/scram.out" 2>&1 \
        || { cat "$LOG_DIR/scram.out" >&2; die "could not create the SCRAM user $KAFKA_SASL_USER"; }
    touch "$(SCRAM_MARKER)"
    log "kafka: SCRAM user $KAFKA_SASL_USER ready"
}

# --- config + storage ----------------------------------------------------------------------

write_props() {
    cat >"$PROPS" <<EOF
# Generated by scripts/kafka.sh on every start; edits are overwritten.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$KAFKA_HOST:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://$KAFKA_HOST:$KAFKA_PORT,CONTROLLER://$KAFKA_HOST:$KAFKA_CONTROLLER_PORT,SASL_SSL://$KAFKA_HOST:$KAFKA_SASL_PORT
advertised.listeners=PLAINTEXT://$KAFKA_HOST:$KAFKA_PORT,SASL_SSL://$KAFKA_HOST:$KAFKA_SASL_PORT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL
# SASL_SSL: SCRAM over TLS with the script's self-signed certificate (no client certificates).
sasl.enabled.mechanisms=$SCRAM_MECHANISM
listener.name.sasl_ssl.$(tr '[:upper:]' '[:lower:]' <<<"$SCRAM_MECHANISM").sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required ;
listener.name.sasl_ssl.ssl.keystore.type=PKCS12
listener.name.sasl_ssl.ssl.keystore.location=$TLS_DIR/broker.p12
listener.name.sasl_ssl.ssl.keystore.password=$TLS_STORE_PASS
listener.name.sasl_ssl.ssl.key.password=$TLS_STORE_PASS
log.dirs=$DATA_DIR
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
auto.create.topics.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=5
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=5
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=2
EOF
}

format_storage() {
    if [[ -f $DATA_DIR/meta.properties ]]; then
        log "kafka: reusing formatted storage in $DATA_DIR"
        return 0
    fi
    mkdir -p "$DATA_DIR"
    local cid
    cid=$(run_class kafka.tools.StorageTool random-uuid | tail -n1)
    [[ -n $cid ]] || die "StorageTool random-uuid printed nothing"
    run_class kafka.tools.StorageTool format -t "$cid" -c "$PROPS" --add-scram "$(scram_spec)" \
        >"$LOG_DIR/format.out" 2>&1 \
        || { cat "$LOG_DIR/format.out" >&2; die "formatting KRaft storage failed"; }
    touch "$(SCRAM_MARKER)"
    log "kafka: formatted KRaft storage in $DATA_DIR (cluster id $cid)"
}

# --- commands ------------------------------------------------------------------------------

# show_failure OFFSET: tail of this start's part of server.log, and of kafka.out (JVM output).
show_failure() {
    local offset=${1:-0}
    {
        echo "---- last lines of $SERVER_LOG ----"
        tail -c +$((offset + 1)) "$SERVER_LOG" 2>/dev/null | tail -n 40 || true
        echo "---- last lines of $OUT_FILE ----"
        tail -n 20 "$OUT_FILE" 2>/dev/null || true
    } >&2
}

kill_pid() {
    local pid=$1 timeout=$2 t0=$SECONDS
    kill -TERM "$pid" 2>/dev/null || true
    while is_broker_pid "$pid"; do
        if (( SECONDS - t0 >= timeout )); then
            log "kafka: no clean exit after ${timeout}s, sending SIGKILL to $pid" >&2
            kill -KILL "$pid" 2>/dev/null || true
            local t1=$SECONDS
            while is_broker_pid "$pid" && (( SECONDS - t1 < 10 )); do sleep 0.2; done
            return 1
        fi
        sleep 0.2
    done
    return 0
}

cmd_start() {
    need_java
    take_lock
    local pid
    pid=$(running_pid)
    if [[ -n $pid && ${KAFKA_FRESH:-0} == 1 ]]; then
        log "kafka: KAFKA_FRESH=1: stopping running broker (pid $pid) first"
        kill_pid "$pid" "$KAFKA_STOP_TIMEOUT" || true
        rm -f "$PID_FILE"
        pid=
    fi
    if [[ -n $pid ]]; then
        log "kafka: already running (pid $pid) on $BOOTSTRAP"
        return 0
    fi
    rm -f "$PID_FILE"
    if [[ ${KAFKA_FRESH:-0} == 1 ]]; then
        log "kafka: KAFKA_FRESH=1: wiping $DATA_DIR and $LOG_DIR"
        rm -rf "$DATA_DIR" "$LOG_DIR"
    fi
    local port
    for port in "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT" "$KAFKA_SASL_PORT"; do
        if port_open "$port"; then
            die "port $KAFKA_HOST:$port is already in use by another process (not the broker of $RUN_DIR)"
        fi
    done
    mkdir -p "$DATA_DIR" "$LOG_DIR"

    fetch
    make_tls
    write_props
    format_storage

    local t0=$SECONDS offset=0
    : >"$LOG_DIR/ready-check.err"
    [[ -f $SERVER_LOG ]] && offset=$(stat -c %s "$SERVER_LOG")
    printf '==== %s starting Kafka %s ====\n' "$(date -u +%FT%TZ)" "$KAFKA_VERSION" >>"$OUT_FILE"
    # setsid: the broker gets its own session, so it outlives this script and is not hit by
    # signals sent to the caller's process group. fd 9 (the start/stop lock) is closed for it.
    # shellcheck disable=SC2086,SC2016
    setsid bash -c 'echo $$ >"$1"; shift; exec "$@"' kafka-start "$PID_FILE" \
        java $KAFKA_HEAP_OPTS -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
        -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true \
        -Dkafka.logs.dir="$LOG_DIR" \
        -Dlog4j2.configurationFile="$ASSETS/log4j2.properties" \
        -cp "$LIBS/*" kafka.Kafka "$PROPS" \
        </dev/null >>"$OUT_FILE" 2>&1 9>&- &

    # Wait for the pid file written by the child.
    local _
    for _ in $(seq 1 50); do
        pid=$(read_pid)
        [[ -n $pid ]] && break
        sleep 0.1
    done
    [[ -n $pid ]] || { show_failure "$offset"; die "broker process did not start"; }

    local deadline=$((SECONDS + KAFKA_START_TIMEOUT))
    while :; do
        if ! is_broker_pid "$pid"; then
            show_failure "$offset"
            rm -f "$PID_FILE"
            die "broker exited during startup (see $LOG_DIR)"
        fi
        if (( SECONDS >= deadline )); then
            show_failure "$offset"
            log "kafka: not ready after ${KAFKA_START_TIMEOUT}s, stopping pid $pid" >&2
            kill_pid "$pid" 10 || true
            rm -f "$PID_FILE"
            die "broker did not become ready within ${KAFKA_START_TIMEOUT}s"
        fi
        local size=0
        [[ -f $SERVER_LOG ]] && size=$(stat -c %s "$SERVER_LOG")
        (( size < offset )) && offset=0 # log rolled over
        # `grep` without -q reads to the end: with -q it exits at the marker,
        # `tail` dies of SIGPIPE on a long log, and pipefail fails the test.
        if (( size > offset )) && tail -c +$((offset + 1)) "$SERVER_LOG" | grep -F "$READY_MARKER" >/dev/null \
                && port_open "$KAFKA_PORT" && port_open "$KAFKA_SASL_PORT"; then
            # A real metadata request through the admin client.
            if run_class_t 30 org.apache.kafka.tools.TopicCommand \
                    --bootstrap-server "$BOOTSTRAP" --list >/dev/null 2>>"$LOG_DIR/ready-check.err"; then
                break
            fi
        fi
        sleep 0.5
    done
    ensure_scram_user
    log "kafka: ready on $BOOTSTRAP and SASL_SSL $KAFKA_HOST:$KAFKA_SASL_PORT (pid $pid, $((SECONDS - t0))s; data $DATA_DIR, logs $LOG_DIR)"
}

cmd_stop() {
    take_lock
    local pid t0=$SECONDS
    pid=$(running_pid)
    if [[ -z $pid ]]; then
        rm -f "$PID_FILE"
        log "kafka: not running"
        return 0
    fi
    if kill_pid "$pid" "$KAFKA_STOP_TIMEOUT"; then
        log "kafka: stopped (pid $pid, clean exit in $((SECONDS - t0))s)"
    else
        log "kafka: stopped (pid $pid, killed after $((SECONDS - t0))s)"
    fi
    rm -f "$PID_FILE"
}

cmd_status() {
    local pid
    pid=$(running_pid)
    if [[ -n $pid ]] && port_open "$KAFKA_PORT"; then
        log "kafka: up (pid $pid) on $BOOTSTRAP"
        return 0
    elif [[ -n $pid ]]; then
        log "kafka: process $pid alive but $BOOTSTRAP not accepting connections"
        return 1
    fi
    log "kafka: down"
    return 1
}

require_up() {
    [[ -f $LIBS/.complete ]] || die "Kafka jars not fetched yet; run scripts/kafka.sh start"
    cmd_status >/dev/null || die "broker is not running on $BOOTSTRAP; run scripts/kafka.sh start"
}

cmd_topic_create() {
    [[ $# -eq 2 ]] || die "usage: $0 topic-create NAME PARTITIONS"
    local name=$1 parts=$2
    [[ $name =~ ^[A-Za-z0-9._-]+$ ]] || die "invalid topic name '$name'"
    [[ $parts =~ ^[1-9][0-9]*$ ]] || die "PARTITIONS must be a positive integer, got '$parts'"
    need_java
    require_up
    run_class_t 60 org.apache.kafka.tools.TopicCommand --bootstrap-server "$BOOTSTRAP" \
        --create --if-not-exists --topic "$name" --partitions "$parts" --replication-factor 1 >/dev/null
    local desc actual
    desc=$(run_class_t 60 org.apache.kafka.tools.TopicCommand --bootstrap-server "$BOOTSTRAP" \
        --describe --topic "$name")
    actual=$(printf '%s\n' "$desc" | grep -o 'PartitionCount: *[0-9]*' | head -n1 | grep -o '[0-9]*$' || true)
    [[ -n $actual ]] || die "could not describe topic '$name'"
    if [[ $actual != "$parts" ]]; then
        die "topic '$name' already exists with $actual partitions (wanted $parts)"
    fi
    log "kafka: topic $name ready ($actual partitions)"
}

cmd_tool() {
    [[ $# -ge 1 ]] || die "usage: $0 tool CLASS [ARGS...]"
    need_java
    [[ -f $LIBS/.complete ]] || fetch
    run_class "$@"
}

# Shell `export` lines for the tests. The SASL ones only when this run dir's broker has the
# SASL_SSL listener up (a broker started by an older kafka.sh has none until restarted).
cmd_env() {
    printf 'export FAULTLINE_KAFKA=%q\n' "$BOOTSTRAP"
    if cmd_status >/dev/null && port_open "$KAFKA_SASL_PORT" && [[ -f $TLS_DIR/ca.pem ]]; then
        printf 'export FAULTLINE_KAFKA_SASL=%q\n' "$KAFKA_HOST:$KAFKA_SASL_PORT"
        printf 'export FAULTLINE_KAFKA_SASL_CA=%q\n' "$TLS_DIR/ca.pem"
        printf 'export FAULTLINE_KAFKA_SASL_MECHANISM=%q\n' "$SCRAM_MECHANISM"
        printf 'export FAULTLINE_KAFKA_SASL_USER=%q\n' "$KAFKA_SASL_USER"
        printf 'export FAULTLINE_KAFKA_SASL_PASSWORD=%q\n' "$KAFKA_SASL_PASSWORD"
    else
        log "kafka: no SASL_SSL listener on $KAFKA_HOST:$KAFKA_SASL_PORT (restart the broker with this script to get one)" >&2
    fi
}

usage() {
    sed -n '2,32p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

main() {
    local cmd=${1:-}
    [[ $# -gt 0 ]] && shift
    case $cmd in
        start) cmd_start "$@" ;;
        stop) cmd_stop "$@" ;;
        status) cmd_status "$@" ;;
        topic-create) cmd_topic_create "$@" ;;
        tool) cmd_tool "$@" ;;
        env) cmd_env "$@" ;;
        -h | --help | help) usage ;;
        *) usage >&2; exit 2 ;;
    esac
}

main "$@"
