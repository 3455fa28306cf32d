//! The internal events topic's messages: what stage 1 parsed from one input
//! message (or a watermark), as stage 2 replays it into the engine.
//!
//! JSON for this first slice: readable with any consumer while the design
//! settles, and the serde derive keeps the two ends in step. A compact
//! binary form is the obvious next step once the per-record cost of this
//! one is measured (`docs/scaling.md`, "Not built").

use serde::{Deserialize, Serialize};

use crate::record::{BadReason, EventTime, Level, LineMeta, Record, RequestMeta};

/// One message of the events topic.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct Envelope {
    /// The upstream (input) partition, `topic/partition`: stage 2 keeps one
    /// lane per upstream partition and internal partition.
    pub up: String,
    /// Records parsed from one input message (`None` for a watermark).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<Event>>,
    /// A watermark: stage 1 has forwarded the upstream partition up to a
    /// record of this event time (`None`: it has seen no time yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mark: Option<Mark>,
}

/// Stage 1's progress on one upstream partition, written to every internal
/// partition at each commit (inside the transaction).
#[derive(Debug, Serialize, Deserialize, PartialEq, Clone, Copy)]
pub struct Mark {
    pub time: Option<EventTime>,
    /// The upstream partition was at its end when the batch committed.
    pub at_end: bool,
}

/// One call the parser made on its sink.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "k", rename_all = "snake_case")]
pub enum Event {
    Line {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        time: Option<EventTime>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        level: Option<Level>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        service: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        version: Option<String>,
        /// For the learner: one line in `TEACH_EVERY` carries its message.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        duration_ms: Option<f64>,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        request: bool,
    },
    Error(Record),
    Bad {
        reason: BadReason,
        line: u64,
    },
}

impl Event {
    pub fn line(meta: &LineMeta<'_>) -> Event {
        Event::Line {
            time: meta.time,
            level: meta.level,
            service: meta.service.map(str::to_string),
            version: meta.version.map(str::to_string),
            message: meta.message.map(str::to_string),
            duration_ms: meta.request.duration_ms,
            request: meta.request.request,
        }
    }

    /// The event time that orders this event, if it has one.
    pub fn time(&self) -> Option<EventTime> {
        match self {
            Event::Line { time, .. } => *time,
            Event::Error(r) => r.time,
            Event::Bad { .. } => None,
        }
    }

    /// The service the event belongs to (its key on the events topic).
    pub fn service(&self) -> Option<&str> {
        match self {
            Event::Line { service, .. } => service.as_deref(),
            Event::Error(r) => r.service.as_deref(),
            Event::Bad { .. } => None,
        }
    }

    /// Replays the event into `sink` exactly as the parser called it.
    pub fn apply(self, sink: &mut impl crate::parse::RecordSink) {
        match self {
            Event::Line {
                time,
                level,
                service,
                version,
                message,
                duration_ms,
                request,
            } => sink.line(&LineMeta {
                time,
                level,
                service: service.as_deref(),
                version: version.as_deref(),
                message: message.as_deref(),
                request: RequestMeta {
                    duration_ms,
                    request,
                },
            }),
            Event::Error(r) => sink.error(r),
            Event::Bad { reason, line } => sink.bad(reason, line),
        }
    }
}

/// The internal partition of a service: a stable hash (FNV-1a) modulo the
/// partition count, so every instance's stage 1 sends one service's events
/// to the same partition whatever its client library's partitioner.
pub fn partition_of(service: Option<&str>, partitions: i32) -> i32 {
    let h = service
        .unwrap_or("")
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
    (h % partitions.max(1) as u64) as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Calls(Vec<String>);
    impl crate::parse::RecordSink for Calls {
        fn line(&mut self, m: &LineMeta<'_>) {
            self.0.push(format!(
                "line {:?} {:?} {:?} {:?} {:?}",
                m.time, m.service, m.version, m.message, m.request.duration_ms
            ));
        }
        fn error(&mut self, r: Record) {
            self.0.push(format!("error {r:?}"));
        }
        fn bad(&mut self, reason: BadReason, line: u64) {
            self.0.push(format!("bad {reason:?} {line}"));
        }
    }

    #[test]
    fn events_survive_the_wire_and_replay_the_parsers_calls() {
        let rec = Record {
            time: Some(1_700_000_000_000),
            level: Some(Level::Error),
            message: "boom".into(),
            service: Some("api".into()),
            stack_trace: Some("at x".into()),
            line: 7,
            ..Record::default()
        };
        let meta = LineMeta {
            time: Some(1_700_000_000_000),
            level: Some(Level::Info),
            service: Some("api"),
            version: Some("1.2"),
            message: Some("took 5ms"),
            request: RequestMeta {
                duration_ms: Some(5.0),
                request: true,
            },
        };
        let env = Envelope {
            up: "logs/3".into(),
            events: Some(vec![
                Event::line(&meta),
                Event::Error(rec.clone()),
                Event::Bad {
                    reason: BadReason::InvalidJson,
                    line: 9,
                },
            ]),
            mark: None,
        };
        let bytes = serde_json::to_vec(&env).expect("encode");
        let back: Envelope = serde_json::from_slice(&bytes).expect("decode");
        assert_eq!(back, env);
        let (mut direct, mut replayed) = (Calls::default(), Calls::default());
        crate::parse::RecordSink::line(&mut direct, &meta);
        crate::parse::RecordSink::error(&mut direct, rec);
        crate::parse::RecordSink::bad(&mut direct, BadReason::InvalidJson, 9);
        for e in back.events.unwrap_or_default() {
            e.apply(&mut replayed);
        }
        assert_eq!(replayed.0, direct.0);
    }

    #[test]
    fn a_service_always_maps_to_the_same_partition_within_range() {
        for n in [1, 3, 12] {
            for s in [None, Some(""), Some("checkout"), Some("payments")] {
                let p = partition_of(s, n);
                assert!((0..n).contains(&p));
                assert_eq!(p, partition_of(s, n));
            }
        }
        assert_eq!(partition_of(None, 12), partition_of(Some(""), 12));
    }
}
