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
        use std::fmt::Write;
        let mut extra = String::new();
        let _ = writeln!(
            extra,
            "# HELP faultline_kafka_consumer_lag Messages behind the partition's high watermark.\n# TYPE faultline_kafka_consumer_lag gauge"
        );
        if let Ok(lag) = self.lag.lock() {
            for ((t, p), v) in lag.iter() {
                let _ = writeln!(
                    extra,
                    "faultline_kafka_consumer_lag{{topic=\"{t}\",partition=\"{p}\"}} {v}"
                );
            }
        }
        let _ = writeln!(
            extra,
            "# HELP faultline_kafka_batches_total Batches committed.\n# TYPE faultline_kafka_batches_total counter\nfaultline_kafka_batches_total {}",
            self.batches.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            extra,
            "# HELP faultline_kafka_failures Consecutive failed batches.\n# TYPE faultline_kafka_failures gauge\nfaultline_kafka_failures {}",
            self.failures.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            extra,
            "# HELP faultline_up 1 when ready.\n# TYPE faultline_up gauge\nfaultline_up {}",
            u8::from(self.ready().is_ok())
        );
        self.metrics.render_prometheus(&extra)
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
