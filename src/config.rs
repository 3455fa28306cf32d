//! Configuration: one TOML file, every knob, with environment overrides.
//!
//! Every section has complete defaults, so an empty file (or none) is a valid
//! configuration. Unknown keys are rejected rather than ignored: a typo in a
//! threshold should not silently leave the default in force. Errors carry
//! the file, line and key so the user can go straight to the mistake.
//!
//! Environment overrides use `FAULTLINE__SECTION__KEY=value` (double
//! underscores separate the path because keys contain single ones); the
//! value is read as a TOML value when it parses as one, else as a string.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::record::Level;

/// Most buckets a window may hold (`window.history / window.bucket`): a
/// week of minutes, 39 KiB per tracked type at most.
pub const MAX_BUCKETS: usize = 10_080;

/// Errors from loading a configuration. Each says where and what to do.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {message}")]
    Invalid {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("environment variable {var}: {message}")]
    Env { var: String, message: String },
    #[error("config value {key}: {message}")]
    Value { key: String, message: String },
}

/// A duration written the way operators write them: `90s`, `5m`, `1h`, `7d`,
/// `250ms`, or a bare number of seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Dur(pub std::time::Duration);

impl Dur {
    /// The longest duration any key or flag accepts (100 years): a bound
    /// that keeps every millisecond sum of event times far from overflow.
    pub const MAX: Dur = Dur::secs(100 * 365 * 86_400);

    pub const fn secs(s: u64) -> Dur {
        Dur(std::time::Duration::from_secs(s))
    }
    pub fn as_millis(self) -> i64 {
        self.0.as_millis() as i64
    }
    pub fn as_secs(self) -> u64 {
        self.0.as_secs()
    }
}

impl FromStr for Dur {
    type Err = String;
    fn from_str(s: &str) -> Result<Dur, String> {
        let s = s.trim();
        let split = s
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(s.len());
        let (num, unit) = s.split_at(split);
        let Ok(n) = num.parse::<f64>() else {
            return compound(s);
        };
        let mult = match unit.trim() {
            "" | "s" | "sec" | "secs" => 1.0,
            "ms" => 0.001,
            "m" | "min" | "mins" => 60.0,
            "h" | "hr" | "hours" => 3600.0,
            "d" | "days" => 86400.0,
            "w" => 604800.0,
            other => {
                return compound(s).map_err(|_| {
                    format!("`{s}`: unknown unit `{other}` (use ms, s, m, h, d or w, or combine them: 1h30m)")
                });
            }
        };
        if !(n * mult).is_finite() || n < 0.0 {
            return Err(format!("`{s}` is not a valid duration"));
        }
        if n * mult > Dur::MAX.0.as_secs_f64() {
            return Err(format!("`{s}` is too long: at most {}", Dur::MAX));
        }
        std::time::Duration::try_from_secs_f64(n * mult)
            .map(Dur)
            .map_err(|_| format!("`{s}` is not a valid duration"))
    }
}

/// Durations of several parts (`1h30m`, `2h 15m`, `1day 12hours`), as
/// humantime reads them: what users write after the single-unit forms
/// above, which stay as they were (decimals, bare seconds).
fn compound(s: &str) -> Result<Dur, String> {
    let d = humantime::parse_duration(s)
        .map_err(|e| format!("`{s}` is not a duration ({e}; write e.g. 90s, 5m, 1h30m, 7d)"))?;
    if d > Dur::MAX.0 {
        return Err(format!("`{s}` is too long: at most {}", Dur::MAX));
    }
    Ok(Dur(d))
}

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        if ms.is_multiple_of(86_400_000) && ms > 0 {
            write!(f, "{}d", ms / 86_400_000)
        } else if ms.is_multiple_of(3_600_000) && ms > 0 {
            write!(f, "{}h", ms / 3_600_000)
        } else if ms.is_multiple_of(60_000) && ms > 0 {
            write!(f, "{}m", ms / 60_000)
        } else if ms.is_multiple_of(1000) {
            write!(f, "{}s", ms / 1000)
        } else {
            write!(f, "{ms}ms")
        }
    }
}

impl Serialize for Dur {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Dur, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Secs(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Secs(n) if n > Dur::MAX.as_secs() => Err(serde::de::Error::custom(format!(
                "{n} seconds is too long: at most {}",
                Dur::MAX
            ))),
            Raw::Secs(n) => Ok(Dur::secs(n)),
            Raw::Text(t) => t.parse().map_err(serde::de::Error::custom),
        }
    }
}

/// A password, key or token: shown as `<redacted>` by `Debug`, `Display`
/// and `Serialize` (so `faultline config check`, logs and error messages
/// never carry it); [`Secret::expose`] is the one way to the value. Any TOML
/// scalar is accepted, so a numeric password given in the environment is
/// not rejected with an error that repeats it.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

/// What a secret is shown as.
pub const REDACTED: &str = "<redacted>";

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value itself, for the one place that sends it to a server.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Secret {
        Secret::new(s)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(REDACTED)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Secret, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Int(i64),
            Float(f64),
            Bool(bool),
        }
        match Raw::deserialize(d) {
            Ok(Raw::Text(t)) => Ok(Secret(t)),
            Ok(Raw::Int(n)) => Ok(Secret(n.to_string())),
            Ok(Raw::Float(n)) => Ok(Secret(n.to_string())),
            Ok(Raw::Bool(b)) => Ok(Secret(b.to_string())),
            // serde's message for a failed untagged enum names no value.
            Err(_) => Err(serde::de::Error::custom(
                "expected a string (the value is not shown: it is a secret)",
            )),
        }
    }
}

/// Whether a librdkafka property (or any `key = value` setting) holds a
/// secret: passwords, private keys, client secrets, tokens.
pub fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    [
        "password",
        "secret",
        "api_key",
        "apikey",
        "token",
        "private",
        "key.pem",
        "credential",
    ]
    .iter()
    .any(|w| k.contains(w))
        || k.ends_with("ssl.key.pem")
        || k == "sasl.jaas.config"
        || k == "sasl.oauthbearer.config"
}

/// `url` with any `user:password@` replaced by `<redacted>@`, for messages
/// and `config check` (works on strings that do not parse as URLs too).
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_string();
    };
    let rest = &url[scheme_end..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{}{REDACTED}{}", &url[..scheme_end], &rest[at..]),
        None => url.to_string(),
    }
}

/// Input format selection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum, Default)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Decide per line: `{` → JSON, `key=value …` with a level → logfmt, else text.
    #[default]
    Auto,
    Json,
    Logfmt,
    Text,
}

/// What alert sinks receive as sample messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SampleMode {
    /// The message exactly as in the record.
    #[default]
    Raw,
    /// The masked template, so personal data never leaves faultline.
    Masked,
    /// No samples at all.
    None,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub input: InputConfig,
    pub fields: FieldsConfig,
    pub text: TextConfig,
    pub fingerprint: FingerprintConfig,
    pub baseline: BaselineConfig,
    pub window: WindowConfig,
    pub detect: DetectConfig,
    pub alerts: AlertsConfig,
    pub kafka: KafkaConfig,
    pub elasticsearch: ElasticsearchConfig,
    pub metrics: MetricsConfig,
    pub rates: RatesConfig,
    pub release: ReleaseConfig,
    pub alertmanager: AlertmanagerConfig,
    pub webhook: WebhookConfig,
    pub api: ApiConfig,
    pub signals: SignalsConfig,
    /// `[scale_out]`: `run` in two stages over internal topics (issue 17,
    /// `docs/scaling.md`); off by default.
    pub scale_out: ScaleOutConfig,
}

/// `[scale_out]`: the two-stage `run` (`src/scale/`, `docs/scaling.md`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScaleOutConfig {
    /// Off by default: `run` is the single-stage consumer of `docs/kafka.md`.
    pub enabled: bool,
    /// The internal topic of parsed events; empty = `<group_id>-events`.
    pub events_topic: String,
    /// Partitions of the internal topic when `run` creates it (an existing
    /// topic is used as it is).
    pub partitions: i32,
    /// Replication factor of the internal topic when created; -1 = the
    /// broker's default.
    pub replication: i32,
    /// How long stage 2 waits for an upstream partition whose stage 1 went
    /// quiet (a restart, a rebalance) before going on without it. Longer
    /// than `kafka.max_idle`: live, stage 1's watermarks say when an
    /// upstream partition is at its end, so this bounds only a stall.
    pub max_idle: Dur,
    /// This instance's name among the instances of one group, stable
    /// across its restarts (a pod name): it makes the stages'
    /// transactional ids unique per instance, so a restart fences its own
    /// previous incarnation and no other. Empty = one instance (the
    /// transactional ids are `kafka.transactional_id`'s `-stage1`/`-stage2`).
    pub instance: String,
}

impl Default for ScaleOutConfig {
    fn default() -> Self {
        ScaleOutConfig {
            enabled: false,
            events_topic: String::new(),
            partitions: 12,
            replication: -1,
            max_idle: Dur::secs(30),
            instance: String::new(),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InputConfig {
    pub format: Format,
    /// Lines longer than this are counted as `too_long` and skipped.
    pub max_line_bytes: usize,
    /// Records at or above this level are errors; below it they are only
    /// counted (for rates).
    pub min_level: Level,
    /// Logger names whose records count as errors from this level on
    /// (e.g. one noisy logger's WARN); `logger = level`.
    pub logger_min_level: std::collections::BTreeMap<String, Level>,
    /// Timestamps that cannot be parsed: skip the record (`true`) or use the
    /// previous record's time (`false`).
    pub reject_bad_timestamps: bool,
    /// `faultline replay`: threads that parse and fingerprint beside the one
    /// that detects (`--threads` overrides it). 1 reads each input on one
    /// thread; results are the same with any number.
    pub threads: usize,
    /// Shipper envelopes (Fluent Bit, Vector, Filebeat, OpenTelemetry,
    /// Docker) and container runtime (CRI) lines: `auto` recognises them
    /// per record and parses the log line inside; `off` parses every
    /// record as it is. See `docs/input.md`.
    pub envelopes: Envelopes,
    /// A stack trace split across records is joined while it continues;
    /// an open record is emitted once this many records of other streams
    /// of the same input have passed…
    pub join_max_records: u64,
    /// … or once a record of the input is this many milliseconds of event
    /// time newer than the open record's first (of Kafka timestamp when
    /// either has no event time; the two clocks are never mixed).
    pub join_max_millis: u64,
}

/// Whether records are unwrapped from shipper envelopes and CRI lines.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Envelopes {
    #[default]
    Auto,
    Off,
}

impl Default for InputConfig {
    fn default() -> Self {
        InputConfig {
            format: Format::Auto,
            max_line_bytes: 1 << 20,
            min_level: Level::Error,
            logger_min_level: Default::default(),
            reject_bad_timestamps: true,
            threads: 1,
            envelopes: Envelopes::Auto,
            join_max_records: 1000,
            join_max_millis: 2000,
        }
    }
}

/// Candidate key names per field, tried in order. Dotted names match both a
/// literal dotted key (`"log.level": …`) and nested objects (`"log": {"level": …}`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FieldsConfig {
    pub timestamp: Vec<String>,
    pub level: Vec<String>,
    pub message: Vec<String>,
    pub service: Vec<String>,
    pub version: Vec<String>,
    pub error_type: Vec<String>,
    pub error_message: Vec<String>,
    pub stack_trace: Vec<String>,
    pub logger: Vec<String>,
    pub host: Vec<String>,
    /// Derive the version from another field with a regex whose first
    /// capture group is the version (e.g. a pod name's ReplicaSet hash).
    pub version_from: Option<VersionFrom>,
    /// Kubernetes pod labels that name the service, tried in order, when
    /// a record inside a shipper envelope names none.
    pub service_labels: Vec<String>,
    /// Pod labels that carry the version, likewise.
    pub version_labels: Vec<String>,
    /// A request's duration (latency signals): candidate fields, tried in
    /// order. A number is in the unit `duration_units` names for the field,
    /// else the unit its name ends in (`_ms`, `_seconds`, `Millis`), else
    /// `duration_unit`; a string may carry its own unit (`"350ms"`).
    pub duration: Vec<String>,
    /// Units of duration fields whose names do not say them.
    pub duration_units: std::collections::BTreeMap<String, TimeUnit>,
    /// Unit of a bare number in a duration field that names none.
    pub duration_unit: TimeUnit,
    /// Fields whose presence marks a line as logging a request (traffic
    /// signals): HTTP status, method, or a marker of your own.
    pub request: Vec<String>,
}

/// A unit of time, for duration fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TimeUnit {
    Ns,
    Us,
    Ms,
    S,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VersionFrom {
    pub field: String,
    pub regex: String,
}

fn names(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

impl Default for FieldsConfig {
    fn default() -> Self {
        FieldsConfig {
            // After the common names, the keys of JSON loggers whose
            // records had no message, time or level without them: Serilog
            // CLEF (`@t` `@l` `@mt` `@m`), GELF (`short_message`), structlog
            // (`event`, a string; ECS's `event` is an object and never a
            // message), python-json-logger (`asctime`, `levelname`),
            // Monolog (`datetime`; its numeric `level`: `parse::level_of`)
            // and log4j2's JsonLayout (`timeMillis`). First present
            // wins, so a record with `message` keeps it.
            timestamp: names(&[
                "@timestamp",
                "timestamp",
                "time",
                "ts",
                "@t",
                "asctime",
                "datetime",
                "timeMillis",
            ]),
            level: names(&["log.level", "level", "severity", "lvl", "@l", "levelname"]),
            message: names(&["message", "msg", "@mt", "@m", "short_message", "event"]),
            service: names(&["service.name", "service", "app"]),
            version: names(&["service.version", "version"]),
            error_type: names(&["error.type"]),
            error_message: names(&["error.message"]),
            stack_trace: names(&[
                "error.stack_trace",
                "stack_trace",
                "stacktrace",
                "exception",
            ]),
            logger: names(&["log.logger", "logger"]),
            host: names(&["host.name", "host"]),
            version_from: None,
            service_labels: names(&["app.kubernetes.io/name", "app", "k8s-app"]),
            version_labels: names(&["app.kubernetes.io/version", "version"]),
            duration: names(&[
                "event.duration",
                "duration_ms",
                "duration",
                "latency_ms",
                "latency",
                "elapsed_ms",
                "elapsed",
                "took",
                "response_time",
                "request_time",
            ]),
            // ECS: nanoseconds; nginx's $request_time: seconds.
            duration_units: [
                ("event.duration".to_string(), TimeUnit::Ns),
                ("request_time".to_string(), TimeUnit::S),
            ]
            .into_iter()
            .collect(),
            duration_unit: TimeUnit::Ms,
            request: names(&[
                "http.response.status_code",
                "http.request.method",
                "status_code",
                "status",
                "method",
            ]),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TextConfig {
    /// Header regexes tried in order; named groups `ts`, `level`, `pri`,
    /// `service`, `instance`, `host`, `logger`, `msg`. Empty = the built-in
    /// defaults (see `docs/patterns.md`).
    pub headers: Vec<String>,
    /// A header without a level: call the record an error when its message
    /// says so (`error`, `exception`, `failed`, …). Off = such records are info.
    pub infer_level: bool,
    /// Service name for text records that carry none (default: the input's
    /// file stem).
    pub default_service: Option<String>,
}

impl Default for TextConfig {
    fn default() -> Self {
        TextConfig {
            headers: Vec::new(),
            infer_level: true,
            default_service: None,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FingerprintConfig {
    /// Directories or files of pattern rules, loaded in order; later rules
    /// with the same name replace earlier ones.
    pub patterns: Vec<PathBuf>,
    /// Service is part of an error type's identity.
    pub include_service: bool,
    /// Package/module prefixes whose frames are "in-app". Empty = every frame
    /// not in a well-known runtime or framework namespace.
    pub in_app: Vec<String>,
    /// How many top in-app frames enter the identity.
    pub max_frames: usize,
    pub learn: LearnConfig,
}

impl Default for FingerprintConfig {
    fn default() -> Self {
        FingerprintConfig {
            patterns: Vec::new(),
            include_service: true,
            in_app: Vec::new(),
            max_frames: 3,
            learn: LearnConfig::default(),
        }
    }
}

/// The learned stage: when does a token position count as variable?
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LearnConfig {
    pub enabled: bool,
    /// A position becomes variable once this many distinct words were seen
    /// there (with every other position equal)…
    pub min_distinct: usize,
    /// …and the distinct words are at least this share of the occurrences
    /// (0 = any). Guards against merging a few frequent constant words.
    /// Above 0 the outcome can depend on arrival order (the occurrence
    /// count is the one at the moment the threshold is reached).
    pub min_ratio: f64,
    /// …and the generalised template keeps at least this share of its words
    /// constant (words with a letter outside `<*>`). 0.5 stops
    /// `<*> (command <*>)` swallowing `boot (command 1)` and
    /// `halt (command 2)`; 0 lets any position generalise.
    pub min_constant_share: f64,
    /// Memory budget of the learner (estimated bytes, all services): past
    /// it the least recently used templates are evicted
    /// (`faultline_learner_evicted_total`).
    pub max_bytes: usize,
    /// The same for the templates of one service.
    pub max_service_bytes: usize,
}

impl Default for LearnConfig {
    fn default() -> Self {
        LearnConfig {
            enabled: true,
            min_distinct: 3,
            min_ratio: 0.0,
            min_constant_share: 0.5,
            max_bytes: 256 << 20,
            max_service_bytes: 128 << 20,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BaselineConfig {
    /// Learning period from the first record's event time (when the state
    /// holds no baseline yet).
    pub warmup: Dur,
    /// Types whose window counts and samples are kept; colder ones keep only
    /// their fingerprint in the known-set.
    pub max_hot_types: usize,
    /// Compact records of evicted types kept in memory; beyond it they
    /// go to a temporary on-disk table (src/baseline/cold.rs). Without a
    /// state only: with `--state` the store's rows hold them.
    pub max_cold_in_memory: usize,
    /// Bytes of the filter in front of the evicted types on disk (and of
    /// those only in the state store): a lookup of a never-evicted type
    /// then reads no disk.
    pub cold_filter_bytes: usize,
    /// Sample messages kept per type.
    pub samples: usize,
    /// How often the state is checkpointed (records), at least at the end.
    pub checkpoint_every: u64,
    /// replay (files): the longest a checkpoint waits in memory before the
    /// state store commits it, with those before it, in one durable
    /// transaction (also every 100,000 lines); `0s` commits each
    /// checkpoint (docs/state.md, "Crash safety").
    pub durable_every: Dur,
}

impl Default for BaselineConfig {
    fn default() -> Self {
        BaselineConfig {
            warmup: Dur::secs(30 * 60),
            max_hot_types: 200_000,
            // About 40 bytes a record: with the table's slack 20-40 MiB.
            max_cold_in_memory: 400_000,
            // 128M bits: ~1 false hit in 2,700 lookups at 5M types.
            cold_filter_bytes: 16 << 20,
            samples: 3,
            checkpoint_every: 200_000,
            durable_every: Dur::secs(1),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WindowConfig {
    pub bucket: Dur,
    pub history: Dur,
    /// Records older than the newest event time minus this are counted as
    /// late and not added to windows.
    pub lateness: Dur,
    /// Records dated more than this ahead of the wall clock or of the
    /// median of the stream's recent event times are counted as
    /// `bad_timestamp` and cannot move event time (docs/reliability.md).
    pub future_grace: Dur,
}

impl Default for WindowConfig {
    fn default() -> Self {
        WindowConfig {
            bucket: Dur::secs(60),
            history: Dur::secs(3600),
            lateness: Dur::secs(300),
            future_grace: Dur::secs(600),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DetectConfig {
    pub novel: bool,
    pub surge: bool,
    /// Recent window judged for surges.
    pub surge_window: Dur,
    /// Minimum count in the recent window before a surge can fire.
    pub surge_min_count: u64,
    /// Minimum ratio of observed to expected count.
    pub surge_min_ratio: f64,
    /// Poisson upper-tail probability below which the count is significant.
    pub surge_p_value: f64,
    /// Floor on the baseline rate (per minute), so a type seen once in the
    /// baseline does not make every repeat a surge.
    pub surge_min_baseline_per_min: f64,
    /// A type first seen after warm-up already paged as novel, and its
    /// early rate follows its rollout, not its normal: it may surge only
    /// once it has this much history.
    pub surge_new_type_history: Dur,
    /// After a surge ends, a new episode may alert only after this.
    pub cooldown: Dur,
    /// Cap on the over-dispersion (variance / mean of the type's counts per
    /// bucket) the surge test allows for; 1 = the plain Poisson test.
    pub surge_max_dispersion: f64,
    /// Novel alerts per minute per service beyond which one `storm` summary
    /// is emitted instead.
    pub storm_per_minute: usize,
    /// A storm episode ends after this long with fewer than a quarter of
    /// `storm_per_minute` new types in every minute; until then every new
    /// type of the service is recorded as known without alerting.
    pub storm_quiet: Dur,
    /// Error records a service must show during warm-up before its own
    /// novelty rate is judged (fewer: its new types alert one by one).
    pub novel_rate_min_errors: u64,
    /// Share of a service's warm-up error records that were first
    /// sightings of a type above which the service has no stable
    /// vocabulary: after warm-up its new types are summarised in one
    /// `storm` episode instead of one `novel` alert each. 1 turns it off.
    pub novel_rate_max_share: f64,
}

impl Default for DetectConfig {
    fn default() -> Self {
        DetectConfig {
            novel: true,
            surge: true,
            surge_window: Dur::secs(5 * 60),
            surge_min_count: 10,
            surge_min_ratio: 4.0,
            surge_p_value: 1e-6,
            surge_min_baseline_per_min: 0.05,
            surge_new_type_history: Dur::secs(60 * 60),
            cooldown: Dur::secs(30 * 60),
            surge_max_dispersion: 100.0,
            storm_per_minute: 20,
            storm_quiet: Dur::secs(10 * 60),
            novel_rate_min_errors: 20,
            novel_rate_max_share: 0.5,
        }
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertsConfig {
    pub samples: SampleMode,
    /// JSON-lines file; `None` = stdout.
    pub file: Option<PathBuf>,
    /// Labels per service (`[alerts.service_labels.checkout] team =
    /// "payments"`): every alert of the service carries them, for the
    /// sinks' `route.labels` and as Alertmanager labels.
    pub service_labels: ServiceLabels,
}

/// Service → label name → value.
pub type ServiceLabels =
    std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>>;

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    pub brokers: String,
    pub group_id: String,
    /// Topic names; an entry starting with `^` is a regex.
    pub topics: Vec<String>,
    /// Where a new consumer group starts: `earliest` or `latest`.
    pub start: String,
    /// Alerts topic; empty = no Kafka alert sink.
    pub alerts_topic: String,
    /// Dead-letter topic for malformed records; empty = none.
    pub dead_letter_topic: String,
    /// Dead-letter copies are cut to this many bytes (header
    /// `faultline.original_bytes` keeps the size), so a record too large
    /// for the broker cannot block the stream.
    pub dead_letter_max_bytes: usize,
    pub transactional_id: String,
    /// Records per batch between commits, at most: `commit_interval`
    /// closes a batch first below 200k records/s, so backlog batches are
    /// time-sized too (a checkpoint costs ~25 ms: 200 of them were most of
    /// a 1M-record drain at the old default of 5000).
    pub batch_size: usize,
    /// A batch is also committed when it is this old, so a quiet topic
    /// does not hold alerts back from read_committed consumers.
    pub commit_interval: Dur,
    /// Consecutive failed batches (sink or broker errors, each retried with
    /// backoff) after which `/healthz` and `/readyz` report unhealthy.
    pub max_failures: u32,
    /// Upper bound of the retry backoff (it doubles from 100ms).
    pub max_backoff: Dur,
    /// On SIGTERM/SIGINT: time allowed to commit the last batch and exit.
    pub shutdown_timeout: Dur,
    /// Event-time alignment across partitions: how long a partition that
    /// has delivered nothing (and is not at its end) may hold the others
    /// back. Bounds the latency a quiet partition adds (`docs/kafka.md`).
    pub max_idle: Dur,
    /// How long a record held open for a trace that may continue waits
    /// once its partition has nothing more to read (the consumer reported
    /// its end): a shipper sends a trace's lines together, so the wait only
    /// has to cover a fetch boundary, not `input.join_max_millis`, which
    /// still applies while the partition has more to read.
    pub hold_at_end: Dur,
    /// Parsed records buffered per partition for the alignment; a partition
    /// with this many waiting is paused until it drains to half. Reached
    /// only by records that come through the consumer's own queue: each
    /// assigned partition has a queue of its own, read only when its buffer
    /// is empty (`source/kafka/queues.rs`).
    pub partition_buffer: usize,
    /// Extra librdkafka properties (security.protocol, sasl.*, ssl.*, …),
    /// passed through to both consumer and producer.
    pub properties: std::collections::BTreeMap<String, String>,
    /// Properties for the consumer only (e.g. session.timeout.ms).
    pub consumer_properties: std::collections::BTreeMap<String, String>,
    /// Properties for the producer only (e.g. linger.ms).
    pub producer_properties: std::collections::BTreeMap<String, String>,
    /// Properties read from files (e.g. `"sasl.password" =
    /// "/run/secrets/kafka"`), trailing newline dropped, added to
    /// `properties` at load; a key in both is an error.
    pub property_files: std::collections::BTreeMap<String, PathBuf>,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            brokers: "127.0.0.1:9092".into(),
            group_id: "faultline".into(),
            topics: vec!["logs".into()],
            start: "earliest".into(),
            alerts_topic: String::new(),
            dead_letter_topic: String::new(),
            dead_letter_max_bytes: 512 * 1024,
            transactional_id: "faultline-1".into(),
            batch_size: 100_000,
            commit_interval: Dur(std::time::Duration::from_millis(500)),
            max_failures: 5,
            max_backoff: Dur::secs(30),
            shutdown_timeout: Dur::secs(20),
            max_idle: Dur::secs(2),
            hold_at_end: Dur(std::time::Duration::from_millis(250)),
            partition_buffer: 50_000,
            properties: Default::default(),
            consumer_properties: Default::default(),
            producer_properties: Default::default(),
            property_files: Default::default(),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ElasticsearchConfig {
    /// Server URL; empty = no Elasticsearch sink.
    pub url: String,
    pub alerts_index: String,
    pub types_index: String,
    pub username: Option<String>,
    pub password: Option<Secret>,
    /// Read `password` from this file (trailing newline dropped).
    pub password_file: Option<PathBuf>,
    /// `id:secret` or the base64 form the server prints.
    pub api_key: Option<Secret>,
    /// Read `api_key` from this file (trailing newline dropped).
    pub api_key_file: Option<PathBuf>,
    pub ca_cert: Option<PathBuf>,
    /// Alerts waiting for the server are kept here (default: `es-spool`
    /// under the state directory, else `./faultline-es-spool`).
    pub spool_dir: Option<PathBuf>,
    /// Bound on one request, and on the time one emit or flush may spend
    /// delivering before it leaves the rest in the spool.
    pub timeout: Dur,
    /// Alerts per bulk request (and pending alerts that trigger one).
    pub bulk_size: usize,
    /// `alerts_index` names a data stream (the template says so) rather
    /// than an index.
    pub data_stream: bool,
    /// Alerts the spool holds unconfirmed at most (in memory and on disk).
    pub spool_max_alerts: usize,
    /// What a full spool does with the next alert (as Vector's buffers).
    pub when_full: WhenFull,
    /// The shape of alert documents: `faultline` (the alert as published,
    /// the default) or `ecs` (Elastic Common Schema fields, with the alert
    /// under `faultline`). docs/elasticsearch.md.
    pub document: DocumentShape,
    /// A retention policy for the alerts data stream (ILM on Elasticsearch,
    /// ISM on OpenSearch); absent = none installed.
    pub lifecycle: Option<LifecycleConfig>,
}

/// The shape of the alert documents faultline indexes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DocumentShape {
    /// `faultline.alert/v1` as published, plus `@timestamp`.
    #[default]
    Faultline,
    /// ECS fields (`@timestamp`, `event.*`, `service.*`, `error.*`,
    /// `message`, `labels.*`) with the v1 alert under `faultline`.
    Ecs,
}

/// `[elasticsearch.lifecycle]`: how long alerts are kept.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LifecycleConfig {
    /// Policy name (default: `alerts_index`).
    #[serde(default)]
    pub policy: Option<String>,
    /// A new backing index after this age (default 1d).
    #[serde(default = "LifecycleConfig::default_rollover")]
    pub rollover_after: Dur,
    /// A backing index is deleted this long after it was rolled over (ILM)
    /// or created (ISM).
    pub delete_after: Dur,
}

impl LifecycleConfig {
    fn default_rollover() -> Dur {
        Dur::secs(86_400)
    }
}

/// What a full Elasticsearch spool does with the next alert.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WhenFull {
    /// Wait, retrying delivery, until the server confirms enough alerts:
    /// nothing is lost, the pipeline (and the Kafka consumer) waits.
    #[default]
    Block,
    /// Leave the new alert out of Elasticsearch (the other sinks still get
    /// it), counted and logged: detection never waits for the server.
    DropNewest,
}

impl Default for ElasticsearchConfig {
    fn default() -> Self {
        ElasticsearchConfig {
            url: String::new(),
            alerts_index: "faultline-alerts".into(),
            types_index: "faultline-types".into(),
            username: None,
            password: None,
            password_file: None,
            api_key: None,
            api_key_file: None,
            ca_cert: None,
            spool_dir: None,
            timeout: Dur::secs(10),
            bulk_size: 500,
            data_stream: false,
            spool_max_alerts: 100_000,
            when_full: WhenFull::Block,
            document: DocumentShape::Faultline,
            lifecycle: None,
        }
    }
}

/// The control API on the `metrics.listen` listener (`[api]`).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Bearer token; needed for reads when the listener is not on a
    /// loopback address.
    pub token: Option<Secret>,
    /// Read `token` from this file (trailing newline dropped).
    pub token_file: Option<PathBuf>,
}

/// Which alerts a sink takes (`[alertmanager.route]`, `[webhook.route]`).
/// Empty lists take everything; all given conditions must hold.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RouteConfig {
    /// Alert kinds (`novel`, `surge`, …); empty = all.
    pub kinds: Vec<String>,
    /// Lowest severity taken (`low`, `medium`, `high`, `critical`).
    pub min_severity: Option<String>,
    /// Services; empty = all.
    pub services: Vec<String>,
    /// Labels the alert must carry, each with exactly this value: its own
    /// (`alertname`, `kind`, `severity`, `service`, `version`,
    /// `fingerprint`, `source`) and those `alerts.service_labels` gives its
    /// service (e.g. `team`); empty = all.
    pub labels: std::collections::BTreeMap<String, String>,
}

/// Prometheus Alertmanager sink (`[alertmanager]`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertmanagerConfig {
    /// Alertmanager base URLs (each gets every alert, as Prometheus sends
    /// to every member of an HA pair); empty = no Alertmanager sink.
    pub urls: Vec<String>,
    /// Bound on one request.
    pub timeout: Dur,
    /// Firing alerts are sent again this often (Prometheus'
    /// `rules.alert.resend-delay`); each send says the alert lasts
    /// 4 × this unless sent again.
    pub resend: Dur,
    /// A novel (or regression) alert resolves when its type is resolved or
    /// muted, or after this long in event time without an occurrence.
    pub resolve_after: Dur,
    /// Base URL of this instance as operators reach it; alerts link to the
    /// type under it (`generatorURL`). Empty = no link.
    pub external_url: String,
    /// Labels added to every alert (e.g. `team`, `env`).
    pub labels: std::collections::BTreeMap<String, String>,
    /// Open alerts are kept here across restarts (default: `alertmanager`
    /// under the state directory, else `./faultline-alertmanager`).
    pub spool_dir: Option<PathBuf>,
    /// Most alerts kept open at once; beyond it the oldest are resolved.
    pub max_open: usize,
    /// PEM file of the CA certificate(s) that signed an `https`
    /// Alertmanager's certificate (a private CA), trusted besides the
    /// system's roots.
    pub ca_file: Option<PathBuf>,
    pub route: RouteConfig,
    /// `alerts.service_labels`, handed over by the sink builder (not a key
    /// of this section).
    #[serde(skip)]
    pub service_labels: ServiceLabels,
}

impl Default for AlertmanagerConfig {
    fn default() -> Self {
        AlertmanagerConfig {
            urls: Vec::new(),
            timeout: Dur::secs(10),
            resend: Dur::secs(60),
            resolve_after: Dur::secs(3600),
            external_url: String::new(),
            labels: Default::default(),
            spool_dir: None,
            max_open: 10_000,
            ca_file: None,
            route: RouteConfig::default(),
            service_labels: Default::default(),
        }
    }
}

/// Generic webhook sink (`[webhook]`): JSON POST of each alert.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookConfig {
    /// Receiver URL; empty = no webhook sink.
    pub url: String,
    /// Extra request headers (e.g. an API key header).
    pub headers: std::collections::BTreeMap<String, String>,
    /// Shared secret: each request carries `X-Faultline-Signature:
    /// sha256=<hex HMAC-SHA256 of the body>`. None = unsigned.
    pub secret: Option<Secret>,
    /// Read `secret` from this file (trailing newline dropped).
    pub secret_file: Option<PathBuf>,
    /// Bound on one request.
    pub timeout: Dur,
    /// Alerts per request: 1 posts each alert as an object, more posts a
    /// JSON array.
    pub batch_size: usize,
    /// Alerts waiting for the receiver (default: `webhook-spool` under the
    /// state directory, else `./faultline-webhook-spool`).
    pub spool_dir: Option<PathBuf>,
    /// PEM file of the CA certificate(s) of an `https` receiver signed by
    /// a private CA, trusted besides the system's roots.
    pub ca_file: Option<PathBuf>,
    pub route: RouteConfig,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig {
            url: String::new(),
            headers: Default::default(),
            secret: None,
            secret_file: None,
            timeout: Dur::secs(10),
            batch_size: 1,
            spool_dir: None,
            ca_file: None,
            route: RouteConfig::default(),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Address of the `/metrics`, `/healthz` and `/readyz` endpoint
    /// (`faultline run`); empty = no endpoint.
    pub listen: String,
    /// `text` or `json` structured logs on stderr.
    pub log_format: String,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            listen: "127.0.0.1:9464".into(),
            log_format: "text".into(),
        }
    }
}

/// `[rates]`: the per-service error-rate ladder (`error_rate` alerts).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RatesConfig {
    pub enabled: bool,
    /// Window the rate is judged over (whole minutes).
    pub window: Dur,
    /// Error-line share above which the rate is `medium`, `high`, `critical`.
    pub medium: f64,
    pub high: f64,
    pub critical: f64,
    /// Minimum lines in the window: three lines with one error are not 33 %
    /// of anything worth paging for.
    pub min_lines: u64,
    /// Minimum error lines in the window.
    pub min_errors: u64,
    /// `change` (default): alert when the rate is above the ladder *and*
    /// significantly above the service's own recent past; `absolute`: the
    /// ladder alone (the behaviour before issue #12).
    pub mode: RateMode,
    /// change: the service's own past, judged against (whole minutes just
    /// before the window; minutes of earlier episodes left out).
    pub baseline_window: Dur,
    /// change: the window's rate must be at least this many times the
    /// baseline rate (effect size: at high volume a tiny rise is
    /// "significant" without mattering).
    pub min_ratio: f64,
    /// change: upper-tail probability (Poisson, widened by the baseline's
    /// own over-dispersion) below which the rise counts as significant.
    pub p_value: f64,
    /// The condition must hold at every minute for this long before the
    /// episode alerts, and its end condition as long before it ends.
    pub hold: Dur,
    /// An episode ends when the rate drops below this share of the level
    /// that opened it (hysteresis: hovering at the step does not flap).
    pub hysteresis: f64,
}

/// How `error_rate` judges a service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum RateMode {
    /// Above the ladder and significantly above the service's own past.
    #[default]
    Change,
    /// Above the ladder, whatever the service's past.
    Absolute,
}

impl Default for RatesConfig {
    fn default() -> Self {
        RatesConfig {
            enabled: true,
            window: Dur::secs(5 * 60),
            medium: 0.01,
            high: 0.02,
            critical: 0.05,
            min_lines: 500,
            min_errors: 10,
            mode: RateMode::Change,
            baseline_window: Dur::secs(60 * 60),
            min_ratio: 1.5,
            p_value: 1e-3,
            hold: Dur::secs(5 * 60),
            hysteresis: 0.8,
        }
    }
}

/// `[release]`: canary comparison, regressions of resolved types and the
/// rollout ladder of `faultline rollout-check`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReleaseConfig {
    /// Emit `canary_regression` alerts while two versions run side by side.
    pub canary: bool,
    /// Emit `regression` alerts for resolved types that come back.
    pub regression: bool,
    /// Window both versions are compared over.
    pub canary_window: Dur,
    /// The canary's overall error rate must exceed the stable one by this
    /// factor (and significantly) to count as a regression.
    pub error_rate_factor: f64,
    /// Same, per error type (rate per 1,000 lines).
    pub type_factor: f64,
    /// Conditional binomial test: p-value below which a difference counts.
    pub p_value: f64,
    /// Minimum lines of each version in the window before comparing.
    pub min_lines: u64,
    /// Canary traffic percentages, in order (`rollout-check` proposes the next).
    pub steps: Vec<u32>,
}

impl Default for ReleaseConfig {
    fn default() -> Self {
        ReleaseConfig {
            canary: true,
            regression: true,
            canary_window: Dur::secs(30 * 60),
            error_rate_factor: 1.2,
            type_factor: 2.0,
            p_value: 0.001,
            min_lines: 200,
            steps: vec![10, 25, 50, 100],
        }
    }
}

/// `[signals]`: latency and traffic from logs (`latency_regression`,
/// `traffic_drop`, `traffic_spike`; docs/release.md).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SignalsConfig {
    /// Keep latency sketches and request counts, and judge them.
    pub enabled: bool,
    /// DDSketch relative accuracy: every quantile is within this fraction
    /// of the true value.
    pub relative_accuracy: f64,
    /// `latency_regression` when the canary's p95 exceeds the stable
    /// version's by more than this factor (beyond the sketches' error) and
    /// significantly.
    pub latency_factor: f64,
    /// The quantile compared (0.95: p95).
    pub latency_quantile: f64,
    /// Significance of the canary comparison (binomial test on how many
    /// canary requests exceed the stable version's quantile).
    pub latency_p_value: f64,
    /// Fewest timed requests of each version in the window before judging.
    pub latency_min_requests: u64,
    /// An objective for the quantile, in milliseconds (0 = none): above it
    /// for `objective_for` fires `latency_regression` on any version.
    pub objective_ms: f64,
    pub objective_for: Dur,
    /// Traffic is judged over this window of closed minutes...
    pub traffic_window: Dur,
    /// ...against the service's own minutes just before it.
    pub traffic_baseline: Dur,
    /// `traffic_drop` when the window holds at most this fraction of the
    /// expected requests (and improbably few); `traffic_spike` at least
    /// `spike_ratio` times them (and improbably many).
    pub drop_ratio: f64,
    pub spike_ratio: f64,
    /// Poisson tail probability (quasi-Poisson, with the service's own
    /// over-dispersion) below which a change counts.
    pub traffic_p_value: f64,
    /// Under `run`: how long (wall clock) every input must have been
    /// silent before the signals' clock moves on by itself (at least
    /// `kafka.max_idle`); see docs/release.md.
    pub silence_after: Dur,
}

impl Default for SignalsConfig {
    fn default() -> Self {
        SignalsConfig {
            enabled: true,
            relative_accuracy: 0.01,
            latency_factor: 1.1,
            latency_quantile: 0.95,
            latency_p_value: 1e-3,
            latency_min_requests: 200,
            objective_ms: 0.0,
            objective_for: Dur::secs(10 * 60),
            traffic_window: Dur::secs(5 * 60),
            traffic_baseline: Dur::secs(60 * 60),
            drop_ratio: 0.5,
            spike_ratio: 3.0,
            traffic_p_value: 1e-6,
            silence_after: Dur::secs(30),
        }
    }
}

impl Config {
    /// Loads `path` (or the defaults when `None`), then applies
    /// `FAULTLINE__…` environment overrides.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let env: Vec<(String, String)> = std::env::vars()
            .filter(|(k, _)| k.starts_with("FAULTLINE__"))
            .collect();
        match path {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                    path: p.to_path_buf(),
                    source,
                })?;
                Config::from_toml(&text, p, &env)
            }
            None => Config::from_toml("", Path::new("<defaults>"), &env),
        }
    }

    /// Parses TOML text, naming `path` in errors, and applies overrides.
    pub fn from_toml(
        text: &str,
        path: &Path,
        env: &[(String, String)],
    ) -> Result<Config, ConfigError> {
        // First pass on the text alone: its errors carry spans, hence lines.
        let cfg: Config = toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1)
                .unwrap_or(0);
            // The key of that line, if it has one (never its value: it may
            // be a secret).
            let key = text
                .lines()
                .nth(line.wrapping_sub(1))
                .and_then(|l| l.split_once('='))
                .map(|(k, _)| k.trim())
                .filter(|k| !k.is_empty() && !k.starts_with(['[', '#']));
            let message = e.message().trim();
            ConfigError::Invalid {
                path: path.to_path_buf(),
                line,
                message: match key {
                    Some(k) => format!("{k}: {message}"),
                    None => message.to_string(),
                },
            }
        })?;
        let cfg = if env.is_empty() {
            cfg
        } else {
            let mut table: toml::Table =
                toml::from_str(text).map_err(|e| ConfigError::Invalid {
                    path: path.to_path_buf(),
                    line: 0,
                    message: e.to_string(),
                })?;
            let check = |t: &toml::Table| -> Result<Config, toml::de::Error> {
                toml::Value::Table(t.clone()).try_into()
            };
            for (var, value) in env {
                let before = table.clone();
                apply_override(&mut table, var, value, false)?;
                if let Err(e) = check(&table) {
                    // A value that reads as a TOML number or bool where a
                    // string is expected (a numeric password among the
                    // Kafka properties): take it as the text it was written.
                    let mut as_text = before;
                    apply_override(&mut as_text, var, value, true)?;
                    if check(&as_text).is_err() {
                        let mut message = e.message().trim().to_string();
                        if is_secret_key(var) && !value.is_empty() {
                            message = message.replace(value, REDACTED);
                        }
                        return Err(ConfigError::Env {
                            var: var.clone(),
                            message,
                        });
                    }
                    table = as_text;
                }
            }
            check(&table).map_err(|e| ConfigError::Env {
                var: "FAULTLINE__*".into(),
                message: e.message().to_string(),
            })?
        };
        let mut cfg = cfg;
        cfg.read_secret_files()?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks ranges and relations serde cannot express. Each error names
    /// the key, its value and the allowed range.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, message: &str| {
            Err(ConfigError::Value {
                key: key.into(),
                message: message.into(),
            })
        };
        let dur = |key: &str, d: Dur, lo: Dur, hi: Dur| {
            if d < lo || d > hi {
                return bad(key, &format!("is {d}; must lie between {lo} and {hi}"));
            }
            Ok(())
        };
        if self.scale_out.enabled && !(1..=10_000).contains(&self.scale_out.partitions) {
            return bad(
                "scale_out.partitions",
                "must lie between 1 and 10000 (partitions of the internal events topic)",
            );
        }
        if self
            .scale_out
            .instance
            .chars()
            .any(|c| !(c.is_ascii_alphanumeric() || "-_.".contains(c)))
        {
            return bad(
                "scale_out.instance",
                "may hold only ASCII letters, digits, `-`, `_` and `.` (it becomes part of transactional ids)",
            );
        }
        let int = |key: &str, v: u64, lo: u64, hi: u64| {
            if v < lo || v > hi {
                return bad(key, &format!("is {v}; must lie between {lo} and {hi}"));
            }
            Ok(())
        };
        // `!(lo <= v && v <= hi)` so that NaN fails too.
        let float = |key: &str, v: f64, lo: f64, hi: f64| {
            if !(lo <= v && v <= hi) {
                return bad(key, &format!("is {v}; must lie between {lo} and {hi}"));
            }
            Ok(())
        };
        const DAY: u64 = 86_400;
        let (ms, s) = (|n: u64| Dur(std::time::Duration::from_millis(n)), Dur::secs);
        let g = &self.signals;
        float("signals.relative_accuracy", g.relative_accuracy, 1e-4, 0.1)?;
        float("signals.latency_factor", g.latency_factor, 1.0, 100.0)?;
        float("signals.latency_quantile", g.latency_quantile, 0.5, 0.999)?;
        float("signals.latency_p_value", g.latency_p_value, 1e-12, 0.5)?;
        int(
            "signals.latency_min_requests",
            g.latency_min_requests,
            1,
            1 << 40,
        )?;
        float("signals.objective_ms", g.objective_ms, 0.0, 6.048e8)?;
        dur("signals.objective_for", g.objective_for, s(60), s(DAY))?;
        dur("signals.traffic_window", g.traffic_window, s(60), s(3600))?;
        dur(
            "signals.traffic_baseline",
            g.traffic_baseline,
            s(300),
            s(3 * 3600),
        )?;
        float("signals.drop_ratio", g.drop_ratio, 0.0, 0.99)?;
        float("signals.spike_ratio", g.spike_ratio, 1.01, 1e6)?;
        float("signals.traffic_p_value", g.traffic_p_value, 1e-15, 0.5)?;
        dur("signals.silence_after", g.silence_after, ms(0), s(DAY))?;
        let i = &self.input;
        int("input.max_line_bytes", i.max_line_bytes as u64, 64, 1 << 30)?;
        int("input.threads", i.threads as u64, 1, 256)?;
        int("input.join_max_records", i.join_max_records, 1, 1 << 30)?;
        int(
            "input.join_max_millis",
            i.join_max_millis,
            0,
            30 * DAY * 1000,
        )?;
        let f = &self.fingerprint;
        int("fingerprint.max_frames", f.max_frames as u64, 0, 64)?;
        int(
            "fingerprint.learn.min_distinct",
            f.learn.min_distinct as u64,
            2,
            1 << 20,
        )?;
        float(
            "fingerprint.learn.min_constant_share",
            f.learn.min_constant_share,
            0.0,
            1.0,
        )?;
        float("fingerprint.learn.min_ratio", f.learn.min_ratio, 0.0, 1.0)?;
        // At least a few long templates' worth; at most far beyond any RAM.
        int(
            "fingerprint.learn.max_bytes",
            f.learn.max_bytes as u64,
            4 << 20,
            1 << 40,
        )?;
        int(
            "fingerprint.learn.max_service_bytes",
            f.learn.max_service_bytes as u64,
            4 << 20,
            f.learn.max_bytes as u64,
        )?;
        let b = &self.baseline;
        dur("baseline.warmup", b.warmup, s(0), s(3650 * DAY))?;
        int(
            "baseline.max_hot_types",
            b.max_hot_types as u64,
            1,
            100_000_000,
        )?;
        int(
            "baseline.max_cold_in_memory",
            b.max_cold_in_memory as u64,
            1,
            100_000_000,
        )?;
        int(
            "baseline.cold_filter_bytes",
            b.cold_filter_bytes as u64,
            1024,
            1 << 32,
        )?;
        int("baseline.samples", b.samples as u64, 0, 100)?;
        int("baseline.checkpoint_every", b.checkpoint_every, 1, u64::MAX)?;
        dur("baseline.durable_every", b.durable_every, s(0), s(3600))?;
        let w = &self.window;
        dur("window.bucket", w.bucket, s(1), s(DAY))?;
        // Every tracked type keeps history / bucket counters: bounded, so a
        // large history cannot make each new type a large allocation.
        let most = w
            .bucket
            .0
            .saturating_mul(MAX_BUCKETS as u32)
            .min(Dur::MAX.0);
        dur("window.history", w.history, w.bucket, Dur(most))?;
        dur("window.lateness", w.lateness, s(0), w.history)?;
        dur("window.future_grace", w.future_grace, s(0), s(30 * DAY))?;
        let d = &self.detect;
        dur("detect.surge_window", d.surge_window, w.bucket, w.history)?;
        int(
            "detect.surge_min_count",
            d.surge_min_count,
            1,
            u64::from(u32::MAX),
        )?;
        float("detect.surge_min_ratio", d.surge_min_ratio, 1.0, 1e9)?;
        if !(d.surge_p_value > 0.0 && d.surge_p_value < 1.0) {
            return bad(
                "detect.surge_p_value",
                &format!("is {}; must lie strictly between 0 and 1", d.surge_p_value),
            );
        }
        float(
            "detect.surge_min_baseline_per_min",
            d.surge_min_baseline_per_min,
            0.0,
            1e9,
        )?;
        dur(
            "detect.surge_new_type_history",
            d.surge_new_type_history,
            s(0),
            s(3650 * DAY),
        )?;
        dur("detect.cooldown", d.cooldown, s(0), s(3650 * DAY))?;
        int(
            "detect.storm_per_minute",
            d.storm_per_minute as u64,
            1,
            1_000_000,
        )?;
        dur("detect.storm_quiet", d.storm_quiet, s(0), s(30 * DAY))?;
        int(
            "detect.novel_rate_min_errors",
            d.novel_rate_min_errors,
            1,
            u64::from(u32::MAX),
        )?;
        float(
            "detect.novel_rate_max_share",
            d.novel_rate_max_share,
            0.0,
            1.0,
        )?;
        let k = &self.kafka;
        if !matches!(k.start.as_str(), "earliest" | "latest") {
            return bad("kafka.start", "must be `earliest` or `latest`");
        }
        float(
            "detect.surge_max_dispersion",
            self.detect.surge_max_dispersion,
            1.0,
            1e9,
        )?;
        int(
            "kafka.dead_letter_max_bytes",
            k.dead_letter_max_bytes as u64,
            1024,
            1 << 30,
        )?;
        int("kafka.batch_size", k.batch_size as u64, 1, 10_000_000)?;
        dur("kafka.commit_interval", k.commit_interval, ms(1), s(3600))?;
        int(
            "kafka.max_failures",
            u64::from(k.max_failures),
            1,
            1_000_000,
        )?;
        dur("kafka.max_backoff", k.max_backoff, ms(100), s(DAY))?;
        dur("kafka.shutdown_timeout", k.shutdown_timeout, s(1), s(3600))?;
        let am = &self.alertmanager;
        dur("alertmanager.timeout", am.timeout, ms(100), s(3600))?;
        dur("alertmanager.resend", am.resend, s(1), s(DAY))?;
        dur(
            "alertmanager.resolve_after",
            am.resolve_after,
            s(1),
            Dur::MAX,
        )?;
        int("alertmanager.max_open", am.max_open as u64, 1, 1_000_000)?;
        let wh = &self.webhook;
        dur("webhook.timeout", wh.timeout, ms(100), s(3600))?;
        int("webhook.batch_size", wh.batch_size as u64, 1, 10_000)?;
        dur("kafka.max_idle", k.max_idle, s(0), s(3600))?;
        dur("kafka.hold_at_end", k.hold_at_end, s(0), s(60))?;
        int(
            "kafka.partition_buffer",
            k.partition_buffer as u64,
            2,
            10_000_000,
        )?;
        let e = &self.elasticsearch;
        dur("elasticsearch.timeout", e.timeout, ms(100), s(3600))?;
        int("elasticsearch.bulk_size", e.bulk_size as u64, 1, 100_000)?;
        int(
            "elasticsearch.spool_max_alerts",
            e.spool_max_alerts as u64,
            e.bulk_size as u64,
            10_000_000,
        )?;
        if let Some(l) = &e.lifecycle {
            // Rollover and deletion act on backing indices: a plain index
            // would never roll over, and deleting it would drop every alert.
            if !e.data_stream {
                return bad(
                    "elasticsearch.lifecycle",
                    "needs elasticsearch.data_stream = true (the policy rolls the stream over and deletes old backing indices)",
                );
            }
            dur(
                "elasticsearch.lifecycle.rollover_after",
                l.rollover_after,
                s(60),
                Dur::MAX,
            )?;
            dur(
                "elasticsearch.lifecycle.delete_after",
                l.delete_after,
                s(60),
                Dur::MAX,
            )?;
        }
        if !matches!(self.metrics.log_format.as_str(), "text" | "json") {
            return bad("metrics.log_format", "must be `text` or `json`");
        }
        let r = &self.rates;
        if !(0.0 < r.medium && r.medium <= r.high && r.high <= r.critical && r.critical <= 1.0) {
            return bad("rates", "need 0 < medium <= high <= critical <= 1");
        }
        let kept = s(crate::series::MINUTES_KEPT as u64 * 60);
        dur("rates.window", r.window, s(60), kept)?;
        // Longer than the minutes kept, a rise could never hold long enough.
        dur("rates.hold", r.hold, s(0), kept)?;
        int("rates.min_lines", r.min_lines, 0, 1 << 40)?;
        int("rates.min_errors", r.min_errors, 0, 1 << 40)?;
        let rel = &self.release;
        dur("release.canary_window", rel.canary_window, s(60), kept)?;
        int("release.min_lines", rel.min_lines, 0, 1 << 40)?;
        float("release.error_rate_factor", rel.error_rate_factor, 1.0, 1e9)?;
        float("release.type_factor", rel.type_factor, 1.0, 1e9)?;
        if !(rel.p_value > 0.0 && rel.p_value < 1.0) {
            return bad(
                "release.p_value",
                &format!("is {}; must lie strictly between 0 and 1", rel.p_value),
            );
        }
        if r.window.as_millis() + r.baseline_window.as_millis()
            > crate::series::MINUTES_KEPT * 60_000
            || r.baseline_window.as_millis() < 60_000
        {
            return bad(
                "rates.baseline_window",
                "must be at least 1m, and with rates.window at most 3h",
            );
        }
        if !(r.p_value > 0.0 && r.p_value < 1.0) {
            return bad(
                "rates.p_value",
                &format!("is {}; must lie strictly between 0 and 1", r.p_value),
            );
        }
        float("rates.min_ratio", r.min_ratio, 1.0, 1e9)?;
        float("rates.hysteresis", r.hysteresis, 0.0, 1.0)?;
        if rel.steps.windows(2).any(|w| w[0] >= w[1])
            || rel.steps.iter().any(|&p| p == 0 || p > 100)
        {
            return bad("release.steps", "must be increasing percentages in 1..=100");
        }
        Ok(())
    }

    /// Reads the `*_file` secrets into their keys. A secret given both
    /// inline and as a file is an error: which one wins would surprise.
    fn read_secret_files(&mut self) -> Result<(), ConfigError> {
        fn read(key: &str, path: &Path) -> Result<Secret, ConfigError> {
            let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Value {
                key: key.into(),
                message: format!("cannot read {}: {e}", path.display()),
            })?;
            Ok(Secret(text.trim_end_matches(['\n', '\r']).to_string()))
        }
        let both = |key: &str| ConfigError::Value {
            key: key.into(),
            message: "given both inline and as a file: keep one".into(),
        };
        let es = &mut self.elasticsearch;
        for (value, file, key) in [
            (
                &mut es.password,
                &es.password_file,
                "elasticsearch.password_file",
            ),
            (
                &mut es.api_key,
                &es.api_key_file,
                "elasticsearch.api_key_file",
            ),
            (
                &mut self.webhook.secret,
                &self.webhook.secret_file,
                "webhook.secret_file",
            ),
            (&mut self.api.token, &self.api.token_file, "api.token_file"),
        ] {
            if let Some(path) = file {
                if value.is_some() {
                    return Err(both(key));
                }
                *value = Some(read(key, path)?);
            }
        }
        for (name, path) in &self.kafka.property_files {
            let key = format!("kafka.property_files.\"{name}\"");
            if self.kafka.properties.contains_key(name) {
                return Err(both(&key));
            }
            let v = read(&key, path)?;
            self.kafka.properties.insert(name.clone(), v.0);
        }
        Ok(())
    }

    /// The effective configuration as TOML, for `faultline config check`:
    /// every secret (passwords, keys, secret Kafka properties, credentials
    /// inside the Elasticsearch URL) shown as `<redacted>`.
    pub fn to_toml(&self) -> String {
        let mut shown = self.clone();
        shown.elasticsearch.url = redact_url(&shown.elasticsearch.url);
        for u in &mut shown.alertmanager.urls {
            *u = redact_url(u);
        }
        shown.webhook.url = redact_url(&shown.webhook.url);
        for (name, value) in &mut shown.webhook.headers {
            if is_secret_key(name) || name.eq_ignore_ascii_case("authorization") {
                *value = REDACTED.into();
            }
        }
        let k = &mut shown.kafka;
        for map in [
            &mut k.properties,
            &mut k.consumer_properties,
            &mut k.producer_properties,
        ] {
            for (key, v) in map.iter_mut() {
                if is_secret_key(key) {
                    *v = REDACTED.into();
                }
            }
        }
        toml::to_string_pretty(&shown).unwrap_or_else(|e| format!("# cannot render config: {e}\n"))
    }
}

fn apply_override(
    table: &mut toml::Table,
    var: &str,
    value: &str,
    as_text: bool,
) -> Result<(), ConfigError> {
    let path: Vec<String> = var
        .trim_start_matches("FAULTLINE__")
        .split("__")
        .map(|s| s.to_ascii_lowercase())
        .collect();
    if path.iter().any(|p| p.is_empty()) {
        return Err(ConfigError::Env {
            var: var.into(),
            message: "expected FAULTLINE__SECTION__KEY".into(),
        });
    }
    let parsed: toml::Value = toml::from_str::<toml::Table>(&format!("v = {value}"))
        .ok()
        .filter(|_| !as_text)
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(value.to_string()));
    let mut cur = table;
    for key in &path[..path.len() - 1] {
        let entry = cur
            .entry(key.clone())
            .or_insert_with(|| toml::Value::Table(Default::default()));
        cur = match entry {
            toml::Value::Table(t) => t,
            _ => {
                return Err(ConfigError::Env {
                    var: var.into(),
                    message: format!("`{key}` is not a section"),
                });
            }
        };
    }
    cur.insert(path[path.len() - 1].clone(), parsed);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_gives_documented_defaults() {
        let c = Config::from_toml("", Path::new("x.toml"), &[]).unwrap();
        assert_eq!(c.baseline.warmup, Dur::secs(1800));
        assert_eq!(c.window.bucket, Dur::secs(60));
        assert_eq!(c.input.min_level, Level::Error);
    }

    #[test]
    fn unknown_key_error_names_file_line_and_key() {
        let text = "[detect]\nsurge_min_count = 5\nsurge_min_cuont = 3\n";
        let err = Config::from_toml(text, Path::new("f.toml"), &[])
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("f.toml:3:"), "{err}");
        assert!(err.contains("surge_min_cuont"), "{err}");
    }

    #[test]
    fn the_learner_thresholds_are_configurable_and_checked() {
        let text = "[fingerprint.learn]\nmin_distinct = 4\nmin_constant_share = 0.6\n";
        let c = Config::from_toml(text, Path::new("f.toml"), &[]).unwrap();
        assert_eq!(c.fingerprint.learn.min_distinct, 4);
        assert_eq!(c.fingerprint.learn.min_constant_share, 0.6);
        assert_eq!(Config::default().fingerprint.learn.min_constant_share, 0.5);
        let bad = "[fingerprint.learn]\nmin_constant_share = 1.5\n";
        let err = Config::from_toml(bad, Path::new("f.toml"), &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("min_constant_share"), "{err}");
    }

    #[test]
    fn replay_threads_are_configurable_and_checked() {
        assert_eq!(Config::default().input.threads, 1);
        let c = Config::from_toml("[input]\nthreads = 2\n", Path::new("f.toml"), &[]).unwrap();
        assert_eq!(c.input.threads, 2);
        let err = Config::from_toml("[input]\nthreads = 0\n", Path::new("f.toml"), &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("input.threads"), "{err}");
    }

    #[test]
    fn durations_parse_in_operator_units() {
        assert_eq!("90s".parse::<Dur>().unwrap(), Dur::secs(90));
        assert_eq!("5m".parse::<Dur>().unwrap(), Dur::secs(300));
        assert_eq!("7d".parse::<Dur>().unwrap(), Dur::secs(7 * 86400));
        assert!("5 parsecs".parse::<Dur>().is_err());
        assert_eq!(Dur::secs(1800).to_string(), "30m");
    }

    #[test]
    fn durations_of_several_parts_parse_as_humantime_reads_them() {
        assert_eq!("1h30m".parse::<Dur>().unwrap(), Dur::secs(5400));
        assert_eq!("2h 15m".parse::<Dur>().unwrap(), Dur::secs(8100));
        assert_eq!("1d12h".parse::<Dur>().unwrap(), Dur::secs(36 * 3600));
        // The single-unit forms keep their meaning.
        assert_eq!("1.5h".parse::<Dur>().unwrap(), Dur::secs(5400));
        assert_eq!("2hours".parse::<Dur>().unwrap(), Dur::secs(7200));
        assert_eq!("45".parse::<Dur>().unwrap(), Dur::secs(45));
        let err = "1h30parsecs".parse::<Dur>().unwrap_err();
        assert!(err.contains("1h30m"), "{err}");
        assert!(
            "100000000d"
                .parse::<Dur>()
                .unwrap_err()
                .contains("too long")
        );
        assert!("-5m".parse::<Dur>().is_err());
    }

    #[test]
    fn environment_overrides_win_over_the_file() {
        let env = vec![
            ("FAULTLINE__DETECT__COOLDOWN".to_string(), "10m".to_string()),
            ("FAULTLINE__BASELINE__SAMPLES".to_string(), "5".to_string()),
        ];
        let c = Config::from_toml("[detect]\ncooldown = \"1h\"\n", Path::new("f"), &env).unwrap();
        assert_eq!(c.detect.cooldown, Dur::secs(600));
        assert_eq!(c.baseline.samples, 5);
    }

    #[test]
    fn a_bad_override_names_the_variable() {
        let env = vec![(
            "FAULTLINE__DETECT__COOLDOWN".to_string(),
            "soon".to_string(),
        )];
        let err = Config::from_toml("", Path::new("f"), &env)
            .unwrap_err()
            .to_string();
        assert!(err.contains("FAULTLINE__DETECT__COOLDOWN"), "{err}");
    }

    #[test]
    fn secrets_are_redacted_in_debug_display_and_the_rendered_config() {
        let env = vec![
            (
                "FAULTLINE__ELASTICSEARCH__PASSWORD".to_string(),
                "env-pw-1".to_string(),
            ),
            (
                "FAULTLINE__KAFKA__PROPERTIES__SASL.PASSWORD".to_string(),
                "31415926".to_string(),
            ),
        ];
        let text = "[elasticsearch]\nurl = \"http://admin:url-pw-2@es.example:9200/\"\n\
                    api_key = \"id:file-key-3\"\n\
                    [kafka.properties]\n\"ssl.key.password\" = \"ssl-pw-4\"\n\
                    \"security.protocol\" = \"SASL_SSL\"\n";
        let c = Config::from_toml(text, Path::new("f.toml"), &env).unwrap();
        assert_eq!(
            c.elasticsearch.password.as_ref().unwrap().expose(),
            "env-pw-1"
        );
        assert_eq!(c.kafka.properties["sasl.password"], "31415926");
        let shown = format!("{}{:?}", c.to_toml(), c.elasticsearch.password);
        for secret in ["env-pw-1", "31415926", "url-pw-2", "file-key-3", "ssl-pw-4"] {
            assert!(!shown.contains(secret), "{secret} shown");
        }
        assert!(shown.contains("SASL_SSL") && shown.contains("es.example:9200"));
        assert!(shown.contains(REDACTED));
    }

    #[test]
    fn a_bad_secret_override_names_the_variable_but_not_the_value() {
        // A secret given a table: the value cannot be taken as text.
        let env = vec![(
            "FAULTLINE__ELASTICSEARCH__API_KEY__PART".to_string(),
            "27182818".to_string(),
        )];
        let err = Config::from_toml("", Path::new("f"), &env)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("FAULTLINE__ELASTICSEARCH__API_KEY__PART"),
            "{err}"
        );
        assert!(!err.contains("27182818"), "{err}");
    }

    #[test]
    fn secrets_can_come_from_files_but_not_twice() {
        let dir = tempfile::tempdir().unwrap();
        let pw = dir.path().join("pw");
        std::fs::write(&pw, "from-file\n").unwrap();
        let text = format!(
            "[elasticsearch]\npassword_file = {:?}\n[kafka.property_files]\n\"sasl.password\" = {:?}\n",
            pw.display().to_string(),
            pw.display().to_string()
        );
        let c = Config::from_toml(&text, Path::new("f"), &[]).unwrap();
        assert_eq!(c.elasticsearch.password.unwrap().expose(), "from-file");
        assert_eq!(c.kafka.properties["sasl.password"], "from-file");
        let twice = format!("{text}[kafka.properties]\n\"sasl.password\" = \"x\"\n");
        let err = Config::from_toml(&twice, Path::new("f"), &[])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("sasl.password") && err.contains("both"),
            "{err}"
        );
        let missing = "[elasticsearch]\napi_key_file = \"/nonexistent/key\"\n";
        let err = Config::from_toml(missing, Path::new("f"), &[])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("api_key_file") && err.contains("/nonexistent/key"),
            "{err}"
        );
    }

    #[test]
    fn urls_lose_their_credentials_when_shown() {
        assert_eq!(
            redact_url("https://u:p@h:9200/x?q=a@b"),
            "https://<redacted>@h:9200/x?q=a@b"
        );
        assert_eq!(redact_url("http://h:9200"), "http://h:9200");
        assert_eq!(redact_url("not a url"), "not a url");
    }
}
