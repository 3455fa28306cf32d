//! End-to-end: generated release scenarios through `faultline replay`.
//!
//! The scenario generator (examples/gen-logs) knows the truth — which error
//! types are new, which surge, which only drift — so these tests judge the
//! alerts against it rather than against recorded output.

#[path = "../examples/gen-logs/scenario.rs"]
mod scenario;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use faultline::alert::{Alert, AlertSink, Kind, MemorySink};
use faultline::config::{Config, Dur};
use faultline::metrics::Metrics;
use faultline::pipeline::{self, BaselineOptions, ReplayOptions, ReplaySummary};
use faultline::source::Input;
use regex::Regex;

struct Truth {
    scenario: scenario::Scenario,
    types: Vec<(&'static scenario::ErrorType, Regex)>,
}

impl Truth {
    fn new(cfg: &scenario::Config) -> Truth {
        let types = scenario::ERROR_TYPES
            .iter()
            .map(|t| (t, Regex::new(t.regex).expect("scenario regex")))
            .collect();
        Truth {
            scenario: scenario::Scenario::generate(cfg),
            types,
        }
    }

    /// The scenario type an alert is about, from its service and sample.
    fn type_of(&self, a: &Alert) -> Option<&'static scenario::ErrorType> {
        let sample = a.sample.as_deref()?;
        let first = sample.lines().next().unwrap_or("");
        self.types
            .iter()
            .find(|(t, re)| t.service.name() == a.service && re.is_match(first))
            .map(|(t, _)| *t)
    }

    fn new_types(&self) -> BTreeSet<&'static str> {
        let present: BTreeSet<&str> = self.scenario.records.iter().map(|r| r.type_id).collect();
        scenario::ERROR_TYPES
            .iter()
            .filter(|t| t.kind == scenario::Kind::New && present.contains(t.id))
            .map(|t| t.id)
            .collect()
    }

    fn warmup_end_ms(&self) -> i64 {
        (self.scenario.start_us + (scenario::WARMUP_MINUTES * 60e6) as i64) / 1000
    }
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, text).unwrap();
    p
}

fn replay(cfg: &Config, inputs: &[PathBuf], warmup: &str) -> ReplaySummary {
    let opts = ReplayOptions {
        inputs: inputs.iter().map(|p| Input::Path(p.clone())).collect(),
        baseline: BaselineOptions {
            warmup: Some(warmup.parse::<Dur>().unwrap()),
            baseline: None,
        },
        ..ReplayOptions::default()
    };
    let sinks: Vec<Box<dyn AlertSink>> = vec![Box::new(MemorySink::default())];
    pipeline::replay(cfg, &opts, sinks, Arc::new(Metrics::default())).unwrap()
}

fn event_ms(a: &Alert) -> i64 {
    chrono::DateTime::parse_from_rfc3339(&a.event_time)
        .unwrap()
        .timestamp_millis()
}

/// The checks every format must pass on the default scenario.
fn judge(truth: &Truth, alerts: &[Alert]) {
    let mut novel: BTreeMap<&str, usize> = BTreeMap::new();
    let mut wrong = Vec::new();
    for a in alerts.iter().filter(|a| a.kind == Kind::Novel) {
        assert!(
            event_ms(a) >= truth.warmup_end_ms(),
            "alert during warm-up: {a:?}"
        );
        match truth.type_of(a) {
            Some(t) if t.kind == scenario::Kind::New => *novel.entry(t.id).or_default() += 1,
            Some(t) => wrong.push(format!(
                "known type {} alerted as new: {:?}",
                t.id, a.sample
            )),
            None => wrong.push(format!("novel alert matches no error type: {:?}", a.sample)),
        }
    }
    assert!(
        wrong.is_empty(),
        "false novel alerts:\n{}",
        wrong.join("\n")
    );
    let expected = truth.new_types();
    let got: BTreeSet<&str> = novel.keys().copied().collect();
    assert_eq!(got, expected, "every injected new type is alerted");
    for (id, n) in &novel {
        assert_eq!(*n, 1, "{id} alerted {n} times");
    }
    let surged: BTreeSet<&str> = alerts
        .iter()
        .filter(|a| a.kind == Kind::Surge)
        .filter_map(|a| truth.type_of(a).map(|t| t.id))
        .collect();
    for s in scenario::SURGES {
        assert!(
            surged.contains(s.type_id),
            "surge of {} not alerted; surges: {surged:?}",
            s.type_id
        );
    }
    for a in alerts.iter().filter(|a| a.kind == Kind::Surge) {
        let t = truth.type_of(a).map(|t| t.id).unwrap_or("?");
        assert!(
            scenario::SURGES.iter().any(|s| s.type_id == t),
            "surge alert for {t}, which does not surge: {a:?}"
        );
    }
}

#[test]
fn json_scenario_alerts_every_new_type_once_and_each_surge_and_nothing_else() {
    let truth = Truth::new(&scenario::Config::default());
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "logs.jsonl", &truth.scenario.json_string());
    let s = replay(&Config::default(), &[p], "30m");
    judge(&truth, &s.alerts);
    assert_eq!(
        s.metrics.bad.values().sum::<u64>(),
        0,
        "{:?}",
        s.metrics.bad
    );
}

#[test]
fn text_scenario_gives_the_same_verdicts_as_json() {
    let truth = Truth::new(&scenario::Config::default());
    let dir = tempfile::tempdir().unwrap();
    // One file per service, each its own stream: files read one after the
    // other would not be one event-time stream (each starts two hours
    // before the previous one ended). Service is part of identity, so the
    // union of per-service runs must match the truth.
    let mut alerts = Vec::new();
    for svc in scenario::Service::ALL {
        let text = truth.scenario.text_string(svc);
        let p = write(dir.path(), &format!("{}.log", svc.name()), &text);
        let s = replay(&Config::default(), &[p], "30m");
        alerts.extend(s.alerts);
    }
    judge(&truth, &alerts);
}

#[test]
fn warn_lines_never_alert_even_when_new() {
    let dir = tempfile::tempdir().unwrap();
    let mut lines = String::new();
    for i in 0..40 {
        lines.push_str(&format!(
            "{{\"@timestamp\":\"2026-11-02T10:{:02}:00Z\",\"log.level\":\"INFO\",\"message\":\"tick {i}\",\"service.name\":\"api\"}}\n",
            i
        ));
    }
    lines.push_str("{\"@timestamp\":\"2026-11-02T10:45:00Z\",\"log.level\":\"WARN\",\"message\":\"disk almost full on /data\",\"service.name\":\"api\"}\n");
    lines.push_str("{\"@timestamp\":\"2026-11-02T10:46:00Z\",\"log.level\":\"ERROR\",\"message\":\"disk full on /data\",\"service.name\":\"api\"}\n");
    let p = write(dir.path(), "a.jsonl", &lines);
    let s = replay(&Config::default(), &[p], "30m");
    let kinds: Vec<&str> = s.alerts.iter().map(|a| a.template.as_str()).collect();
    assert_eq!(kinds, ["disk full on /data"], "only the ERROR line alerts");
}

#[test]
fn junk_input_is_counted_by_reason_and_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes: Vec<u8> = Vec::new();
    bytes.extend_from_slice(b"{\"@timestamp\":\"2026-11-02T10:00:00Z\",\"log.level\":\"ERROR\",\"message\":\"first\",\"service.name\":\"api\"}\n");
    bytes.extend_from_slice(b"{not json at all\n");
    bytes.extend_from_slice(b"\xff\xfe\xfd invalid utf8\n");
    bytes.extend_from_slice(&[0u8, 1, 2, 3, 4, 5, 0, 0, b'\n']);
    bytes.extend_from_slice(format!("{{\"message\":\"{}\"}}\n", "x".repeat(2 << 20)).as_bytes());
    bytes.extend_from_slice(
        b"{\"@timestamp\":\"not a time\",\"log.level\":\"ERROR\",\"message\":\"x\"}\n",
    );
    bytes.extend_from_slice(b"{\"@timestamp\":\"2026-11-02T10:00:05Z\",\"log.level\":\"ERROR\",\"message\":\"last\",\"service.name\":\"api\"}\n");
    let p = dir.path().join("junk.jsonl");
    std::fs::write(&p, &bytes).unwrap();
    let mut cfg = Config::default();
    cfg.input.format = faultline::config::Format::Json;
    let s = replay(&cfg, std::slice::from_ref(&p), "30m");
    assert_eq!(s.metrics.errors, 2, "both good error records got through");
    for reason in ["invalid_json", "invalid_utf8", "too_long", "bad_timestamp"] {
        assert!(
            s.metrics.bad.get(reason).copied().unwrap_or(0) >= 1,
            "{reason} not counted: {:?}",
            s.metrics.bad
        );
    }
    // --strict stops at the first bad record, naming its line.
    let out = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args(["replay", "--strict", "--format", "json"])
        .arg(&p)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("junk.jsonl:2:"), "{err}");
}

fn read_alerts(p: &Path) -> Vec<Alert> {
    std::fs::read_to_string(p)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

#[test]
fn a_kill_9_and_restart_with_state_resumes_without_re_alerting() {
    let truth = Truth::new(&scenario::Config::default());
    let dir = tempfile::tempdir().unwrap();
    let logs = write(dir.path(), "logs.jsonl", &truth.scenario.json_string());
    let bin = env!("CARGO_BIN_EXE_faultline");
    let run = |state: &Path, alerts: &Path| {
        Command::new(bin)
            .args(["replay", "--warmup", "30m", "--no-progress"])
            .arg("--state")
            .arg(state)
            .arg("--alerts")
            .arg(alerts)
            .arg(&logs)
            .env("FAULTLINE__BASELINE__CHECKPOINT_EVERY", "5000")
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    // Uninterrupted reference.
    let ref_alerts = dir.path().join("ref.jsonl");
    assert!(
        run(&dir.path().join("ref-state"), &ref_alerts)
            .wait()
            .unwrap()
            .success()
    );
    let reference: BTreeSet<String> = read_alerts(&ref_alerts).into_iter().map(|a| a.id).collect();
    assert!(!reference.is_empty());

    // Killed twice, at points chosen so at least one checkpoint happened.
    let state = dir.path().join("state");
    let alerts = dir.path().join("alerts.jsonl");
    for delay_ms in [400u64, 900] {
        let mut child = run(&state, &alerts);
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
    }
    assert!(run(&state, &alerts).wait().unwrap().success());
    let got = read_alerts(&alerts);
    let ids: Vec<String> = got.iter().map(|a| a.id.clone()).collect();
    let unique: BTreeSet<String> = ids.iter().cloned().collect();
    assert_eq!(ids.len(), unique.len(), "an alert was written twice");
    assert_eq!(
        unique, reference,
        "the restarted run alerts exactly like the uninterrupted one"
    );

    // A rerun on the same, fully processed input adds nothing.
    assert!(run(&state, &alerts).wait().unwrap().success());
    assert_eq!(read_alerts(&alerts).len(), ids.len());
}

#[test]
fn a_replaced_input_is_detected_and_read_again() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "a.jsonl",
        "{\"@timestamp\":\"2026-11-02T10:00:00Z\",\"log.level\":\"ERROR\",\"message\":\"one\",\"service.name\":\"api\"}\n",
    );
    let state = dir.path().join("state");
    let bin = env!("CARGO_BIN_EXE_faultline");
    let go = || {
        Command::new(bin)
            .args(["replay", "--no-progress", "--summary-json", "--state"])
            .arg(&state)
            .arg(&p)
            .output()
            .unwrap()
    };
    let first = go();
    assert!(first.status.success());
    std::fs::write(
        &p,
        "{\"@timestamp\":\"2026-11-02T11:00:00Z\",\"log.level\":\"ERROR\",\"message\":\"two\",\"service.name\":\"api\"}\n",
    )
    .unwrap();
    let second = go();
    assert!(second.status.success());
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(err.contains("truncated or replaced"), "{err}");
}

fn ecs(minute: u32, second: u32, level: &str, msg: &str) -> String {
    format!(
        "{{\"@timestamp\":\"2026-11-02T{:02}:{:02}:{:02}Z\",\"log.level\":\"{level}\",\"message\":\"{msg}\",\"service.name\":\"api\"}}\n",
        10 + minute / 60,
        minute % 60,
        second
    )
}

/// A warm-up of one known error, then `n` distinct new error types in one
/// minute (words without digits, so each is its own type).
fn burst_of_new_types(n: usize) -> String {
    let mut s = String::new();
    for m in 0..31 {
        s.push_str(&ecs(m, 0, "ERROR", "cache warmup failed"));
    }
    for i in 0..n {
        s.push_str(&ecs(40, (i % 60) as u32, "ERROR", &distinct_message(i)));
    }
    s.push_str(&ecs(45, 0, "INFO", "later"));
    s
}

/// The `i`-th of a series of messages that are each their own type: any
/// two differ in all three word positions (7 and 11 are coprime with 26)
/// or in length, so no position can look variable.
fn distinct_message(i: usize) -> String {
    let words = [
        "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india",
        "juliet", "kilo", "lima", "mike", "november", "oscar", "papa", "quebec", "romeo", "sierra",
        "tango", "uniform", "victor", "whiskey", "xray", "yankee", "zulu",
    ];
    let k = words.len();
    let (a, b, c) = (
        words[i % k],
        words[(7 * i + 3) % k],
        words[(11 * i + 5) % k],
    );
    let tail = if i >= k { " again" } else { "" };
    format!("module {a} {b} {c} crashed{tail}")
}

/// A warm-up in which every error is a new type (`warm` of them, one a
/// minute), then four more new types, one a minute from minute 40.
fn service_without_a_stable_vocabulary(warm: usize) -> String {
    let mut s = String::new();
    for i in 0..warm {
        s.push_str(&ecs(i as u32, 0, "ERROR", &distinct_message(i)));
    }
    for i in 0..4 {
        s.push_str(&ecs(40 + i as u32, 0, "ERROR", &distinct_message(warm + i)));
    }
    s.push_str(&ecs(70, 0, "INFO", "later"));
    s
}

#[test]
fn a_service_whose_warm_up_was_mostly_new_types_gets_one_summary_not_a_page_per_type() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "unsettled.jsonl",
        &service_without_a_stable_vocabulary(30),
    );
    let s = replay(&Config::default(), &[p], "30m");
    let novel = s.alerts.iter().filter(|a| a.kind == Kind::Novel).count();
    let storms: Vec<&Alert> = s.alerts.iter().filter(|a| a.kind == Kind::Storm).collect();
    assert_eq!(novel, 0, "{:?}", s.alerts);
    assert_eq!(
        storms.len(),
        1,
        "one summary for the episode: {:?}",
        s.alerts
    );
    assert!(
        storms[0].template.contains("without a stable vocabulary"),
        "{}",
        storms[0].template
    );
    assert_eq!(
        storms[0].severity,
        faultline::alert::Severity::Medium,
        "its level, not an incident"
    );
    assert_eq!(
        s.state.baseline.types.len(),
        34,
        "the new types are recorded as known"
    );
}

#[test]
fn a_service_with_too_few_warm_up_errors_or_the_share_at_one_still_pages_per_new_type() {
    let dir = tempfile::tempdir().unwrap();
    let few = write(
        dir.path(),
        "few.jsonl",
        &service_without_a_stable_vocabulary(10),
    );
    let s = replay(&Config::default(), &[few], "30m");
    let novel = s.alerts.iter().filter(|a| a.kind == Kind::Novel).count();
    assert_eq!(
        novel, 4,
        "10 warm-up errors are too few to judge: {:?}",
        s.alerts
    );

    let many = write(
        dir.path(),
        "many.jsonl",
        &service_without_a_stable_vocabulary(30),
    );
    let mut cfg = Config::default();
    cfg.detect.novel_rate_max_share = 1.0;
    let s = replay(&cfg, &[many], "30m");
    let novel = s.alerts.iter().filter(|a| a.kind == Kind::Novel).count();
    assert_eq!(
        novel, 4,
        "a share of 1 turns the summary off: {:?}",
        s.alerts
    );
    assert!(s.alerts.iter().all(|a| a.kind != Kind::Storm));
}

#[test]
fn a_storm_names_the_same_top_types_and_total_when_it_keeps_only_those_in_memory() {
    let dir = tempfile::tempdir().unwrap();
    // 500 new types in one minute after a warm-up: made-up words, the
    // learned stage off so none folds.
    let mut input = String::new();
    for m in 0..31 {
        input.push_str(&ecs(m, 0, "ERROR", "cache warmup failed"));
    }
    for i in 0..500u32 {
        let word: String = [i / 400, i / 20 % 20, i % 20]
            .iter()
            .map(|d| {
                [
                    "ka", "lo", "mu", "ne", "pi", "ro", "su", "ta", "vu", "wo", "xe", "ya", "zi",
                    "be", "co", "du", "fe", "gu", "hi", "jo",
                ][*d as usize]
            })
            .collect();
        input.push_str(&ecs(
            40,
            i % 60,
            "ERROR",
            &format!("widget {word} could not be loaded"),
        ));
    }
    input.push_str(&ecs(45, 0, "INFO", "later"));
    let p = write(dir.path(), "storm.jsonl", &input);
    let mut cfg = Config::default();
    cfg.fingerprint.learn.enabled = false;
    let s = replay(&cfg, &[p], "30m");
    let alerted: std::collections::HashSet<String> = s
        .alerts
        .iter()
        .filter(|a| a.kind == Kind::Novel)
        .filter_map(|a| a.fingerprint.map(|f| f.to_string()))
        .collect();
    let storms: Vec<&Alert> = s.alerts.iter().filter(|a| a.kind == Kind::Storm).collect();
    assert_eq!(storms.len(), 1, "{storms:?}");
    let summary = storms[0].storm.as_ref().unwrap();
    assert_eq!(summary.novel_types, 500);
    // The ten smallest ids among the suppressed types, as when the minute
    // kept all 480 of them.
    let mut suppressed: Vec<_> = s
        .state
        .baseline
        .types
        .keys()
        .filter(|fp| !alerted.contains(&fp.to_string()))
        .filter(|fp| {
            s.state
                .baseline
                .get(**fp)
                .is_some_and(|t| t.template.contains("widget"))
        })
        .copied()
        .collect();
    suppressed.sort();
    let top: Vec<_> = summary.top.iter().map(|e| e.fingerprint).collect();
    assert_eq!(top, suppressed[..10]);
}

#[test]
fn a_storm_of_new_types_pages_twenty_times_then_once_with_a_summary() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "storm.jsonl", &burst_of_new_types(30));
    let s = replay(&Config::default(), &[p], "30m");
    let novel = s.alerts.iter().filter(|a| a.kind == Kind::Novel).count();
    let storms: Vec<&Alert> = s.alerts.iter().filter(|a| a.kind == Kind::Storm).collect();
    assert_eq!(
        novel, 20,
        "the first storm_per_minute types alert one by one"
    );
    assert_eq!(storms.len(), 1, "{storms:?}");
    let summary = storms[0].storm.as_ref().unwrap();
    assert_eq!(summary.novel_types, 30);
    assert_eq!(summary.top.len(), 10);
    assert_eq!(
        s.state.baseline.types.len(),
        31,
        "every type is still recorded"
    );
}

#[test]
fn masked_and_no_samples_keep_messages_out_of_alerts() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::new();
    for m in 0..31 {
        text.push_str(&ecs(m, 0, "INFO", "tick"));
    }
    text.push_str(&ecs(
        35,
        0,
        "ERROR",
        "login failed for jane.doe@example.com",
    ));
    let p = write(dir.path(), "pii.jsonl", &text);
    let mut cfg = Config::default();
    cfg.alerts.samples = faultline::config::SampleMode::Masked;
    let s = replay(&cfg, std::slice::from_ref(&p), "30m");
    assert_eq!(s.alerts.len(), 1);
    assert_eq!(s.alerts[0].sample.as_deref(), Some("login failed for <*>"));
    assert!(s.alerts[0].samples.is_empty());
    cfg.alerts.samples = faultline::config::SampleMode::None;
    let s = replay(&cfg, &[p], "30m");
    assert_eq!(s.alerts[0].sample, None);
}

/// Replays `inputs` with `threads` parsing threads and chunks of about
/// `chunk_bytes`, so that chunk boundaries fall inside small test data.
fn replay_threaded(
    cfg: &Config,
    inputs: &[PathBuf],
    threads: usize,
    chunk_bytes: usize,
) -> ReplaySummary {
    let opts = threaded_opts(inputs, threads, chunk_bytes);
    let sinks: Vec<Box<dyn AlertSink>> = vec![Box::new(MemorySink::default())];
    pipeline::replay(cfg, &opts, sinks, Arc::new(Metrics::default())).unwrap()
}

/// The options of [`replay_threaded`]: a 30-minute warm-up, no state.
fn threaded_opts(inputs: &[PathBuf], threads: usize, chunk_bytes: usize) -> ReplayOptions {
    ReplayOptions {
        inputs: inputs.iter().map(|p| Input::Path(p.clone())).collect(),
        baseline: BaselineOptions {
            warmup: Some("30m".parse::<Dur>().unwrap()),
            baseline: None,
        },
        threads,
        chunk_bytes,
        ..ReplayOptions::default()
    }
}

/// Alerts without their wall-clock `detected_at`, the one field that may
/// differ between two runs.
fn comparable(alerts: &[Alert]) -> Vec<serde_json::Value> {
    alerts
        .iter()
        .map(|a| {
            let mut v = serde_json::to_value(a).unwrap();
            v.as_object_mut().unwrap().remove("detected_at");
            v
        })
        .collect()
}

/// Asserts that every threaded run alerts and counts exactly like one
/// thread, and returns the one-thread run.
fn assert_threads_agree(cfg: &Config, inputs: &[PathBuf], chunk_sizes: &[usize]) -> ReplaySummary {
    let one = replay_threaded(cfg, inputs, 1, 0);
    for &chunk in chunk_sizes {
        let two = replay_threaded(cfg, inputs, 2, chunk);
        assert_eq!(
            comparable(&two.alerts),
            comparable(&one.alerts),
            "alerts with 2 threads and {chunk}-byte chunks"
        );
        assert_eq!(
            two.metrics, one.metrics,
            "counters with 2 threads and {chunk}-byte chunks"
        );
        assert_eq!(two.state.watermark, one.state.watermark);
        assert_eq!(
            two.state.baseline.types.len(),
            one.state.baseline.types.len()
        );
    }
    one
}

fn examples_data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/data")
}

#[test]
fn two_threads_replay_the_bundled_json_example_exactly_like_one() {
    let logs = examples_data().join("logs.jsonl");
    let one = assert_threads_agree(&Config::default(), &[logs], &[0, 4096, 65_536]);
    assert!(
        one.alerts.iter().any(|a| a.kind == Kind::Novel),
        "the comparison covers alerts"
    );
}

#[test]
fn two_threads_replay_the_bundled_text_examples_exactly_like_one() {
    let dir = examples_data().join("text");
    let mut inputs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    inputs.sort();
    for input in inputs {
        let one = assert_threads_agree(&Config::default(), &[input], &[512, 8192]);
        assert!(one.metrics.errors > 0);
    }
}

/// A text log with everything that makes a line depend on the lines before
/// it: stack traces, exception lines after their header, Python
/// tracebacks, goroutine dumps, lines without a time or without a year or
/// date, lines no header pattern knows, and junk.
fn tricky_text_log() -> String {
    let mut s = String::new();
    for m in 0..60u32 {
        let ts = |sec: u32| format!("2026-11-02 10:{m:02}:{sec:02}");
        s.push_str(&format!(
            "{},100 INFO  [main] com.acme.App - tick {m}\n",
            ts(0)
        ));
        s.push_str(&format!(
            "{} ERROR com.acme.db.Pool - connection lost after {} ms\n",
            ts(1),
            100 + m
        ));
        s.push_str("java.sql.SQLException: pool exhausted\n");
        s.push_str("\tat com.acme.db.Pool.get(Pool.java:42)\n");
        s.push_str("Caused by: java.net.SocketTimeoutException: read timed out\n");
        s.push_str("\t... 12 more\n");
        s.push_str(&format!("worker {m} failed to renew its lease\n"));
        s.push_str("Traceback (most recent call last):\n");
        s.push_str("  File \"job.py\", line 3, in <module>\n");
        s.push_str(&format!("ValueError: bad value {m}\n"));
        s.push_str(&format!(
            "Nov  2 10:{m:02}:05 host app[123]: error: disk full on /dev/sda{}\n",
            m % 3
        ));
        s.push_str(&format!(
            "10:{m:02}:06.250 [ERROR] c.a.Svc - clock only {m}\n"
        ));
        s.push_str(&format!(
            "E1102 10:{m:02}:07.000000 1 main.go:10] klog failure {m}\n"
        ));
        s.push_str("ERROR:root:no time at all\n");
        s.push_str("   an indented orphan\n");
        s.push_str("\x00\x01\x02 binary junk\n");
        if m >= 40 {
            s.push_str("panic: runtime error: index out of range [3] with length 3\n");
            s.push_str("\ngoroutine 1 [running]:\nmain.main()\n\t/app/main.go:12 +0x1d\n");
            s.push_str(&format!(
                "{} ERROR com.acme.pay.Api - card processor rejected batch {m}\n",
                ts(30)
            ));
            s.push_str("com.acme.pay.ProcessorException: rejected\n\tat com.acme.pay.Api.send(Api.java:7)\n");
        }
        for i in 0..5 {
            s.push_str(&format!("{}.{i}00 INFO app request {i} done\n", ts(40 + i)));
        }
    }
    s
}

#[test]
fn two_threads_replay_text_with_stack_traces_exactly_like_one() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "checkout.log", &tricky_text_log());
    // From one chunk per line (and cuts inside traces when no line starts
    // a record for long) to a few chunks.
    let one = assert_threads_agree(&Config::default(), &[p], &[1, 40, 300, 1000, 5000]);
    assert!(one.alerts.iter().any(|a| a.kind == Kind::Novel));
    assert!(one.metrics.bad.values().sum::<u64>() > 0);
}

/// The command the two-thread tests start from: a 30-minute warm-up, the
/// summary as JSON on stderr, and small chunks so that chunk boundaries fall
/// inside the data.
fn threaded_replay(threads: &str, chunk_bytes: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_faultline"));
    cmd.args([
        "replay",
        "--warmup",
        "30m",
        "--no-progress",
        "--summary-json",
    ])
    .args(["--threads", threads, "--chunk-bytes", chunk_bytes]);
    cmd
}

#[test]
fn two_threads_replay_a_resumed_state_exactly_like_one() {
    let data = std::fs::read_to_string(examples_data().join("logs.jsonl")).unwrap();
    let lines: Vec<&str> = data.lines().collect();
    let half = lines[..lines.len() / 2].join("\n") + "\n";
    let mut results = Vec::new();
    for threads in ["1", "2"] {
        let dir = tempfile::tempdir().unwrap();
        let logs = dir.path().join("logs.jsonl");
        let state = dir.path().join("state");
        let alerts = dir.path().join("alerts.jsonl");
        let go = || {
            let out = threaded_replay(threads, "4096")
                .arg("--state")
                .arg(&state)
                .arg("--alerts")
                .arg(&alerts)
                .arg(&logs)
                .env("FAULTLINE__BASELINE__CHECKPOINT_EVERY", "500")
                .output()
                .unwrap();
            let err = String::from_utf8_lossy(&out.stderr).to_string();
            assert!(out.status.success(), "{err}");
            err
        };
        // The first half, then the whole file: the second run resumes.
        std::fs::write(&logs, &half).unwrap();
        let first = go();
        std::fs::write(&logs, &data).unwrap();
        let second = go();
        assert!(!second.contains("replaced"), "{second}");
        let snapshot: serde_json::Value =
            serde_json::from_str(second.lines().last().unwrap()).unwrap();
        assert_eq!(
            snapshot["lines"].as_u64(),
            Some((lines.len() - lines.len() / 2) as u64),
            "the second run read only the second half"
        );
        results.push((first, second, comparable(&read_alerts(&alerts))));
    }
    assert!(!results[0].2.is_empty());
    assert_eq!(results[1], results[0], "2 threads resume like 1");
}

#[test]
fn strict_mode_names_the_same_first_bad_line_with_two_threads() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::new();
    for m in 0..50 {
        text.push_str(&ecs(m, 0, "INFO", "tick"));
    }
    text.push_str("{not json\n");
    text.push_str(&ecs(51, 0, "ERROR", "after the bad line"));
    let p = write(dir.path(), "bad.jsonl", &text);
    for threads in ["1", "2"] {
        let out = Command::new(env!("CARGO_BIN_EXE_faultline"))
            .args(["replay", "--strict", "--no-progress", "--threads", threads])
            .args(["--chunk-bytes", "256"])
            .arg(&p)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("bad.jsonl:51:"), "{threads} threads: {err}");
        assert!(out.stdout.is_empty(), "nothing after the bad line alerts");
    }
}

#[test]
fn gzip_and_stdin_inputs_replay_alike_with_two_threads() {
    use std::io::Write;
    let logs = examples_data().join("logs.jsonl");
    let data = std::fs::read(&logs).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let gz = dir.path().join("logs.jsonl.gz");
    let mut enc = flate2::write::GzEncoder::new(
        std::fs::File::create(&gz).unwrap(),
        flate2::Compression::fast(),
    );
    enc.write_all(&data).unwrap();
    enc.finish().unwrap();
    let run = |threads: &str, input: &Path, stdin: bool| {
        let mut cmd = threaded_replay(threads, "8192");
        if stdin {
            cmd.arg("-").stdin(std::fs::File::open(input).unwrap());
        } else {
            cmd.arg(input);
        }
        let out = cmd.output().unwrap();
        assert!(out.status.success());
        let alerts: Vec<Alert> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        (comparable(&alerts), out.stderr)
    };
    let reference = run("1", &logs, false);
    assert!(!reference.0.is_empty());
    assert_eq!(run("2", &gz, false), reference, "gzip");
    // Stdin has no name to default the service to: compare it with itself.
    assert_eq!(run("2", &logs, true), run("1", &logs, true), "stdin");
}

#[test]
fn a_strict_stop_with_two_threads_resumes_from_a_chunk_checkpoint_without_losing_alerts() {
    let data = std::fs::read_to_string(examples_data().join("logs.jsonl")).unwrap();
    let lines: Vec<&str> = data.lines().collect();
    let cut = lines.len() * 2 / 3;
    let with_bad = format!(
        "{}\n{{not json\n{}\n",
        lines[..cut].join("\n"),
        lines[cut..].join("\n")
    );
    let dir = tempfile::tempdir().unwrap();
    let logs = write(dir.path(), "logs.jsonl", &with_bad);
    let go = |state: &Path, alerts: &Path, extra: &[&str]| {
        threaded_replay("2", "4096")
            .args(extra)
            .arg("--state")
            .arg(state)
            .arg("--alerts")
            .arg(alerts)
            .arg(&logs)
            .env("FAULTLINE__BASELINE__CHECKPOINT_EVERY", "500")
            .output()
            .unwrap()
    };
    let reference = dir.path().join("ref.jsonl");
    assert!(
        go(&dir.path().join("ref-state"), &reference, &[])
            .status
            .success()
    );
    let reference: Vec<String> = read_alerts(&reference).into_iter().map(|a| a.id).collect();
    assert!(!reference.is_empty());

    // Strict mode stops at the bad line, after checkpoints between chunks.
    let state = dir.path().join("state");
    let alerts = dir.path().join("alerts.jsonl");
    let stopped = go(&state, &alerts, &["--strict"]);
    assert_eq!(stopped.status.code(), Some(2));
    let err = String::from_utf8_lossy(&stopped.stderr);
    assert!(err.contains(&format!("logs.jsonl:{}:", cut + 1)), "{err}");
    // The rerun resumes from the last checkpoint, not from the start.
    let resumed = go(&state, &alerts, &[]);
    assert!(resumed.status.success());
    let err = String::from_utf8_lossy(&resumed.stderr);
    let snapshot: serde_json::Value = serde_json::from_str(err.lines().last().unwrap()).unwrap();
    let read = snapshot["lines"].as_u64().unwrap();
    assert!(read > 0 && read < lines.len() as u64 + 1, "{err}");
    let got: Vec<String> = read_alerts(&alerts).into_iter().map(|a| a.id).collect();
    assert_eq!(got, reference, "every alert once, in the same order");
}

/// Replays with a state directory and a checkpoint allowed after every
/// line, so every place the checkpoint rule accepts is used.
fn replay_checkpointing_everywhere(
    input: &Path,
    state: &Path,
    threads: usize,
    chunk_bytes: usize,
) -> ReplaySummary {
    let mut cfg = Config::default();
    cfg.baseline.checkpoint_every = 1;
    let opts = ReplayOptions {
        state_dir: Some(state.to_path_buf()),
        ..threaded_opts(&[input.to_path_buf()], threads, chunk_bytes)
    };
    let sinks: Vec<Box<dyn AlertSink>> = vec![Box::new(MemorySink::default())];
    pipeline::replay(&cfg, &opts, sinks, Arc::new(Metrics::default())).unwrap()
}

#[test]
fn one_and_two_threads_checkpoint_only_where_a_record_starts_by_the_same_rule() {
    // An exception line after its header ("java.sql.SQLException: …") does
    // not look like a continuation by its first bytes, but it continues the
    // record: a checkpoint before it would end the record early and parse
    // the exception line on its own. Both paths must cut only where the
    // parser says a record starts fresh, so checkpoints change nothing.
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "checkout.log", &tricky_text_log());
    let plain = replay_threaded(&Config::default(), std::slice::from_ref(&p), 1, 0);
    let one = replay_checkpointing_everywhere(&p, &dir.path().join("state-1"), 1, 0);
    let two = replay_checkpointing_everywhere(&p, &dir.path().join("state-2"), 2, 1);
    for (name, run) in [("one thread", &one), ("two threads", &two)] {
        assert_eq!(
            comparable(&run.alerts),
            comparable(&plain.alerts),
            "alerts of {name} with checkpoints"
        );
        assert_eq!(
            run.metrics, plain.metrics,
            "counters of {name} with checkpoints"
        );
        let templates = |s: &ReplaySummary| -> Vec<String> {
            let mut t: Vec<String> = s
                .state
                .baseline
                .types
                .values()
                .map(|t| t.template.clone())
                .collect();
            t.sort();
            t
        };
        assert_eq!(templates(run), templates(&plain), "types of {name}");
    }
    assert_eq!(
        one.state.inputs, two.state.inputs,
        "both end at the same resume point"
    );
}
