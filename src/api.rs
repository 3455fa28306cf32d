//! Control API, read side: the known error types of a running `faultline
//! run`, on the HTTP listener that serves `/metrics`.
//!
//! - `GET /api/v1/types` — the types, most recently seen first. Filters:
//!   `service`, `status` (`active`, `muted`, `resolved`), `since` (RFC 3339:
//!   last seen at or after), `limit` (default 100, at most 1000).
//! - `GET /api/v1/types/{fingerprint}` — one type (404 when unknown).
//! - `POST /api/v1/types/{fingerprint}/resolve` (JSON body, optional:
//!   `{"in_version": "2.1.0"}`), `…/mute` (optional `{"until": "2h"}` or an
//!   RFC 3339 time, `{"count": 100}`: a snooze), `…/unmute`, `…/merge`
//!   (`{"into": "<fingerprint>"}`) — change the type in the running engine
//!   ([`control`]); answered once the change is saved.
//! - `GET /api/v1/rollout-check?service=…&stable=…&canary=…&current_percentage=…`
//!   (`window` optional) — the CLI's canary gate, asked of the running
//!   engine: the same JSON verdict.
//! - `GET /api/v1/report?release=…&format=md|html|json` (`since`, `until`,
//!   `after` optional) — `faultline report` of the running engine
//!   ([`report`]).
//!
//! The engine never waits for a reader: at each checkpoint (every commit of
//! the Kafka source) the [`ViewSink`] copies what changed into a
//! [`TypeView`], a `DashMap` the handlers read on the HTTP thread without
//! any lock on the engine. So a response is as fresh as the last commit
//! (half a second by default).
//!
//! Samples are shown as `alerts.samples` says (raw, the template, or none),
//! since they can hold customer data. For the same reason reads need the
//! bearer token `api.token` when the listener is not on a loopback address
//! (with no token configured they are then refused, 403); on loopback they
//! are open, like `/metrics`. Writes always need the token (no token
//! configured: refused, 403), wherever the listener is.

pub mod control;
mod page;
pub mod report;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use dashmap::DashMap;
use serde::{Deserialize, Serialize};

use crate::alert::{AlertSink, Catalogue, SinkError, TypeCatalogue, rfc3339};
use crate::baseline::{ErrorType, Origin};
use crate::config::{SampleMode, Secret};
use crate::fingerprint::Fingerprint;

/// How long a write waits for the engine to apply and save it: under the
/// listener's 10 s request timeout, so the caller gets this answer.
const WRITE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(8);
const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;

/// What the API shows of one type.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TypeSummary {
    pub fingerprint: String,
    pub service: String,
    pub template: String,
    pub exception: String,
    /// `baseline` (known before or during warm-up) or `live`.
    pub origin: String,
    pub first_seen: String,
    pub last_seen: String,
    pub count: u64,
    pub versions: Vec<String>,
    /// Occurrences per version.
    #[serde(default)]
    pub by_version: BTreeMap<String, u64>,
    pub version_first_seen: Option<String>,
    pub samples: Vec<String>,
    /// `active`, `muted` or `resolved`.
    pub status: String,
    pub resolved_in: Option<String>,
    /// Types new since the baseline (`origin` live): occurrences per window
    /// bucket over the [`SERIES_BUCKETS`] buckets up to the last one seen,
    /// for charts. Absent for baseline types (kept small: the view holds
    /// every type).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub series: Option<Series>,
    /// Types new since the baseline: occurrences per version per minute
    /// over the [`SERIES_BUCKETS`] minutes up to the last one seen, for
    /// the triage page's canary-vs-stable chart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_version: Option<PerVersion>,
    /// A muted type's snooze: when it unmutes by itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snooze: Option<SnoozeInfo>,
    #[serde(skip)]
    last_seen_ms: i64,
}

/// When a snoozed type unmutes (whichever comes first).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SnoozeInfo {
    /// In event time, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
    /// On the wall clock under `run`, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wall_until: Option<String>,
    /// After this many more occurrences.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub occurrences_left: Option<u64>,
}

impl SnoozeInfo {
    fn of(t: &ErrorType, s: &crate::detect::snooze::Snooze) -> Option<SnoozeInfo> {
        (t.muted && s.ended_at.is_none()).then(|| SnoozeInfo {
            until: s.until.map(rfc3339),
            wall_until: s.wall_until.map(rfc3339),
            occurrences_left: s.until_count.map(|n| n.saturating_sub(t.count)),
        })
    }
}

/// Occurrences of one type per version and minute.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PerVersion {
    /// Start of the first minute, RFC 3339.
    pub start: String,
    #[serde(skip)]
    pub(crate) start_ms: i64,
    /// Minutes covered.
    pub minutes: u32,
    /// Version → count per minute, oldest first.
    pub versions: BTreeMap<String, Vec<u32>>,
}

impl PerVersion {
    fn of(t: &ErrorType) -> Option<PerVersion> {
        const MINUTE: i64 = 60_000;
        if t.series.by_version.is_empty() {
            return None;
        }
        let newest = t.last_seen.div_euclid(MINUTE);
        let first = newest - SERIES_BUCKETS + 1;
        let versions = t
            .series
            .by_version
            .iter()
            .map(|(v, s)| {
                let mut counts = vec![0u32; SERIES_BUCKETS as usize];
                for (m, n) in s.iter().filter(|(m, _)| (first..=newest).contains(m)) {
                    let slot = &mut counts[(m - first) as usize];
                    *slot = slot.saturating_add(u32::try_from(n).unwrap_or(u32::MAX));
                }
                (v.clone(), counts)
            })
            .collect();
        Some(PerVersion {
            start: rfc3339(first * MINUTE),
            start_ms: first * MINUTE,
            minutes: SERIES_BUCKETS as u32,
            versions,
        })
    }
}

/// Buckets in a [`Series`].
pub const SERIES_BUCKETS: i64 = 60;

/// Counts per window bucket (`window.bucket`, a minute by default).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Series {
    /// Length of one bucket, seconds.
    pub bucket_s: u64,
    /// Start of the first bucket, RFC 3339.
    pub start: String,
    #[serde(skip)]
    start_ms: i64,
    /// Oldest first.
    pub counts: Vec<u32>,
}

impl Series {
    fn of(t: &ErrorType, spec: crate::window::WindowSpec) -> Option<Series> {
        let win = t.window.as_ref()?;
        let newest = spec.bucket_of(t.last_seen);
        let first = newest - SERIES_BUCKETS + 1;
        let start_ms = spec.bucket_start(first);
        Some(Series {
            bucket_s: (spec.bucket_ms / 1000).max(1) as u64,
            start: rfc3339(start_ms),
            start_ms,
            counts: (first..=newest)
                .map(|b| u32::try_from(win.sum(b, b)).unwrap_or(u32::MAX))
                .collect(),
        })
    }
}

impl TypeSummary {
    pub(crate) fn of(
        t: &ErrorType,
        samples: SampleMode,
        spec: crate::window::WindowSpec,
        snooze: Option<&crate::detect::snooze::Snooze>,
    ) -> TypeSummary {
        TypeSummary {
            fingerprint: t.fingerprint.to_string(),
            service: t.service().to_string(),
            template: t.readable_template().into_owned(),
            exception: t.context.exception.clone(),
            origin: match t.origin {
                Origin::Baseline => "baseline",
                Origin::Live => "live",
            }
            .into(),
            first_seen: rfc3339(t.first_seen),
            last_seen: rfc3339(t.last_seen),
            count: t.count,
            versions: t.versions.keys().cloned().collect(),
            by_version: t.versions.iter().map(|(v, n)| (v.clone(), *n)).collect(),
            version_first_seen: t.version_first_seen.clone(),
            samples: match samples {
                SampleMode::Raw => t.samples.clone(),
                SampleMode::Masked if !t.samples.is_empty() => {
                    vec![t.readable_template().into_owned()]
                }
                SampleMode::Masked | SampleMode::None => Vec::new(),
            },
            status: if t.muted {
                "muted"
            } else if t.resolved_at.is_some() {
                "resolved"
            } else {
                "active"
            }
            .into(),
            resolved_in: t.resolved_in.clone(),
            series: match t.origin {
                Origin::Live => Series::of(t, spec),
                Origin::Baseline => None,
            },
            per_version: match t.origin {
                Origin::Live => PerVersion::of(t),
                Origin::Baseline => None,
            },
            snooze: snooze.and_then(|s| SnoozeInfo::of(t, s)),
            last_seen_ms: t.last_seen,
        }
    }
}

/// The last surge alert of a type, for the triage page.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SurgeMark {
    /// Event time of the alert, RFC 3339.
    pub at: String,
    #[serde(skip)]
    at_ms: i64,
    /// Occurrences in the surge's window, its length, and how many times
    /// the usual rate that was (one decimal).
    pub count: u64,
    pub window_s: u64,
    pub ratio: f64,
}

/// The types as readers see them.
#[derive(Default)]
pub struct TypeView {
    types: DashMap<Fingerprint, TypeSummary>,
    /// The last surge of each type that surged (types in `types` only).
    surges: DashMap<Fingerprint, SurgeMark>,
    /// Event-time watermark of the last publication (`i64::MIN`: none).
    watermark: AtomicI64,
}

impl TypeView {
    pub fn new() -> Arc<TypeView> {
        Arc::new(TypeView {
            types: DashMap::new(),
            surges: DashMap::new(),
            watermark: AtomicI64::new(i64::MIN),
        })
    }

    pub fn len(&self) -> usize {
        self.types.len()
    }

    pub fn is_empty(&self) -> bool {
        self.types.is_empty()
    }

    /// Shows `t` (scale-out's catalogue, `scale::catalogue`, fed from the
    /// changelog's type records instead of an engine's export).
    pub(crate) fn put(&self, t: &ErrorType, samples: SampleMode, spec: crate::window::WindowSpec) {
        self.types
            .insert(t.fingerprint, TypeSummary::of(t, samples, spec, None));
        self.watermark.fetch_max(t.last_seen, Ordering::Relaxed);
    }

    /// Stops showing `fp` (and its surge mark).
    pub(crate) fn take_out(&self, fp: Fingerprint) {
        self.types.remove(&fp);
        self.surges.remove(&fp);
    }
}

/// Publishes the engine's types into a [`TypeView`] at each checkpoint. A
/// sink only for its catalogue: it takes no alerts.
pub struct ViewSink {
    view: Arc<TypeView>,
    samples: SampleMode,
    /// Per type, what changes its summary, as last published: a checkpoint
    /// builds summaries only for types that changed (one comparison per
    /// type, no allocation, for the many that did not).
    published: HashMap<Fingerprint, Stamp>,
}

/// What a summary depends on that changes while a type lives (the last: a
/// digest of its snooze, 0 for none; 8 bytes per type, as the map holds
/// every type).
type Stamp = (u64, i64, bool, Option<i64>, usize, u64);

fn stamp(t: &ErrorType, snooze: Option<&crate::detect::snooze::Snooze>) -> Stamp {
    use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
    (
        t.count,
        t.last_seen,
        t.muted,
        t.resolved_at,
        t.samples.len() + t.versions.len(),
        snooze.map_or(0, |s| {
            BuildHasherDefault::<DefaultHasher>::default().hash_one(s) | 1
        }),
    )
}

impl ViewSink {
    pub fn new(view: Arc<TypeView>, samples: SampleMode) -> ViewSink {
        ViewSink {
            view,
            samples,
            published: HashMap::new(),
        }
    }
}

impl AlertSink for ViewSink {
    /// Surges are marked for the triage page; the view takes nothing else
    /// from alerts (the types come with the catalogue).
    fn emit(&mut self, alert: &crate::alert::Alert) -> Result<(), SinkError> {
        if alert.kind == crate::alert::Kind::Surge
            && let (Some(fp), Some(w)) = (alert.fingerprint, &alert.window)
        {
            let at_ms = chrono::DateTime::parse_from_rfc3339(&alert.event_time)
                .map_or(0, |t| t.timestamp_millis());
            self.view.surges.insert(
                fp,
                SurgeMark {
                    at: alert.event_time.clone(),
                    at_ms,
                    count: w.count,
                    window_s: w.length_s,
                    ratio: (w.ratio * 10.0).round() / 10.0,
                },
            );
        }
        Ok(())
    }
    fn catalogue(&mut self) -> Option<&mut dyn TypeCatalogue> {
        Some(self)
    }
    fn name(&self) -> &str {
        "types view"
    }
}

impl TypeCatalogue for ViewSink {
    fn export(&mut self, cat: &Catalogue<'_>, _last: bool) -> Result<(), SinkError> {
        let types = &cat.baseline.types;
        // Published types still in the engine: fewer than were published
        // means some left (evicted, or merged into another type), even
        // when as many new ones came.
        let (before, mut kept) = (self.published.len(), 0);
        for (fp, t) in types.iter() {
            let snooze = cat.snoozes.and_then(|s| s.get(fp));
            let now = stamp(t, snooze);
            if let Some(was) = self.published.get(fp) {
                kept += 1;
                if *was == now {
                    continue;
                }
            }
            self.view.types.insert(
                *fp,
                TypeSummary::of(t, self.samples, cat.baseline.spec, snooze),
            );
            self.published.insert(*fp, now);
        }
        if kept < before {
            self.published.retain(|fp, _| types.contains_key(fp));
            self.view.types.retain(|fp, _| types.contains_key(fp));
        }
        if !self.view.surges.is_empty() {
            // Bounded by the types: a surge mark goes with its type.
            self.view.surges.retain(|fp, _| types.contains_key(fp));
        }
        if let Some(w) = cat.watermark {
            self.view.watermark.store(w, Ordering::Relaxed);
        }
        Ok(())
    }
}

/// Who may read and write.
#[derive(Clone)]
struct Access {
    view: Arc<TypeView>,
    /// The engine's command queue (`None`: writes are not served here).
    control: Option<Arc<control::Control>>,
    token: Option<Secret>,
    /// The listener is on a loopback address: reads need no token.
    loopback: bool,
}

impl Access {
    fn check(&self, headers: &HeaderMap) -> Result<(), (StatusCode, &'static str)> {
        if self.loopback {
            return Ok(());
        }
        self.bearer(
            headers,
            "the API listens beyond loopback and no api.token is configured: reads are refused",
        )
    }

    /// Writes need the token on every listener.
    fn check_write(&self, headers: &HeaderMap) -> Result<(), (StatusCode, &'static str)> {
        self.bearer(
            headers,
            "no api.token is configured: writes are refused (set api.token or api.token_file)",
        )
    }

    /// The bearer token matches `api.token`; `unset` says why nothing is
    /// allowed when no token is configured.
    fn bearer(
        &self,
        headers: &HeaderMap,
        unset: &'static str,
    ) -> Result<(), (StatusCode, &'static str)> {
        let Some(token) = &self.token else {
            return Err((StatusCode::FORBIDDEN, unset));
        };
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        match given {
            Some(g) if constant_time_eq(g.as_bytes(), token.expose().as_bytes()) => Ok(()),
            _ => Err((
                StatusCode::UNAUTHORIZED,
                "send Authorization: Bearer <api.token>",
            )),
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn refuse(status: StatusCode, why: &str) -> Response {
    (status, axum::Json(serde_json::json!({ "error": why }))).into_response()
}

/// The API's routes, to merge with [`crate::metrics::http::routes`].
/// `control` is the running engine's command queue (writes answer 503
/// without one); `listen` is the bound address (loopback or not decides on
/// tokens for reads).
pub fn routes(
    view: Arc<TypeView>,
    control: Option<Arc<control::Control>>,
    token: Option<Secret>,
    listen: SocketAddr,
) -> Router {
    let token = token.filter(|t| !t.expose().is_empty());
    Router::new()
        .route("/api/v1/types", get(list))
        .route("/api/v1/types/{fingerprint}", get(one))
        .route("/api/v1/types/{fingerprint}/{action}", post(write))
        .route("/api/v1/rollout-check", get(rollout_check))
        .route("/api/v1/report", get(release_report))
        .route("/api/v1/services/{service}/signals", get(control::signals))
        .merge(page::routes())
        .with_state(Access {
            view,
            control,
            token,
            loopback: listen.ip().is_loopback(),
        })
}

#[derive(Deserialize)]
struct RolloutQuery {
    service: String,
    stable: String,
    canary: String,
    current_percentage: u32,
    window: Option<String>,
}

/// `faultline rollout-check` asked of the running engine: the same request
/// and the same JSON verdict (its `decision` says proceed, hold or
/// roll_back; the CLI's exit code is not an HTTP status). Answered at the
/// engine's next step, as the verdict reads the per-version rates, which
/// the view does not hold.
async fn rollout_check(
    State(a): State<Access>,
    headers: HeaderMap,
    q: Query<RolloutQuery>,
) -> Response {
    if let Err((status, why)) = a.check(&headers) {
        return refuse(status, why);
    }
    if q.current_percentage > 100 {
        return refuse(StatusCode::BAD_REQUEST, "current_percentage is 0 to 100");
    }
    let window = match q.window.as_deref().map(str::parse::<crate::config::Dur>) {
        None => None,
        Some(Ok(w)) => Some(w),
        Some(Err(e)) => return refuse(StatusCode::BAD_REQUEST, &format!("window: {e}")),
    };
    let Some(control) = &a.control else {
        return refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "this listener has no running engine to ask",
        );
    };
    let req = crate::release::rollout::RolloutRequest {
        service: q.service.clone(),
        stable: q.stable.clone(),
        canary: q.canary.clone(),
        current_percentage: q.current_percentage,
        window,
    };
    let cfg = control.config();
    let service = q.service.clone();
    let asked = control.ask_about(
        Some(&service),
        Box::new(move |e: &crate::engine::Engine| {
            match crate::release::rollout::check(&e.state.ledger(), &cfg, &req) {
                Ok(mut v) => {
                    // The same gate as `faultline rollout-check`: latency
                    // and traffic amend the error-rate verdict.
                    crate::signals::rollout::amend(
                        &mut v,
                        &e.state.signals,
                        &e.state.rates,
                        &cfg,
                        &req,
                    );
                    serde_json::json!({ "verdict": v })
                }
                Err(err) => serde_json::json!({ "error": err.to_string() }),
            }
        }),
    );
    let rx = match asked {
        Ok(rx) => rx,
        Err(e) => return refuse(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    };
    match tokio::time::timeout(WRITE_TIMEOUT, rx).await {
        Ok(Ok(v)) if misdirected(&v) => {
            (StatusCode::MISDIRECTED_REQUEST, axum::Json(v)).into_response()
        }
        Ok(Ok(mut v)) => match v.get_mut("verdict").map(serde_json::Value::take) {
            Some(verdict) => axum::Json(verdict).into_response(),
            None => (StatusCode::UNPROCESSABLE_ENTITY, axum::Json(v)).into_response(),
        },
        Ok(Err(_)) => refuse(StatusCode::SERVICE_UNAVAILABLE, "the engine stopped"),
        Err(_) => refuse(
            StatusCode::GATEWAY_TIMEOUT,
            "the engine did not answer within 8 s",
        ),
    }
}

#[derive(Deserialize)]
struct ReportQuery {
    release: String,
    format: Option<String>,
    since: Option<String>,
    until: Option<String>,
    after: Option<String>,
}

/// `faultline report` asked of the running engine: the same report as
/// Markdown (the default), HTML or JSON. The engine builds its data at its
/// next step (a read of the state, as for the rollout check) and goes on;
/// this thread renders it.
async fn release_report(
    State(a): State<Access>,
    headers: HeaderMap,
    q: Query<ReportQuery>,
) -> Response {
    if let Err((status, why)) = a.check(&headers) {
        return refuse(status, why);
    }
    let bad = |why: String| refuse(StatusCode::BAD_REQUEST, &why);
    let format = match q
        .format
        .as_deref()
        .unwrap_or("md")
        .parse::<report::Format>()
    {
        Ok(f) => f,
        Err(e) => return bad(e),
    };
    let time = |s: &str| {
        chrono::DateTime::parse_from_rfc3339(s)
            .map(|t| t.timestamp_millis())
            .map_err(|e| format!("`{s}`: expected an RFC 3339 time like 2026-11-02T11:00:00Z: {e}"))
    };
    let since = match q.since.as_deref() {
        None => None,
        Some(s) => match (time(s), s.parse::<crate::config::Dur>()) {
            (Ok(t), _) => Some(report::Since::At(t)),
            (_, Ok(d)) => Some(report::Since::Before(d)),
            (Err(e), Err(_)) => return bad(format!("since: {e}, or a duration like 7d")),
        },
    };
    let until = match q.until.as_deref().map(time).transpose() {
        Ok(u) => u,
        Err(e) => return bad(format!("until: {e}")),
    };
    let after = match q.after.as_deref().map(str::parse::<crate::config::Dur>) {
        None => None,
        Some(Ok(d)) => Some(d),
        Some(Err(e)) => return bad(format!("after: {e}")),
    };
    if until.is_some() && after.is_some() {
        return bad("until and after exclude each other".into());
    }
    let Some(control) = &a.control else {
        return refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "this listener has no running engine to ask",
        );
    };
    let req = report::Request {
        release: q.release.clone(),
        since,
        until,
        after,
    };
    let cfg = control.config();
    // The built report comes back on its own channel: the question's JSON
    // answer only says whether it was built.
    let (tx, built) = tokio::sync::oneshot::channel();
    let asked = control.ask_about(
        None,
        Box::new(move |e: &crate::engine::Engine| {
            let started = std::time::Instant::now();
            let r = report::build(&e.state, &cfg, &req, crate::engine::now_ms());
            // What the report costs the engine (it waits this long).
            tracing::info!(
                release = %req.release,
                engine_ms = started.elapsed().as_secs_f64() * 1e3,
                "report built between two polls"
            );
            let _ = tx.send(r);
            serde_json::Value::Null
        }),
    );
    let asked = match asked {
        Ok(rx) => rx,
        Err(e) => return refuse(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    };
    let deadline = tokio::time::Instant::now() + WRITE_TIMEOUT;
    let built = match tokio::time::timeout_at(deadline, asked).await {
        // Scale-out: no engine here holds the whole state.
        Ok(Ok(v)) if misdirected(&v) => {
            return (StatusCode::MISDIRECTED_REQUEST, axum::Json(v)).into_response();
        }
        // Built (the report is on its own channel), or not in time.
        _ => tokio::time::timeout_at(deadline, built).await,
    };
    let built = match built {
        Ok(Ok(Ok(b))) => b,
        Ok(Ok(Err(why))) => return refuse(StatusCode::UNPROCESSABLE_ENTITY, &why),
        Ok(Err(_)) => return refuse(StatusCode::SERVICE_UNAVAILABLE, "the engine stopped"),
        Err(_) => {
            return refuse(
                StatusCode::GATEWAY_TIMEOUT,
                "the engine did not answer within 8 s",
            );
        }
    };
    let kind = match format {
        report::Format::Md => "text/markdown; charset=utf-8",
        report::Format::Html => "text/html; charset=utf-8",
        report::Format::Json => "application/json",
    };
    (
        [(header::CONTENT_TYPE, kind)],
        report::render(&built, format),
    )
        .into_response()
}

/// Scale-out's answer from an instance that does not own what a question
/// is about ([`control::Control::answer_owned`]): 421 Misdirected Request.
fn misdirected(v: &serde_json::Value) -> bool {
    v.get("misdirected").and_then(serde_json::Value::as_bool) == Some(true)
}

fn parse_fingerprint(fp: &str) -> Option<Fingerprint> {
    u64::from_str_radix(fp, 16)
        .ok()
        .filter(|_| fp.len() == 16)
        .map(Fingerprint)
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct WriteBody {
    in_version: Option<String>,
    /// mute: until a time (RFC 3339) or for a duration from now.
    until: Option<String>,
    /// mute: for this many more occurrences.
    count: Option<u64>,
    /// merge: the type to fold this one into.
    #[serde(alias = "target")]
    into: Option<String>,
}

/// The action a write names, with what its body says; `Err` is a 400 or
/// 404 answer.
fn action_of(action: &str, body: WriteBody) -> Result<control::Action, (StatusCode, String)> {
    let bad = |why: &str| Err((StatusCode::BAD_REQUEST, why.to_string()));
    let WriteBody {
        in_version,
        until,
        count,
        into,
    } = body;
    let snooze = until.is_some() || count.is_some();
    match action {
        "resolve" if !snooze && into.is_none() => Ok(control::Action::Resolve { in_version }),
        "mute" | "unmute" | "merge" if in_version.is_some() => {
            bad("in_version goes with resolve only")
        }
        "resolve" | "unmute" | "merge" if snooze => bad("until and count go with mute only"),
        "resolve" | "mute" | "unmute" if into.is_some() => bad("into goes with merge only"),
        "mute" if !snooze => Ok(control::Action::Mute),
        "mute" => {
            let until = match until
                .as_deref()
                .map(str::parse::<crate::detect::snooze::Until>)
            {
                None => None,
                Some(Ok(u)) => Some(u),
                Some(Err(e)) => return bad(&e),
            };
            Ok(control::Action::Snooze { until, count })
        }
        "unmute" => Ok(control::Action::Unmute),
        "merge" => match into.as_deref().map(parse_fingerprint) {
            Some(Some(into)) => Ok(control::Action::Merge { into }),
            Some(None) => bad("into is a fingerprint: 16 hex digits"),
            None => bad("merge needs the target: {\"into\": \"<fingerprint>\"}"),
        },
        _ => Err((
            StatusCode::NOT_FOUND,
            "the writes are resolve, mute, unmute and merge".to_string(),
        )),
    }
}

async fn write(
    State(a): State<Access>,
    headers: HeaderMap,
    Path((fp, action)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    if let Err((status, why)) = a.check_write(&headers) {
        return refuse(status, why);
    }
    let Some(fingerprint) = parse_fingerprint(&fp) else {
        return refuse(StatusCode::BAD_REQUEST, "a fingerprint is 16 hex digits");
    };
    let body: WriteBody = if body.iter().all(u8::is_ascii_whitespace) {
        WriteBody::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(b) => b,
            Err(e) => {
                return refuse(
                    StatusCode::BAD_REQUEST,
                    &format!(
                        "the body must be JSON like {{\"in_version\": \"2.1.0\"}}, \
                         {{\"until\": \"2h\"}}, {{\"count\": 100}} or {{\"into\": \"<fingerprint>\"}}: {e}"
                    ),
                );
            }
        }
    };
    let action = match action_of(&action, body) {
        Ok(a) => a,
        Err((status, why)) => return refuse(status, &why),
    };
    let Some(control) = &a.control else {
        return refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "this listener has no running engine to change",
        );
    };
    let rx = match control.submit(control::Command {
        fingerprint,
        action,
    }) {
        Ok(rx) => rx,
        Err(e) => return refuse(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    };
    match tokio::time::timeout(WRITE_TIMEOUT, rx).await {
        Ok(Ok(control::Outcome::Applied(t))) => axum::Json(*t).into_response(),
        Ok(Ok(control::Outcome::NotFound)) => refuse(StatusCode::NOT_FOUND, "no such error type"),
        Ok(Ok(control::Outcome::Conflict(why))) => refuse(StatusCode::CONFLICT, &why),
        // Scale-out: the owner of the type applies it from the control
        // topic (docs/scaling.md); accepted, not yet visible here.
        Ok(Ok(control::Outcome::Forwarded(to))) => (
            StatusCode::ACCEPTED,
            axum::Json(serde_json::json!({
                "fingerprint": fingerprint.to_string(),
                "forwarded_to": to,
            })),
        )
            .into_response(),
        Ok(Ok(control::Outcome::Unsaved(why))) => refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!(
                "applied in the running engine but the state save failed ({why}); \
                 it is saved with the next checkpoint that succeeds"
            ),
        ),
        Ok(Err(_)) => refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "the engine stopped before the change was saved",
        ),
        Err(_) => refuse(
            StatusCode::GATEWAY_TIMEOUT,
            "the engine has not applied and saved the change within 8 s (it is queued and \
             applies when the engine catches up): check GET /api/v1/types/{fingerprint}",
        ),
    }
}

#[derive(Deserialize)]
struct ListQuery {
    service: Option<String>,
    status: Option<String>,
    since: Option<String>,
    /// Types new in this version: first seen in it, after the baseline.
    new_in: Option<String>,
    limit: Option<usize>,
}

async fn list(State(a): State<Access>, headers: HeaderMap, q: Query<ListQuery>) -> Response {
    if let Err((status, why)) = a.check(&headers) {
        return refuse(status, why);
    }
    if let Some(s) = q.status.as_deref()
        && !matches!(s, "active" | "muted" | "resolved")
    {
        return refuse(
            StatusCode::BAD_REQUEST,
            "status must be active, muted or resolved",
        );
    }
    let since = match q.since.as_deref().map(chrono::DateTime::parse_from_rfc3339) {
        None => i64::MIN,
        Some(Ok(t)) => t.timestamp_millis(),
        Some(Err(_)) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                "since must be an RFC 3339 time, e.g. 2026-11-02T10:00:00Z",
            );
        }
    };
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
    let mut out: Vec<TypeSummary> = a
        .view
        .types
        .iter()
        .filter(|t| q.service.as_ref().is_none_or(|s| *s == t.service))
        .filter(|t| q.status.as_ref().is_none_or(|s| *s == t.status))
        .filter(|t| {
            q.new_in.as_ref().is_none_or(|v| {
                t.origin == "live" && t.version_first_seen.as_deref() == Some(v.as_str())
            })
        })
        .filter(|t| t.last_seen_ms >= since)
        .map(|t| t.clone())
        .collect();
    let total = out.len();
    out.sort_by(|x, y| {
        y.last_seen_ms
            .cmp(&x.last_seen_ms)
            .then_with(|| x.fingerprint.cmp(&y.fingerprint))
    });
    out.truncate(limit);
    let w = a.view.watermark.load(Ordering::Relaxed);
    axum::Json(serde_json::json!({
        "watermark": (w != i64::MIN).then(|| rfc3339(w)),
        "total": total,
        "types": out,
    }))
    .into_response()
}

async fn one(State(a): State<Access>, headers: HeaderMap, Path(fp): Path<String>) -> Response {
    if let Err((status, why)) = a.check(&headers) {
        return refuse(status, why);
    }
    let Some(key) = parse_fingerprint(&fp) else {
        return refuse(StatusCode::BAD_REQUEST, "a fingerprint is 16 hex digits");
    };
    match a.view.types.get(&key) {
        Some(t) => axum::Json(t.clone()).into_response(),
        None => refuse(StatusCode::NOT_FOUND, "no such error type"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::baseline::Baseline;
    use crate::config::Config;
    use crate::metrics::http::{Limits, serve_router};

    const T: i64 = 1_793_613_600_000;

    fn baseline() -> Baseline {
        let mut b = Baseline::new(&Config::default(), 0);
        for (fp, service, template, t) in [
            (0xa1, "checkout", "timeout after <*>", T),
            (0xb2, "checkout", "card declined <*>", T + 60_000),
            (0xc3, "search", "index missing <*>", T + 120_000),
        ] {
            let typed = crate::fingerprint::Typed {
                fingerprint: Fingerprint(fp),
                template: template.into(),
                context: crate::fingerprint::Context {
                    service: service.into(),
                    ..Default::default()
                },
                ..Default::default()
            };
            let rec = crate::record::Record {
                message: format!("{template} for customer 42"),
                ..Default::default()
            };
            b.observe(&typed, &rec, t, Origin::Live);
        }
        b
    }

    fn publish(view: &Arc<TypeView>, b: &Baseline, samples: SampleMode) {
        ViewSink::new(view.clone(), samples)
            .export(
                &Catalogue {
                    baseline: b,
                    watermark: Some(T + 180_000),
                    snoozes: None,
                },
                false,
            )
            .unwrap();
    }

    /// Serves the API on 127.0.0.1 (with `loopback` as given) and GETs
    /// `path` with `token`.
    fn get(
        view: &Arc<TypeView>,
        token: Option<&str>,
        loopback: bool,
        path: &str,
        bearer: Option<&str>,
    ) -> (u16, serde_json::Value) {
        let shown: SocketAddr = if loopback {
            "127.0.0.1:0".parse().unwrap()
        } else {
            "0.0.0.0:0".parse().unwrap()
        };
        let router = routes(view.clone(), None, token.map(Secret::from), shown);
        let addr = serve_router("127.0.0.1:0", router, Limits::default()).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut r = reqwest::Client::new().get(format!("http://{addr}{path}"));
            if let Some(b) = bearer {
                r = r.bearer_auth(b);
            }
            let res = r.send().await.unwrap();
            let status = res.status().as_u16();
            (status, res.json().await.unwrap_or(serde_json::Value::Null))
        })
    }

    /// GET `path` on a loopback API; (status, content type, body).
    fn get_text(view: &Arc<TypeView>, path: &str) -> (u16, String, String) {
        let router = routes(view.clone(), None, None, "127.0.0.1:0".parse().unwrap());
        let addr = serve_router("127.0.0.1:0", router, Limits::default()).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let res = reqwest::get(format!("http://{addr}{path}")).await.unwrap();
            let status = res.status().as_u16();
            let kind = res
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            (status, kind, res.text().await.unwrap())
        })
    }

    /// A baseline learned on 1.0.0 (one known type per service), then
    /// 2.0.0 with new types, one of them with markup in its message.
    fn released() -> Baseline {
        let mut b = Baseline::new(&Config::default(), 0);
        let mut add = |fp: u64, service: &str, version: &str, template: &str, origin, t| {
            let typed = crate::fingerprint::Typed {
                fingerprint: Fingerprint(fp),
                template: template.into(),
                context: crate::fingerprint::Context {
                    service: service.into(),
                    ..Default::default()
                },
                ..Default::default()
            };
            let rec = crate::record::Record {
                message: template.replace("<*>", "42"),
                version: Some(version.into()),
                ..Default::default()
            };
            b.observe(&typed, &rec, t, origin);
        };
        add(
            0x1,
            "checkout",
            "1.0.0",
            "cache miss <*>",
            Origin::Baseline,
            T,
        );
        add(
            0x2,
            "checkout",
            "2.0.0",
            "card <b>declined</b> <*>",
            Origin::Live,
            T + 60_000,
        );
        add(
            0x3,
            "checkout",
            "2.0.0",
            "timeout after <*>",
            Origin::Live,
            T + 120_000,
        );
        add(
            0x4,
            "search",
            "7.1",
            "index missing <*>",
            Origin::Live,
            T + 30_000,
        );
        b
    }

    #[test]
    fn the_types_new_in_a_version_are_those_first_seen_in_it_after_the_baseline() {
        let view = TypeView::new();
        publish(&view, &released(), SampleMode::Raw);
        let fps = |path: &str| -> Vec<String> {
            let (s, v) = get(&view, None, true, path, None);
            assert_eq!(s, 200, "{v}");
            let mut f: Vec<String> = v["types"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["fingerprint"].as_str().unwrap().to_string())
                .collect();
            f.sort();
            f
        };
        assert_eq!(
            fps("/api/v1/types?new_in=2.0.0"),
            ["0000000000000002", "0000000000000003"]
        );
        // The known type of 1.0.0 came with the baseline: nothing is new in it.
        assert!(fps("/api/v1/types?new_in=1.0.0").is_empty());
        assert_eq!(
            fps("/api/v1/types?new_in=7.1&service=search"),
            ["0000000000000004"]
        );
        assert!(fps("/api/v1/types?new_in=2.0.0&service=search").is_empty());
    }

    #[test]
    fn the_triage_page_lists_new_types_per_service_and_release_escaped() {
        let view = TypeView::new();
        let mut b = released();
        b.types.get_mut(&Fingerprint(0x3)).unwrap().muted = true;
        publish(&view, &b, SampleMode::Raw);
        let (s, kind, page) = get_text(&view, "/");
        assert_eq!((s, kind.as_str()), (200, "text/html; charset=utf-8"));
        // New types, under their service and first version; the known one
        // and (by default) the muted one are not listed.
        assert!(
            page.contains(r#"data-service="checkout" data-version="2.0.0""#),
            "{page}"
        );
        assert!(page.contains(r#"data-service="search" data-version="7.1""#));
        assert!(page.contains("current release"));
        assert!(page.contains("/types/0000000000000002"));
        assert!(
            !page.contains("/types/0000000000000001"),
            "known before the release"
        );
        assert!(
            !page.contains("/types/0000000000000003"),
            "muted: only with all=1"
        );
        // Log text is escaped, never markup.
        assert!(
            page.contains("card &lt;b&gt;declined&lt;&#x2f;b&gt; &lt;*&gt;"),
            "{page}"
        );
        assert!(!page.contains("<b>declined"));
        // Buttons call the API's writes.
        assert!(page.contains(r#"data-fp="0000000000000002" data-action="mute""#));
        assert!(page.contains(r#"data-action="resolve""#));
        let (_, _, all) = get_text(&view, "/?all=1&service=checkout");
        assert!(
            all.contains("/types/0000000000000003") && !all.contains("/types/0000000000000004")
        );
        assert!(
            page.contains(r#"<svg class="chart" viewBox="0 0 120 24""#),
            "sparklines"
        );
        // Assets are served from the binary.
        let (s, kind, js) = get_text(&view, "/static/triage.js");
        assert_eq!((s, kind.as_str()), (200, "text/javascript; charset=utf-8"));
        assert!(js.contains("/api/v1/types/"));
        assert!(!page.contains("https://"), "no external assets");
    }

    #[test]
    fn the_type_page_shows_one_type_with_its_counts_per_version() {
        let view = TypeView::new();
        publish(&view, &released(), SampleMode::Raw);
        let (s, _, page) = get_text(&view, "/types/0000000000000004");
        assert_eq!(s, 200);
        assert!(page.contains("index missing &lt;*&gt;"));
        assert!(
            page.contains("<td>7.1</td><td class=\"n\">1</td>"),
            "{page}"
        );
        assert!(page.contains("index missing 42"), "the sample");
        // Its occurrences on a time axis, the release marked.
        assert!(page.contains(r#"<svg class="chart""#), "{page}");
        assert!(page.contains("<title>first seen, in 7.1</title>"), "{page}");
        assert!(
            page.contains(&format!("<title>{}: 1</title>", rfc3339(T))),
            "{page}"
        );
        assert_eq!(get_text(&view, "/types/00000000000000ff").0, 404);
        assert_eq!(get_text(&view, "/types/nope").0, 400);
    }

    #[test]
    fn the_type_page_draws_canary_against_the_stable_version_with_the_chart_module() {
        let view = TypeView::new();
        publish(&view, &released(), SampleMode::Raw);
        let (s, _, page) = get_text(&view, "/types/0000000000000002");
        assert_eq!(s, 200);
        // checkout runs 1.0.0 (the known type) and 2.0.0: the new type's
        // canary is 2.0.0, drawn beside 1.0.0 where it never occurred.
        assert!(
            page.contains(r#"<section class="canary" data-canary="2.0.0" data-stable="1.0.0">"#),
            "{page}"
        );
        assert!(page.contains(r#"<tr data-version="2.0.0" data-role="canary"><td>2.0.0</td><td>canary</td><td class="n">1</td>"#), "{page}");
        assert!(page.contains(r#"<tr data-version="1.0.0" data-role="stable"><td>1.0.0</td><td>stable</td><td class="n">0</td>"#), "{page}");
        // release::chart's SVG, inline: a line per version, the legend,
        // the release marker.
        assert!(
            page.contains(r#"<g class="series" data-name="2.0.0 (canary)""#),
            "{page}"
        );
        assert!(page.contains(r#"data-name="1.0.0 (stable)""#));
        assert!(page.contains(r#"<g class="legend">"#));
        assert!(page.contains("2.0.0 here"), "the marker");
        // Known types have no per-version series published.
        let (_, _, known) = get_text(&view, "/types/0000000000000001");
        assert!(!known.contains(r#"class="canary""#));
    }

    /// POST `path` on a loopback API with `token` configured.
    fn post(token: Option<&str>, control: bool, path: &str, bearer: Option<&str>) -> u16 {
        let control = control.then(|| control::Control::new(&Config::default()));
        let router = routes(
            TypeView::new(),
            control,
            token.map(Secret::from),
            "127.0.0.1:0".parse().unwrap(),
        );
        let addr = serve_router("127.0.0.1:0", router, Limits::default()).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut r = reqwest::Client::new().post(format!("http://{addr}{path}"));
            if let Some(b) = bearer {
                r = r.bearer_auth(b);
            }
            r.send().await.unwrap().status().as_u16()
        })
    }

    #[test]
    fn writes_need_a_configured_token_even_on_loopback() {
        let mute = "/api/v1/types/00000000000000a1/mute";
        assert_eq!(post(None, true, mute, None), 403, "no token configured");
        assert_eq!(post(None, true, mute, Some("x")), 403);
        assert_eq!(post(Some("t0k"), true, mute, None), 401);
        assert_eq!(post(Some("t0k"), true, mute, Some("nope")), 401);
        assert_eq!(
            post(Some("t0k"), false, mute, Some("t0k")),
            503,
            "no engine behind this listener"
        );
        assert_eq!(
            post(
                Some("t0k"),
                true,
                "/api/v1/types/00000000000000a1/explode",
                Some("t0k")
            ),
            404
        );
    }

    #[test]
    fn types_are_listed_newest_first_and_filtered() {
        let view = TypeView::new();
        let mut b = baseline();
        b.types.get_mut(&Fingerprint(0xb2)).unwrap().muted = true;
        publish(&view, &b, SampleMode::Raw);
        let (s, v) = get(&view, None, true, "/api/v1/types", None);
        assert_eq!(s, 200);
        let fps: Vec<&str> = v["types"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["fingerprint"].as_str().unwrap())
            .collect();
        assert_eq!(
            fps,
            ["00000000000000c3", "00000000000000b2", "00000000000000a1"]
        );
        assert_eq!(v["watermark"], rfc3339(T + 180_000));
        let (_, v) = get(
            &view,
            None,
            true,
            "/api/v1/types?service=checkout&status=active",
            None,
        );
        assert_eq!(v["total"], 1);
        assert_eq!(v["types"][0]["template"], "timeout after <*>");
        assert_eq!(
            v["types"][0]["samples"][0],
            "timeout after <*> for customer 42"
        );
        let (_, v) = get(
            &view,
            None,
            true,
            "/api/v1/types?since=2026-11-02T10:01:00Z&limit=1",
            None,
        );
        assert_eq!(
            (v["total"].as_u64(), v["types"].as_array().map(Vec::len)),
            (Some(2), Some(1))
        );
        let (s, _) = get(&view, None, true, "/api/v1/types?status=gone", None);
        assert_eq!(s, 400);
    }

    #[test]
    fn one_type_by_fingerprint_and_unknown_ones_are_404() {
        let view = TypeView::new();
        publish(&view, &baseline(), SampleMode::Masked);
        let (s, v) = get(&view, None, true, "/api/v1/types/00000000000000a1", None);
        assert_eq!(s, 200);
        assert_eq!(v["service"], "checkout");
        assert_eq!(v["status"], "active");
        assert_eq!(
            v["samples"],
            serde_json::json!(["timeout after <*>"]),
            "masked samples: the template, never the message"
        );
        assert_eq!(
            get(&view, None, true, "/api/v1/types/00000000000000ff", None).0,
            404
        );
        assert_eq!(get(&view, None, true, "/api/v1/types/xyz", None).0, 400);
    }

    #[test]
    fn beyond_loopback_reads_need_the_token() {
        let view = TypeView::new();
        publish(&view, &baseline(), SampleMode::Raw);
        let path = "/api/v1/types";
        assert_eq!(
            get(&view, None, false, path, None).0,
            403,
            "no token configured"
        );
        assert_eq!(get(&view, Some("t0k"), false, path, None).0, 401);
        assert_eq!(get(&view, Some("t0k"), false, path, Some("wrong")).0, 401);
        assert_eq!(get(&view, Some("t0k"), false, path, Some("t0k")).0, 200);
        assert_eq!(
            get(&view, Some("t0k"), true, path, None).0,
            200,
            "loopback is open"
        );
    }

    #[test]
    fn changed_types_are_republished_and_types_gone_from_the_engine_leave_the_view() {
        let view = TypeView::new();
        let mut b = baseline();
        let mut sink = ViewSink::new(view.clone(), SampleMode::None);
        let mut export = |b: &Baseline| {
            sink.export(
                &Catalogue {
                    baseline: b,
                    watermark: Some(T),
                    snoozes: None,
                },
                false,
            )
            .unwrap()
        };
        export(&b);
        assert_eq!(view.len(), 3);
        b.types.get_mut(&Fingerprint(0xb2)).unwrap().muted = true;
        b.types.get_mut(&Fingerprint(0xc3)).unwrap().count += 5;
        export(&b);
        let status = |fp: u64| view.types.get(&Fingerprint(fp)).unwrap().status.clone();
        assert_eq!(status(0xb2), "muted");
        assert_eq!(view.types.get(&Fingerprint(0xc3)).unwrap().count, 6);
        b.types.remove(&Fingerprint(0xa1));
        export(&b);
        assert_eq!(view.len(), 2);
    }
}
