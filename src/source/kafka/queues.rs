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
//!
//! A split queue is read in batches ([`Batched`]): one call to
//! `rd_kafka_consume_batch_queue` takes up to a few hundred messages under
//! one lock of the queue. The client's `PartitionQueue::poll` hands out one
//! message per call, wrapped in an event, with a clock read and a shared
//! allocation each: at a backlog's full speed that wrapping cost more CPU
//! than the queue itself (docs/benchmarks.md#kafka). The batch call is
//! librdkafka's own consume path: it skips transaction markers and
//! messages made outdated by a seek, and counts as the application polling
//! (`max.poll.interval.ms`), as the event path does.

use std::ffi::CString;
use std::ptr::NonNull;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use rdkafka::bindings as rdsys;
use rdkafka::consumer::base_consumer::PartitionQueue;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};

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
    fn notify(&self) {
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
    list: Mutex<Vec<Split<C>>>,
    pub(super) wake: Arc<Wake>,
}

/// One partition's own queue: the client's handle (it keeps the
/// forwarding off and the wake-up callback alive) and a second handle on
/// the same queue that is read in batches.
pub(super) struct Split<C: ConsumerContext + 'static> {
    pub(super) key: Part,
    pub(super) batched: Batched,
    // Dropped after `batched` (fields drop in order): it holds the
    // consumer, which must outlive every handle on its queues.
    _queue: PartitionQueue<C>,
}

/// A handle on a partition's queue, read with
/// `rd_kafka_consume_batch_queue`.
pub(super) struct Batched(NonNull<rdsys::rd_kafka_queue_t>);

// SAFETY: librdkafka's queue handles may be used from any thread (every
// queue operation takes the queue's own lock); the handle is only a
// reference-counted pointer to the queue.
unsafe impl Send for Batched {}
unsafe impl Sync for Batched {}

impl Drop for Batched {
    fn drop(&mut self) {
        // SAFETY: the handle came from rd_kafka_queue_get_partition and is
        // destroyed once, here.
        unsafe { rdsys::rd_kafka_queue_destroy(self.0.as_ptr()) }
    }
}

impl Batched {
    /// A second handle on the queue of `topic`/`partition` (already split
    /// off by the client: this one does not change its forwarding).
    fn new<C: ConsumerContext>(
        consumer: &BaseConsumer<C>,
        topic: &str,
        partition: i32,
    ) -> Option<Batched> {
        let topic = CString::new(topic).ok()?;
        // SAFETY: the client pointer is valid while `consumer` lives, and
        // the split queue that owns this handle holds the consumer.
        let q = unsafe {
            rdsys::rd_kafka_queue_get_partition(
                consumer.client().native_ptr(),
                topic.as_ptr(),
                partition,
            )
        };
        NonNull::new(q).map(Batched)
    }

    /// Takes up to `max` messages (and end-of-partition events) waiting in
    /// the queue, without waiting for more.
    pub(super) fn read(&self, max: usize) -> Messages {
        let mut ptrs: Vec<*mut rdsys::rd_kafka_message_t> = Vec::with_capacity(max);
        // SAFETY: `ptrs` has room for `max` pointers; librdkafka writes
        // `n <= max` of them, each a message the caller now owns.
        let n = unsafe {
            rdsys::rd_kafka_consume_batch_queue(self.0.as_ptr(), 0, ptrs.as_mut_ptr(), max)
        };
        if n > 0 {
            // SAFETY: the first `n` entries were written (see above).
            unsafe { ptrs.set_len(n as usize) };
        }
        Messages(ptrs)
    }
}

/// Messages taken from a queue in one batch, owned until dropped.
pub(super) struct Messages(Vec<*mut rdsys::rd_kafka_message_t>);

impl Drop for Messages {
    fn drop(&mut self) {
        for &m in &self.0 {
            // SAFETY: each pointer is a message librdkafka handed over, not
            // destroyed anywhere else.
            unsafe { rdsys::rd_kafka_message_destroy(m) }
        }
    }
}

/// One entry of a batch: a message, or an event of its partition.
pub(super) enum Entry<'a> {
    Message {
        offset: i64,
        payload: &'a [u8],
        /// The message's timestamp (ms), when it has one.
        timestamp: Option<i64>,
    },
    /// The consumer reached the end of the partition.
    End,
    /// An error the consumer reports on the partition (logged; librdkafka
    /// retries by itself).
    Error(rdkafka::error::KafkaError),
}

impl Messages {
    pub(super) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The entries, in the queue's order.
    pub(super) fn iter(&self) -> impl Iterator<Item = Entry<'_>> {
        self.0.iter().map(|&m| {
            // SAFETY: a valid message until `self` drops it; the borrow of
            // its payload is tied to `self`.
            let m = unsafe { &*m };
            match m.err {
                rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR => {
                    let payload = if m.payload.is_null() {
                        &[][..]
                    } else {
                        // SAFETY: librdkafka's payload pointer and length.
                        unsafe { std::slice::from_raw_parts(m.payload as *const u8, m.len) }
                    };
                    let mut kind =
                        rdsys::rd_kafka_timestamp_type_t::RD_KAFKA_TIMESTAMP_NOT_AVAILABLE;
                    // SAFETY: reads the message's timestamp fields.
                    let ts = unsafe { rdsys::rd_kafka_message_timestamp(m, &mut kind) };
                    let timestamp = (kind
                        != rdsys::rd_kafka_timestamp_type_t::RD_KAFKA_TIMESTAMP_NOT_AVAILABLE
                        && ts >= 0)
                        .then_some(ts);
                    Entry::Message {
                        offset: m.offset,
                        payload,
                        timestamp,
                    }
                }
                rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR__PARTITION_EOF => Entry::End,
                e => Entry::Error(rdkafka::error::KafkaError::MessageConsumption(e.into())),
            }
        })
    }
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
    pub(super) fn lock(&self) -> MutexGuard<'_, Vec<Split<C>>> {
        self.list.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Gives the partition its own queue; false when librdkafka has none
    /// for it (its records then come through the consumer's queue).
    pub(super) fn split(&self, consumer: &Arc<BaseConsumer<C>>, key: Part) -> bool {
        let mut list = self.lock();
        if list.iter().any(|s| s.key == key) {
            return true;
        }
        // The batch handle first: without it nothing is split, and the
        // partition's records come through the consumer's queue.
        let Some(batched) = Batched::new(consumer, &key.0, key.1) else {
            return false;
        };
        let Some(mut q) = consumer.split_partition_queue(&key.0, key.1) else {
            return false;
        };
        let wake = self.wake.clone();
        q.set_nonempty_callback(move || wake.notify());
        list.push(Split {
            key,
            batched,
            _queue: q,
        });
        true
    }

    /// Drops the queue of a revoked partition.
    pub(super) fn remove(&self, key: &Part) {
        self.lock().retain(|s| s.key != *key);
    }

    /// Drops every queue (and so their references to the consumer).
    pub(super) fn clear(&self) {
        self.lock().clear();
    }
}
