//! Stage 1: parse the input partitions this instance owns and forward what
//! the parser reported, keyed by service, to the internal events topic, in
//! one transaction with the input offsets.
//!
//! Per batch (`kafka.batch_size` messages or `kafka.commit_interval`):
//! begin → per input message, its parsed events grouped by service, one
//! events message each, to partition `partition_of(service)` → records
//! held open for their trace are emitted (as the single-stage source does
//! before every commit) → a watermark per upstream partition to *every*
//! internal partition → the input offsets to the transaction → commit. A
//! read_committed stage 2 therefore sees a batch's events and its
//! watermarks together or not at all, and a crash before the commit
//! forwards the batch again, once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};

use super::guard::{Expect, Guard, StartShift, Verdict};
use super::wire::{Envelope, Event, Mark, partition_of};
use super::{Owner, ScaleError, abortable, kafka, timeout_retry};
use crate::config::Config;
use crate::parse::{Parser, RecordSink, StreamState};
use crate::record::{BadReason, LineMeta, Record};

/// Collects the parser's calls for one input message.
#[derive(Default)]
struct Collect {
    events: Vec<Event>,
}

impl RecordSink for Collect {
    fn line(&mut self, meta: &LineMeta<'_>) {
        self.events.push(Event::line(meta));
    }
    fn error(&mut self, record: Record) {
        self.events.push(Event::Error(record));
    }
    fn bad(&mut self, reason: BadReason, line: u64) {
        self.events.push(Event::Bad { reason, line });
    }
}

/// How long a committed offset held by an open transaction (another
/// member's, or a killed one's until the broker aborts it) is waited for.
const STABLE_WAIT: Duration = Duration::from_secs(120);

/// One input partition this instance reads.
struct Upstream {
    topic: String,
    partition: i32,
    /// `topic/partition`, as the events name it.
    name: String,
    stream: StreamState,
    /// The offset after the last message read.
    next: Option<i64>,
    /// Event time of the last record forwarded.
    last_time: Option<i64>,
    at_end: bool,
    /// Where its next message may start.
    guard: Guard,
}

pub(super) struct Stage1 {
    cfg: Config,
    parser: Parser,
    consumer: BaseConsumer<Owner>,
    changed: Arc<AtomicBool>,
    revoked: Arc<AtomicBool>,
    producer: Arc<ThreadedProducer<DefaultProducerContext>>,
    events_topic: String,
    partitions: i32,
    /// Events go to their service's partition (`fingerprint.include_service`
    /// on); off, every event goes to one partition (see [`Stage1::send`]).
    by_service: bool,
    ups: Vec<Upstream>,
    /// A transaction is open (shared with the revocation's abort).
    in_txn: Arc<AtomicBool>,
    since: u64,
    started: Option<Instant>,
    /// An upstream partition reached its end: the next commit tells stage 2.
    end_news: bool,
    /// Input messages forwarded and committed (for the log).
    pub(super) forwarded: u64,
    /// Messages not forwarded because they were not where the partition
    /// stood (each sought back to it, with a warning), or of a partition
    /// not assigned (for the log and the tests).
    pub(super) refused: u64,
    /// `FAULTLINE_FAILPOINT_STAGE1_START_SHIFT=K` (tests only).
    start_shift: StartShift,
    /// `FAULTLINE_FAILPOINT_STAGE1_DELAY_MS=N` (tests only): each message
    /// forwarded takes N ms more, so batches stay open long enough for a
    /// rebalance to land inside one.
    delay: Option<Duration>,
}

impl Stage1 {
    pub(super) fn new(
        cfg: &Config,
        events_topic: &str,
        partitions: i32,
    ) -> Result<Stage1, ScaleError> {
        let k = &cfg.kafka;
        let producer: Arc<ThreadedProducer<DefaultProducerContext>> = Arc::new(
            super::transactional(cfg, "stage1")
                .create()
                .map_err(kafka("creating the stage-1 producer"))?,
        );
        timeout_retry(|t| producer.init_transactions(t))
            .map_err(kafka("init transactions (stage 1)"))?;
        let in_txn = Arc::new(AtomicBool::new(false));
        let (consumer, changed, revoked) = super::member(
            cfg,
            &k.group_id,
            &k.start,
            producer.clone(),
            in_txn.clone(),
            "stage 1",
        )?;
        let topics: Vec<&str> = k.topics.iter().map(String::as_str).collect();
        consumer.subscribe(&topics).map_err(kafka("subscribe"))?;
        Ok(Stage1 {
            cfg: cfg.clone(),
            parser: Parser::new(cfg, cfg.input.format)
                .map_err(|e| ScaleError::Topic(e.to_string()))?,
            consumer,
            changed,
            revoked,
            producer,
            events_topic: events_topic.to_string(),
            partitions,
            by_service: cfg.fingerprint.include_service,
            ups: Vec::new(),
            in_txn,
            since: 0,
            started: None,
            end_news: false,
            forwarded: 0,
            refused: 0,
            start_shift: StartShift::from_env("FAULTLINE_FAILPOINT_STAGE1_START_SHIFT"),
            delay: std::env::var("FAULTLINE_FAILPOINT_STAGE1_DELAY_MS")
                .ok()
                .and_then(|v| v.parse().ok())
                .map(Duration::from_millis),
        })
    }

    /// Polls and forwards until `stop`, then commits what it read.
    pub(super) fn run(&mut self, stop: &AtomicBool) -> Result<(), ScaleError> {
        let k = &self.cfg.kafka;
        let (batch, interval) = (k.batch_size as u64, k.commit_interval.0);
        while !stop.load(Ordering::Relaxed) {
            match self.consumer.poll(Duration::from_millis(50)) {
                Some(Ok(m)) => {
                    let (topic, part, off) = (m.topic().to_string(), m.partition(), m.offset());
                    let payload = m.payload().unwrap_or(&[]).to_vec();
                    let ts = m.timestamp().to_millis();
                    drop(m);
                    self.forward(&topic, part, off, &payload, ts)?;
                }
                Some(Err(KafkaError::PartitionEOF(p))) => self.reached_end(p),
                Some(Err(e)) => tracing::warn!(error = %e, "stage-1 consumer"),
                None => {}
            }
            if self.changed.swap(false, Ordering::Relaxed)
                && self.revoked.swap(false, Ordering::Relaxed)
            {
                // The batch was aborted in the callback: what it read is
                // read again by the partitions' next owner.
                self.reset();
            }
            let due = self.in_txn.load(Ordering::Relaxed)
                && (self.since >= batch || self.started.is_some_and(|s| s.elapsed() >= interval));
            if due || (self.end_news && !self.ups.is_empty()) {
                self.commit()?;
            }
        }
        if self.in_txn.load(Ordering::Relaxed) || !self.ups.is_empty() {
            self.commit()?;
        }
        Ok(())
    }

    /// Drops what the aborted batch held: the partitions' parser state
    /// and the batch's counts (a commit leaves no record open, so nothing
    /// of an earlier batch is lost).
    fn reset(&mut self) {
        self.ups.clear();
        self.start_shift.reset();
        self.since = 0;
        self.started = None;
        self.end_news = false;
    }

    /// After an abort without a rebalance: back to the committed offsets.
    fn rewind(&mut self) -> Result<(), ScaleError> {
        self.reset();
        let assigned = self
            .consumer
            .assignment()
            .map_err(kafka("reading the stage-1 assignment"))?;
        let committed = self
            .consumer
            .committed_offsets(assigned, Duration::from_secs(30))
            .map_err(kafka("reading the input group's offsets"))?;
        let mut seek = TopicPartitionList::new();
        let mut starts = Vec::new();
        for e in committed.elements() {
            // An error is not "nothing committed": seeking to the beginning
            // would forward the partition again (every record twice).
            e.error()
                .map_err(kafka("reading the input group's offset of a partition"))?;
            let o = match e.offset() {
                Offset::Offset(o) => Offset::Offset(o),
                _ => Offset::Beginning,
            };
            seek.add_partition_offset(e.topic(), e.partition(), o)
                .map_err(kafka("offsets"))?;
            starts.push((e.topic().to_string(), e.partition(), o));
        }
        self.consumer
            .seek_partitions(seek, Duration::from_secs(10))
            .map_err(kafka("rewinding the input partitions"))?;
        // Sought: the first readable record at or past the committed
        // offset is where each partition stands.
        for (topic, partition, o) in starts {
            let i = self.up_index(&topic, partition);
            self.ups[i].guard.expect = match o {
                Offset::Offset(o) => Expect::AtLeast(o),
                _ => Expect::AtLeast(0),
            };
        }
        Ok(())
    }

    /// The input group's committed offsets of `tpl`, stable ones: an
    /// offset an open transaction holds is waited for (librdkafka retries
    /// it for a while, then answers with the partition's error), up to
    /// [`STABLE_WAIT`]. Any other per-partition error is an error: it is
    /// not "nothing committed".
    fn committed_stable(
        &self,
        tpl: &TopicPartitionList,
    ) -> Result<Vec<(String, i32, Option<i64>)>, ScaleError> {
        let until = Instant::now() + STABLE_WAIT;
        loop {
            let committed = self
                .consumer
                .committed_offsets(tpl.clone(), Duration::from_secs(30))
                .map_err(kafka("reading the input group's offsets"))?;
            let mut out = Vec::new();
            let mut unstable = false;
            for e in committed.elements() {
                match e.error() {
                    Err(KafkaError::OffsetFetch(
                        rdkafka::types::RDKafkaErrorCode::UnstableOffsetCommit,
                    )) if Instant::now() < until => unstable = true,
                    Err(source) => {
                        return Err(ScaleError::Kafka {
                            context: "reading the input group's offset of a partition",
                            source,
                        });
                    }
                    Ok(()) => out.push((
                        e.topic().to_string(),
                        e.partition(),
                        match e.offset() {
                            Offset::Offset(o) => Some(o),
                            _ => None,
                        },
                    )),
                }
            }
            if !unstable {
                return Ok(out);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Reads the committed offset of every unchecked lane of an assigned
    /// partition (one request for all of them: they are new together,
    /// after an assignment). Lanes of partitions not assigned stay
    /// unchecked.
    fn check_starts(&mut self) -> Result<(), ScaleError> {
        let assigned = self
            .consumer
            .assignment()
            .map_err(kafka("reading the stage-1 assignment"))?;
        let mut tpl = TopicPartitionList::new();
        for u in self
            .ups
            .iter()
            .filter(|u| u.guard.expect == Expect::Unchecked)
        {
            if assigned.find_partition(&u.topic, u.partition).is_some() {
                tpl.add_partition(&u.topic, u.partition);
            }
        }
        if tpl.count() == 0 {
            return Ok(());
        }
        for (topic, partition, committed) in self.committed_stable(&tpl)? {
            let expect = match committed {
                Some(o) => Expect::Exactly(o),
                // Nothing committed: `kafka.start` decides. From the
                // earliest, that is the partition's first offset now (a
                // later one, if retention removed records meanwhile, is
                // sought to and then taken as it comes).
                None if self.cfg.kafka.start == "earliest" => {
                    let (low, _) = self
                        .consumer
                        .fetch_watermarks(&topic, partition, Duration::from_secs(10))
                        .map_err(kafka("reading an input partition's first offset"))?;
                    Expect::Exactly(low)
                }
                // From the latest: wherever the end was when the consumer
                // looked, which this instance cannot know afterwards.
                None => Expect::AtLeast(0),
            };
            if let Some(u) = self
                .ups
                .iter_mut()
                .find(|u| u.partition == partition && u.topic == topic)
            {
                u.guard.expect = expect;
            }
        }
        Ok(())
    }

    /// Whether the message at `off` of lane `i` is the one the partition's
    /// next record must be ([`Expect`]); if not, the partition is sought
    /// back to where it stands and the message is not forwarded. So no
    /// commit moves a partition's offset past a record this instance did
    /// not forward since the offset its batch started from, whatever the
    /// consumer's fetch position did around a rebalance, and no record
    /// before that offset is forwarded twice.
    fn admit(&mut self, i: usize, off: i64) -> Result<bool, ScaleError> {
        if self.ups[i].guard.expect == Expect::Unchecked {
            if let Some(to) = self.start_shift.shift(&self.ups[i].name, off) {
                // The failpoint: the consumer hands this partition out
                // away from where it stands, once per assignment.
                let (topic, partition) = (self.ups[i].topic.clone(), self.ups[i].partition);
                self.seek(&topic, partition, to)?;
                return Ok(false);
            }
            self.check_starts()?;
            if self.ups[i].guard.expect == Expect::Unchecked {
                let u = &self.ups[i];
                tracing::warn!(partition = %u.name, offset = off, "stage 1: a message of an input partition this instance is not assigned; skipped");
                self.ups.swap_remove(i);
                self.refused += 1;
                return Ok(false);
            }
        }
        let consumer = &self.consumer;
        let u = &mut self.ups[i];
        let (topic, partition) = (u.topic.as_str(), u.partition);
        let first = || {
            consumer
                .fetch_watermarks(topic, partition, Duration::from_secs(10))
                .ok()
                .map(|(low, _)| low)
        };
        match u.guard.judge(&u.name, off, first) {
            Verdict::Take => Ok(true),
            Verdict::SeekBack(to) => {
                let (topic, partition) = (u.topic.clone(), u.partition);
                self.seek(&topic, partition, to)?;
                self.refused += 1;
                Ok(false)
            }
        }
    }

    fn seek(&self, topic: &str, partition: i32, to: i64) -> Result<(), ScaleError> {
        self.consumer
            .seek(
                topic,
                partition,
                Offset::Offset(to),
                Duration::from_secs(10),
            )
            .map_err(kafka("seeking an input partition back to where it stands"))
    }

    /// The consumer reached the end of partition number `p`. The event
    /// names only the number: every assigned topic's partition `p` counts
    /// as at its end (with several input topics a partition may be
    /// reported at its end early; docs/scaling.md). A partition assigned
    /// at its end gets its state here, so its watermark says so.
    fn reached_end(&mut self, p: i32) {
        self.know_assigned();
        for u in self.ups.iter_mut().filter(|u| u.partition == p) {
            u.at_end = true;
        }
        self.end_news = true;
    }

    /// Every assigned input partition gets its state, so each commit sends
    /// its watermark: stage 2 must know an upstream partition exists before
    /// it delivers anything (else the others' events would run ahead of
    /// it), and one assigned at its end must say so.
    fn know_assigned(&mut self) {
        let assigned = self.consumer.assignment().unwrap_or_default();
        for e in assigned.elements() {
            self.up_index(e.topic(), e.partition());
        }
    }

    fn up_index(&mut self, topic: &str, partition: i32) -> usize {
        if let Some(i) = self
            .ups
            .iter()
            .position(|u| u.partition == partition && u.topic == topic)
        {
            return i;
        }
        self.ups.push(Upstream {
            topic: topic.to_string(),
            partition,
            name: format!("{topic}/{partition}"),
            stream: self.parser.stream_state(None, None),
            next: None,
            last_time: None,
            at_end: false,
            guard: Guard::new("stage 1", "input"),
        });
        self.ups.len() - 1
    }

    fn begin(&mut self) -> Result<(), ScaleError> {
        if !self.in_txn.load(Ordering::Relaxed) {
            self.producer
                .begin_transaction()
                .map_err(kafka("begin transaction (stage 1)"))?;
            self.in_txn.store(true, Ordering::Relaxed);
            self.started = Some(Instant::now());
        }
        Ok(())
    }

    fn forward(
        &mut self,
        topic: &str,
        part: i32,
        off: i64,
        payload: &[u8],
        ts: Option<i64>,
    ) -> Result<(), ScaleError> {
        let i = self.up_index(topic, part);
        if !self.admit(i, off)? {
            return Ok(());
        }
        self.begin()?;
        if let Some(d) = self.delay {
            std::thread::sleep(d);
        }
        let mut out = Collect::default();
        let line_no = u64::try_from(off).unwrap_or(0) + 1;
        let u = &mut self.ups[i];
        if payload.iter().all(|b| b.is_ascii_whitespace()) {
            out.bad(BadReason::Empty, line_no);
        } else if payload.len() > self.cfg.input.max_line_bytes {
            out.bad(BadReason::TooLong, line_no);
        } else {
            u.stream
                .push_message(&self.parser, payload, line_no, ts, &mut out);
        }
        u.next = Some(off + 1);
        u.at_end = false;
        self.since += 1;
        self.send(i, out.events)
    }

    /// Sends one upstream partition's events, one message per service in
    /// the order the parser reported them.
    ///
    /// With `fingerprint.include_service = false` every event goes to the
    /// partition of the empty service. A type then spans services, and so
    /// does the learner that decides which templates are one type (its
    /// scope is the empty service, `Fingerprinter::learn_scope`): whether a
    /// record is a new type depends on every service's earlier records, so
    /// exactly one engine must see them all, as replay's does. Stage 1 still
    /// parses in parallel; stage 2 has one busy owner (docs/scaling.md).
    fn send(&mut self, i: usize, events: Vec<Event>) -> Result<(), ScaleError> {
        if events.is_empty() {
            return Ok(());
        }
        let u = &mut self.ups[i];
        let mut groups: Vec<(Option<String>, Vec<Event>)> = Vec::new();
        for e in events {
            if let Some(t) = e.time() {
                u.last_time = Some(t);
            }
            let svc = e.service().map(str::to_string);
            match groups.last_mut() {
                Some((s, g)) if *s == svc => g.push(e),
                _ => groups.push((svc, vec![e])),
            }
        }
        let up = u.name.clone();
        for (svc, events) in groups {
            let env = Envelope {
                up: up.clone(),
                events: Some(events),
                mark: None,
            };
            let to = if self.by_service {
                svc.as_deref()
            } else {
                None
            };
            self.produce(partition_of(to, self.partitions), svc.as_deref(), &env)?;
        }
        Ok(())
    }

    /// Sends one events message. Its Kafka timestamp is the time it is
    /// written, never the records' event time (stage 2 reads event times
    /// from the payload): the events topic's retention (`retention.ms`, a
    /// day) deletes a segment whose newest timestamp is older than that,
    /// whether stage 2 has read it or not, so a stream of older records
    /// (a backlog, a replayed day, the tests' generated scenario) had its
    /// events deleted before stage 2 read them while stage 1 had already
    /// committed their input offsets (issue 15).
    fn produce(&self, partition: i32, key: Option<&str>, env: &Envelope) -> Result<(), ScaleError> {
        let payload = serde_json::to_vec(env)
            .map_err(|e| ScaleError::Topic(format!("encoding an event: {e}")))?;
        let key = key.unwrap_or("");
        let rec = BaseRecord::to(&self.events_topic)
            .partition(partition)
            .key(key)
            .payload(&payload);
        super::send_waiting(&self.producer, rec, "producing an event")
    }

    /// Open records emitted, watermarks to every internal partition, input
    /// offsets into the transaction, commit.
    fn commit(&mut self) -> Result<(), ScaleError> {
        self.begin()?;
        self.know_assigned();
        for i in 0..self.ups.len() {
            let mut out = Collect::default();
            let u = &mut self.ups[i];
            u.stream.finish(&self.parser, &mut out);
            self.send(i, out.events)?;
        }
        let mut tpl = TopicPartitionList::new();
        for u in &self.ups {
            let mark = Envelope {
                up: u.name.clone(),
                events: None,
                mark: Some(Mark {
                    time: u.last_time,
                    at_end: u.at_end,
                }),
            };
            for p in 0..self.partitions {
                self.produce(p, None, &mark)?;
            }
            if let Some(next) = u.next {
                tpl.add_partition_offset(&u.topic, u.partition, Offset::Offset(next))
                    .map_err(kafka("offsets"))?;
            }
        }
        let meta = self.consumer.group_metadata().ok_or_else(|| {
            ScaleError::Topic("the stage-1 consumer has no group metadata".into())
        })?;
        let sent = timeout_retry(|t| self.producer.send_offsets_to_transaction(&tpl, &meta, t))
            .map_err(|e| (e, "send offsets (stage 1)"))
            .and_then(|()| {
                timeout_retry(|t| self.producer.commit_transaction(t))
                    .map_err(|e| (e, "commit (stage 1)"))
            });
        self.in_txn.store(false, Ordering::Relaxed);
        match sent {
            Ok(()) => {}
            Err((e, _)) if abortable(&e) => {
                // A rebalance under way fenced the batch: abort it and
                // read again from the last commit.
                tracing::info!(error = %e, "stage 1: batch fenced; aborting and rewinding");
                timeout_retry(|t| self.producer.abort_transaction(t))
                    .map_err(kafka("abort (stage 1)"))?;
                return self.rewind();
            }
            Err((e, context)) => return Err(ScaleError::Kafka { context, source: e }),
        }
        self.forwarded += self.since;
        self.since = 0;
        self.started = None;
        self.end_news = false;
        Ok(())
    }
}

/// Runs stage 1 on its own thread; an error stops the whole process
/// (`stop` is set so stage 2 checkpoints and ends too).
pub(super) fn spawn(
    mut s: Stage1,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<Result<u64, ScaleError>> {
    std::thread::spawn(move || {
        let r = s.run(&stop);
        tracing::info!(
            forwarded = s.forwarded,
            refused = s.refused,
            "stage 1 stopped (refused: messages not where their partition stood, sought back)"
        );
        if let Err(e) = &r {
            tracing::error!(error = %e, "stage 1 stopped");
            stop.store(true, Ordering::Relaxed);
        }
        r.map(|()| s.forwarded)
    })
}
