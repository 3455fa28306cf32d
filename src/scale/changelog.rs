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
//! Written incrementally, so a commit costs what changed, not the state:
//!
//! * **one record per error type**, key `t` + its fingerprint (8 bytes, big
//!   endian), the type as JSON; written when the baseline marks the type
//!   changed ([`crate::baseline::Dirty`], the set the state store writes
//!   from), a tombstone when it left the partition's types (evicted to the
//!   cold set, merged away). Types are most of a large state (~1.4 KB each
//!   with their windows), and most of them do not change between commits;
//! * **one record per learner row**, key `l`, the table (`c` cluster, `e`
//!   template index, `s` skeleton, `g` generalised bucket, `k` learned key)
//!   and the row's key (8 bytes), as JSON: the rows the learner marks
//!   changed ([`LearnerChanges`]), as the state store writes them; after
//!   an eviction or a rebuild the learner marks everything and every row
//!   is written again, with tombstones for the rows gone. The learner
//!   grows with the templates (a skeleton per word of each) and is, on
//!   real logs, as large as the types or larger;
//! * **the rest of the state** (offsets, watermark, cold set, aliases,
//!   rates, detector memory, signals), written whole at every commit, cut
//!   into chunks under the broker's message size: keys `c0`, `c1`, … hold
//!   the chunks and `head` says which generation and how many, written
//!   last; chunks beyond a shorter rest's count get tombstones.
//!
//! Compaction keeps the latest value per key, and all of a commit's records
//! are in one transaction, so the latest committed value of every key is
//! the partition's state at its last commit: a restore reads the rest and
//! puts every type record back. A snapshot of the earlier format (types
//! inside the rest) still restores; its partition's first commit then
//! writes every type as a record.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::BaseRecord;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use super::{ScaleError, kafka};
use crate::alert::kafka::SharedProducer;
use crate::baseline::ErrorType;
use crate::fingerprint::Fingerprint;
use crate::fingerprint::learn::{Cluster, LearnerChanges, Skeleton};
use crate::state::State;

/// Chunk size before compression: well under the broker's default
/// `message.max.bytes` (1 MB).
const CHUNK: usize = 512 * 1024;
const HEAD: &[u8] = b"head";

/// The first byte of a type record's key.
const TYPE: u8 = b't';

/// A type record's key: `t` and the fingerprint, big endian.
fn type_key(fp: Fingerprint) -> [u8; 9] {
    let mut k = [TYPE; 9];
    k[1..].copy_from_slice(&fp.0.to_be_bytes());
    k
}

/// The fingerprint of a type record's key.
pub(crate) fn type_of(key: &[u8]) -> Option<Fingerprint> {
    match key.split_first() {
        Some((&TYPE, fp)) => Some(Fingerprint(u64::from_be_bytes(fp.try_into().ok()?))),
        _ => None,
    }
}

/// The first byte of a learner row's key.
const LEARNER: u8 = b'l';

/// A learner row's key: `l`, its table, its key in that table.
type RowKey = [u8; 10];

fn row_key(table: u8, key: u64) -> RowKey {
    let mut k = [LEARNER; 10];
    k[1] = table;
    k[2..].copy_from_slice(&key.to_be_bytes());
    k
}

/// A learner row's record: its key and its JSON (`None`: the row is gone).
type Row = (RowKey, Option<Vec<u8>>);

/// The learner's rows that `changes` names (all of them when it says so),
/// encoded. Each table's rows are JSON.
fn learner_rows(state: &mut State, changes: &LearnerChanges) -> Result<Vec<Row>, ScaleError> {
    fn enc<T: serde::Serialize>(v: &T) -> Result<Vec<u8>, ScaleError> {
        serde_json::to_vec(v).map_err(|e| ScaleError::Topic(format!("encoding a learner row: {e}")))
    }
    let t = state.baseline.learner.tables();
    let mut out = Vec::new();
    if changes.all {
        for (id, c) in t.clusters.iter().enumerate() {
            out.push((row_key(b'c', id as u64), Some(enc(c)?)));
        }
        for (k, v) in t.exact.iter() {
            out.push((row_key(b'e', *k), Some(enc(v)?)));
        }
        for (k, v) in t.skeletons.iter() {
            out.push((row_key(b's', *k), Some(enc(v)?)));
        }
        for (k, v) in t.generalized.iter() {
            out.push((row_key(b'g', *k), Some(enc(v)?)));
        }
        for (k, v) in t.keys.iter() {
            out.push((row_key(b'k', *k), Some(enc(v)?)));
        }
        return Ok(out);
    }
    for &id in &changes.clusters {
        let v = t.clusters.get(id as usize).map(enc).transpose()?;
        out.push((row_key(b'c', u64::from(id)), v));
    }
    for k in &changes.exact {
        out.push((row_key(b'e', *k), t.exact.get(k).map(enc).transpose()?));
    }
    for k in &changes.skeletons {
        out.push((row_key(b's', *k), t.skeletons.get(k).map(enc).transpose()?));
    }
    for k in &changes.generalized {
        out.push((
            row_key(b'g', *k),
            t.generalized.get(k).map(enc).transpose()?,
        ));
    }
    for k in &changes.keys {
        out.push((row_key(b'k', *k), t.keys.get(k).map(enc).transpose()?));
    }
    Ok(out)
}

/// Puts the learner rows of what was read (`latest`) into `state`'s
/// learner; returns the keys read.
fn read_learner(
    state: &mut State,
    latest: &HashMap<Vec<u8>, Vec<u8>>,
) -> Result<HashSet<RowKey>, String> {
    let mut clusters: std::collections::BTreeMap<u64, Cluster> = Default::default();
    let mut read = HashSet::new();
    let t = state.baseline.learner.tables();
    for (k, v) in latest {
        let Ok(key) = RowKey::try_from(k.as_slice()) else {
            continue;
        };
        if key[0] != LEARNER {
            continue;
        }
        let id = u64::from_be_bytes(key[2..].try_into().map_err(|_| "a learner key")?);
        let bad = |e: serde_json::Error| format!("learner row {}/{id:016x}: {e}", key[1] as char);
        match key[1] {
            b'c' => {
                clusters.insert(id, serde_json::from_slice(v).map_err(bad)?);
            }
            b'e' => {
                t.exact.insert(id, serde_json::from_slice(v).map_err(bad)?);
            }
            b's' => {
                let sk: Skeleton = serde_json::from_slice(v).map_err(bad)?;
                t.skeletons.insert(id, sk);
            }
            b'g' => {
                t.generalized
                    .insert(id, serde_json::from_slice(v).map_err(bad)?);
            }
            b'k' => {
                t.keys.insert(id, serde_json::from_slice(v).map_err(bad)?);
            }
            _ => return Err(format!("an unknown learner table `{}`", key[1] as char)),
        }
        read.insert(key);
    }
    // Cluster ids index a vector: every id below the last must be there.
    for (i, (id, c)) in clusters.into_iter().enumerate() {
        if id != i as u64 {
            return Err(format!("learner cluster {i} missing (next: {id})"));
        }
        t.clusters.push(c);
    }
    let n = t.clusters.len() as u64;
    if let Some(&id) = t.exact.values().find(|&&id| u64::from(id) >= n) {
        return Err(format!("a learner template names cluster {id} of {n}"));
    }
    Ok(read)
}

/// Where a partition's changelog stands after a write or a restore.
#[derive(Clone, Debug, Default)]
pub struct Written {
    /// Generation of the last snapshot (0 = none).
    pub generation: u64,
    /// Its chunk count (chunks at and beyond it are stale).
    pub chunks: usize,
    /// The encoded size of the last commit's records, in bytes (after a
    /// restore: of the whole state read).
    pub bytes: usize,
    /// Type and learner records the last commit wrote (tombstones
    /// included; after a restore: the type records read).
    pub types: usize,
    /// The types the changelog holds a record of (a rewrite of every type
    /// tombstones the others).
    pub logged: HashSet<Fingerprint>,
    /// The learner rows it holds a record of.
    pub learned: HashSet<RowKey>,
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

/// Produces partition `partition`'s changes since `last` into the open
/// transaction of `producer`: a record per type the baseline marked
/// changed (a tombstone for one no longer in its types), then the rest of
/// the state. Takes the baseline's change marks; on an error the caller
/// must not commit (the process stops, or the batch is aborted and the
/// partition restored).
pub fn write(
    producer: &SharedProducer,
    topic: &str,
    partition: i32,
    state: &mut State,
    last: Written,
) -> Result<Written, ScaleError> {
    changes(state, last, |key, payload| {
        let mut rec: BaseRecord<'_, [u8], [u8]> =
            BaseRecord::to(topic).partition(partition).key(key);
        if let Some(p) = payload {
            rec = rec.payload(p);
        }
        super::send_waiting(&**producer, rec, "producing a state snapshot")
    })
}

/// [`write`]'s records, each handed to `send` (key, value or tombstone),
/// the head last.
fn changes(
    state: &mut State,
    last: Written,
    mut send: impl FnMut(&[u8], Option<&[u8]>) -> Result<(), ScaleError>,
) -> Result<Written, ScaleError> {
    let mut logged = last.logged;
    let dirty = state.baseline.take_dirty();
    let types = &state.baseline.types;
    // The types to write: every one (and a tombstone for each logged one
    // gone) after a load or a rewrite, else the changed ones.
    let todo: Vec<Fingerprint> = if dirty.all {
        let gone = logged.iter().filter(|fp| !types.contains_key(fp));
        gone.chain(types.keys()).copied().collect()
    } else {
        dirty
            .types
            .iter()
            .filter(|fp| types.contains_key(fp) || logged.contains(fp))
            .copied()
            .collect()
    };
    let mut bytes = 0;
    for &fp in &todo {
        match types.get(&fp) {
            Some(t) => {
                let v = serde_json::to_vec(t)
                    .map_err(|e| ScaleError::Topic(format!("encoding type {fp}: {e}")))?;
                bytes += v.len();
                logged.insert(fp);
                send(&type_key(fp), Some(&v))?;
            }
            None => {
                logged.remove(&fp);
                send(&type_key(fp), None)?;
            }
        }
    }
    // The learner's changed rows (all after an eviction or a rebuild, with
    // tombstones for the rows gone).
    let changes = state.baseline.learner.take_changes();
    let rows = learner_rows(state, &changes)?;
    let mut learned = last.learned;
    if changes.all {
        let now: HashSet<RowKey> = rows.iter().map(|(k, _)| *k).collect();
        for k in learned.iter().filter(|k| !now.contains(*k)) {
            send(k.as_slice(), None)?;
        }
        learned = now;
    }
    let learner_records = rows.len();
    for (k, v) in &rows {
        match v {
            Some(v) => {
                bytes += v.len();
                learned.insert(*k);
                send(k.as_slice(), Some(v))?;
            }
            None if learned.remove(k) => send(k.as_slice(), None)?,
            None => {}
        }
    }
    // The rest: the state without its types and learner rows (the
    // records above).
    let rest = state.lend_without_rows(crate::state::Cold::Kept, encode);
    let rest = rest?;
    let generation = last.generation + 1;
    let chunks: Vec<&[u8]> = if rest.is_empty() {
        vec![&[][..]]
    } else {
        rest.chunks(CHUNK).collect()
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
        bytes: bytes + rest.len(),
        types: todo.len() + learner_records,
        logged,
        learned,
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
    let mut state = decode(&bytes)?;
    let mut logged = HashSet::new();
    // Types or learner inside the rest: a snapshot of the earlier,
    // whole-state format.
    let whole =
        !state.baseline.types.is_empty() || !state.baseline.learner.tables().clusters.is_empty();
    let learned = if whole {
        HashSet::new()
    } else {
        read_learner(&mut state, latest).map_err(|e| format!("snapshot {g}: {e}"))?
    };
    let mut size = bytes.len();
    for (k, v) in latest {
        let Some(fp) = type_of(k) else { continue };
        size += v.len();
        let t: ErrorType = serde_json::from_slice(v)
            .map_err(|e| format!("snapshot {g}: the record of type {fp}: {e}"))?;
        state.baseline.types.insert(fp, Box::new(t));
        logged.insert(fp);
    }
    if !whole {
        // The changelog holds every type as it is in memory: nothing is
        // changed yet (the marks a decoded baseline starts with say
        // "everything").
        state.baseline.take_dirty();
        state.baseline.learner.take_changes();
    }
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
            bytes: size,
            types: logged.len(),
            logged,
            learned,
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

    /// `state`'s changes since `last` applied to `log` as compaction keeps
    /// them (the latest value per key, a tombstone removes the key);
    /// returns where the changelog stands and the records sent.
    fn commit(
        log: &mut HashMap<Vec<u8>, Vec<u8>>,
        state: &mut State,
        last: Written,
    ) -> (Written, usize) {
        let mut sent = 0;
        let w = changes(state, last, |k, v| {
            sent += 1;
            match v {
                Some(v) => log.insert(k.to_vec(), v.to_vec()),
                None => log.remove(k),
            };
            Ok(())
        })
        .unwrap();
        (w, sent)
    }

    fn error(e: &mut crate::engine::Engine, minute: i64, msg: &str) {
        e.process_error(crate::record::Record {
            time: Some(1_767_225_600_000 + minute * 60_000),
            level: Some(crate::record::Level::Error),
            message: msg.into(),
            service: Some("api".into()),
            ..Default::default()
        });
    }

    /// The state as its JSON says it (what a restore must give back).
    fn json(s: &State) -> serde_json::Value {
        serde_json::to_value(s).unwrap()
    }

    #[test]
    fn a_restore_rebuilds_the_state_and_a_commit_writes_only_what_changed() {
        let mut e = crate::engine::test_engine(Vec::new());
        for (i, user) in ["alice", "bob", "carol", "dave", "erin"].iter().enumerate() {
            error(
                &mut e,
                i as i64,
                &format!("login failed for user {user} at gate"),
            );
            error(&mut e, i as i64, &format!("disk {user} of shelf full"));
        }
        e.state.kafka_records = 7;
        assert!(!e.state.baseline.types.is_empty());
        assert!(!e.state.baseline.learner.tables().skeletons.is_empty());
        let mut log = HashMap::new();
        let (w, first) = commit(&mut log, &mut e.state, Written::default());
        let (mut back, r) = assemble(&log).unwrap().unwrap();
        assert_eq!(json(&back), json(&e.state), "restored exactly");
        assert_eq!(r.logged, w.logged);
        assert_eq!(r.learned, w.learned);
        // Restored from its records: nothing to write again.
        let d = back.baseline.take_dirty();
        assert!(!d.all && d.types.is_empty());
        assert!(!back.baseline.learner.take_changes().all);

        // One more occurrence of a known type: a few records, not the state.
        error(&mut e, 9, "login failed for user alice at gate");
        let (w, again) = commit(&mut log, &mut e.state, w);
        assert!(again * 2 < first, "{again} records against {first}");
        let (back, _) = assemble(&log).unwrap().unwrap();
        assert_eq!(
            json(&back),
            json(&e.state),
            "restored exactly after a change"
        );

        // A type gone (changed behind the marks, so all are marked): its
        // record gets a tombstone.
        let gone = *e.state.baseline.types.keys().next().unwrap();
        e.state.baseline.types.remove(&gone);
        e.state.baseline.mark_all_dirty();
        let _ = commit(&mut log, &mut e.state, w);
        assert!(!log.contains_key(type_key(gone).as_slice()));
        let (back, _) = assemble(&log).unwrap().unwrap();
        assert!(back.baseline.get(gone).is_none());
        assert_eq!(json(&back), json(&e.state));
    }

    #[test]
    fn a_snapshot_of_the_whole_state_format_still_restores_and_is_rewritten_in_records() {
        let mut e = crate::api::control::tests::engine_with(0xa1);
        error(&mut e, 1, "login failed for user alice at gate");
        // The earlier format: the whole state, types inside, no records.
        let whole = encode(&e.state).unwrap();
        let mut old = HashMap::new();
        let mut c0 = 5u64.to_be_bytes().to_vec();
        c0.extend_from_slice(&whole);
        old.insert(b"c0".to_vec(), c0);
        let mut head = 5u64.to_be_bytes().to_vec();
        head.extend_from_slice(&1u64.to_be_bytes());
        old.insert(HEAD.to_vec(), head);
        let (mut back, w) = assemble(&old).unwrap().unwrap();
        assert_eq!(json(&back), json(&e.state));
        assert!(w.logged.is_empty());
        // Its first commit writes every type and learner row as a record.
        let (_, n) = commit(&mut old, &mut back, w);
        assert!(n > back.baseline.types.len() + 2, "{n} records");
        let (again, _) = assemble(&old).unwrap().unwrap();
        assert_eq!(json(&again), json(&e.state));
    }
}
