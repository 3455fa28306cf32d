//! Health, readiness and consumer lag of the Kafka source, shared with the
//! metrics endpoint (`/healthz`, `/readyz`, `/metrics`).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::metrics::Metrics;
use crate::metrics::http::Exporter;

/// Health, readiness and lag, shared with the metrics endpoint.
#[derive(Debug, Default)]
pub struct Status {
    pub metrics: Arc<Metrics>,
    pub ready: AtomicBool,
    /// Consecutive failed batches; reset by a committed one.
    pub failures: AtomicU64,
    /// Failed batches since start (never reset): what a rate alert reads.
    pub failures_total: AtomicU64,
    pub max_failures: u64,
    pub batches: AtomicU64,
    pub last_error: Mutex<Option<String>>,
    /// `(topic, partition)` → messages behind the high watermark.
    pub lag: Mutex<BTreeMap<(String, i32), i64>>,
    /// Down while no broker is reachable (`/readyz`).
    pub broker: crate::metrics::Condition,
}

impl Status {
    pub fn new(metrics: Arc<Metrics>, max_failures: u32) -> Status {
        Status {
            metrics,
            max_failures: u64::from(max_failures.max(1)),
            ..Status::default()
        }
    }

    pub(super) fn fail(&self, why: String) {
        let n = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        self.failures_total.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(failures = n, error = %why, "batch failed; retrying with backoff");
        if let Ok(mut l) = self.last_error.lock() {
            *l = Some(why);
        }
    }

    pub(super) fn last_error(&self) -> String {
        self.last_error
            .lock()
            .ok()
            .and_then(|l| l.clone())
            .unwrap_or_default()
    }
}

impl Exporter for Status {
    fn metrics(&self) -> String {
        use crate::metrics::exposition::{Family, render};
        let mut lag = Family::gauge(
            "faultline_kafka_consumer_lag",
            "Messages behind the partition's high watermark.",
        );
        if let Ok(l) = self.lag.lock() {
            for ((t, p), v) in l.iter() {
                lag = lag.sample(&[("topic", t), ("partition", &p.to_string())], *v as f64);
            }
        }
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed) as f64;
        let ready = f64::from(u8::from(self.ready().is_ok()));
        let more = vec![
            lag,
            Family::counter("faultline_kafka_batches_total", "Batches committed.")
                .sample(&[], g(&self.batches)),
            Family::gauge(
                "faultline_kafka_failures",
                "Consecutive failed batches (0 after a committed one).",
            )
            .sample(&[], g(&self.failures)),
            Family::counter(
                "faultline_kafka_batch_failures_total",
                "Failed batches since start.",
            )
            .sample(&[], g(&self.failures_total)),
            Family::gauge(
                "faultline_ready",
                "1 while ready (consuming and delivering; /readyz answers 200), else 0.",
            )
            .sample(&[], ready),
            // The first name, kept: easily mistaken for Prometheus' own `up`.
            Family::gauge("faultline_up", "Same as faultline_ready (older name).")
                .sample(&[], ready),
        ];
        render(&self.metrics, more)
    }

    fn healthy(&self) -> Result<(), String> {
        let n = self.failures.load(Ordering::Relaxed);
        if n >= self.max_failures {
            return Err(format!(
                "{n} consecutive batches failed (limit {}): {}",
                self.max_failures,
                self.last_error()
            ));
        }
        Ok(())
    }

    fn ready(&self) -> Result<(), String> {
        if !self.ready.load(Ordering::Relaxed) {
            return Err("not consuming (starting or stopping)".into());
        }
        self.broker.check()?;
        crate::metrics::SINKS.check()?;
        if self.failures.load(Ordering::Relaxed) > 0 {
            return Err(format!("retrying a failed batch: {}", self.last_error()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_turns_bad_only_after_the_configured_number_of_failures() {
        let s = Status::new(Arc::new(Metrics::default()), 2);
        s.ready.store(true, Ordering::Relaxed);
        assert!(s.healthy().is_ok() && s.ready().is_ok());
        s.fail("sink down".into());
        assert!(s.healthy().is_ok());
        assert!(s.ready().unwrap_err().contains("sink down"));
        s.fail("sink down".into());
        assert!(s.healthy().unwrap_err().contains("2 consecutive"));
    }
}
