//! What the HTTP alert sinks (Alertmanager, webhook) did on the wire:
//! alerts their servers confirmed, requests that failed, and requests that
//! were retries after a failure (`/metrics`: `faultline_sink_sent_alerts_total`,
//! `faultline_sink_request_failures_total`, `faultline_sink_retries_total`).
//!
//! One set of counters per process, like [`super::SINKS`]: these sinks send
//! from their own worker threads and are rebuilt after a failed Kafka
//! batch, so the counters cannot live in a sink (a rebuild would reset
//! them, which a Prometheus counter must never do) and the sinks hold no
//! [`super::Metrics`]. Keyed by the sink's kind, a fixed word: as many
//! series as kinds of sink.

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::exposition::Family;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Alerts in requests the server confirmed (2xx).
    pub sent: u64,
    /// Requests that failed (no answer, timeout, or an error status).
    pub failures: u64,
    /// Requests sent again after a failure.
    pub retries: u64,
}

/// The process' delivery counters.
pub static DELIVERY: Delivery = Delivery {
    by_kind: Mutex::new(BTreeMap::new()),
};

pub struct Delivery {
    by_kind: Mutex<BTreeMap<&'static str, Counts>>,
}

impl Delivery {
    fn with(&self, kind: &'static str, f: impl FnOnce(&mut Counts)) {
        if let Ok(mut m) = self.by_kind.lock() {
            f(m.entry(kind).or_default());
        }
    }

    /// A sink of `kind` exists: its series start at zero.
    pub fn known(&self, kind: &'static str) {
        self.with(kind, |_| {});
    }

    /// A request of `alerts` alerts the server confirmed; `retry` when an
    /// earlier attempt had failed.
    pub fn sent(&self, kind: &'static str, alerts: usize, retry: bool) {
        self.with(kind, |c| {
            c.sent += alerts as u64;
            c.retries += u64::from(retry);
        });
    }

    /// A request that failed; `retry` when an earlier attempt had failed.
    pub fn failed(&self, kind: &'static str, retry: bool) {
        self.with(kind, |c| {
            c.failures += 1;
            c.retries += u64::from(retry);
        });
    }

    pub fn counts(&self, kind: &str) -> Counts {
        self.by_kind
            .lock()
            .ok()
            .and_then(|m| m.get(kind).copied())
            .unwrap_or_default()
    }

    pub(super) fn families(&self) -> Vec<Family> {
        let mut sent = Family::counter(
            "faultline_sink_sent_alerts_total",
            "Alerts an HTTP sink's server confirmed (Alertmanager: re-sends of firing alerts and resolutions included).",
        );
        let mut failures = Family::counter(
            "faultline_sink_request_failures_total",
            "Requests of an HTTP sink that failed (no answer, timeout, error status).",
        );
        let mut retries = Family::counter(
            "faultline_sink_retries_total",
            "Requests of an HTTP sink sent again after a failure.",
        );
        if let Ok(m) = self.by_kind.lock() {
            for (k, c) in m.iter() {
                sent = sent.sample(&[("sink", k)], c.sent as f64);
                failures = failures.sample(&[("sink", k)], c.failures as f64);
                retries = retries.sample(&[("sink", k)], c.retries as f64);
            }
        }
        vec![sent, failures, retries]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_count_every_request_after_a_failure_sent_or_not() {
        let d = Delivery {
            by_kind: Mutex::new(BTreeMap::new()),
        };
        d.known("webhook");
        assert_eq!(d.counts("webhook"), Counts::default());
        d.failed("webhook", false);
        d.failed("webhook", true);
        d.sent("webhook", 3, true);
        d.sent("webhook", 2, false);
        assert_eq!(
            d.counts("webhook"),
            Counts {
                sent: 5,
                failures: 2,
                retries: 2
            }
        );
        assert_eq!(d.families().len(), 3);
    }
}
