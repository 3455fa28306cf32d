//! Alerts: the public contract (`faultline.alert/v1`) and the sinks that
//! deliver it.
//!
//! Sinks follow a push model with few required methods, like ripgrep's
//! `Sink`: the pipeline calls [`AlertSink::emit`] for each alert and
//! [`AlertSink::flush`] before it checkpoints, so an alert is durable before
//! the state says it was sent. Alert ids are deterministic (a hash of what
//! the alert is about, never of when it was computed), so any sink or
//! consumer can deduplicate a replay or a restart.
//!
//! The schema is documented in `docs/alerts.md`. v1 only grows: new fields
//! and kinds may appear, and consumers must ignore what they don't know.

pub mod alertmanager;
pub mod build;
pub mod elasticsearch;
pub mod file;
pub mod kafka;
pub mod route;
pub mod spool;
pub mod webhook;

use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::Xxh3;

use crate::baseline::{Baseline, ErrorType};
use crate::fingerprint::Fingerprint;
use crate::record::EventTime;

pub use elasticsearch::EsSink;
pub use file::JsonLinesSink;

pub const SCHEMA: &str = "faultline.alert/v1";

/// What an alert is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// First occurrence after warm-up of a type not in the baseline.
    Novel,
    /// A type's recent count is significantly above its own baseline rate.
    Surge,
    /// Too many novel types in one minute for one service: one summary.
    Storm,
    /// A service's share of error lines crossed a step of the ladder.
    ErrorRate,
    /// The newer of two versions running side by side is significantly
    /// worse than the older one (overall, or for one error type).
    CanaryRegression,
    /// A type marked resolved occurred again.
    Regression,
    /// Not a page: the end of a `storm` or `error_rate` episode, with its
    /// totals (field `episode`). Consumers that ignore unknown kinds lose
    /// nothing.
    EpisodeEnd,
    /// A version's latency quantile worse than the stable version's, or
    /// above the configured objective (`signals`).
    LatencyRegression,
    /// A service's requests (or lines) far below its own baseline.
    TrafficDrop,
    /// Far above it.
    TrafficSpike,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Novel => "novel",
            Kind::Surge => "surge",
            Kind::Storm => "storm",
            Kind::ErrorRate => "error_rate",
            Kind::CanaryRegression => "canary_regression",
            Kind::Regression => "regression",
            Kind::EpisodeEnd => "episode_end",
            Kind::LatencyRegression => "latency_regression",
            Kind::TrafficDrop => "traffic_drop",
            Kind::TrafficSpike => "traffic_spike",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

/// The window a surge (or storm) was judged on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WindowStats {
    pub length_s: u64,
    pub count: u64,
    pub baseline_rate_per_min: f64,
    pub rate_per_min: f64,
    pub ratio: f64,
    /// −log10 of the Poisson upper-tail probability (higher = surer).
    pub score: f64,
}

/// Top templates of a storm summary.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StormEntry {
    pub fingerprint: Fingerprint,
    pub template: String,
    pub count: u64,
}

/// One alert, exactly as serialised (field order is the documented one).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub schema: String,
    pub id: String,
    pub kind: Kind,
    pub severity: Severity,
    pub fingerprint: Option<Fingerprint>,
    pub service: String,
    pub version: Option<String>,
    pub template: String,
    pub sample: Option<String>,
    /// RFC 3339.
    pub first_seen: String,
    pub event_time: String,
    pub detected_at: String,
    pub window: Option<WindowStats>,
    pub samples: Vec<String>,
    /// Storm summaries: novel types suppressed in the minute, and the top ones.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub storm: Option<StormSummary>,
    /// Release fields (versions, rates, canary comparison). Flattened and
    /// all optional, so alerts of the first kinds serialise as before.
    #[serde(flatten, default)]
    pub release: ReleaseFields,
}

/// Optional fields added for releases (issue #7); absent when empty.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ReleaseFields {
    /// novel: the versions the type has occurred in so far.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub versions: Vec<String>,
    /// novel: set when the type occurs only in the newest version of its
    /// service (and an older one is known).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub new_in_version: Option<String>,
    /// error_rate: the window judged.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error_rate: Option<ErrorRateStats>,
    /// canary_regression: both versions' numbers and the test.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub canary: Option<CanaryComparison>,
    /// regression: when the type was resolved, and in which version.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub resolved: Option<ResolvedInfo>,
    /// storm, error_rate and episode_end: the episode the alert belongs to.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub episode: Option<EpisodeInfo>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub latency: Option<LatencyComparison>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub traffic: Option<TrafficStats>,
}

/// One version's latency over a window, from its merged sketch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LatencySide {
    pub version: String,
    /// Timed requests in the window.
    pub requests: u64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
}

/// `latency_regression`: what was compared and how sure it is.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LatencyComparison {
    /// `canary` (against the stable version) or `objective`.
    pub test: String,
    pub window_s: u64,
    /// The quantile judged (0.95 for p95).
    pub quantile: f64,
    /// The stable version (absent for an objective).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub stable: Option<LatencySide>,
    pub canary: LatencySide,
    /// The latency the canary's requests were counted above: the stable
    /// quantile's upper confidence bound × the factor × the sketches'
    /// error margin, or the objective.
    pub threshold_ms: f64,
    /// Canary requests above the threshold, and the share expected at most.
    pub above: u64,
    pub expected_share: f64,
    /// canary quantile / stable quantile (absent for an objective).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub ratio: Option<f64>,
    /// One-sided binomial tail of `above` (1 for an objective).
    pub p_value: f64,
}

/// `traffic_drop` / `traffic_spike`: the window against the baselines.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrafficStats {
    /// `requests` (request-like records) or `lines` (all lines: the service
    /// logs no request fields).
    pub measure: String,
    pub window_s: u64,
    pub count: u64,
    /// Expected count from the minutes just before the window.
    pub expected: f64,
    /// Expected count from the same time a day earlier, when known.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub expected_yesterday: Option<f64>,
    /// Expected count from the same time a week earlier, when known.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub expected_last_week: Option<f64>,
    /// count / expected.
    pub ratio: f64,
    /// Over-dispersion of the baseline minutes (variance / mean, ≥ 1).
    pub dispersion: f64,
    /// Quasi-Poisson tail probability of `count`.
    pub p_value: f64,
}

/// An episode of a `storm` or `error_rate` (issue #12): when it started,
/// and on the `episode_end` record when it ended.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpisodeInfo {
    /// The kind of the episode (`storm` or `error_rate`).
    pub of: Kind,
    /// Id of the alert that opened the episode.
    pub opened_by: String,
    /// RFC 3339: event time the episode started.
    pub start: String,
    /// RFC 3339: event time it ended (only on `episode_end`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub end: Option<String>,
    /// Alerts of other kinds held back during the episode (storm: novel
    /// alerts not sent).
    #[serde(default)]
    pub suppressed: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ErrorRateStats {
    pub window_s: u64,
    pub lines: u64,
    pub errors: u64,
    /// errors / lines.
    pub rate: f64,
    /// The ladder step crossed (share of error lines).
    pub threshold: f64,
    /// `rates.mode = "change"`: the service's own usual rate it was judged
    /// against (absent in `absolute` mode).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub baseline_rate: Option<f64>,
}

/// One version's side of a canary comparison.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VersionSide {
    pub version: String,
    pub lines: u64,
    /// Error lines (of the type, for a per-type comparison).
    pub errors: u64,
    /// Error lines per 1,000 lines.
    pub per_1000: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CanaryComparison {
    /// `error_rate` for the overall rate, else the type's fingerprint.
    pub subject: String,
    pub window_s: u64,
    pub stable: VersionSide,
    pub canary: VersionSide,
    /// canary per_1000 / stable per_1000; null when the stable side has none.
    pub ratio: Option<f64>,
    /// Conditional binomial test: P(canary errors ≥ observed | same rate).
    pub p_value: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResolvedInfo {
    pub resolved_at: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub in_version: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StormSummary {
    pub novel_types: u64,
    pub top: Vec<StormEntry>,
}

/// Deterministic alert id: 16 hex digits over (kind, subject, episode).
/// Independent of processing order and wall-clock time by construction.
pub fn alert_id(kind: Kind, subject: &str, episode: i64) -> String {
    let mut h = Xxh3::new();
    h.update(SCHEMA.as_bytes());
    h.update(b"\x1f");
    h.update(kind.as_str().as_bytes());
    h.update(b"\x1f");
    h.update(subject.as_bytes());
    h.update(b"\x1f");
    h.update(&episode.to_le_bytes());
    format!("{:016x}", h.digest())
}

/// Wall-clock milliseconds, for `detected_at` only (never for decisions).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// RFC 3339 with milliseconds, UTC.
pub fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_else(|| ms.to_string())
}

/// When an alert's subject was first seen, the event time it is about and
/// the wall-clock time it was decided, in epoch milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AlertTimes {
    pub first_seen: i64,
    pub event_time: i64,
    pub detected_at: i64,
}

impl Alert {
    /// The one constructor: what every alert has (kind, id, severity,
    /// service, template and its times). The optional parts are set with the
    /// `with_*` methods, so a new field of the schema is added here once
    /// rather than at every place an alert is made.
    pub fn new(
        kind: Kind,
        id: String,
        severity: Severity,
        service: impl Into<String>,
        template: impl Into<String>,
        times: AlertTimes,
    ) -> Alert {
        let template: String = template.into();
        let template = match crate::fingerprint::delimited::readable(&template) {
            std::borrow::Cow::Borrowed(_) => template,
            std::borrow::Cow::Owned(readable) => readable,
        };
        Alert {
            schema: SCHEMA.into(),
            id,
            kind,
            severity,
            fingerprint: None,
            service: service.into(),
            version: None,
            template,
            sample: None,
            first_seen: rfc3339(times.first_seen),
            event_time: rfc3339(times.event_time),
            detected_at: rfc3339(times.detected_at),
            window: None,
            samples: Vec::new(),
            storm: None,
            release: ReleaseFields::default(),
        }
    }

    /// [`Alert::new`] for an alert about one known error type: its
    /// fingerprint, service, template and first sighting, and the version
    /// of the record that raised it (novel, surge, regression).
    pub fn about_type(
        kind: Kind,
        id: String,
        severity: Severity,
        t: &ErrorType,
        version: Option<String>,
        event_time: EventTime,
        detected_at: i64,
    ) -> Alert {
        Alert::new(
            kind,
            id,
            severity,
            t.service(),
            t.template.clone(),
            AlertTimes {
                first_seen: t.first_seen,
                event_time,
                detected_at,
            },
        )
        .with_fingerprint(Some(t.fingerprint))
        .with_version(version)
    }

    pub fn with_fingerprint(mut self, fingerprint: Option<Fingerprint>) -> Alert {
        self.fingerprint = fingerprint;
        self
    }

    pub fn with_version(mut self, version: Option<String>) -> Alert {
        self.version = version;
        self
    }

    pub fn with_sample(mut self, sample: Option<String>) -> Alert {
        self.sample = sample;
        self
    }

    pub fn with_window(mut self, window: Option<WindowStats>) -> Alert {
        self.window = window;
        self
    }

    pub fn with_samples(mut self, samples: Vec<String>) -> Alert {
        self.samples = samples;
        self
    }

    pub fn with_storm(mut self, storm: Option<StormSummary>) -> Alert {
        self.storm = storm;
        self
    }

    pub fn with_release(mut self, release: ReleaseFields) -> Alert {
        self.release = release;
        self
    }

    /// A one-line human summary, for stderr.
    pub fn summary(&self) -> String {
        match self.kind {
            Kind::Storm => format!(
                "[{}] STORM {}: {} new error types in one minute",
                self.event_time,
                self.service,
                self.storm.as_ref().map(|s| s.novel_types).unwrap_or(0)
            ),
            Kind::Surge => format!(
                "[{}] SURGE {} {}: {} in {}s (x{:.1} over baseline) — {}",
                self.event_time,
                self.service,
                self.fingerprint.map(|f| f.to_string()).unwrap_or_default(),
                self.window.as_ref().map(|w| w.count).unwrap_or(0),
                self.window.as_ref().map(|w| w.length_s).unwrap_or(0),
                self.window.as_ref().map(|w| w.ratio).unwrap_or(0.0),
                self.template
            ),
            Kind::Novel => format!(
                "[{}] NEW {} {}{} — {}",
                self.event_time,
                self.service,
                self.fingerprint.map(|f| f.to_string()).unwrap_or_default(),
                match (&self.release.new_in_version, &self.version) {
                    (Some(v), _) => format!(" (only in new version {v})"),
                    (None, Some(v)) => format!(" (version {v})"),
                    (None, None) => String::new(),
                },
                self.template
            ),
            Kind::ErrorRate => format!(
                "[{}] ERROR RATE {} {}: {}",
                self.event_time,
                self.service,
                self.severity.as_str(),
                self.template
            ),
            Kind::LatencyRegression | Kind::TrafficDrop | Kind::TrafficSpike => format!(
                "[{}] {} {} {}: {}",
                self.event_time,
                self.kind.as_str().replace('_', " ").to_uppercase(),
                self.service,
                self.version.as_deref().unwrap_or(""),
                self.template
            ),
            Kind::CanaryRegression => format!(
                "[{}] CANARY REGRESSION {} {}: {}",
                self.event_time,
                self.service,
                self.version.as_deref().unwrap_or(""),
                self.template
            ),
            Kind::Regression => format!(
                "[{}] REGRESSION {} {}{} — {}",
                self.event_time,
                self.service,
                self.fingerprint.map(|f| f.to_string()).unwrap_or_default(),
                self.version
                    .as_ref()
                    .map(|v| format!(" (version {v})"))
                    .unwrap_or_default(),
                self.template
            ),
            Kind::EpisodeEnd => format!(
                "[{}] END {} {}: {}",
                self.event_time,
                self.release
                    .episode
                    .as_ref()
                    .map_or("episode", |e| e.of.as_str()),
                self.service,
                self.template
            ),
        }
    }
}

/// Failure to deliver an alert.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("alert sink {sink}: {source}")]
    Io {
        sink: String,
        source: std::io::Error,
    },
    #[error("alert sink {sink}: {message}")]
    Other { sink: String, message: String },
}

/// Where alerts go. Only `emit` is required.
pub trait AlertSink: Send {
    /// Delivers (or buffers) one alert.
    fn emit(&mut self, alert: &Alert) -> Result<(), SinkError>;

    /// Makes every emitted alert durable. Called before each checkpoint.
    fn flush(&mut self) -> Result<(), SinkError> {
        Ok(())
    }

    /// The sink's catalogue export, for sinks that also keep a catalogue of
    /// the known types (Elasticsearch). Wrappers must pass this on.
    fn catalogue(&mut self) -> Option<&mut dyn TypeCatalogue> {
        None
    }

    /// A short name for logs and metrics.
    fn name(&self) -> &str;

    /// Alerts held in a spool and not yet confirmed by the server, for a
    /// sink that has one (the `faultline_sink_spooled_alerts` gauge).
    fn waiting(&self) -> Option<usize> {
        None
    }

    /// The kind of sink (`file`, `stdout`, `kafka`, `elasticsearch`): the
    /// `sink` label of its metrics, never a path or URL, so no credential
    /// reaches a label and there are as many series as kinds.
    fn kind(&self) -> &'static str {
        "other"
    }
}

impl<S: AlertSink + ?Sized> AlertSink for Box<S> {
    fn emit(&mut self, alert: &Alert) -> Result<(), SinkError> {
        (**self).emit(alert)
    }
    fn flush(&mut self) -> Result<(), SinkError> {
        (**self).flush()
    }
    fn catalogue(&mut self) -> Option<&mut dyn TypeCatalogue> {
        (**self).catalogue()
    }
    fn name(&self) -> &str {
        (**self).name()
    }
    fn waiting(&self) -> Option<usize> {
        (**self).waiting()
    }
    fn kind(&self) -> &'static str {
        (**self).kind()
    }
}

/// The known error types as a catalogue export sees them.
#[derive(Clone, Copy)]
pub struct Catalogue<'a> {
    pub baseline: &'a Baseline,
    /// Largest event time seen (the end of the types' recent counts).
    pub watermark: Option<EventTime>,
    /// The snoozed types (`baseline::snooze`), when the exporter has them.
    pub snoozes: Option<&'a crate::baseline::snooze::Snoozes>,
}

/// Exports the catalogue of known error types. A separate interface from
/// [`AlertSink`]: alerts are a stream, the catalogue is a snapshot, and only
/// some sinks keep one.
pub trait TypeCatalogue: Send {
    /// Receives the known types at each checkpoint and at the end of a run
    /// (`last`).
    fn export(&mut self, types: &Catalogue<'_>, last: bool) -> Result<(), SinkError>;
}

/// Collects alerts in memory (tests, `rollout-check`, reports).
#[derive(Debug, Default)]
pub struct MemorySink {
    pub alerts: Vec<Alert>,
}

impl AlertSink for MemorySink {
    fn emit(&mut self, alert: &Alert) -> Result<(), SinkError> {
        self.alerts.push(alert.clone());
        Ok(())
    }
    fn name(&self) -> &str {
        "memory"
    }
}

/// A minimal novel-type alert with id `id`, for the sinks' unit tests.
#[cfg(test)]
pub(crate) fn test_alert(id: &str) -> Alert {
    Alert::new(
        Kind::Novel,
        id.into(),
        Severity::High,
        "api",
        "t",
        AlertTimes {
            first_seen: 0,
            event_time: 0,
            detected_at: 0,
        },
    )
    .with_sample(Some("s".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alert_ids_depend_only_on_kind_subject_and_episode() {
        let a = alert_id(Kind::Novel, "00000000deadbeef", 0);
        assert_eq!(a, alert_id(Kind::Novel, "00000000deadbeef", 0));
        assert_ne!(a, alert_id(Kind::Surge, "00000000deadbeef", 0));
        assert_ne!(a, alert_id(Kind::Novel, "00000000deadbeee", 0));
        assert_eq!(a.len(), 16);
    }

    #[test]
    fn an_alert_shows_a_kept_column_word_without_the_learners_mark() {
        let times = AlertTimes {
            first_seen: 0,
            event_time: 0,
            detected_at: 0,
        };
        let a = Alert::new(
            Kind::Novel,
            "x".into(),
            Severity::Medium,
            "plant",
            "<*>\t PUMP\t \u{a0}STALLED\t <*>",
            times,
        );
        assert_eq!(a.template, "<*>\t PUMP\t STALLED\t <*>");
    }

    #[test]
    fn times_render_as_rfc3339_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
    }
}
