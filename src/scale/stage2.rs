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

use std::sync::Arc;
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
    consumer: BaseConsumer,
    producer: Option<SharedProducer>,
    topic: String,
    partitions: i32,
    align: Aligner<Lane, Vec<Event>>,
    /// Per internal partition: the offset after the last message read.
    next: Vec<Option<i64>>,
    /// Per internal partition: a placeholder lane holds the others back
    /// until the partition delivered its first message (its lanes are not
    /// known before).
    unseen: Vec<bool>,
    /// Upstream partitions seen, shared names.
    ups: Vec<Arc<str>>,
    pace: Pace,
    in_txn: bool,
    /// The offsets the commit sent, for the state.
    offsets: Vec<(i32, i64)>,
}

const PLACEHOLDER: &str = "";

impl Stage2 {
    pub(super) fn new(
        engine: Engine,
        consumer: BaseConsumer,
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
        }
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
        if std::mem::take(&mut self.unseen[p as usize]) {
            self.align.revoke(&(p, self.ups[0].clone()));
        }
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
        if let Some(events) = env.events {
            let time = events.iter().find_map(Event::time);
            self.align.push(&key, offset, time, events, now);
        }
        if let Some(mark) = env.mark {
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
        while let Some((_, e)) = self.align.pop_ready(now) {
            if e.item.is_empty() {
                continue; // a watermark
            }
            n += 1;
            for ev in e.item {
                ev.apply(&mut self.engine);
            }
        }
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
            tpl.add_partition_offset(&self.topic, *p, Offset::Offset(*o))
                .map_err(kafka("offsets"))?;
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
        Ok(())
    }

    fn checkpoint(&mut self) {
        for (p, o) in std::mem::take(&mut self.offsets) {
            self.engine
                .state
                .kafka_offsets
                .insert(format!("{}/{p}", self.topic), o);
        }
    }
}
