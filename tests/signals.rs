//! Latency and traffic signals end to end (issue 20): generated request
//! logs, dated in the past, replayed by the real binary; alerts read back
//! from its JSON lines. The generator is here, not in examples/: its
//! numbers (rates, medians, spreads) are arbitrary, and the detectors know
//! none of them.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

const MINUTE_MS: i64 = 60_000;
/// 2026-11-02T00:00:00Z.
const T0: i64 = 1_793_577_600_000;

/// A small deterministic generator (SplitMix64): uniform and normal draws.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn uniform(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn normal(&mut self) -> f64 {
        let (u, v) = (self.uniform().max(1e-12), self.uniform());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
    /// Poisson(λ) by inversion for small λ, normal approximation above.
    fn poisson(&mut self, lambda: f64) -> u64 {
        if lambda > 30.0 {
            return (lambda + lambda.sqrt() * self.normal()).round().max(0.0) as u64;
        }
        let (l, mut k, mut p) = ((-lambda).exp(), 0u64, 1.0);
        loop {
            p *= self.uniform();
            if p <= l {
                return k;
            }
            k += 1;
        }
    }
}

/// One service in a scenario.
struct Service {
    name: &'static str,
    /// Requests per minute at the daily mean.
    per_minute: f64,
    /// Median duration (ms) and log-normal spread.
    median_ms: f64,
    sigma: f64,
    /// Lines without request fields per request (chatter), before and after
    /// the release.
    chatter: (f64, f64),
    /// From this minute on, `canary_share` of requests run `2.0.0`, slower
    /// by `canary_slowdown` (1 = same).
    release_minute: Option<i64>,
    canary_share: f64,
    canary_slowdown: f64,
    /// Silent from this minute on.
    silent_from: Option<i64>,
    /// Logs request fields at all (else: plain lines only).
    requests: bool,
}

impl Service {
    fn steady(name: &'static str, per_minute: f64) -> Service {
        Service {
            name,
            per_minute,
            median_ms: 40.0,
            sigma: 0.6,
            chatter: (1.0, 1.0),
            release_minute: None,
            canary_share: 0.0,
            canary_slowdown: 1.0,
            silent_from: None,
            requests: true,
        }
    }
}

fn ts(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// JSON lines for `minutes` minutes from `T0`, in time order. `daily`
/// is the amplitude of a daily cycle of traffic (0 = flat).
fn generate(services: &[Service], minutes: i64, daily: f64, seed: u64) -> Vec<String> {
    let mut rng = Rng(seed);
    let mut out = Vec::new();
    for m in 0..minutes {
        let phase = 2.0 * std::f64::consts::PI * (m as f64) / 1440.0;
        let cycle = 1.0 + daily * phase.sin();
        let mut minute: Vec<(i64, String)> = Vec::new();
        for s in services {
            if s.silent_from.is_some_and(|f| m >= f) {
                continue;
            }
            let released = s.release_minute.is_some_and(|r| m >= r);
            let n = rng.poisson(s.per_minute * cycle);
            for _ in 0..n {
                let t = T0 + m * MINUTE_MS + (rng.uniform() * MINUTE_MS as f64) as i64;
                let canary = released && rng.uniform() < s.canary_share;
                let (version, slow) = if canary {
                    ("2.0.0", s.canary_slowdown)
                } else {
                    ("1.9.3", 1.0)
                };
                let line = if s.requests {
                    let ms = s.median_ms * slow * (s.sigma * rng.normal()).exp();
                    json!({
                        "@timestamp": ts(t), "log.level": "info", "message": "GET /items",
                        "service.name": s.name, "service.version": version,
                        "http.response.status_code": 200, "duration_ms": (ms * 1000.0).round() / 1000.0,
                    })
                } else {
                    json!({
                        "@timestamp": ts(t), "log.level": "info", "message": "job step done",
                        "service.name": s.name, "service.version": version,
                    })
                };
                minute.push((t, line.to_string()));
                let chatter = if released { s.chatter.1 } else { s.chatter.0 };
                for _ in 0..rng.poisson(chatter) {
                    let line = json!({
                        "@timestamp": ts(t), "log.level": "info", "message": "cache lookup",
                        "service.name": s.name, "service.version": version,
                    });
                    minute.push((t, line.to_string()));
                }
            }
        }
        minute.sort_by_key(|(t, _)| *t);
        out.extend(minute.into_iter().map(|(_, l)| l));
    }
    out
}

fn write(dir: &Path, name: &str, lines: &[String]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, lines.join("\n") + "\n").unwrap();
    p
}

/// Replays `logs` with a 30-minute warm-up (unless `extra` names one)
/// into `state`; the alerts.
fn replay(dir: &Path, logs: &Path, extra: &[&str]) -> Vec<Value> {
    let alerts = dir.join("alerts.jsonl");
    let warmup: &[&str] = if extra.contains(&"--warmup") {
        &[]
    } else {
        &["--warmup", "30m"]
    };
    let out = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .arg("replay")
        .args(warmup)
        .args(["--no-progress", "--state"])
        .arg(dir.join("state"))
        .arg("--alerts")
        .arg(&alerts)
        .args(extra)
        .arg(logs)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "replay failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read_to_string(&alerts)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn of_kind<'a>(alerts: &'a [Value], kinds: &[&str]) -> Vec<&'a Value> {
    alerts
        .iter()
        .filter(|a| kinds.contains(&a["kind"].as_str().unwrap_or("")))
        .collect()
}

fn event_ms(a: &Value) -> i64 {
    chrono::DateTime::parse_from_rfc3339(a["event_time"].as_str().unwrap())
        .unwrap()
        .timestamp_millis()
}

fn release_scenario() -> Vec<Service> {
    vec![
        // (a) canary 30 % slower at 10 % of the traffic.
        Service {
            release_minute: Some(60),
            canary_share: 0.10,
            canary_slowdown: 1.3,
            ..Service::steady("checkout", 1200.0)
        },
        // An A/A canary: the same latency in both versions.
        Service {
            release_minute: Some(60),
            canary_share: 0.10,
            ..Service::steady("search", 600.0)
        },
        // (b) silent after the release.
        Service {
            silent_from: Some(75),
            ..Service::steady("billing", 120.0)
        },
        // Logs no request fields: traffic counted by lines; steady.
        Service {
            requests: false,
            ..Service::steady("worker", 60.0)
        },
    ]
}

#[test]
fn a_slower_canary_and_a_silent_service_alert_and_steady_services_stay_quiet() {
    let dir = tempfile::tempdir().unwrap();
    let logs = write(
        dir.path(),
        "logs.jsonl",
        &generate(&release_scenario(), 100, 0.0, 7),
    );
    let alerts = replay(dir.path(), &logs, &[]);
    let release = T0 + 60 * MINUTE_MS;

    let latency = of_kind(&alerts, &["latency_regression"]);
    assert_eq!(latency.len(), 1, "one latency regression: {latency:#?}");
    let a = latency[0];
    assert_eq!(a["service"], "checkout");
    assert_eq!(a["version"], "2.0.0");
    assert!(
        event_ms(a) <= release + 10 * MINUTE_MS,
        "within 10 minutes of the release: {}",
        a["event_time"]
    );
    let l = &a["latency"];
    assert_eq!(l["test"], "canary");
    assert!(l["p_value"].as_f64().unwrap() < 1e-3);
    let ratio = l["ratio"].as_f64().unwrap();
    assert!((1.15..1.45).contains(&ratio), "p95 ratio {ratio}");

    // `rollout-check` on the state: the error rate is clean, the latency
    // regression holds the rollout at 10 % (exit 1), with the evidence.
    let out = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args([
            "rollout-check",
            "--service",
            "checkout",
            "--stable",
            "1.9.3",
        ])
        .args([
            "--canary",
            "2.0.0",
            "--current-percentage",
            "10",
            "--window",
            "10m",
        ])
        .arg("--state")
        .arg(dir.path().join("state"))
        .env_remove("FAULTLINE_CONFIG")
        .output()
        .unwrap();
    let verdict: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(1), "hold: {verdict:#}");
    assert_eq!(verdict["decision"], "hold");
    assert_eq!(verdict["next_percentage"], 10);
    assert_eq!(verdict["evidence"]["latency_regression"], true);
    assert_eq!(verdict["evidence"]["error_rate_regression"], false);
    let share = verdict["evidence"]["traffic"]["canary_percent"]
        .as_f64()
        .unwrap();
    assert!((8.0..12.0).contains(&share), "10 % canary traffic: {share}");
    assert!(
        verdict["reason"]
            .as_str()
            .unwrap()
            .starts_with("hold: p95 latency"),
        "{verdict:#}"
    );

    let drops = of_kind(&alerts, &["traffic_drop"]);
    assert_eq!(drops.len(), 1, "{drops:#?}");
    assert_eq!(drops[0]["service"], "billing");
    let silent = T0 + 75 * MINUTE_MS;
    assert!(
        event_ms(drops[0]) <= silent + 5 * MINUTE_MS,
        "within 5 minutes of going silent: {}",
        drops[0]["event_time"]
    );
    let t = &drops[0]["traffic"];
    assert_eq!(t["measure"], "requests");
    assert!(t["count"].as_f64().unwrap() <= 0.5 * t["expected"].as_f64().unwrap());
    assert!(t["p_value"].as_f64().unwrap() < 1e-6);
    assert!(
        of_kind(&alerts, &["traffic_spike"]).is_empty(),
        "{alerts:#?}"
    );
}

#[test]
fn two_days_of_daily_cycles_without_change_raise_no_latency_or_traffic_alert() {
    let dir = tempfile::tempdir().unwrap();
    let services = vec![
        Service {
            release_minute: Some(0),
            canary_share: 0.5,
            ..Service::steady("api", 40.0)
        },
        Service {
            median_ms: 300.0,
            sigma: 1.0,
            ..Service::steady("reports", 8.0)
        },
        Service {
            requests: false,
            ..Service::steady("batch", 20.0)
        },
    ];
    let logs = write(
        dir.path(),
        "logs.jsonl",
        &generate(&services, 2 * 1440 + 120, 0.6, 11),
    );
    let alerts = replay(dir.path(), &logs, &[]);
    let signal = of_kind(
        &alerts,
        &["latency_regression", "traffic_drop", "traffic_spike"],
    );
    assert!(signal.is_empty(), "{signal:#?}");
}

#[test]
fn a_release_that_halves_its_chatter_but_not_its_requests_is_no_traffic_drop() {
    let dir = tempfile::tempdir().unwrap();
    let services = vec![
        Service {
            release_minute: Some(60),
            canary_share: 1.0,
            chatter: (3.0, 1.0),
            ..Service::steady("api", 200.0)
        },
        Service::steady("other", 100.0),
    ];
    let logs = write(dir.path(), "logs.jsonl", &generate(&services, 120, 0.0, 5));
    let alerts = replay(dir.path(), &logs, &[]);
    let traffic = of_kind(&alerts, &["traffic_drop", "traffic_spike"]);
    assert!(traffic.is_empty(), "{traffic:#?}");
}

/// 2026-10-17T00:00:00Z, a Saturday.
const SATURDAY: i64 = 1_792_195_200_000;

/// Eight days from a Saturday at midnight: `shop` serves 20 requests a
/// minute, except on Saturdays from 12:00 to 18:00 (0.15×: a sharp
/// weekend step, against both the hour before and the same time the day
/// before); `pay` serves 10 a minute and goes silent on the eighth day at
/// `silent` minutes.
fn weekly(silent: i64) -> Vec<String> {
    let mut rng = Rng(23);
    let mut out = Vec::new();
    for m in 0..8 * 1440 {
        let minute_of_day = m % 1440;
        let saturday = (m / 1440) % 7 == 0;
        let dip = saturday && (720..1080).contains(&minute_of_day);
        let mut lines: Vec<(i64, String)> = Vec::new();
        for (name, rate) in [("shop", if dip { 3.0 } else { 20.0 }), ("pay", 10.0)] {
            if name == "pay" && m >= silent {
                continue;
            }
            for _ in 0..rng.poisson(rate) {
                let t = SATURDAY + m * MINUTE_MS + (rng.uniform() * MINUTE_MS as f64) as i64;
                let ms = 30.0 * (0.5 * rng.normal()).exp();
                let line = json!({
                    "@timestamp": ts(t), "log.level": "info", "message": "GET /cart",
                    "service.name": name, "service.version": "3.1.0",
                    "http.request.method": "GET", "duration_ms": (ms * 1000.0).round() / 1000.0,
                });
                lines.push((t, line.to_string()));
            }
        }
        lines.sort_by_key(|(t, _)| *t);
        out.extend(lines.into_iter().map(|(_, l)| l));
    }
    out
}

#[test]
fn a_weekly_cycle_raises_nothing_and_a_real_drop_in_its_second_week_still_alerts() {
    let dir = tempfile::tempdir().unwrap();
    // The first Saturday's step falls in the warm-up (no week-ago data
    // yet); the second one's has the first as its same-time-last-week.
    let silent = 7 * 1440 + 20 * 60;
    let logs = write(dir.path(), "logs.jsonl", &weekly(silent));
    let alerts = replay(dir.path(), &logs, &["--warmup", "19h"]);
    let shop = of_kind(
        &alerts,
        &["latency_regression", "traffic_drop", "traffic_spike"],
    )
    .into_iter()
    .filter(|a| a["service"] == "shop")
    .collect::<Vec<_>>();
    assert!(shop.is_empty(), "the weekly step is no change: {shop:#?}");
    let pay = of_kind(&alerts, &["traffic_drop", "traffic_spike"]);
    assert_eq!(pay.len(), 1, "{pay:#?}");
    assert_eq!(pay[0]["service"], "pay");
    let at = SATURDAY + silent * MINUTE_MS;
    assert!(
        (at..=at + 5 * MINUTE_MS).contains(&event_ms(pay[0])),
        "within 5 minutes of going silent: {}",
        pay[0]["event_time"]
    );
    let t = &pay[0]["traffic"];
    assert!(t["expected_last_week"].as_f64().unwrap() > 20.0, "{t:#}");
    assert!(t["expected_yesterday"].as_f64().unwrap() > 20.0, "{t:#}");
}

/// The silence clock's rules on an engine (no broker): it starts only
/// after the grace, follows the wall time since the watermark stopped,
/// judges each minute once, restarts when records move the watermark, and
/// never runs past this machine's clock.
#[test]
fn the_silence_clock_waits_for_the_grace_judges_each_minute_once_and_stops_at_the_wall_clock() {
    use faultline::config::{Config, Dur};
    use faultline::engine::{BaselineOptions, Engine};
    use std::time::{Duration, Instant};

    let mut cfg = Config::default();
    cfg.signals.silence_after = Dur::secs(30);
    let mut e = Engine::new(
        &cfg,
        None,
        &BaselineOptions::default(),
        Vec::new(),
        std::sync::Arc::new(faultline::metrics::Metrics::default()),
    )
    .unwrap();
    e.state.warmup_until = Some(i64::MIN);
    let now = chrono::Utc::now().timestamp_millis();
    let wm = (now - 3_600_000).div_euclid(MINUTE_MS) * MINUTE_MS + 10_000; // hh:mm:10
    e.state.watermark = Some(wm);
    let t0 = Instant::now();
    let at = |s: u64| t0 + Duration::from_secs(s);
    assert_eq!(e.silent_minute(at(0)), None, "first sight");
    assert_eq!(e.silent_minute(at(60)), None, "10 + 60 - 30 s: same minute");
    let minute = wm.div_euclid(MINUTE_MS);
    assert_eq!(e.silent_minute(at(85)), Some(minute + 1));
    assert_eq!(e.judge_silence(minute + 1), 0, "nothing to judge");
    assert_eq!(e.silent_minute(at(100)), None, "judged once");
    assert_eq!(e.silent_minute(at(200)), Some(minute + 3));
    // A record moves the watermark: the silence starts again.
    e.state.watermark = Some(wm + 5 * MINUTE_MS);
    assert_eq!(e.silent_minute(at(300)), None);
    assert_eq!(e.silent_minute(at(320)), None, "within the grace");
    // Hours of silence: the clock stops at this machine's clock, less
    // the grace.
    let wall = || (chrono::Utc::now().timestamp_millis() - 30_000).div_euclid(MINUTE_MS);
    let before = wall();
    let far = e.silent_minute(at(10 * 3600)).unwrap();
    assert!((before..=wall()).contains(&far), "{far}");
    // Signals off: no clock.
    let mut off = cfg.clone();
    off.signals.enabled = false;
    let mut e = Engine::new(
        &off,
        None,
        &BaselineOptions::default(),
        Vec::new(),
        std::sync::Arc::new(faultline::metrics::Metrics::default()),
    )
    .unwrap();
    e.state.watermark = Some(wm);
    e.silent_minute(at(0));
    assert_eq!(e.silent_minute(at(600)), None);
}
