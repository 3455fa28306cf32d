//! The triage page: what is new or surging in each service's releases, on
//! the API's listener, for people.
//!
//! - `GET /` — per service and version (newest first, the service's newest
//!   version marked "current release"), the types new since the baseline
//!   was learned and the types that surged, with template, a sample, counts,
//!   first and last seen, and buttons to resolve, mute and unmute. Query:
//!   `service`, `all=1` (resolved and muted ones too).
//! - `GET /types/{fingerprint}` — one type: every field, counts per
//!   version, canary vs stable (a chart of its occurrences per version and
//!   minute, drawn by `release::chart`, with the counts since the canary
//!   brought it), samples. The Alertmanager sink's `generatorURL` points here
//!   (`alertmanager.external_url` + `/types/{fingerprint}`).
//! - `GET /static/triage.css`, `/static/triage.js` — compiled into the
//!   binary: the page loads nothing from elsewhere (no CDN, works offline
//!   and behind a strict CSP).
//!
//! Server-rendered from minijinja templates, which escape every value for
//! HTML (templates and samples are log text: anything may be in them). The
//! only script sends the buttons' POSTs to the API's writes with the token
//! typed into the page (writes always need it), and shows the answer.
//!
//! It reads the same [`TypeView`] as the JSON API, so it never waits for
//! the engine and is as fresh as the last checkpoint; reads need the token
//! as the API's do (beyond loopback), which a browser cannot send on a
//! plain page load: put the listener on loopback or behind a proxy that
//! authenticates.

use std::cmp::Ordering as CmpOrdering;
use std::collections::BTreeMap;
use std::sync::OnceLock;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use minijinja::Environment;
use serde::{Deserialize, Serialize};

use super::{Access, SurgeMark, TypeSummary, parse_fingerprint};
use crate::release::version_cmp;

const CSS: &str = include_str!("page/triage.css");
const JS: &str = include_str!("page/triage.js");

/// A type counts as surging this long (event time) after its last surge
/// alert.
const SURGING_MS: i64 = 60 * 60 * 1000;

/// Longest sample shown in the list (the type's page shows them whole).
const SAMPLE_CHARS: usize = 300;

fn templates() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        for (name, text) in [
            ("base.html", include_str!("page/base.html")),
            ("actions.html", include_str!("page/actions.html")),
            ("chart.html", include_str!("page/chart.html")),
            ("index.html", include_str!("page/index.html")),
            ("type.html", include_str!("page/type.html")),
        ] {
            // The templates are part of the binary: a syntax error is a
            // bug caught by the page's tests, never a user's input.
            env.add_template(name, text)
                .unwrap_or_else(|e| panic!("page template {name}: {e}"));
        }
        env
    })
}

pub(super) fn routes() -> Router<Access> {
    Router::new()
        .route("/", get(index))
        .route("/types/{fingerprint}", get(one))
        .route("/static/triage.css", get(css))
        .route("/static/triage.js", get(js))
}

async fn css() -> Response {
    asset("text/css; charset=utf-8", CSS)
}

async fn js() -> Response {
    asset("text/javascript; charset=utf-8", JS)
}

fn asset(kind: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        body,
    )
        .into_response()
}

fn html(status: StatusCode, body: String) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            // Everything comes from here; no inline script.
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; script-src 'self'; style-src 'self'",
            ),
        ],
        body,
    )
        .into_response()
}

fn render(name: &str, ctx: impl Serialize) -> Response {
    match templates()
        .get_template(name)
        .and_then(|t| t.render(minijinja::Value::from(minijinja::value::Serde(&ctx))))
    {
        Ok(body) => html(StatusCode::OK, body),
        Err(e) => {
            tracing::error!(error = %e, template = name, "triage page");
            html(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the triage page failed to render; see faultline's log".into(),
            )
        }
    }
}

/// A bar chart of a type's [`Series`](super::Series), laid out here so the
/// template only places rectangles: bars per bucket on a time axis, and a
/// marker where the type was first seen (for a new type: when the release
/// brought it).
#[derive(Serialize)]
struct Chart {
    width: u32,
    height: u32,
    bars: Vec<Bar>,
    max: u32,
    bucket_s: u64,
    start: String,
    end: String,
    marker: Option<Marker>,
}

#[derive(Serialize)]
struct Bar {
    x: f64,
    y: f64,
    w: f64,
    h: f64,
    n: u32,
    at: String,
}

#[derive(Serialize)]
struct Marker {
    x: f64,
    label: String,
}

fn chart(t: &TypeSummary, width: u32, height: u32) -> Option<Chart> {
    let s = t.series.as_ref()?;
    let n = s.counts.len().max(1) as f64;
    let max = s.counts.iter().copied().max().unwrap_or(0).max(1);
    let step = f64::from(width) / n;
    let bucket_ms = s.bucket_s as i64 * 1000;
    let end_ms = s.start_ms + bucket_ms * s.counts.len() as i64;
    let x_of =
        |t: i64| (t - s.start_ms) as f64 / (end_ms - s.start_ms).max(1) as f64 * f64::from(width);
    let bars = s
        .counts
        .iter()
        .enumerate()
        .filter(|(_, c)| **c > 0)
        .map(|(i, &c)| {
            let h = (f64::from(c) / f64::from(max) * f64::from(height)).max(1.0);
            Bar {
                x: (i as f64 * step * 10.0).round() / 10.0,
                y: ((f64::from(height) - h) * 10.0).round() / 10.0,
                w: ((step - 1.0).max(1.0) * 10.0).round() / 10.0,
                h: (h * 10.0).round() / 10.0,
                n: c,
                at: crate::alert::rfc3339(s.start_ms + i as i64 * bucket_ms),
            }
        })
        .collect();
    let first_ms = chrono::DateTime::parse_from_rfc3339(&t.first_seen)
        .map_or(i64::MIN, |d| d.timestamp_millis());
    let marker = (first_ms >= s.start_ms && first_ms < end_ms).then(|| Marker {
        x: (x_of(first_ms) * 10.0).round() / 10.0,
        label: match &t.version_first_seen {
            Some(v) if !v.is_empty() => format!("first seen, in {v}"),
            _ => "first seen".to_string(),
        },
    });
    Some(Chart {
        width,
        height,
        bars,
        max,
        bucket_s: s.bucket_s,
        start: s.start.clone(),
        end: crate::alert::rfc3339(end_ms),
        marker,
    })
}

#[derive(Deserialize)]
struct IndexQuery {
    service: Option<String>,
    all: Option<String>,
}

/// One row of the list.
#[derive(Serialize)]
struct Row {
    fingerprint: String,
    status: String,
    template: String,
    sample: Option<String>,
    /// Occurrences in this group's version.
    in_version: u64,
    count: u64,
    first_seen: String,
    last_seen: String,
    /// New since the baseline was learned.
    new: bool,
    surge: Option<SurgeMark>,
    /// A small chart of its recent occurrences.
    spark: Option<Chart>,
}

#[derive(Serialize)]
struct Group {
    service: String,
    version: String,
    /// The service's newest version.
    current: bool,
    types: Vec<Row>,
}

fn first_line(s: &str) -> String {
    let line = s.lines().next().unwrap_or("");
    match line.char_indices().nth(SAMPLE_CHARS) {
        Some((i, _)) => format!("{}…", &line[..i]),
        None => line.to_string(),
    }
}

/// The groups of the list: each new type under the version it first
/// occurred in, each surging known type under its newest version.
fn groups(a: &Access, service: Option<&str>, all: bool) -> (Vec<String>, Vec<Group>) {
    let mut services: Vec<String> = Vec::new();
    let mut by: BTreeMap<(String, String), Vec<(i64, Row)>> = BTreeMap::new();
    let mut newest: BTreeMap<String, String> = BTreeMap::new();
    let now = a.view.watermark.load(std::sync::atomic::Ordering::Relaxed);
    for entry in a.view.types.iter() {
        let t = entry.value();
        services.push(t.service.clone());
        if let Some(v) = t.versions.iter().max_by(|x, y| version_cmp(x, y)) {
            let cur = newest.entry(t.service.clone()).or_default();
            if version_cmp(v, cur) == CmpOrdering::Greater {
                *cur = v.clone();
            }
        }
        if service.is_some_and(|s| s != t.service) {
            continue;
        }
        let surge = a
            .view
            .surges
            .get(entry.key())
            .filter(|s| now.saturating_sub(s.at_ms) <= SURGING_MS)
            .map(|s| s.clone());
        let new = t.origin == "live";
        if !(new || surge.is_some()) || (!all && t.status != "active") {
            continue;
        }
        let version = match (&t.version_first_seen, new) {
            (Some(v), true) => v.clone(),
            _ => t
                .versions
                .iter()
                .max_by(|x, y| version_cmp(x, y))
                .cloned()
                .unwrap_or_default(),
        };
        let row = Row {
            fingerprint: t.fingerprint.clone(),
            status: t.status.clone(),
            template: t.template.clone(),
            sample: t.samples.first().map(|s| first_line(s)),
            in_version: t.by_version.get(&version).copied().unwrap_or(0),
            count: t.count,
            first_seen: t.first_seen.clone(),
            last_seen: t.last_seen.clone(),
            new,
            surge,
            spark: chart(t, 120, 24),
        };
        by.entry((t.service.clone(), version))
            .or_default()
            .push((t.last_seen_ms, row));
    }
    services.sort();
    services.dedup();
    let mut out: Vec<Group> = by
        .into_iter()
        .map(|((service, version), mut rows)| {
            rows.sort_by(|x, y| {
                y.0.cmp(&x.0)
                    .then_with(|| x.1.fingerprint.cmp(&y.1.fingerprint))
            });
            Group {
                current: newest.get(&service) == Some(&version),
                service,
                version,
                types: rows.into_iter().map(|(_, r)| r).collect(),
            }
        })
        .collect();
    out.sort_by(|x, y| {
        x.service
            .cmp(&y.service)
            .then_with(|| version_cmp(&y.version, &x.version))
    });
    (services, out)
}

fn watermark(a: &Access) -> Option<String> {
    let w = a.view.watermark.load(std::sync::atomic::Ordering::Relaxed);
    (w != i64::MIN).then(|| crate::alert::rfc3339(w))
}

fn refused(status: StatusCode, why: &str) -> Response {
    html(status, format!("{}\n", minijinja::HtmlEscape(why)))
}

async fn index(State(a): State<Access>, headers: HeaderMap, q: Query<IndexQuery>) -> Response {
    if let Err((status, why)) = a.check(&headers) {
        return refused(status, why);
    }
    let service = q.service.as_deref().filter(|s| !s.is_empty());
    let all = q.all.as_deref().is_some_and(|v| v == "1" || v == "on");
    let (services, groups) = groups(&a, service, all);
    render(
        "index.html",
        serde_json::json!({
            "watermark": watermark(&a),
            "services": services,
            "service": service,
            "all": all,
            "groups": groups,
        }),
    )
}

/// The type's page: its summary with the surge mark.
#[derive(Serialize)]
struct OneType<'a> {
    #[serde(flatten)]
    t: &'a TypeSummary,
    by_version: Vec<(&'a String, &'a u64)>,
    surge: Option<SurgeMark>,
    chart: Option<Chart>,
    canary: Option<Canary>,
}

/// Canary vs stable for one type: its occurrences per version per minute
/// since the canary (the service's newest version) brought it or first
/// carried it, drawn by the report's chart module.
#[derive(Serialize)]
struct Canary {
    canary: String,
    stable: Vec<String>,
    /// Since the release: (version, "canary" or "stable", occurrences).
    counts: Vec<(String, &'static str, u64)>,
    /// The chart, SVG made by `release::chart` (every text in it escaped).
    svg: String,
}

/// The canary is the newest version the service runs (`newest`, from
/// every type of the service), the other versions of the type are stable;
/// the stable version just before the canary is drawn even when this type
/// never occurred in it (a flat zero is the point of a new type).
fn canary(t: &TypeSummary, newest: Option<&String>, previous: Option<&String>) -> Option<Canary> {
    use crate::release::chart::{Marker as At, Series as Line, TimeChart};
    const MINUTE: i64 = 60_000;
    let pv = t.per_version.as_ref()?;
    let canary = newest
        .filter(|v| pv.versions.contains_key(*v))
        .or_else(|| pv.versions.keys().max_by(|a, b| version_cmp(a, b)))?
        .clone();
    let mut versions: Vec<(&String, &Vec<u32>)> = pv.versions.iter().collect();
    versions.sort_by(|a, b| version_cmp(b.0, a.0));
    let zeros = vec![0u32; pv.minutes as usize];
    if let Some(p) = previous.filter(|p| **p != canary && !pv.versions.contains_key(*p)) {
        versions.push((p, &zeros));
    }
    // The release, as this type shows it: the canary's first minute here.
    let released = pv.versions[&canary]
        .iter()
        .position(|n| *n > 0)
        .unwrap_or(0);
    let at = |i: usize| pv.start_ms + i as i64 * MINUTE;
    let mut counts = Vec::new();
    let mut lines = Vec::new();
    let mut stable = Vec::new();
    for (v, per_minute) in &versions {
        let role = if **v == canary { "canary" } else { "stable" };
        if role == "stable" {
            stable.push((*v).clone());
        }
        counts.push((
            (*v).clone(),
            role,
            per_minute[released..].iter().map(|n| u64::from(*n)).sum(),
        ));
        lines.push(Line {
            name: format!("{v} ({role})"),
            points: per_minute
                .iter()
                .enumerate()
                .map(|(i, n)| (at(i), Some(f64::from(*n))))
                .collect(),
        });
    }
    let chart = TimeChart {
        title: format!("canary {canary} vs stable: occurrences per minute"),
        y_label: "occurrences per minute".into(),
        from: pv.start_ms,
        to: at(pv.minutes as usize),
        series: lines,
        markers: vec![At {
            at: at(released),
            label: format!("{canary} here"),
        }],
    };
    Some(Canary {
        canary,
        stable,
        counts,
        svg: chart.svg(),
    })
}

async fn one(State(a): State<Access>, headers: HeaderMap, Path(fp): Path<String>) -> Response {
    if let Err((status, why)) = a.check(&headers) {
        return refused(status, why);
    }
    let Some(key) = parse_fingerprint(&fp) else {
        return refused(StatusCode::BAD_REQUEST, "a fingerprint is 16 hex digits");
    };
    let Some(t) = a.view.types.get(&key).map(|t| t.clone()) else {
        return refused(
            StatusCode::NOT_FOUND,
            "no such error type (it may have been evicted, or not yet published: the page is as \
             fresh as the last checkpoint)",
        );
    };
    let mut by_version: Vec<(&String, &u64)> = t.by_version.iter().collect();
    by_version.sort_by(|x, y| version_cmp(y.0, x.0));
    // The service's versions, from all its types (the page is rare; the
    // scan is of the view, never the engine).
    let mut service_versions: Vec<String> = Vec::new();
    if t.per_version.is_some() {
        for e in a.view.types.iter().filter(|e| e.service == t.service) {
            for v in &e.versions {
                if !v.is_empty() && !service_versions.contains(v) {
                    service_versions.push(v.clone());
                }
            }
        }
        service_versions.sort_by(|x, y| version_cmp(y, x));
    }
    let one = OneType {
        t: &t,
        by_version,
        surge: a.view.surges.get(&key).map(|s| s.clone()),
        chart: chart(&t, 600, 120),
        canary: canary(&t, service_versions.first(), service_versions.get(1)),
    };
    render(
        "type.html",
        serde_json::json!({ "watermark": watermark(&a), "t": one }),
    )
}
