//! Prometheus Alertmanager sink.
//!
//! Alertmanager does not take a stream of events but the *state* of alerts:
//! a client POSTs `/api/v2/alerts` with each alert's labels (its identity),
//! annotations, `startsAt` and `endsAt`, and keeps re-sending the alerts
//! that still fire, because Alertmanager keeps them only in memory and
//! resolves an alert by itself once its `endsAt` has passed. This sink does
//! what Prometheus does: it keeps the open alerts, sends each at once, sends
//! every firing one again each `alertmanager.resend` with `endsAt` = now +
//! 4 × `resend`, and sends it with `endsAt` = the end when its episode ends.
//! An Alertmanager that restarted (and forgot everything) therefore has all
//! firing alerts back within one `resend`.
//!
//! When an episode ends:
//! - `storm` and `error_rate`: at the `episode_end` record of the detector
//!   (every alert the episode opened is resolved; the record itself is not
//!   an alert here);
//! - `novel`, `regression` and a per-type `canary_regression`: when the type
//!   is resolved or muted, no longer known (evicted), or has not occurred for
//!   `alertmanager.resolve_after` (1 h) of event time;
//! - `surge`: when the count over the surge's window no longer meets the
//!   detector's own floors (`detect.surge_min_count`, and
//!   `detect.surge_min_ratio` × the type's usual rate), or the type is muted;
//! - an overall `canary_regression`: `resolve_after` after it fired.
//!
//! The types are looked at when the pipeline hands over the catalogue (each
//! checkpoint), in event time, so a replay ends episodes as the live run
//! would.
//!
//! Delivery runs on a worker thread with its own small runtime, so a slow or
//! absent Alertmanager never blocks detection. Failures back off
//! exponentially (200 ms doubling to 30 s) with jitter, so many instances do
//! not hammer a recovering server in step. The open alerts are written to
//! `open.jsonl` in the spool directory at every flush (a temporary file,
//! fsynced and renamed), so an alert is durable before the pipeline's
//! checkpoint says it was sent, and a restarted faultline goes on
//! re-sending and later resolves what an earlier run opened. Sending twice
//! is harmless: Alertmanager merges alerts with the same labels.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::{Alert, AlertSink, Catalogue, Kind, SinkError, TypeCatalogue, now_ms, rfc3339};
use crate::config::{AlertmanagerConfig, DetectConfig, redact_url};

const FILE: &str = "open.jsonl";
/// The `sink` label of this sink's metrics.
const KIND: &str = "alertmanager";
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Alerts per request.
const BATCH: usize = 500;
/// Longest annotation value sent: a sample can be a whole stack trace.
const MAX_ANNOTATION: usize = 4096;

/// One alert as this sink tracks it.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Entry {
    alert: Alert,
    /// Wall-clock ms: `startsAt`.
    starts_at: i64,
    /// Event time of the alert, ms.
    event_ms: i64,
    /// Wall-clock ms the episode ended; `None` while it fires.
    ends_at: Option<i64>,
    /// When Alertmanager last confirmed the current state (`None`: never,
    /// or the state changed since). Not persisted: after a restart every
    /// open alert is sent again.
    #[serde(skip)]
    sent: Option<Instant>,
}

impl Entry {
    fn due(&self, now: Instant, resend: Duration) -> bool {
        match self.sent {
            None => true,
            Some(t) => self.ends_at.is_none() && now.duration_since(t) >= resend,
        }
    }
}

#[derive(Default)]
struct Open {
    entries: BTreeMap<String, Entry>,
    /// Changed since the last snapshot.
    dirty: bool,
    stop: bool,
}

struct Shared {
    open: Mutex<Open>,
    wake: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Open> {
        // A worker that panicked leaves the data usable: take it.
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// What the worker needs from the configuration.
#[derive(Clone)]
struct Params {
    urls: Vec<String>,
    timeout: Duration,
    resend: Duration,
    labels: BTreeMap<String, String>,
    service_labels: crate::config::ServiceLabels,
    external_url: String,
}

pub struct AlertmanagerSink {
    shared: Arc<Shared>,
    worker: Option<JoinHandle<()>>,
    dir: PathBuf,
    name: String,
    resolve_after_ms: i64,
    max_open: usize,
    surge_min_count: u64,
    surge_min_ratio: f64,
}

impl AlertmanagerSink {
    /// Reads the alerts an earlier run left open in `spool_dir` and starts
    /// the delivery worker. Only configuration and disk errors fail; an
    /// absent Alertmanager does not.
    pub fn open(
        cfg: &AlertmanagerConfig,
        detect: &DetectConfig,
        spool_dir: &Path,
    ) -> Result<AlertmanagerSink, SinkError> {
        let name = format!(
            "alertmanager {}",
            cfg.urls
                .iter()
                .map(|u| redact_url(u))
                .collect::<Vec<_>>()
                .join(",")
        );
        let other = |message: String| SinkError::Other {
            sink: name.clone(),
            message,
        };
        let mut urls = Vec::new();
        for u in &cfg.urls {
            let parsed = reqwest::Url::parse(u).map_err(|e| {
                other(format!(
                    "alertmanager.urls: `{}` is not a URL: {e}",
                    redact_url(u)
                ))
            })?;
            if !matches!(parsed.scheme(), "http" | "https") {
                return Err(other(format!(
                    "alertmanager.urls: `{}` must be http or https",
                    redact_url(u)
                )));
            }
            urls.push(format!("{}/api/v2/alerts", u.trim_end_matches('/')));
        }
        for k in cfg.labels.keys() {
            if !valid_label_name(k) {
                return Err(other(format!(
                    "alertmanager.labels: `{k}` is not a Prometheus label name \
                     ([a-zA-Z_][a-zA-Z0-9_]*)"
                )));
            }
        }
        let io = |source: std::io::Error| SinkError::Io {
            sink: format!("{name} spool {}", spool_dir.display()),
            source,
        };
        std::fs::create_dir_all(spool_dir).map_err(io)?;
        let entries = read_snapshot(&spool_dir.join(FILE)).map_err(io)?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| other(format!("cannot start the delivery runtime: {e}")))?;
        let roots = ca_roots(cfg.ca_file.as_deref(), "alertmanager.ca_file").map_err(other)?;
        let client = {
            let _guard = rt.enter();
            roots
                .into_iter()
                .fold(reqwest::Client::builder(), |b, c| b.add_root_certificate(c))
                .timeout(cfg.timeout.0)
                .build()
                .map_err(|e| other(format!("cannot build the HTTP client: {e}")))?
        };
        crate::metrics::delivery::DELIVERY.known(KIND);
        let shared = Arc::new(Shared {
            open: Mutex::new(Open {
                entries,
                dirty: false,
                stop: false,
            }),
            wake: Condvar::new(),
        });
        let params = Params {
            urls,
            timeout: cfg.timeout.0,
            resend: cfg.resend.0,
            labels: cfg.labels.clone(),
            service_labels: cfg.service_labels.clone(),
            external_url: cfg.external_url.trim_end_matches('/').to_string(),
        };
        let worker = {
            let shared = shared.clone();
            let name = name.clone();
            std::thread::Builder::new()
                .name("faultline-alertmanager".into())
                .spawn(move || deliver_loop(&shared, &rt, &client, &params, &name))
                .map_err(|e| other(format!("cannot start the delivery thread: {e}")))?
        };
        Ok(AlertmanagerSink {
            shared,
            worker: Some(worker),
            dir: spool_dir.to_path_buf(),
            name,
            resolve_after_ms: cfg.resolve_after.as_millis(),
            max_open: cfg.max_open.max(1),
            surge_min_count: detect.surge_min_count,
            surge_min_ratio: detect.surge_min_ratio,
        })
    }

    /// Open alerts whose current state (firing or resolved) Alertmanager
    /// has not confirmed yet.
    pub fn unconfirmed(&self) -> usize {
        self.shared
            .lock()
            .entries
            .values()
            .filter(|e| e.sent.is_none())
            .count()
    }

    /// Alerts still open (firing, or resolved but not yet confirmed).
    pub fn open_alerts(&self) -> usize {
        self.shared.lock().entries.len()
    }

    pub fn spool_path(&self) -> PathBuf {
        self.dir.join(FILE)
    }

    fn io(&self, source: std::io::Error) -> SinkError {
        SinkError::Io {
            sink: format!("{} spool {}", self.name, self.spool_path().display()),
            source,
        }
    }

    /// Ends one entry now (its resolution goes out at the next round).
    fn end(e: &mut Entry, now: i64) {
        if e.ends_at.is_none() {
            e.ends_at = Some(now.max(e.starts_at));
            e.sent = None;
        }
    }

    /// Keeps about `max_open` alerts: unconfirmed resolutions go first
    /// (Alertmanager resolves those itself when their `endsAt` passes),
    /// then the oldest firing alert is resolved (it leaves once confirmed).
    fn cap(&self, open: &mut Open) {
        while open.entries.len() > self.max_open {
            let oldest = |ended: bool| {
                open.entries
                    .iter()
                    .filter(|(_, e)| e.ends_at.is_some() == ended)
                    .min_by_key(|(_, e)| e.event_ms)
                    .map(|(k, _)| k.clone())
            };
            if let Some(k) = oldest(true) {
                tracing::warn!(sink = %self.name, id = %k, max_open = self.max_open, "too many open alerts: an unconfirmed resolution is dropped");
                open.entries.remove(&k);
                continue;
            }
            if let Some(k) = oldest(false) {
                tracing::warn!(sink = %self.name, id = %k, max_open = self.max_open, "too many open alerts: the oldest is resolved");
                if let Some(e) = open.entries.get_mut(&k) {
                    AlertmanagerSink::end(e, now_ms());
                }
            }
            break;
        }
    }

    /// Whether the episode of a firing `e` has ended, judged on the types.
    fn episode_over(&self, e: &Entry, cat: &Catalogue<'_>, watermark: i64) -> bool {
        let a = &e.alert;
        let typ = a.fingerprint.and_then(|fp| {
            let fp = cat.baseline.aliases.get(&fp).copied().unwrap_or(fp);
            cat.baseline.types.get(&fp)
        });
        let quiet = |last: i64| watermark.saturating_sub(last) >= self.resolve_after_ms;
        match a.kind {
            // Ended by their `episode_end` record.
            Kind::Storm
            | Kind::ErrorRate
            | Kind::EpisodeEnd
            | Kind::TrafficDrop
            | Kind::TrafficSpike
            | Kind::LatencyRegression => false,
            Kind::CanaryRegression if a.fingerprint.is_none() => quiet(e.event_ms),
            Kind::Novel | Kind::Regression | Kind::CanaryRegression => match typ {
                None => true,
                Some(t) => t.muted || t.resolved_at.is_some() || quiet(t.last_seen),
            },
            Kind::Surge => match (typ, &a.window) {
                (None, _) => true,
                (Some(t), _) if t.muted => true,
                (Some(t), None) => quiet(t.last_seen),
                (Some(t), Some(w)) => {
                    let spec = cat.baseline.spec;
                    let newest = spec.bucket_of(watermark);
                    let buckets = ((w.length_s as i64 * 1000) / spec.bucket_ms).max(1);
                    let count = t
                        .window
                        .as_ref()
                        .map_or(0, |win| win.sum(newest - buckets + 1, newest));
                    let expected = w.baseline_rate_per_min * w.length_s as f64 / 60.0;
                    count < self.surge_min_count || (count as f64) < self.surge_min_ratio * expected
                }
            },
        }
    }
}

impl AlertSink for AlertmanagerSink {
    fn emit(&mut self, alert: &Alert) -> Result<(), SinkError> {
        let now = now_ms();
        let mut open = self.shared.lock();
        if alert.kind == Kind::EpisodeEnd {
            if let Some(ep) = &alert.release.episode {
                for e in open.entries.values_mut() {
                    let of_episode = e.alert.id == ep.opened_by
                        || e.alert
                            .release
                            .episode
                            .as_ref()
                            .is_some_and(|x| x.opened_by == ep.opened_by);
                    if of_episode && e.ends_at.is_none() {
                        AlertmanagerSink::end(e, now);
                    }
                }
                open.dirty = true;
            }
        } else if !open.entries.contains_key(&alert.id) {
            // The same id again (a replay, a restart) is the same alert.
            let event_ms = parse_ms(&alert.event_time).unwrap_or(now);
            open.entries.insert(
                alert.id.clone(),
                Entry {
                    alert: alert.clone(),
                    starts_at: event_ms.min(now),
                    event_ms,
                    ends_at: None,
                    sent: None,
                },
            );
            open.dirty = true;
            self.cap(&mut open);
        }
        drop(open);
        self.shared.wake.notify_all();
        Ok(())
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        let mut open = self.shared.lock();
        if !open.dirty {
            return Ok(());
        }
        let entries: Vec<Entry> = open.entries.values().cloned().collect();
        open.dirty = false;
        drop(open);
        if let Err(e) = write_snapshot(&self.dir, &entries) {
            self.shared.lock().dirty = true;
            return Err(self.io(e));
        }
        Ok(())
    }

    fn catalogue(&mut self) -> Option<&mut dyn TypeCatalogue> {
        Some(self)
    }

    fn name(&self) -> &str {
        &self.name
    }

    /// Open alerts whose state Alertmanager has not confirmed.
    fn waiting(&self) -> Option<usize> {
        Some(self.unconfirmed())
    }

    fn kind(&self) -> &'static str {
        KIND
    }
}

impl TypeCatalogue for AlertmanagerSink {
    fn export(&mut self, cat: &Catalogue<'_>, _last: bool) -> Result<(), SinkError> {
        let Some(watermark) = cat.watermark else {
            return Ok(());
        };
        let now = now_ms();
        let mut open = self.shared.lock();
        let over: Vec<String> = open
            .entries
            .iter()
            .filter(|(_, e)| e.ends_at.is_none() && self.episode_over(e, cat, watermark))
            .map(|(k, _)| k.clone())
            .collect();
        for k in &over {
            if let Some(e) = open.entries.get_mut(k) {
                AlertmanagerSink::end(e, now);
            }
        }
        if !over.is_empty() {
            open.dirty = true;
            drop(open);
            self.shared.wake.notify_all();
        }
        Ok(())
    }
}

impl Drop for AlertmanagerSink {
    fn drop(&mut self) {
        self.shared.lock().stop = true;
        self.shared.wake.notify_all();
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
        // What the worker confirmed last (resolutions removed) is kept.
        let open = self.shared.lock();
        let entries: Vec<Entry> = open.entries.values().cloned().collect();
        drop(open);
        if let Err(e) = write_snapshot(&self.dir, &entries) {
            tracing::warn!(sink = %self.name, error = %e, "open alerts not saved");
        }
    }
}

/// The worker: sends what is due, backs off when no Alertmanager answers,
/// and on stop makes one last attempt bounded by the timeout.
fn deliver_loop(
    shared: &Shared,
    rt: &tokio::runtime::Runtime,
    client: &reqwest::Client,
    p: &Params,
    name: &str,
) {
    let mut backoff = FIRST_BACKOFF;
    let mut retry_at: Option<Instant> = None;
    let mut away = false;
    loop {
        let (batch, stopping) = {
            let mut open = shared.lock();
            loop {
                let now = Instant::now();
                let ready = retry_at.is_none_or(|t| now >= t);
                let due = open.entries.values().any(|e| e.due(now, p.resend));
                if open.stop || (ready && due) {
                    break;
                }
                let (g, _) = shared
                    .wake
                    .wait_timeout(open, Duration::from_millis(250))
                    .unwrap_or_else(|p| p.into_inner());
                open = g;
            }
            let now = Instant::now();
            let batch: Vec<(String, Entry)> = open
                .entries
                .iter()
                .filter(|(_, e)| e.due(now, p.resend))
                .take(BATCH)
                .map(|(k, e)| (k.clone(), e.clone()))
                .collect();
            (batch, open.stop)
        };
        if batch.is_empty() {
            if stopping {
                return;
            }
            continue;
        }
        let now = now_ms();
        let body = Value::Array(batch.iter().map(|(_, e)| payload(e, p, now)).collect());
        let body = serde_json::to_vec(&body).unwrap_or_default();
        let result = rt.block_on(post_all(client, &p.urls, body, p.timeout));
        let delivery = &crate::metrics::delivery::DELIVERY;
        match &result {
            Ok(()) => delivery.sent(KIND, batch.len(), away),
            Err(_) => delivery.failed(KIND, away),
        }
        match result {
            Ok(()) => {
                if away {
                    tracing::info!(sink = %name, "Alertmanager answers again");
                }
                away = false;
                backoff = FIRST_BACKOFF;
                retry_at = None;
                let confirmed = Instant::now();
                let mut open = shared.lock();
                for (k, sent) in &batch {
                    let Some(e) = open.entries.get_mut(k) else {
                        continue;
                    };
                    // The state may have changed while the request ran
                    // (the episode ended): then that change is still due.
                    if e.ends_at != sent.ends_at {
                        continue;
                    }
                    if e.ends_at.is_some() {
                        open.entries.remove(k);
                        open.dirty = true;
                    } else {
                        e.sent = Some(confirmed);
                    }
                }
            }
            Err(message) => {
                let wait = jitter(backoff);
                tracing::warn!(
                    sink = %name,
                    error = %message,
                    retry_in_ms = wait.as_millis() as u64,
                    waiting = batch.len(),
                    "alerts stay open and are sent again when Alertmanager answers"
                );
                away = true;
                retry_at = Some(Instant::now() + wait);
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
        if stopping {
            return;
        }
    }
}

/// POSTs `body` to every URL; delivered when at least one accepted it (the
/// members of an HA cluster share alerts among themselves).
async fn post_all(
    client: &reqwest::Client,
    urls: &[String],
    body: Vec<u8>,
    timeout: Duration,
) -> Result<(), String> {
    let mut errors = Vec::new();
    let mut ok = false;
    for url in urls {
        let sent = client
            .post(url)
            .header("content-type", "application/json")
            .timeout(timeout)
            .body(body.clone())
            .send()
            .await;
        match sent {
            Ok(r) if r.status().is_success() => ok = true,
            Ok(r) => {
                let status = r.status();
                let text = r.text().await.unwrap_or_default();
                errors.push(format!(
                    "{}: HTTP {status}: {}",
                    redact_url(url),
                    text.chars().take(300).collect::<String>()
                ));
            }
            Err(e) => errors.push(format!("{}: {}", redact_url(url), error_chain(&e))),
        }
    }
    if ok {
        if !errors.is_empty() {
            tracing::warn!(errors = %errors.join("; "), "some Alertmanagers did not take the alerts");
        }
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}

/// The CA certificates of `file` (PEM, one or more), for an HTTP sink whose
/// server's certificate a private CA signed; `key` names the setting in
/// errors. None: the system's roots only.
pub(crate) fn ca_roots(
    file: Option<&Path>,
    key: &str,
) -> Result<Vec<reqwest::Certificate>, String> {
    let Some(path) = file else {
        return Ok(Vec::new());
    };
    let pem =
        std::fs::read(path).map_err(|e| format!("{key}: cannot read {}: {e}", path.display()))?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
        format!(
            "{key}: {} holds no PEM certificate: {}",
            path.display(),
            error_chain(&e)
        )
    })?;
    if certs.is_empty() {
        return Err(format!(
            "{key}: {} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
            path.display()
        ));
    }
    Ok(certs)
}

/// An error with its causes (reqwest's own message is only the outermost).
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// "Equal jitter": between half and all of `d`, so clients that failed
/// together do not retry together.
pub(crate) fn jitter(d: Duration) -> Duration {
    use std::sync::atomic::{AtomicU64, Ordering};
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|t| t.as_nanos() as u64)
        .unwrap_or(0)
        ^ SEQ.fetch_add(1, Ordering::Relaxed).rotate_left(32)
        ^ u64::from(std::process::id());
    let r = xxhash_rust::xxh3::xxh3_64(&seed.to_le_bytes()) as f64 / u64::MAX as f64;
    d.mul_f64(0.5 + 0.5 * r)
}

/// Prometheus' alert name for a kind: `FaultlineNovel`, `FaultlineErrorRate`.
pub fn alertname(kind: Kind) -> String {
    let mut s = String::from("Faultline");
    for part in kind.as_str().split('_') {
        let mut c = part.chars();
        if let Some(f) = c.next() {
            s.extend(f.to_uppercase());
            s.push_str(c.as_str());
        }
    }
    s
}

fn valid_label_name(k: &str) -> bool {
    let mut c = k.chars();
    c.next()
        .is_some_and(|f| f.is_ascii_alphabetic() || f == '_')
        && c.all(|x| x.is_ascii_alphanumeric() || x == '_')
}

fn cut(s: &str) -> String {
    if s.len() <= MAX_ANNOTATION {
        return s.to_string();
    }
    let mut end = MAX_ANNOTATION;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// The Alertmanager alert for one entry, as of wall-clock `now`.
fn payload(e: &Entry, p: &Params, now: i64) -> Value {
    let a = &e.alert;
    let mut labels = Map::new();
    for (k, v) in &p.labels {
        labels.insert(k.clone(), json!(v));
    }
    // The service's labels (`alerts.service_labels`), as routes see them.
    for (k, v) in p.service_labels.get(&a.service).into_iter().flatten() {
        labels.insert(k.clone(), json!(v));
    }
    labels.insert("alertname".into(), json!(alertname(a.kind)));
    labels.insert("source".into(), json!("faultline"));
    labels.insert("severity".into(), json!(a.severity.as_str()));
    if !a.service.is_empty() {
        labels.insert("service".into(), json!(a.service));
    }
    if let Some(v) = a.version.as_deref().filter(|v| !v.is_empty()) {
        labels.insert("version".into(), json!(v));
    }
    if let Some(fp) = a.fingerprint {
        labels.insert("fingerprint".into(), json!(fp.to_string()));
    }
    let mut ann = Map::new();
    let mut put = |k: &str, v: String| {
        ann.insert(k.into(), Value::String(cut(&v)));
    };
    let summary = a.summary();
    let summary = match summary.split_once("] ") {
        Some((head, rest)) if head.starts_with('[') => rest.to_string(),
        _ => summary,
    };
    put("summary", summary);
    put("template", a.template.clone());
    put("alert_id", a.id.clone());
    put("first_seen", a.first_seen.clone());
    put("event_time", a.event_time.clone());
    if let Some(s) = &a.sample {
        put("sample", s.clone());
    }
    if !a.samples.is_empty() {
        put("samples", a.samples.join("\n"));
    }
    if let Some(v) = &a.release.new_in_version {
        put("new_in_version", v.clone());
    }
    if !a.release.versions.is_empty() {
        put("versions", a.release.versions.join(", "));
    }
    if let Some(w) = &a.window {
        put("count", w.count.to_string());
        put("window_s", w.length_s.to_string());
        put("ratio", format!("{:.2}", w.ratio));
        put("rate_per_min", format!("{:.3}", w.rate_per_min));
        put(
            "baseline_rate_per_min",
            format!("{:.3}", w.baseline_rate_per_min),
        );
    }
    if let Some(s) = &a.storm {
        put("novel_types", s.novel_types.to_string());
    }
    if let Some(r) = &a.release.error_rate {
        put("count", r.errors.to_string());
        put("lines", r.lines.to_string());
        put("error_rate", format!("{:.4}", r.rate));
        put("window_s", r.window_s.to_string());
    }
    if let Some(c) = &a.release.canary {
        put("canary_version", c.canary.version.clone());
        put("stable_version", c.stable.version.clone());
        put("count", c.canary.errors.to_string());
        if let Some(r) = c.ratio {
            put("ratio", format!("{r:.2}"));
        }
        put("p_value", format!("{:.3e}", c.p_value));
    }
    let ends = e
        .ends_at
        .unwrap_or_else(|| now + 4 * p.resend.as_millis() as i64);
    let mut v = json!({
        "labels": labels,
        "annotations": ann,
        "startsAt": rfc3339(e.starts_at),
        "endsAt": rfc3339(ends),
    });
    if let (false, Some(fp)) = (p.external_url.is_empty(), a.fingerprint) {
        v["generatorURL"] = json!(format!("{}/types/{fp}", p.external_url));
    }
    v
}

fn parse_ms(t: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(t)
        .ok()
        .map(|d| d.timestamp_millis())
}

fn read_snapshot(path: &Path) -> std::io::Result<BTreeMap<String, Entry>> {
    let mut out = BTreeMap::new();
    let f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    for line in BufReader::new(f).split(b'\n') {
        // The snapshot is replaced atomically, so a line that does not parse
        // was written by another version: skip it rather than refuse to start.
        if let Ok(e) = serde_json::from_slice::<Entry>(&line?) {
            out.insert(e.alert.id.clone(), e);
        }
    }
    Ok(out)
}

fn write_snapshot(dir: &Path, entries: &[Entry]) -> std::io::Result<()> {
    let tmp = dir.join(format!("{FILE}.tmp"));
    {
        let mut w = BufWriter::new(File::create(&tmp)?);
        for e in entries {
            serde_json::to_writer(&mut w, e)?;
            w.write_all(b"\n")?;
        }
        w.flush()?;
        w.get_ref().sync_data()?;
    }
    std::fs::rename(&tmp, dir.join(FILE))?;
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::test_alert;
    use crate::fingerprint::Fingerprint;

    fn params() -> Params {
        Params {
            urls: vec![],
            timeout: Duration::from_secs(1),
            resend: Duration::from_secs(60),
            labels: [("team".to_string(), "core".to_string())].into(),
            service_labels: [(
                "api".to_string(),
                [("owner".to_string(), "payments".to_string())].into(),
            )]
            .into(),
            external_url: "http://fl.example:9464".into(),
        }
    }

    fn entry(a: Alert) -> Entry {
        Entry {
            alert: a,
            starts_at: 1_000,
            event_ms: 1_000,
            ends_at: None,
            sent: None,
        }
    }

    /// A sink with no Alertmanager (nothing is delivered), for the
    /// episode rules.
    fn offline(dir: &Path) -> AlertmanagerSink {
        AlertmanagerSink::open(
            &AlertmanagerConfig::default(),
            &DetectConfig::default(),
            dir,
        )
        .unwrap()
    }

    fn firing(s: &AlertmanagerSink) -> Vec<String> {
        s.shared
            .lock()
            .entries
            .values()
            .filter(|e| e.ends_at.is_none())
            .map(|e| e.alert.id.clone())
            .collect()
    }

    const MIN: i64 = 60_000;
    const T: i64 = 1_793_613_600_000;

    /// A baseline knowing one type that occurred `n` times at `t`.
    fn baseline_with(n: usize, t: i64) -> (crate::baseline::Baseline, Fingerprint) {
        let cfg = crate::config::Config::default();
        let mut b = crate::baseline::Baseline::new(&cfg, 0);
        let typed = crate::fingerprint::Typed {
            fingerprint: Fingerprint(0xfeed),
            template: "timeout after <*>".into(),
            ..Default::default()
        };
        for _ in 0..n {
            b.observe(
                &typed,
                &crate::record::Record::default(),
                t,
                crate::baseline::Origin::Live,
            );
        }
        (b, Fingerprint(0xfeed))
    }

    fn at(b: &crate::baseline::Baseline, w: i64) -> Catalogue<'_> {
        Catalogue {
            baseline: b,
            watermark: Some(w),
            snoozes: None,
        }
    }

    fn about(kind: Kind, id: &str, fp: Fingerprint, t: i64) -> Alert {
        let mut a = test_alert(id);
        a.kind = kind;
        a.fingerprint = Some(fp);
        a.event_time = rfc3339(t);
        a
    }

    #[test]
    fn a_novel_alert_resolves_after_resolve_after_without_occurrences_or_when_muted() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = offline(dir.path());
        let (mut b, fp) = baseline_with(1, T);
        s.emit(&about(Kind::Novel, "n", fp, T)).unwrap();
        s.export(&at(&b, T + 59 * MIN), false).unwrap();
        assert_eq!(
            firing(&s),
            ["n"],
            "quiet for less than an hour: still firing"
        );
        s.export(&at(&b, T + 60 * MIN), false).unwrap();
        assert!(firing(&s).is_empty(), "an hour without occurrences ends it");

        s.emit(&about(Kind::Novel, "m", fp, T)).unwrap();
        b.types.get_mut(&fp).unwrap().muted = true;
        s.export(&at(&b, T + MIN), false).unwrap();
        assert!(firing(&s).is_empty(), "muting the type ends it");
    }

    #[test]
    fn a_surge_resolves_when_the_detector_floors_no_longer_hold() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = offline(dir.path());
        let (b, fp) = baseline_with(50, T);
        let mut a = about(Kind::Surge, "s", fp, T);
        a.window = Some(crate::alert::WindowStats {
            length_s: 300,
            count: 50,
            baseline_rate_per_min: 1.0,
            rate_per_min: 10.0,
            ratio: 10.0,
            score: 9.0,
        });
        s.emit(&a).unwrap();
        let cat = |w: i64| Catalogue {
            baseline: &b,
            watermark: Some(w),
            snoozes: None,
        };
        s.export(&cat(T + 2 * MIN), false).unwrap();
        assert_eq!(firing(&s), ["s"], "50 in the window: the surge goes on");
        s.export(&cat(T + 6 * MIN), false).unwrap();
        assert!(firing(&s).is_empty(), "the burst left the window");
    }

    #[test]
    fn episode_alerts_end_only_with_their_episode_end() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = offline(dir.path());
        let (b, _) = baseline_with(1, T);
        let mut open = test_alert("rate-high");
        open.kind = Kind::ErrorRate;
        open.fingerprint = None;
        let ep = crate::alert::EpisodeInfo {
            of: Kind::ErrorRate,
            opened_by: "rate-high".into(),
            start: rfc3339(T),
            end: None,
            suppressed: 0,
        };
        open.release.episode = Some(ep.clone());
        let mut step = open.clone();
        step.id = "rate-critical".into();
        step.severity = crate::alert::Severity::Critical;
        s.emit(&open).unwrap();
        s.emit(&step).unwrap();
        let cat = Catalogue {
            baseline: &b,
            watermark: Some(T + 600 * MIN),
            snoozes: None,
        };
        s.export(&cat, false).unwrap();
        assert_eq!(firing(&s).len(), 2, "time alone never ends an episode");
        let mut end = test_alert("end");
        end.kind = Kind::EpisodeEnd;
        end.release.episode = Some(ep);
        s.emit(&end).unwrap();
        assert!(firing(&s).is_empty(), "both steps end with the episode");
        assert_eq!(s.open_alerts(), 2, "kept until Alertmanager confirms");
        s.flush().unwrap();
        drop(s);
        let back = read_snapshot(&dir.path().join(FILE)).unwrap();
        assert!(back.values().all(|e| e.ends_at.is_some()));
        assert!(!back.contains_key("end"), "an episode_end is no alert here");
    }

    #[test]
    fn beyond_max_open_the_oldest_firing_alert_is_resolved() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = AlertmanagerSink::open(
            &AlertmanagerConfig {
                max_open: 2,
                ..AlertmanagerConfig::default()
            },
            &DetectConfig::default(),
            dir.path(),
        )
        .unwrap();
        for (i, id) in ["a", "b", "c"].iter().enumerate() {
            let mut a = test_alert(id);
            a.event_time = rfc3339(T + i as i64 * MIN);
            s.emit(&a).unwrap();
        }
        assert_eq!(firing(&s), ["b", "c"]);
        let mut d = test_alert("d");
        d.event_time = rfc3339(T + 3 * MIN);
        s.emit(&d).unwrap();
        assert_eq!(firing(&s), ["c", "d"]);
        assert!(s.open_alerts() <= 3, "bounded: {}", s.open_alerts());
    }

    /// Why a source that rebuilds its sinks (Kafka, after a rollback)
    /// closes the old ones first (`Engine::close_sinks`): a sink opened on
    /// the spool of one still running misses what that one has not
    /// flushed, and the old one's last snapshot is then overwritten by the
    /// new one's: those alerts are no longer re-sent, and Alertmanager
    /// resolves them by itself after 4 × `resend`.
    #[test]
    fn a_sink_opened_after_the_previous_one_closed_keeps_everything_it_had_open() {
        let dir = tempfile::tempdir().unwrap();
        let mut old = offline(dir.path());
        old.emit(&test_alert("flushed")).unwrap();
        old.flush().unwrap();
        old.emit(&test_alert("not-flushed")).unwrap();
        // Opened beside it (the order before the fix): half the picture.
        let beside = offline(dir.path());
        assert_eq!(firing(&beside), ["flushed"]);
        drop(beside);
        // Closed first, then opened: everything.
        drop(old);
        let new = offline(dir.path());
        assert_eq!(firing(&new), ["flushed", "not-flushed"]);
    }

    #[test]
    fn alert_names_are_camel_case_kinds() {
        assert_eq!(alertname(Kind::Novel), "FaultlineNovel");
        assert_eq!(
            alertname(Kind::CanaryRegression),
            "FaultlineCanaryRegression"
        );
    }

    #[test]
    fn a_firing_alert_carries_labels_annotations_and_a_future_end() {
        let mut a = test_alert("0123456789abcdef");
        a.fingerprint = Some(Fingerprint(0xabc));
        a.version = Some("2.0.0".into());
        a.release.new_in_version = Some("2.0.0".into());
        let v = payload(&entry(a), &params(), 10_000);
        assert_eq!(v["labels"]["alertname"], "FaultlineNovel");
        assert_eq!(v["labels"]["service"], "api");
        assert_eq!(v["labels"]["version"], "2.0.0");
        assert_eq!(v["labels"]["severity"], "high");
        assert_eq!(v["labels"]["source"], "faultline");
        assert_eq!(v["labels"]["team"], "core");
        assert_eq!(v["labels"]["owner"], "payments", "alerts.service_labels");
        assert_eq!(v["labels"]["fingerprint"], "0000000000000abc");
        assert_eq!(v["annotations"]["sample"], "s");
        assert_eq!(v["annotations"]["new_in_version"], "2.0.0");
        assert_eq!(v["startsAt"], rfc3339(1_000));
        assert_eq!(v["endsAt"], rfc3339(10_000 + 4 * 60_000));
        assert_eq!(
            v["generatorURL"],
            "http://fl.example:9464/types/0000000000000abc"
        );
    }

    #[test]
    fn a_resolved_alert_ends_when_its_episode_ended_and_long_samples_are_cut() {
        let mut a = test_alert("x");
        a.sample = Some("é".repeat(5000));
        let mut e = entry(a);
        e.ends_at = Some(5_000);
        let v = payload(&e, &params(), 10_000);
        assert_eq!(v["endsAt"], rfc3339(5_000));
        assert!(v.get("generatorURL").is_none(), "no fingerprint, no link");
        let s = v["annotations"]["sample"].as_str().unwrap();
        assert!(s.len() <= MAX_ANNOTATION + 3 && s.ends_with('…'));
    }

    #[test]
    fn jitter_stays_between_half_and_all_of_the_backoff() {
        for _ in 0..100 {
            let j = jitter(Duration::from_secs(2));
            assert!(j >= Duration::from_secs(1) && j <= Duration::from_secs(2));
        }
    }

    #[test]
    fn label_names_follow_prometheus() {
        assert!(valid_label_name("team_1"));
        assert!(!valid_label_name("1team"));
        assert!(!valid_label_name("team-a"));
        assert!(!valid_label_name(""));
    }

    #[test]
    fn the_open_alerts_survive_a_snapshot_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let mut e = entry(test_alert("a"));
        e.ends_at = Some(7);
        write_snapshot(dir.path(), &[e, entry(test_alert("b"))]).unwrap();
        let back = read_snapshot(&dir.path().join(FILE)).unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!(back["a"].ends_at, Some(7));
        assert!(back["b"].sent.is_none());
    }
}
