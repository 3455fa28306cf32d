//! The control topic: resolve, mute (snooze), unmute and merge under
//! scale-out. A type's state lives in the engine of the stage-2 instance
//! that owns its internal partition, which the instance that an operator
//! asks (through the HTTP API or `faultline types`) need not be. So a
//! write is not applied where it is asked: it is produced to the compacted
//! topic `<kafka.group_id>-control`, and every stage-2 instance reads that
//! topic whole and applies each command to the engines it owns that know
//! the type.
//!
//! **Keys.** A command is keyed by its fingerprint and what it sets
//! (`<fp>/resolve`, `<fp>/mute` for mute, snooze and unmute,
//! `<fp>/merge`): compaction keeps the latest of each, which is the
//! operator's last word on that mark of that type, so the topic stays as
//! small as the set of types anyone ever triaged.
//!
//! **Applied once per partition, also across moves.** Each partition's
//! state records, per key, the control offset it has applied
//! (`kafka_offsets["control|<key>"]`), and that record travels in the
//! changelog snapshot with the state it changed. A restored owner applies
//! the commands its snapshot had not (the ones after the restored
//! offset), never one again: a snooze for N more occurrences or a resolve
//! (which takes the engine's event time) would otherwise change meaning.
//! A command for a type the partition does not know is left unapplied and
//! tried again when the partition's types change (a type can be asked
//! about before a lagging owner has seen it); a type known on several
//! partitions (an imported `--baseline` is in every engine) is changed on
//! each.
//!
//! A snooze's relative end ("for 2h") is taken from the moment it was
//! asked (carried in the record), so every owner ends it at the same time.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

use super::{Quiet, ScaleError, kafka};
use crate::api::control::{Action, Command, Rejected, edit};
use crate::config::{Config, Dur};
use crate::detect::snooze::Until;
use crate::fingerprint::Fingerprint;
use crate::record::EventTime;
use crate::state::State;

/// The control topic's name: `<kafka.group_id>-control`.
pub fn topic(cfg: &Config) -> String {
    format!("{}-control", cfg.kafka.group_id)
}

/// The key a command is compacted under.
pub fn key(c: &Command) -> String {
    let mark = match c.action {
        Action::Resolve { .. } => "resolve",
        Action::Mute | Action::Snooze { .. } | Action::Unmute => "mute",
        Action::Merge { .. } => "merge",
    };
    format!("{}/{mark}", c.fingerprint)
}

/// A command as it travels (JSON: readable with any Kafka tool).
#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Wire {
    fingerprint: String,
    action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    in_version: Option<String>,
    /// A snooze's end as a moment (epoch ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    until_ms: Option<i64>,
    /// A snooze's end as a duration from `asked_ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    for_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    count: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    into: Option<String>,
    /// When the operator asked (wall clock, epoch ms).
    asked_ms: i64,
}

/// Encodes `c`, asked at `asked_ms`.
pub fn encode(c: &Command, asked_ms: i64) -> Vec<u8> {
    let mut w = Wire {
        fingerprint: c.fingerprint.to_string(),
        action: String::new(),
        in_version: None,
        until_ms: None,
        for_ms: None,
        count: None,
        into: None,
        asked_ms,
    };
    w.action = match &c.action {
        Action::Resolve { in_version } => {
            w.in_version = in_version.clone();
            "resolve"
        }
        Action::Mute => "mute",
        Action::Snooze { until, count } => {
            match until {
                Some(Until::At(t)) => w.until_ms = Some(*t),
                Some(Until::For(d)) => w.for_ms = Some(d.0.as_millis() as u64),
                None => {}
            }
            w.count = *count;
            "snooze"
        }
        Action::Unmute => "unmute",
        Action::Merge { into } => {
            w.into = Some(into.to_string());
            "merge"
        }
    }
    .to_string();
    serde_json::to_vec(&w).unwrap_or_default()
}

/// [`encode`]'s inverse: the command and when it was asked.
pub fn decode(bytes: &[u8]) -> Result<(Command, i64), String> {
    let w: Wire = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    let fingerprint: Fingerprint = w
        .fingerprint
        .parse::<Fingerprint>()
        .map_err(|e| e.to_string())?;
    let action = match w.action.as_str() {
        "resolve" => Action::Resolve {
            in_version: w.in_version,
        },
        "mute" => Action::Mute,
        "snooze" => Action::Snooze {
            until: match (w.until_ms, w.for_ms) {
                (Some(t), _) => Some(Until::At(t as EventTime)),
                (None, Some(ms)) => Some(Until::For(Dur(Duration::from_millis(ms)))),
                (None, None) => None,
            },
            count: w.count,
        },
        "unmute" => Action::Unmute,
        "merge" => Action::Merge {
            into: w
                .into
                .as_deref()
                .unwrap_or_default()
                .parse()
                .map_err(|e| format!("merge target: {e}"))?,
        },
        other => return Err(format!("unknown action `{other}`")),
    };
    Ok((
        Command {
            fingerprint,
            action,
        },
        w.asked_ms,
    ))
}

/// Produces commands to the control topic, each acknowledged by every
/// in-sync replica before [`Sender::send`] returns (so a caller told "sent"
/// is never lost).
pub struct Sender {
    producer: FutureProducer,
    topic: String,
    rt: tokio::runtime::Runtime,
}

impl Sender {
    pub fn new(cfg: &Config) -> Result<Sender, ScaleError> {
        let mut pc = super::client(cfg, &cfg.kafka.producer_properties);
        pc.set("enable.idempotence", "true").set("acks", "all");
        let producer: FutureProducer = pc
            .create()
            .map_err(kafka("creating the control producer"))?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| {
                ScaleError::Topic(format!("starting a runtime for the control producer: {e}"))
            })?;
        Ok(Sender {
            producer,
            topic: topic(cfg),
            rt,
        })
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Sends `c`; returns its offset.
    pub fn send(&self, c: &Command, asked_ms: i64) -> Result<i64, ScaleError> {
        let payload = encode(c, asked_ms);
        let k = key(c);
        let rec = FutureRecord::to(&self.topic).key(&k).payload(&payload);
        self.rt
            .block_on(self.producer.send(rec, Duration::from_secs(30)))
            .map(|d| d.offset)
            .map_err(|(e, _)| ScaleError::Kafka {
                context: "sending a command to the control topic",
                source: e,
            })
    }
}

/// Creates the control topic (one compacted partition: commands are few,
/// and one partition orders them) unless it exists.
pub fn ensure(cfg: &Config) -> Result<(), ScaleError> {
    let admin = super::client(cfg, &BTreeMap::new());
    super::topics::ensure(
        &admin,
        &topic(cfg),
        1,
        cfg.scale_out.replication,
        &[("cleanup.policy", "compact")],
    )
    .map(|_| ())
}

/// One command as read, latest per key.
#[derive(Clone, Debug)]
pub struct Entry {
    /// Its position in the topic (`partition`, `offset`).
    pub partition: i32,
    pub offset: i64,
    pub command: Command,
    pub asked_ms: i64,
}

/// The whole control topic as stage 2 reads it: every partition assigned
/// (no group: every instance reads everything), from the beginning,
/// read_committed; the latest command per key kept in memory.
pub struct Log {
    reader: BaseConsumer<Quiet>,
    latest: BTreeMap<String, Entry>,
}

impl Log {
    pub fn new(cfg: &Config) -> Result<Log, ScaleError> {
        let t = topic(cfg);
        let admin = super::client(cfg, &BTreeMap::new());
        let partitions = super::topics::partitions_of(&admin, &t)?;
        let mut cc = super::client(cfg, &cfg.kafka.consumer_properties);
        cc.set("group.id", format!("{}-control-reader", cfg.kafka.group_id))
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "false")
            .set("isolation.level", "read_committed");
        let reader: BaseConsumer<Quiet> = cc
            .create_with_context(Quiet)
            .map_err(kafka("creating the control reader"))?;
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions {
            tpl.add_partition_offset(&t, p, Offset::Beginning)
                .map_err(kafka("control offsets"))?;
        }
        reader
            .assign(&tpl)
            .map_err(kafka("assigning the control topic"))?;
        Ok(Log {
            reader,
            latest: BTreeMap::new(),
        })
    }

    /// Reads what has arrived, without waiting; returns whether anything
    /// new was read.
    pub fn poll(&mut self) -> bool {
        let mut new = false;
        for _ in 0..1000 {
            match self.reader.poll(Duration::ZERO) {
                Some(Ok(m)) => {
                    let Some(key) = m.key().and_then(|k| std::str::from_utf8(k).ok()) else {
                        continue;
                    };
                    match m.payload().map(decode) {
                        Some(Ok((command, asked_ms))) => {
                            self.latest.insert(
                                key.to_string(),
                                Entry {
                                    partition: m.partition(),
                                    offset: m.offset(),
                                    command,
                                    asked_ms,
                                },
                            );
                            new = true;
                        }
                        // A tombstone withdraws the key's command.
                        None => {
                            self.latest.remove(key);
                        }
                        Some(Err(e)) => {
                            tracing::warn!(offset = m.offset(), error = %e, "an undecodable control command; skipped");
                        }
                    }
                }
                Some(Err(KafkaError::PartitionEOF(_))) => {}
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "control topic reader");
                    break;
                }
                None => break,
            }
        }
        new
    }

    /// Commands read so far (latest per key).
    pub fn len(&self) -> usize {
        self.latest.len()
    }

    pub fn is_empty(&self) -> bool {
        self.latest.is_empty()
    }

    /// Applies to `state` every command it has not applied and whose type
    /// it knows; returns how many it applied.
    pub fn apply(&self, state: &mut State) -> usize {
        apply(self.latest.iter(), state)
    }
}

fn applied_key(key: &str) -> String {
    format!("control|{key}")
}

/// [`Log::apply`] over `entries` (key, entry).
fn apply<'a>(entries: impl Iterator<Item = (&'a String, &'a Entry)>, state: &mut State) -> usize {
    let mut n = 0;
    for (key, e) in entries {
        let mark = applied_key(key);
        // Offsets of one key grow (one partition per key).
        if state
            .kafka_offsets
            .get(&mark)
            .is_some_and(|&o| o >= e.offset)
        {
            continue;
        }
        match edit(state, &e.command, e.asked_ms) {
            // Not this partition's type (or not seen yet): tried again.
            Err(Rejected::NotFound(_)) => continue,
            Ok(_) => n += 1,
            // Refused as it stands (e.g. merging a type into itself): done.
            Err(Rejected::Conflict(why)) => {
                tracing::info!(key, why, "a control command refused by the state");
            }
        }
        state.kafka_offsets.insert(mark, e.offset);
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fp(s: &str) -> Fingerprint {
        s.parse().unwrap()
    }

    #[test]
    fn every_action_survives_the_wire() {
        let cmds = [
            Action::Resolve {
                in_version: Some("2.1".into()),
            },
            Action::Resolve { in_version: None },
            Action::Mute,
            Action::Snooze {
                until: Some(Until::At(1_700_000_000_000)),
                count: Some(5),
            },
            Action::Snooze {
                until: Some(Until::For(Dur(Duration::from_secs(7200)))),
                count: None,
            },
            Action::Unmute,
            Action::Merge {
                into: fp("00000000000000ab"),
            },
        ];
        for action in cmds {
            let c = Command {
                fingerprint: fp("0123456789abcdef"),
                action,
            };
            let (back, at) = decode(&encode(&c, 42)).unwrap();
            assert_eq!(back, c);
            assert_eq!(at, 42);
        }
    }

    #[test]
    fn mute_snooze_and_unmute_share_a_key_and_resolve_has_its_own() {
        let c = |action| Command {
            fingerprint: fp("0123456789abcdef"),
            action,
        };
        assert_eq!(key(&c(Action::Mute)), key(&c(Action::Unmute)));
        assert_ne!(
            key(&c(Action::Mute)),
            key(&c(Action::Resolve { in_version: None }))
        );
    }

    fn entries(cmds: &[(i64, Command)]) -> BTreeMap<String, Entry> {
        let mut m = BTreeMap::new();
        for (offset, c) in cmds {
            m.insert(
                key(c),
                Entry {
                    partition: 0,
                    offset: *offset,
                    command: c.clone(),
                    asked_ms: 1_793_613_700_000,
                },
            );
        }
        m
    }

    #[test]
    fn a_command_applies_once_to_the_partition_that_knows_the_type_and_waits_elsewhere() {
        let mute = Command {
            fingerprint: Fingerprint(7),
            action: Action::Mute,
        };
        let log = entries(&[(3, mute.clone())]);
        let mut owner = crate::api::control::tests::engine_with(7);
        let owner = &mut owner.state;
        let mut other = crate::api::control::tests::engine_with(8);
        let other = &mut other.state;
        assert_eq!(apply(log.iter(), owner), 1);
        assert!(owner.baseline.get(Fingerprint(7)).unwrap().muted);
        // Applied once: a second pass (a restored owner) does nothing.
        assert_eq!(apply(log.iter(), owner), 0);
        // Another partition does not know the type: nothing, tried again.
        assert_eq!(apply(log.iter(), other), 0);
        assert!(
            !other
                .kafka_offsets
                .contains_key("control|0000000000000007/mute")
        );
        // An unmute later under the same key applies on top.
        let unmute = Command {
            fingerprint: Fingerprint(7),
            action: Action::Unmute,
        };
        let log = entries(&[(5, unmute)]);
        assert_eq!(apply(log.iter(), owner), 1);
        assert!(!owner.baseline.get(Fingerprint(7)).unwrap().muted);
    }

    #[test]
    fn a_garbled_command_is_an_error_not_a_panic() {
        assert!(decode(b"{").is_err());
        assert!(decode(br#"{"fingerprint":"zz","action":"mute","asked_ms":1}"#).is_err());
        assert!(
            decode(br#"{"fingerprint":"0123456789abcdef","action":"explode","asked_ms":1}"#)
                .is_err()
        );
    }
}
