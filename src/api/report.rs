//! The release report, put together once for `faultline report` (on a
//! stopped state) and `GET /api/v1/report` (on the running engine): the
//! error side (`release::report`) amended with latency and traffic
//! (`signals::report`), rendered as Markdown, HTML or JSON.
//!
//! Building reads the state and is the engine's work: the API asks for it
//! between two polls, as it asks for the rollout verdict, and the engine
//! goes on at once with a [`Built`] that owns its data. Rendering, the
//! larger part for HTML, runs on the HTTP thread.

use serde::Serialize;

use crate::alert::Kind;
use crate::config::{Config, Dur};
use crate::record::EventTime;
use crate::release::report::{self, Report, ReportRequest};
use crate::signals::report::SignalsReport;
use crate::state::State;

/// The report's output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Md,
    Html,
    Json,
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Format, String> {
        match s {
            "md" | "markdown" => Ok(Format::Md),
            "html" => Ok(Format::Html),
            "json" => Ok(Format::Json),
            _ => Err(format!("format `{s}`: md, html or json")),
        }
    }
}

/// Where the report's "before" period starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Since {
    At(EventTime),
    /// This long before the report's end.
    Before(Dur),
}

/// What to report on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub release: String,
    pub since: Option<Since>,
    pub until: Option<EventTime>,
    /// The report ends this long after the release (or at the latest data).
    pub after: Option<Dur>,
}

/// A report's data, owned, ready to render.
#[derive(Serialize)]
pub struct Built {
    #[serde(flatten)]
    pub report: Report,
    pub signals: SignalsReport,
}

fn at(s: &str) -> Result<EventTime, String> {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|d| d.timestamp_millis())
        .map_err(|e| format!("report time {s}: {e}"))
}

/// Builds the report of `req` from `state` (as `faultline report` does).
pub fn build(state: &State, cfg: &Config, req: &Request, now: i64) -> Result<Built, String> {
    let probe = || {
        let probe = ReportRequest {
            release: req.release.clone(),
            since: None,
            until: None,
        };
        report::build(&state.ledger(), &probe, now).map_err(|e| e.to_string())
    };
    let mut until = req.until;
    if let Some(after) = req.after {
        let r = probe()?;
        let (released, latest) = (at(&r.released_at)?, at(&r.until)?);
        until = Some(released.saturating_add(after.as_millis()).min(latest));
    }
    let since = match req.since {
        None => None,
        Some(Since::At(t)) => Some(t),
        Some(Since::Before(d)) => {
            let end = match until {
                Some(u) => u,
                None => at(&probe()?.until)?,
            };
            Some(end.saturating_sub(d.as_millis()))
        }
    };
    let full = ReportRequest {
        release: req.release.clone(),
        since,
        until,
    };
    let mut r = report::build(&state.ledger(), &full, now).map_err(|e| e.to_string())?;
    let span = (
        at(&r.since)?,
        at(&r.released_at)?,
        at(&r.until)?,
        r.bucket_minutes * 60_000,
    );
    let sig = crate::signals::report::build(
        &state.signals,
        &state.rates,
        &r.services,
        &r.release,
        span,
        cfg.signals.relative_accuracy,
    );
    if cfg.signals.enabled {
        let timed = sig
            .services
            .iter()
            .any(|s| s.before.timed + s.after.timed > 0);
        let requests = sig.services.iter().any(|s| s.after.measure == "requests");
        r.not_measured.retain(|m| {
            !(timed && m == "latency" || requests && m.starts_with("request throughput"))
        });
    }
    // Latency and traffic incidents amend the verdict the error side gave.
    let kinds = |k: &[Kind]| r.incidents.iter().filter(|i| k.contains(&i.kind)).count();
    let (lat, tra) = (
        kinds(&[Kind::LatencyRegression]),
        kinds(&[Kind::TrafficDrop, Kind::TrafficSpike]),
    );
    if lat > 0 {
        r.verdict = "regressed".into();
    } else if tra > 0 && r.verdict == "clean" {
        r.verdict = "attention".into();
    }
    if lat + tra > 0 {
        r.summary = format!(
            "{}, {lat} latency regression(s), {tra} traffic drop(s) or spike(s)",
            r.summary.trim_end().trim_end_matches('.')
        );
    }
    Ok(Built {
        report: r,
        signals: sig,
    })
}

/// The report as text in `format` (JSON pretty-printed).
pub fn render(b: &Built, format: Format) -> String {
    // The signals section goes before the first section after the
    // before/after table.
    let insert = |doc: String, marker: &str, section: String| match doc.find(marker) {
        Some(i) => format!("{}{section}{}", &doc[..i], &doc[i..]),
        None => doc + &section,
    };
    let (r, sig) = (&b.report, &b.signals);
    match format {
        Format::Md => insert(
            report::markdown(r),
            "## New error types",
            crate::signals::report::markdown(sig, &r.release),
        ),
        Format::Html => insert(
            report::html(r),
            "<h2>New error types",
            crate::signals::report::html(sig, &r.release),
        ),
        Format::Json => {
            serde_json::to_string_pretty(b).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
        }
    }
}
