//! The Kafka source as the driver sees it: a [`Source`] that is a view of
//! the shared [`Core`] for one step of the driver's loop.
//!
//! The core sits behind a lock because the consumer's rebalance callbacks
//! run inside its poll and must commit before partitions go. So the run
//! loop polls the consumer without the lock, then takes it and hands a
//! message from the consumer's own queue, or a run of up to [`RUN`]
//! messages of a fetched batch ([`Step::run`]), to one
//! [`driver::step`](crate::source::driver::step) through this view; a
//! revocation commits through the same view (with no message) and so in
//! the same order.

use std::time::Instant;

use super::aligned::Part;
use super::fetch::{Batch, Cursor, Msg};
use super::*;
use crate::source::driver::{CLOCK_EVERY, Pace, Poll, Source};
use rdkafka::consumer::{BaseConsumer, ConsumerContext};

/// Messages per run of a batch ([`Step::run`]): enough that the parser's
/// code, then the engine's, stays in the instruction cache over many
/// records; few enough that the groups parsed and not yet fed (a few
/// hundred bytes each) stay in the core's own cache until they are fed
/// (with a whole batch per run, ~2,000 groups, callgrind counted ~9 more
/// last-level data misses per record).
pub(super) const RUN: usize = 256;

/// One step's view of the core.
pub(super) struct Step<'a, C: ConsumerContext> {
    core: &'a mut Core,
    consumer: &'a BaseConsumer<C>,
    /// What the consumer's poll returned, for this step's poll.
    msg: Option<Result<Msg<'a>, KafkaError>>,
    /// Or a run of up to this many messages of a fetched batch, from the
    /// cursor on (see [`Step::run`]).
    run: Option<(&'a Batch, &'a mut Cursor, usize)>,
    /// Without a message: the partitions the fetcher's last pass read and
    /// found empty, whose held records the idle step may release.
    read: &'a [Part],
    /// The offsets the commit step committed, for the checkpoint step.
    offsets: Vec<(String, i32, i64)>,
    /// When the checkpoint began (for its log line; set by `settle`, not
    /// per step: a clock read per message is measurable at full speed).
    started: Option<Instant>,
    /// The commit ends consumption (shutdown, revocation): every record
    /// held open is emitted, as none can continue in this run.
    closing: bool,
}

impl<'a, C: ConsumerContext> Step<'a, C> {
    pub(super) fn new(
        core: &'a mut Core,
        consumer: &'a BaseConsumer<C>,
        msg: Option<Result<Msg<'a>, KafkaError>>,
    ) -> Step<'a, C> {
        Step {
            core,
            consumer,
            msg,
            run: None,
            read: &[],
            offsets: Vec::new(),
            started: None,
            closing: false,
        }
    }
}

impl<'a, C: ConsumerContext> Step<'a, C> {
    /// A step over the next `limit` messages of a fetched batch (at least
    /// one), instead of one step per message: all of them are parsed into
    /// their partition's buffer first, then the engine is fed whatever the
    /// alignment releases.
    ///
    /// Why: per message, the engine thread used to run the parser, the
    /// aligner's push and pop, the engine and the driver's step in turn,
    /// and that much code per record does not stay in the instruction
    /// cache. Counted with callgrind's cache simulation (32 KiB L1i), the
    /// engine thread missed it ~295 times per record against replay's
    /// ~132 for nearly the same instructions (docs/benchmarks.md); in a
    /// run the parser's code, then the engine's, stay hot. The alignment
    /// is the same rule on more heads at once: a group is released when
    /// no partition with an empty buffer may still deliver an earlier one,
    /// so the order is still each partition's own, merged by event time.
    /// `limit` keeps a checkpoint where `kafka.batch_size` puts it.
    pub(super) fn run(mut self, b: &'a Batch, at: &'a mut Cursor, limit: usize) -> Step<'a, C> {
        self.run = Some((b, at, limit.max(1)));
        self
    }

    /// An idle step after a pass of the fetcher that found `read` empty.
    pub(super) fn idle(mut self, read: &'a [Part]) -> Step<'a, C> {
        self.read = read;
        self
    }

    /// This step's checkpoint is the last of the partitions' consumption
    /// here (see `closing`).
    pub(super) fn closing(mut self) -> Step<'a, C> {
        self.closing = true;
        self
    }
}

impl From<SinkError> for BatchError {
    fn from(e: SinkError) -> BatchError {
        BatchError::Retry(e.to_string())
    }
}

impl From<StateError> for BatchError {
    fn from(e: StateError) -> BatchError {
        BatchError::Fatal(e.into())
    }
}

impl<C: ConsumerContext> Source for Step<'_, C> {
    type Error = BatchError;

    fn engine(&mut self) -> &mut Engine {
        &mut self.core.engine
    }

    fn pace(&mut self) -> &mut Pace {
        &mut self.core.pace
    }

    /// The message into its partition's buffer and the engine whatever the
    /// alignment releases; without one (nothing arrived, a partition
    /// ended) only the release, as a partition may have gone idle. The
    /// records pushed are the messages the aligner released to the engine
    /// (a batch commits what the engine got), at the alignment's clock.
    fn poll(&mut self) -> Result<Poll, BatchError> {
        let c = &mut *self.core;
        let now = c.clock;
        let before = c.released;
        if let Some((b, at, limit)) = self.run.take() {
            let taken = at.messages;
            let mut outcome = Ok(());
            while at.messages - taken < limit as u64 {
                match b.next(at) {
                    None => break,
                    Some(Ok(m)) => {
                        if let Err(e) = c.take(&m, now) {
                            outcome = Err(e);
                            break;
                        }
                    }
                    // The batch's last item: the partition is at its end
                    // once its records are in its buffer.
                    Some(Err(KafkaError::PartitionEOF(_))) => c.align.reached_end(&b.part, now),
                    Some(Err(e)) => tracing::warn!(error = %e, "consumer"),
                }
            }
            let outcome = outcome.and_then(|()| c.drain(now));
            // The interval is looked at after every run: one clock read
            // per run, not per record.
            c.pace.steps = CLOCK_EVERY - 1;
            c.apply_pauses(self.consumer);
            outcome?;
            let n = c.released - before;
            return Ok(if at.messages > taken || n > 0 {
                Poll::Pushed(n)
            } else {
                Poll::Idle
            });
        }
        let (outcome, message) = match self.msg.take() {
            Some(Ok(m)) => (c.process(&m, now), true),
            Some(Err(KafkaError::PartitionEOF(p))) => {
                c.reached_end(p, now);
                // A held record goes at the idle step, once a whole pass
                // found every readable queue empty (`Core::release_held`).
                (c.drain(now), false)
            }
            Some(Err(e)) => {
                tracing::warn!(error = %e, "consumer");
                (c.drain(now), false)
            }
            None => {
                c.release_held(now, false, self.read);
                (c.drain(now), false)
            }
        };
        c.apply_pauses(self.consumer);
        outcome?;
        let n = c.released - before;
        Ok(if message || n > 0 {
            Poll::Pushed(n)
        } else {
            Poll::Idle
        })
    }

    /// A batch with nothing released yet has nothing to commit (the
    /// offsets stop at the waiting records). A record held open for its
    /// trace does not hold the batch back: the commit stops before it
    /// (`Core::commit_transaction`), and it goes into a later batch once
    /// complete, so a trace is never cut by a commit and no other
    /// partition's alerts wait for it.
    fn at_boundary(&self) -> bool {
        let c = &*self.core;
        c.in_txn && c.pace.since > 0
    }

    /// Every record held open is emitted when consumption ends here; the
    /// others stay open, and the committed offset stays before them (the
    /// idle step emits those held long enough: a commit may fall in the
    /// middle of a pass, before the loop read the queue that holds a
    /// trace's next line).
    fn settle(&mut self) -> Result<(), BatchError> {
        self.started = Some(Instant::now());
        let c = &mut *self.core;
        c.phases.mark = self.started;
        if self.closing {
            c.release_held(c.clock, true, &[]);
        }
        let r = c.drain(c.clock);
        c.phases.lap(|p| &mut p.settle);
        r
    }

    fn commit(&mut self) -> Result<(), BatchError> {
        self.core.phases.lap(|p| &mut p.flush);
        self.offsets = self.core.commit_transaction(self.consumer)?;
        Ok(())
    }

    fn checkpoint(&mut self) {
        let offsets = std::mem::take(&mut self.offsets);
        self.core.record_offsets(offsets);
    }

    /// The silence clock's alerts go into a transaction like a batch's.
    fn open(&mut self) -> Result<(), BatchError> {
        self.core.begin()
    }

    /// After the commit: a failed save keeps the engine as it is and is
    /// tried again after the next batch (a restart now would re-process
    /// the gap silently, which is also correct).
    fn saved(&mut self, result: Result<(), StateError>) -> Result<(), BatchError> {
        self.core.phases.lap(|p| &mut p.save);
        match result {
            Ok(()) => self.core.state_unsaved = false,
            Err(e) => {
                self.core.state_unsaved = true;
                self.core
                    .status
                    .fail(format!("state save after commit: {e}"));
            }
        }
        Ok(())
    }

    /// The error-type catalogue (Elasticsearch) is best effort: a failure
    /// here is retried at the next commit, never a lost alert.
    fn exported(&mut self, result: Result<(), SinkError>) -> Result<(), BatchError> {
        if let Err(e) = result {
            tracing::warn!(error = %e, "error-type catalogue export failed");
        }
        let p = &mut self.core.phases;
        p.lap(|p| &mut p.export);
        p.checkpoints += 1;
        p.mark = None;
        tracing::debug!(
            elapsed_ms = self.started.map_or(0, |s| s.elapsed().as_millis() as u64),
            "batch committed"
        );
        Ok(())
    }
}
