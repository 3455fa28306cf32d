//! Releases end to end: versions in the records, canary comparison, the
//! error-rate ladder, regressions of resolved types, `rollout-check` and
//! `report`.
//!
//! Records are written as ECS JSON lines. Until the real parser lands, the
//! stub in `src/parse` does not pass a line's version to
//! `RecordSink::line`, so these tests read the lines with [`feed`], which
//! makes the same `RecordSink` calls the real parser will (version on every
//! line, not only on errors). The commands are then run on the saved state,
//! exactly as a CD pipeline would.

#[path = "../examples/gen-logs/scenario.rs"]
mod scenario;

use std::path::Path;
use std::process::Command;
use std::sync::{Arc, OnceLock};

use faultline::alert::{Alert, Kind, Severity};
use faultline::config::Config;
use faultline::metrics::Metrics;
use faultline::parse::RecordSink;
use faultline::pipeline::{BaselineOptions, Engine};
use faultline::record::{Level, LineMeta, Record};
use faultline::state::State;
use regex::Regex;
use serde_json::{Value, json};

const MINUTE_MS: i64 = 60_000;
/// 2026-11-02T10:00:00Z, like the scenario.
const T0: i64 = 1_793_613_600_000;

/// One ECS JSON line.
fn ecs(time_ms: i64, level: &str, service: &str, version: &str, message: &str) -> String {
    let ts = chrono::DateTime::from_timestamp_millis(time_ms)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    json!({
        "@timestamp": ts,
        "log.level": level,
        "message": message,
        "service.name": service,
        "service.version": version,
    })
    .to_string()
}

/// Reads ECS JSON lines into the engine the way the parser does.
fn feed(engine: &mut Engine, lines: &[String]) {
    for (i, l) in lines.iter().enumerate() {
        let v: Value = serde_json::from_str(l).unwrap();
        let s = |k: &str| v.get(k).and_then(Value::as_str);
        let time = s("@timestamp")
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|d| d.timestamp_millis());
        let level = s("log.level").and_then(Level::parse);
        engine.line(&LineMeta {
            message: None,
            time,
            level,
            service: s("service.name"),
            version: s("service.version"),
            ..LineMeta::default()
        });
        if level.is_some_and(|l| l >= Level::Error) {
            engine.error(Record {
                time,
                level,
                message: s("message").unwrap_or("").to_string(),
                service: s("service.name").map(str::to_string),
                version: s("service.version").map(str::to_string),
                stack_trace: s("error.stack_trace").map(str::to_string),
                error_type: s("error.type").map(str::to_string),
                line: i as u64 + 1,
                ..Record::default()
            });
        }
    }
}

fn engine(cfg: &Config, state: Option<State>, warmup: &str) -> Engine {
    let opts = BaselineOptions {
        warmup: Some(warmup.parse().unwrap()),
        baseline: None,
    };
    Engine::new(cfg, state, &opts, Vec::new(), Arc::new(Metrics::default())).unwrap()
}

fn faultline(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
    )
}

fn of_kind(alerts: &[Alert], k: Kind) -> Vec<&Alert> {
    alerts.iter().filter(|a| a.kind == k).collect()
}

/// Messages of four error types, picked by turns.
const MESSAGES: [&str; 4] = [
    "payment gateway timeout after 3000 ms for order 1234",
    "inventory service returned 503 for sku 99",
    "redis connection reset by peer 10.0.0.7:6379",
    "invalid coupon code ABC123 for cart 77",
];

/// A two-version service, deterministic: `per_min` lines a minute; from
/// `canary_from` on, `share` of them come from the canary. Each version
/// errs at its own rate, spread evenly.
fn two_versions(
    minutes: i64,
    per_min: i64,
    canary_from: i64,
    share: f64,
    stable_rate: f64,
    canary_rate: f64,
) -> Vec<String> {
    let mut out = Vec::new();
    // Per version: when each errs, and which message it uses next, so
    // both versions cycle through the same types evenly.
    let (mut acc_s, mut acc_c, mut n_s, mut n_c) = (0.0f64, 0.0f64, 0usize, 0usize);
    for m in 0..minutes {
        for i in 0..per_min {
            let t = T0 + m * MINUTE_MS + i * MINUTE_MS / per_min;
            let canary = m >= canary_from && ((i as f64 + 0.5) / per_min as f64) < share;
            let (version, acc, n, rate) = if canary {
                ("2.0.0", &mut acc_c, &mut n_c, canary_rate)
            } else {
                ("1.9.3", &mut acc_s, &mut n_s, stable_rate)
            };
            *acc += rate;
            if *acc >= 1.0 {
                *acc -= 1.0;
                *n += 1;
                out.push(ecs(
                    t,
                    "ERROR",
                    "checkout",
                    version,
                    MESSAGES[*n % MESSAGES.len()],
                ));
            } else {
                out.push(ecs(t, "INFO", "checkout", version, "request served"));
            }
        }
    }
    out
}

/// Runs a two-version service through an engine into a state directory.
fn canary_state(dir: &Path, stable_rate: f64, canary_rate: f64) -> Vec<Alert> {
    let cfg = Config::default();
    let mut e = engine(&cfg, None, "10m");
    feed(
        &mut e,
        &two_versions(50, 400, 20, 0.25, stable_rate, canary_rate),
    );
    e.finish();
    e.state.save(dir).unwrap();
    std::mem::take(&mut e.emitted)
}

#[test]
fn a_canary_whose_error_rate_doubles_raises_canary_regression_and_rollout_check_exits_3_to_roll_back()
 {
    let dir = tempfile::tempdir().unwrap();
    let alerts = canary_state(dir.path(), 0.01, 0.02);
    let canary = of_kind(&alerts, Kind::CanaryRegression);
    let overall: Vec<_> = canary
        .iter()
        .filter(|a| a.release.canary.as_ref().unwrap().subject == "error_rate")
        .collect();
    assert_eq!(overall.len(), 1, "one overall canary alert: {canary:#?}");
    let c = overall[0].release.canary.as_ref().unwrap();
    assert_eq!(
        (c.stable.version.as_str(), c.canary.version.as_str()),
        ("1.9.3", "2.0.0")
    );
    assert!(c.ratio.unwrap() > 1.5 && c.p_value < 0.001, "{c:?}");
    assert_eq!(overall[0].version.as_deref(), Some("2.0.0"));

    let d = dir.path().to_str().unwrap();
    let (code, out) = faultline(&[
        "rollout-check",
        "--service",
        "checkout",
        "--stable",
        "1.9.3",
        "--canary",
        "2.0.0",
        "--current-percentage",
        "25",
        "--window",
        "30m",
        "--state",
        d,
    ]);
    assert_eq!(code, 3, "roll back is exit 3: {out}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["proceed"], false);
    assert_eq!(v["decision"], "roll_back");
    assert_eq!(
        v["next_percentage"], 0,
        "a significant regression rolls back"
    );
    assert!(
        v["reason"].as_str().unwrap().starts_with("roll back"),
        "{v}"
    );
    assert_eq!(v["evidence"]["error_rate_regression"], true);
    assert!(v["evidence"]["error_rate"]["p_value"].as_f64().unwrap() < 0.001);
}

#[test]
fn a_canary_with_equal_error_rates_proceeds_to_the_next_step() {
    let dir = tempfile::tempdir().unwrap();
    let alerts = canary_state(dir.path(), 0.01, 0.01);
    assert!(
        of_kind(&alerts, Kind::CanaryRegression).is_empty(),
        "{alerts:#?}"
    );
    let d = dir.path().to_str().unwrap();
    let (code, out) = faultline(&[
        "rollout-check",
        "--service",
        "checkout",
        "--stable",
        "1.9.3",
        "--canary",
        "2.0.0",
        "--current-percentage",
        "25",
        "--state",
        d,
    ]);
    assert_eq!(code, 0, "{out}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["proceed"], true);
    assert_eq!(v["decision"], "proceed");
    assert_eq!(v["next_percentage"], 50);
    let ratio = v["evidence"]["error_rate"]["ratio"].as_f64().unwrap();
    assert!((0.8..1.25).contains(&ratio), "{ratio}");
}

#[test]
fn rollout_check_over_replayed_files_holds_back_a_worse_canary() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("checkout.jsonl");
    std::fs::write(&log, two_versions(50, 400, 20, 0.25, 0.01, 0.02).join("\n")).unwrap();
    let (code, out) = faultline(&[
        "rollout-check",
        "--service",
        "checkout",
        "--stable",
        "1.9.3",
        "--canary",
        "2.0.0",
        "--current-percentage",
        "25",
        "--warmup",
        "10m",
        log.to_str().unwrap(),
    ]);
    assert_eq!(code, 3, "{out}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["proceed"], false);
    assert_eq!(v["decision"], "roll_back");
}

#[test]
fn rollout_check_holds_with_exit_1_without_enough_canary_traffic_and_exits_4_on_errors() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config::default();
    let mut e = engine(&cfg, None, "10m");
    feed(&mut e, &two_versions(30, 100, 29, 0.1, 0.005, 0.005));
    e.state.save(dir.path()).unwrap();
    let d = dir.path().to_str().unwrap();
    let args = [
        "rollout-check",
        "--service",
        "checkout",
        "--stable",
        "1.9.3",
        "--canary",
        "2.0.0",
        "--current-percentage",
        "10",
        "--state",
        d,
    ];
    let (code, out) = faultline(&args);
    assert_eq!(code, 1, "hold is exit 1: {out}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["decision"], "hold");
    assert_eq!(v["next_percentage"], 10, "hold at the current step");
    assert!(v["reason"].as_str().unwrap().starts_with("hold"), "{v}");
    let (code, _) = faultline(&[
        "rollout-check",
        "--service",
        "nope",
        "--stable",
        "1",
        "--canary",
        "2",
        "--current-percentage",
        "10",
        "--state",
        d,
    ]);
    assert_eq!(code, 4, "an unknown service is an error (4), not a verdict");
    // A usage error stays 2 (clap's), distinct from both.
    let (code, _) = faultline(&["rollout-check", "--service", "checkout", "--state", d]);
    assert_eq!(code, 2, "missing flags are a usage error");
}

/// One service, one version, at the given error share per 10-minute phase.
fn phases(per_min: i64, shares: &[f64]) -> Vec<String> {
    let mut out = Vec::new();
    let mut acc = 0.0;
    for (p, share) in shares.iter().enumerate() {
        for m in 0..10 {
            for i in 0..per_min {
                let t = T0 + (p as i64 * 10 + m) * MINUTE_MS + i * MINUTE_MS / per_min;
                acc += share;
                if acc >= 1.0 {
                    acc -= 1.0;
                    out.push(ecs(t, "ERROR", "api", "1.0.0", MESSAGES[(i % 4) as usize]));
                } else {
                    out.push(ecs(t, "INFO", "api", "1.0.0", "ok"));
                }
            }
        }
    }
    out
}

#[test]
fn the_error_rate_ladder_fires_once_per_step_at_its_severity() {
    let cfg = Config::default();
    let mut e = engine(&cfg, None, "5m");
    feed(
        &mut e,
        &phases(200, &[0.005, 0.005, 0.015, 0.03, 0.08, 0.08, 0.005, 0.005]),
    );
    let rates = of_kind(&e.emitted, Kind::ErrorRate);
    let sev: Vec<Severity> = rates.iter().map(|a| a.severity).collect();
    assert_eq!(
        sev,
        [Severity::Medium, Severity::High, Severity::Critical],
        "{rates:#?}"
    );
    let first = |s: Severity| rates.iter().find(|a| a.severity == s).unwrap();
    let m = first(Severity::Medium).release.error_rate.clone().unwrap();
    assert!(
        m.rate > 0.01 && m.rate <= 0.02 && m.threshold == 0.01,
        "{m:?}"
    );
    let ids: std::collections::BTreeSet<&str> = rates.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(ids.len(), 3);
    assert!(
        e.state.release.rate_episodes.is_empty(),
        "the episode ended when the rate fell back"
    );

    // The same rise again, after the episode ended, is a new episode.
    let mut again = engine(&cfg, None, "5m");
    let shares = [0.005, 0.005, 0.015, 0.005, 0.005, 0.015];
    feed(&mut again, &phases(200, &shares));
    assert_eq!(of_kind(&again.emitted, Kind::ErrorRate).len(), 2);
}

#[test]
fn a_few_lines_with_errors_do_not_page_anyone() {
    let cfg = Config::default();
    let mut e = engine(&cfg, None, "5m");
    feed(&mut e, &phases(10, &[0.5, 0.5, 0.5]));
    assert!(of_kind(&e.emitted, Kind::ErrorRate).is_empty());
}

#[test]
fn a_resolved_type_that_returns_in_the_fixed_version_is_a_regression() {
    let cfg = Config::default();
    let dir = tempfile::tempdir().unwrap();
    let line = |m: i64, v: &str, msg: &str| ecs(T0 + m * MINUTE_MS, "ERROR", "api", v, msg);
    let disk = "disk quota exceeded on volume vol-12";
    let mut e = engine(&cfg, None, "5m");
    feed(
        &mut e,
        &[
            line(0, "1.0.0", "warming up failed"),
            line(10, "1.0.0", disk),
            line(11, "1.0.0", disk),
        ],
    );
    e.state.save(dir.path()).unwrap();
    // The CLI below writes the state: this process stops being its writer.
    faultline::state::store::close_writer(dir.path());
    let fp = of_kind(&e.emitted, Kind::Novel)
        .iter()
        .find(|a| a.sample.as_deref() == Some(disk))
        .and_then(|a| a.fingerprint)
        .unwrap()
        .to_string();
    let d = dir.path().to_str().unwrap();
    let (code, out) = faultline(&[
        "types",
        "resolve",
        &fp,
        "--in-version",
        "1.1.0",
        "--state",
        d,
    ]);
    assert_eq!(code, 0, "{out}");
    let (_, shown) = faultline(&["types", "show", &fp, "--json", "--state", d]);
    let shown: Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(shown["status"], "resolved");
    assert_eq!(shown["resolved_in"], "1.1.0");

    let state = State::load(dir.path()).unwrap();
    let mut e = engine(&cfg, state, "5m");
    feed(
        &mut e,
        &[
            line(12, "1.0.0", disk),
            ecs(T0 + 13 * MINUTE_MS, "INFO", "api", "1.1.0", "all good"),
            line(14, "1.1.0", disk),
            line(15, "1.1.0", disk),
        ],
    );
    let reg = of_kind(&e.emitted, Kind::Regression);
    assert_eq!(
        reg.len(),
        1,
        "old pods still erring is expected; the fixed version erring is not, once: {reg:#?}"
    );
    assert_eq!(reg[0].version.as_deref(), Some("1.1.0"));
    let r = reg[0].release.resolved.as_ref().unwrap();
    assert_eq!(r.in_version.as_deref(), Some("1.1.0"));
    assert!(
        of_kind(&e.emitted, Kind::Novel).is_empty(),
        "a regression is not a new type"
    );
}

/// The scenario (canary of checkout and payments 1.9.3 → 2.0.0 at minute
/// 60), as ECS lines, through an engine: its state and alerts.
fn scenario_run() -> &'static (State, Vec<Alert>) {
    static RUN: OnceLock<(State, Vec<Alert>)> = OnceLock::new();
    RUN.get_or_init(|| {
        let s = scenario::Scenario::generate(&scenario::Config {
            rate: 5.0,
            ..scenario::Config::default()
        });
        let lines: Vec<String> = s
            .records
            .iter()
            .map(|r| {
                let mut l: Value = serde_json::from_str(&ecs(
                    r.time_ms(),
                    r.severity.as_str(),
                    r.service.name(),
                    r.version,
                    &r.message,
                ))
                .unwrap();
                if let Some(t) = &r.trace {
                    l["error.stack_trace"] = json!(t);
                }
                if !r.exception.is_empty() {
                    l["error.type"] = json!(r.exception);
                }
                l.to_string()
            })
            .collect();
        let mut e = engine(&Config::default(), None, "30m");
        feed(&mut e, &lines);
        e.finish();
        let alerts = std::mem::take(&mut e.emitted);
        (e.state, alerts)
    })
}

fn scenario_type_alert<'a>(alerts: &'a [Alert], id: &str) -> &'a Alert {
    let t = scenario::error_type(id).unwrap();
    let re = Regex::new(t.regex).unwrap();
    alerts
        .iter()
        .filter(|a| a.kind == Kind::Novel && a.service == t.service.name())
        .find(|a| a.sample.as_deref().is_some_and(|s| re.is_match(s)))
        .unwrap_or_else(|| panic!("no novel alert for {id}"))
}

#[test]
fn a_type_only_in_the_canary_is_new_in_that_version() {
    let (_, alerts) = scenario_run();
    for id in [
        "checkout.postgres_timeout",
        "checkout.cart_totals_arithmetic",
        "payments.ledger_type_error",
    ] {
        let a = scenario_type_alert(alerts, id);
        assert_eq!(
            a.release.new_in_version.as_deref(),
            Some("2.0.0"),
            "{id}: {a:#?}"
        );
        assert_eq!(a.release.versions, ["2.0.0"]);
        let json = serde_json::to_value(a).unwrap();
        assert_eq!(
            json["new_in_version"], "2.0.0",
            "the field is at the top level"
        );
    }
    // search stays on 1.9.3: its new type is new, but not new in a version.
    let a = scenario_type_alert(alerts, "search.index_out_of_range");
    assert_eq!(a.release.new_in_version, None);
    assert_eq!(a.release.versions, ["1.9.3"]);
    assert!(
        serde_json::to_value(a)
            .unwrap()
            .get("new_in_version")
            .is_none()
    );
}

#[test]
fn the_scenario_canary_regresses_on_the_types_only_the_canary_has() {
    let (_, alerts) = scenario_run();
    let canary = of_kind(alerts, Kind::CanaryRegression);
    assert!(!canary.is_empty());
    for a in &canary {
        assert!(
            ["checkout", "payments"].contains(&a.service.as_str()),
            "{a:#?}"
        );
        assert_eq!(a.version.as_deref(), Some("2.0.0"));
    }
    let postgres = Regex::new(
        scenario::error_type("checkout.postgres_timeout")
            .unwrap()
            .regex,
    )
    .unwrap();
    assert!(
        canary
            .iter()
            .any(|a| a.sample.as_deref().is_some_and(|s| postgres.is_match(s))),
        "{canary:#?}"
    );
}

fn scenario_state_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    scenario_run().0.clone().save(dir.path()).unwrap();
    dir
}

#[test]
fn the_report_lists_before_and_after_new_types_and_canary_regressions() {
    let dir = scenario_state_dir();
    let d = dir.path().to_str().unwrap();
    let (code, out) = faultline(&[
        "report",
        "--release",
        "2.0.0",
        "--format",
        "json",
        "--state",
        d,
    ]);
    assert_eq!(code, 0, "{out}");
    let r: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["verdict"], "regressed");
    assert_eq!(r["services"], json!(["checkout", "payments"]));
    assert_eq!(
        r["released_at"].as_str().unwrap()[..16],
        *"2026-11-02T11:00"
    );
    let rows = r["before_after"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    for row in rows {
        assert!(row["before"]["lines"].as_u64().unwrap() > 1000, "{row}");
        assert!(row["after"]["lines"].as_u64().unwrap() > 1000, "{row}");
    }
    let checkout = &rows[0];
    assert!(
        checkout["after"]["distinct_error_types"].as_u64()
            > checkout["before"]["distinct_error_types"].as_u64(),
        "{checkout}"
    );
    let new = r["new_types"].as_array().unwrap();
    let pg = Regex::new(
        scenario::error_type("checkout.postgres_timeout")
            .unwrap()
            .regex,
    )
    .unwrap();
    let row = new
        .iter()
        .find(|n| n["sample"].as_str().is_some_and(|s| pg.is_match(s)))
        .expect("postgres timeout is a new type of the release");
    assert_eq!(row["service"], "checkout");
    assert_eq!(row["new_in_version"], "2.0.0");
    assert!(row["count"].as_u64().unwrap() > 0);
    let kinds: Vec<&str> = r["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["kind"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"canary_regression"), "{kinds:?}");
    assert!(kinds.contains(&"surge"), "{kinds:?}");
    assert!(!r["open"].as_array().unwrap().is_empty());
    assert!(r["not_measured"].to_string().contains("latency"));

    let (code, html) = faultline(&[
        "report",
        "--release",
        "2.0.0",
        "--format",
        "html",
        "--state",
        d,
    ]);
    assert_eq!(code, 0);
    assert!(html.contains("<svg"));
    for external in ["src=", "href=", "<link", "<script", "url("] {
        assert!(
            !html.contains(external),
            "inline, no external assets: {external}"
        );
    }
}

#[test]
fn report_since_takes_a_duration_back_from_the_end_as_well_as_a_time() {
    let dir = scenario_state_dir();
    let d = dir.path().to_str().unwrap();
    let json = |extra: &[&str]| -> Value {
        let mut args = vec![
            "report",
            "--release",
            "2.0.0",
            "--format",
            "json",
            "--state",
            d,
        ];
        args.extend_from_slice(extra);
        let (code, out) = faultline(&args);
        assert_eq!(code, 0, "{out}");
        serde_json::from_str(&out).unwrap()
    };
    let full = json(&[]);
    let until = full["until"].as_str().unwrap().to_string();
    let end = chrono::DateTime::parse_from_rfc3339(&until).unwrap();
    // `--since 1h30m`: that long before the default end (the latest record).
    let r = json(&["--since", "1h30m"]);
    assert_eq!(r["until"], full["until"]);
    let since = chrono::DateTime::parse_from_rfc3339(r["since"].as_str().unwrap()).unwrap();
    assert_eq!(end - since, chrono::Duration::minutes(90), "{r}");
    // The same as the RFC 3339 time it stands for.
    let at = (end - chrono::Duration::minutes(90)).to_rfc3339();
    let same = json(&["--since", &at]);
    assert_eq!(same["since"], r["since"]);
    assert_eq!(same["before_after"], r["before_after"]);
    // With --until, back from that end.
    let r = json(&["--since", "30m", "--until", &until]);
    let since = chrono::DateTime::parse_from_rfc3339(r["since"].as_str().unwrap()).unwrap();
    assert_eq!(end - since, chrono::Duration::minutes(30), "{r}");
    let (code, out) = faultline(&[
        "report",
        "--release",
        "2.0.0",
        "--since",
        "yesterday",
        "--state",
        d,
    ]);
    assert_eq!(code, 2, "{out}");
}

#[test]
fn the_markdown_report_matches_the_committed_snapshot() {
    let dir = scenario_state_dir();
    let d = dir.path().to_str().unwrap();
    let (code, md) = faultline(&["report", "--release", "2.0.0", "--state", d]);
    assert_eq!(code, 0, "{md}");
    // The generation time is the only wall-clock field.
    let md: String = md
        .lines()
        .filter(|l| !l.starts_with("_Generated at"))
        .map(|l| format!("{l}\n"))
        .collect();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/expected/report-2.0.0.md");
    if std::env::var_os("UPDATE_EXPECTED").is_some() {
        std::fs::write(&path, &md).unwrap();
    }
    let expected =
        std::fs::read_to_string(&path).expect("run with UPDATE_EXPECTED=1 to create the snapshot");
    assert_eq!(
        md, expected,
        "report changed; review, then UPDATE_EXPECTED=1 cargo test --test release"
    );
}

#[test]
fn types_list_shows_the_new_types_as_json() {
    let dir = scenario_state_dir();
    let d = dir.path().to_str().unwrap();
    let (code, out) = faultline(&[
        "types",
        "list",
        "--service",
        "checkout",
        "--json",
        "--state",
        d,
    ]);
    assert_eq!(code, 0);
    let rows: Vec<Value> = serde_json::from_str(&out).unwrap();
    assert!(rows.iter().all(|r| r["service"] == "checkout"));
    assert!(
        rows.iter()
            .any(|r| r["status"] == "new" && r["versions"].get("2.0.0").is_some())
    );
    let (code, table) = faultline(&["types", "list", "--state", d]);
    assert_eq!(code, 0);
    assert!(table.starts_with("fingerprint"));
}
