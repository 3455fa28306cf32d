//! Latency and traffic before and after a release, for `faultline report`.
//!
//! Read from the state alone: the minute series while they reach back
//! (3 h), otherwise whole hours (14 days of request counts and hourly
//! sketches), so `report --after 7d` needs no logs. Besides the
//! before/after table, per bucket of the report: each version's p50, p95,
//! p99 and requests per minute, drawn as charts (HTML, with
//! `release::chart`) and sparklines (Markdown). Latency quantiles are
//! those of the merged sketches (within `signals.relative_accuracy` of the
//! true sample quantiles); traffic is requests where the service logs
//! request fields, otherwise lines.

use std::fmt::Write as _;

use serde::Serialize;

use super::{Signals, percentiles};
use crate::release::chart::{Marker, Series, TimeChart};
use crate::series::{MINUTE_MS, Rates};

/// One service's signals over one period.
#[derive(Clone, Debug, Serialize)]
pub struct SignalPeriod {
    /// `requests` or `lines`.
    pub measure: String,
    pub count: u64,
    pub per_minute: f64,
    /// Requests with a duration.
    pub timed: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p50_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p95_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p99_ms: Option<f64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ServiceSignals {
    pub service: String,
    pub before: SignalPeriod,
    pub after: SignalPeriod,
    /// The release version alone over the after period (a canary's view).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub release_version: Option<SignalPeriod>,
}

/// The signals section of a report.
#[derive(Clone, Debug, Serialize)]
pub struct SignalsReport {
    /// Relative accuracy of the quantiles.
    pub relative_accuracy: f64,
    pub services: Vec<ServiceSignals>,
    /// Per service, each version's latency and traffic per bucket (the
    /// report's `bucket_minutes` from its `since`): what the charts draw.
    pub timelines: Vec<SignalTimeline>,
    /// The report's frame for the charts: since, release, until, bucket
    /// width (ms).
    #[serde(skip)]
    frame: (i64, i64, i64, i64),
}

/// One service's versions over the report's buckets.
#[derive(Clone, Debug, Serialize)]
pub struct SignalTimeline {
    pub service: String,
    /// `requests` or `lines` (as in the table).
    pub measure: String,
    pub series: Vec<SignalSeries>,
}

/// One version per bucket; `None` where it had no requests (no timed ones
/// for the quantiles).
#[derive(Clone, Debug, Serialize)]
pub struct SignalSeries {
    pub version: String,
    /// `release` for the reported version, `other` for the rest.
    pub role: String,
    pub per_minute: Vec<Option<f64>>,
    pub p50_ms: Vec<Option<f64>>,
    pub p95_ms: Vec<Option<f64>>,
    pub p99_ms: Vec<Option<f64>>,
}

/// Versions drawn per service: the release and the busiest others (the
/// latency chart draws the first two, three quantiles each).
const CHART_VERSIONS: usize = 3;
const LATENCY_VERSIONS: usize = 2;

/// One service's signals (one version's with `version`) over event times
/// `[from, to)`: traffic as requests where the service logs request
/// fields, else lines; quantiles of the merged sketches.
pub fn period(
    signals: &Signals,
    rates: &Rates,
    svc: &str,
    version: Option<&str>,
    (from, to): (i64, i64),
) -> SignalPeriod {
    let minutes = ((to - from) as f64 / MINUTE_MS as f64).max(1.0 / 60.0);
    let (measure, count) = if signals.services.contains_key(svc) {
        let requests = match version {
            Some(v) => signals.version_requests(svc, v, from, to),
            None => signals.requests(svc, from, to),
        };
        ("requests", requests)
    } else {
        let lines = rates.get(svc).map_or(0, |m| {
            m.iter()
                .filter(|(v, _)| version.is_none_or(|x| x == v.as_str()))
                .map(|(_, r)| r.timeline.range(from, to).lines)
                .sum()
        });
        ("lines", lines)
    };
    let sketch = match version {
        Some(v) => signals.latency(svc, v, from, to),
        None => signals.service_latency(svc, from, to),
    };
    let q = sketch.as_ref().map(percentiles);
    let r3 = crate::release::round3;
    SignalPeriod {
        measure: measure.into(),
        count,
        per_minute: r3(count as f64 / minutes),
        timed: sketch.as_ref().map_or(0, |s| s.count()),
        p50_ms: q.map(|q| r3(q.0)),
        p95_ms: q.map(|q| r3(q.1)),
        p99_ms: q.map(|q| r3(q.2)),
    }
}

/// Signals of `services` over `[since, released)` and `[released, until)`,
/// and per bucket of `bucket` ms from `since` for the charts.
pub fn build(
    signals: &Signals,
    rates: &Rates,
    services: &[String],
    release: &str,
    (since, released, until, bucket): (i64, i64, i64, i64),
    relative_accuracy: f64,
) -> SignalsReport {
    let period = |svc: &str, version: Option<&str>, from: i64, to: i64| {
        period(signals, rates, svc, version, (from, to))
    };
    let rows: Vec<ServiceSignals> = services
        .iter()
        .map(|svc| {
            let several = rates.get(svc).is_some_and(|m| m.len() > 1);
            ServiceSignals {
                service: svc.clone(),
                before: period(svc, None, since, released),
                after: period(svc, None, released, until),
                release_version: several.then(|| period(svc, Some(release), released, until)),
            }
        })
        .collect();
    let bucket = bucket.max(MINUTE_MS);
    let timelines = services
        .iter()
        .filter_map(|svc| timeline(signals, rates, svc, release, (since, until, bucket)))
        .collect();
    SignalsReport {
        relative_accuracy,
        services: rows,
        timelines,
        frame: (since, released, until, bucket),
    }
}

/// Minutes a count over `[from, to)` stands for: ranges older than the
/// minute series (3 h before the service's newest minute) are counted by
/// whole hours (`Timeline::range`), so their edges round out to the hour.
fn covered(from: i64, to: i64, newest_minute: Option<i64>) -> f64 {
    let by_minute =
        newest_minute.is_none_or(|n| from.div_euclid(MINUTE_MS) > n - crate::series::MINUTES_KEPT);
    let (a, b) = if by_minute {
        (from, to)
    } else {
        let h = crate::series::HOUR_MS;
        (from.div_euclid(h) * h, (to - 1).div_euclid(h) * h + h)
    };
    ((b - a) as f64 / MINUTE_MS as f64).max(1.0)
}

fn timeline(
    signals: &Signals,
    rates: &Rates,
    svc: &str,
    release: &str,
    (since, until, bucket): (i64, i64, i64),
) -> Option<SignalTimeline> {
    let r3 = crate::release::round3;
    let versions = rates.get(svc)?;
    let logs_requests = signals.services.contains_key(svc);
    let newest = versions
        .values()
        .filter_map(|r| r.timeline.minutes.iter().last().map(|p| p.0))
        .max();
    let mut edges = Vec::new();
    let mut t = since;
    while t < until {
        edges.push((t, (t + bucket).min(until)));
        t += bucket;
    }
    let mut series: Vec<(u64, SignalSeries)> = versions
        .iter()
        .map(|(v, rc)| {
            let mut total = 0;
            let mut s = SignalSeries {
                version: v.clone(),
                role: if v == release { "release" } else { "other" }.into(),
                per_minute: Vec::new(),
                p50_ms: Vec::new(),
                p95_ms: Vec::new(),
                p99_ms: Vec::new(),
            };
            for &(a, b) in &edges {
                let n = if logs_requests {
                    signals.version_requests(svc, v, a, b)
                } else {
                    rc.timeline.range(a, b).lines
                };
                total += n;
                s.per_minute
                    .push((n > 0).then(|| r3(n as f64 / covered(a, b, newest))));
                let q = signals.latency(svc, v, a, b).map(|k| percentiles(&k));
                s.p50_ms.push(q.map(|q| r3(q.0)));
                s.p95_ms.push(q.map(|q| r3(q.1)));
                s.p99_ms.push(q.map(|q| r3(q.2)));
            }
            (total, s)
        })
        .filter(|(n, _)| *n > 0)
        .collect();
    series.sort_by(|(na, a), (nb, b)| {
        (a.role != "release", std::cmp::Reverse(*na), &a.version).cmp(&(
            b.role != "release",
            std::cmp::Reverse(*nb),
            &b.version,
        ))
    });
    series.truncate(CHART_VERSIONS);
    (!series.is_empty()).then(|| SignalTimeline {
        service: svc.to_string(),
        measure: if logs_requests { "requests" } else { "lines" }.into(),
        series: series.into_iter().map(|(_, s)| s).collect(),
    })
}

/// A sparkline of optional values on a given scale (blank where `None`).
fn spark(v: &[Option<f64>], max: f64) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    v.iter()
        .map(|x| match x {
            Some(x) if *x > 0.0 && max > 0.0 => BARS[((x / max * 7.0).ceil() as usize).min(7)],
            Some(_) => BARS[0],
            None => ' ',
        })
        .collect()
}

fn max_of<'a>(v: impl Iterator<Item = &'a Vec<Option<f64>>>) -> f64 {
    v.flatten().flatten().copied().fold(0.0, f64::max)
}

/// The charts' rows as Markdown sparklines, one scale per service and
/// measure so the versions compare.
fn markdown_timelines(r: &SignalsReport) -> String {
    let mut o = String::new();
    if r.timelines.is_empty() {
        return o;
    }
    let bucket = r.frame.3 / MINUTE_MS;
    let _ = writeln!(
        o,
        "| service | version | p95 ms per {bucket} min | per minute, per {bucket} min |\n|---|---|---|---|"
    );
    for t in &r.timelines {
        let p95 = max_of(t.series.iter().map(|s| &s.p95_ms));
        let rate = max_of(t.series.iter().map(|s| &s.per_minute));
        for s in &t.series {
            let latency = if s.p95_ms.iter().all(Option::is_none) {
                "no durations".to_string()
            } else {
                format!("`{}`", spark(&s.p95_ms, p95))
            };
            let _ = writeln!(
                o,
                "| {} | {} ({}) | {latency} | `{}` {} |",
                t.service,
                s.version.replace('|', "\\|"),
                s.role,
                spark(&s.per_minute, rate),
                t.measure
            );
        }
    }
    let _ = writeln!(
        o,
        "\nSparklines on one scale per service and column, so the versions compare; blank where a version had no requests (or no timed ones).\n"
    );
    o
}

/// The latency and the traffic chart of one service.
fn charts(r: &SignalsReport, t: &SignalTimeline, release: &str) -> (Option<TimeChart>, TimeChart) {
    let (since, released, until, bucket) = r.frame;
    let points = |v: &[Option<f64>]| -> Vec<(i64, Option<f64>)> {
        v.iter()
            .enumerate()
            .map(|(i, x)| {
                let a = since + i as i64 * bucket;
                (a + ((a + bucket).min(until) - a) / 2, *x)
            })
            .collect()
    };
    let marker = vec![Marker {
        at: released,
        label: format!("release {release}"),
    }];
    let mut lat = Vec::new();
    for s in t
        .series
        .iter()
        .filter(|s| s.p95_ms.iter().any(Option::is_some))
        .take(LATENCY_VERSIONS)
    {
        for (q, v) in [("p50", &s.p50_ms), ("p95", &s.p95_ms), ("p99", &s.p99_ms)] {
            lat.push(Series {
                // Short names: six of them fit the legend's one row.
                name: format!("{} {q}", s.version),
                points: points(v),
            });
        }
    }
    let latency = (!lat.is_empty()).then(|| TimeChart {
        title: format!("{}: latency by version", t.service),
        y_label: "latency (ms)".into(),
        from: since,
        to: until,
        series: lat,
        markers: marker.clone(),
    });
    let unit = if t.measure == "requests" {
        "requests per minute"
    } else {
        "lines per minute"
    };
    let traffic = TimeChart {
        title: format!("{}: {unit} by version", t.service),
        y_label: unit.into(),
        from: since,
        to: until,
        series: t
            .series
            .iter()
            .map(|s| Series {
                name: format!("{} ({})", s.version, s.role),
                points: points(&s.per_minute),
            })
            .collect(),
        markers: marker,
    };
    (latency, traffic)
}

fn ms(v: Option<f64>) -> String {
    v.map_or("–".into(), |v| format!("{v:.1}"))
}

fn row(label: &str, p: &SignalPeriod) -> [String; 7] {
    [
        label.to_string(),
        format!("{} {}", p.count, p.measure),
        format!("{:.1}", p.per_minute),
        p.timed.to_string(),
        ms(p.p50_ms),
        ms(p.p95_ms),
        ms(p.p99_ms),
    ]
}

fn rows(r: &SignalsReport, release: &str) -> Vec<(String, [String; 7])> {
    let mut out = Vec::new();
    for s in &r.services {
        out.push((s.service.clone(), row("before", &s.before)));
        out.push((s.service.clone(), row("after", &s.after)));
        if let Some(v) = &s.release_version {
            out.push((s.service.clone(), row(&format!("after, {release} only"), v)));
        }
    }
    out
}

const HEAD: [&str; 8] = [
    "service", "period", "traffic", "per min", "timed", "p50 ms", "p95 ms", "p99 ms",
];

/// The section as Markdown.
pub fn markdown(r: &SignalsReport, release: &str) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "## Latency and traffic\n");
    let _ = writeln!(o, "| {} |", HEAD.join(" | "));
    let _ = writeln!(o, "|{}", "---|".repeat(HEAD.len()));
    for (svc, cells) in rows(r, release) {
        let _ = writeln!(o, "| {svc} | {} |", cells.join(" | "));
    }
    let _ = writeln!(
        o,
        "\nQuantiles from merged DDSketches (within {:.0} % of the true values); \
         traffic is requests where a service logs request fields, else lines \
         (a release that logs less then looks like less traffic).\n",
        r.relative_accuracy * 100.0
    );
    o.push_str(&markdown_timelines(r));
    o
}

/// The section as HTML.
pub fn html(r: &SignalsReport, release: &str) -> String {
    let esc = crate::release::chart::esc;
    let mut o = String::from("<h2>Latency and traffic</h2><table><tr>");
    for h in HEAD {
        let _ = write!(o, "<th>{h}</th>");
    }
    o.push_str("</tr>");
    for (svc, cells) in rows(r, release) {
        let _ = write!(o, "<tr><td>{}</td>", esc(&svc));
        for c in cells {
            let _ = write!(o, "<td>{}</td>", esc(&c));
        }
        o.push_str("</tr>");
    }
    let _ = write!(
        o,
        "</table><p>Quantiles from merged DDSketches (within {:.0} % of the true values); \
         traffic is requests where a service logs request fields, else lines.</p>",
        r.relative_accuracy * 100.0
    );
    if !r.timelines.is_empty() {
        let _ = write!(
            o,
            "<p>Per {} min: p50, p95 and p99 of the release and the busiest other version, and each version's traffic per minute; the dashed vertical line is the release.</p>",
            r.frame.3 / MINUTE_MS
        );
    }
    for t in &r.timelines {
        let (latency, traffic) = charts(r, t, release);
        if let Some(l) = latency {
            let versions: Vec<String> = t
                .series
                .iter()
                .filter(|s| s.p95_ms.iter().any(Option::is_some))
                .take(LATENCY_VERSIONS)
                .map(|s| format!("{} ({})", s.version, s.role))
                .collect();
            let _ = write!(
                o,
                "<figure class=\"chart signals\"><figcaption>{}: latency, {}</figcaption>{}</figure>",
                crate::release::chart::esc(&t.service),
                crate::release::chart::esc(&versions.join(" vs ")),
                l.svg()
            );
        }
        let _ = write!(
            o,
            "<figure class=\"chart signals\"><figcaption>{}: traffic</figcaption>{}</figure>",
            crate::release::chart::esc(&t.service),
            traffic.svg()
        );
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::RequestMeta;

    #[test]
    fn before_and_after_show_the_release_versions_latency() {
        let mut s = Signals::default();
        let mut rates = Rates::new();
        for i in 0..600i64 {
            let t = i * 1_000;
            let (v, ms) = if i < 300 { ("1", 10.0) } else { ("2", 20.0) };
            let req = RequestMeta {
                duration_ms: Some(ms),
                request: true,
            };
            s.observe("api", v, t, &req, 0.01);
            rates
                .entry("api".into())
                .or_default()
                .entry(v.into())
                .or_default()
                .count(Some(t), 1, 0);
        }
        let r = build(
            &s,
            &rates,
            &["api".to_string()],
            "2",
            (0, 300_000, 600_000, 120_000),
            0.01,
        );
        let a = &r.services[0];
        assert_eq!(a.before.count, 300);
        assert!((a.before.p95_ms.unwrap() - 10.0).abs() < 0.2);
        assert!((a.after.p95_ms.unwrap() - 20.0).abs() < 0.4);
        assert_eq!(a.release_version.as_ref().unwrap().count, 300);
        // Two-minute buckets: 1 alone in the first half, 2 in the second.
        let t = &r.timelines[0];
        assert_eq!(t.series[0].version, "2", "the release first");
        assert_eq!(t.series[0].per_minute[..2], [None, None]);
        assert_eq!(t.series[0].per_minute[3], Some(60.0));
        assert!((t.series[0].p95_ms[4].unwrap() - 20.0).abs() < 0.4);
        assert_eq!(t.series[1].per_minute[0], Some(60.0));
        assert_eq!(t.series[1].p95_ms[3], None);
        let html = html(&r, "2");
        for part in [
            "data-name=\"2 p95\"",
            "data-name=\"1 p99\"",
            "latency, 2 (release) vs 1 (other)",
            "requests per minute</text>",
            ">release 2</text>",
        ] {
            assert!(html.contains(part), "{part} in {html}");
        }
        let md = markdown(&r, "2");
        assert!(
            md.contains("| api | 2 (release) | `  ███` | `  ▅██` requests |"),
            "{md}"
        );
        assert!(
            md.contains("| api | before | 300 requests | 60.0 |"),
            "{md}"
        );
    }
}
