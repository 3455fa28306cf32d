//! Hostile input and unlucky operators, against the real binary: records
//! from the future, a state poisoned by one, a reader that closes the pipe,
//! secrets in the configuration, out-of-range values, and clients that hold
//! connections to the HTTP endpoint open (docs/reliability.md).

mod support;
use support::{Killed, free_port, http_get};

#[path = "../examples/gen-logs/scenario.rs"]
mod scenario;

use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_faultline"));
    c.env_remove("FAULTLINE_CONFIG")
        .current_dir(std::env::temp_dir());
    for (k, _) in std::env::vars() {
        if k.starts_with("FAULTLINE__") {
            c.env_remove(k);
        }
    }
    c
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn alert_ids(p: &Path) -> BTreeSet<String> {
    std::fs::read_to_string(p)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v.get("id").and_then(|i| i.as_str()).map(String::from))
        .collect()
}

/// `faultline replay` of `logs` into `alerts`, with `--summary-json`.
fn replay(logs: &Path, alerts: &Path, state: Option<&Path>) -> (Output, serde_json::Value) {
    let mut c = bin();
    c.args([
        "replay",
        "--warmup",
        "30m",
        "--no-progress",
        "--summary-json",
    ])
    .arg("--alerts")
    .arg(alerts)
    .arg(logs);
    if let Some(s) = state {
        c.arg("--state").arg(s);
    }
    let out = c.output().unwrap();
    support::assert_ok(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let summary = stderr
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .unwrap_or_default();
    (out, summary)
}

/// `n` ERROR records, one a second from 2026-11-02T10:00:00Z, of `kinds`
/// message shapes across `services` services.
fn error_lines(n: usize, kinds: usize, services: usize) -> String {
    (0..n)
        .map(|k| {
            format!(
                "{{\"@timestamp\":\"2026-11-02T10:{:02}:{:02}Z\",\"log.level\":\"ERROR\",\"message\":\"failure kind{} number {k}\",\"service.name\":\"svc{}\",\"service.version\":\"1.0\"}}\n",
                (k / 60) % 60,
                k % 60,
                k % kinds,
                k % services
            )
        })
        .collect()
}

/// `args` with stdout and stderr piped.
fn spawn_piped(args: &[&str]) -> std::process::Child {
    bin()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn bad_timestamps(summary: &serde_json::Value) -> u64 {
    summary["bad"]["bad_timestamp"].as_u64().unwrap_or(0)
}

const FROM_9999: &str = r#"{"@timestamp":"9999-12-31T23:59:59Z","log.level":"ERROR","message":"clock of a broken host","service.name":"api"}"#;
const INFO_2099: &str = r#"{"@timestamp":"2099-01-01T00:00:00Z","log.level":"INFO","message":"hello from the future","service.name":"api"}"#;

#[test]
fn records_from_the_future_neither_silence_nor_change_the_alerts() {
    let dir = tempfile::tempdir().unwrap();
    let clean = scenario::Scenario::generate(&scenario::Config::default()).json_string();
    let lines: Vec<&str> = clean.lines().collect();
    let mut hostile = vec![FROM_9999];
    hostile.extend(&lines[..lines.len() / 2]);
    hostile.push(INFO_2099);
    hostile.extend(&lines[lines.len() / 2..]);
    let clean_p = write(dir.path(), "clean.jsonl", &clean);
    let hostile_p = write(dir.path(), "hostile.jsonl", &(hostile.join("\n") + "\n"));

    let (_, s_clean) = replay(&clean_p, &dir.path().join("clean-alerts"), None);
    let (out, s_hostile) = replay(&hostile_p, &dir.path().join("hostile-alerts"), None);
    let reference = alert_ids(&dir.path().join("clean-alerts"));
    assert!(
        reference.len() > 10,
        "the scenario alerts: {}",
        reference.len()
    );
    assert_eq!(alert_ids(&dir.path().join("hostile-alerts")), reference);
    assert_eq!(bad_timestamps(&s_hostile), bad_timestamps(&s_clean) + 2);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.matches("after this machine's clock").count(),
        1,
        "the jump is logged once: {stderr}"
    );
}

#[test]
fn a_record_far_ahead_of_an_old_stream_is_held_and_changes_no_alert() {
    let dir = tempfile::tempdir().unwrap();
    let clean = scenario::Scenario::generate(&scenario::Config::default()).json_string();
    let lines: Vec<&str> = clean.lines().collect();
    // Weeks after the scenario, yet before this machine's clock: only the
    // stream can tell it is wrong.
    const LATER: &str = r#"{"@timestamp":"2026-11-20T00:00:00Z","log.level":"ERROR","message":"clock of a broken host","service.name":"api"}"#;
    let mut hostile: Vec<&str> = lines[..lines.len() / 3].to_vec();
    hostile.push(LATER);
    hostile.extend(&lines[lines.len() / 3..]);
    let clean_p = write(dir.path(), "clean.jsonl", &clean);
    let hostile_p = write(dir.path(), "hostile.jsonl", &(hostile.join("\n") + "\n"));
    replay(&clean_p, &dir.path().join("clean-alerts"), None);
    let (_, s) = replay(&hostile_p, &dir.path().join("hostile-alerts"), None);
    assert_eq!(s["held"].as_u64(), Some(1), "{s}");
    let reference = alert_ids(&dir.path().join("clean-alerts"));
    let got = alert_ids(&dir.path().join("hostile-alerts"));
    // The held record is an error of a new type, processed at its time: it
    // may add its own novel alert, and must take none of the others away.
    assert!(
        got.is_superset(&reference),
        "missing: {:?}",
        reference.difference(&got)
    );
    assert!(
        got.len() <= reference.len() + 1,
        "{} vs {}",
        got.len(),
        reference.len()
    );
}

#[test]
fn logs_from_2005_replay_like_recent_ones() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::new();
    for k in 0..40 {
        let (m, s) = (k / 60, k % 60);
        text.push_str(&format!(
            "{{\"@timestamp\":\"2005-06-01T10:{m:02}:{s:02}Z\",\"log.level\":\"ERROR\",\"message\":\"disk {k} failed\",\"service.name\":\"api\"}}\n"
        ));
    }
    let p = write(dir.path(), "old.jsonl", &text);
    let (_, s) = replay(&p, &dir.path().join("alerts"), None);
    assert_eq!(s["errors"].as_u64(), Some(40), "{s}");
    assert_eq!(bad_timestamps(&s), 0, "{s}");
    assert_eq!(s["late"].as_u64(), Some(0), "{s}");
}

#[test]
fn a_state_holding_a_future_watermark_is_detected_and_does_not_silence_later_runs() {
    let dir = tempfile::tempdir().unwrap();
    let clean = scenario::Scenario::generate(&scenario::Config::default()).json_string();
    let lines: Vec<&str> = clean.lines().collect();
    let cut = lines.len() * 2 / 5;
    let first = write(dir.path(), "first.jsonl", &(lines[..cut].join("\n") + "\n"));
    let second = write(
        dir.path(),
        "second.jsonl",
        &(lines[cut..].join("\n") + "\n"),
    );
    let run_both = |name: &str, poison: bool| {
        let state = dir.path().join(format!("{name}-state"));
        let alerts = dir.path().join(format!("{name}-alerts"));
        replay(
            &first,
            &dir.path().join(format!("{name}-first")),
            Some(&state),
        );
        if poison {
            // What a version without the guard saved after a 9999 record
            // (an older faultline: its `state.json`, which the next run
            // migrates into the store).
            let mut v = state_as_json(&state);
            v["watermark"] = serde_json::json!(253_402_300_799_000i64);
            put_state_json(&state, &v);
        }
        let (out, _) = replay(&second, &alerts, Some(&state));
        (
            alert_ids(&alerts),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (reference, _) = run_both("clean", false);
    let (got, stderr) = run_both("poisoned", true);
    assert!(!reference.is_empty());
    assert_eq!(got, reference);
    assert!(
        stderr.contains("state's event time 9999-12-31") && stderr.contains("restarts"),
        "{stderr}"
    );
}

/// The state in `dir` as an older faultline wrote it (`state.json`).
fn state_as_json(dir: &Path) -> serde_json::Value {
    let s = faultline::state::State::load(dir).unwrap().unwrap();
    serde_json::to_value(&s).unwrap()
}

/// Makes `dir` hold `state` as the `state.json` of an older faultline,
/// without a store.
fn put_state_json(dir: &Path, state: &serde_json::Value) {
    std::fs::create_dir_all(dir).unwrap();
    let _ = std::fs::remove_file(dir.join("state.redb"));
    std::fs::write(
        dir.join("state.json"),
        serde_json::to_string(state).unwrap(),
    )
    .unwrap();
}

/// Runs `args` with stdout into a pipe whose reader closes after one line.
fn into_closed_pipe(args: &[&str]) -> Output {
    let mut child = spawn_piped(args);
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 1];
    let _ = stdout.read(&mut first);
    drop(stdout);
    child.wait_with_output().unwrap()
}

#[test]
fn a_reader_that_closes_the_pipe_ends_every_command_quietly() {
    let dir = tempfile::tempdir().unwrap();
    // Enough distinct types that the output outgrows the pipe's buffer.
    let text = error_lines(3000, 4, 7);
    let logs = write(dir.path(), "logs.jsonl", &text);
    let state = dir.path().join("state");
    let alerts = dir.path().join("alerts.jsonl");
    replay(&logs, &alerts, Some(&state));
    let state = state.to_str().unwrap();
    let logs = logs.to_str().unwrap();
    let patterns_file = write(dir.path(), "lines.txt", &text.repeat(3));
    for args in [
        vec!["types", "list", "--state", state],
        vec!["types", "list", "--json", "--state", state],
        vec!["baseline", "show", "--state", state],
        vec![
            "report",
            "--state",
            state,
            "--release",
            "1.0",
            "--format",
            "json",
        ],
        vec![
            "patterns",
            "test",
            "--file",
            patterns_file.to_str().unwrap(),
        ],
        vec!["fingerprint", logs],
        vec!["replay", "--no-progress", "--warmup", "1s", logs],
    ] {
        let out = into_closed_pipe(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(!stderr.contains("Broken pipe"), "{args:?}: {stderr}");
    }
    // Every command that writes to stdout, into a pipe whose reader is
    // gone before it starts (so even a short output meets the closed
    // pipe): exit 0 (rollout-check: its verdict), no panic, no message.
    let (_, first_type) = text_of(bin().args(["types", "list", "--json", "--state", state]));
    let listed: serde_json::Value =
        serde_json::from_str(&first_type).unwrap_or_else(|e| panic!("{e}: {first_type}"));
    let id = listed[0]["fingerprint"].as_str().unwrap().to_string();
    let rollout = [
        "rollout-check",
        "--service",
        "svc0",
        "--stable",
        "1.0",
        "--canary",
        "1.1",
        "--current-percentage",
        "5",
        logs,
    ];
    for args in [
        vec!["types", "list", "--state", state],
        vec!["types", "show", &id, "--state", state],
        vec!["baseline", "show", "--state", state],
        vec!["report", "--state", state, "--release", "1.0"],
        vec![
            "patterns",
            "test",
            "--file",
            patterns_file.to_str().unwrap(),
        ],
        vec!["fingerprint", logs],
        vec!["replay", "--no-progress", "--warmup", "1s", logs],
        vec!["config", "check"],
        vec!["completions", "bash"],
        vec!["man"],
        rollout.to_vec(),
    ] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = bin()
            .args(&args)
            .stdout(writer)
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let code = out.status.code();
        if args[0] == "rollout-check" {
            assert!(
                matches!(code, Some(0 | 1 | 3)),
                "{args:?}: {code:?} {stderr}"
            );
        } else {
            assert_eq!(code, Some(0), "{args:?}: {stderr}");
        }
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(!stderr.contains("Broken pipe"), "{args:?}: {stderr}");
    }
}

/// Runs `c` to completion: (exit code, stdout).
fn text_of(c: &mut Command) -> (Option<i32>, String) {
    let out = c.output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn start_run(dir: &Path, brokers: &str) -> (Killed, u16) {
    let port = free_port();
    let tag = format!("hostile-{}-{port}", std::process::id());
    let cfg = write(
        dir,
        "faultline.toml",
        &format!(
            "[kafka]\nbrokers = \"{brokers}\"\ntopics = [\"{tag}\"]\ngroup_id = \"{tag}\"\n\
             [metrics]\nlisten = \"127.0.0.1:{port}\"\n"
        ),
    );
    let child = bin()
        .arg("--config")
        .arg(&cfg)
        .arg("run")
        .arg("--state")
        .arg(dir.join("state"))
        .arg("--alerts")
        .arg(dir.join("alerts.jsonl"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(started.elapsed() < Duration::from_secs(60), "no endpoint");
        std::thread::sleep(Duration::from_millis(100));
    }
    (Killed(child), port)
}

#[test]
fn eight_idle_connections_do_not_delay_a_scrape_of_faultline_run() {
    let dir = tempfile::tempdir().unwrap();
    let brokers = std::env::var("FAULTLINE_KAFKA").unwrap_or("127.0.0.1:9092".into());
    let (_run, port) = start_run(dir.path(), &brokers);
    let idle: Vec<_> = (0..8)
        .map(|_| std::net::TcpStream::connect(("127.0.0.1", port)).unwrap())
        .collect();
    let started = Instant::now();
    let m = http_get(port, "/metrics");
    // The old one-connection-at-a-time server took 8 × 5 s here; the
    // latency itself is measured by scripts/bench-scrape.
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert!(m.starts_with("HTTP/1.1 200"), "{m}");
    assert!(m.contains("faultline_records_total"), "{m}");
    assert!(http_get(port, "/healthz").starts_with("HTTP/1.1 200"));
    drop(idle);
}

#[test]
fn readiness_reports_an_unreachable_broker() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens on the discard port: the broker is unreachable.
    let (_run, port) = start_run(dir.path(), "127.0.0.1:9");
    let started = Instant::now();
    let ready = loop {
        let r = http_get(port, "/readyz");
        if r.starts_with("HTTP/1.1 503") && r.contains("broker") {
            break r;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "still not reporting the broker: {r}"
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    assert!(ready.contains("127.0.0.1:9"), "{ready}");
    let m = http_get(port, "/metrics");
    assert!(m.contains("faultline_up 0"), "{m}");
}

#[test]
fn config_check_and_logs_never_show_a_secret() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = write(dir.path(), "es-key", "id1:from-file-1\n");
    let sasl_file = write(dir.path(), "sasl", "from-file-2\n");
    let cfg = write(
        dir.path(),
        "faultline.toml",
        &format!(
            "[elasticsearch]\nurl = \"http://elastic:in-url-3@127.0.0.1:9/\"\napi_key_file = {:?}\n\
             timeout = \"1s\"\n[kafka]\nproperties = {{ \"ssl.key.password\" = \"inline-4\", \"security.protocol\" = \"SASL_SSL\" }}\n\
             [kafka.property_files]\n\"sasl.password\" = {:?}\n",
            key_file.to_str().unwrap(),
            sasl_file.to_str().unwrap()
        ),
    );
    let secrets = [
        "from-file-1",
        "from-file-2",
        "in-url-3",
        "inline-4",
        "65358979",
    ];
    let check = |out: &Output| {
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        for s in secrets {
            assert!(!all.contains(s), "{s} shown in:\n{all}");
        }
        all
    };
    let out = bin()
        .arg("--config")
        .arg(&cfg)
        .args(["config", "check"])
        .env("FAULTLINE__KAFKA__PROPERTIES__SASL.USERNAME", "faultline")
        .env("FAULTLINE__ELASTICSEARCH__PASSWORD", "65358979")
        .output()
        .unwrap();
    support::assert_ok(&out);
    let shown = check(&out);
    assert!(shown.contains("<redacted>@127.0.0.1:9"), "{shown}");
    assert!(
        shown.contains("SASL_SSL") && shown.contains("faultline"),
        "{shown}"
    );

    // A numeric secret where a table is expected: the error names the
    // variable, not the value.
    let out = bin()
        .args(["config", "check"])
        .env("FAULTLINE__ELASTICSEARCH__PASSWORD__X", "65358979")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(check(&out).contains("FAULTLINE__ELASTICSEARCH__PASSWORD__X"));

    // The Elasticsearch sink's warnings about an unreachable server.
    let logs = write(dir.path(), "logs.jsonl", &error_lines(1, 1, 1));
    let out = bin()
        .arg("--config")
        .arg(&cfg)
        .args(["replay", "--no-progress", "--warmup", "0s", "--state"])
        .arg(dir.path().join("state"))
        .arg(&logs)
        .env("FAULTLINE_LOG", "debug")
        .output()
        .unwrap();
    let all = check(&out);
    assert!(all.contains("127.0.0.1:9"), "the server is named: {all}");
}

#[test]
fn the_metrics_endpoint_and_the_logs_of_run_never_show_a_secret() {
    // `faultline run` with secrets in every place they can be given (the
    // Elasticsearch URL and password, a Kafka SASL password from the file
    // and from the environment), an unreachable broker and Elasticsearch
    // server, debug logs: neither /metrics, /readyz, /healthz nor the logs
    // show one.
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let tag = format!("hostile-secret-{}-{port}", std::process::id());
    let cfg = write(
        dir.path(),
        "faultline.toml",
        &format!(
            "[kafka]\nbrokers = \"127.0.0.1:9\"\ntopics = [\"{tag}\"]\ngroup_id = \"{tag}\"\n\
             properties = {{ \"security.protocol\" = \"SASL_PLAINTEXT\", \"sasl.mechanism\" = \"PLAIN\", \"sasl.username\" = \"fl\", \"sasl.password\" = \"inline-5\" }}\n\
             [elasticsearch]\nurl = \"http://elastic:in-url-6@127.0.0.1:9/\"\ntimeout = \"1s\"\n\
             [metrics]\nlisten = \"127.0.0.1:{port}\"\n"
        ),
    );
    let log = std::fs::File::create(dir.path().join("run.log")).unwrap();
    let child = bin()
        .arg("--config")
        .arg(&cfg)
        .arg("run")
        .arg("--state")
        .arg(dir.path().join("state"))
        .env("FAULTLINE_LOG", "debug")
        .env("FAULTLINE__ELASTICSEARCH__PASSWORD", "env-7")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let run = Killed(child);
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(started.elapsed() < Duration::from_secs(60), "no endpoint");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Until readiness has said why it is down (the broker).
    let mut answers = String::new();
    while started.elapsed() < Duration::from_secs(30) {
        answers.clear();
        for path in ["/metrics", "/readyz", "/healthz"] {
            answers.push_str(&http_get(port, path));
        }
        if answers.contains("broker") {
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    drop(run);
    let logs = std::fs::read_to_string(dir.path().join("run.log")).unwrap();
    assert!(answers.contains("faultline_up"), "{answers}");
    assert!(
        logs.contains("127.0.0.1:9"),
        "the servers are named: {logs}"
    );
    for s in ["inline-5", "in-url-6", "env-7"] {
        assert!(!answers.contains(s), "{s} in an answer:\n{answers}");
        assert!(!logs.contains(s), "{s} in the logs:\n{logs}");
    }
}

#[test]
fn out_of_range_values_are_refused_with_the_key_and_the_allowed_range() {
    let dir = tempfile::tempdir().unwrap();
    let logs = write(dir.path(), "logs.jsonl", &error_lines(1, 1, 1));
    let run = |config: &str, args: &[&str]| {
        let cfg = write(dir.path(), "faultline.toml", config);
        let out = bin().arg("--config").arg(&cfg).args(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!stderr.contains("panicked"), "{config} {args:?}: {stderr}");
        (out.status.code(), stderr)
    };
    let logs = logs.to_str().unwrap();
    let (code, err) = run("", &["replay", "--warmup", "99999999999999999999d", logs]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("--warmup") && err.contains("too long"),
        "{err}"
    );
    for (config, key, says) in [
        (
            "[window]\nlateness = 18446744073709551615\n",
            "lateness",
            "at most",
        ),
        (
            "[window]\nlateness = \"7d\"\n",
            "window.lateness",
            "between 0s and 1h",
        ),
        (
            "[window]\nhistory = \"3650d\"\n",
            "window.history",
            "between 1m and 7d",
        ),
        (
            "[window]\nbucket = \"0s\"\n",
            "window.bucket",
            "between 1s and 1d",
        ),
        (
            "[baseline]\nwarmup = \"99999999999999999999d\"\n",
            "warmup",
            "too long",
        ),
        (
            "[baseline]\ncheckpoint_every = 0\n",
            "baseline.checkpoint_every",
            "between 1",
        ),
        (
            "[detect]\nsurge_min_ratio = nan\n",
            "detect.surge_min_ratio",
            "between 1",
        ),
        (
            "[detect]\nsurge_p_value = 0.0\n",
            "detect.surge_p_value",
            "strictly",
        ),
        ("[kafka]\nbatch_size = 0\n", "kafka.batch_size", "between 1"),
        (
            "[rates]\nhold = \"3650d\"\n",
            "rates.hold",
            "between 0s and 3h",
        ),
        (
            "[input]\njoin_max_millis = 18446744073709551615\n",
            "input.join_max_millis",
            "between 0",
        ),
        (
            "[fingerprint.learn]\nmax_bytes = 1000\n",
            "fingerprint.learn.max_bytes",
            "between 4194304",
        ),
        (
            "[fingerprint.learn]\nmax_bytes = 8388608\nmax_service_bytes = 16777216\n",
            "fingerprint.learn.max_service_bytes",
            "between 4194304 and 8388608",
        ),
        (
            "[elasticsearch]\nbulk_size = 0\n",
            "elasticsearch.bulk_size",
            "between 1",
        ),
        (
            "[elasticsearch]\nspool_max_alerts = 10\n",
            "elasticsearch.spool_max_alerts",
            "between 500",
        ),
        (
            "[elasticsearch]\nwhen_full = \"drop_oldest\"\n",
            "when_full",
            "block",
        ),
        (
            "[rates]\nwindow = \"1d\"\n",
            "rates.window",
            "between 1m and 3h",
        ),
        (
            "[input]\nmax_line_bytes = 99999999999\n",
            "input.max_line_bytes",
            "between 64",
        ),
    ] {
        let (code, err) = run(config, &["config", "check"]);
        assert_eq!(code, Some(2), "{config}: {err}");
        assert!(err.contains(key) && err.contains(says), "{config}: {err}");
    }
}

/// Runs `args`, killing it after 30 s (a hang is a failure, not a stuck test).
fn bounded(args: &[&str]) -> Output {
    let mut child = spawn_piped(args);
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("{args:?} hung");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn an_inconsistent_state_is_refused_with_an_error_naming_the_item() {
    let dir = tempfile::tempdir().unwrap();
    let text = error_lines(200, 3, 1);
    let logs = write(dir.path(), "logs.jsonl", &text);
    let good = dir.path().join("good");
    replay(&logs, &dir.path().join("alerts"), Some(&good));
    // Damage is made in the JSON of an older faultline's `state.json` (the
    // store's own checks on load are tested in src/state.rs).
    let original = state_as_json(&good);
    type Edit = fn(&mut serde_json::Value);
    let cases: [(&str, Edit, &str); 4] = [
        (
            "huge head_len",
            |s| {
                for (_, i) in s["inputs"].as_object_mut().unwrap() {
                    i["head_len"] = serde_json::json!(1u64 << 60);
                }
            },
            "head_len",
        ),
        (
            "empty window counts",
            |s| {
                for (_, t) in s["baseline"]["types"].as_object_mut().unwrap() {
                    t["window"]["counts"] = serde_json::json!([]);
                }
            },
            "window holds 0 buckets",
        ),
        (
            "learner index out of range",
            |s| s["baseline"]["learner"]["clusters"][0]["alias_of"] = serde_json::json!(99_999),
            "names cluster 99999",
        ),
        (
            "alias cycle",
            |s| {
                let c = &mut s["baseline"]["learner"]["clusters"];
                c[0]["alias_of"] = serde_json::json!(1);
                c[1]["alias_of"] = serde_json::json!(0);
            },
            "cycle",
        ),
    ];
    for (what, edit, says) in cases {
        let state = dir.path().join(what.replace(' ', "-"));
        let mut s = original.clone();
        edit(&mut s);
        put_state_json(&state, &s);
        let st = state.to_str().unwrap();
        for args in [
            vec!["types", "list", "--state", st],
            vec![
                "replay",
                "--no-progress",
                "--state",
                st,
                logs.to_str().unwrap(),
            ],
        ] {
            let out = bounded(&args);
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{what} {args:?}: {err}");
            assert!(
                err.contains("state.json") && err.contains(says),
                "{what} {args:?}: {err}"
            );
        }
    }
}

#[test]
fn a_read_only_state_directory_fails_at_start_and_a_stale_temp_file_is_removed() {
    let dir = tempfile::tempdir().unwrap();
    let logs = write(dir.path(), "logs.jsonl", &error_lines(1, 1, 1));
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::write(state.join(".state.json.tmp"), b"{torn").unwrap();
    // A copy of the previous generation cut short by a crash.
    std::fs::write(state.join("state.redb.prev.tmp"), b"torn").unwrap();
    replay(&logs, &dir.path().join("alerts"), Some(&state));
    assert!(!state.join(".state.json.tmp").exists());
    assert!(!state.join("state.redb.prev.tmp").exists());

    use std::os::unix::fs::PermissionsExt;
    let ro = dir.path().join("read-only");
    std::fs::create_dir_all(&ro).unwrap();
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).unwrap();
    // Root ignores permissions: then a path under a regular file stands in
    // for a directory faultline cannot write.
    let ro = if std::fs::write(ro.join("probe"), b"x").is_ok() {
        write(dir.path(), "a-file", "").join("state")
    } else {
        ro
    };
    let alerts = dir.path().join("ro-alerts");
    let out = bin()
        .args(["replay", "--no-progress", "--warmup", "0s", "--state"])
        .arg(&ro)
        .arg("--alerts")
        .arg(&alerts)
        .arg(&logs)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("not writable"), "{err}");
    assert!(!alerts.exists(), "no alert went out before the failure");
}

#[test]
fn versions_beyond_the_cap_are_counted_together_under_other() {
    // One error type in 100 versions (a version string per build): the
    // type keeps 64 apart and counts the rest under "(other)", nothing lost.
    let dir = tempfile::tempdir().unwrap();
    let lines: String = (0..100)
        .map(|i| {
            format!(
                "{{\"@timestamp\":\"2026-11-02T10:{:02}:{:02}.000Z\",\"log.level\":\"ERROR\",\"service.name\":\"api\",\"service.version\":\"1.{i}.0\",\"message\":\"disk quota exceeded on volume\"}}\n",
                i / 60,
                i % 60
            )
        })
        .collect();
    let logs = write(dir.path(), "logs.jsonl", &lines);
    let state = dir.path().join("state");
    replay(&logs, &dir.path().join("a.jsonl"), Some(&state));
    let out = bin()
        .args(["types", "list", "--json", "--state"])
        .arg(&state)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let versions = v[0]["versions"].as_object().expect("versions");
    assert_eq!(versions.len(), 65, "{versions:?}");
    assert_eq!(versions["(other)"], 36);
    assert_eq!(
        versions.values().filter_map(|n| n.as_u64()).sum::<u64>(),
        100
    );
}

/// A made-up word of letters only (masking leaves it alone), distinct for
/// each `i`, at least four letters.
fn made_up_word(mut i: usize) -> String {
    let mut s = String::new();
    i += 26 * 26 * 26;
    while i > 0 {
        s.insert(0, (b'a' + (i % 26) as u8) as char);
        i /= 26;
    }
    s
}

#[test]
fn types_beyond_the_hot_cap_keep_their_entry_but_not_their_window() {
    // 3,000 distinct types (a made-up word each, the learned stage off so
    // none folds) under a hot cap of 100: every type stays known, at most
    // 100 keep window counts in memory.
    let dir = tempfile::tempdir().unwrap();
    let word = made_up_word;
    let lines: String = (0..3000)
        .map(|i| {
            format!(
                "{{\"@timestamp\":\"2026-11-02T10:{:02}:{:02}.{:03}Z\",\"log.level\":\"ERROR\",\"service.name\":\"api\",\"message\":\"widget {} could not be loaded\"}}\n",
                i / 6000,
                i / 100 % 60,
                i % 100 * 10,
                word(i)
            )
        })
        .collect();
    let logs = write(dir.path(), "logs.jsonl", &lines);
    let cfg = write(
        dir.path(),
        "faultline.toml",
        "[fingerprint.learn]\nenabled = false\n[baseline]\nmax_hot_types = 100\n",
    );
    let state = dir.path().join("state");
    let out = bin()
        .arg("--config")
        .arg(&cfg)
        .args(["replay", "--no-progress", "--alerts"])
        .arg(dir.path().join("a.jsonl"))
        .arg("--state")
        .arg(&state)
        .arg(&logs)
        .output()
        .unwrap();
    support::assert_ok(&out);
    let s = faultline::state::State::load(&state).unwrap().unwrap();
    let types = &s.baseline.types;
    assert_eq!(types.len(), 3000, "every type stays known");
    let hot = types.values().filter(|t| t.window.is_some()).count();
    assert!((1..=100).contains(&hot), "{hot} types keep a window");
    assert!(
        types
            .values()
            .filter(|t| t.window.is_none())
            .all(|t| t.samples.is_empty()),
        "cold types keep no samples"
    );
}

#[test]
fn the_learner_stays_within_its_memory_budget_and_an_evicted_template_keeps_its_type() {
    // 6,000 distinct messages that never generalise (three new made-up
    // words each: two that vary together would be one learned type; the
    // learner's worst case, about 1.5 KiB each) under the smallest
    // budget, 4 MiB: the oldest templates are evicted. Then the first 500
    // come again: learned afresh, they are the same types, not new ones.
    let dir = tempfile::tempdir().unwrap();
    let word = made_up_word;
    let line = |t: usize, i: usize| {
        format!(
            "{{\"@timestamp\":\"2026-11-02T10:{:02}:{:02}.{:03}Z\",\"log.level\":\"ERROR\",\"service.name\":\"api\",\"message\":\"could not open {} while {} was loading {}\"}}\n",
            t / 6000,
            t / 100 % 60,
            t % 100 * 10,
            word(i),
            word(i + 1_000_000),
            word(i + 2_000_000)
        )
    };
    let lines: String = (0..6000)
        .map(|i| line(i, i))
        .chain((0..500).map(|i| line(6000 + i, i)))
        .collect();
    let logs = write(dir.path(), "logs.jsonl", &lines);
    let cfg = write(
        dir.path(),
        "faultline.toml",
        "[fingerprint.learn]\nmax_bytes = 4194304\nmax_service_bytes = 4194304\n",
    );
    let state = dir.path().join("state");
    let out = bin()
        .arg("--config")
        .arg(&cfg)
        .args(["replay", "--no-progress", "--summary-json", "--alerts"])
        .arg(dir.path().join("a.jsonl"))
        .arg("--state")
        .arg(&state)
        .arg(&logs)
        .output()
        .unwrap();
    support::assert_ok(&out);
    let summary: serde_json::Value = String::from_utf8_lossy(&out.stderr)
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap();
    assert_eq!(summary["errors"], 6500, "{summary}");
    assert_eq!(
        summary["types_tracked"], 6000,
        "an evicted template that comes back is its old type: {summary}"
    );
    let evicted = summary["learner_evicted"].as_u64().unwrap();
    assert!(evicted > 3000, "{summary}");
    let bytes = summary["learner_bytes"].as_u64().unwrap();
    assert!(bytes <= (4 << 20) + 4096, "{summary}");
    // The stored learner is the bounded one, and loads.
    let s = faultline::state::State::load(&state).unwrap().unwrap();
    assert!(
        s.baseline.learner.len() < 3000,
        "{} clusters",
        s.baseline.learner.len()
    );
    assert_eq!(s.baseline.types.len(), 6000);
}

/// `n` bytes of short words (a few hundred distinct ones).
fn short_words(n: usize) -> String {
    let mut s = String::with_capacity(n + 8);
    let mut i = 0usize;
    while s.len() < n {
        let w = i.wrapping_mul(2_654_435_761) % 500;
        s.push_str(&format!("w{w} "));
        i += 1;
    }
    s
}

#[test]
fn one_error_line_of_many_short_words_is_typed_and_a_huge_one_finishes() {
    // Issue 16, first row: a 900 KB ERROR message of short words (under
    // the 1 MiB line cap) was quadratic (about 15 min). It must be one
    // error of one type, not dropped; its cost is measured by
    // scripts/bench-longline, here `bounded` only catches a hang (30 s).
    let dir = tempfile::tempdir().unwrap();
    let long = format!(
        "{{\"@timestamp\":\"2026-11-02T10:00:00Z\",\"log.level\":\"ERROR\",\"service.name\":\"api\",\"message\":\"{}\"}}\n",
        short_words(900_000)
    );
    let logs = write(dir.path(), "long.jsonl", &long.repeat(2));
    let logs = logs.to_str().unwrap();
    let out = bounded(&["replay", "--no-progress", "--summary-json", logs]);
    support::assert_ok(&out);
    let summary: serde_json::Value = String::from_utf8_lossy(&out.stderr)
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap();
    assert_eq!(summary["errors"], 2, "{summary}");
    assert_eq!(
        summary["types_tracked"], 1,
        "the same message twice is one type: {summary}"
    );
    // `fingerprint` on one line of 8 MB of words (far over the line cap):
    // it finishes and says what it did with the line.
    let huge = write(
        dir.path(),
        "huge.txt",
        &format!("ERROR {}\n", short_words(8 << 20)),
    );
    let out = bounded(&["fingerprint", "--raw", huge.to_str().unwrap()]);
    support::assert_ok(&out);
    let first = String::from_utf8_lossy(&out.stdout);
    assert!(
        first.contains("\"line_id\":1"),
        "{}",
        &first[..first.len().min(300)]
    );
}

#[test]
fn services_beyond_the_cap_share_one_rate_counter_and_no_error_is_lost() {
    // 1,100 services, one error each: 1,000 keep a rate counter of their
    // own, the rest are counted together under `(other)`.
    let dir = tempfile::tempdir().unwrap();
    let logs = write(dir.path(), "logs.jsonl", &error_lines(1100, 1, 1100));
    let state = dir.path().join("state");
    let (_, summary) = replay(&logs, &dir.path().join("a.jsonl"), Some(&state));
    assert_eq!(summary["errors"], 1100, "{summary}");
    let s = faultline::state::State::load(&state).unwrap().unwrap();
    let rates = &s.rates;
    assert_eq!(
        rates.len(),
        faultline::series::MAX_SERVICES + 1,
        "{} services",
        rates.len()
    );
    let errors: u64 = rates
        .values()
        .flat_map(|v| v.values())
        .map(|c| c.errors)
        .sum();
    assert_eq!(errors, 1100, "every error is counted somewhere");
    let other: u64 = rates[faultline::series::OTHER]
        .values()
        .map(|c| c.errors)
        .sum();
    assert_eq!(other, 100);
}

/// `n` distinct types (a made-up word each), 10 ms apart from `hour`:00.
fn distinct_types(n: usize, hour: u32) -> String {
    (0..n)
        .map(|i| {
            format!(
                "{{\"@timestamp\":\"2026-11-02T{hour:02}:{:02}:{:02}.{:03}Z\",\"log.level\":\"ERROR\",\"service.name\":\"api\",\"message\":\"widget {} could not be loaded\"}}\n",
                i / 6000,
                i / 100 % 60,
                i % 100 * 10,
                made_up_word(i)
            )
        })
        .collect()
}

#[test]
fn types_evicted_beyond_the_memory_bound_stay_known_and_are_never_alerted_again() {
    // 3,000 types, then the same 3,000 an hour later, in one run: under a
    // hot cap of 100 and at most 500 compact records in memory, most are
    // on disk (without a state: the temporary table; with one: the
    // store's rows) when they recur. None may come back as a new type.
    let dir = tempfile::tempdir().unwrap();
    let logs = write(
        dir.path(),
        "logs.jsonl",
        &(distinct_types(3000, 10) + &distinct_types(3000, 11)),
    );
    let cfg = write(
        dir.path(),
        "faultline.toml",
        // Every warm-up record is a new type: judged against its own
        // novelty rate the service would summarise, not page; this test
        // is about eviction, so the per-type alerts stay on.
        "[fingerprint.learn]\nenabled = false\n[baseline]\nmax_hot_types = 100\nmax_cold_in_memory = 500\n[detect]\nnovel_rate_max_share = 1.0\n",
    );
    for state in [None, Some(dir.path().join("state"))] {
        let alerts = dir.path().join(format!("a-{}.jsonl", state.is_some()));
        let mut c = bin();
        c.arg("--config").arg(&cfg).args([
            "replay",
            "--warmup",
            "1s",
            "--no-progress",
            "--summary-json",
            "--alerts",
        ]);
        c.arg(&alerts).arg(&logs);
        if let Some(s) = &state {
            c.arg("--state").arg(s);
        }
        let out = c.output().unwrap();
        support::assert_ok(&out);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let summary: serde_json::Value = stderr
            .lines()
            .rev()
            .find_map(|l| serde_json::from_str(l).ok())
            .unwrap();
        assert_eq!(
            summary["types_tracked"], 3000,
            "state {state:?}: every type known once: {summary}"
        );
        let novel: Vec<serde_json::Value> = std::fs::read_to_string(&alerts)
            .unwrap()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|a| a["kind"] == "novel")
            .collect();
        assert!(!novel.is_empty(), "state {state:?}: the first hour alerts");
        assert!(
            novel.iter().all(|a| a["event_time"]
                .as_str()
                .is_some_and(|t| t.starts_with("2026-11-02T10:"))),
            "state {state:?}: a type of the first hour alerted again in the second: {novel:?}"
        );
        if let Some(s) = &state {
            // The store keeps every type, whole.
            let back = faultline::state::State::load(s).unwrap().unwrap();
            assert_eq!(back.baseline.types.len(), 3000);
            assert!(back.baseline.types.values().all(|t| t.count == 2));
        }
    }
}

/// `n` distinct types, two minutes apart from 10:00 (so no storm folds
/// their novel alerts into one).
fn types_two_minutes_apart(n: usize) -> String {
    (0..n)
        .map(|i| {
            let t = 10 * 60 + 2 * i;
            format!(
                "{{\"@timestamp\":\"2026-11-{:02}T{:02}:{:02}:00Z\",\"log.level\":\"ERROR\",\"service.name\":\"api\",\"message\":\"widget {} could not be loaded\"}}\n",
                2 + t / (24 * 60),
                t / 60 % 24,
                t % 60,
                made_up_word(i)
            )
        })
        .collect()
}

/// Replays `logs` with `cfg`, the learned stage off, alerts into `alerts`.
fn replay_with(cfg: &str, dir: &Path, logs: &Path, alerts: &Path) -> Output {
    let cfg = write(
        dir,
        "faultline.toml",
        &format!("[fingerprint.learn]\nenabled = false\n{cfg}"),
    );
    let out = bin()
        .arg("--config")
        .arg(&cfg)
        .args(["replay", "--warmup", "1ms", "--no-progress", "--alerts"])
        .arg(alerts)
        .arg(logs)
        .output()
        .unwrap();
    support::assert_ok(&out);
    out
}

fn ids_in_order(p: &Path) -> Vec<String> {
    std::fs::read_to_string(p)
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["id"].as_str().map(String::from))
        .collect()
}

#[test]
fn a_full_spool_with_drop_newest_keeps_the_oldest_alerts_and_never_holds_up_detection() {
    // Elasticsearch unreachable (a port nobody listens on: a real outage)
    // and a spool of 500 alerts at most with `when_full = "drop_newest"`:
    // 600 novel types must all reach the file sink, the spool keeps the
    // first 500 for Elasticsearch, the rest are counted and logged, and
    // the replay does not wait for the server.
    let dir = tempfile::tempdir().unwrap();
    let logs = write(dir.path(), "logs.jsonl", &types_two_minutes_apart(600));
    let alerts = dir.path().join("a.jsonl");
    let spool = dir.path().join("spool");
    let t0 = Instant::now();
    let out = replay_with(
        &format!(
            "[elasticsearch]\nurl = \"http://127.0.0.1:{}\"\nspool_max_alerts = 500\nwhen_full = \"drop_newest\"\ntimeout = \"1s\"\nspool_dir = \"{}\"\n",
            free_port(),
            spool.display()
        ),
        dir.path(),
        &logs,
        &alerts,
    );
    let took = t0.elapsed();
    let written = ids_in_order(&alerts);
    let spooled = ids_in_order(&spool.join("alerts.jsonl"));
    assert!(written.len() > 500, "{} alerts in the file", written.len());
    assert_eq!(spooled.len(), 500, "the spool holds its bound");
    assert_eq!(
        spooled[..],
        written[..500],
        "drop_newest keeps the oldest alerts, in order"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("the spool is full") && stderr.contains("drop_newest"),
        "the drop is logged: {stderr}"
    );
    // Blocking would wait for the server (1 s per attempt) on each of the
    // 100 dropped alerts.
    assert!(took < Duration::from_secs(60), "took {took:?}");
}

#[test]
fn the_alert_file_remembers_the_ids_it_holds_across_runs_and_forgets_beyond_its_bound() {
    let dir = tempfile::tempdir().unwrap();
    let logs = write(dir.path(), "logs.jsonl", &types_two_minutes_apart(30));
    let alerts = dir.path().join("a.jsonl");
    replay_with("", dir.path(), &logs, &alerts);
    let first = ids_in_order(&alerts);
    assert!(first.len() >= 20, "{} alerts", first.len());
    // The same input again without a state (as after a crash before the
    // first checkpoint): every alert id is read back from the file, and
    // none is written twice. A torn last line (killed mid-write) is not
    // an alert and does not glue itself to the next one.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&alerts)
        .unwrap();
    std::io::Write::write_all(&mut f, b"{\"schema\":\"faultline.alert/v1\",\"id\":\"tor").unwrap();
    drop(f);
    replay_with("", dir.path(), &logs, &alerts);
    assert_eq!(ids_in_order(&alerts), first, "nothing written twice");
    // The memory is bounded (200,000 ids): after that many later alerts
    // the first ones are forgotten and a rerun writes them again, as
    // documented (a restart only re-emits the alerts since its last
    // checkpoint, far fewer).
    let mut filler = String::new();
    for i in 0..200_000 {
        filler.push_str(&format!("{{\"id\":\"filler-{i}\"}}\n"));
    }
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&alerts)
        .unwrap();
    std::io::Write::write_all(&mut f, filler.as_bytes()).unwrap();
    drop(f);
    replay_with("", dir.path(), &logs, &alerts);
    let all = ids_in_order(&alerts);
    assert_eq!(all.len(), first.len() * 2 + 200_000);
    assert_eq!(all[all.len() - first.len()..], first[..]);
}
