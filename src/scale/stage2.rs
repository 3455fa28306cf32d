//! Stage 2: each instance owns the internal partitions the group
//! `<group>-stage2` assigns it, and keeps **one engine per owned
//! partition**, restored from the changelog (`changelog.rs`) when the
//! partition is assigned. Events are keyed by service and a fingerprint
//! includes its service, so every per-type and per-service decision has
//! exactly one owner, and a type is known wherever its partition goes.
//!
//! Per partition, the engine is fed the partition's events in event-time
//! order: one lane per upstream (input) partition keeps that partition's
//! order, and across lanes the head with the smallest event time goes first
//! (`source::align::Aligner`, the single-stage rule). A lane with nothing
//! buffered holds the others back until stage 1's watermark for its
//! upstream partition arrives; a released watermark also moves the
//! engine's clock (`Engine::tick`), so an engine owning a few services
//! keeps the clock of the whole stream and closes its windows as a single
//! engine would.
//!
//! At each commit, in one transaction: the alerts (produced as they are
//! decided), what changed in every partition worked on to the changelog
//! (the changed types' records and the rest of the state), and the events
//! offsets. A revocation aborts the open transaction
//! (`super::Owner`) and drops every engine; the assignment that follows is
//! restored from the changelog, so nothing is lost and nothing repeated.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::Producer;
use rdkafka::{Offset, TopicPartitionList};

use super::changelog::{self, Written};
use super::control;
use super::guard::{Expect, Guard, StartShift, Verdict};
use super::wire::{Envelope, Event, Mark};
use super::{Owner, Quiet, ScaleError, abortable, kafka, timeout_retry};
use crate::alert::kafka::{KafkaAlertSink, SharedProducer};
use crate::alert::{Alert, AlertSink, SinkError};
use crate::config::Config;
use crate::engine::{BaselineOptions, Engine};
use crate::fingerprint::Fingerprinter;
use crate::metrics::Metrics;
use crate::source::align::{Aligner, Entry};

/// An upstream (input) partition, `topic/partition`, interned.
type Up = Arc<str>;

/// A lane that stands for upstream partitions not known yet (input topics
/// given as patterns): it holds a partition back until its first watermark.
const PLACEHOLDER: &str = "";

/// One owned internal partition.
struct Part {
    engine: Engine,
    lanes: Lanes,
    /// The offset after the last message read.
    next: Option<i64>,
    /// The last snapshot written to the changelog.
    written: Written,
    /// Something was read or released since the last commit.
    touched: bool,
    /// Where its next message may start (`guard.rs`).
    guard: Guard,
}

/// The prefix of the `kafka_offsets` keys that say a lane had ended at a
/// commit: `end|<events topic>/<partition>|<upstream>` → the offset after
/// the mark that said so. Not under the partition's own prefix
/// (`<events topic>/<partition>|`), so a binary from before these keys
/// does not take them for lanes.
const ENDED: &str = "end|";

/// The saved offsets whose key starts with `prefix` (a sorted map: one
/// range, no scan of the others).
fn with_prefix<'a>(
    offsets: &'a BTreeMap<String, i64>,
    prefix: &'a str,
) -> impl Iterator<Item = (&'a String, &'a i64)> {
    offsets
        .range::<str, _>((
            std::ops::Bound::Included(prefix),
            std::ops::Bound::Unbounded,
        ))
        .take_while(move |(k, _)| k.starts_with(prefix))
}

/// One owned partition's lanes, one per upstream partition, and what of
/// them a commit saves (in the state's `kafka_offsets`) for the next owner.
struct Lanes {
    align: Aligner<Up, Vec<Event>>,
    /// The placeholder lane is still assigned.
    unseen: bool,
    /// Per lane: the offset after its last entry released to the engine.
    /// A partition's committed offset is its lanes' oldest *buffered*
    /// entry, so the next owner reads again entries other lanes had
    /// released: those below this are skipped (it is in the snapshot).
    done: HashMap<Up, i64>,
    /// Per lane: the offset after the last mark saying its upstream
    /// partition was at its end. Saved while the lane is still at that
    /// end, so a restore knows it: the mark itself lies below `done` (or
    /// below the committed offset) and is not read again, and the stage 1
    /// that owns an ended upstream partition sends no new mark until it
    /// reads something. Without it every ended lane held the others back
    /// for `max_idle` after each rebalance at the end of a backlog.
    ended: HashMap<Up, i64>,
}

impl Lanes {
    /// A lane per known upstream partition (a placeholder when none is
    /// known yet), each holding the others back until it delivers, ends
    /// or idles.
    fn new(capacity: usize, max_idle: Duration, ups: &[Up], now: Instant) -> Lanes {
        let mut align = Aligner::new(capacity, max_idle);
        let unseen = ups.is_empty();
        if unseen {
            align.assign(&Arc::from(PLACEHOLDER), now);
        }
        for u in ups {
            align.assign(u, now);
        }
        Lanes {
            align,
            unseen,
            done: HashMap::new(),
            ended: HashMap::new(),
        }
    }

    /// What the last commit saved of partition `key`'s lanes in
    /// `offsets`: per upstream partition, its `done` offset and the end it
    /// was at, if it was.
    fn saved(offsets: &BTreeMap<String, i64>, key: &str) -> Vec<(String, Saved)> {
        let mut out: BTreeMap<String, Saved> = BTreeMap::new();
        for (prefix, ended) in [(format!("{key}|"), false), (format!("{ENDED}{key}|"), true)] {
            for (k, v) in with_prefix(offsets, &prefix) {
                let s = out.entry(k[prefix.len()..].to_string()).or_default();
                if ended {
                    s.ended = Some(*v);
                } else {
                    s.done = Some(*v);
                }
            }
        }
        out.into_iter().collect()
    }

    /// Takes up lane `u` as a commit saved it.
    fn restore(&mut self, u: &Up, saved: Saved, now: Instant) {
        self.align.assign(u, now);
        if let Some(d) = saved.done {
            self.done.insert(u.clone(), d);
        }
        // An end below what the lane released is stale: saved before the
        // lane delivered again, and kept by a binary from before these
        // keys (which neither writes nor removes them).
        if let Some(e) = saved.ended.filter(|&e| saved.done.is_none_or(|d| d <= e)) {
            // As if its end mark (at `e - 1`) had just been read: a message
            // of the lane read again below it leaves the mark to say the
            // end again, one past it clears it (`Aligner::consumed`).
            self.align.consumed(u, e - 1, now);
            self.align.reached_end(u, now);
            self.ended.insert(u.clone(), e);
        }
    }

    /// Saves under partition `key` in `offsets` what the next owner needs:
    /// each lane's `done`, and the end of each lane still at its end.
    fn save(&self, offsets: &mut BTreeMap<String, i64>, key: &str) {
        for (up, d) in &self.done {
            offsets.insert(format!("{key}|{up}"), *d);
        }
        let prefix = format!("{ENDED}{key}|");
        let stale: Vec<String> = with_prefix(offsets, &prefix)
            .map(|(k, _)| k.clone())
            .collect();
        for k in stale {
            offsets.remove(&k);
        }
        for (up, e) in &self.ended {
            if self.align.at_end(up) {
                offsets.insert(format!("{prefix}{up}"), *e);
            }
        }
    }

    /// The message at `offset` of lane `key`: its events and its mark.
    fn receive(
        &mut self,
        key: &Up,
        offset: i64,
        events: Option<Vec<Event>>,
        mark: Option<Mark>,
        now: Instant,
    ) {
        self.align.consumed(key, offset, now);
        if self.done.get(key).is_some_and(|&d| offset < d) {
            return; // released by the previous owner: in the snapshot
        }
        if let Some(events) = events {
            let time = events.iter().find_map(Event::time);
            self.align.push(key, offset, time, events, now);
        }
        if let Some(mark) = mark {
            if std::mem::take(&mut self.unseen) {
                self.align.revoke(&Arc::from(PLACEHOLDER));
            }
            if let Some(t) = mark.time {
                self.align.push(key, offset, Some(t), Vec::new(), now);
            }
            if mark.at_end {
                self.align.reached_end(key, now);
                self.ended.insert(key.clone(), offset + 1);
            }
        }
    }

    /// The next entry the alignment releases, its lane's `done` moved
    /// past it.
    fn pop(&mut self, now: Instant) -> Option<Entry<Vec<Event>>> {
        let (key, e) = self.align.pop_ready(now).map(|(k, e)| (k.clone(), e))?;
        self.done.insert(key, e.from + 1);
        Some(e)
    }
}

/// One lane as a commit saved it ([`Lanes::saved`]).
#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct Saved {
    done: Option<i64>,
    ended: Option<i64>,
}

/// A sink shared by the engines of all owned partitions (the local alert
/// file, the API's view): made once per process. Its name and kind are the
/// inner sink's, so the sink metrics keep their labels.
struct Shared {
    inner: Arc<Mutex<Box<dyn AlertSink>>>,
    name: String,
    kind: &'static str,
}

impl Shared {
    fn new(inner: &Arc<Mutex<Box<dyn AlertSink>>>) -> Shared {
        let (name, kind) = {
            let s = inner.lock().unwrap_or_else(|e| e.into_inner());
            (s.name().to_string(), s.kind())
        };
        Shared {
            inner: inner.clone(),
            name,
            kind,
        }
    }
}

impl AlertSink for Shared {
    fn emit(&mut self, alert: &Alert) -> Result<(), SinkError> {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .emit(alert)
    }
    fn flush(&mut self) -> Result<(), SinkError> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).flush()
    }
    // No catalogue: each engine knows only its partition's types, and an
    // export replaces the catalogue (docs/scaling.md, limits).
    fn name(&self) -> &str {
        &self.name
    }
    fn waiting(&self) -> Option<usize> {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .waiting()
    }
    fn kind(&self) -> &'static str {
        self.kind
    }
}

/// What stage 2 needs to build an engine for a partition it is assigned.
pub(super) struct Build {
    pub cfg: Config,
    pub baseline: BaselineOptions,
    pub metrics: Arc<Metrics>,
    pub sinks: Vec<Box<dyn AlertSink>>,
    /// The control API's queue: its writes go to the control topic.
    pub commands: Option<Arc<crate::api::control::Control>>,
}

pub(super) struct Stage2 {
    cfg: Config,
    fp: Fingerprinter,
    baseline: BaselineOptions,
    metrics: Arc<Metrics>,
    shared: Vec<Arc<Mutex<Box<dyn AlertSink>>>>,
    consumer: BaseConsumer<Owner>,
    changed: Arc<AtomicBool>,
    revoked: Arc<AtomicBool>,
    producer: SharedProducer,
    in_txn: Arc<AtomicBool>,
    reader: BaseConsumer<Quiet>,
    /// The control topic, read whole (`control.rs`), and its writer for
    /// the API's commands.
    control: control::Log,
    sender: control::Sender,
    commands: Option<Arc<crate::api::control::Control>>,
    control_checked: Instant,
    topic: String,
    changelog: String,
    /// The events topic's partition count (a service's partition).
    partitions: i32,
    capacity: usize,
    max_idle: Duration,
    /// How long a restore waits for a stopped owner's open transaction.
    restore_wait: Duration,
    parts: BTreeMap<i32, Part>,
    /// Upstream partitions known (from the input topics' metadata, then
    /// from the events).
    ups: Vec<Up>,
    /// Records released since the last commit, and when the first came.
    since: u64,
    started: Option<Instant>,
    batch: u64,
    interval: Duration,
    pub(super) commits: u64,
    /// `FAULTLINE_FAILPOINT_CRASH_AFTER_COMMIT=N` (tests only).
    crash_after_commit: Option<u64>,
    /// Cost of the snapshots (for the log and docs/scaling.md).
    pub(super) snapshot_time: Duration,
    pub(super) snapshot_bytes: u64,
    /// Type records written (tombstones included).
    pub(super) snapshot_types: u64,
    pub(super) restore_time: Duration,
    /// Messages not taken because they were not where their partition
    /// stood (each sought back to it), for the log and the tests.
    pub(super) refused: u64,
    /// `FAULTLINE_FAILPOINT_STAGE2_START_SHIFT=K` (tests only).
    start_shift: StartShift,
}

impl Stage2 {
    pub(super) fn new(
        b: Build,
        events_topic: &str,
        changelog_topic: &str,
        partitions: i32,
    ) -> Result<Stage2, ScaleError> {
        let cfg = b.cfg;
        let k = &cfg.kafka;
        let mut pc = super::transactional(&cfg, "stage2");
        if !k.producer_properties.contains_key("compression.type")
            && !k.properties.contains_key("compression.type")
        {
            // Snapshots are JSON: they compress several-fold.
            pc.set("compression.type", "lz4");
        }
        let producer: SharedProducer = Arc::new(
            pc.create_with_context(crate::alert::kafka::AuthWatch::default())
                .map_err(kafka("creating the stage-2 producer"))?,
        );
        timeout_retry(|t| producer.init_transactions(t))
            .map_err(kafka("init transactions (stage 2)"))?;
        let in_txn = Arc::new(AtomicBool::new(false));
        let (consumer, changed, revoked) = super::member(
            &cfg,
            &format!("{}-stage2", k.group_id),
            "earliest",
            producer.clone(),
            in_txn.clone(),
            "stage 2",
        )?;
        let reader = changelog::reader(&super::client(&cfg, &k.consumer_properties))?;
        let ups = input_partitions(&cfg)?;
        let mut control = control::Log::new(&cfg)?;
        control.poll();
        let sender = control::Sender::new(&cfg)?;
        consumer
            .subscribe(&[events_topic])
            .map_err(kafka("subscribing to the events topic"))?;
        let txn_timeout = k
            .producer_properties
            .get("transaction.timeout.ms")
            .or_else(|| k.properties.get("transaction.timeout.ms"))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(60_000);
        Ok(Stage2 {
            fp: Fingerprinter::new(&cfg.fingerprint).map_err(crate::engine::PipelineError::from)?,
            baseline: b.baseline,
            metrics: b.metrics,
            shared: b
                .sinks
                .into_iter()
                .map(|s| Arc::new(Mutex::new(s)))
                .collect(),
            consumer,
            changed,
            revoked,
            producer,
            in_txn,
            reader,
            control,
            sender,
            commands: b.commands,
            control_checked: Instant::now(),
            topic: events_topic.to_string(),
            changelog: changelog_topic.to_string(),
            partitions,
            capacity: k.partition_buffer,
            max_idle: cfg.scale_out.max_idle.0.max(k.max_idle.0),
            restore_wait: Duration::from_millis(txn_timeout) + Duration::from_secs(30),
            parts: BTreeMap::new(),
            ups,
            since: 0,
            started: None,
            batch: k.batch_size as u64,
            interval: k.commit_interval.0,
            commits: 0,
            crash_after_commit: std::env::var("FAULTLINE_FAILPOINT_CRASH_AFTER_COMMIT")
                .ok()
                .and_then(|v| v.parse().ok()),
            snapshot_time: Duration::ZERO,
            snapshot_bytes: 0,
            snapshot_types: 0,
            restore_time: Duration::ZERO,
            refused: 0,
            start_shift: StartShift::from_env("FAULTLINE_FAILPOINT_STAGE2_START_SHIFT"),
            cfg,
        })
    }

    /// Records processed, as the owned partitions' states count them.
    pub(super) fn records(&self) -> u64 {
        self.parts
            .values()
            .map(|p| p.engine.state.kafka_records)
            .sum()
    }

    fn key(&self, p: i32) -> String {
        format!("{}/{p}", self.topic)
    }

    /// Builds partition `p`'s engine from its restored state.
    fn open(
        &mut self,
        p: i32,
        restored: Option<(crate::state::State, Written)>,
    ) -> Result<Part, ScaleError> {
        let (state, written) = match restored {
            Some((s, w)) => (Some(s), w),
            None => (None, Written::default()),
        };
        let mut sinks: Vec<Box<dyn AlertSink>> = self
            .shared
            .iter()
            .map(|s| Box::new(Shared::new(s)) as Box<dyn AlertSink>)
            .collect();
        let alerts = &self.cfg.kafka.alerts_topic;
        if !alerts.is_empty() {
            sinks.push(Box::new(KafkaAlertSink::new(
                self.producer.clone(),
                alerts,
                true,
            )));
        }
        let mut engine = Engine::with_fingerprinter(
            &self.cfg,
            self.fp.clone(),
            state,
            &self.baseline,
            sinks,
            self.metrics.clone(),
        )?;
        engine.forget_emitted();
        // Commands the snapshot had not applied yet (`control.rs`).
        let commands = self.control.apply(&mut engine.state);
        let now = Instant::now();
        let mut lanes = Lanes::new(self.capacity, self.max_idle, &self.ups, now);
        for (up, saved) in Lanes::saved(&engine.state.kafka_offsets, &self.key(p)) {
            let u = self.up(&up, now);
            lanes.restore(&u, saved, now);
        }
        tracing::info!(
            partition = p,
            types = engine.state.baseline.known(),
            records = engine.state.kafka_records,
            bytes = written.bytes,
            type_records = written.types,
            "stage 2: partition assigned, state restored from the changelog"
        );
        Ok(Part {
            engine,
            lanes,
            next: None,
            written,
            touched: commands > 0,
            guard: Guard::new("stage 2", "events"),
        })
    }

    /// An upstream partition by name; a new one gets a lane in every owned
    /// partition (it holds the others back until it delivers, ends or
    /// idles).
    fn up(&mut self, name: &str, now: Instant) -> Up {
        if let Some(u) = self.ups.iter().find(|u| ***u == *name) {
            return u.clone();
        }
        let u: Up = Arc::from(name);
        self.ups.push(u.clone());
        for part in self.parts.values_mut() {
            part.lanes.align.assign(&u, now);
        }
        u
    }

    /// Takes up a rebalance: after a revocation (the batch was aborted in
    /// the callback) every engine is dropped; every assigned partition
    /// without an engine is restored. With `rewind`, the consumer is moved
    /// back to the committed offsets (an abort without a rebalance).
    fn sync(&mut self, rewind: bool) -> Result<(), ScaleError> {
        if self.revoked.swap(false, Ordering::Relaxed) || rewind {
            self.parts.clear();
            self.start_shift.reset();
            self.since = 0;
            self.started = None;
        }
        let assigned = self
            .consumer
            .assignment()
            .map_err(kafka("reading the stage-2 assignment"))?;
        let owned: Vec<i32> = assigned
            .elements()
            .iter()
            .filter(|e| e.topic() == self.topic)
            .map(|e| e.partition())
            .collect();
        self.parts.retain(|p, _| owned.contains(p));
        let new: Vec<i32> = owned
            .into_iter()
            .filter(|p| !self.parts.contains_key(p))
            .collect();
        if new.is_empty() {
            return Ok(());
        }
        let mut tpl = TopicPartitionList::new();
        for p in &new {
            tpl.add_partition(&self.topic, *p);
        }
        let committed = self
            .consumer
            .committed_offsets(tpl, Duration::from_secs(30))
            .map_err(kafka("reading the stage-2 group's offsets"))?;
        let mut wanted: Vec<changelog::Wanted> = Vec::new();
        for &p in &new {
            let e = committed.find_partition(&self.topic, p);
            // A partition answered with an error is not "nothing committed
            // yet": taken for that, the restore would accept whatever
            // snapshot the changelog shows while the consumer starts from
            // the offset the group holds, losing or repeating what lies
            // between.
            if let Some(Err(source)) = e.as_ref().map(|e| e.error()) {
                return Err(ScaleError::Kafka {
                    context: "reading the stage-2 group's offset of a partition",
                    source,
                });
            }
            wanted.push(changelog::Wanted {
                partition: p,
                committed: e.and_then(|e| match e.offset() {
                    Offset::Offset(o) => Some(o),
                    _ => None,
                }),
                events_key: self.key(p),
            });
        }
        let t = Instant::now();
        let mut restored =
            changelog::restore(&self.reader, &self.changelog, &wanted, self.restore_wait)?;
        let mut seek = TopicPartitionList::new();
        for w in &wanted {
            let mut part = self.open(w.partition, restored.remove(&w.partition).flatten())?;
            part.guard.expect = match w.committed {
                // Sought there below: the first readable message at or
                // past it is where the partition stands.
                Some(o) if rewind => Expect::AtLeast(o),
                Some(o) => Expect::Exactly(o),
                // Nothing committed: the group starts from the earliest,
                // the partition's first offset now (a later one, if
                // retention removed records meanwhile, is sought to and
                // then taken as it comes).
                None => Expect::Exactly(
                    self.consumer
                        .fetch_watermarks(&self.topic, w.partition, Duration::from_secs(10))
                        .map_err(kafka("reading an events partition's first offset"))?
                        .0,
                ),
            };
            self.parts.insert(w.partition, part);
            seek.add_partition_offset(
                &self.topic,
                w.partition,
                w.committed.map_or(Offset::Beginning, Offset::Offset),
            )
            .map_err(kafka("offsets"))?;
        }
        self.restore_time += t.elapsed();
        if self.parts.values().any(|p| p.touched) {
            // Control commands applied on restore: saved at the next commit.
            self.begin()?;
        }
        tracing::info!(partitions = wanted.len(), took = ?t.elapsed(), "stage 2: assignment restored from the changelog");
        if rewind {
            self.consumer
                .seek_partitions(seek, Duration::from_secs(10))
                .map_err(kafka("rewinding the events partitions"))?;
        }
        Ok(())
    }

    fn begin(&mut self) -> Result<(), ScaleError> {
        if !self.in_txn.load(Ordering::Relaxed) {
            self.producer
                .begin_transaction()
                .map_err(kafka("begin transaction (stage 2)"))?;
            self.in_txn.store(true, Ordering::Relaxed);
        }
        Ok(())
    }

    fn receive(
        &mut self,
        p: i32,
        offset: i64,
        payload: &[u8],
        now: Instant,
    ) -> Result<(), ScaleError> {
        if !self.admit(p, offset)? {
            return Ok(()); // not ours, or not where the partition stands
        }
        let env: Envelope = match serde_json::from_slice(payload) {
            Ok(e) => e,
            Err(e) => {
                // Not written by a stage 1 of this version: counted and
                // skipped, never a stop.
                tracing::warn!(partition = p, offset, error = %e, "stage 2: an undecodable event message; skipped");
                self.metrics.bad(crate::record::BadReason::InvalidJson);
                if let Some(part) = self.parts.get_mut(&p) {
                    part.next = Some(offset + 1);
                    part.touched = true;
                }
                return Ok(());
            }
        };
        let key = self.up(&env.up, now);
        let Some(part) = self.parts.get_mut(&p) else {
            return Ok(());
        };
        part.next = Some(offset + 1);
        part.touched = true;
        part.lanes.receive(&key, offset, env.events, env.mark, now);
        Ok(())
    }

    /// Whether the message at `offset` of owned partition `p` is where the
    /// partition stands (`guard.rs`): the committed offset its state was
    /// restored at, onwards after that. If not, the partition is sought
    /// back and the message is not taken, so no commit moves the
    /// partition's offset past events its engine did not see, and none is
    /// applied twice, whatever the consumer's fetch position did around a
    /// rebalance (stage 1 has the same guard).
    fn admit(&mut self, p: i32, offset: i64) -> Result<bool, ScaleError> {
        let Some(part) = self.parts.get_mut(&p) else {
            return Ok(false); // not (or no longer) ours
        };
        let name = format!("{}/{p}", self.topic);
        let to = if part.next.is_none()
            && let Some(to) = self.start_shift.shift(&name, offset)
        {
            // The failpoint: the consumer hands this partition out away
            // from where it stands, once per assignment.
            Some(to)
        } else {
            let consumer = &self.consumer;
            let topic = self.topic.as_str();
            let first = || {
                consumer
                    .fetch_watermarks(topic, p, Duration::from_secs(10))
                    .ok()
                    .map(|(low, _)| low)
            };
            match part.guard.judge(&name, offset, first) {
                Verdict::Take => None,
                Verdict::SeekBack(to) => {
                    self.refused += 1;
                    Some(to)
                }
            }
        };
        let Some(to) = to else {
            return Ok(true);
        };
        self.consumer
            .seek(&self.topic, p, Offset::Offset(to), Duration::from_secs(10))
            .map_err(kafka("seeking an events partition back to where it stands"))?;
        Ok(false)
    }

    /// Releases what each partition's alignment allows into its engine;
    /// returns the upstream messages released.
    fn drain(&mut self, now: Instant) -> u64 {
        let mut total = 0;
        for part in self.parts.values_mut() {
            let mut n = 0;
            while let Some(e) = part.lanes.pop(now) {
                part.touched = true;
                if e.item.is_empty() {
                    // A watermark: the whole stream's clock.
                    if let Some(t) = e.time {
                        part.engine.tick(t);
                    }
                    continue;
                }
                n += 1;
                for ev in e.item {
                    ev.apply(&mut part.engine);
                }
            }
            part.engine.state.kafka_records += n;
            total += n;
        }
        // Input messages decided on (`faultline_lines_total`, as the
        // single-stage source counts them).
        self.metrics
            .lines
            .fetch_add(total, std::sync::atomic::Ordering::Relaxed);
        total
    }

    /// Per partition, the offset the next owner must read from: its lanes'
    /// oldest buffered entry, else the offset after the last read.
    fn commit_offset(part: &Part) -> Option<i64> {
        let next = part.next?;
        let align = &part.lanes.align;
        let oldest = align
            .partitions()
            .filter(|k| align.waiting(k) > 0)
            .filter_map(|k| align.commit_offset(k))
            .min();
        Some(oldest.map_or(next, |o| o.min(next)))
    }

    /// One turn: poll, take up a rebalance, feed the engines, commit when
    /// due. Returns whether a commit was made.
    pub(super) fn step(&mut self) -> Result<bool, ScaleError> {
        let msg = self.consumer.poll(Duration::from_millis(20));
        let got = match msg {
            Some(Ok(m)) => Some((
                m.partition(),
                m.offset(),
                m.payload().unwrap_or(&[]).to_vec(),
            )),
            Some(Err(KafkaError::PartitionEOF(_))) | None => None,
            Some(Err(e)) => {
                tracing::warn!(error = %e, "stage-2 consumer");
                None
            }
        };
        if self.changed.swap(false, Ordering::Relaxed) {
            self.sync(false)?;
        }
        let now = Instant::now();
        let commanded = self.take_commands(now)?;
        if let Some((p, off, payload)) = &got {
            self.begin()?;
            self.receive(*p, *off, payload, now)?;
        }
        if self.parts.values().any(|p| p.lanes.align.ready(now)) {
            self.begin()?;
        }
        let n = self.drain(now);
        if n > 0 && self.started.is_none() {
            self.started = Some(now);
        }
        self.since += n;
        let mut due = commanded
            || self.since >= self.batch
            || (self.in_txn.load(Ordering::Relaxed)
                && self.started.is_some_and(|s| s.elapsed() >= self.interval));
        if got.is_none() && n == 0 {
            // Every input silent: the wall clock moves the signals' clock.
            let wall = Instant::now();
            let mut raised = false;
            let minutes: Vec<(i32, i64)> = self
                .parts
                .iter_mut()
                .filter_map(|(p, part)| part.engine.silent_minute(wall).map(|m| (*p, m)))
                .collect();
            for (p, m) in minutes {
                self.begin()?;
                if let Some(part) = self.parts.get_mut(&p)
                    && part.engine.judge_silence(m) > 0
                {
                    part.touched = true;
                    raised = true;
                }
            }
            due |= raised;
            // A batch read but not released (watermarks only) still
            // commits on time, so the next owner need not read it again.
            due |= self.in_txn.load(Ordering::Relaxed)
                && self.parts.values().any(|p| p.touched)
                && self.started.is_none_or(|s| s.elapsed() >= self.interval);
        }
        if due && self.in_txn.load(Ordering::Relaxed) {
            self.commit()?;
            return Ok(true);
        }
        Ok(false)
    }

    /// Every 200 ms: the API's queued writes go to the control topic, what
    /// arrived on it is applied to the owned engines that know the types,
    /// and snoozes past their wall-clock end expire. Returns whether an
    /// engine changed (a commit is then due, so the change is saved soon).
    fn take_commands(&mut self, now: Instant) -> Result<bool, ScaleError> {
        if now.duration_since(self.control_checked) < Duration::from_millis(200) {
            return Ok(false);
        }
        self.control_checked = now;
        if let Some(c) = &self.commands {
            let sender = &self.sender;
            c.forward(|cmd| {
                sender
                    .send(cmd, crate::engine::now_ms())
                    .map(|offset| format!("{} at offset {offset}", sender.topic()))
                    .map_err(|e| e.to_string())
            });
        }
        if let Some(c) = &self.commands {
            c.answer_owned(|about| self.owner_of(about));
        }
        // A snooze also ends on the wall clock under `run` (a quiet stream
        // moves no event time), as the single stage's control does.
        let wall = crate::engine::now_ms();
        let mut changed = false;
        for part in self.parts.values_mut() {
            let st = &mut part.engine.state;
            if !st.snoozes.is_empty()
                && crate::detect::snooze::expire(
                    &mut st.snoozes,
                    &mut st.baseline,
                    None,
                    Some(wall),
                )
            {
                part.touched = true;
                changed = true;
            }
        }
        if self.control.poll() {
            let mut applied = 0;
            for part in self.parts.values_mut() {
                let n = self.control.apply(&mut part.engine.state);
                if n > 0 {
                    part.touched = true;
                    applied += n;
                }
            }
            if applied > 0 {
                tracing::info!(applied, "stage 2: control commands applied");
                changed = true;
            }
        }
        if changed {
            self.begin()?;
        }
        Ok(changed)
    }

    /// The engine that answers the API's questions about service `about`
    /// (rollout check, signals): the owner of its partition. A question
    /// about the whole state (the release report) has one only when a
    /// single partition holds every service (`include_service = false`).
    /// Otherwise why this instance cannot answer, for the caller.
    fn owner_of(&self, about: Option<&str>) -> Result<&Engine, String> {
        let by_service = self.cfg.fingerprint.include_service;
        let service = match (about, by_service) {
            (_, false) => None,
            (Some(s), true) => Some(s),
            (None, true) => {
                return Err(format!(
                    "scale-out spreads the services' state over the {} partitions of {} \
                     (docs/scaling.md), and this question reads all of it: no instance can \
                     answer it; ask per service (rollout-check, signals)",
                    self.partitions, self.topic
                ));
            }
        };
        let p = super::wire::partition_of(service, self.partitions);
        match self.parts.get(&p) {
            Some(part) => Ok(&part.engine),
            None => {
                let owned: Vec<i32> = self.parts.keys().copied().collect();
                Err(format!(
                    "{} is decided on partition {p} of {}, which this instance{} does not own \
                     (it owns {owned:?}{}): ask another instance of the group; the one that \
                     owns it answers",
                    service.map_or("the whole stream".to_string(), |s| format!("service `{s}`")),
                    self.topic,
                    match self.cfg.scale_out.instance.as_str() {
                        "" => String::new(),
                        i => format!(" (`{i}`)"),
                    },
                    if owned.is_empty() {
                        ": a rebalance may be under way, retry shortly"
                    } else {
                        ""
                    },
                ))
            }
        }
    }

    /// Flushes the sinks, then in one transaction: what changed in every
    /// partition worked on (`changelog::write`), the events offsets,
    /// commit.
    pub(super) fn commit(&mut self) -> Result<(), ScaleError> {
        self.begin()?;
        // A command for a type a partition had not seen when it arrived
        // applies once the type is there.
        if !self.control.is_empty() {
            for part in self.parts.values_mut().filter(|p| p.touched) {
                self.control.apply(&mut part.engine.state);
            }
        }
        for part in self.parts.values_mut() {
            part.engine.flush_sinks()?;
        }
        let mut tpl = TopicPartitionList::new();
        let t = Instant::now();
        let mut written = Vec::new();
        for (&p, part) in &mut self.parts {
            if !part.touched {
                continue;
            }
            let Some(o) = Self::commit_offset(part) else {
                continue;
            };
            let key = format!("{}/{p}", self.topic);
            let offsets = &mut part.engine.state.kafka_offsets;
            offsets.insert(key.clone(), o);
            part.lanes.save(offsets, &key);
            let w = changelog::write(
                &self.producer,
                &self.changelog,
                p,
                &mut part.engine.state,
                std::mem::take(&mut part.written),
            )?;
            self.snapshot_bytes += w.bytes as u64;
            self.snapshot_types += w.types as u64;
            written.push((p, w));
            tpl.add_partition_offset(&self.topic, p, Offset::Offset(o))
                .map_err(kafka("offsets"))?;
        }
        self.snapshot_time += t.elapsed();
        tracing::debug!(
            partitions = written.len(),
            type_records = written.iter().map(|(_, w)| w.types).sum::<usize>(),
            bytes = written.iter().map(|(_, w)| w.bytes).sum::<usize>(),
            ms = t.elapsed().as_secs_f64() * 1e3,
            "stage 2: changelog written"
        );
        let meta = self.consumer.group_metadata().ok_or_else(|| {
            ScaleError::Topic("the stage-2 consumer has no group metadata".into())
        })?;
        let sent = if tpl.count() > 0 {
            timeout_retry(|t| self.producer.send_offsets_to_transaction(&tpl, &meta, t))
                .map_err(|e| (e, "send offsets (stage 2)"))
        } else {
            Ok(())
        }
        .and_then(|()| {
            timeout_retry(|t| self.producer.commit_transaction(t))
                .map_err(|e| (e, "commit (stage 2)"))
        });
        let result = match sent {
            Ok(()) => Ok(()),
            Err((e, _)) if abortable(&e) => Err(e),
            Err((e, context)) => return Err(ScaleError::Kafka { context, source: e }),
        };
        self.in_txn.store(false, Ordering::Relaxed);
        if let Err(e) = result {
            // A rebalance under way fenced this batch: abort it and take
            // up again from the last commit (this owner's, or the next).
            tracing::info!(error = %e, "stage 2: batch fenced; aborting and restoring from the changelog");
            timeout_retry(|t| self.producer.abort_transaction(t))
                .map_err(kafka("abort (stage 2)"))?;
            return self.sync(true);
        }
        for (p, w) in written {
            if let Some(part) = self.parts.get_mut(&p) {
                part.written = w;
                part.touched = false;
            }
        }
        self.since = 0;
        self.started = None;
        self.commits += 1;
        if self.crash_after_commit == Some(self.commits) {
            tracing::warn!(batch = self.commits, "failpoint: crashing after commit");
            std::process::abort();
        }
        Ok(())
    }

    /// The end of the run: the open batch commits.
    pub(super) fn close(&mut self) -> Result<(), ScaleError> {
        if self.in_txn.load(Ordering::Relaxed) {
            self.commit()?;
        }
        Ok(())
    }
}

/// Every partition of the input topics, as stage 1 names them
/// (`topic/partition`), so that each partition's alignment waits for all
/// of them from the start, whichever stage-1 instance owns them. Topics
/// given as patterns are learned from the watermarks instead (empty).
fn input_partitions(cfg: &Config) -> Result<Vec<Up>, ScaleError> {
    let k = &cfg.kafka;
    if k.topics.iter().any(|t| t.starts_with('^')) {
        return Ok(Vec::new());
    }
    let c: BaseConsumer = super::client(cfg, &k.consumer_properties)
        .create()
        .map_err(kafka("creating a metadata client"))?;
    let mut out = Vec::new();
    for t in &k.topics {
        let md = c
            .fetch_metadata(Some(t), Duration::from_secs(10))
            .map_err(kafka("reading the input topics' metadata"))?;
        for topic in md.topics().iter().filter(|x| x.name() == t) {
            for p in topic.partitions() {
                out.push(Arc::from(format!("{t}/{}", p.id())));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const IDLE: Duration = Duration::from_secs(30);
    const KEY: &str = "events/0";

    fn up(name: &str) -> Up {
        Arc::from(name)
    }

    fn line(t: i64) -> Option<Vec<Event>> {
        Some(vec![Event::Line {
            time: Some(t),
            level: None,
            service: None,
            version: None,
            message: None,
            duration_ms: None,
            request: false,
        }])
    }

    fn mark(t: i64, at_end: bool) -> Option<Mark> {
        Some(Mark {
            time: Some(t),
            at_end,
        })
    }

    /// Released entries' event times (watermarks included).
    fn drain(lanes: &mut Lanes, now: Instant) -> Vec<Option<i64>> {
        std::iter::from_fn(|| lanes.pop(now).map(|e| e.time)).collect()
    }

    /// Two upstream partitions: `in/1` delivers a record and ends (offsets
    /// 0 and 1), `in/0` delivers a record and a mark that it goes on
    /// (offsets 2 and 3). All of it is released; the partition's offsets
    /// are saved as a commit saves them.
    fn first_owner(now: Instant) -> (Lanes, BTreeMap<String, i64>) {
        let ups = [up("in/0"), up("in/1")];
        let mut lanes = Lanes::new(100, IDLE, &ups, now);
        lanes.receive(&ups[1], 0, line(1_000), None, now);
        lanes.receive(&ups[1], 1, None, mark(1_000, true), now);
        lanes.receive(&ups[0], 2, line(2_000), None, now);
        lanes.receive(&ups[0], 3, None, mark(2_000, false), now);
        assert_eq!(
            drain(&mut lanes, now),
            [Some(1_000), Some(1_000), Some(2_000), Some(2_000)]
        );
        let mut offsets = BTreeMap::new();
        offsets.insert(KEY.to_string(), 4);
        lanes.save(&mut offsets, KEY);
        (lanes, offsets)
    }

    /// The next owner's lanes, restored from `offsets`.
    fn next_owner(offsets: &BTreeMap<String, i64>, now: Instant) -> Lanes {
        let ups = [up("in/0"), up("in/1")];
        let mut lanes = Lanes::new(100, IDLE, &ups, now);
        for (name, saved) in Lanes::saved(offsets, KEY) {
            let u = ups
                .iter()
                .find(|u| ***u == *name)
                .cloned()
                .unwrap_or_else(|| up(&name));
            lanes.restore(&u, saved, now);
        }
        lanes
    }

    #[test]
    fn a_lane_whose_upstream_ended_still_holds_nothing_back_after_a_restore() {
        let t0 = Instant::now();
        let (_, offsets) = first_owner(t0);
        assert_eq!(offsets.get("end|events/0|in/1"), Some(&2));
        assert_eq!(offsets.get("end|events/0|in/0"), None);
        // A rebalance: the next owner reads on from the committed offset
        // 4; the end mark at 1 is not read again, and in/1's stage 1 has
        // nothing new to say.
        let t1 = t0 + Duration::from_secs(1);
        let mut lanes = next_owner(&offsets, t1);
        lanes.receive(&up("in/0"), 4, line(3_000), None, t1);
        // Released at once, not after max_idle.
        assert_eq!(drain(&mut lanes, t1), [Some(3_000)]);
    }

    #[test]
    fn an_end_mark_read_again_below_the_released_offsets_still_says_the_end() {
        let t0 = Instant::now();
        let (_, offsets) = first_owner(t0);
        let t1 = t0 + Duration::from_secs(1);
        let mut lanes = next_owner(&offsets, t1);
        // Another lane's buffered entry set the committed offset back to 0:
        // everything is read again, skipped as released, and in/1 still
        // ends at its mark.
        for (u, o, ev, m) in [
            ("in/1", 0, line(1_000), None),
            ("in/1", 1, None, mark(1_000, true)),
            ("in/0", 2, line(2_000), None),
            ("in/0", 3, None, mark(2_000, false)),
        ] {
            lanes.receive(&up(u), o, ev, m, t1);
        }
        assert!(drain(&mut lanes, t1).is_empty(), "all of it was released");
        lanes.receive(&up("in/0"), 4, line(3_000), None, t1);
        assert_eq!(drain(&mut lanes, t1), [Some(3_000)]);
    }

    #[test]
    fn a_lane_that_delivered_after_its_end_is_not_saved_as_ended() {
        let t0 = Instant::now();
        let (mut lanes, mut offsets) = first_owner(t0);
        // in/1's upstream got a record after the end: it may deliver more,
        // so it holds in/0's end mark back, and after a restore it still
        // holds the others back until it delivers or idles.
        lanes.receive(&up("in/1"), 4, line(3_000), None, t0);
        lanes.receive(&up("in/0"), 5, None, mark(3_500, true), t0);
        assert_eq!(drain(&mut lanes, t0), [Some(3_000)]);
        offsets.insert(KEY.to_string(), 5);
        lanes.save(&mut offsets, KEY);
        assert_eq!(offsets.get("end|events/0|in/1"), None);
        assert_eq!(offsets.get("end|events/0|in/0"), Some(&6));
        let t1 = t0 + Duration::from_secs(1);
        let mut lanes = next_owner(&offsets, t1);
        lanes.receive(&up("in/0"), 5, None, mark(3_500, true), t1);
        lanes.receive(&up("in/0"), 6, line(4_000), None, t1);
        assert!(drain(&mut lanes, t1).is_empty(), "in/1 may deliver earlier");
        assert_eq!(drain(&mut lanes, t1 + IDLE), [Some(3_500), Some(4_000)]);
    }

    #[test]
    fn an_end_saved_before_the_lane_released_more_is_not_believed() {
        let t0 = Instant::now();
        let (_, mut offsets) = first_owner(t0);
        // An older binary released in/1's offset 4 and saved its position,
        // leaving the end key as it was.
        offsets.insert("events/0|in/1".to_string(), 5);
        offsets.insert(KEY.to_string(), 5);
        let t1 = t0 + Duration::from_secs(1);
        let mut lanes = next_owner(&offsets, t1);
        lanes.receive(&up("in/0"), 5, line(4_000), None, t1);
        assert!(drain(&mut lanes, t1).is_empty(), "in/1 may deliver earlier");
        assert_eq!(drain(&mut lanes, t1 + IDLE), [Some(4_000)]);
    }

    #[test]
    fn the_saved_lanes_are_read_back_by_upstream_partition_and_other_keys_are_left_alone() {
        let mut offsets = BTreeMap::new();
        for (k, v) in [
            ("events/0", 9),
            ("events/0|in/0", 4),
            ("events/0|in/1", 2),
            ("end|events/0|in/1", 2),
            ("events/1|in/0", 7),
            ("end|events/1|in/0", 8),
            ("events/10|in/0", 5),
            ("control|x", 3),
        ] {
            offsets.insert(k.to_string(), v);
        }
        let saved = |done, ended| Saved { done, ended };
        assert_eq!(
            Lanes::saved(&offsets, KEY),
            [
                ("in/0".to_string(), saved(Some(4), None)),
                ("in/1".to_string(), saved(Some(2), Some(2))),
            ]
        );
        assert_eq!(
            Lanes::saved(&offsets, "events/1"),
            [("in/0".to_string(), saved(Some(7), Some(8)))]
        );
    }
}
