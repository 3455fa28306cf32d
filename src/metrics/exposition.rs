//! The `/metrics` body: faultline's counters as Prometheus metric families,
//! encoded by the `prometheus` crate, with its process collector.
//!
//! The pipeline keeps plain atomics ([`Metrics`]) on its hot path; this
//! module turns a point-in-time read of them into metric families at scrape
//! time, so nothing on the hot path pays for the exposition. The crate's
//! text encoder does the escaping and number formatting, and its process
//! collector gives the `process_*` metrics every exporter has (Linux only;
//! elsewhere they are absent, as with other exporters).
//!
//! Metric names are an interface (docs/metrics.md lists them all): a name
//! is never renamed, only added beside, as `faultline_ready` is beside
//! `faultline_up`.

use std::sync::OnceLock;
use std::sync::atomic::Ordering;

use prometheus::core::Collector;
use prometheus::proto::{
    Bucket, Counter, Gauge, Histogram as HistogramProto, LabelPair, Metric, MetricFamily,
    MetricType,
};

use super::Metrics;
use crate::record::BadReason;

/// The version and commit this binary was built from (build.rs).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
pub const COMMIT: &str = env!("FAULTLINE_GIT_COMMIT");

/// A family of samples under one name, built up and then encoded.
pub struct Family(MetricFamily);

impl Family {
    pub fn counter(name: &str, help: &str) -> Family {
        Family::new(name, help, MetricType::COUNTER)
    }

    pub fn gauge(name: &str, help: &str) -> Family {
        Family::new(name, help, MetricType::GAUGE)
    }

    fn new(name: &str, help: &str, ty: MetricType) -> Family {
        let mut f = MetricFamily::default();
        f.set_name(name.to_string());
        f.set_help(help.to_string());
        f.set_field_type(ty);
        Family(f)
    }

    /// Adds one sample with `labels`; its value is read as the family's type.
    pub fn sample(mut self, labels: &[(&str, &str)], value: f64) -> Family {
        let mut m = metric(labels);
        match self.0.get_field_type() {
            MetricType::COUNTER => {
                let mut c = Counter::default();
                c.set_value(value);
                m.set_counter(c);
            }
            _ => {
                let mut g = Gauge::default();
                g.set_value(value);
                m.set_gauge(g);
            }
        }
        self.0.mut_metric().push(m);
        self
    }

    pub fn is_empty(&self) -> bool {
        self.0.get_metric().is_empty()
    }
}

fn metric(labels: &[(&str, &str)]) -> Metric {
    let mut m = Metric::default();
    m.set_label(
        labels
            .iter()
            .map(|(k, v)| {
                let mut l = LabelPair::default();
                l.set_name(k.to_string());
                l.set_value(v.to_string());
                l
            })
            .collect(),
    );
    m
}

fn process_collector() -> &'static prometheus::process_collector::ProcessCollector {
    static P: OnceLock<prometheus::process_collector::ProcessCollector> = OnceLock::new();
    P.get_or_init(prometheus::process_collector::ProcessCollector::for_self)
}

/// Encodes the pipeline's metrics, build info, the process metrics and
/// `more` (a component's own families, e.g. the Kafka source's) as the
/// Prometheus text format.
pub fn render(m: &Metrics, more: Vec<Family>) -> String {
    let s = m.snapshot();
    let mut fams: Vec<Family> = vec![
        Family::gauge(
            "faultline_build_info",
            "Always 1; the version and git commit of the running binary as labels.",
        )
        .sample(&[("version", VERSION), ("commit", COMMIT)], 1.0),
        Family::counter("faultline_lines_total", "Input lines read.").sample(&[], s.lines as f64),
        Family::counter(
            "faultline_input_bytes_total",
            "Input bytes read (record bodies as delivered, before parsing).",
        )
        .sample(&[], m.bytes.load(std::sync::atomic::Ordering::Relaxed) as f64),
        Family::counter("faultline_records_total", "Records parsed (errors or not).")
            .sample(&[], s.records as f64),
        Family::counter(
            "faultline_error_records_total",
            "Records at or above the error level.",
        )
        .sample(&[], s.errors as f64),
        Family::counter(
            "faultline_ignored_records_total",
            "Error records no error type was assigned to (the learner ignored them), so not counted in any type.",
        )
        .sample(&[], s.ignored as f64),
        Family::counter(
            "faultline_late_records_total",
            "Records later than the lateness limit.",
        )
        .sample(&[], s.late as f64),
        Family::counter(
            "faultline_held_records_total",
            "Records dated far ahead of the stream, counted at the current event time.",
        )
        .sample(&[], s.held as f64),
    ];
    let mut bad = Family::counter("faultline_bad_records_total", "Skipped records by reason.");
    for r in BadReason::ALL {
        bad = bad.sample(&[("reason", r.as_str())], m.bad_count(r) as f64);
    }
    fams.push(bad);
    let mut alerts = Family::counter("faultline_alerts_total", "Alerts emitted by kind.");
    for (k, v) in &s.alerts {
        alerts = alerts.sample(&[("kind", k)], *v as f64);
    }
    fams.push(alerts);
    fams.push(
        Family::gauge("faultline_error_types", "Error types tracked.")
            .sample(&[], s.types_tracked as f64),
    );
    fams.push(
        Family::counter(
            "faultline_learner_evicted_total",
            "Learned templates evicted (least recently used) to keep the learner within fingerprint.learn.max_bytes / max_service_bytes.",
        )
        .sample(&[], m.learner_evicted.load(Ordering::Relaxed) as f64),
    );
    fams.push(
        Family::gauge(
            "faultline_learner_bytes",
            "Estimated memory of the learner, as charged against its budget.",
        )
        .sample(&[], m.learner_bytes.load(Ordering::Relaxed) as f64),
    );
    fams.extend(m.sink_families());
    fams.extend(m.signal_families());
    fams.extend(more);
    // The encoder refuses a family without samples; those (the lag of a
    // consumer not yet assigned partitions) are still declared below, so a
    // dashboard or rule finds the name from the start.
    let (fams, empty): (Vec<Family>, Vec<Family>) = fams.into_iter().partition(|f| !f.is_empty());
    let mut out: Vec<MetricFamily> = fams.into_iter().map(|f| f.0).collect();
    if let Ok(h) = m.latency.lock() {
        out.push(histogram(
            "faultline_processing_seconds",
            "Time from record read to decision.",
            &h,
        ));
    }
    out.extend(process_collector().collect());
    let mut body = String::new();
    if let Err(e) = prometheus::TextEncoder::new().encode_utf8(&out, &mut body) {
        // Only an empty family or name could fail, and none is built above.
        tracing::error!(error = %e, "metrics exposition");
    }
    for f in empty {
        let ty = match f.0.get_field_type() {
            MetricType::COUNTER => "counter",
            _ => "gauge",
        };
        let (name, help) = (f.0.name(), f.0.help());
        // HELP text escaping as the encoder does it.
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        body.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {ty}\n"));
    }
    body
}

fn histogram(name: &str, help: &str, h: &super::Histogram) -> MetricFamily {
    let mut p = HistogramProto::default();
    p.set_sample_count(h.count);
    p.set_sample_sum(h.sum);
    p.set_bucket(
        h.bounds
            .iter()
            .zip(&h.counts)
            .map(|(b, c)| {
                let mut k = Bucket::default();
                k.set_upper_bound(*b);
                k.set_cumulative_count(*c);
                k
            })
            .collect(),
    );
    let mut m = Metric::default();
    m.set_histogram(p);
    let mut f = MetricFamily::default();
    f.set_name(name.to_string());
    f.set_help(help.to_string());
    f.set_field_type(MetricType::HISTOGRAM);
    f.mut_metric().push(m);
    f
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;

    #[test]
    fn the_exposition_has_build_info_process_metrics_and_every_counter() {
        let m = Metrics::default();
        m.lines.fetch_add(3, Ordering::Relaxed);
        m.bytes.fetch_add(120, Ordering::Relaxed);
        m.ignored.fetch_add(2, Ordering::Relaxed);
        m.latency.lock().unwrap().observe(0.002);
        m.sink_known("file", None);
        m.sink_emitted("elasticsearch");
        m.sink_failed("elasticsearch");
        m.sink_waiting("elasticsearch", 4);
        let more = vec![
            Family::gauge("faultline_x", "X.").sample(&[("a", "b\"c")], 1.0),
            Family::gauge("faultline_none", "Nothing yet."),
        ];
        let body = render(&m, more);
        assert!(
            body.contains(&format!(
                "faultline_build_info{{version=\"{VERSION}\",commit=\"{COMMIT}\"}} 1"
            )),
            "{body}"
        );
        assert!(body.contains("faultline_lines_total 3\n"), "{body}");
        assert!(body.contains("faultline_input_bytes_total 120\n"), "{body}");
        assert!(
            body.contains("faultline_ignored_records_total 2\n"),
            "{body}"
        );
        assert!(
            body.contains("faultline_sink_alerts_total{sink=\"elasticsearch\"} 1\n"),
            "{body}"
        );
        assert!(
            body.contains("faultline_sink_failures_total{sink=\"elasticsearch\"} 1\n"),
            "{body}"
        );
        assert!(
            body.contains("faultline_sink_spooled_alerts{sink=\"elasticsearch\"} 4\n"),
            "{body}"
        );
        // A sink is exported from 0 before its first alert.
        assert!(
            body.contains("faultline_sink_alerts_total{sink=\"file\"} 0\n"),
            "{body}"
        );
        // A family without samples is still declared.
        assert!(
            body.contains("# HELP faultline_none Nothing yet.\n# TYPE faultline_none gauge\n"),
            "{body}"
        );
        // The encoder escapes label values.
        assert!(body.contains("faultline_x{a=\"b\\\"c\"} 1\n"), "{body}");
        assert!(
            body.contains("faultline_processing_seconds_bucket{le=\"0.005\"} 1\n"),
            "{body}"
        );
        assert!(
            body.contains("faultline_processing_seconds_count 1\n"),
            "{body}"
        );
        if cfg!(target_os = "linux") {
            assert!(body.contains("process_resident_memory_bytes "), "{body}");
            assert!(body.contains("process_cpu_seconds_total "), "{body}");
        }
    }
}
