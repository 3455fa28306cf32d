//! One batch as one Kafka transaction: commit (through the driver's
//! checkpoint: sinks flushed, offsets and alerts committed together, then
//! the state saved) and rollback (abort, reload the state, seek back).

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::producer::Producer;
use rdkafka::{Offset, TopicPartitionList};

use super::step::Step;
use super::*;
use crate::source::driver;

impl Core {
    /// Runs a transactional call, retrying what librdkafka calls retriable
    /// (timeouts while the broker is away) with backoff.
    pub(super) fn txn_call(
        &self,
        what: &str,
        mut f: impl FnMut() -> Result<(), KafkaError>,
    ) -> Result<(), BatchError> {
        let mut wait = Duration::from_millis(100);
        for attempt in 0.. {
            match f() {
                Ok(()) => return Ok(()),
                Err(KafkaError::Transaction(e)) if e.is_fatal() => {
                    return Err(BatchError::Fatal(KafkaSourceError::Fatal(format!(
                        "{what}: {e}"
                    ))));
                }
                Err(KafkaError::Transaction(e))
                    if e.is_retriable()
                        && attempt < 30
                        && self.deadline.is_none_or(|d| Instant::now() + wait < d) =>
                {
                    tracing::info!(error = %e, attempt, "{what}: retrying");
                    std::thread::sleep(wait);
                    wait = (wait * 2).min(self.cfg.kafka.max_backoff.0);
                }
                Err(e) => return Err(BatchError::Retry(format!("{what}: {e}"))),
            }
        }
        Err(BatchError::Retry(format!("{what}: gave up")))
    }

    /// Makes the open batch durable, in the driver's order
    /// ([`driver::checkpoint`]): held-open records released, sinks flushed,
    /// offsets and alerts committed in one transaction, offsets into the
    /// state, state saved, catalogue exported. See [`Step`] for each step.
    pub(super) fn commit<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
    ) -> Result<(), BatchError> {
        if !self.in_txn {
            return Ok(());
        }
        let dir = self.state_dir.clone();
        driver::checkpoint(&mut Step::new(self, consumer, None).closing(), &dir, true)
    }

    /// The transactional part of a commit (the driver's `commit` step,
    /// after the sinks are flushed): per partition the offset up to its
    /// oldest group still waiting in the aligner goes into the transaction,
    /// which is committed with the alerts produced in it. Returns the
    /// offsets, which the state records next.
    pub(super) fn commit_transaction<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
    ) -> Result<Vec<(String, i32, i64)>, BatchError> {
        // Per partition: up to its oldest group still waiting in the
        // aligner or held open in the parser for its trace (read again
        // after a crash), else all it delivered.
        let offsets: Vec<(String, i32, i64)> = self
            .align
            .commit_offsets()
            .map(|((t, p), next)| {
                let held = self
                    .streams
                    .iter()
                    .find(|s| s.partition == *p && *s.topic == **t)
                    .and_then(aligned::PartStream::held_from);
                (t.to_string(), *p, held.map_or(next, |h| h.min(next)))
            })
            .collect();
        let mut tpl = TopicPartitionList::new();
        for (t, p, next) in &offsets {
            // Never move a committed offset backwards: a silent gap ends at
            // the committed offset, and committing below it would make the
            // next restart deliver those alerts again.
            if self
                .silent_until
                .get(&(t.clone(), *p))
                .is_some_and(|&u| *next <= u)
            {
                continue;
            }
            tpl.add_partition_offset(t, *p, Offset::Offset(*next))
                .map_err(|e| BatchError::Retry(e.to_string()))?;
        }
        let timeout = Duration::from_secs(10);
        match self.producer.clone() {
            Some(p) => {
                if tpl.count() > 0 {
                    let gm = consumer.group_metadata().ok_or_else(|| {
                        BatchError::Retry("no consumer group metadata yet".into())
                    })?;
                    self.txn_call("send offsets to transaction", || {
                        p.send_offsets_to_transaction(&tpl, &gm, timeout)
                    })?;
                }
                self.phases.lap(|p| &mut p.offsets);
                self.txn_call("commit transaction", || p.commit_transaction(timeout))?;
            }
            None => {
                if tpl.count() > 0 {
                    consumer
                        .commit(&tpl, CommitMode::Sync)
                        .map_err(|e| BatchError::Retry(format!("commit offsets: {e}")))?;
                }
            }
        }
        self.phases.lap(|p| &mut p.commit);
        self.in_txn = false;
        self.batch.clear();
        let n = self.status.batches.fetch_add(1, Ordering::Relaxed) + 1;
        if self.crash_after_commit == Some(n) {
            // Failpoint for the tests: die in the one window a kill -9 from
            // outside rarely hits, after the commit and before the save.
            tracing::warn!(
                batch = n,
                "failpoint: crashing after commit, before state save"
            );
            std::process::abort();
        }
        Ok(offsets)
    }

    /// The committed offsets into the state (the driver's `checkpoint`
    /// step); a partition whose silent gap they pass leaves it.
    pub(super) fn record_offsets(&mut self, offsets: Vec<(String, i32, i64)>) {
        for (t, p, next) in offsets {
            let key = (t, p);
            if self.silent_until.get(&key).is_some_and(|&u| next >= u) {
                tracing::info!(topic = %key.0, partition = key.1, "silent re-processing done");
                self.silent_until.remove(&key);
            }
            self.engine
                .state
                .kafka_offsets
                .insert(state_key(&key.0, key.1), next);
        }
    }

    /// Undoes the open batch: abort the transaction, reload the engine from
    /// the last saved state and (unless the partitions are going away) seek
    /// back to where the batch began.
    pub(super) fn rollback<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
        seek: bool,
    ) -> Result<(), KafkaSourceError> {
        if let Some(p) = self.producer.clone()
            && self.in_txn
        {
            match self.txn_call("abort transaction", || {
                p.abort_transaction(Duration::from_secs(10))
            }) {
                Ok(()) => {}
                Err(BatchError::Fatal(e)) => return Err(e),
                Err(BatchError::Retry(e)) => {
                    // The broker aborts it after transaction.timeout.ms, or
                    // the next init_transactions fences it.
                    tracing::warn!(error = %e, "abort transaction");
                }
            }
        }
        self.in_txn = false;
        if self.state_unsaved {
            // The saved state lags committed offsets: reloading it here would
            // skip records. A restart resolves it (silent re-processing).
            return Err(KafkaSourceError::Stopped(
                "a batch failed while the state could not be saved; restart to recover".into(),
            ));
        }
        let state = State::load(&self.state_dir)?;
        // The old sinks let go of their spools before the new ones open them.
        self.engine.close_sinks();
        self.engine = self.build_engine(state)?;
        // Back to where the saved state stands: what the streams and the
        // aligner hold was read after it, and is read again.
        let batch = std::mem::take(&mut self.batch);
        let seeks: Vec<(String, i32, i64)> = self
            .align
            .partitions()
            .filter_map(|k| {
                let (t, p) = (k.0.as_ref(), k.1);
                let first = batch
                    .iter()
                    .find(|b| b.partition == p && b.topic == t)
                    .map(|b| b.first);
                let oldest = match (first, self.align.commit_offset(k)) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                let saved = self.engine.state.kafka_offsets.get(&state_key(t, p));
                Some((t.to_string(), p, saved.copied().or(oldest)?))
            })
            .collect();
        self.streams.clear();
        let paused = self.align.clear(self.clock);
        aligned::pause_resume(consumer, &paused, false);
        if seek {
            // Under the fetcher's lanes: what it read before the seek is
            // dropped as stale (`fetch.rs`).
            self.rewinds += 1;
            self.flow.rewind(&seeks, |t, p, start| {
                if let Err(e) = consumer.seek(t, p, Offset::Offset(start), Duration::from_secs(10))
                {
                    // Seeking failed: the next assignment starts from the
                    // committed offsets, which is just as correct.
                    tracing::warn!(topic = %t, partition = p, error = %e, "seek back");
                }
            });
        }
        self.pace = Pace::default();
        Ok(())
    }
}
