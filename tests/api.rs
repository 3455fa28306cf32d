//! The control API's writes and the triage page, end to end: the real
//! binary under `faultline run` on the real Kafka broker, alerting to the
//! real Alertmanager (`scripts/alertmanager.sh`), the page driven in a real
//! headless Chromium (`scripts/chromium.sh`).
//!
//! Without a server a test prints a loud SKIPPED line and passes, unless
//! `CI=true`, where a missing server fails it (as the other server tests
//! do). Each test makes its own topics, group, service names and state.

mod support;
use support::{Killed, free_port, wait_for};

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use faultline::alert::{Alert, Kind};
use serde_json::{Value, json};

const TOKEN: &str = "s3cret-api-token";
/// 2026-11-02T10:00:00Z: in the past, as the future-time guard wants.
const T0: i64 = 1_793_613_600_000;

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Skips loudly, or fails under CI.
fn missing(what: &str) {
    assert!(!in_ci(), "CI=true and {what}");
    eprintln!("\n!!!!!!!! SKIPPED: {what} !!!!!!!!\n");
}

fn kafka() -> Option<String> {
    match std::env::var("FAULTLINE_KAFKA") {
        Ok(v) if v.contains(':') => Some(v),
        _ => {
            missing("FAULTLINE_KAFKA is not set to a broker (scripts/kafka.sh start)");
            None
        }
    }
}

fn alertmanager() -> Option<String> {
    match std::env::var("FAULTLINE_ALERTMANAGER") {
        Ok(v) if v.starts_with("http") => Some(v.trim_end_matches('/').to_string()),
        _ => {
            missing("FAULTLINE_ALERTMANAGER is not set (eval \"$(scripts/alertmanager.sh env)\")");
            None
        }
    }
}

use support::kafka::unique;

fn ecs(time_ms: i64, level: &str, service: &str, version: &str, message: &str) -> String {
    let ts = chrono::DateTime::from_timestamp_millis(time_ms)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    json!({"@timestamp": ts, "log.level": level, "message": message,
           "service.name": service, "service.version": version})
    .to_string()
}

/// Minutes `from..to` of a service: info lines and a known error every
/// minute; from minute 35 version 2.0.0 with two new errors (`new`
/// lists which: 0 a payment timeout, 1 an inventory lock).
fn log(service: &str, from: i64, to: i64, new: &[usize]) -> Vec<String> {
    let mut out = Vec::new();
    for m in from..to {
        let t = T0 + m * 60_000;
        let v = if m >= 35 { "2.0.0" } else { "1.0.0" };
        for s in 0..6 {
            out.push(ecs(t + s * 10_000, "INFO", service, v, "request served"));
        }
        out.push(ecs(
            t + 5_000,
            "ERROR",
            service,
            v,
            &format!("cache miss for key user:{m}"),
        ));
        if m >= 35 {
            if new.contains(&0) {
                let msg = format!("payment gateway timeout after {}ms", 3000 + m);
                out.push(ecs(t + 7_000, "ERROR", service, v, &msg));
            }
            if new.contains(&1) {
                let msg = format!("inventory lock lost for sku {}", 7000 + m);
                out.push(ecs(t + 8_000, "ERROR", service, v, &msg));
            }
        }
    }
    out
}

fn create_topic(broker: &str, topic: &str) {
    support::kafka::create_topics(support::kafka::client(broker), &[(topic, 1)]);
}

fn produce(broker: &str, topic: &str, lines: &[String]) {
    support::kafka::produce_lines(support::kafka::client(broker), topic, lines);
}

/// One request with a 15 s limit; (status, JSON body or Null), (0, Null)
/// when no answer came.
fn http(method: &str, url: &str, token: Option<&str>, body: Option<Value>) -> (u16, Value) {
    support::http(method, url, token, body.as_ref(), Duration::from_secs(15))
        .unwrap_or((0, Value::Null))
}

/// A `faultline run` on its own topic, group, state and port.
struct Instance {
    dir: tempfile::TempDir,
    broker: String,
    topic: String,
    port: u16,
    child: Option<Killed>,
}

impl Instance {
    fn new(broker: &str, extra: &str) -> Instance {
        let dir = tempfile::tempdir().unwrap();
        let topic = unique("api-logs");
        create_topic(broker, &topic);
        let port = free_port();
        std::fs::write(
            dir.path().join("faultline.toml"),
            format!(
                "[kafka]\nbrokers = \"{broker}\"\ntopics = [\"{topic}\"]\n\
                 group_id = \"{group}\"\nbatch_size = 200\ncommit_interval = \"200ms\"\n\
                 [metrics]\nlisten = \"127.0.0.1:{port}\"\n\
                 [api]\ntoken = \"{TOKEN}\"\n{extra}",
                group = unique("api-group"),
            ),
        )
        .unwrap();
        Instance {
            dir,
            broker: broker.to_string(),
            topic,
            port,
            child: None,
        }
    }

    /// Appends `line` to the config (to the last section).
    fn config_line(&self, line: &str) {
        let p = self.path("faultline.toml");
        let text = std::fs::read_to_string(&p).unwrap();
        std::fs::write(&p, format!("{text}{line}\n")).unwrap();
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path("run.log"))
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_faultline"))
            .arg("--config")
            .arg(self.path("faultline.toml"))
            .args(["run", "--warmup", "30m", "--state"])
            .arg(self.path("state"))
            .arg("--alerts")
            .arg(self.path("alerts.jsonl"))
            .env("FAULTLINE_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("faultline run");
        self.child = Some(Killed(child));
        wait_for(30, "the listener", || {
            (http("GET", &self.url("/healthz"), None, None).0 == 200).then_some(())
        });
    }

    fn stop(&mut self) {
        if let Some(mut k) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &k.0.id().to_string()])
                .status();
            let t0 = Instant::now();
            while k.0.try_wait().ok().flatten().is_none() {
                assert!(t0.elapsed() < Duration::from_secs(30), "no exit on SIGTERM");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    fn produce(&self, lines: &[String]) {
        produce(&self.broker, &self.topic, lines);
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.path("run.log")).unwrap_or_default();
        log.lines()
            .rev()
            .take(30)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn alerts(&self) -> Vec<Alert> {
        std::fs::read_to_string(self.path("alerts.jsonl"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// The fingerprint of the novel alert whose template has `words`.
    fn novel(&self, words: &str) -> String {
        wait_for(60, &format!("a novel alert on `{words}`"), || {
            self.alerts()
                .into_iter()
                .find(|a| a.kind == Kind::Novel && a.template.contains(words))
                .and_then(|a| a.fingerprint)
                .map(|f| f.to_string())
        })
    }

    /// The type as the API lists it, once `ok` holds for it.
    fn type_where(&self, fp: &str, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
        wait_for(30, what, || {
            let (s, v) = http("GET", &self.url(&format!("/api/v1/types/{fp}")), None, None);
            (s == 200 && ok(&v)).then_some(v)
        })
    }

    fn write(
        &self,
        fp: &str,
        action: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        http(
            "POST",
            &self.url(&format!("/api/v1/types/{fp}/{action}")),
            token,
            body,
        )
    }

    /// Runs the CLI on the state; it must fail, saying `words`.
    fn cli_fails(&self, args: &[&str], words: &str) {
        let out = self.cli(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(stderr.contains(words), "{args:?}: {stderr}");
    }

    fn cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(env!("CARGO_BIN_EXE_faultline"))
            .args(args)
            .arg("--state")
            .arg(self.path("state"))
            .output()
            .unwrap()
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("faultline run's log:\n{}", self.log_tail());
        }
    }
}

/// Alertmanager's active (firing) alerts matching `fingerprint="fp"`.
fn firing(am: &str, fp: &str, alertname: &str) -> bool {
    let url =
        format!("{am}/api/v2/alerts?active=true&silenced=true&filter=fingerprint%3D%22{fp}%22");
    match http("GET", &url, None, None) {
        (200, Value::Array(v)) => v
            .iter()
            .any(|a| a["labels"]["alertname"] == alertname && a["status"]["state"] == "active"),
        _ => false,
    }
}

#[test]
fn muting_and_resolving_through_the_api_reach_the_running_engine_alertmanager_and_the_state() {
    let (Some(broker), Some(am)) = (kafka(), alertmanager()) else {
        return;
    };
    let service = unique("api-w");
    let mut fl = Instance::new(
        &broker,
        &format!("[alertmanager]\nurls = [\"{am}\"]\nresend = \"2s\"\n"),
    );
    // Links in alerts point at this instance's triage page.
    fl.config_line(&format!("external_url = \"http://127.0.0.1:{}/\"", fl.port));
    fl.produce(&log(&service, 0, 40, &[0, 1]));
    fl.start();
    let payment = fl.novel("payment gateway");
    let inventory = fl.novel("inventory lock");
    for fp in [&payment, &inventory] {
        wait_for(30, "the novel alert firing in Alertmanager", || {
            firing(&am, fp, "FaultlineNovel").then_some(())
        });
    }

    // Alertmanager's link leads to the type's triage page.
    let url = format!(
        "{am}/api/v2/alerts?filter=fingerprint%3D%22{payment}%22&filter=alertname%3D%22FaultlineNovel%22"
    );
    let (_, listed) = http("GET", &url, None, None);
    let link = listed[0]["generatorURL"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert_eq!(link, fl.url(&format!("/types/{payment}")), "{listed}");
    let page = support::http_get(fl.port, &format!("/types/{payment}"));
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(
        page.contains("payment gateway timeout after &lt;*&gt;"),
        "{page}"
    );

    // Writes need the token, also on loopback; bad input is refused.
    assert_eq!(fl.write(&payment, "mute", None, None).0, 401);
    assert_eq!(fl.write(&payment, "mute", Some("wrong"), None).0, 401);
    assert_eq!(
        fl.write("00000000000000ff", "mute", Some(TOKEN), None).0,
        404
    );
    assert_eq!(fl.write("xyz", "mute", Some(TOKEN), None).0, 400);
    assert_eq!(fl.write(&payment, "explode", Some(TOKEN), None).0, 404);
    assert_eq!(
        fl.write(&payment, "merge", Some(TOKEN), None).0,
        400,
        "merge needs a target"
    );

    // A stopped instance's CLI cannot take the lock: it points to the API.
    let out = fl.cli(&["types", "mute", &payment]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("in use") && stderr.contains(&format!("/api/v1/types/{payment}/mute")),
        "{stderr}"
    );

    // Mute: answered once saved, the view shows it, Alertmanager resolves
    // the open alert.
    let (s, v) = fl.write(&payment, "mute", Some(TOKEN), None);
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["status"], "muted");
    assert_eq!(v["fingerprint"], payment.as_str());
    fl.type_where(&payment, "muted in the view", |t| t["status"] == "muted");
    wait_for(
        30,
        "the muted type's alert resolved in Alertmanager",
        || (!firing(&am, &payment, "FaultlineNovel")).then_some(()),
    );
    // Unmute and mute again: both answered with the new status. (Their
    // latency, beside a read's in the same run, is printed for
    // docs/api.md: a write waits for the engine's next step and a save.)
    let t0 = Instant::now();
    let (s, v) = fl.write(&payment, "unmute", Some(TOKEN), None);
    assert_eq!((s, v["status"].as_str()), (200, Some("active")));
    let (s, v) = fl.write(&payment, "mute", Some(TOKEN), Some(json!({})));
    assert_eq!((s, v["status"].as_str()), (200, Some("muted")));
    let writes = t0.elapsed() / 2;
    let t0 = Instant::now();
    for _ in 0..10 {
        http(
            "GET",
            &fl.url(&format!("/api/v1/types/{payment}")),
            None,
            None,
        );
    }
    eprintln!(
        "quiet stream: a write answered in {writes:?}, a read in {:?}",
        t0.elapsed() / 10
    );

    // Resolve in a version: the open alert resolves; the type occurring
    // again in that version alerts again (regression), in the file and in
    // Alertmanager.
    let (s, v) = fl.write(
        &inventory,
        "resolve",
        Some(TOKEN),
        Some(json!({"in_version": "2.0.0"})),
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        (v["status"].as_str(), v["resolved_in"].as_str()),
        (Some("resolved"), Some("2.0.0"))
    );
    wait_for(
        30,
        "the resolved type's alert resolved in Alertmanager",
        || (!firing(&am, &inventory, "FaultlineNovel")).then_some(()),
    );
    fl.produce(&log(&service, 40, 43, &[0, 1]));
    let regression = wait_for(60, "a regression alert", || {
        fl.alerts().into_iter().find(|a| {
            a.kind == Kind::Regression
                && a.fingerprint.map(|f| f.to_string()) == Some(inventory.clone())
        })
    });
    assert_eq!(regression.service, service);
    wait_for(30, "the regression firing in Alertmanager", || {
        firing(&am, &inventory, "FaultlineRegression").then_some(())
    });
    assert!(
        !fl.alerts().iter().any(|a| a.kind == Kind::Regression
            && a.fingerprint.map(|f| f.to_string()) == Some(payment.clone())),
        "the muted type does not alert"
    );

    // The canary gate, asked of the running engine, says what the CLI
    // says on the state it leaves.
    let gate = format!(
        "/api/v1/rollout-check?service={service}&stable=1.0.0&canary=2.0.0&current_percentage=10"
    );
    let (s, asked) = http("GET", &fl.url(&gate), None, None);
    assert_eq!(s, 200, "{asked}");
    assert!(
        matches!(
            asked["decision"].as_str(),
            Some("proceed" | "hold" | "roll_back")
        ),
        "{asked}"
    );
    let (s, unknown) = http(
        "GET",
        &fl.url("/api/v1/rollout-check?service=nope&stable=1&canary=2&current_percentage=10"),
        None,
        None,
    );
    assert_eq!(s, 422, "{unknown}");
    assert!(unknown["error"].as_str().unwrap_or("").contains("nope"));

    // The changes survive the stop: the CLI reads them from the state.
    fl.stop();
    let out = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .arg("--config")
        .arg(fl.path("faultline.toml"))
        .args([
            "rollout-check",
            "--service",
            &service,
            "--stable",
            "1.0.0",
            "--canary",
            "2.0.0",
            "--current-percentage",
            "10",
            "--state",
        ])
        .arg(fl.path("state"))
        .output()
        .unwrap();
    let cli: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(
        (
            &asked["decision"],
            &asked["next_percentage"],
            &asked["reason"]
        ),
        (&cli["decision"], &cli["next_percentage"], &cli["reason"]),
        "API {asked} vs CLI {cli}"
    );
    let out = fl.cli(&["types", "show", &payment, "--format", "json"]);
    support::assert_ok(&out);
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["status"], "muted");
    // And the CLI edits a stopped instance's state.
    let out = fl.cli(&["types", "unmute", &payment]);
    support::assert_ok(&out);
    assert!(String::from_utf8_lossy(&out.stdout).contains("new"));
}

/// A running instance that has been given minutes `0..to` of a new
/// service's log (both new types from minute 35); (instance, service).
fn running(broker: &str, prefix: &str, extra: &str, to: i64) -> (Instance, String) {
    let service = unique(prefix);
    let mut fl = Instance::new(broker, extra);
    fl.produce(&log(&service, 0, to, &[0, 1]));
    fl.start();
    (fl, service)
}

/// The novel alerts of `fp` in the alert file.
fn novels(fl: &Instance, fp: &str) -> Vec<Alert> {
    fl.alerts()
        .into_iter()
        .filter(|a| {
            a.kind == Kind::Novel && a.fingerprint.map(|f| f.to_string()).as_deref() == Some(fp)
        })
        .collect()
}

#[test]
fn a_snoozed_type_unmutes_by_itself_across_a_restart_and_its_alert_reopens_in_alertmanager() {
    let (Some(broker), Some(am)) = (kafka(), alertmanager()) else {
        return;
    };
    let am_cfg = format!("[alertmanager]\nurls = [\"{am}\"]\nresend = \"2s\"\n");
    let (mut fl, service) = running(&broker, "api-snooze", &am_cfg, 40);
    let payment = fl.novel("payment gateway");
    let inventory = fl.novel("inventory lock");
    for fp in [&payment, &inventory] {
        wait_for(30, "the novel alert firing in Alertmanager", || {
            firing(&am, fp, "FaultlineNovel").then_some(())
        });
    }

    // Bad snoozes are refused with the reason.
    let (s, v) = fl.write(
        &payment,
        "mute",
        Some(TOKEN),
        Some(json!({"until": "soon"})),
    );
    assert_eq!(s, 400, "{v}");
    assert!(
        v["error"].as_str().unwrap_or("").contains("RFC 3339"),
        "{v}"
    );
    let (s, _) = fl.write(&payment, "unmute", Some(TOKEN), Some(json!({"count": 3})));
    assert_eq!(s, 400);

    // Snooze the payment type for 2 more occurrences, the inventory type
    // until 10:50 event time (minute 50 of the log).
    let (s, v) = fl.write(&payment, "mute", Some(TOKEN), Some(json!({"count": 2})));
    assert_eq!((s, v["status"].as_str()), (200, Some("muted")), "{v}");
    assert_eq!(v["snooze"]["occurrences_left"], 2, "{v}");
    fl.type_where(&payment, "the snooze in the view", |t| {
        t["snooze"]["occurrences_left"] == 2
    });
    let (s, v) = fl.write(
        &inventory,
        "mute",
        Some(TOKEN),
        Some(json!({"until": "2026-11-02T10:50:00Z"})),
    );
    assert_eq!((s, v["status"].as_str()), (200, Some("muted")), "{v}");
    assert_eq!(v["snooze"]["until"], "2026-11-02T10:50:00.000Z", "{v}");
    assert!(
        v["snooze"]["wall_until"].is_null(),
        "past on the wall clock: {v}"
    );
    for fp in [&payment, &inventory] {
        wait_for(
            30,
            "the snoozed type's alert resolved in Alertmanager",
            || (!firing(&am, fp, "FaultlineNovel")).then_some(()),
        );
    }

    // The snoozes are in the saved state: a restart keeps them, and the
    // restarted instance shows them before any new record arrives (the
    // view is published at start, not only at the first checkpoint).
    fl.stop();
    fl.start();
    fl.type_where(
        &payment,
        "the snooze in the view of the restarted instance, no record yet",
        |t| t["status"] == "muted" && t["snooze"]["occurrences_left"] == 2,
    );

    // Two more payment errors (minutes 40, 41) pass muted...
    fl.produce(&log(&service, 40, 42, &[0]));
    fl.type_where(
        &payment,
        "still muted after the restart, two more counted",
        |t| t["status"] == "muted" && t["by_version"]["2.0.0"].as_u64() >= Some(7),
    );
    assert_eq!(novels(&fl, &payment).len(), 1, "nothing while snoozed");
    // ...the third ends the snooze: the type is active and its novel alert
    // goes out again, a new id with the same labels, firing again in
    // Alertmanager.
    fl.produce(&log(&service, 42, 43, &[0]));
    fl.type_where(&payment, "unmuted by the count", |t| {
        t["status"] == "active"
    });
    let again = wait_for(30, "the reopened novel alert", || {
        let n = novels(&fl, &payment);
        (n.len() == 2).then_some(n)
    });
    assert_ne!(again[0].id, again[1].id);
    wait_for(30, "the alert firing again in Alertmanager", || {
        firing(&am, &payment, "FaultlineNovel").then_some(())
    });

    // Event time passing 10:50 ends the inventory snooze; its next
    // occurrence reopens its alert.
    fl.produce(&log(&service, 43, 52, &[1]));
    fl.type_where(&inventory, "unmuted in event time", |t| {
        t["status"] == "active"
    });
    wait_for(30, "the inventory alert firing again", || {
        firing(&am, &inventory, "FaultlineNovel").then_some(())
    });
    let n = novels(&fl, &inventory);
    assert_eq!(n.len(), 2, "{n:?}");
    assert!(
        n[1].event_time.as_str() >= "2026-11-02T10:50:00",
        "reopened at the first occurrence after the snooze: {}",
        n[1].event_time
    );

    // On a quiet stream the wall clock ends a snooze (under `run`).
    let (s, v) = fl.write(&payment, "mute", Some(TOKEN), Some(json!({"until": "2s"})));
    assert_eq!((s, v["status"].as_str()), (200, Some("muted")), "{v}");
    fl.type_where(&payment, "unmuted by the wall clock", |t| {
        t["status"] == "active"
    });

    // The CLI snoozes a stopped instance's type the same way.
    fl.stop();
    let out = fl.cli(&["types", "mute", &inventory, "--count", "5"]);
    support::assert_ok(&out);
    assert!(String::from_utf8_lossy(&out.stdout).contains("muted"));
    fl.cli_fails(
        &["types", "mute", &inventory, "--until", "tomorrow"],
        "RFC 3339",
    );
}

#[test]
fn merging_a_type_folds_its_counts_into_the_target_and_its_later_occurrences_never_alert_as_new() {
    let Some(broker) = kafka() else {
        return;
    };
    let (mut fl, service) = running(&broker, "api-merge", "", 40);
    let payment = fl.novel("payment gateway");
    let inventory = fl.novel("inventory lock");
    // Minutes 35 to 39 of the release, one error of each per minute.
    let (p, i) = (5, 5);
    for fp in [&payment, &inventory] {
        fl.type_where(fp, "all five occurrences", |t| t["count"] == 5);
    }

    // Refused: no target, a bad one, an unknown one, itself.
    assert_eq!(fl.write(&payment, "merge", Some(TOKEN), None).0, 400);
    let into = |fp: &str| Some(json!({ "into": fp }));
    assert_eq!(fl.write(&payment, "merge", Some(TOKEN), into("xyz")).0, 400);
    assert_eq!(
        fl.write(&payment, "merge", Some(TOKEN), into("00000000000000ff"))
            .0,
        404
    );
    assert_eq!(
        fl.write(&payment, "merge", Some(TOKEN), into(&payment)).0,
        409
    );

    // Merge payment into inventory: answered with the target, counts added.
    let (s, v) = fl.write(&payment, "merge", Some(TOKEN), into(&inventory));
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["fingerprint"], inventory.as_str());
    assert_eq!(v["count"], p + i);
    wait_for(30, "the merged type gone from the list", || {
        (http(
            "GET",
            &fl.url(&format!("/api/v1/types/{payment}")),
            None,
            None,
        )
        .0 == 404)
            .then_some(())
    });
    assert_eq!(
        fl.write(&payment, "merge", Some(TOKEN), into(&inventory)).0,
        409
    );

    // Later payment errors count for inventory, and nothing is new.
    fl.produce(&log(&service, 40, 43, &[0]));
    fl.type_where(&inventory, "the merged occurrences counted", |t| {
        t["count"].as_u64() == Some(p + i + 3)
    });
    assert_eq!(novels(&fl, &payment).len(), 1, "no second novel alert");
    assert_eq!(novels(&fl, &inventory).len(), 1);

    // Durable: the stopped state's CLI shows the source as the target.
    fl.stop();
    let out = fl.cli(&["types", "show", &payment, "--format", "json"]);
    support::assert_ok(&out);
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["fingerprint"], inventory.as_str());
    assert_eq!(shown["count"], p + i + 3);
    // The CLI merges on a stopped state too (here: already one type).
    fl.cli_fails(
        &["types", "merge", &payment, "--into", &inventory],
        "same type",
    );
}

#[test]
fn the_report_endpoint_serves_the_clis_report_of_the_running_engine() {
    let Some(broker) = kafka() else {
        return;
    };
    let (mut fl, _) = running(&broker, "api-report", "", 45);
    fl.novel("inventory lock");
    let path = "/api/v1/report?release=2.0.0&format=json&after=24h";
    let asked = wait_for(30, "the report", || {
        let (s, v) = http("GET", &fl.url(path), None, None);
        (s == 200 && v["new_types"].as_array().is_some_and(|n| n.len() == 2)).then_some(v)
    });
    assert_eq!(asked["release"], "2.0.0", "{asked}");
    assert!(asked["signals"].is_object(), "{asked}");
    let md = support::http_get(fl.port, "/api/v1/report?release=2.0.0");
    assert!(md.contains("text/markdown"), "{md}");
    assert!(md.contains("## New error types"), "{md}");
    let html = support::http_get(fl.port, "/api/v1/report?release=2.0.0&format=html");
    assert!(html.contains("text/html") && html.contains("<h2>New error types"));
    // What a report costs, beside a read in the same run (printed for
    // docs/api.md): the whole request, and the engine's share of it.
    let timed = |path: &str| {
        let t0 = Instant::now();
        for _ in 0..5 {
            support::http_get(fl.port, path);
        }
        t0.elapsed() / 5
    };
    let (read, md_t, html_t) = (
        timed("/api/v1/types"),
        timed("/api/v1/report?release=2.0.0"),
        timed("/api/v1/report?release=2.0.0&format=html"),
    );
    let log = std::fs::read_to_string(fl.path("run.log")).unwrap_or_default();
    let engine_ms: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("report built between two polls"))
        .filter_map(|l| l.split("engine_ms=").nth(1))
        .collect();
    eprintln!(
        "report: md {md_t:?}, html {html_t:?} per request, a read {read:?}; \
         engine time per report (ms): {engine_ms:?}"
    );
    let (s, v) = http("GET", &fl.url("/api/v1/report?release=9.9.9"), None, None);
    assert_eq!(s, 422, "{v}");
    assert!(v["error"].as_str().unwrap_or("").contains("9.9.9"));
    let (s, _) = http(
        "GET",
        &fl.url("/api/v1/report?release=2.0.0&format=pdf"),
        None,
        None,
    );
    assert_eq!(s, 400);
    let (s, _) = http(
        "GET",
        &fl.url("/api/v1/report?release=2.0.0&after=soon"),
        None,
        None,
    );
    assert_eq!(s, 400);

    // The CLI on the state the engine leaves says the same.
    fl.stop();
    let out = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args([
            "report",
            "--release",
            "2.0.0",
            "--format",
            "json",
            "--after",
            "24h",
            "--state",
        ])
        .arg(fl.path("state"))
        .output()
        .unwrap();
    support::assert_ok(&out);
    let cli: Value = serde_json::from_slice(&out.stdout).unwrap();
    for k in [
        "verdict",
        "summary",
        "new_types",
        "released_at",
        "until",
        "since",
    ] {
        assert_eq!(asked[k], cli[k], "{k}: API {asked} vs CLI {cli}");
    }
}

// ------------------------------------------------------------ the browser

/// chromium and chromedriver: `FAULTLINE_CHROMIUM`/`FAULTLINE_CHROMEDRIVER`
/// (what `scripts/chromium.sh env` prints), else on PATH.
fn chromium() -> Option<(PathBuf, PathBuf)> {
    let find = |var: &str, names: &[&str]| {
        std::env::var_os(var)
            .map(PathBuf::from)
            .filter(|p| p.exists())
            .or_else(|| {
                let path = std::env::var_os("PATH")?;
                std::env::split_paths(&path)
                    .flat_map(|d| names.iter().map(move |n| d.join(n)))
                    .find(|p| p.exists())
            })
    };
    match (
        find("FAULTLINE_CHROMIUM", &["chromium", "chromium-browser"]),
        find("FAULTLINE_CHROMEDRIVER", &["chromedriver"]),
    ) {
        (Some(c), Some(d)) => Some((c, d)),
        _ => {
            missing("no chromium/chromedriver (scripts/chromium.sh env installs them)");
            None
        }
    }
}

/// A WebDriver session of headless Chromium, spoken to over chromedriver's
/// HTTP protocol (W3C WebDriver).
struct Browser {
    base: String,
    session: String,
    _driver: Killed,
    _profile: tempfile::TempDir,
}

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

impl Browser {
    fn start(chromium: &std::path::Path, driver: &std::path::Path) -> Browser {
        let port = free_port();
        let child = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver");
        let driver = Killed(child);
        let base = format!("http://127.0.0.1:{port}");
        wait_for(30, "chromedriver", || {
            let (s, v) = http("GET", &format!("{base}/status"), None, None);
            (s == 200 && v["value"]["ready"] == true).then_some(())
        });
        let profile = tempfile::tempdir().unwrap();
        // The flags a closed network and a root user need: no sandbox as
        // root, no background connections (refused here, many at once).
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1280,900",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([format!("--user-data-dir={}", profile.path().display())])
        .collect::<Vec<_>>();
        let (s, v) = http(
            "POST",
            &format!("{base}/session"),
            None,
            Some(json!({"capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {"binary": chromium, "args": args}
            }}})),
        );
        assert_eq!(s, 200, "new WebDriver session: {v}");
        let session = v["value"]["sessionId"].as_str().unwrap().to_string();
        Browser {
            base,
            session,
            _driver: driver,
            _profile: profile,
        }
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let (s, v) = http(
            method,
            &url,
            None,
            body.or(Some(json!({}))).filter(|_| method == "POST"),
        );
        assert_eq!(s, 200, "{method} {path}: {v}");
        v["value"].clone()
    }

    fn go(&self, url: &str) {
        self.call("POST", "/url", Some(json!({ "url": url })));
    }

    fn find(&self, css: &str) -> Option<String> {
        let url = format!("{}/session/{}/element", self.base, self.session);
        let (s, v) = http(
            "POST",
            &url,
            None,
            Some(json!({"using": "css selector", "value": css})),
        );
        (s == 200).then(|| v["value"][ELEMENT].as_str().unwrap().to_string())
    }

    fn el(&self, css: &str) -> String {
        self.find(css)
            .unwrap_or_else(|| panic!("no element `{css}` in the page:\n{}", self.source()))
    }

    fn text(&self, css: &str) -> String {
        let e = self.el(css);
        self.call("GET", &format!("/element/{e}/text"), None)
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    fn click(&self, css: &str) {
        let e = self.el(css);
        self.call("POST", &format!("/element/{e}/click"), None);
    }

    fn type_into(&self, css: &str, text: &str) {
        let e = self.el(css);
        self.call("POST", &format!("/element/{e}/clear"), None);
        self.call(
            "POST",
            &format!("/element/{e}/value"),
            Some(json!({ "text": text })),
        );
    }

    fn source(&self) -> String {
        self.call("GET", "/source", None)
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    /// A PNG of the viewport, base64 as WebDriver sends it.
    fn screenshot(&self) -> String {
        self.call("GET", "/screenshot", None)
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    fn wait_text(&self, css: &str, want: &str) {
        wait_for(20, &format!("`{css}` to read `{want}`"), || {
            (self.find(css).is_some() && self.text(css).contains(want)).then_some(())
        });
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = http(
            "DELETE",
            &format!("{}/session/{}", self.base, self.session),
            None,
            None,
        );
    }
}

#[test]
fn the_triage_page_in_chromium_lists_the_release_and_its_mute_button_mutes_the_type() {
    let (Some(broker), Some((chromium, driver))) = (kafka(), chromium()) else {
        return;
    };
    let (mut fl, service) = running(&broker, "api-page", "", 40);
    let payment = fl.novel("payment gateway");
    let inventory = fl.novel("inventory lock");
    for fp in [&payment, &inventory] {
        fl.type_where(fp, "the new type in the view", |t| t["origin"] == "live");
    }

    let b = Browser::start(&chromium, &driver);
    b.go(&fl.url("/"));
    // The release's group: service, version, marked current; both new
    // types with template, sample and counts.
    let group = format!(r#"section[data-service="{service}"][data-version="2.0.0"]"#);
    let heading = b.text(&format!("{group} h2"));
    assert!(
        heading.contains(&service) && heading.contains("2.0.0"),
        "{heading}"
    );
    assert!(heading.contains("current release"), "{heading}");
    let row = b.text(&format!("#t-{payment}"));
    assert!(row.contains("payment gateway timeout after"), "{row}");
    assert!(row.contains("active") && row.contains("new"), "{row}");
    assert!(b.find(&format!("{group} #t-{inventory}")).is_some());
    let png = b.screenshot();
    assert!(png.starts_with("iVBORw0KGgo"), "a PNG screenshot");
    // FAULTLINE_SCREENSHOT=path keeps it (base64) for a person to look at.
    if let Some(keep) = std::env::var_os("FAULTLINE_SCREENSHOT") {
        std::fs::write(keep, &png).unwrap();
    }

    // A wrong token: the page says why, nothing changes.
    b.type_into("#token", "wrong");
    b.click(&format!(
        r#"button[data-fp="{payment}"][data-action="mute"]"#
    ));
    b.wait_text("#message", "401");
    assert_eq!(
        http(
            "GET",
            &fl.url(&format!("/api/v1/types/{payment}")),
            None,
            None
        )
        .1["status"],
        "active"
    );

    // The token, then Mute: the row says muted once the engine saved it,
    // and the API agrees.
    b.type_into("#token", TOKEN);
    b.click(&format!(
        r#"button[data-fp="{payment}"][data-action="mute"]"#
    ));
    b.wait_text(&format!(r#"[data-status="{payment}"]"#), "muted");
    fl.type_where(&payment, "muted through the page", |t| {
        t["status"] == "muted"
    });
    // The button turned into Unmute.
    assert!(
        b.find(&format!(
            r#"button[data-fp="{payment}"][data-action="unmute"]"#
        ))
        .is_some()
    );

    // The type's own page (where generatorURL points): Resolve there.
    b.go(&fl.url(&format!("/types/{inventory}")));
    assert!(
        b.text("h2.template")
            .contains("inventory lock lost for sku")
    );
    // Canary vs stable: the release's version against the one before, in
    // a chart with a legend and the release marked, and the counts since.
    let canary = "section.canary[data-canary=\"2.0.0\"][data-stable=\"1.0.0\"]";
    assert!(
        b.find(&format!("{canary} figure.versions svg")).is_some(),
        "{}",
        b.source()
    );
    for part in ["legend", "marker", "series"] {
        assert!(
            b.find(&format!("{canary} svg .{part}")).is_some(),
            "no {part} in the chart"
        );
    }
    assert_eq!(
        b.text(&format!("{canary} tr[data-role=\"canary\"] td.n")),
        "5"
    );
    assert_eq!(
        b.text(&format!("{canary} tr[data-role=\"stable\"] td.n")),
        "0"
    );
    b.click(&format!(
        r#"button[data-fp="{inventory}"][data-action="resolve"]"#
    ));
    b.wait_text(&format!(r#"[data-status="{inventory}"]"#), "resolved");
    fl.type_where(&inventory, "resolved through the page", |t| {
        t["status"] == "resolved"
    });

    // Reloaded, the list no longer shows what was triaged (all=1 does).
    b.go(&fl.url("/"));
    assert!(b.find(&format!("#t-{payment}")).is_none());
    b.go(&fl.url(&format!("/?all=1&service={service}")));
    assert!(b.text(&format!("#t-{payment}")).contains("muted"));
    fl.stop();
}
