//! The webhook sink against a real HTTP receiver this test starts (axum on
//! 127.0.0.1): signatures checked the way a receiver would, routing from
//! the configuration, a receiver that is overloaded (503), refuses (401) or
//! is not there at all.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use faultline::alert::build::{Plan, sinks};
use faultline::alert::webhook::WebhookSink;
use faultline::alert::{Alert, AlertSink, AlertTimes, Kind, Severity, alert_id};
use faultline::config::{Config, RouteConfig, Secret, WebhookConfig};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::Value;
use sha2::Sha256;

/// What the receiver accepted: each request's headers and parsed body.
type Got = Arc<Mutex<Vec<(HeaderMap, Value)>>>;

struct Receiver {
    addr: SocketAddr,
    got: Got,
    /// The status answered to a correctly signed request.
    status: Arc<AtomicU16>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Receiver {
    /// Listens on `addr` (port 0 = any); checks `X-Faultline-Signature`
    /// against `secret` in constant time (401 when it does not match).
    fn start(addr: SocketAddr, secret: &'static [u8]) -> Receiver {
        let got: Got = Arc::default();
        let status = Arc::new(AtomicU16::new(200));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let std_listener = std::net::TcpListener::bind(addr).unwrap();
        std_listener.set_nonblocking(true).unwrap();
        let addr = std_listener.local_addr().unwrap();
        let (g, s) = (got.clone(), status.clone());
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let handler = move |headers: HeaderMap, body: Bytes| {
                    let (g, s) = (g.clone(), s.clone());
                    async move {
                        let given = headers
                            .get("x-faultline-signature")
                            .and_then(|v| v.to_str().ok())
                            .and_then(|v| v.strip_prefix("sha256="))
                            .and_then(|h| {
                                (0..h.len())
                                    .step_by(2)
                                    .map(|i| u8::from_str_radix(h.get(i..i + 2)?, 16).ok())
                                    .collect::<Option<Vec<u8>>>()
                            });
                        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret).unwrap();
                        mac.update(&body);
                        if given.is_none_or(|t| mac.verify_slice(&t).is_err()) {
                            return StatusCode::UNAUTHORIZED;
                        }
                        let code = s.load(Ordering::SeqCst);
                        if code == 200 {
                            g.lock()
                                .unwrap()
                                .push((headers, serde_json::from_slice(&body).unwrap()));
                        }
                        StatusCode::from_u16(code).unwrap()
                    }
                };
                let app = axum::Router::new().route("/hook", axum::routing::post(handler));
                let listener = tokio::net::TcpListener::from_std(std_listener).unwrap();
                axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = rx.await;
                    })
                    .await
                    .unwrap();
            });
        });
        Receiver {
            addr,
            got,
            status,
            stop: Some(tx),
            thread: Some(thread),
        }
    }

    fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// Alert ids received, in order.
    fn ids(&self) -> Vec<String> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .flat_map(|(_, v)| match v {
                Value::Array(a) => a.clone(),
                one => vec![one.clone()],
            })
            .map(|a| a["id"].as_str().unwrap().to_string())
            .collect()
    }

    fn stop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop();
    }
}

fn alert(n: i64, severity: Severity) -> Alert {
    Alert::new(
        Kind::Novel,
        alert_id(Kind::Novel, &format!("webhook-test-{n}"), 0),
        severity,
        "checkout",
        format!("timeout number {n} after <*>"),
        AlertTimes {
            first_seen: n,
            event_time: n,
            detected_at: n,
        },
    )
}

const SECRET: &[u8] = b"shared-webhook-secret";

fn any_port() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

#[test]
fn signed_alerts_reach_the_receiver_through_the_route_and_a_wrong_secret_is_refused_for_good() {
    let rx = Receiver::start(any_port(), SECRET);
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config {
        webhook: WebhookConfig {
            url: rx.url(),
            secret: Some(Secret::from("shared-webhook-secret")),
            headers: [("X-Team".to_string(), "payments".to_string())].into(),
            route: RouteConfig {
                min_severity: Some("high".into()),
                ..RouteConfig::default()
            },
            ..WebhookConfig::default()
        },
        ..Config::default()
    };
    let plan = Plan {
        state_dir: Some(dir.path().to_path_buf()),
        ..Plan::default()
    };
    let mut built = sinks(&cfg, &plan).unwrap();
    assert_eq!(built.len(), 1, "only the webhook is configured");
    let (high, low, critical) = (
        alert(1, Severity::High),
        alert(2, Severity::Low),
        alert(3, Severity::Critical),
    );
    for a in [&high, &low, &critical] {
        built[0].emit(a).unwrap();
    }
    built[0].flush().unwrap();
    assert_eq!(
        rx.ids(),
        [high.id.clone(), critical.id.clone()],
        "the route lets high and critical through, in order, once each"
    );
    let got = rx.got.lock().unwrap();
    let (headers, body) = &got[0];
    assert_eq!(headers["x-team"], "payments");
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(body["schema"], "faultline.alert/v1");
    assert_eq!(body["template"], "timeout number 1 after <*>");
    drop(got);
    drop(built);

    // A sender with the wrong secret is refused (401): the alert is kept in
    // rejected.jsonl with the reason, not retried forever.
    let wrong_dir = dir.path().join("wrong");
    let mut wrong = WebhookSink::open(
        &WebhookConfig {
            url: rx.url(),
            secret: Some(Secret::from("not-the-secret")),
            ..WebhookConfig::default()
        },
        &wrong_dir,
    )
    .unwrap();
    wrong.emit(&alert(4, Severity::High)).unwrap();
    wrong.flush().unwrap();
    assert_eq!(wrong.waiting(), 0);
    assert_eq!(rx.ids().len(), 2, "the receiver took nothing unsigned");
    let rejected = std::fs::read_to_string(wrong_dir.join("rejected.jsonl")).unwrap();
    assert!(rejected.contains("HTTP 401"), "{rejected}");
}

fn wait_until(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(
            t0.elapsed() < Duration::from_secs(secs),
            "gave up waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn alerts_wait_in_the_spool_while_the_receiver_is_overloaded_or_down_and_none_is_lost() {
    let mut rx = Receiver::start(any_port(), SECRET);
    let addr = rx.addr;
    let dir = tempfile::tempdir().unwrap();
    let cfg = WebhookConfig {
        url: rx.url(),
        secret: Some(Secret::from("shared-webhook-secret")),
        batch_size: 2,
        timeout: faultline::config::Dur::secs(2),
        ..WebhookConfig::default()
    };
    let sent: Vec<Alert> = (10..15).map(|n| alert(n, Severity::High)).collect();

    // Overloaded: 503 → spooled, retried after the backoff, as one batch.
    rx.status.store(503, Ordering::SeqCst);
    let mut sink = WebhookSink::open(&cfg, dir.path()).unwrap();
    sink.emit(&sent[0]).unwrap();
    sink.emit(&sent[1]).unwrap();
    sink.flush().unwrap();
    assert_eq!(sink.waiting(), 2);
    rx.status.store(200, Ordering::SeqCst);
    wait_until(10, "the retry after the backoff", || {
        sink.flush().unwrap();
        sink.waiting() == 0
    });
    let got = rx.got.lock().unwrap().clone();
    assert_eq!(got.len(), 1, "both alerts in one request");
    assert_eq!(got[0].1.as_array().map(Vec::len), Some(2));

    // Down: not listening at all. faultline stops and starts again while
    // it is down; nothing is lost.
    rx.stop();
    for a in &sent[2..] {
        sink.emit(a).unwrap();
    }
    sink.flush().unwrap();
    assert_eq!(sink.waiting(), 3);
    drop(sink);
    let spooled = std::fs::read_to_string(dir.path().join("alerts.jsonl")).unwrap();
    assert_eq!(spooled.lines().count(), 3, "{spooled}");
    let rx2 = Receiver::start(addr, SECRET);
    let sink = WebhookSink::open(&cfg, dir.path()).unwrap();
    assert_eq!(
        sink.waiting(),
        0,
        "the next start delivered what was spooled"
    );
    drop(sink);
    let mut all = BTreeSet::new();
    let mut ids = rx.ids();
    ids.extend(rx2.ids());
    for id in &ids {
        assert!(all.insert(id.clone()), "{id} delivered twice");
    }
    let want: BTreeSet<String> = sent.iter().map(|a| a.id.clone()).collect();
    assert_eq!(all, want);
}
