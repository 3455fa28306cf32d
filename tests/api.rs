//! The control API's writes and the triage page, end to end: the real
//! binary under `faultline run` on the real Kafka broker, alerting to the
//! real Alertmanager (`scripts/alertmanager.sh`), the page driven in a real
//! headless Chromium (`scripts/chromium.sh`).
//!
//! Without a server a test prints a loud SKIPPED line and passes, unless
//! `CI=true`, where a missing server fails it (as the other server tests
//! do). Each test makes its own topics, group, service names and state.

mod support;
use support::{Killed, free_port};

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use faultline::alert::{Alert, Kind};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
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

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}-{}-{}", std::process::id(), nanos % 1_000_000_000)
}

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

fn plain(broker: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", broker);
    c
}

fn create_topic(broker: &str, topic: &str) {
    let admin: AdminClient<DefaultClientContext> = plain(broker).create().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let t = NewTopic::new(topic, 1, TopicReplication::Fixed(1));
    for r in rt
        .block_on(admin.create_topics([&t], &AdminOptions::new()))
        .unwrap()
    {
        r.unwrap();
    }
}

fn produce(broker: &str, topic: &str, lines: &[String]) {
    let p: ThreadedProducer<DefaultProducerContext> = plain(broker).create().unwrap();
    for l in lines {
        let mut rec = BaseRecord::<(), String>::to(topic).payload(l);
        loop {
            match p.send(rec) {
                Ok(()) => break,
                Err((_, r)) => {
                    rec = r;
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        }
    }
    p.flush(Duration::from_secs(30)).unwrap();
}

/// One HTTP request; (status, JSON body or Null).
fn http(method: &str, url: &str, token: Option<&str>, body: Option<Value>) -> (u16, Value) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let c = reqwest::Client::new();
        let mut r = match method {
            "POST" => c.post(url),
            "DELETE" => c.delete(url),
            _ => c.get(url),
        }
        .timeout(Duration::from_secs(15));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        if let Some(b) = body {
            r = r
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        match r.send().await {
            Ok(res) => {
                let status = res.status().as_u16();
                let text = res.text().await.unwrap_or_default();
                (status, serde_json::from_str(&text).unwrap_or(Value::Null))
            }
            Err(_) => (0, Value::Null),
        }
    })
}

fn wait_for<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let t0 = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(secs),
            "gave up after {secs}s waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
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
        &format!(
            "[alertmanager]\nurls = [\"{am}\"]\nresend = \"2s\"\n\
             external_url = \"http://127.0.0.1:9464\"\n"
        ),
    );
    fl.produce(&log(&service, 0, 40, &[0, 1]));
    fl.start();
    let payment = fl.novel("payment gateway");
    let inventory = fl.novel("inventory lock");
    for fp in [&payment, &inventory] {
        wait_for(30, "the novel alert firing in Alertmanager", || {
            firing(&am, fp, "FaultlineNovel").then_some(())
        });
    }

    // Writes need the token, also on loopback; bad input is refused.
    assert_eq!(fl.write(&payment, "mute", None, None).0, 401);
    assert_eq!(fl.write(&payment, "mute", Some("wrong"), None).0, 401);
    assert_eq!(
        fl.write("00000000000000ff", "mute", Some(TOKEN), None).0,
        404
    );
    assert_eq!(fl.write("xyz", "mute", Some(TOKEN), None).0, 400);
    assert_eq!(fl.write(&payment, "merge", Some(TOKEN), None).0, 404);

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
    // Unmute and mute again: both answered with the new status.
    let (s, v) = fl.write(&payment, "unmute", Some(TOKEN), None);
    assert_eq!((s, v["status"].as_str()), (200, Some("active")));
    let (s, v) = fl.write(&payment, "mute", Some(TOKEN), Some(json!({})));
    assert_eq!((s, v["status"].as_str()), (200, Some("muted")));

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

    // The changes survive the stop: the CLI reads them from the state.
    fl.stop();
    let out = fl.cli(&["types", "show", &payment, "--format", "json"]);
    support::assert_ok(&out);
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["status"], "muted");
    // And the CLI edits a stopped instance's state.
    let out = fl.cli(&["types", "unmute", &payment]);
    support::assert_ok(&out);
    assert!(String::from_utf8_lossy(&out.stdout).contains("new"));
}
