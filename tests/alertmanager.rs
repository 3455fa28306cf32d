//! Tests against a real Prometheus Alertmanager (v0.31.1, built from its Go
//! module by `scripts/alertmanager.sh`; see `docs/alerts.md`).
//!
//! They run when `FAULTLINE_ALERTMANAGER` is set to the server's URL (what
//! `scripts/test` sets); the outage test also needs
//! `FAULTLINE_ALERTMANAGER_BIN`, the binary, because it starts, stops and
//! restarts an Alertmanager of its own on a free port (the shared one stays
//! up for the other tests). Without them each test prints a loud SKIPPED
//! line and passes, so a machine without Go still runs `cargo test`.
//!
//! Every test uses its own service names, so tests running side by side (or
//! earlier runs' alerts still held by the server) do not see each other.

mod support;
use support::{free_port, wait_for};

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use faultline::alert::alertmanager::AlertmanagerSink;
use faultline::alert::{
    Alert, AlertSink, AlertTimes, EpisodeInfo, ErrorRateStats, Kind, Severity, alert_id,
};
use faultline::config::{AlertmanagerConfig, DetectConfig, Dur};
use serde_json::{Value, json};

fn server() -> Option<String> {
    let v = std::env::var("FAULTLINE_ALERTMANAGER").unwrap_or_default();
    if v.is_empty() || v == "0" {
        eprintln!(
            "SKIPPED: FAULTLINE_ALERTMANAGER is not set (scripts/alertmanager.sh start; \
             eval \"$(scripts/alertmanager.sh env)\")"
        );
        return None;
    }
    Some(v.trim_end_matches('/').to_string())
}

/// A name no other test or run uses.
fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}-{}-{}", std::process::id(), nanos % 1_000_000_000)
}

/// One request with a 5 s limit, no token.
fn http(method: &str, url: &str, body: Option<Value>) -> Result<(u16, Value), String> {
    support::http(method, url, None, body.as_ref(), Duration::from_secs(5))
}

/// `/api/v2/alerts` (active, silenced and inhibited; resolved ones are not
/// listed) with a label matcher such as `service="x"`.
fn alerts(base: &str, matcher: &str) -> Vec<Value> {
    let url = format!(
        "{base}/api/v2/alerts?filter={}",
        matcher.replace('"', "%22").replace('=', "%3D")
    );
    match http("GET", &url, None) {
        Ok((200, Value::Array(v))) => v,
        _ => Vec::new(),
    }
}

fn label<'a>(a: &'a Value, k: &str) -> &'a str {
    a["labels"][k].as_str().unwrap_or("")
}

// ------------------------------------------------------------------ end to end

const T0: i64 = 1_793_613_600_000; // 2026-11-02T10:00:00Z

fn ecs(time_ms: i64, level: &str, service: &str, version: &str, message: &str) -> String {
    let ts = chrono::DateTime::from_timestamp_millis(time_ms)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    json!({"@timestamp": ts, "log.level": level, "message": message,
           "service.name": service, "service.version": version})
    .to_string()
}

/// Minutes `from..to` of a service's log: info lines and a known error every
/// minute, and from `new_from` on a new error (in version 2.0.0) too.
fn log(service: &str, from: i64, to: i64, new_from: Option<i64>) -> String {
    let mut out = String::new();
    for m in from..to {
        let t = T0 + m * 60_000;
        let v = if new_from.is_some_and(|n| m >= n) {
            "2.0.0"
        } else {
            "1.0.0"
        };
        for s in 0..6 {
            out += &ecs(t + s * 10_000, "INFO", service, v, "request served");
            out.push('\n');
        }
        out += &ecs(
            t + 5_000,
            "ERROR",
            service,
            v,
            &format!("cache miss for key user:{m}"),
        );
        out.push('\n');
        if new_from.is_some_and(|n| m >= n && m < n + 3) {
            out += &ecs(
                t + 7_000,
                "ERROR",
                service,
                v,
                &format!("payment gateway timeout after {}ms", 3000 + m),
            );
            out.push('\n');
        }
    }
    out
}

fn replay(config: &Path, state: &Path, alerts: &Path, input: &Path) {
    let out = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args(["replay", "--warmup", "30m", "--no-progress"])
        .arg("--config")
        .arg(config)
        .arg("--state")
        .arg(state)
        .arg("--alerts")
        .arg(alerts)
        .arg(input)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "replay failed: {stderr}");
}

#[test]
fn a_novel_type_reaches_alertmanager_labelled_grouped_silenced_and_resolved_when_muted() {
    let Some(base) = server() else { return };
    let dir = tempfile::tempdir().unwrap();
    let service = unique("am-e2e");
    let team = unique("team").replace('-', "_");
    let config = dir.path().join("faultline.toml");
    std::fs::write(
        &config,
        format!(
            "[alertmanager]\nurls = [\"{base}\"]\nresend = \"60s\"\n\
             external_url = \"http://faultline.example:9464/\"\n\
             [alertmanager.labels]\nteam = \"{team}\"\n"
        ),
    )
    .unwrap();
    let state = dir.path().join("state");
    let alerts_file = dir.path().join("alerts.jsonl");
    let first = dir.path().join("first.jsonl");
    std::fs::write(&first, log(&service, 0, 40, Some(35))).unwrap();
    replay(&config, &state, &alerts_file, &first);

    let written: Vec<Alert> = std::fs::read_to_string(&alerts_file)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let novel = written
        .iter()
        .find(|a| a.kind == Kind::Novel && a.template.contains("payment gateway"))
        .expect("the new error type raised a novel alert");
    let fp = novel.fingerprint.unwrap().to_string();

    // Visible through Alertmanager's API with the documented labels.
    let matcher = format!("fingerprint=\"{fp}\"");
    let am = wait_for(20, "the novel alert in Alertmanager", || {
        alerts(&base, &matcher).into_iter().next()
    });
    assert_eq!(label(&am, "alertname"), "FaultlineNovel");
    assert_eq!(label(&am, "service"), service);
    assert_eq!(label(&am, "version"), "2.0.0");
    assert_eq!(label(&am, "severity"), "high");
    assert_eq!(label(&am, "source"), "faultline");
    assert_eq!(label(&am, "team"), team);
    assert_eq!(am["annotations"]["new_in_version"], "2.0.0");
    assert_eq!(am["annotations"]["alert_id"], novel.id.as_str());
    assert!(
        am["annotations"]["sample"]
            .as_str()
            .unwrap()
            .starts_with("payment gateway timeout after"),
        "{am}"
    );
    assert_eq!(
        am["generatorURL"],
        format!("http://faultline.example:9464/types/{fp}")
    );
    assert_eq!(am["startsAt"], novel.event_time.as_str());
    assert_eq!(am["status"]["state"], "active");

    // Grouped by the server's route (alertname, service).
    let groups_url = format!(
        "{base}/api/v2/alerts/groups?filter=service%3D%22{}%22",
        service
    );
    let (status, groups) = http("GET", &groups_url, None).unwrap();
    assert_eq!(status, 200);
    let group = groups
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["labels"]["alertname"] == "FaultlineNovel")
        .unwrap_or_else(|| panic!("no FaultlineNovel group: {groups}"));
    assert_eq!(group["labels"]["service"], service.as_str());
    assert!(
        group["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| label(a, "fingerprint") == fp)
    );

    // A silence on the fingerprint suppresses it.
    let now = chrono::Utc::now();
    let (status, silence) = http(
        "POST",
        &format!("{base}/api/v2/silences"),
        Some(json!({
            "matchers": [{"name": "fingerprint", "value": fp, "isRegex": false, "isEqual": true}],
            "startsAt": now.to_rfc3339(),
            "endsAt": (now + chrono::Duration::minutes(10)).to_rfc3339(),
            "createdBy": "faultline tests",
            "comment": "known: being fixed",
        })),
    )
    .unwrap();
    assert_eq!(status, 200, "{silence}");
    let silence_id = silence["silenceID"].as_str().unwrap().to_string();
    wait_for(20, "the alert to be suppressed by the silence", || {
        alerts(&base, &matcher).into_iter().find(|a| {
            a["status"]["state"] == "suppressed"
                && a["status"]["silencedBy"]
                    .as_array()
                    .is_some_and(|s| s.iter().any(|x| x == silence_id.as_str()))
        })
    });

    // Muting the type (CLI on the stopped state) ends the episode: the next
    // run resolves the alert the first one opened.
    let out = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args(["types", "mute", &fp, "--config"])
        .arg(&config)
        .arg("--state")
        .arg(&state)
        .output()
        .unwrap();
    support::assert_ok(&out);
    let second = dir.path().join("second.jsonl");
    std::fs::write(&second, log(&service, 40, 45, None)).unwrap();
    replay(&config, &state, &alerts_file, &second);
    wait_for(20, "the alert to be resolved", || {
        alerts(&base, &matcher).is_empty().then_some(())
    });
    let open = std::fs::read_to_string(state.join("alertmanager").join("open.jsonl")).unwrap();
    assert!(
        !open.contains(&fp),
        "a resolved, confirmed alert is no longer kept open: {open}"
    );
    let _ = http(
        "DELETE",
        &format!("{base}/api/v2/silence/{silence_id}"),
        None,
    );
}

// ------------------------------------------------------------------ outage

/// An Alertmanager of this test's own.
struct OwnServer {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl OwnServer {
    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn start(&mut self) {
        let conf = self.dir.join("alertmanager.yml");
        std::fs::write(
            &conf,
            "route:\n  receiver: 'null'\n  group_by: ['alertname', 'service']\n\
             receivers:\n  - name: 'null'\n",
        )
        .unwrap();
        let child = Command::new(&self.bin)
            .arg(format!("--config.file={}", conf.display()))
            .arg(format!(
                "--storage.path={}",
                self.dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{}", self.port))
            .arg("--cluster.listen-address=")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let ready = format!("{}/-/ready", self.url());
        wait_for(30, "the test's Alertmanager to start", || {
            matches!(http("GET", &ready, None), Ok((200, _))).then_some(())
        });
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SIGTERM, as an orchestrator stops it.
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(c.id().to_string())
                .status();
            let _ = c.wait();
        }
    }
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[test]
fn a_route_on_a_service_label_sends_only_that_teams_alerts_to_alertmanager_labelled() {
    let Some(base) = server() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (ours, theirs) = (unique("am-route-a"), unique("am-route-b"));
    let team = unique("team").replace('-', "_");
    let config = dir.path().join("faultline.toml");
    std::fs::write(
        &config,
        format!(
            "[alerts.service_labels]\n\"{ours}\" = {{ owner = \"{team}\" }}\n\
             \"{theirs}\" = {{ owner = \"someone_else\" }}\n\
             [alertmanager]\nurls = [\"{base}\"]\nresend = \"60s\"\n\
             [alertmanager.route]\nlabels = {{ owner = \"{team}\", alertname = \"FaultlineNovel\" }}\n"
        ),
    )
    .unwrap();
    // Both services' logs, line by line (the same times): each gets a new
    // type in 2.0.0.
    let (a, b) = (log(&ours, 0, 40, Some(35)), log(&theirs, 0, 40, Some(35)));
    let both: String = a
        .lines()
        .zip(b.lines())
        .map(|(x, y)| format!("{x}\n{y}\n"))
        .collect();
    let input = dir.path().join("both.jsonl");
    std::fs::write(&input, both).unwrap();
    let alerts_file = dir.path().join("alerts.jsonl");
    replay(&config, &dir.path().join("state"), &alerts_file, &input);

    // The local file takes every alert (it has no route)...
    let written: Vec<Alert> = std::fs::read_to_string(&alerts_file)
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    for service in [&ours, &theirs] {
        assert!(
            written
                .iter()
                .any(|a| a.kind == Kind::Novel && a.service == *service),
            "no novel alert for {service} in the file"
        );
    }
    // ...Alertmanager only the team's, carrying its label.
    let am = wait_for(20, "the team's novel alert in Alertmanager", || {
        alerts(&base, &format!("service=\"{ours}\""))
            .into_iter()
            .next()
    });
    assert_eq!(label(&am, "owner"), team);
    assert_eq!(label(&am, "alertname"), "FaultlineNovel");
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        alerts(&base, &format!("service=\"{theirs}\"")).is_empty(),
        "another team's alert reached Alertmanager"
    );
}

fn rate_alert(service: &str, minute: i64) -> Alert {
    let t = T0 + minute * 60_000;
    let id = alert_id(Kind::ErrorRate, &format!("{service}high"), minute);
    Alert::new(
        Kind::ErrorRate,
        id.clone(),
        Severity::High,
        service,
        "error rate above 2 %",
        AlertTimes {
            first_seen: t,
            event_time: t,
            detected_at: t,
        },
    )
    .with_release(faultline::alert::ReleaseFields {
        error_rate: Some(ErrorRateStats {
            window_s: 300,
            lines: 1000,
            errors: 30,
            rate: 0.03,
            threshold: 0.02,
            baseline_rate: None,
        }),
        episode: Some(EpisodeInfo {
            of: Kind::ErrorRate,
            opened_by: id,
            start: faultline::alert::rfc3339(t),
            end: None,
            suppressed: 0,
        }),
        ..Default::default()
    })
}

fn episode_end(opened: &Alert) -> Alert {
    let mut end = Alert::new(
        Kind::EpisodeEnd,
        alert_id(Kind::EpisodeEnd, &opened.id, 0),
        Severity::Low,
        opened.service.clone(),
        "error rate back to normal",
        AlertTimes {
            first_seen: 0,
            event_time: 0,
            detected_at: 0,
        },
    );
    let mut ep = opened.release.episode.clone().unwrap();
    ep.end = Some(opened.event_time.clone());
    end.release.episode = Some(ep);
    end
}

#[test]
fn alertmanager_stopped_and_restarted_mid_stream_and_a_faultline_restart_lose_nothing() {
    let Some(_) = server() else { return };
    let Ok(bin) = std::env::var("FAULTLINE_ALERTMANAGER_BIN") else {
        eprintln!("SKIPPED: FAULTLINE_ALERTMANAGER_BIN is not set (scripts/alertmanager.sh env)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut am = OwnServer {
        bin: bin.into(),
        dir: dir.path().join("am"),
        port: free_port(),
        child: None,
    };
    std::fs::create_dir_all(&am.dir).unwrap();
    am.start();
    let cfg = AlertmanagerConfig {
        urls: vec![am.url()],
        resend: Dur::secs(1),
        timeout: Dur::secs(2),
        ..AlertmanagerConfig::default()
    };
    let spool = dir.path().join("spool");
    let prefix = unique("am-outage");
    let services: Vec<String> = (0..12).map(|i| format!("{prefix}-{i}")).collect();
    let sent: Vec<Alert> = services
        .iter()
        .enumerate()
        .map(|(i, s)| rate_alert(s, i as i64))
        .collect();
    let visible = |url: &str| -> usize { alerts(url, &format!("service=~\"{prefix}-.*\"")).len() };

    let mut sink = AlertmanagerSink::open(&cfg, &DetectConfig::default(), &spool).unwrap();
    for a in &sent[..4] {
        sink.emit(a).unwrap();
    }
    sink.flush().unwrap();
    wait_for(20, "the first alerts", || {
        (visible(&am.url()) == 4).then_some(())
    });

    // Alertmanager goes away (and forgets every alert: it keeps them in
    // memory only); the stream goes on.
    am.stop();
    for a in &sent[4..8] {
        sink.emit(a).unwrap();
    }
    sink.flush().unwrap();
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        sink.unconfirmed() >= 4,
        "nothing can be confirmed while it is down"
    );
    am.start();
    // The first four come back by re-sending, the next four by retrying.
    wait_for(30, "all eight alerts after the restart", || {
        (visible(&am.url()) == 8).then_some(())
    });

    // faultline itself stops while Alertmanager is down; the next start
    // sends what the first one could not, and keeps the older alerts open.
    am.stop();
    for a in &sent[8..] {
        sink.emit(a).unwrap();
    }
    sink.flush().unwrap();
    drop(sink);
    am.start();
    let mut sink = AlertmanagerSink::open(&cfg, &DetectConfig::default(), &spool).unwrap();
    assert_eq!(
        sink.open_alerts(),
        12,
        "every alert is still open after a restart"
    );
    wait_for(30, "all twelve alerts after both restarts", || {
        (visible(&am.url()) == 12).then_some(())
    });
    let one = alerts(&am.url(), &format!("service=\"{}\"", services[0]));
    assert_eq!(label(&one[0], "alertname"), "FaultlineErrorRate");
    assert_eq!(one[0]["annotations"]["error_rate"], "0.0300");

    // The episodes end: every alert is resolved and none stays open.
    for a in &sent {
        sink.emit(&episode_end(a)).unwrap();
    }
    sink.flush().unwrap();
    wait_for(30, "every alert resolved", || {
        (visible(&am.url()) == 0).then_some(())
    });
    wait_for(10, "the resolutions confirmed", || {
        (sink.open_alerts() == 0).then_some(())
    });
    drop(sink);
    let open = std::fs::read_to_string(spool.join("open.jsonl")).unwrap();
    assert!(open.is_empty(), "{open}");
}

// ------------------------------------------------------------------ TLS

/// `openssl` in `dir` with `args`; fails the test on an error.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl (the test makes its own CA with it)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA of the test's own and a server certificate for 127.0.0.1 signed
/// by it: (ca.pem, server.pem, server.key) in `dir`.
fn make_ca(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-subj",
            "/CN=faultline test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    );
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
         keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            "server.pem",
            "-extfile",
            "server.ext",
        ],
    );
    (
        dir.join("ca.pem"),
        dir.join("server.pem"),
        dir.join("server.key"),
    )
}

/// GET over https trusting `ca`; the JSON body on 200.
fn https_get(url: &str, ca: &Path) -> Option<Value> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let pem = std::fs::read(ca).unwrap();
    rt.block_on(async {
        let c = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap();
        let r = c.get(url).send().await.ok()?;
        if r.status() != 200 {
            return None;
        }
        r.json().await.ok()
    })
}

#[test]
fn an_alertmanager_behind_tls_signed_by_a_private_ca_takes_alerts_with_ca_file_only() {
    let Some(_) = server() else { return };
    let Ok(bin) = std::env::var("FAULTLINE_ALERTMANAGER_BIN") else {
        eprintln!("SKIPPED: FAULTLINE_ALERTMANAGER_BIN is not set (scripts/alertmanager.sh env)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = make_ca(dir.path());
    // Alertmanager's own TLS (the Prometheus exporter toolkit's web config).
    let web = dir.path().join("web.yml");
    std::fs::write(
        &web,
        format!(
            "tls_server_config:\n  cert_file: {}\n  key_file: {}\n",
            cert.display(),
            key.display()
        ),
    )
    .unwrap();
    let conf = dir.path().join("alertmanager.yml");
    std::fs::write(
        &conf,
        "route:\n  receiver: 'null'\n  group_by: ['alertname', 'service']\n\
         receivers:\n  - name: 'null'\n",
    )
    .unwrap();
    let port = free_port();
    let base = format!("https://127.0.0.1:{port}");
    let child = Command::new(&bin)
        .arg(format!("--config.file={}", conf.display()))
        .arg(format!(
            "--storage.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg(format!("--web.config.file={}", web.display()))
        .arg("--cluster.listen-address=")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _am = support::Killed(child);
    wait_for(30, "Alertmanager over TLS", || {
        https_get(&format!("{base}/api/v2/status"), &ca)
    });
    let delivery = || faultline::metrics::delivery::DELIVERY.counts("alertmanager");
    let listed = |service: &str| {
        https_get(
            &format!("{base}/api/v2/alerts?filter=service%3D%22{service}%22"),
            &ca,
        )
        .and_then(|v| v.as_array().map(Vec::len))
        .unwrap_or(0)
    };
    let cfg = AlertmanagerConfig {
        urls: vec![base.clone()],
        resend: Dur::secs(1),
        timeout: Dur::secs(2),
        ..AlertmanagerConfig::default()
    };

    // Without the CA the certificate is not trusted: nothing arrives, the
    // failures are counted and the alert stays open.
    let untrusted = unique("am-tls-untrusted");
    let before = delivery();
    {
        let mut sink =
            AlertmanagerSink::open(&cfg, &DetectConfig::default(), &dir.path().join("s1")).unwrap();
        sink.emit(&rate_alert(&untrusted, 1)).unwrap();
        sink.flush().unwrap();
        wait_for(20, "a failed delivery counted", || {
            (delivery().failures > before.failures).then_some(())
        });
        assert_eq!(sink.unconfirmed(), 1, "still waiting for Alertmanager");
        assert_eq!(listed(&untrusted), 0);
    }

    // With alertmanager.ca_file it is delivered, and counted as sent.
    let trusted = unique("am-tls-trusted");
    let before = delivery();
    let cfg = AlertmanagerConfig {
        ca_file: Some(ca.clone()),
        ..cfg
    };
    let mut sink =
        AlertmanagerSink::open(&cfg, &DetectConfig::default(), &dir.path().join("s2")).unwrap();
    sink.emit(&rate_alert(&trusted, 1)).unwrap();
    sink.flush().unwrap();
    wait_for(20, "the alert in Alertmanager over TLS", || {
        (listed(&trusted) == 1).then_some(())
    });
    wait_for(10, "the send counted", || {
        (delivery().sent > before.sent).then_some(())
    });
    assert_eq!(sink.unconfirmed(), 0);

    // webhook.ca_file, against the same TLS server (not a webhook
    // receiver: it answers 400 to a faultline alert, which proves the TLS
    // handshake held). Without the CA no request gets through.
    use faultline::alert::webhook::WebhookSink;
    use faultline::config::WebhookConfig;
    let hook = WebhookConfig {
        url: format!("{base}/api/v2/alerts"),
        timeout: Dur::secs(2),
        ..WebhookConfig::default()
    };
    let before = faultline::metrics::delivery::DELIVERY.counts("webhook");
    {
        let mut sink = WebhookSink::open(&hook, &dir.path().join("w1")).unwrap();
        sink.emit(&rate_alert(&unique("wh-tls"), 1)).unwrap();
        sink.flush().unwrap();
        assert_eq!(sink.waiting(), 1, "untrusted: still spooled");
        let after = faultline::metrics::delivery::DELIVERY.counts("webhook");
        assert!(after.failures > before.failures);
    }
    let w2 = dir.path().join("w2");
    let mut sink = WebhookSink::open(
        &WebhookConfig {
            ca_file: Some(ca.clone()),
            ..hook
        },
        &w2,
    )
    .unwrap();
    sink.emit(&rate_alert(&unique("wh-tls"), 1)).unwrap();
    sink.flush().unwrap();
    assert_eq!(sink.waiting(), 0, "answered over TLS");
    let rejected = std::fs::read_to_string(w2.join("rejected.jsonl")).unwrap_or_default();
    assert!(rejected.contains("HTTP 400"), "{rejected}");

    // A ca_file that holds no certificate is a configuration error.
    let bad = dir.path().join("not-a-cert.pem");
    std::fs::write(&bad, "hello\n").unwrap();
    let err = AlertmanagerSink::open(
        &AlertmanagerConfig {
            ca_file: Some(bad),
            ..AlertmanagerConfig::default()
        },
        &DetectConfig::default(),
        &dir.path().join("s3"),
    )
    .err()
    .expect("a bad ca_file is refused");
    assert!(err.to_string().contains("alertmanager.ca_file"), "{err}");
}
