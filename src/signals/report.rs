//! Latency and traffic before and after a release, for `faultline report`.
//!
//! Read from the state alone: the minute series while they reach back
//! (3 h), otherwise whole hours (14 days of request counts and hourly
//! sketches), so `report --after 7d` needs no logs. Latency quantiles are
//! those of the merged sketches (within `signals.relative_accuracy` of the
//! true sample quantiles); traffic is requests where the service logs
//! request fields, otherwise lines.

use std::fmt::Write as _;

use serde::Serialize;

use super::{Signals, percentiles};
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
}

/// Signals of `services` over `[since, released)` and `[released, until)`.
pub fn build(
    signals: &Signals,
    rates: &Rates,
    services: &[String],
    release: &str,
    (since, released, until): (i64, i64, i64),
    relative_accuracy: f64,
) -> SignalsReport {
    let period = |svc: &str, version: Option<&str>, from: i64, to: i64| {
        let minutes = ((to - from) as f64 / MINUTE_MS as f64).max(1.0 / 60.0);
        let requests = match version {
            Some(v) => signals.version_requests(svc, v, from, to),
            None => signals.requests(svc, from, to),
        };
        let logs_requests = signals.services.contains_key(svc);
        let (measure, count) = if logs_requests {
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
    };
    let services = services
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
    SignalsReport {
        relative_accuracy,
        services,
    }
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
    o
}

/// The section as HTML.
pub fn html(r: &SignalsReport, release: &str) -> String {
    let esc = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
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
            (0, 300_000, 600_000),
            0.01,
        );
        let a = &r.services[0];
        assert_eq!(a.before.count, 300);
        assert!((a.before.p95_ms.unwrap() - 10.0).abs() < 0.2);
        assert!((a.after.p95_ms.unwrap() - 20.0).abs() < 0.4);
        assert_eq!(a.release_version.as_ref().unwrap().count, 300);
        let md = markdown(&r, "2");
        assert!(
            md.contains("| api | before | 300 requests | 60.0 |"),
            "{md}"
        );
    }
}
