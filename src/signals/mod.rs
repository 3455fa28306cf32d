//! Latency and traffic from logs, per service × version: the release
//! signals besides errors.
//!
//! Every line that logs a request (a request field, or a duration: see
//! `parse::duration`) counts as a request in its minute and hour, and its
//! duration goes into that minute's and hour's quantile sketch
//! ([`latency::Sketch`]). Lines are already counted per minute and hour
//! in the state's rates; traffic is read as requests where a service logs
//! request fields, and as lines where it logs none.
//!
//! Judgements run when event time enters a new minute, on closed minutes
//! only (like the error rate and the canary): see [`detect`].
//!
//! Bounded: at most [`crate::series::MAX_SERVICES`] services and
//! [`crate::series::MAX_VERSIONS`] versions per service (beyond them one
//! `(other)` entry), 180 minute and 336 hour points per series, and a
//! sketch is at most 8 KiB ([`latency::MAX_BINS`] bins).

pub mod detect;
pub mod latency;
pub mod report;
pub mod rollout;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::record::{EventTime, RequestMeta};
use crate::series::{
    HOUR_MS, HOURS_KEPT, MAX_SERVICES, MAX_VERSIONS, MINUTE_MS, MINUTES_KEPT, Timeline, capped,
};
use latency::SketchSeries;

/// Requests and their durations for one service × version.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct VersionSignals {
    /// Request-like lines per minute and hour.
    pub requests: Timeline<u64>,
    /// Timed requests' durations, per minute.
    pub minutes: SketchSeries,
    /// The same per hour (reports over days, from the state alone).
    pub hours: SketchSeries,
}

/// The signals part of the state.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Signals {
    /// service → version → series (version `""`: records without one).
    pub services: BTreeMap<String, BTreeMap<String, VersionSignals>>,
    /// What the judgements remember between minutes.
    #[serde(default)]
    pub watch: detect::Watch,
}

impl Signals {
    /// Counts one line's request at `time`. Linear in nothing: two map
    /// lookups and, for a timed request, two sketch insertions.
    pub fn observe(
        &mut self,
        service: &str,
        version: &str,
        time: EventTime,
        req: &RequestMeta,
        alpha: f64,
    ) {
        if !req.request {
            return;
        }
        let services = &mut self.services;
        let service = capped(
            service,
            services.contains_key(service),
            services.len(),
            MAX_SERVICES,
        );
        let versions = match services.get_mut(service) {
            Some(v) => v,
            None => services.entry(service.to_string()).or_default(),
        };
        let version = capped(
            version,
            versions.contains_key(version),
            versions.len(),
            MAX_VERSIONS,
        );
        let vs = match versions.get_mut(version) {
            Some(v) => v,
            None => versions.entry(version.to_string()).or_default(),
        };
        vs.requests.add(time, 1);
        if let Some(ms) = req.duration_ms {
            vs.minutes
                .add(time.div_euclid(MINUTE_MS), ms, MINUTES_KEPT, alpha);
            vs.hours
                .add(time.div_euclid(HOUR_MS), ms, HOURS_KEPT, alpha);
        }
    }

    /// The merged sketch of `service`/`version` over event times
    /// `[from, to)`: by minute when the minutes reach back that far, else by
    /// the whole hours the range touches.
    pub fn latency(
        &self,
        service: &str,
        version: &str,
        from: EventTime,
        to: EventTime,
    ) -> Option<latency::Sketch> {
        let vs = self.services.get(service)?.get(version)?;
        merged_range(vs, from, to)
    }

    /// The merged sketch over every version of `service`.
    pub fn service_latency(
        &self,
        service: &str,
        from: EventTime,
        to: EventTime,
    ) -> Option<latency::Sketch> {
        let mut out: Option<latency::Sketch> = None;
        for vs in self.services.get(service)?.values() {
            if let Some(s) = merged_range(vs, from, to) {
                match &mut out {
                    Some(o) => o.merge(&s),
                    None => out = Some(s),
                }
            }
        }
        out
    }

    /// Requests of `service` (all versions) over `[from, to)`.
    pub fn requests(&self, service: &str, from: EventTime, to: EventTime) -> u64 {
        self.services
            .get(service)
            .map_or(0, |m| m.values().map(|v| v.requests.range(from, to)).sum())
    }

    /// Requests of one version over `[from, to)`.
    pub fn version_requests(
        &self,
        service: &str,
        version: &str,
        from: EventTime,
        to: EventTime,
    ) -> u64 {
        self.services
            .get(service)
            .and_then(|m| m.get(version))
            .map_or(0, |v| v.requests.range(from, to))
    }
}

fn merged_range(vs: &VersionSignals, from: EventTime, to: EventTime) -> Option<latency::Sketch> {
    if to <= from {
        return None;
    }
    let (fm, tm) = (from.div_euclid(MINUTE_MS), (to - 1).div_euclid(MINUTE_MS));
    let newest = vs.minutes.iter().last().map(|p| p.0);
    if newest.is_none_or(|n| fm > n - MINUTES_KEPT) {
        vs.minutes.merged(fm, tm)
    } else {
        vs.hours
            .merged(from.div_euclid(HOUR_MS), (to - 1).div_euclid(HOUR_MS))
    }
}

/// Gauges for `/metrics`: requests per minute and p50/p95/p99 (seconds)
/// per service × version over closed minutes `from..=to`; only versions
/// with requests in them (bounded by the caps above).
pub fn gauges(signals: &Signals, from: i64, to: i64) -> Vec<crate::metrics::SignalGauge> {
    let minutes = (to - from + 1).max(1) as f64;
    let mut out = Vec::new();
    for (service, versions) in &signals.services {
        for (version, vs) in versions {
            let n = vs.requests.minutes.sum(from, to);
            if n == 0 {
                continue;
            }
            let q = vs.minutes.merged(from, to).map(|s| {
                let (a, b, c) = percentiles(&s);
                [a / 1e3, b / 1e3, c / 1e3]
            });
            out.push(crate::metrics::SignalGauge {
                service: service.clone(),
                version: version.clone(),
                requests_per_minute: n as f64 / minutes,
                latency_seconds: q,
            });
        }
    }
    out
}

/// One version's signals over a window, for the control API.
#[derive(Clone, Debug, Serialize)]
pub struct VersionView {
    pub version: String,
    #[serde(flatten)]
    pub signals: report::SignalPeriod,
}

/// One service's latency and traffic over closed minutes, per version and
/// all versions together (`GET /api/v1/services/{service}/signals`).
#[derive(Clone, Debug, Serialize)]
pub struct ServiceView {
    pub service: String,
    /// RFC 3339 bounds of the window (whole closed minutes).
    pub from: String,
    pub until: String,
    pub minutes: i64,
    /// `requests` where the service logs request fields, else `lines`.
    pub measure: String,
    pub all: report::SignalPeriod,
    /// Versions with traffic in the window, busiest first.
    pub versions: Vec<VersionView>,
    /// An open `traffic_drop` or `traffic_spike` of the service.
    pub traffic_episode: Option<crate::alert::Kind>,
}

/// `service`'s signals over closed minutes `from..=to` (`None`: the service
/// is not in the state).
pub fn view(
    signals: &Signals,
    rates: &crate::series::Rates,
    service: &str,
    (from, to): (i64, i64),
) -> Option<ServiceView> {
    let versions = rates.get(service)?;
    let span = (from * MINUTE_MS, (to + 1) * MINUTE_MS);
    let all = report::period(signals, rates, service, None, span);
    let mut per_version: Vec<VersionView> = versions
        .keys()
        .map(|v| VersionView {
            version: v.clone(),
            signals: report::period(signals, rates, service, Some(v), span),
        })
        .filter(|v| v.signals.count > 0)
        .collect();
    per_version
        .sort_by(|x, y| (y.signals.count.cmp(&x.signals.count)).then(x.version.cmp(&y.version)));
    Some(ServiceView {
        service: service.to_string(),
        from: crate::alert::rfc3339(span.0),
        until: crate::alert::rfc3339(span.1),
        minutes: (to - from + 1).max(1),
        measure: all.measure.clone(),
        all,
        versions: per_version,
        traffic_episode: signals.watch.traffic.get(service).map(|e| e.kind),
    })
}

/// p50, p95, p99 of a sketch (milliseconds).
pub fn percentiles(s: &latency::Sketch) -> (f64, f64, f64) {
    let q = |p| s.quantile(p).unwrap_or(0.0);
    (q(0.5), q(0.95), q(0.99))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timed(ms: f64) -> RequestMeta {
        RequestMeta {
            duration_ms: Some(ms),
            request: true,
        }
    }

    #[test]
    fn lines_that_log_no_request_count_nothing() {
        let mut s = Signals::default();
        s.observe("api", "1", 0, &RequestMeta::default(), 0.01);
        assert!(s.services.is_empty());
    }

    #[test]
    fn requests_and_durations_are_kept_per_version_and_minute() {
        let mut s = Signals::default();
        for i in 0..120 {
            let t = i * 1_000;
            s.observe("api", "1.0", t, &timed(10.0 + i as f64), 0.01);
            s.observe("api", "2.0", t, &timed(100.0), 0.01);
            s.observe(
                "api",
                "2.0",
                t,
                &RequestMeta {
                    duration_ms: None,
                    request: true,
                },
                0.01,
            );
        }
        assert_eq!(s.requests("api", 0, 120_000), 360);
        assert_eq!(s.version_requests("api", "2.0", 0, 60_000), 120);
        let one = s.latency("api", "1.0", 0, 120_000).unwrap();
        assert_eq!(one.count(), 120);
        let p50 = one.quantile(0.5).unwrap();
        assert!((p50 - 69.5).abs() < 1.5, "{p50}");
        assert_eq!(s.service_latency("api", 0, 60_000).unwrap().count(), 120);
    }

    #[test]
    fn gauges_give_requests_per_minute_and_quantiles_in_seconds() {
        let mut s = Signals::default();
        for i in 0..300 {
            s.observe("api", "1", i * 1_000, &timed(250.0), 0.01);
        }
        let g = gauges(&s, 0, 4);
        assert_eq!(g.len(), 1);
        assert!((g[0].requests_per_minute - 60.0).abs() < 1e-9);
        let q = g[0].latency_seconds.unwrap();
        assert!((q[1] - 0.25).abs() < 0.003, "{q:?}");
        assert!(gauges(&s, 10, 14).is_empty());
    }

    #[test]
    fn ranges_older_than_the_minutes_are_read_from_the_hours() {
        let mut s = Signals::default();
        // Ten hours, one request a minute: 10 ms in the first five hours,
        // 100 ms after.
        for m in 0..600i64 {
            let ms = if m < 300 { 10.0 } else { 100.0 };
            s.observe("api", "1", m * MINUTE_MS, &timed(ms), 0.01);
        }
        let first = s.latency("api", "1", 0, 300 * MINUTE_MS).unwrap();
        assert_eq!(first.count(), 300, "five whole hours");
        assert!((first.quantile(0.95).unwrap() - 10.0).abs() < 0.2);
        assert_eq!(s.requests("api", 0, 300 * MINUTE_MS), 300);
        let recent = s
            .latency("api", "1", 590 * MINUTE_MS, 600 * MINUTE_MS)
            .unwrap();
        assert_eq!(recent.count(), 10, "by minute");
    }

    #[test]
    fn the_api_view_gives_each_versions_quantiles_and_requests_per_minute() {
        let mut s = Signals::default();
        let mut rates = crate::series::Rates::new();
        for i in 0..600i64 {
            let (v, ms) = if i % 10 == 0 {
                ("2", 50.0)
            } else {
                ("1", 10.0)
            };
            s.observe("api", v, i * 1_000, &timed(ms), 0.01);
            rates
                .entry("api".into())
                .or_default()
                .entry(v.into())
                .or_default()
                .count(Some(i * 1_000), 1, 0);
        }
        let v = view(&s, &rates, "api", (5, 9)).unwrap();
        assert_eq!((v.minutes, v.measure.as_str()), (5, "requests"));
        assert_eq!(v.all.count, 300);
        assert!((v.all.per_minute - 60.0).abs() < 1e-9);
        assert_eq!(v.versions[0].version, "1");
        let (one, two) = (&v.versions[0].signals, &v.versions[1].signals);
        assert!((one.per_minute - 54.0).abs() < 1e-9);
        assert!((two.p95_ms.unwrap() - 50.0).abs() < 1.0);
        assert!((one.p99_ms.unwrap() - 10.0).abs() < 0.2);
        assert!(view(&s, &rates, "nope", (5, 9)).is_none());
    }

    #[test]
    fn versions_beyond_the_cap_share_one_entry() {
        let mut s = Signals::default();
        for v in 0..(MAX_VERSIONS + 10) {
            s.observe("api", &v.to_string(), 0, &timed(1.0), 0.01);
        }
        assert_eq!(s.services["api"].len(), MAX_VERSIONS + 1);
    }
}
