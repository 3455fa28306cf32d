//! The changelog: stage 2's state, one [`State`] per internal partition,
//! in a compacted topic partitioned like the events topic.
//!
//! At each stage-2 commit, every internal partition the instance worked on
//! is written as a snapshot inside the same transaction as the alerts and
//! the events offsets, so the changelog, the alerts topic and the consumer
//! group never disagree: a crash or a rebalance at any point leaves the
//! last committed snapshot matching the committed offset. The new owner of
//! a partition reads its changelog partition to the end before it decides
//! anything.
//!
//! A snapshot is the partition's whole state (a first slice: the cost is
//! measured in docs/scaling.md), cut into chunks under the broker's message
//! size: keys `c0`, `c1`, … hold the chunks and `head` says which
//! generation and how many, written last. Compaction keeps the latest value
//! per key; chunks beyond a shorter snapshot's count get tombstones.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::BaseRecord;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use super::{ScaleError, kafka};
use crate::alert::kafka::SharedProducer;
use crate::state::State;

/// Chunk size before compression: well under the broker's default
/// `message.max.bytes` (1 MB).
const CHUNK: usize = 512 * 1024;
const HEAD: &[u8] = b"head";

/// Where a partition's changelog stands after a write or a restore.
#[derive(Clone, Copy, Debug, Default)]
pub struct Written {
    /// Generation of the last snapshot (0 = none).
    pub generation: u64,
    /// Its chunk count (chunks at and beyond it are stale).
    pub chunks: usize,
    /// Its encoded size in bytes.
    pub bytes: usize,
}

/// Encodes a partition's state: the JSON of [`State`] (as the state file
/// was) then the signals, which the JSON skips, in postcard.
pub fn encode(state: &State) -> Result<Vec<u8>, ScaleError> {
    let json = serde_json::to_vec(state)
        .map_err(|e| ScaleError::Topic(format!("encoding a state snapshot: {e}")))?;
    let mut out = Vec::with_capacity(json.len() + 64);
    out.extend_from_slice(&(json.len() as u64).to_be_bytes());
    out.extend_from_slice(&json);
    postcard::to_io(&state.signals, &mut out)
        .map_err(|e| ScaleError::Topic(format!("encoding a state snapshot's signals: {e}")))?;
    Ok(out)
}

/// [`encode`]'s inverse.
pub fn decode(bytes: &[u8]) -> Result<State, String> {
    let (len, rest) = bytes
        .split_first_chunk::<8>()
        .ok_or("a snapshot shorter than its header")?;
    let len = usize::try_from(u64::from_be_bytes(*len)).map_err(|e| e.to_string())?;
    if rest.len() < len {
        return Err(format!(
            "a snapshot of {} bytes announces {len}",
            rest.len()
        ));
    }
    let mut state: State = serde_json::from_slice(&rest[..len]).map_err(|e| e.to_string())?;
    state.signals = postcard::from_bytes(&rest[len..]).map_err(|e| e.to_string())?;
    Ok(state)
}

/// Produces `state` as partition `partition`'s next snapshot into the open
/// transaction of `producer`; `last` is what the previous one wrote.
pub fn write(
    producer: &SharedProducer,
    topic: &str,
    partition: i32,
    state: &State,
    last: Written,
) -> Result<Written, ScaleError> {
    let bytes = encode(state)?;
    let generation = last.generation + 1;
    let chunks: Vec<&[u8]> = if bytes.is_empty() {
        vec![&[][..]]
    } else {
        bytes.chunks(CHUNK).collect()
    };
    let send = |key: &[u8], payload: Option<&[u8]>| -> Result<(), ScaleError> {
        let mut rec: BaseRecord<'_, [u8], [u8]> =
            BaseRecord::to(topic).partition(partition).key(key);
        if let Some(p) = payload {
            rec = rec.payload(p);
        }
        super::send_waiting(&**producer, rec, "producing a state snapshot")
    };
    let mut value = Vec::with_capacity(CHUNK + 8);
    for (i, c) in chunks.iter().enumerate() {
        value.clear();
        value.extend_from_slice(&generation.to_be_bytes());
        value.extend_from_slice(c);
        send(format!("c{i}").as_bytes(), Some(&value))?;
    }
    for i in chunks.len()..last.chunks {
        send(format!("c{i}").as_bytes(), None)?;
    }
    let mut head = generation.to_be_bytes().to_vec();
    head.extend_from_slice(&(chunks.len() as u64).to_be_bytes());
    send(HEAD, Some(&head))?;
    Ok(Written {
        generation,
        chunks: chunks.len(),
        bytes: bytes.len(),
    })
}

/// The latest committed snapshot in what was read of a partition.
fn assemble(latest: &HashMap<Vec<u8>, Vec<u8>>) -> Result<Option<(State, Written)>, String> {
    let Some(head) = latest.get(HEAD) else {
        return Ok(None);
    };
    let (g, n) = match (head.get(..8), head.get(8..16)) {
        (Some(g), Some(n)) => (
            u64::from_be_bytes(g.try_into().map_err(|_| "head")?),
            u64::from_be_bytes(n.try_into().map_err(|_| "head")?) as usize,
        ),
        _ => return Err("a snapshot head shorter than 16 bytes".into()),
    };
    let mut bytes = Vec::new();
    for i in 0..n {
        let c = latest
            .get(format!("c{i}").as_bytes())
            .ok_or_else(|| format!("snapshot {g}: chunk {i} of {n} missing"))?;
        match c.split_first_chunk::<8>() {
            Some((cg, rest)) if u64::from_be_bytes(*cg) == g => bytes.extend_from_slice(rest),
            _ => return Err(format!("snapshot {g}: chunk {i} of another generation")),
        }
    }
    let state = decode(&bytes)?;
    let stale = latest
        .keys()
        .filter(|k| k.first() == Some(&b'c'))
        .count()
        .max(n);
    Ok(Some((
        state,
        Written {
            generation: g,
            chunks: stale,
            bytes: bytes.len(),
        },
    )))
}

/// A consumer that reads changelog partitions by assignment (no group).
pub(crate) fn reader(client: &ClientConfig) -> Result<BaseConsumer<super::Quiet>, ScaleError> {
    let mut c = client.clone();
    c.set("group.id", "faultline-changelog-reader")
        .set("enable.partition.eof", "true")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed");
    c.create_with_context(super::Quiet)
        .map_err(kafka("creating the changelog reader"))
}

/// A partition to restore: its number, the events offset the group
/// committed for it (`None` = nothing committed yet) and the key under
/// which a snapshot records that offset.
pub(crate) struct Wanted {
    pub partition: i32,
    pub committed: Option<i64>,
    pub events_key: String,
}

/// Restores the states of `wanted` partitions from the changelog, all at
/// once (one reader, every partition assigned together: a rebalance costs
/// one read of the changelog, not one per partition). Each partition is
/// read to its end under read_committed until the snapshot found is the
/// one its committed offset belongs to (a snapshot records the offset it
/// was committed with). A snapshot behind the commit means a transaction
/// of a stopped owner still holds the end of the changelog back (the
/// broker aborts it after its `transaction.timeout.ms`): restoring then
/// would lose or repeat work, so it waits up to `wait`.
pub(crate) fn restore(
    reader: &BaseConsumer<super::Quiet>,
    topic: &str,
    wanted: &[Wanted],
    wait: Duration,
) -> Result<HashMap<i32, Option<(State, Written)>>, ScaleError> {
    let mut out = HashMap::new();
    if wanted.is_empty() {
        return Ok(out);
    }
    let mut tpl = TopicPartitionList::new();
    for w in wanted {
        tpl.add_partition_offset(topic, w.partition, Offset::Beginning)
            .map_err(kafka("changelog offsets"))?;
    }
    reader
        .assign(&tpl)
        .map_err(kafka("assigning the changelog partitions"))?;
    let until = Instant::now() + wait;
    let mut latest: HashMap<i32, HashMap<Vec<u8>, Vec<u8>>> = HashMap::new();
    let mut logged = false;
    while out.len() < wanted.len() {
        let ended = match reader.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                let keys = latest.entry(m.partition()).or_default();
                let key = m.key().unwrap_or(&[]).to_vec();
                match m.payload() {
                    Some(v) => {
                        keys.insert(key, v.to_vec());
                    }
                    None => {
                        keys.remove(&key);
                    }
                }
                None
            }
            Some(Err(KafkaError::PartitionEOF(p))) => Some(p),
            Some(Err(e)) => {
                tracing::warn!(error = %e, "changelog reader");
                None
            }
            None => None,
        };
        let Some(p) = ended else {
            if Instant::now() >= until {
                break;
            }
            continue;
        };
        let Some(w) = wanted.iter().find(|w| w.partition == p) else {
            continue;
        };
        let found = assemble(latest.get(&p).unwrap_or(&HashMap::new())).map_err(|e| {
            ScaleError::Topic(format!(
                "changelog {topic} partition {p} is not readable: {e}"
            ))
        })?;
        let at = found
            .as_ref()
            .and_then(|(s, _)| s.kafka_offsets.get(&w.events_key).copied());
        if at == w.committed || w.committed.is_none() {
            out.insert(p, found);
        } else if !logged {
            tracing::info!(
                partition = p,
                snapshot = ?at,
                committed = ?w.committed,
                "changelog behind the commit: waiting for a stopped owner's transaction to end"
            );
            logged = true;
        }
        if Instant::now() >= until {
            break;
        }
    }
    reader
        .unassign()
        .map_err(kafka("unassigning the changelog partitions"))?;
    if out.len() < wanted.len() {
        let missing: Vec<i32> = wanted
            .iter()
            .map(|w| w.partition)
            .filter(|p| !out.contains_key(p))
            .collect();
        return Err(ScaleError::Topic(format!(
            "changelog {topic}: partitions {missing:?} did not reach the snapshot of their \
             committed offset within {wait:?} (an open transaction of a stopped owner that \
             did not end, or the changelog was deleted while the group's offsets were kept)"
        )));
    }
    Ok(out)
}

/// The latest committed state of every partition of the changelog `topic`
/// (partitions `0..partitions`), for tools and tests that add up what the
/// instances of a group processed.
pub fn states(
    client: &ClientConfig,
    topic: &str,
    partitions: i32,
) -> Result<Vec<(i32, State)>, ScaleError> {
    let r = reader(client)?;
    let wanted: Vec<Wanted> = (0..partitions)
        .map(|partition| Wanted {
            partition,
            committed: None,
            events_key: String::new(),
        })
        .collect();
    let mut out: Vec<(i32, State)> = restore(&r, topic, &wanted, Duration::from_secs(5))?
        .into_iter()
        .filter_map(|(p, s)| Some((p, s?.0)))
        .collect();
    out.sort_by_key(|(p, _)| *p);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_decodes_to_the_state_it_encodes() {
        let cfg = crate::config::Config::default();
        let mut s = State::new(
            crate::baseline::Baseline::new(&cfg, 0),
            crate::detect::Detector::new(&cfg),
        );
        s.kafka_records = 42;
        s.kafka_offsets.insert("ev/3".into(), 17);
        let back = decode(&encode(&s).unwrap()).unwrap();
        assert_eq!(back.kafka_records, 42);
        assert_eq!(back.kafka_offsets.get("ev/3"), Some(&17));
        assert!(decode(&[0, 0, 0, 0, 0, 0, 0, 9, b'{']).is_err());
    }

    #[test]
    fn chunks_of_an_older_generation_are_not_assembled() {
        let cfg = crate::config::Config::default();
        let s = State::new(
            crate::baseline::Baseline::new(&cfg, 0),
            crate::detect::Detector::new(&cfg),
        );
        let bytes = encode(&s).unwrap();
        let mut latest = HashMap::new();
        let mut c0 = 2u64.to_be_bytes().to_vec();
        c0.extend_from_slice(&bytes);
        latest.insert(b"c0".to_vec(), c0.clone());
        let mut head = 2u64.to_be_bytes().to_vec();
        head.extend_from_slice(&1u64.to_be_bytes());
        latest.insert(HEAD.to_vec(), head.clone());
        let (_, w) = assemble(&latest).unwrap().unwrap();
        assert_eq!((w.generation, w.chunks), (2, 1));
        c0[7] = 1; // generation 1: left from an older snapshot
        latest.insert(b"c0".to_vec(), c0);
        assert!(assemble(&latest).is_err());
        assert!(assemble(&HashMap::new()).unwrap().is_none());
    }
}
