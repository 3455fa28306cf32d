//! The Kafka source's side of event-time alignment ([`crate::source::align`]):
//! what one partition's parser emits is kept as a [`Group`] (the records of
//! one message, or of the messages joined into one trace) until the aligner
//! releases it to the engine in event-time order across partitions.
//!
//! Everything a message causes happens when its group is released, not
//! when it is read: its records reach the engine, its dead-letter copy is
//! produced and it is counted as processed. A commit therefore covers
//! exactly the groups released before it, and the offset it commits for a
//! partition is the first offset of that partition's oldest group still
//! waiting ([`Aligner::commit_offset`]): after a crash those are read again,
//! nothing else.

use std::sync::Arc;
use std::time::Instant;

use rdkafka::TopicPartitionList;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};

use super::*;
use crate::record::{Level, LineMeta, Record};
use crate::source::align::Aligner;

/// A partition as the aligner names it: the topic shared, cheap to clone.
pub(super) type Part = (Arc<str>, i32);

pub(super) type Align = Aligner<Part, Group>;

/// One parsed event, owned so that it can wait.
pub(super) enum Ev {
    Line {
        time: Option<i64>,
        level: Option<Level>,
        service: Option<Arc<str>>,
        version: Option<Arc<str>>,
        /// Where the message is in its group's [`Group::text`].
        message: Option<std::ops::Range<usize>>,
        request: crate::record::RequestMeta,
    },
    Error(Record),
    /// A refused message, copied to the dead-letter topic on release.
    Dead {
        reason: BadReason,
        offset: i64,
        payload: Box<[u8]>,
    },
}

/// The events of the messages `from..=last` of one partition.
///
/// Groups are reused: a fed group goes back, emptied, to its partition's
/// stream ([`PartStream::recycle`]), which fills it again, so in a steady
/// stream a record costs no allocation of its own here (the event list and
/// the message texts, one buffer per group, keep their capacity).
/// malloc/free were ~8 % of the engine thread's samples on a 1M-record
/// drain, these two allocations per record among them (docs/benchmarks.md).
#[derive(Default)]
pub(super) struct Group {
    pub(super) events: Vec<Ev>,
    /// The messages of its `Ev::Line`s, one after another.
    pub(super) text: String,
    /// Messages in it (offsets may have gaps: transaction markers).
    pub(super) messages: u64,
    pub(super) last: i64,
    /// Event time of its first timed event.
    pub(super) time: Option<i64>,
}

/// One partition's parser stream and the group it is filling.
pub(super) struct PartStream {
    pub(super) topic: Arc<str>,
    pub(super) partition: i32,
    /// The last offset pushed into the parser.
    pub(super) last_off: i64,
    pub(super) state: StreamState,
    pub(super) open: Group,
    pub(super) open_from: i64,
    /// Since when (alignment clock) the open group has been held for a
    /// record that may continue; `None` when nothing is held.
    pub(super) held_at: Option<Instant>,
    /// The services and versions seen lately, shared by the lines that
    /// repeat them.
    names: (Names, Names),
    /// Emptied groups to fill again (at most [`SPARE`]).
    spare: Vec<Group>,
}

/// Emptied groups kept per partition: one per record in flight would be
/// the aligner's whole buffer; a few hundred cover the common case, in
/// which a group is fed soon after it was filled.
const SPARE: usize = 256;

/// A group whose text grew past this (a long trace) is freed, not kept.
const SPARE_TEXT: usize = 64 * 1024;

impl PartStream {
    pub(super) fn new(topic: Arc<str>, partition: i32, state: StreamState) -> PartStream {
        PartStream {
            topic,
            partition,
            last_off: -1,
            state,
            open: Group::default(),
            open_from: 0,
            held_at: None,
            names: (Names::default(), Names::default()),
            spare: Vec::new(),
        }
    }

    /// Takes back a group the engine was fed, to fill it again.
    pub(super) fn recycle(&mut self, mut g: Group) {
        if self.spare.len() >= SPARE || g.text.capacity() > SPARE_TEXT {
            return;
        }
        g.events.clear();
        g.text.clear();
        g.messages = 0;
        g.last = 0;
        g.time = None;
        self.spare.push(g);
    }

    pub(super) fn key(&self) -> Part {
        (self.topic.clone(), self.partition)
    }

    /// The first offset of the group held open (not yet in the aligner):
    /// a commit stops before it, so a crash reads it again.
    pub(super) fn held_from(&self) -> Option<i64> {
        (self.open.messages > 0).then_some(self.open_from)
    }

    /// Emits what the parser holds open and hands the group to the
    /// aligner.
    pub(super) fn finish(
        &mut self,
        parser: &Parser,
        engine: &mut Engine,
        align: &mut Align,
        now: Instant,
    ) {
        let (st, mut sink) = self.split(engine);
        st.finish(parser, &mut sink);
        self.close(align, now);
    }

    /// The parser's stream, and a sink collecting its events into the open group; bad
    /// lines are counted on the engine at once (metrics only).
    pub(super) fn split<'a>(
        &'a mut self,
        engine: &'a mut Engine,
    ) -> (&'a mut StreamState, Collect<'a>) {
        let sink = Collect {
            group: &mut self.open,
            names: &mut self.names,
            engine,
            bad: None,
        };
        (&mut self.state, sink)
    }

    /// Hands the open group to the aligner unless the parser still holds a
    /// record of it (a trace waiting for its next line).
    pub(super) fn close(&mut self, align: &mut Align, now: Instant) {
        if self.open.messages == 0 {
            self.held_at = None;
            return;
        }
        if self.state.holding() {
            self.held_at.get_or_insert(now);
            return;
        }
        self.held_at = None;
        let next = self.spare.pop().unwrap_or_default();
        let g = std::mem::replace(&mut self.open, next);
        align.push(&self.key(), self.open_from, g.time, g, now);
    }
}

pub(super) struct Collect<'a> {
    group: &'a mut Group,
    names: &'a mut (Names, Names),
    engine: &'a mut Engine,
    pub(super) bad: Option<BadReason>,
}

/// The last [`NAMES`] distinct names seen (services, versions), each
/// shared by every line that repeats it. A partition keyed by a hash
/// interleaves the lines of many services: remembering only the last name
/// made a new `Arc` (an allocation and a free) for ~92 % of the lines of
/// the benchmark's records (callgrind, 100k-record drain); a partition carries few distinct services, so a short
/// list finds nearly all of them, and a stream with more only allocates
/// as before.
#[derive(Default)]
pub(super) struct Names {
    recent: Vec<Arc<str>>,
    /// Where the next new name goes once `recent` is full.
    next: usize,
}

/// Names kept per field and partition (a linear scan, length first).
const NAMES: usize = 64;

impl Names {
    fn get(&mut self, s: &str) -> Arc<str> {
        if let Some(a) = self
            .recent
            .iter()
            .find(|a| a.len() == s.len() && ***a == *s)
        {
            return a.clone();
        }
        let a: Arc<str> = Arc::from(s);
        if self.recent.len() < NAMES {
            self.recent.push(a.clone());
        } else {
            self.recent[self.next] = a.clone();
            self.next = (self.next + 1) % NAMES;
        }
        a
    }
}

impl RecordSink for Collect<'_> {
    fn line(&mut self, meta: &LineMeta<'_>) {
        self.group.time = self.group.time.or(meta.time);
        self.group.events.push(Ev::Line {
            time: meta.time,
            level: meta.level,
            service: meta.service.map(|s| self.names.0.get(s)),
            version: meta.version.map(|s| self.names.1.get(s)),
            message: meta.message.map(|m| {
                let at = self.group.text.len();
                self.group.text.push_str(m);
                at..self.group.text.len()
            }),
            request: meta.request,
        });
    }
    fn error(&mut self, record: Record) {
        self.group.time = self.group.time.or(record.time);
        self.group.events.push(Ev::Error(record));
    }
    fn bad(&mut self, reason: BadReason, line_no: u64) {
        self.bad = Some(reason);
        self.engine.bad(reason, line_no);
    }
}

impl Core {
    /// Opens the batch's transaction if none is open.
    pub(super) fn begin(&mut self) -> Result<(), BatchError> {
        if self.in_txn {
            return Ok(());
        }
        // Never before the fencing of an older instance is done.
        self.await_init()?;
        if let Some(p) = &self.producer {
            p.begin_transaction().map_err(|e| match &e {
                KafkaError::Transaction(t) if t.is_fatal() => {
                    BatchError::Fatal(KafkaSourceError::Fatal(e.to_string()))
                }
                _ => BatchError::Retry(format!("begin transaction: {e}")),
            })?;
        }
        self.in_txn = true;
        self.pace.started = Some(Instant::now());
        Ok(())
    }

    /// Feeds the engine every group the aligner releases.
    pub(super) fn drain(&mut self, now: Instant) -> Result<(), BatchError> {
        // Asked once per message: the common answer (nothing ready) is
        // found without a second search for the lane, and a transaction is
        // opened only before something is fed.
        if !self.in_txn {
            if !self.align.ready(now) {
                return Ok(());
            }
            self.begin()?;
        }
        while let Some((k, e)) = self.align.pop_ready(now) {
            let k = k.clone();
            self.feed(&k, e.item)?;
        }
        Ok(())
    }

    fn feed(&mut self, (topic, part): &Part, mut g: Group) -> Result<(), BatchError> {
        // Inside a silent gap (re-processing records whose alerts are
        // committed) when its last message is below the committed offset.
        let silent = !self.silent_until.is_empty()
            && self
                .silent_until
                .iter()
                .any(|((t, p), &u)| p == part && **t == **topic && g.last < u);
        self.silent.store(silent, Ordering::Relaxed);
        self.engine.state.kafka_records += g.messages;
        self.released += g.messages;
        for ev in g.events.drain(..) {
            match ev {
                Ev::Line {
                    time,
                    level,
                    service,
                    version,
                    message,
                    request,
                } => self.engine.line(&LineMeta {
                    time,
                    level,
                    service: service.as_deref(),
                    version: version.as_deref(),
                    message: message.and_then(|r| g.text.get(r)),
                    request,
                }),
                Ev::Error(r) => self.engine.error(r),
                Ev::Dead {
                    reason,
                    offset,
                    payload,
                } => {
                    if let (false, Some(p)) = (silent, &self.producer) {
                        dead_letter::send(
                            p,
                            &self.cfg.kafka.dead_letter_topic,
                            self.cfg.kafka.dead_letter_max_bytes,
                            reason,
                            &format!("{topic}/{part}/{offset}"),
                            &payload,
                        )
                        .map_err(|e| BatchError::Retry(format!("dead-letter topic: {e}")))?;
                    }
                }
            }
        }
        if let Some(s) = self
            .streams
            .iter_mut()
            .find(|s| s.partition == *part && (Arc::ptr_eq(&s.topic, topic) || *s.topic == **topic))
        {
            s.recycle(g);
        }
        if let Some(e) = self.engine.take_sink_error() {
            return Err(BatchError::Retry(e.to_string()));
        }
        Ok(())
    }

    /// The consumer reports the end of partition number `partition` (its
    /// topic is not in the event: every assigned topic's partition of that
    /// number is marked; one wrongly marked only loses alignment until its
    /// next message).
    pub(super) fn reached_end(&mut self, partition: i32, now: Instant) {
        let ends: Vec<Part> = self
            .align
            .partitions()
            .filter(|(_, p)| *p == partition)
            .cloned()
            .collect();
        for k in &ends {
            self.align.reached_end(k, now);
        }
    }

    /// Pauses the partitions whose buffers are full and resumes the drained
    /// ones.
    pub(super) fn apply_pauses<C: ConsumerContext>(&mut self, consumer: &BaseConsumer<C>) {
        let (pause, resume) = self.align.pause_changes();
        pause_resume(consumer, &pause, true);
        pause_resume(consumer, &resume, false);
    }
}

pub(super) fn pause_resume<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    parts: &[Part],
    pause: bool,
) {
    if parts.is_empty() {
        return;
    }
    let mut tpl = TopicPartitionList::new();
    for (t, p) in parts {
        tpl.add_partition(t, *p);
    }
    let r = if pause {
        consumer.pause(&tpl)
    } else {
        consumer.resume(&tpl)
    };
    // A failed pause only lets a buffer grow past its mark (the next
    // messages are still taken); a failed resume is retried by the next
    // assignment at the latest.
    if let Err(e) = r {
        tracing::warn!(error = %e, pause, "pausing or resuming partitions");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, Format};

    fn stream(p: i32) -> PartStream {
        let parser = Parser::new(&Config::default(), Format::Auto).expect("default parser");
        PartStream::new(Arc::from("logs"), p, parser.stream_state(None, None))
    }

    #[test]
    fn interleaved_services_share_one_name_each_and_the_list_stays_bounded() {
        let mut names = Names::default();
        let a = names.get("checkout");
        let b = names.get("payments");
        // A partition keyed by a hash interleaves services: each name is
        // still the same shared string the next time it comes.
        assert!(Arc::ptr_eq(&a, &names.get("checkout")));
        assert!(Arc::ptr_eq(&b, &names.get("payments")));
        for i in 0..3 * NAMES {
            assert_eq!(&*names.get(&format!("svc-{i}")), format!("svc-{i}"));
        }
        assert_eq!(names.recent.len(), NAMES);
        // Pushed out by newer names: a fresh string, equal in content.
        assert_eq!(&*names.get("checkout"), "checkout");
    }

    #[test]
    fn a_recycled_group_comes_back_empty_and_the_spare_list_is_bounded() {
        let mut s = stream(0);
        let mut g = Group::default();
        g.text.push_str("a message");
        g.events.push(Ev::Line {
            time: Some(1),
            level: None,
            service: None,
            version: None,
            message: Some(0..9),
            request: Default::default(),
        });
        g.messages = 1;
        g.last = 7;
        g.time = Some(1);
        s.recycle(g);
        assert_eq!(s.spare.len(), 1);
        let g = &s.spare[0];
        assert!(g.events.is_empty() && g.text.is_empty());
        assert_eq!((g.messages, g.last, g.time), (0, 0, None));
        assert!(g.text.capacity() >= 9, "its buffer is kept");
        for _ in 0..2 * SPARE {
            s.recycle(Group::default());
        }
        assert_eq!(s.spare.len(), SPARE);
        // A group whose text grew past the bound is not kept.
        let mut spare = stream(1);
        let mut big = Group::default();
        big.text.reserve(SPARE_TEXT + 1);
        spare.recycle(big);
        assert!(spare.spare.is_empty());
    }
}
