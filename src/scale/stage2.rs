//! Stage 2: the owner of the internal partitions replays stage 1's events
//! into the [`Engine`] in event-time order and makes the decisions; alerts
//! and the internal offsets commit in one transaction, and the state is
//! saved after it, through the driver's one checkpoint order
//! (`source::driver::checkpoint`).
//!
//! Order: one lane per (internal partition, upstream partition) keeps that
//! upstream partition's order for the services of the internal partition;
//! across lanes the head with the smallest event time goes first
//! (`source::align::Aligner`, the single-stage rule). A lane with nothing
//! buffered holds the others back until stage 1's watermark for its
//! upstream partition arrives: a watermark is buffered like an entry at its
//! time, so heads up to it are released, and one saying the upstream
//! partition was at its end lets the lane hold nothing back.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::Producer;
use rdkafka::{Offset, TopicPartitionList};

use super::wire::{Envelope, Event};
use super::{ScaleError, kafka, timeout_retry};
use crate::alert::kafka::SharedProducer;
use crate::engine::Engine;
use crate::source::align::Aligner;
use crate::source::driver::{Pace, Poll, Source};

/// (internal partition, upstream partition).
type Lane = (i32, Arc<str>);

pub(super) struct Stage2 {
    pub(super) engine: Engine,
    consumer: BaseConsumer<super::Quiet>,
    producer: Option<SharedProducer>,
    topic: String,
    partitions: i32,
    align: Aligner<Lane, Vec<Event>>,
    /// Per internal partition: the offset after the last message read.
    next: Vec<Option<i64>>,
    /// Per internal partition: a placeholder lane holds the others back
    /// until the partition delivered its first watermark (its lanes are
    /// not known before).
    unseen: Vec<bool>,
    /// Upstream partitions seen, shared names.
    ups: Vec<Arc<str>>,
    pace: Pace,
    in_txn: bool,
    /// The offsets the commit sent, for the state.
    offsets: Vec<(i32, i64)>,
    /// Per lane: the offset after its last entry released to the engine.
    /// A partition's committed offset is its lanes' oldest *buffered*
    /// entry, so a restart reads again entries other lanes had released:
    /// those below this are skipped (saved in the state, and in the
    /// commit's offset metadata).
    done: HashMap<Lane, i64>,
    /// Per lane, after a crash between commit and save: where the commit
    /// stood. Entries from the state's position up to it rebuild the state
    /// with the sinks shut (their alerts were committed).
    quiet: HashMap<Lane, i64>,
    /// Shuts the sinks while such entries are replayed.
    silent: Arc<AtomicBool>,
    commits: u64,
    /// `FAULTLINE_FAILPOINT_CRASH_AFTER_COMMIT=N` (tests only), as the
    /// single-stage source.
    crash_after_commit: Option<u64>,
}

const PLACEHOLDER: &str = "";

impl Stage2 {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        engine: Engine,
        silent: Arc<AtomicBool>,
        consumer: BaseConsumer<super::Quiet>,
        producer: Option<SharedProducer>,
        topic: &str,
        partitions: i32,
        capacity: usize,
        max_idle: Duration,
    ) -> Stage2 {
        let mut align = Aligner::new(capacity, max_idle);
        let now = Instant::now();
        let placeholder: Arc<str> = Arc::from(PLACEHOLDER);
        for p in 0..partitions {
            align.assign(&(p, placeholder.clone()), now);
        }
        Stage2 {
            engine,
            consumer,
            producer,
            topic: topic.to_string(),
            partitions,
            align,
            next: vec![None; partitions as usize],
            unseen: vec![true; partitions as usize],
            ups: vec![placeholder],
            pace: Pace::default(),
            in_txn: false,
            offsets: Vec::new(),
            silent,
            done: HashMap::new(),
            quiet: HashMap::new(),
            commits: 0,
            crash_after_commit: std::env::var("FAULTLINE_FAILPOINT_CRASH_AFTER_COMMIT")
                .ok()
                .and_then(|v| v.parse().ok()),
        }
    }

    /// Assigns every internal partition (this slice has one stage-2 owner),
    /// each from the state's offset when the state is behind the commit (a
    /// crash between commit and save: the gap rebuilds the state with the
    /// sinks shut, see `quiet`), else from the committed offset; per lane,
    /// entries the state already holds are skipped (`done`).
    pub(super) fn assign(&mut self) -> Result<(), ScaleError> {
        let mut all = TopicPartitionList::new();
        for p in 0..self.partitions {
            all.add_partition(&self.topic, p);
        }
        let committed = self
            .consumer
            .committed_offsets(all, Duration::from_secs(30))
            .map_err(kafka("reading the stage-2 group's offsets"))?;
        let now = Instant::now();
        let mut assign = TopicPartitionList::new();
        for p in 0..self.partitions {
            let (c, c_lanes) = match committed.find_partition(&self.topic, p) {
                Some(e) => match e.offset() {
                    Offset::Offset(o) => (Some(o), parse_lanes(e.metadata())),
                    _ => (None, Vec::new()),
                },
                None => (None, Vec::new()),
            };
            let prefix = format!("{}/{p}", self.topic);
            let offsets = &self.engine.state.kafka_offsets;
            let s = offsets.get(&prefix).copied();
            let lane_prefix = format!("{prefix}|");
            let s_lanes: Vec<(String, i64)> = offsets
                .range(lane_prefix.clone()..)
                .take_while(|(k, _)| k.starts_with(&lane_prefix))
                .map(|(k, v)| (k[lane_prefix.len()..].to_string(), *v))
                .collect();
            let (start, done, quiet) = match (s, c) {
                (Some(s), Some(c)) if s < c || s_lanes != c_lanes => {
                    tracing::info!(
                        partition = p,
                        from = s,
                        to = c,
                        "stage 2: rebuilding the state behind the commit silently"
                    );
                    (Offset::Offset(s.min(c)), s_lanes, c_lanes)
                }
                (Some(_), Some(c)) => (Offset::Offset(c), s_lanes, Vec::new()),
                (None, Some(c)) => (Offset::Offset(c), c_lanes, Vec::new()),
                (Some(s), None) => (Offset::Offset(s), s_lanes, Vec::new()),
                (None, None) => (Offset::Beginning, Vec::new(), Vec::new()),
            };
            for (up, o) in done {
                let key = (p, self.up(&up, now));
                self.done.insert(key, o);
            }
            for (up, o) in quiet {
                let key = (p, self.up(&up, now));
                self.quiet.insert(key, o);
            }
            assign
                .add_partition_offset(&self.topic, p, start)
                .map_err(kafka("offsets"))?;
        }
        self.consumer
            .assign(&assign)
            .map_err(kafka("assigning the internal partitions"))
    }

    /// The lanes of internal partition `p` with their progress, as the
    /// commit's offset metadata: `upstream=offset` joined by `,` (topic
    /// names hold neither).
    fn lanes_of(&self, p: i32) -> String {
        let mut v: Vec<(&str, i64)> = self
            .done
            .iter()
            .filter(|((q, _), _)| *q == p)
            .map(|((_, u), o)| (&**u, *o))
            .collect();
        v.sort_unstable();
        v.iter()
            .map(|(u, o)| format!("{u}={o}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    pub(super) fn begin(&mut self) -> Result<(), ScaleError> {
        if !self.in_txn {
            if let Some(p) = &self.producer {
                p.begin_transaction()
                    .map_err(kafka("begin transaction (stage 2)"))?;
            }
            self.in_txn = true;
        }
        Ok(())
    }

    /// A transaction is open: something was read since the last commit.
    pub(super) fn at_boundary_now(&self) -> bool {
        self.in_txn
    }

    fn up(&mut self, name: &str, now: Instant) -> Arc<str> {
        if let Some(u) = self.ups.iter().find(|u| ***u == *name) {
            return u.clone();
        }
        let u: Arc<str> = Arc::from(name);
        self.ups.push(u.clone());
        // A new upstream partition: its lane in every internal partition
        // holds the others back until it delivers, ends or idles.
        for p in 0..self.partitions {
            self.align.assign(&(p, u.clone()), now);
        }
        u
    }

    fn receive(&mut self, p: i32, offset: i64, payload: &[u8], now: Instant) {
        let Some(slot) = self.next.get_mut(p as usize) else {
            tracing::warn!(
                partition = p,
                "stage 2: a partition beyond the count read at start; skipped"
            );
            return;
        };
        *slot = Some(offset + 1);
        let env: Envelope = match serde_json::from_slice(payload) {
            Ok(e) => e,
            Err(e) => {
                // Not written by a stage 1 of this version: counted and
                // skipped, never a stop.
                tracing::warn!(partition = p, offset, error = %e, "stage 2: an undecodable event message; skipped");
                self.engine
                    .metrics
                    .bad(crate::record::BadReason::InvalidJson);
                return;
            }
        };
        let key = (p, self.up(&env.up, now));
        self.align.consumed(&key, offset, now);
        if self.done.get(&key).is_some_and(|&d| offset < d) {
            return; // released before the restart: in the state already
        }
        if let Some(events) = env.events {
            let time = events.iter().find_map(Event::time);
            self.align.push(&key, offset, time, events, now);
        }
        if let Some(mark) = env.mark {
            // A stage-1 transaction ends with a watermark for every
            // upstream partition its instance owns: from the first one on,
            // this partition's lanes are known.
            if std::mem::take(&mut self.unseen[p as usize]) {
                self.align.revoke(&(p, self.ups[0].clone()));
            }
            if let Some(t) = mark.time {
                self.align.push(&key, offset, Some(t), Vec::new(), now);
            }
            if mark.at_end {
                self.align.reached_end(&key, now);
            }
        }
    }

    /// Releases what the alignment allows into the engine; returns the
    /// upstream messages released.
    fn drain(&mut self, now: Instant) -> u64 {
        let mut n = 0;
        while let Some((key, e)) = self.align.pop_ready(now).map(|(k, e)| (k.clone(), e)) {
            let quiet = self.quiet.get(&key).is_some_and(|&q| e.from < q);
            self.done.insert(key, e.from + 1);
            if e.item.is_empty() {
                continue; // a watermark
            }
            n += 1;
            self.silent.store(quiet, Ordering::Relaxed);
            for ev in e.item {
                ev.apply(&mut self.engine);
            }
        }
        self.silent.store(false, Ordering::Relaxed);
        self.engine.state.kafka_records += n;
        n
    }

    /// Per internal partition, the offset a restart must read from: its
    /// lanes' oldest buffered entry, else the offset after the last read.
    fn commit_offsets(&self) -> Vec<(i32, i64)> {
        let mut out = Vec::new();
        for p in 0..self.partitions {
            let Some(next) = self.next[p as usize] else {
                continue;
            };
            let oldest = self
                .ups
                .iter()
                .filter_map(|u| {
                    let key = (p, u.clone());
                    (self.align.waiting(&key) > 0)
                        .then(|| self.align.commit_offset(&key))
                        .flatten()
                })
                .min();
            out.push((p, oldest.map_or(next, |o| o.min(next))));
        }
        out
    }
}

impl Source for Stage2 {
    type Error = ScaleError;

    fn engine(&mut self) -> &mut Engine {
        &mut self.engine
    }

    fn pace(&mut self) -> &mut Pace {
        &mut self.pace
    }

    fn poll(&mut self) -> Result<Poll, ScaleError> {
        let now = Instant::now();
        let msg = self.consumer.poll(Duration::from_millis(20));
        let mut got = false;
        match msg {
            Some(Ok(m)) => {
                let (p, off) = (m.partition(), m.offset());
                let payload = m.payload().unwrap_or(&[]).to_vec();
                drop(m);
                self.begin()?;
                self.receive(p, off, &payload, now);
                got = true;
            }
            Some(Err(KafkaError::PartitionEOF(_))) | None => {}
            Some(Err(e)) => tracing::warn!(error = %e, "stage-2 consumer"),
        }
        if self.align.ready(now) {
            self.begin()?;
        }
        let n = self.drain(now);
        Ok(if got || n > 0 {
            Poll::Pushed(n)
        } else {
            Poll::Idle
        })
    }

    fn at_boundary(&self) -> bool {
        self.in_txn && self.pace.since > 0
    }

    /// The internal offsets into the transaction with the alerts, commit
    /// (or, with no alerts topic, a consumer commit).
    fn commit(&mut self) -> Result<(), ScaleError> {
        let offsets = self.commit_offsets();
        let mut tpl = TopicPartitionList::new();
        for (p, o) in &offsets {
            let lanes = self.lanes_of(*p);
            let mut e = tpl.add_partition(&self.topic, *p);
            e.set_offset(Offset::Offset(*o)).map_err(kafka("offsets"))?;
            e.set_metadata(lanes);
        }
        if self.producer.is_some() {
            self.begin()?;
        }
        match &self.producer {
            Some(prod) => {
                let meta = self.consumer.group_metadata().ok_or_else(|| {
                    ScaleError::Topic("the stage-2 consumer has no group metadata".into())
                })?;
                timeout_retry(|t| prod.send_offsets_to_transaction(&tpl, &meta, t))
                    .map_err(kafka("send offsets (stage 2)"))?;
                timeout_retry(|t| prod.commit_transaction(t)).map_err(kafka("commit (stage 2)"))?;
            }
            None if tpl.count() > 0 => {
                self.consumer
                    .commit(&tpl, CommitMode::Sync)
                    .map_err(kafka("commit (stage 2)"))?;
            }
            None => {}
        }
        self.in_txn = false;
        self.offsets = offsets;
        self.commits += 1;
        if self.crash_after_commit == Some(self.commits) {
            tracing::warn!(
                batch = self.commits,
                "failpoint: crashing after commit, before state save"
            );
            std::process::abort();
        }
        Ok(())
    }

    fn checkpoint(&mut self) {
        let state = &mut self.engine.state.kafka_offsets;
        for (p, o) in std::mem::take(&mut self.offsets) {
            state.insert(format!("{}/{p}", self.topic), o);
        }
        for ((p, up), o) in &self.done {
            state.insert(format!("{}/{p}|{up}", self.topic), *o);
        }
    }
}

/// The lanes in a commit's offset metadata ([`Stage2::lanes_of`]);
/// anything unreadable is ignored (the state's own record then decides).
fn parse_lanes(meta: &str) -> Vec<(String, i64)> {
    let mut v: Vec<(String, i64)> = meta
        .split(',')
        .filter_map(|kv| {
            let (k, o) = kv.rsplit_once('=')?;
            Some((k.to_string(), o.parse().ok()?))
        })
        .collect();
    v.sort_unstable();
    v
}

#[cfg(test)]
mod tests {
    use super::parse_lanes;

    #[test]
    fn lane_metadata_reads_back_and_ignores_garbage() {
        assert_eq!(
            parse_lanes("logs/1=5,logs/0=17"),
            vec![("logs/0".to_string(), 17), ("logs/1".to_string(), 5)]
        );
        assert!(parse_lanes("").is_empty());
        assert_eq!(parse_lanes("x,y=z,a/0=3"), vec![("a/0".to_string(), 3)]);
    }
}
