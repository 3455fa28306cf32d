//! `faultline report`: what a release did, from the state alone.
//!
//! Everything here is read from counts the pipeline kept (per service and
//! version over time, per type over time, the alert log), so a report can be
//! written hours after the fact without the logs. What faultline does not
//! measure — saturation, business metrics, and latency or request
//! throughput where the logs carry no durations or request fields — is
//! named and left out, never estimated from log lines. Latency and traffic
//! (tables and charts) are `signals::report`'s section, which the CLI
//! inserts before the new types.
//!
//! The JSON form is the model; Markdown and HTML render it. Only
//! `generated_at` depends on the wall clock.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde::Serialize;

use super::Ledger;
use crate::alert::{Alert, Kind, rfc3339};
use crate::baseline::ErrorType;
use crate::fingerprint::Fingerprint;
use crate::record::EventTime;

use super::chart::{Marker, Series, TimeChart, esc};
use super::series::{MINUTE_MS, Traffic};

/// Still "occurring" when seen within this long before the report's end.
const RECENT_MS: i64 = 15 * MINUTE_MS;
const CHART_BUCKETS: i64 = 24;
const TOP_CHARTS: usize = 6;

#[derive(Clone, Debug)]
pub struct ReportRequest {
    pub release: String,
    pub since: Option<EventTime>,
    pub until: Option<EventTime>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("no service ran version `{0}` in this state")]
    UnknownRelease(String),
    #[error("--since must be before --until")]
    EmptyRange,
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub release: String,
    /// Wall clock (the only field that is).
    pub generated_at: String,
    pub services: Vec<String>,
    /// First record of the release in any service.
    pub released_at: String,
    pub since: String,
    pub until: String,
    /// `regressed`, `attention` or `clean`.
    pub verdict: String,
    pub summary: String,
    pub before_after: Vec<BeforeAfter>,
    pub not_measured: Vec<String>,
    pub new_types: Vec<NewType>,
    pub incidents: Vec<Incident>,
    /// Width of the timeline and chart buckets.
    pub bucket_minutes: i64,
    pub open: Vec<String>,
    pub charts: Vec<Chart>,
    /// Per service, every version's lines and error lines over time: the
    /// release beside the versions it replaces (canary vs stable).
    pub versions: Vec<VersionTimeline>,
}

/// One service's versions over the report's buckets (`bucket_minutes`
/// wide from `since`).
#[derive(Clone, Debug, Serialize)]
pub struct VersionTimeline {
    pub service: String,
    pub series: Vec<VersionSeries>,
}

#[derive(Clone, Debug, Serialize)]
pub struct VersionSeries {
    pub version: String,
    /// `release` for the reported version, `other` for the rest.
    pub role: String,
    pub lines: Vec<u64>,
    pub errors: Vec<u64>,
}

/// Versions drawn per service at most: the release and the busiest others.
const MAX_VERSIONS: usize = 4;

#[derive(Clone, Debug, Serialize)]
pub struct Period {
    pub from: String,
    pub to: String,
    pub minutes: f64,
    pub lines: u64,
    pub error_lines: u64,
    /// Percent of lines that are errors.
    pub error_rate_pct: f64,
    pub error_lines_per_min: f64,
    pub distinct_error_types: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct BeforeAfter {
    pub service: String,
    pub before: Period,
    pub after: Period,
}

#[derive(Clone, Debug, Serialize)]
pub struct NewType {
    pub fingerprint: Fingerprint,
    pub service: String,
    pub template: String,
    pub first_seen: String,
    pub last_seen: String,
    pub count: u64,
    pub versions: BTreeMap<String, u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_in_version: Option<String>,
    pub sample: Option<String>,
    /// `occurring`, `quiet`, `resolved` or `muted`.
    pub status: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct Incident {
    pub kind: Kind,
    pub severity: String,
    pub service: String,
    pub version: Option<String>,
    pub fingerprint: Option<Fingerprint>,
    pub event_time: String,
    pub subject: String,
    pub detail: String,
    /// Error lines per chart bucket over the report's range (of the type,
    /// or of the service for service-wide alerts).
    pub timeline: Vec<u64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Chart {
    pub fingerprint: Fingerprint,
    pub service: String,
    pub template: String,
    pub start: String,
    pub bucket_minutes: i64,
    pub counts: Vec<u64>,
}

fn round2(x: f64) -> f64 {
    if x.is_finite() {
        (x * 100.0).round() / 100.0
    } else {
        0.0
    }
}

fn parse_time(s: &str) -> Option<EventTime> {
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|d| d.timestamp_millis())
}

fn period(state: &Ledger<'_>, service: &str, from: EventTime, to: EventTime) -> Period {
    let mut tr = Traffic::default();
    if let Some(vs) = state.rates.get(service) {
        for rc in vs.values() {
            tr += rc.timeline.range(from, to);
        }
    }
    let distinct = state
        .baseline
        .types
        .values()
        .filter(|t| t.service() == service && t.series.total.range(from, to) > 0)
        .count();
    let minutes = ((to - from) as f64 / MINUTE_MS as f64).max(0.0);
    Period {
        from: rfc3339(from),
        to: rfc3339(to),
        minutes: round2(minutes),
        lines: tr.lines,
        error_lines: tr.errors,
        error_rate_pct: round2(tr.error_rate() * 100.0),
        error_lines_per_min: if minutes > 0.0 {
            round2(tr.errors as f64 / minutes)
        } else {
            0.0
        },
        distinct_error_types: distinct,
    }
}

struct Buckets {
    start: EventTime,
    width: EventTime,
}

impl Buckets {
    fn new(since: EventTime, until: EventTime) -> Buckets {
        let minutes = ((until - since) / MINUTE_MS).max(1);
        let width = ((minutes + CHART_BUCKETS - 1) / CHART_BUCKETS).max(1) * MINUTE_MS;
        Buckets {
            start: since,
            width,
        }
    }

    fn counts(&self, until: EventTime, f: impl Fn(EventTime, EventTime) -> u64) -> Vec<u64> {
        self.counts_of(until, f)
    }

    fn counts_of<V>(&self, until: EventTime, f: impl Fn(EventTime, EventTime) -> V) -> Vec<V> {
        let mut v = Vec::new();
        let mut t = self.start;
        while t < until {
            v.push(f(t, (t + self.width).min(until)));
            t += self.width;
        }
        v
    }
}

fn status(t: &ErrorType, until: EventTime) -> &'static str {
    if t.muted {
        "muted"
    } else if t.resolved_at.is_some() {
        "resolved"
    } else if t.last_seen >= until - RECENT_MS {
        "occurring"
    } else {
        "quiet"
    }
}

/// Builds the report for `req.release`.
pub fn build(state: &Ledger<'_>, req: &ReportRequest, now_ms: i64) -> Result<Report, ReportError> {
    let rel = req.release.as_str();
    let mut services = Vec::new();
    let mut released_at = EventTime::MAX;
    for (svc, vs) in state.rates {
        if let Some(rc) = vs.get(rel) {
            services.push(svc.clone());
            if let Some(f) = rc.first_seen {
                released_at = released_at.min(f);
            }
        }
    }
    if services.is_empty() || released_at == EventTime::MAX {
        return Err(ReportError::UnknownRelease(req.release.clone()));
    }
    // Defaults on whole minutes: the end of the latest record's minute, and
    // as long before the release as after it.
    let until = req.until.unwrap_or_else(|| {
        (state.watermark.unwrap_or(released_at).div_euclid(MINUTE_MS) + 1) * MINUTE_MS
    });
    let since = req.since.unwrap_or_else(|| {
        (released_at - (until - released_at).max(MINUTE_MS)).div_euclid(MINUTE_MS) * MINUTE_MS
    });
    if since >= until {
        return Err(ReportError::EmptyRange);
    }
    let split = released_at.clamp(since, until);
    let before_after = services
        .iter()
        .map(|s| BeforeAfter {
            service: s.clone(),
            before: period(state, s, since, split),
            after: period(state, s, split, until),
        })
        .collect::<Vec<_>>();

    let mut new: Vec<&ErrorType> = state
        .baseline
        .types
        .values()
        .map(|t| &**t)
        .filter(|t| t.first_seen >= released_at && t.first_seen < until)
        .filter(|t| t.origin == crate::baseline::Origin::Live)
        .collect();
    new.sort_by_key(|t| (t.first_seen, t.fingerprint));
    let new_types: Vec<NewType> = new
        .iter()
        .map(|t| {
            let known: Vec<&String> = t.versions.keys().filter(|v| !v.is_empty()).collect();
            NewType {
                fingerprint: t.fingerprint,
                service: t.service().to_string(),
                template: t.readable_template().into_owned(),
                first_seen: rfc3339(t.first_seen),
                last_seen: rfc3339(t.last_seen),
                count: t.series.total.range(since, until),
                versions: t.versions.iter().map(|(v, n)| (v.clone(), *n)).collect(),
                new_in_version: (known.len() == 1 && known[0] == rel).then(|| rel.to_string()),
                sample: t.samples.first().cloned(),
                status: status(t, until).to_string(),
            }
        })
        .collect();

    let buckets = Buckets::new(since, until);
    let type_line = |fp: Fingerprint| {
        state
            .baseline
            .get(fp)
            .map(|t| buckets.counts(until, |a, b| t.series.total.range(a, b)))
            .unwrap_or_default()
    };
    let service_line = |svc: &str| {
        buckets.counts(until, |a, b| {
            state
                .rates
                .get(svc)
                .map(|vs| vs.values().map(|rc| rc.timeline.range(a, b).errors).sum())
                .unwrap_or(0)
        })
    };
    let in_range = |a: &&Alert| parse_time(&a.event_time).is_some_and(|t| t >= since && t < until);
    let incidents: Vec<Incident> = state
        .release
        .alert_log
        .iter()
        .filter(in_range)
        .filter(|a| a.kind != Kind::Novel)
        .map(|a| Incident {
            kind: a.kind,
            severity: a.severity.as_str().to_string(),
            service: a.service.clone(),
            version: a.version.clone(),
            fingerprint: a.fingerprint,
            event_time: a.event_time.clone(),
            subject: a.template.clone(),
            detail: incident_detail(a),
            timeline: match a.fingerprint {
                Some(fp) => type_line(fp),
                None => service_line(&a.service),
            },
        })
        .collect();

    let mut open = Vec::new();
    for (svc, ep) in &state.release.rate_episodes {
        open.push(format!(
            "{svc}: error rate still above the {} step (since {})",
            ep.severity.as_str(),
            rfc3339(ep.start_minute * MINUTE_MS)
        ));
    }
    for n in new_types.iter().filter(|n| n.status == "occurring") {
        open.push(format!(
            "{}: new error type still occurring (last {}): {}",
            n.service, n.last_seen, n.template
        ));
    }
    let mut seen = BTreeSet::new();
    for a in state.release.alert_log.iter().filter(in_range) {
        if !matches!(a.kind, Kind::CanaryRegression | Kind::Regression) {
            continue;
        }
        let still = match a.fingerprint.and_then(|fp| state.baseline.get(fp)) {
            Some(t) => status(t, until) == "occurring",
            None => services.contains(&a.service),
        };
        if still && seen.insert((a.kind, a.service.clone(), a.template.clone())) {
            open.push(format!(
                "{}: {} not cleared: {}",
                a.service,
                a.kind.as_str().replace('_', " "),
                a.template
            ));
        }
    }

    let mut top: Vec<(u64, Fingerprint)> = Vec::new();
    let mut picked = BTreeSet::new();
    for fp in new_types
        .iter()
        .map(|n| n.fingerprint)
        .chain(incidents.iter().filter_map(|i| i.fingerprint))
    {
        if picked.insert(fp)
            && let Some(t) = state.baseline.get(fp)
        {
            top.push((t.series.total.range(split, until), fp));
        }
    }
    top.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let charts = top
        .iter()
        .take(TOP_CHARTS)
        .filter_map(|(_, fp)| state.baseline.get(*fp))
        .map(|t| Chart {
            fingerprint: t.fingerprint,
            service: t.service().to_string(),
            template: t.readable_template().into_owned(),
            start: rfc3339(since),
            bucket_minutes: buckets.width / MINUTE_MS,
            counts: type_line(t.fingerprint),
        })
        .collect();

    let versions = services
        .iter()
        .filter_map(|svc| {
            let vs = state.rates.get(svc)?;
            let mut series: Vec<VersionSeries> = vs
                .iter()
                .map(|(v, rc)| {
                    let t: Vec<Traffic> = buckets.counts_of(until, |a, b| rc.timeline.range(a, b));
                    VersionSeries {
                        version: v.clone(),
                        role: if v == rel { "release" } else { "other" }.into(),
                        lines: t.iter().map(|x| x.lines).collect(),
                        errors: t.iter().map(|x| x.errors).collect(),
                    }
                })
                .filter(|s| s.lines.iter().any(|&n| n > 0))
                .collect();
            // The release first, then the others by lines in the range.
            series.sort_by_key(|s| {
                (
                    s.role != "release",
                    std::cmp::Reverse(s.lines.iter().sum::<u64>()),
                    s.version.clone(),
                )
            });
            series.truncate(MAX_VERSIONS);
            Some(VersionTimeline {
                service: svc.clone(),
                series,
            })
        })
        .collect();

    let count = |k: Kind| incidents.iter().filter(|i| i.kind == k).count();
    let (canary, regress, surges, rates) = (
        count(Kind::CanaryRegression),
        count(Kind::Regression),
        count(Kind::Surge),
        count(Kind::ErrorRate),
    );
    let verdict = if canary + regress > 0 {
        "regressed"
    } else if !new_types.is_empty() || surges + rates > 0 {
        "attention"
    } else {
        "clean"
    };
    let summary = format!(
        "{} new error type(s) ({} only in {rel}), {canary} canary regression(s), {regress} regression(s) of resolved types, {surges} surge(s), {rates} error-rate alert(s); {} item(s) still open",
        new_types.len(),
        new_types
            .iter()
            .filter(|n| n.new_in_version.is_some())
            .count(),
        open.len()
    );
    Ok(Report {
        release: rel.to_string(),
        generated_at: rfc3339(now_ms),
        services,
        released_at: rfc3339(released_at),
        since: rfc3339(since),
        until: rfc3339(until),
        verdict: verdict.to_string(),
        summary,
        before_after,
        not_measured: vec![
            "latency".into(),
            "request throughput (log lines are not requests)".into(),
            "saturation (CPU, memory, queues)".into(),
            "business metrics (conversion, revenue)".into(),
        ],
        new_types,
        incidents,
        bucket_minutes: buckets.width / MINUTE_MS,
        open,
        charts,
        versions,
    })
}

fn incident_detail(a: &Alert) -> String {
    if let Some(c) = &a.release.canary {
        return format!(
            "{} per 1,000 lines in {} vs {} in {} ({}, p = {:.1e})",
            c.canary.per_1000,
            c.canary.version,
            c.stable.per_1000,
            c.stable.version,
            c.ratio
                .map_or("only in the canary".into(), |r| format!("{r:.2}×")),
            c.p_value
        );
    }
    if let Some(r) = &a.release.error_rate {
        return format!(
            "{:.2} % of {} lines over {} min",
            r.rate * 100.0,
            r.lines,
            r.window_s / 60
        );
    }
    if let Some(w) = &a.window {
        return format!(
            "{} in {} min, {:.1}× the usual rate",
            w.count,
            w.length_s / 60,
            w.ratio
        );
    }
    if let Some(r) = &a.release.resolved {
        return format!(
            "resolved at {}{}, back in {}",
            r.resolved_at,
            r.in_version
                .as_ref()
                .map(|v| format!(" (fix in {v})"))
                .unwrap_or_default(),
            a.version.as_deref().unwrap_or("an unknown version")
        );
    }
    String::new()
}

fn md_cell(s: &str) -> String {
    let one_line: String = s.lines().next().unwrap_or("").chars().take(120).collect();
    one_line.replace('|', "\\|")
}

fn sparkline(v: &[u64]) -> String {
    sparkline_to(v, v.iter().copied().max().unwrap_or(0))
}

/// A sparkline on a given scale, so that rows drawn to one `max` compare.
fn sparkline_to(v: &[u64], max: u64) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    v.iter()
        .map(|&n| {
            if n == 0 {
                ' '
            } else {
                BARS[((n * 7).div_ceil(max.max(1))) as usize]
            }
        })
        .collect()
}

/// Markdown, for chat and tickets.
pub fn markdown(r: &Report) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "# Release {}: {}\n", r.release, r.verdict);
    let _ = writeln!(o, "_Generated at {}_\n", r.generated_at);
    let _ = writeln!(
        o,
        "Released at {} to {}. This report covers {} to {}; \"before\" ends at the release.\n",
        r.released_at,
        r.services.join(", "),
        r.since,
        r.until
    );
    let _ = writeln!(o, "**Verdict: {}.** {}.\n", r.verdict, r.summary);
    let _ = writeln!(o, "## Before and after\n");
    let _ = writeln!(
        o,
        "| service | period | minutes | lines | error lines | error rate | error lines / min | distinct error types |"
    );
    let _ = writeln!(o, "|---|---|---:|---:|---:|---:|---:|---:|");
    for b in &r.before_after {
        for (name, p) in [("before", &b.before), ("after", &b.after)] {
            let _ = writeln!(
                o,
                "| {} | {name} | {} | {} | {} | {:.2} % | {:.2} | {} |",
                b.service,
                p.minutes,
                p.lines,
                p.error_lines,
                p.error_rate_pct,
                p.error_lines_per_min,
                p.distinct_error_types
            );
        }
    }
    let _ = writeln!(
        o,
        "\nNot measured by faultline, so not shown: {}.\n",
        r.not_measured.join(", ")
    );
    let _ = writeln!(o, "## New error types\n");
    if r.new_types.is_empty() {
        let _ = writeln!(o, "None.\n");
    } else {
        let _ = writeln!(
            o,
            "| first seen | service | versions | count | status | fingerprint | template | sample |"
        );
        let _ = writeln!(o, "|---|---|---|---:|---|---|---|---|");
        for n in &r.new_types {
            let versions = n
                .versions
                .iter()
                .map(|(v, c)| format!("{v}: {c}"))
                .collect::<Vec<_>>()
                .join(", ");
            let _ = writeln!(
                o,
                "| {} | {} | {}{} | {} | {} | `{}` | {} | {} |",
                n.first_seen,
                n.service,
                versions,
                if n.new_in_version.is_some() {
                    " (new in this release)"
                } else {
                    ""
                },
                n.count,
                n.status,
                n.fingerprint,
                md_cell(&n.template),
                md_cell(n.sample.as_deref().unwrap_or(""))
            );
        }
        let _ = writeln!(o);
    }
    let _ = writeln!(o, "## Surges, regressions and error rates\n");
    if r.incidents.is_empty() {
        let _ = writeln!(o, "None.\n");
    } else {
        let _ = writeln!(
            o,
            "| time | kind | severity | service | version | subject | detail | timeline |"
        );
        let _ = writeln!(o, "|---|---|---|---|---|---|---|---|");
        for i in &r.incidents {
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} | {} | {} | {} | `{}` |",
                i.event_time,
                i.kind.as_str(),
                i.severity,
                i.service,
                i.version.as_deref().unwrap_or(""),
                md_cell(&i.subject),
                md_cell(&i.detail),
                sparkline(&i.timeline)
            );
        }
        let _ = writeln!(
            o,
            "\nTimelines: error lines per {} min from {} to {}.\n",
            r.bucket_minutes, r.since, r.until
        );
    }
    if r.versions.iter().any(|v| v.series.len() > 1) {
        let _ = writeln!(o, "## Canary vs stable\n");
        let _ = writeln!(
            o,
            "| service | version | lines | error lines per 1,000 lines, per {} min |\n|---|---|---|---|",
            r.bucket_minutes
        );
        for v in &r.versions {
            // Per mille as sparklines on one scale per service, so the
            // versions' rows compare; buckets without lines stay blank.
            let rates: Vec<Vec<u64>> = v
                .series
                .iter()
                .map(|s| {
                    s.lines
                        .iter()
                        .zip(&s.errors)
                        .map(|(&l, &e)| if l == 0 { 0 } else { (e * 1000).div_ceil(l) })
                        .collect()
                })
                .collect();
            let max = rates.iter().flatten().copied().max().unwrap_or(0);
            for (s, rate) in v.series.iter().zip(&rates) {
                let _ = writeln!(
                    o,
                    "| {} | {} ({}) | {} | `{}` |",
                    v.service,
                    md_cell(&s.version),
                    s.role,
                    s.lines.iter().sum::<u64>(),
                    sparkline_to(rate, max)
                );
            }
        }
        let _ = writeln!(o);
    }
    let _ = writeln!(o, "## Still open\n");
    if r.open.is_empty() {
        let _ = writeln!(o, "Nothing.");
    } else {
        for s in &r.open {
            let _ = writeln!(o, "- {}", md_cell(s));
        }
    }
    o
}

/// The report's time frame for charts: its range, the bucket width, and
/// the release marker.
struct Frame {
    since: EventTime,
    until: EventTime,
    bucket: EventTime,
    release: Marker,
}

impl Frame {
    fn of(r: &Report) -> Option<Frame> {
        let since = parse_time(&r.since)?;
        let until = parse_time(&r.until)?;
        Some(Frame {
            since,
            until,
            bucket: r.bucket_minutes.max(1) * MINUTE_MS,
            release: Marker {
                at: parse_time(&r.released_at)?,
                label: format!("release {}", r.release),
            },
        })
    }

    /// Bucket values placed at their buckets' middles (the last bucket may
    /// be cut short by `until`).
    fn points(&self, values: impl Iterator<Item = Option<f64>>) -> Vec<(EventTime, Option<f64>)> {
        values
            .enumerate()
            .map(|(i, v)| {
                let a = self.since + i as i64 * self.bucket;
                (a + ((a + self.bucket).min(self.until) - a) / 2, v)
            })
            .collect()
    }

    fn chart(&self, title: String, y_label: String, series: Vec<Series>) -> TimeChart {
        TimeChart {
            title,
            y_label,
            from: self.since,
            to: self.until,
            series,
            markers: vec![self.release.clone()],
        }
    }
}

/// The canary-vs-stable chart of one service: error lines per 1,000
/// lines of each version, a gap where a version had no lines.
fn version_chart(f: &Frame, v: &VersionTimeline) -> TimeChart {
    let series = v
        .series
        .iter()
        .map(|s| Series {
            name: format!("{} ({})", s.version, s.role),
            points: f.points(
                s.lines
                    .iter()
                    .zip(&s.errors)
                    .map(|(&l, &e)| (l > 0).then(|| e as f64 * 1000.0 / l as f64)),
            ),
        })
        .collect();
    f.chart(
        format!("{}: error lines per 1,000 lines by version", v.service),
        "error lines per 1,000 lines".into(),
        series,
    )
}

/// HTML, self-contained (inline CSS and SVG, no external assets).
pub fn html(r: &Report) -> String {
    let mut o = String::new();
    let _ = write!(
        o,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Release {}</title><style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:3px 6px;text-align:left}}code{{font-size:90%}}figure.chart{{margin:1em 0;break-inside:avoid}}figure.chart svg{{max-width:100%;height:auto}}@media print{{body{{margin:0}}h2{{break-after:avoid}}}}</style></head><body>",
        esc(&r.release)
    );
    let _ = write!(
        o,
        "<h1>Release {}: {}</h1><p><em>Generated at {}</em></p><p>Released at {} to {}. Covers {} to {}.</p><p><strong>Verdict: {}.</strong> {}.</p>",
        esc(&r.release),
        esc(&r.verdict),
        esc(&r.generated_at),
        esc(&r.released_at),
        esc(&r.services.join(", ")),
        esc(&r.since),
        esc(&r.until),
        esc(&r.verdict),
        esc(&r.summary)
    );
    let _ = write!(
        o,
        "<h2>Before and after</h2><table><tr><th>service</th><th>period</th><th>minutes</th><th>lines</th><th>error lines</th><th>error rate</th><th>error lines / min</th><th>distinct error types</th></tr>"
    );
    for b in &r.before_after {
        for (name, p) in [("before", &b.before), ("after", &b.after)] {
            let _ = write!(
                o,
                "<tr><td>{}</td><td>{name}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.2} %</td><td>{:.2}</td><td>{}</td></tr>",
                esc(&b.service),
                p.minutes,
                p.lines,
                p.error_lines,
                p.error_rate_pct,
                p.error_lines_per_min,
                p.distinct_error_types
            );
        }
    }
    let _ = write!(
        o,
        "</table><p>Not measured by faultline, so not shown: {}.</p><h2>New error types</h2><table><tr><th>first seen</th><th>service</th><th>versions</th><th>count</th><th>status</th><th>template</th><th>sample</th></tr>",
        esc(&r.not_measured.join(", "))
    );
    for n in &r.new_types {
        let versions = n
            .versions
            .iter()
            .map(|(v, c)| format!("{v}: {c}"))
            .collect::<Vec<_>>()
            .join(", ");
        let _ = write!(
            o,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td><td><code>{}</code></td></tr>",
            esc(&n.first_seen),
            esc(&n.service),
            esc(&versions),
            n.count,
            esc(&n.status),
            esc(&n.template),
            esc(n.sample.as_deref().unwrap_or(""))
        );
    }
    let _ = write!(
        o,
        "</table><h2>Surges, regressions and error rates</h2><table><tr><th>time</th><th>kind</th><th>severity</th><th>service</th><th>version</th><th>subject</th><th>detail</th></tr>"
    );
    for i in &r.incidents {
        let _ = write!(
            o,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&i.event_time),
            i.kind.as_str(),
            esc(&i.severity),
            esc(&i.service),
            esc(i.version.as_deref().unwrap_or("")),
            esc(&i.subject),
            esc(&i.detail)
        );
    }
    let frame = Frame::of(r);
    let _ = write!(o, "</table>");
    if let Some(f) = &frame
        && r.versions.iter().any(|v| !v.series.is_empty())
    {
        let _ = write!(
            o,
            "<h2>Canary vs stable</h2><p>Error lines per 1,000 lines of each version, per {} min; the dashed vertical line is the release.</p>",
            r.bucket_minutes
        );
        for v in r.versions.iter().filter(|v| !v.series.is_empty()) {
            let _ = write!(
                o,
                "<figure class=\"chart\"><figcaption>{}</figcaption>{}</figure>",
                esc(&v.service),
                version_chart(f, v).svg()
            );
        }
    }
    let _ = write!(o, "<h2>Top error types</h2>");
    for c in &r.charts {
        let caption = format!("{} {}", c.service, c.template);
        let chart = frame.as_ref().map(|f| {
            let unit = format!("error lines per {} min", c.bucket_minutes);
            let series = vec![Series {
                name: unit.clone(),
                points: f.points(c.counts.iter().map(|&n| Some(n as f64))),
            }];
            f.chart(caption, unit, series).svg()
        });
        let _ = write!(
            o,
            "<figure class=\"chart\"><figcaption>{} <code>{}</code>: error lines per {} min from {}</figcaption>{}</figure>",
            esc(&c.service),
            esc(&c.template),
            c.bucket_minutes,
            esc(&c.start),
            chart.unwrap_or_default()
        );
    }
    let _ = write!(o, "<h2>Still open</h2><ul>");
    for s in &r.open {
        let _ = write!(o, "<li>{}</li>", esc(s));
    }
    let _ = writeln!(o, "</ul></body></html>");
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparklines_scale_to_the_largest_bucket_and_leave_empty_ones_blank() {
        assert_eq!(sparkline(&[0, 1, 7]), " ▂█");
    }

    #[test]
    fn html_escapes_templates() {
        assert_eq!(esc("<a href=\"x\">&"), "&lt;a href=&quot;x&quot;&gt;&amp;");
    }
}
