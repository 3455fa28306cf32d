//! `faultline run` against the SASL_SSL listener of the REAL test broker
//! (`scripts/kafka.sh`: SCRAM-SHA-512 over TLS, with a self-signed CA the
//! script makes). Address, CA and test user come from the environment, as
//! `scripts/kafka.sh env` prints them (scripts/test exports them):
//!
//! - `FAULTLINE_KAFKA_SASL`: `host:port` of the SASL_SSL listener;
//! - `FAULTLINE_KAFKA_SASL_CA`: the CA certificate (PEM);
//! - `FAULTLINE_KAFKA_SASL_MECHANISM`, `FAULTLINE_KAFKA_SASL_USER`,
//!   `FAULTLINE_KAFKA_SASL_PASSWORD`: the SCRAM user.
//!
//! Without `FAULTLINE_KAFKA_SASL` these tests skip with a loud message. The
//! topics are made, filled and read through the secured listener only.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use faultline::alert::{Alert, Kind};
use rdkafka::ClientConfig;

use super::{
    ONE_AT_A_TIME, Service, Setup, create_topics_with, produce_with, read_committed_with, unique,
};

/// The secured listener and its test user.
struct Sasl {
    brokers: String,
    ca: String,
    mechanism: String,
    user: String,
    password: String,
}

fn sasl() -> Option<Sasl> {
    let Ok(brokers) = std::env::var("FAULTLINE_KAFKA_SASL") else {
        eprintln!(
            "\n!!!!!!!! SKIPPING Kafka SASL/TLS tests: FAULTLINE_KAFKA_SASL is not set. Start the broker with scripts/kafka.sh, then `eval \"$(scripts/kafka.sh env)\"` (scripts/test does). !!!!!!!!\n"
        );
        return None;
    };
    let var = |k: &str| {
        std::env::var(k).unwrap_or_else(|_| panic!("{k} must be set with FAULTLINE_KAFKA_SASL"))
    };
    Some(Sasl {
        brokers,
        ca: var("FAULTLINE_KAFKA_SASL_CA"),
        mechanism: std::env::var("FAULTLINE_KAFKA_SASL_MECHANISM")
            .unwrap_or_else(|_| "SCRAM-SHA-512".into()),
        user: var("FAULTLINE_KAFKA_SASL_USER"),
        password: var("FAULTLINE_KAFKA_SASL_PASSWORD"),
    })
}

impl Sasl {
    /// A client of the SASL_SSL listener, for the test's own reads and writes.
    fn client(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers)
            .set("security.protocol", "SASL_SSL")
            .set("sasl.mechanism", &self.mechanism)
            .set("sasl.username", &self.user)
            .set("sasl.password", &self.password)
            .set("ssl.ca.location", &self.ca);
        c
    }

    /// Topics for one test, made over SASL_SSL, and a config for `faultline
    /// run` that reaches them over SASL_SSL. The password comes from a file
    /// (`[kafka.property_files]`) when `password_file`, else from nowhere in
    /// the config (the test passes it in the environment). `alerts`: whether
    /// run produces to an alerts topic (and so has a producer).
    fn setup(&self, name: &str, password_file: bool, alerts: bool) -> Setup {
        let dir = tempfile::tempdir().expect("tempdir");
        let logs = unique(&format!("{name}-logs"));
        let alerts_topic = unique(&format!("{name}-alerts"));
        create_topics_with(self.client(), &[(&logs, 1), (&alerts_topic, 1)]);
        let secret = dir.path().join("kafka-password");
        std::fs::write(&secret, format!("{}\n", self.password)).expect("secret file");
        let files = if password_file {
            format!("[kafka.property_files]\n\"sasl.password\" = {secret:?}\n")
        } else {
            String::new()
        };
        let config = dir.path().join("faultline.toml");
        let text = format!(
            r#"
[kafka]
brokers = "{brokers}"
topics = ["{logs}"]
group_id = "{group}"
alerts_topic = "{produce_to}"
transactional_id = "{txid}"
batch_size = 200
commit_interval = "200ms"
[kafka.properties]
"security.protocol" = "SASL_SSL"
"sasl.mechanism" = "{mechanism}"
"sasl.username" = "{user}"
"ssl.ca.location" = {ca:?}
{files}
"#,
            brokers = self.brokers,
            group = unique(&format!("{name}-group")),
            produce_to = if alerts { alerts_topic.as_str() } else { "" },
            txid = unique(&format!("{name}-tx")),
            mechanism = self.mechanism,
            user = self.user,
            ca = self.ca,
        );
        std::fs::write(&config, text).expect("config");
        Setup {
            dir,
            logs,
            alerts: alerts_topic,
            config,
        }
    }
}

/// One service over 70 minutes of event time: a known error type and info
/// lines all along, two new error types from minute 50 (after the default
/// warm-up), so the run must report them as novel.
fn stream() -> Vec<(Option<String>, Vec<u8>)> {
    let t0: i64 = 1_793_613_600_000; // 2026-11-02T10:00:00Z
    let mut out = Vec::new();
    for sec in (0..70 * 60).step_by(5) {
        let ts = t0 + sec * 1000;
        let mut line = |level: &str, msg: String| {
            let v = serde_json::json!({
                "@timestamp": faultline::alert::rfc3339(ts),
                "log.level": level,
                "message": msg,
                "service.name": "billing",
            });
            out.push((None, v.to_string().into_bytes()));
        };
        line("INFO", format!("request {sec} served in {}ms", sec % 700));
        if sec % 60 == 0 {
            line("ERROR", format!("upstream returned 503 for call {sec}"));
        }
        if sec >= 50 * 60 && sec % 40 == 0 {
            line(
                "ERROR",
                format!("ledger write rejected: account ACC-{sec} is frozen"),
            );
            line("ERROR", format!("certificate for peer {sec} expired"));
        }
    }
    out
}

fn novel(alerts: &[Alert]) -> BTreeSet<String> {
    alerts
        .iter()
        .filter(|a| a.kind == Kind::Novel)
        .map(|a| a.id.clone())
        .collect()
}

fn file_alerts(s: &Setup) -> Vec<Alert> {
    std::fs::read_to_string(s.dir.path().join("alerts.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("alert"))
        .collect()
}

fn full_log(s: &Setup) -> String {
    std::fs::read_to_string(s.dir.path().join("run.log")).unwrap_or_default()
}

#[test]
fn run_consumes_and_produces_alerts_through_the_sasl_ssl_listener() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let Some(sasl) = sasl() else { return };
    let s = sasl.setup("sasl", true, true);
    let records = stream();
    produce_with(sasl.client(), &s.logs, &records);
    let want = novel(&s.replay(&records));
    assert!(
        want.len() >= 2,
        "the stream must give the two novel types in replay, got {want:?}"
    );

    let svc = s.start();
    // The file sink is written before the transaction commits: once it
    // holds every novel alert, the topic has them or is about to.
    let started = Instant::now();
    while novel(&file_alerts(&s)).len() < want.len() {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "novel alerts not all written within 120 s; log:\n{}",
            full_log(&s)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (code, _) = svc.terminate();
    let log = full_log(&s);
    assert_eq!(code, Some(0), "run did not stop cleanly; log:\n{log}");
    let got: Vec<Alert> = read_committed_with(sasl.client(), &s.alerts)
        .iter()
        .map(|v| serde_json::from_slice(v).expect("alert JSON in the schema"))
        .collect();
    assert_eq!(
        novel(&got),
        want,
        "novel alerts on the alerts topic (read over SASL_SSL) differ from replay; log:\n{log}"
    );
    assert!(
        !log.contains(&sasl.password),
        "the password appears in the log:\n{log}"
    );
}

/// Waits for `svc` to exit by itself: its exit code and how long it took.
fn exit_of(mut svc: Service, s: &Setup) -> (Option<i32>, Duration) {
    let started = Instant::now();
    loop {
        if let Some(st) = svc.child.try_wait().expect("wait") {
            return (st.code(), started.elapsed());
        }
        if started.elapsed() > Duration::from_secs(60) {
            let _ = svc.child.kill();
            let _ = svc.child.wait();
            panic!(
                "run kept going for 60 s with a wrong password; log:\n{}",
                full_log(s)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_wrong_password_stops_run_with_a_clear_error_and_no_retry_storm() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let Some(sasl) = sasl() else { return };
    let wrong = "not-the-password-7f3a";
    // With an alerts topic the transactional producer meets the broker
    // first; without one, the consumer does. Both must stop.
    for alerts in [true, false] {
        // The password from the environment this time (the other way in).
        let s = sasl.setup("sasl-badpw", false, alerts);
        let svc = s.start_with(&[("FAULTLINE__KAFKA__PROPERTIES__SASL.PASSWORD", wrong)]);
        let (code, took) = exit_of(svc, &s);
        let log = full_log(&s);
        let what = format!("alerts topic: {alerts}, exit after {took:?}; log:\n{log}");
        assert_eq!(code, Some(2), "exit code, {what}");
        let last = log.lines().last().unwrap_or_default();
        assert!(
            last.contains("authentication")
                && last.contains("invalid credentials")
                && last.contains("sasl.username")
                && last.contains("sasl.password"),
            "the final error must name the cause and what to check, got: {last}\n{what}"
        );
        assert!(
            !log.contains(wrong),
            "the password appears in the log, {what}"
        );
        // No retry storm: one or two attempts, then the service stops.
        let attempts = log.matches("SASL authentication error").count();
        assert!(
            attempts <= 5,
            "{attempts} authentication failures logged, {what}"
        );
        assert!(
            file_alerts(&s).is_empty(),
            "alerts without a broker, {what}"
        );
        // And `config check` of the same setup shows it redacted.
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_faultline"))
            .arg("--config")
            .arg(&s.config)
            .args(["config", "check"])
            .env("FAULTLINE__KAFKA__PROPERTIES__SASL.PASSWORD", wrong)
            .output()
            .expect("config check");
        let shown = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            shown.contains("\"sasl.password\" = \"<redacted>\"") && !shown.contains(wrong),
            "config check must show the password as <redacted>:\n{shown}"
        );
    }
}
