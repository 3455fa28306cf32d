//! `faultline run` against the SASL_SSL listener of the REAL test broker
//! (`scripts/kafka.sh`: SCRAM-SHA-512 over TLS, with a self-signed CA the
//! script makes). The broker's address, CA and test user come from the
//! environment, as `scripts/kafka.sh env` prints them (scripts/test exports
//! them):
//!
//! - `FAULTLINE_KAFKA_SASL`: `host:port` of the SASL_SSL listener;
//! - `FAULTLINE_KAFKA_SASL_CA`: the CA certificate (PEM);
//! - `FAULTLINE_KAFKA_SASL_MECHANISM`, `FAULTLINE_KAFKA_SASL_USER`,
//!   `FAULTLINE_KAFKA_SASL_PASSWORD`: the SCRAM user.
//!
//! Without `FAULTLINE_KAFKA_SASL` the tests are skipped with a loud message
//! (as the other Kafka tests are with `FAULTLINE_KAFKA=skip`).
//!
//! Every client here, the test's own included, talks SASL_SSL only: the
//! topics are made, filled and read through the secured listener.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use faultline::alert::{Alert, Kind};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;

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
            "\n!!!!!!!! SKIPPING Kafka SASL/TLS tests: FAULTLINE_KAFKA_SASL is not set. Start the broker with scripts/kafka.sh and `eval \"$(scripts/kafka.sh env)\"` (scripts/test does). !!!!!!!!\n"
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

    fn create_topics(&self, topics: &[&str]) {
        let admin: AdminClient<DefaultClientContext> =
            self.client().create().expect("admin client");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let new: Vec<NewTopic<'_>> = topics
            .iter()
            .map(|t| NewTopic::new(t, 1, TopicReplication::Fixed(1)))
            .collect();
        let res = rt
            .block_on(admin.create_topics(new.iter(), &AdminOptions::new()))
            .expect("create topics over SASL_SSL");
        for r in res {
            if let Err((t, e)) = r {
                assert_eq!(e, RDKafkaErrorCode::TopicAlreadyExists, "creating {t}");
            }
        }
    }

    fn produce(&self, topic: &str, values: &[Vec<u8>]) {
        let p: ThreadedProducer<DefaultProducerContext> = self
            .client()
            .set("linger.ms", "20")
            .create()
            .expect("producer");
        for v in values {
            p.send(BaseRecord::<(), Vec<u8>>::to(topic).payload(v))
                .map_err(|(e, _)| e)
                .expect("produce over SASL_SSL");
        }
        p.flush(Duration::from_secs(30)).expect("flush");
    }

    /// The alerts a read_committed consumer sees on `topic` within `limit`,
    /// once at least `want` arrived and nothing more came for 3 s.
    fn read_alerts(&self, topic: &str, want: usize, limit: Duration) -> Vec<Alert> {
        let c: BaseConsumer = self
            .client()
            .set("group.id", unique("sasl-reader"))
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "false")
            .set("isolation.level", "read_committed")
            .create()
            .expect("consumer");
        c.subscribe(&[topic]).expect("subscribe");
        let mut out: Vec<Alert> = Vec::new();
        let started = Instant::now();
        let mut idle_since = Instant::now();
        while started.elapsed() < limit
            && (out.len() < want || idle_since.elapsed() < Duration::from_secs(3))
        {
            match c.poll(Duration::from_millis(200)) {
                Some(Ok(m)) => {
                    let v = m.payload().unwrap_or(&[]);
                    out.push(serde_json::from_slice(v).expect("alert JSON in the schema"));
                    idle_since = Instant::now();
                }
                Some(Err(e)) => panic!("reading {topic} over SASL_SSL: {e}"),
                None => {}
            }
        }
        out
    }
}

fn unique(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{name}-{}-{}", std::process::id(), nanos % 1_000_000_000)
}

/// One service over 70 minutes of event time: a known error type and info
/// lines all along, two new error types from minute 50 (after the default
/// warm-up), so the run must report them as novel.
fn stream() -> Vec<Vec<u8>> {
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
            out.push(v.to_string().into_bytes());
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

struct Setup {
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl Setup {
    /// A config that reaches the broker over SASL_SSL, the password read
    /// from a file (`[kafka.property_files]`) unless `password_file` is off.
    fn new(sasl: &Sasl, logs: &str, alerts: &str, password_file: bool) -> Setup {
        let dir = tempfile::tempdir().expect("tempdir");
        let secret = dir.path().join("kafka-password");
        std::fs::write(&secret, format!("{}\n", sasl.password)).expect("secret file");
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
alerts_topic = "{alerts}"
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
            brokers = sasl.brokers,
            group = unique("sasl-group"),
            txid = unique("sasl-tx"),
            mechanism = sasl.mechanism,
            user = sasl.user,
            ca = sasl.ca,
        );
        std::fs::write(&config, text).expect("config");
        Setup { dir, config }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn run(&self, env: &[(&str, &str)]) -> std::process::Child {
        let log = std::fs::File::create(self.path("run.log")).expect("log file");
        Command::new(env!("CARGO_BIN_EXE_faultline"))
            .arg("--config")
            .arg(&self.config)
            .arg("run")
            .arg("--state")
            .arg(self.path("state"))
            .arg("--alerts")
            .arg(self.path("alerts.jsonl"))
            .env("FAULTLINE__METRICS__LISTEN", "\"\"")
            .env("FAULTLINE_LOG", "info")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("faultline run")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.path("run.log")).unwrap_or_default()
    }

    fn replay(&self, records: &[Vec<u8>]) -> Vec<Alert> {
        let input = self.path("stream.jsonl");
        let mut f = std::fs::File::create(&input).expect("stream file");
        for v in records {
            f.write_all(v).expect("write");
            f.write_all(b"\n").expect("write");
        }
        drop(f);
        let out = self.path("replay-alerts.jsonl");
        let st = Command::new(env!("CARGO_BIN_EXE_faultline"))
            .arg("--config")
            .arg(&self.config)
            .args(["replay", "--no-progress", "--alerts"])
            .arg(&out)
            .arg(&input)
            .stderr(Stdio::null())
            .status()
            .expect("replay");
        assert!(st.success(), "replay failed");
        read_jsonl(&out)
    }
}

fn read_jsonl(path: &Path) -> Vec<Alert> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("alert"))
        .collect()
}

fn novel(alerts: &[Alert]) -> BTreeSet<String> {
    alerts
        .iter()
        .filter(|a| a.kind == Kind::Novel)
        .map(|a| a.id.clone())
        .collect()
}

fn terminate(mut child: std::process::Child) -> Option<i32> {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(30) {
        if let Ok(Some(st)) = child.try_wait() {
            return st.code();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

#[test]
fn run_consumes_and_produces_alerts_through_the_sasl_ssl_listener() {
    let Some(sasl) = sasl() else { return };
    let logs = unique("sasl-logs");
    let alerts = unique("sasl-alerts");
    sasl.create_topics(&[&logs, &alerts]);
    let records = stream();
    sasl.produce(&logs, &records);

    let setup = Setup::new(&sasl, &logs, &alerts, true);
    let expected = setup.replay(&records);
    let want = novel(&expected);
    assert!(
        want.len() >= 2,
        "the stream must produce the two novel types in replay, got {expected:?}"
    );

    let child = setup.run(&[]);
    let got = sasl.read_alerts(&alerts, want.len(), Duration::from_secs(120));
    let code = terminate(child);
    let log = setup.log();
    assert_eq!(
        novel(&got),
        want,
        "novel alerts on the alerts topic (read over SASL_SSL) differ from replay; log:\n{log}"
    );
    assert_eq!(code, Some(0), "run did not stop cleanly; log:\n{log}");
    assert!(
        !log.contains(&sasl.password),
        "the password appears in the log:\n{log}"
    );
}

/// Runs `faultline run` with a wrong password (from the environment) and
/// returns its exit code, the time it took and its log.
fn run_with_wrong_password(setup: &Setup, wrong: &str) -> (Option<i32>, Duration, String) {
    let mut child = setup.run(&[("FAULTLINE__KAFKA__PROPERTIES__SASL.PASSWORD", wrong)]);
    let started = Instant::now();
    let code = loop {
        if let Some(st) = child.try_wait().expect("wait") {
            break st.code();
        }
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "run kept going for 60 s with a wrong password; log:\n{}",
                setup.log()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    (code, started.elapsed(), setup.log())
}

#[test]
fn a_wrong_password_stops_run_with_a_clear_error_and_no_retry_storm() {
    let Some(sasl) = sasl() else { return };
    let logs = unique("sasl-badpw-logs");
    let alerts = unique("sasl-badpw-alerts");
    sasl.create_topics(&[&logs, &alerts]);
    let wrong = "not-the-password-7f3a";
    // With an alerts topic the transactional producer meets the broker
    // first; without one, the consumer does. Both must stop.
    for alerts_topic in [alerts.as_str(), ""] {
        // The password from the environment this time (the other way in).
        let setup = Setup::new(&sasl, &logs, alerts_topic, false);
        let (code, elapsed, log) = run_with_wrong_password(&setup, wrong);
        let what = format!("alerts topic {alerts_topic:?}, {elapsed:?}; log:\n{log}");
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
            read_jsonl(&setup.path("alerts.jsonl")).is_empty(),
            "no alerts without a broker, {what}"
        );
    }
}
