//! Logs as shippers deliver them: envelopes and container runtime lines.
//!
//! Between a service and Kafka usually sits a shipper that wraps each line
//! it read: Fluent Bit and Fluentd put it in `log` beside `kubernetes`
//! metadata, Docker's json-file driver in `log` beside `stream` and `time`,
//! Vector and Filebeat in `message` beside `kubernetes` / ECS `container`,
//! `agent`, `log.file`, OpenTelemetry in `body` beside `severityText` and
//! `resource.attributes`. The container runtime itself (CRI: containerd,
//! CRI-O) writes `<RFC3339Nano> <stdout|stderr> <P|F> <line>`, splitting
//! long lines into partial (`P`) pieces. This module recognises those
//! shapes and hands back the line inside plus what the wrapper knows (time,
//! level, service, version, which container's stream it is), so the line
//! is parsed exactly as it would be in a plain file.
//!
//! Cost on the hot path: recognition rides on the scan every JSON line gets
//! anyway. The record map carries a few top-level *marker* keys (`log` as a
//! string, `kubernetes`, `body`, `resource`, `agent`, …); a line without
//! any costs one AND of a bitmask. Only a line with a marker that lacks a
//! level, service or version of its own is scanned a second time against
//! the envelope map below — application logs (ECS or flat JSON with a
//! level and service) never are. CRI recognition is a few byte compares on
//! lines that start with a digit.
//!
//! A JSON record is *unwrapped* only when it has no level of its own and a
//! string payload (`log`, `body`, `message`): a shipper that already decoded
//! the line (Fluent Bit's `Merge_Log`, a Filebeat JSON processor) leaves a
//! record with a level, which is parsed as it is, with the envelope only
//! filling in service and version.

use std::borrow::Cow;

use super::fields::{FieldMap, FieldMapError, Kind, Slots, Span};
use super::{level_of, time};
use crate::config::FieldsConfig;
use crate::record::{EventTime, Level};

/// Top-level keys that make a JSON line worth a second, envelope scan.
/// Fewer is cheaper: every JSON key of a marker's length is compared with
/// it, so keys that only ever come beside another marker (`severityText`
/// beside `body`, `logtag` and `stream` beside `log`) are left out.
pub(crate) const MARKERS: [&str; 7] = [
    "log",
    "body",
    "kubernetes",
    "resource",
    "agent",
    "container",
    "source_type",
];

// Fields of the envelope map, in `EnvelopeMap::new`'s order.
const LOG: usize = 0;
const BODY: usize = 1;
const MESSAGE: usize = 2;
const TIME: usize = 3;
const STREAM: usize = 4;
const LOGTAG: usize = 5;
const SEVERITY_TEXT: usize = 6;
const SEVERITY_NUMBER: usize = 7;
const NAMESPACE: usize = 8;
const POD: usize = 9;
const CONTAINER: usize = 10;
const SERVICE: usize = 11;
const VERSION: usize = 12;
const RESOURCE_LIST: usize = 13;
const FILE: usize = 14;

/// The compiled envelope paths (explicit: a label key such as
/// `app.kubernetes.io/name` is one key, never split on its dots).
#[derive(Debug)]
pub(crate) struct EnvelopeMap {
    map: FieldMap,
}

fn path(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|p| p.to_string()).collect()
}

/// Filebeat replaces dots in label keys with `_` (`app_kubernetes_io/name`).
fn dedot(label: &str) -> String {
    label.replace('.', "_")
}

fn label_paths(labels: &[String]) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for l in labels {
        out.push(path(&["kubernetes", "labels", l]));
        out.push(path(&["kubernetes", "pod_labels", l]));
        if l.contains('.') {
            out.push(path(&["kubernetes", "labels", &dedot(l)]));
        }
    }
    out
}

impl EnvelopeMap {
    pub fn new(cfg: &FieldsConfig) -> Result<EnvelopeMap, FieldMapError> {
        for l in cfg.service_labels.iter().chain(&cfg.version_labels) {
            if l.is_empty() {
                return Err(FieldMapError::EmptyName {
                    field: "service_labels / version_labels",
                });
            }
        }
        let container_names = [
            path(&["kubernetes", "container_name"]),
            path(&["kubernetes", "container", "name"]),
            path(&["container", "name"]),
        ];
        let mut service = vec![
            path(&["service", "name"]),
            path(&["resource", "service.name"]),
            path(&["resource", "attributes", "service.name"]),
        ];
        service.extend(label_paths(&cfg.service_labels));
        // The container's name is the service's more often than not, and
        // better than the input's name when no label says otherwise.
        service.extend(container_names.iter().cloned());
        let mut version = vec![
            path(&["service", "version"]),
            path(&["resource", "service.version"]),
            path(&["resource", "attributes", "service.version"]),
        ];
        version.extend(label_paths(&cfg.version_labels));
        let mut container = container_names.to_vec();
        container.extend([
            path(&["container", "id"]),
            path(&["docker", "container_id"]),
            path(&["kubernetes", "docker_id"]),
        ]);
        let fields = vec![
            vec![path(&["log"])],
            vec![path(&["body"]), path(&["body", "stringValue"])],
            vec![path(&["message"])],
            vec![
                path(&["time"]),
                path(&["@timestamp"]),
                path(&["timestamp"]),
                path(&["timeUnixNano"]),
                path(&["observedTimeUnixNano"]),
                path(&["date"]),
            ],
            vec![path(&["stream"])],
            vec![path(&["logtag"])],
            vec![path(&["severityText"]), path(&["severity_text"])],
            vec![path(&["severityNumber"]), path(&["severity_number"])],
            vec![
                path(&["kubernetes", "namespace_name"]),
                path(&["kubernetes", "pod_namespace"]),
                path(&["kubernetes", "namespace"]),
            ],
            vec![
                path(&["kubernetes", "pod_name"]),
                path(&["kubernetes", "pod", "name"]),
            ],
            container,
            service,
            version,
            vec![path(&["resource", "attributes"])],
            vec![path(&["log", "file", "path"]), path(&["file"])],
        ];
        Ok(EnvelopeMap {
            map: FieldMap::with_paths(&fields)?,
        })
    }
}

/// What a wrapper says about the line it carries. Borrowed from the record.
#[derive(Debug, Default, Clone)]
pub(crate) struct Outer<'a> {
    pub time: Option<EventTime>,
    pub level: Option<Level>,
    pub service: Option<Cow<'a, str>>,
    pub version: Option<Cow<'a, str>>,
}

/// An unwrapped record: the line inside, what the wrapper says, which
/// stream of the input it belongs to, and whether it is a partial piece.
#[derive(Debug)]
pub(crate) struct Unwrapped<'a> {
    /// `None`: the record is its own line (it has a level of its own).
    pub inner: Option<Cow<'a, str>>,
    pub outer: Outer<'a>,
    /// Identifies the container stream (0 = the input's own).
    pub lane: u64,
    pub partial: bool,
}

/// The last OTLP resource attribute list and what it said: one service
/// sends the same resource with every record.
#[derive(Debug, Default)]
pub(crate) struct ResourceCache {
    raw: String,
    service: Option<String>,
    version: Option<String>,
}

/// A second scan of a JSON line that has an envelope marker. `own_level`
/// says whether the record map found a level: such a record is not
/// unwrapped, only its service and version may come from the envelope.
pub(crate) fn envelope<'a>(
    env: &EnvelopeMap,
    line: &'a str,
    no_control: bool,
    own_level: bool,
    slots: &mut Slots,
    cache: &mut ResourceCache,
) -> Option<Unwrapped<'a>> {
    slots.clear();
    super::json::scan(line, &env.map, slots, no_control).ok()?;
    let m = &env.map;
    let text = |n: usize| m.get_text_nth(slots, n, line);
    let payload = if own_level {
        None
    } else {
        // The first candidate with a non-empty scalar: OTLP's `body` is an
        // object around `stringValue`.
        text(LOG).or_else(|| text(BODY)).or_else(|| text(MESSAGE))
    };
    let mut service = text(SERVICE);
    let mut version = text(VERSION);
    if (service.is_none() || version.is_none())
        && let Some(list) = m
            .get_nth(slots, RESOURCE_LIST)
            .filter(|s| s.kind == Kind::Array)
    {
        let raw = list.raw(line);
        if cache.raw != raw {
            cache.raw.clear();
            cache.raw.push_str(raw);
            (cache.service, cache.version) = otlp_attributes(raw);
        }
        service = service.or_else(|| cache.service.clone().map(Cow::Owned));
        version = version.or_else(|| cache.version.clone().map(Cow::Owned));
    }
    let time = m
        .get_nth(slots, TIME)
        .and_then(|s| span_time(s, line, &text(TIME)));
    let level = text(SEVERITY_TEXT)
        .and_then(|t| level_of(&t))
        .or_else(|| text(SEVERITY_NUMBER).and_then(|n| otel_severity(&n)));
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    let mut keyed = false;
    for n in [NAMESPACE, POD, CONTAINER, FILE, STREAM, SERVICE] {
        if let Some(v) = text(n) {
            h.update(v.as_bytes());
            keyed = true;
        }
        h.update(&[0x1f]);
    }
    let lane = if keyed { h.digest() | 1 } else { 0 };
    let partial = text(LOGTAG).is_some_and(|t| t.starts_with('P'));
    let outer = Outer {
        time,
        level,
        service,
        version,
    };
    Some(Unwrapped {
        // No payload: the record is its own line, only its missing service
        // and version may come from the envelope.
        inner: payload.map(strip_newline),
        outer,
        lane,
        partial,
    })
}

fn span_time(span: Span, line: &str, text: &Option<Cow<'_, str>>) -> Option<EventTime> {
    match span.kind {
        Kind::Num => time::parse_number(span.raw(line)),
        _ => time::parse_text_with(text.as_deref()?, || None),
    }
}

/// Docker and Fluent Bit keep the line's `\n`; the line is what precedes it.
fn strip_newline(s: Cow<'_, str>) -> Cow<'_, str> {
    let trimmed = s.trim_end_matches(['\n', '\r']).len();
    if trimmed == s.len() {
        return s;
    }
    match s {
        Cow::Borrowed(b) => Cow::Borrowed(&b[..trimmed]),
        Cow::Owned(mut o) => {
            o.truncate(trimmed);
            Cow::Owned(o)
        }
    }
}

/// OpenTelemetry severity numbers: 1–4 trace, 5–8 debug, 9–12 info,
/// 13–16 warn, 17–20 error, 21–24 fatal.
fn otel_severity(n: &str) -> Option<Level> {
    Some(match n.trim().parse::<u32>().ok()? {
        1..=4 => Level::Trace,
        5..=8 => Level::Debug,
        9..=12 => Level::Info,
        13..=16 => Level::Warn,
        17..=20 => Level::Error,
        21..=24 => Level::Fatal,
        _ => return None,
    })
}

/// `service.name` and `service.version` from an OTLP/JSON attribute list
/// (`[{"key": …, "value": {"stringValue": …}}, …]`).
fn otlp_attributes(raw: &str) -> (Option<String>, Option<String>) {
    #[derive(serde::Deserialize)]
    struct Attr {
        key: String,
        #[serde(default)]
        value: Option<serde_json::Value>,
    }
    let Ok(list) = serde_json::from_str::<Vec<Attr>>(raw) else {
        return (None, None);
    };
    let value = |k: &str| {
        list.iter().find(|a| a.key == k).and_then(|a| {
            let v = a.value.as_ref()?;
            v.get("stringValue")
                .and_then(|s| s.as_str())
                .or_else(|| v.as_str())
                .filter(|s| !s.trim().is_empty())
                .map(str::to_string)
        })
    };
    (value("service.name"), value("service.version"))
}

/// A container runtime line: `<RFC3339Nano> <stdout|stderr> <P|F> <line>`.
pub(crate) fn cri(line: &str) -> Option<Unwrapped<'_>> {
    let b = line.as_bytes();
    // Cheap rejection first: `YYYY-MM-DDT` with a space after the stamp.
    if b.len() < 30 || !b[0].is_ascii_digit() || b[4] != b'-' || b[10] != b'T' {
        return None;
    }
    let sp = memchr::memchr(b' ', b)?;
    let rest = &line[sp + 1..];
    let (stream, rest) = if let Some(r) = rest.strip_prefix("stdout ") {
        ("stdout", r)
    } else {
        ("stderr", rest.strip_prefix("stderr ")?)
    };
    let tag_end = rest.find(' ').unwrap_or(rest.len());
    let tag = &rest[..tag_end];
    let partial = match tag.as_bytes().first()? {
        b'P' => true,
        b'F' => false,
        _ => return None,
    };
    if tag.len() > 1 && tag.as_bytes()[1] != b':' {
        return None;
    }
    let content = rest.get(tag_end + 1..).unwrap_or("");
    let time = time::parse_text_with(&line[..sp], || None)?;
    let lane = xxhash_rust::xxh3::xxh3_64(stream.as_bytes()) | 1;
    Some(Unwrapped {
        inner: Some(Cow::Borrowed(content)),
        outer: Outer {
            time: Some(time),
            ..Outer::default()
        },
        lane,
        partial,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unwrap(line: &str) -> Option<Unwrapped<'_>> {
        let env = EnvelopeMap::new(&FieldsConfig::default()).unwrap();
        let mut slots = Slots::new();
        let mut cache = ResourceCache::default();
        envelope(&env, line, true, false, &mut slots, &mut cache)
    }

    #[test]
    fn fluent_bit_kubernetes_records_give_the_line_and_the_label_service() {
        let line = r#"{"log":"2026-12-05T10:00:00.000Z ERROR [main] com.shop.Cart - checkout failed\n","stream":"stdout","time":"2026-12-05T10:00:00.1Z","kubernetes":{"namespace_name":"shop","pod_name":"cart-7d9f","container_name":"cart","labels":{"app.kubernetes.io/name":"checkout","app.kubernetes.io/version":"1.4.2"}}}"#;
        let u = unwrap(line).unwrap();
        assert_eq!(
            u.inner.as_deref(),
            Some("2026-12-05T10:00:00.000Z ERROR [main] com.shop.Cart - checkout failed")
        );
        assert_eq!(u.outer.service.as_deref(), Some("checkout"));
        assert_eq!(u.outer.version.as_deref(), Some("1.4.2"));
        assert_ne!(u.lane, 0);
        assert!(u.outer.time.is_some());
    }

    #[test]
    fn filebeat_dedotted_labels_and_ecs_service_are_read() {
        let line = r#"{"@timestamp":"2026-12-05T10:00:00Z","message":"boom","agent":{"type":"filebeat"},"kubernetes":{"pod":{"name":"p-1"},"container":{"name":"web"},"labels":{"app_kubernetes_io/name":"shop"}}}"#;
        let u = unwrap(line).unwrap();
        assert_eq!(u.inner.as_deref(), Some("boom"));
        assert_eq!(u.outer.service.as_deref(), Some("shop"));
    }

    #[test]
    fn otel_records_give_body_severity_and_resource_service_in_both_forms() {
        let list = r#"{"timeUnixNano":"1764928800000000000","severityText":"ERROR","body":{"stringValue":"db down"},"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"billing"}},{"key":"service.version","value":{"stringValue":"2.0.1"}}]}}"#;
        let flat = r#"{"timeUnixNano":1764928800000000000,"severityNumber":17,"body":"db down","resource":{"service.name":"billing","service.version":"2.0.1"}}"#;
        for line in [list, flat] {
            let u = unwrap(line).unwrap();
            assert_eq!(u.inner.as_deref(), Some("db down"), "{line}");
            assert_eq!(u.outer.level, Some(Level::Error), "{line}");
            assert_eq!(u.outer.service.as_deref(), Some("billing"), "{line}");
            assert_eq!(u.outer.version.as_deref(), Some("2.0.1"), "{line}");
            assert_eq!(u.outer.time, Some(1_764_928_800_000), "{line}");
        }
    }

    #[test]
    fn a_record_with_its_own_level_is_not_unwrapped() {
        let env = EnvelopeMap::new(&FieldsConfig::default()).unwrap();
        let mut slots = Slots::new();
        let mut cache = ResourceCache::default();
        let line = r#"{"level":"error","log":"x","kubernetes":{"container_name":"api"}}"#;
        let u = envelope(&env, line, true, true, &mut slots, &mut cache).unwrap();
        assert_eq!(u.inner, None);
        assert_eq!(u.outer.service.as_deref(), Some("api"));
    }

    #[test]
    fn cri_lines_split_into_time_stream_tag_and_content() {
        let u = cri(r#"2026-12-05T10:00:00.123456789Z stdout F {"level":"error"}"#).unwrap();
        assert_eq!(u.inner.as_deref(), Some(r#"{"level":"error"}"#));
        assert!(!u.partial);
        assert_eq!(u.outer.time, Some(1_796_464_800_123));
        let p = cri("2026-12-05T10:00:00.123456789Z stderr P part one").unwrap();
        assert!(p.partial);
        assert_ne!(p.lane, u.lane);
        let empty = cri("2026-12-05T10:00:00.123456789Z stdout F").unwrap();
        assert_eq!(empty.inner.as_deref(), Some(""));
        for not in [
            "2026-12-05T10:00:00.123Z ERROR stdout F x",
            "2026-12-05T10:00:00.123456789Z stdout X x",
            "2026-12-05 10:00:00,123 ERROR something failed here",
        ] {
            assert!(cri(not).is_none(), "{not}");
        }
    }
}
