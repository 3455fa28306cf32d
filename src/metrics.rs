//! Metrics: counters every stage bumps, read by the summary, the progress
//! bar and the Prometheus endpoint.
//!
//! Relaxed atomics: each counter is independent, and an exporter reading a
//! value a few increments stale is fine. Shared through an `Arc` so the HTTP
//! exporter can read while the pipeline writes.

pub mod delivery;
pub mod exposition;
pub mod http;

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

use crate::record::BadReason;

#[derive(Debug, Default)]
pub struct Metrics {
    pub lines: AtomicU64,
    pub records: AtomicU64,
    pub errors: AtomicU64,
    pub late: AtomicU64,
    /// Records dated far ahead of the stream's recent times (not of the
    /// clock): counted at the current event time until the stream
    /// confirms the jump (window/clock.rs).
    pub held: AtomicU64,
    pub ignored: AtomicU64,
    pub bytes: AtomicU64,
    pub alerts_novel: AtomicU64,
    pub alerts_surge: AtomicU64,
    pub alerts_storm: AtomicU64,
    pub alerts_error_rate: AtomicU64,
    pub alerts_canary_regression: AtomicU64,
    pub alerts_regression: AtomicU64,
    pub alerts_episode_end: AtomicU64,
    pub alerts_latency_regression: AtomicU64,
    pub alerts_traffic_drop: AtomicU64,
    pub alerts_traffic_spike: AtomicU64,
    pub types_tracked: AtomicU64,
    /// Learner templates evicted to stay within its memory budget, and the
    /// bytes it is charged (src/fingerprint/learn.rs).
    pub learner_evicted: AtomicU64,
    pub learner_bytes: AtomicU64,
    bad: [AtomicU64; BadReason::ALL.len()],
    /// Processing latency histogram (record read → alert decided), seconds.
    pub latency: Mutex<Histogram>,
    /// Per alert sink kind (`elasticsearch`, `kafka`, …): delivery counts.
    sinks: Mutex<BTreeMap<String, SinkCounts>>,
    /// Latency and traffic per service × version over the last closed
    /// minutes (`signals`), replaced whole each minute.
    pub signals: Mutex<Vec<SignalGauge>>,
}

/// One service × version's latency and traffic, as gauges.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SignalGauge {
    pub service: String,
    pub version: String,
    pub requests_per_minute: f64,
    /// p50, p95, p99 in seconds, when requests carried durations.
    pub latency_seconds: Option<[f64; 3]>,
}

/// What one kind of alert sink did (`/metrics`: `faultline_sink_*`).
#[derive(Debug, Default, Clone, Copy)]
struct SinkCounts {
    emitted: u64,
    failures: u64,
    waiting: Option<u64>,
}

/// One named readiness condition a component sets (the Kafka source: the
/// broker connection) and `/readyz` reads: up, or down with the reason.
#[derive(Debug, Default)]
pub struct Condition {
    down: Mutex<Option<String>>,
}

/// Down while a remote alert sink holds alerts its server has not
/// confirmed (the Elasticsearch spool): `/readyz` says so, since alerts
/// are not reaching their readers. One per process, as the sinks are
/// rebuilt after a failed batch.
pub static SINKS: Condition = Condition::new();

impl Condition {
    pub const fn new() -> Condition {
        Condition {
            down: Mutex::new(None),
        }
    }

    pub fn up(&self) {
        if let Ok(mut d) = self.down.lock() {
            *d = None;
        }
    }

    pub fn down(&self, why: impl Into<String>) {
        if let Ok(mut d) = self.down.lock() {
            *d = Some(why.into());
        }
    }

    /// `Ok` while up, else the reason it went down.
    pub fn check(&self) -> Result<(), String> {
        match self.down.lock().ok().and_then(|d| d.clone()) {
            Some(why) => Err(why),
            None => Ok(()),
        }
    }
}

/// Sets `broker` from a librdkafka statistics document: up while at least
/// one broker connection is `UP`, down when none is.
pub fn broker_readiness(stats: &serde_json::Value, broker: &Condition) {
    let Some(brokers) = stats.get("brokers").and_then(|b| b.as_object()) else {
        return;
    };
    let mut states = Vec::new();
    for b in brokers.values() {
        let state = b.get("state").and_then(|s| s.as_str()).unwrap_or("?");
        if state == "UP" {
            broker.up();
            return;
        }
        let name = b.get("name").and_then(|s| s.as_str()).unwrap_or("?");
        states.push(format!("{name} {state}"));
    }
    if !states.is_empty() {
        broker.down(format!("no broker connection ({})", states.join(", ")));
    }
}

/// A fixed-bucket histogram in Prometheus' cumulative form.
#[derive(Debug, Clone)]
pub struct Histogram {
    pub bounds: Vec<f64>,
    pub counts: Vec<u64>,
    pub sum: f64,
    pub count: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        let bounds = vec![0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0];
        Histogram {
            counts: vec![0; bounds.len()],
            bounds,
            sum: 0.0,
            count: 0,
        }
    }
}

impl Histogram {
    pub fn observe(&mut self, v: f64) {
        for (b, c) in self.bounds.iter().zip(self.counts.iter_mut()) {
            if v <= *b {
                *c += 1;
            }
        }
        self.sum += v;
        self.count += 1;
    }
}

/// A point-in-time copy, for summaries and tests.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Snapshot {
    pub lines: u64,
    pub records: u64,
    pub errors: u64,
    pub late: u64,
    pub held: u64,
    pub ignored: u64,
    pub bad: BTreeMap<String, u64>,
    pub alerts: BTreeMap<String, u64>,
    pub types_tracked: u64,
    /// See [`Metrics::learner_evicted`].
    pub learner_evicted: u64,
    pub learner_bytes: u64,
}

impl Metrics {
    pub fn bad(&self, reason: BadReason) {
        self.bad[reason as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn bad_count(&self, reason: BadReason) -> u64 {
        self.bad[reason as usize].load(Ordering::Relaxed)
    }

    /// `kind` is the sink's [`AlertSink::kind`](crate::alert::AlertSink::kind):
    /// a fixed word, so the map holds one entry per kind of sink.
    fn with_sink(&self, kind: &str, f: impl FnOnce(&mut SinkCounts)) {
        if let Ok(mut m) = self.sinks.lock() {
            match m.get_mut(kind) {
                Some(c) => f(c),
                None => f(m.entry(kind.to_string()).or_default()),
            }
        }
    }

    /// A sink that exists, exported from zero before its first alert.
    pub fn sink_known(&self, kind: &str, waiting: Option<u64>) {
        self.with_sink(kind, |c| c.waiting = c.waiting.or(waiting));
    }

    /// An alert a sink of `kind` accepted (delivered, or spooled for delivery).
    pub fn sink_emitted(&self, kind: &str) {
        self.with_sink(kind, |c| c.emitted += 1);
    }

    /// An emit or flush of a sink of `kind` that failed.
    pub fn sink_failed(&self, kind: &str) {
        self.with_sink(kind, |c| c.failures += 1);
    }

    /// Alerts a sink of `kind` holds in its spool, not yet confirmed.
    pub fn sink_waiting(&self, kind: &str, n: u64) {
        self.with_sink(kind, |c| c.waiting = Some(n));
    }

    /// `faultline_requests_per_minute` and `faultline_request_latency_seconds`.
    fn signal_families(&self) -> Vec<exposition::Family> {
        use exposition::Family;
        let mut rpm = Family::gauge(
            "faultline_requests_per_minute",
            "Requests (request-like log records) per minute per service and version, over the last closed minutes.",
        );
        let mut lat = Family::gauge(
            "faultline_request_latency_seconds",
            "Request duration quantiles from the logs per service and version, over the last closed minutes (DDSketch, 1 % relative error).",
        );
        if let Ok(g) = self.signals.lock() {
            for s in g.iter() {
                let l = [
                    ("service", s.service.as_str()),
                    ("version", s.version.as_str()),
                ];
                rpm = rpm.sample(&l, s.requests_per_minute);
                if let Some(q) = s.latency_seconds {
                    for (name, v) in [("0.5", q[0]), ("0.95", q[1]), ("0.99", q[2])] {
                        lat = lat.sample(&[l[0], l[1], ("quantile", name)], v);
                    }
                }
            }
        }
        vec![rpm, lat]
    }

    /// The `faultline_sink_*` families.
    fn sink_families(&self) -> Vec<exposition::Family> {
        use exposition::Family;
        let mut emitted = Family::counter(
            "faultline_sink_alerts_total",
            "Alerts each sink accepted (delivered or spooled for delivery).",
        );
        let mut failures = Family::counter(
            "faultline_sink_failures_total",
            "Failed alert deliveries or flushes per sink.",
        );
        let mut waiting = Family::gauge(
            "faultline_sink_spooled_alerts",
            "Alerts in a sink's spool that the server has not confirmed yet.",
        );
        if let Ok(m) = self.sinks.lock() {
            for (k, c) in m.iter() {
                emitted = emitted.sample(&[("sink", k)], c.emitted as f64);
                failures = failures.sample(&[("sink", k)], c.failures as f64);
                if let Some(w) = c.waiting {
                    waiting = waiting.sample(&[("sink", k)], w as f64);
                }
            }
        }
        let mut out = vec![emitted, failures, waiting];
        out.extend(delivery::DELIVERY.families());
        out
    }

    pub fn snapshot(&self) -> Snapshot {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Snapshot {
            lines: g(&self.lines),
            records: g(&self.records),
            errors: g(&self.errors),
            late: g(&self.late),
            held: g(&self.held),
            ignored: g(&self.ignored),
            bad: BadReason::ALL
                .iter()
                .map(|r| (r.as_str().to_string(), self.bad_count(*r)))
                .filter(|(_, n)| *n > 0)
                .collect(),
            alerts: [
                ("novel", g(&self.alerts_novel)),
                ("surge", g(&self.alerts_surge)),
                ("storm", g(&self.alerts_storm)),
                ("error_rate", g(&self.alerts_error_rate)),
                ("canary_regression", g(&self.alerts_canary_regression)),
                ("regression", g(&self.alerts_regression)),
                ("episode_end", g(&self.alerts_episode_end)),
                ("latency_regression", g(&self.alerts_latency_regression)),
                ("traffic_drop", g(&self.alerts_traffic_drop)),
                ("traffic_spike", g(&self.alerts_traffic_spike)),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
            types_tracked: g(&self.types_tracked),
            learner_evicted: g(&self.learner_evicted),
            learner_bytes: g(&self.learner_bytes),
        }
    }

    /// Prometheus text exposition format, with `extra` (already in that
    /// format) appended. [`exposition::render`] takes families instead.
    pub fn render_prometheus(&self, extra: &str) -> String {
        let mut o = exposition::render(self, Vec::new());
        o.push_str(extra);
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_broker_condition_follows_librdkafka_statistics() {
        let c = Condition::default();
        assert!(c.check().is_ok());
        let down = serde_json::json!({"brokers": {
            "a:9092/1": {"name": "a:9092/1", "nodeid": 1, "state": "CONNECT"},
            "a:9092/bootstrap": {"name": "a:9092/bootstrap", "nodeid": -1, "state": "DOWN"}
        }});
        broker_readiness(&down, &c);
        let why = c.check().unwrap_err();
        assert!(why.contains("a:9092/1 CONNECT"), "{why}");
        let up = serde_json::json!({"brokers": {
            "a:9092/1": {"name": "a:9092/1", "nodeid": 1, "state": "UP"}
        }});
        broker_readiness(&up, &c);
        assert!(c.check().is_ok());
        // A document without brokers says nothing either way.
        c.down("x");
        broker_readiness(&serde_json::json!({}), &c);
        assert!(c.check().is_err());
    }
}
