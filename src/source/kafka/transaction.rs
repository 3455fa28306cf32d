//! One batch as one Kafka transaction: commit (sinks flushed, offsets and
//! alerts committed together, then the state saved) and rollback (abort,
//! reload the state, seek back).

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::producer::Producer;
use rdkafka::{Offset, TopicPartitionList};

use super::*;

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

    /// Makes the open batch durable: sinks, offsets + alerts (one
    /// transaction), then the state.
    pub(super) fn commit<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
    ) -> Result<(), BatchError> {
        if !self.in_txn {
            return Ok(());
        }
        let started = Instant::now();
        // Records held open for their trace are emitted now, so that no
        // committed offset is ahead of them; they wait in the aligner like
        // any other (and the committed offset stays before them while
        // they do).
        for s in &mut self.streams {
            let (st, mut sink) = s.split(&mut self.engine);
            st.finish(&self.parser, &mut sink);
            s.close(&mut self.align, self.clock);
        }
        self.drain(self.clock)?;
        self.engine
            .flush_sinks()
            .map_err(|e| BatchError::Retry(e.to_string()))?;
        // Per partition: up to its oldest group still waiting in the
        // aligner (read again after a crash), else all it delivered.
        let offsets: Vec<(String, i32, i64)> = self
            .align
            .commit_offsets()
            .map(|((t, p), next)| (t.to_string(), *p, next))
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
        self.in_txn = false;
        self.batch.clear();
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
        self.batch_records = 0;
        self.batch_started = None;
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
        // After the commit: a crash before this save only makes the next
        // start re-process the batch silently.
        match self.engine.state.save(&self.state_dir) {
            Ok(()) => self.state_unsaved = false,
            Err(e) => {
                // The batch is committed: keep the engine as it is and try
                // again after the next batch. A restart now would re-process
                // the gap silently, which is also correct.
                self.state_unsaved = true;
                self.status.fail(format!("state save after commit: {e}"));
            }
        }
        // The error-type catalogue (Elasticsearch) is best effort: a
        // failure here is retried at the next commit, never a lost alert.
        if let Err(e) = self.engine.export_types(false) {
            tracing::warn!(error = %e, "error-type catalogue export failed");
        }
        tracing::debug!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            "batch committed"
        );
        Ok(())
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
            for (t, p, start) in seeks {
                if let Err(e) = consumer.seek(&t, p, Offset::Offset(start), Duration::from_secs(10))
                {
                    // Seeking failed: the next assignment starts from the
                    // committed offsets, which is just as correct.
                    tracing::warn!(topic = %t, partition = p, error = %e, "seek back");
                }
            }
        }
        self.batch_records = 0;
        self.batch_started = None;
        Ok(())
    }
}
