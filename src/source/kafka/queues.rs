//! One librdkafka queue per assigned partition, so that the alignment reads
//! each partition only when it needs that partition's next record.
//!
//! With the consumer's single queue the only way to hold back a partition
//! that runs ahead is to pause it, and librdkafka drops what it had
//! prefetched for a paused partition and fetches it again on resume
//! (librdkafka issue #5343, the Java client's KAFKA-7548): on a backlog that
//! refetching cost most of the throughput. Split off into its own queue
//! (`rd_kafka_queue_get_partition` with forwarding off), a partition that
//! is not read just keeps its prefetched records; librdkafka stops fetching
//! it once that queue holds `queued.min.messages` or
//! `queued.max.messages.kbytes` (per partition when queues are split), so
//! memory stays bounded without a pause and without a refetch.
//!
//! The split happens in the rebalance callback *before* `assign`, so no
//! record of the partition is ever forwarded to the consumer's own queue
//! (librdkafka keeps a forwarding the application set, `Q_F_FWD_APP`, when
//! it starts fetching). The consumer's own queue is still polled for
//! rebalances, statistics and errors; a record found there anyway (a
//! partition whose split failed) is handled as before, by pausing.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use rdkafka::consumer::base_consumer::PartitionQueue;
use rdkafka::consumer::{BaseConsumer, ConsumerContext};

use super::aligned::Part;

/// Woken by librdkafka (from its own threads) when a partition queue goes
/// from empty to non-empty, so the poll loop can sleep while every queue
/// it wants is empty.
#[derive(Default)]
pub(super) struct Wake {
    pending: Mutex<bool>,
    cv: Condvar,
}

impl Wake {
    pub(super) fn notify(&self) {
        let mut p = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        *p = true;
        self.cv.notify_one();
    }

    /// Sleeps until a queue became non-empty since the last call, or
    /// `limit` passed.
    pub(super) fn wait(&self, limit: Duration) {
        let p = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        let (mut p, _) = self
            .cv
            .wait_timeout_while(p, limit, |pending| !*pending)
            .unwrap_or_else(|p| p.into_inner());
        *p = false;
    }
}

/// The split partition queues, shared by the rebalance callback (which
/// adds and removes them) and the poll loop (which reads them). Each
/// queue holds a reference to the consumer: [`Queues::clear`] must run
/// before the consumer is dropped, or it is never closed.
///
/// Generic over the consumer's context `C` because that context (the
/// client's) holds these queues: naming it here would make the two
/// modules import each other.
pub(super) struct Queues<C: ConsumerContext + 'static> {
    list: Mutex<Vec<(Part, PartitionQueue<C>)>>,
    pub(super) wake: Arc<Wake>,
}

impl<C: ConsumerContext + 'static> Default for Queues<C> {
    fn default() -> Self {
        Queues {
            list: Mutex::new(Vec::new()),
            wake: Arc::default(),
        }
    }
}

impl<C: ConsumerContext + 'static> Queues<C> {
    pub(super) fn lock(&self) -> MutexGuard<'_, Vec<(Part, PartitionQueue<C>)>> {
        self.list.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Gives the partition its own queue; false when librdkafka has none
    /// for it (its records then come through the consumer's queue).
    pub(super) fn split(&self, consumer: &Arc<BaseConsumer<C>>, key: Part) -> bool {
        let mut list = self.lock();
        if list.iter().any(|(k, _)| *k == key) {
            return true;
        }
        let Some(mut q) = consumer.split_partition_queue(&key.0, key.1) else {
            return false;
        };
        let wake = self.wake.clone();
        q.set_nonempty_callback(move || wake.notify());
        list.push((key, q));
        true
    }

    /// Drops the queue of a revoked partition.
    pub(super) fn remove(&self, key: &Part) {
        self.lock().retain(|(k, _)| k != key);
    }

    /// Drops every queue (and so their references to the consumer).
    pub(super) fn clear(&self) {
        self.lock().clear();
    }
}
