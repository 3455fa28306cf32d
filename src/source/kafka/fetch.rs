//! The fetching half of the Kafka source's two-thread pipeline: one thread
//! reads the partition queues (librdkafka's per-message work: its queue
//! ops, clock reads and message frees) and hands the records, copied into
//! batches, to the engine thread, which parses, aligns, fingerprints,
//! detects and commits (`mod.rs`). On two cores a drain then takes about
//! the longer of the two halves instead of their sum (issue 15).
//!
//! What stays with the engine thread, so that exactly-once is untouched:
//! everything that decides what a commit covers. The aligner, the parser's
//! streams, the transaction and the offsets live in the core as before;
//! the fetcher never takes its lock. The consumer's own queue (rebalances,
//! statistics, errors) is polled by the engine thread too, so rebalance
//! callbacks run between two batches, never while one is half-fed.
//! Records a batch carries that the engine has not fed yet are simply not
//! consumed: the aligner commits up to the records it has seen, so a crash
//! or a revocation re-reads them, like the records librdkafka prefetched.
//!
//! Three rules keep the handover exact:
//!
//! * **Demand, bounded.** A partition is read only while the records the
//!   engine has not yet fed from it (in flight here) plus the entries
//!   waiting in its aligner buffer stay under [`Flow::want`]; the rest stay
//!   in its librdkafka queue, which is bounded (`queues.rs`). So the
//!   alignment still holds back a partition that runs ahead without a
//!   pause, and memory is bounded by `want` per partition plus the
//!   channel's few batches. A full channel makes the fetcher wait
//!   (back-pressure); librdkafka's own threads go on meanwhile.
//! * **Epochs.** Seeking a partition back (a rolled-back batch) or losing
//!   it (revocation) makes the batches already fetched from it stale. Each
//!   partition's lane carries an epoch from a global counter; a seek
//!   happens under the lane lock, which the fetcher holds while it reads a
//!   queue, and bumps the epoch, so a batch read before the seek carries
//!   the old epoch and one read after it the new one. The engine feeds a
//!   batch only while its epoch is its partition's current one.
//! * **Idle, in order.** A pass that read nothing at all is reported as
//!   [`Event::Idle`], with the partitions it found empty, after every batch
//!   read before it. The engine's idle step (a held trace released, a
//!   partition gone idle in the alignment) then sees every record read
//!   before the pass, as in the one-thread loop, and a held record is
//!   released only for a partition the pass found empty: its trace's next
//!   line is not in a queue the fetcher skipped.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rdkafka::consumer::ConsumerContext;
use rdkafka::error::KafkaError;
use rdkafka::message::Message;

use super::aligned::Part;
use super::queues::Queues;

/// Batches between the two threads: enough that the fetcher reads ahead
/// while the engine feeds one, few enough that memory stays small.
pub(super) const CHANNEL: usize = 8;

/// Records per partition the engine may have unfed (in flight plus in its
/// aligner buffer); the fetcher reads a partition again once that has
/// dropped below half, so every read is a batch of at least half of it,
/// and the engine has half of it left to feed while the read is on its
/// way (a thread woken on a loaded machine waits milliseconds for a core).
const WANT: usize = 4096;

/// A batch buffer above this is not kept for reuse.
const SPARE_BYTES: usize = 16 << 20;

/// One message, borrowed from a batch or from the consumer's own queue.
pub(super) struct Msg<'a> {
    pub(super) topic: &'a str,
    pub(super) partition: i32,
    pub(super) offset: i64,
    pub(super) payload: &'a [u8],
    /// The broker's timestamp (ms), the fallback event time.
    pub(super) timestamp: Option<i64>,
}

impl<'a> Msg<'a> {
    /// A view of a message from librdkafka.
    pub(super) fn of<M: Message>(m: &'a M) -> Msg<'a> {
        Msg {
            topic: m.topic(),
            partition: m.partition(),
            offset: m.offset(),
            payload: m.payload().unwrap_or(&[]),
            timestamp: m.timestamp().to_millis(),
        }
    }
}

/// What one read of a partition queue returned, in order.
pub(super) enum Item {
    Msg {
        offset: i64,
        timestamp: Option<i64>,
        /// The payload's end in [`Batch::data`] (it starts where the
        /// previous message's ends).
        end: usize,
    },
    /// The consumer reported the partition's end.
    End,
    Error(KafkaError),
}

/// Records of one partition, read in one go, payloads copied into one
/// buffer (one allocation per batch, not per message).
pub(super) struct Batch {
    pub(super) part: Part,
    pub(super) epoch: u64,
    pub(super) items: Vec<Item>,
    pub(super) data: Vec<u8>,
    /// Messages in `items` (what the lane counts in flight).
    pub(super) messages: usize,
}

/// Where the engine thread stands in a [`Batch`]: it takes the batch's
/// items in runs ([`Batch::next`]), one driver step per run.
#[derive(Default)]
pub(super) struct Cursor {
    /// The next item.
    next: usize,
    /// Where the next message's payload starts in [`Batch::data`].
    start: usize,
    /// Messages taken so far.
    pub(super) messages: u64,
}

impl Batch {
    /// The next item as the core's step takes it.
    pub(super) fn next(&self, at: &mut Cursor) -> Option<Result<Msg<'_>, KafkaError>> {
        let it = self.items.get(at.next)?;
        at.next += 1;
        Some(match it {
            Item::Msg {
                offset,
                timestamp,
                end,
            } => {
                let payload = &self.data[at.start..*end];
                at.start = *end;
                at.messages += 1;
                Ok(Msg {
                    topic: &self.part.0,
                    partition: self.part.1,
                    offset: *offset,
                    payload,
                    timestamp: *timestamp,
                })
            }
            Item::End => Err(KafkaError::PartitionEOF(self.part.1)),
            Item::Error(e) => Err(e.clone()),
        })
    }

    /// Whether every item was taken.
    pub(super) fn done(&self, at: &Cursor) -> bool {
        at.next >= self.items.len()
    }
}

/// What the fetcher sends the engine thread.
pub(super) enum Event {
    Batch(Batch),
    /// A pass read nothing.
    Idle {
        /// The partitions it read and found empty.
        read: Vec<Part>,
        /// The partitions it did not read, having enough unfed then.
        skipped: Vec<Part>,
    },
}

/// One assigned partition as both threads see it.
struct Lane {
    key: Part,
    epoch: u64,
    /// The epoch it was assigned with: a batch with an older one was read
    /// before that, and is not counted in `in_flight`.
    born: u64,
    /// Messages read and not yet fed (or dropped) by the engine.
    in_flight: usize,
    /// Entries in the partition's aligner buffer (published by the
    /// engine after each event).
    waiting: usize,
    /// The fetcher skipped it for want of demand: the engine wakes the
    /// fetcher when it is wanted again (waking it on every event instead
    /// would make an idle consumer spin).
    skipped: bool,
}

#[derive(Default)]
struct Lanes {
    lanes: Vec<Lane>,
    /// The last epoch handed out: epochs only grow, so a partition
    /// assigned again never takes an epoch its stale batches carry.
    epoch: u64,
}

impl Lanes {
    fn next(&mut self) -> u64 {
        self.epoch += 1;
        self.epoch
    }
}

/// The lanes, shared by the fetcher, the engine thread and the rebalance
/// callbacks. Lock order: the core, then the queues, then `reading`, then
/// `lanes`.
pub(super) struct Flow {
    lanes: Mutex<Lanes>,
    /// Batches the engine has fed, emptied, for the fetcher to fill again:
    /// a fresh batch's buffer grew by doubling to ~1 MB (copying as it
    /// grew) and was freed by the other thread, touching new pages each
    /// time (page faults on both threads in a 1M-record drain's profile).
    spare: Mutex<Vec<(Vec<Item>, Vec<u8>)>>,
    /// Held by the fetcher while it reads a queue and by a rewind while it
    /// seeks: a batch's epoch is then exact. Apart from `lanes`, which the
    /// engine takes once per batch, so that it never waits for a read.
    reading: Mutex<()>,
    want: usize,
}

impl Flow {
    /// `capacity`: the aligner's per-partition buffer
    /// (`kafka.partition_buffer`); the fetcher keeps each partition's
    /// unfed records under half of it, so the pipeline never makes the
    /// aligner pause a partition.
    pub(super) fn new(capacity: usize) -> Flow {
        Flow {
            lanes: Mutex::default(),
            spare: Mutex::default(),
            reading: Mutex::default(),
            want: WANT.min(capacity / 2).max(1),
        }
    }

    /// Takes back a batch the engine is done with (bounded: the channel's
    /// batches and one more each way; a buffer grown past `SPARE_BYTES`
    /// by huge records is freed).
    pub(super) fn recycle(&self, b: Batch) {
        let (mut items, mut data) = (b.items, b.data);
        if data.capacity() > SPARE_BYTES {
            return;
        }
        items.clear();
        data.clear();
        let mut spare = self.spare.lock().unwrap_or_else(|p| p.into_inner());
        if spare.len() < CHANNEL + 2 {
            spare.push((items, data));
        }
    }

    /// An empty batch's buffers, reused when the engine gave one back.
    fn buffers(&self) -> (Vec<Item>, Vec<u8>) {
        self.spare
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop()
            .unwrap_or_default()
    }

    fn lock(&self) -> MutexGuard<'_, Lanes> {
        self.lanes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The partition was assigned: a fresh lane (batches read before are
    /// stale).
    pub(super) fn assign(&self, key: &Part) {
        let mut l = self.lock();
        let epoch = l.next();
        l.lanes.retain(|x| x.key != *key);
        l.lanes.push(Lane {
            key: key.clone(),
            epoch,
            born: epoch,
            in_flight: 0,
            waiting: 0,
            skipped: false,
        });
    }

    /// The partition was revoked: the batches read from it are stale.
    pub(super) fn revoke(&self, key: &Part) {
        self.lock().lanes.retain(|x| x.key != *key);
    }

    /// Seeks partitions back with the lanes locked, so that no read of
    /// their queues interleaves, and makes every batch read before stale.
    pub(super) fn rewind(
        &self,
        seeks: &[(String, i32, i64)],
        mut seek: impl FnMut(&str, i32, i64),
    ) {
        let _reading = self.reading.lock().unwrap_or_else(|p| p.into_inner());
        for (t, p, at) in seeks {
            seek(t, *p, *at);
            let mut l = self.lock();
            let epoch = l.next();
            if let Some(x) = l
                .lanes
                .iter_mut()
                .find(|x| x.key.1 == *p && *x.key.0 == **t)
            {
                x.epoch = epoch;
            }
        }
    }

    /// Whether `batch` is still current; either way it is no longer in
    /// flight.
    pub(super) fn admit(&self, batch: &Batch) -> bool {
        let mut l = self.lock();
        let Some(x) = l.lanes.iter_mut().find(|x| x.key == batch.part) else {
            return false;
        };
        if batch.epoch >= x.born {
            x.in_flight = x.in_flight.saturating_sub(batch.messages);
        }
        batch.epoch == x.epoch
    }

    /// Whether a batch of `part` read at `epoch` is still current (asked
    /// again after a rollback in the middle of a batch).
    pub(super) fn current(&self, part: &Part, epoch: u64) -> bool {
        self.lock()
            .lanes
            .iter()
            .any(|x| x.key == *part && x.epoch == epoch)
    }

    /// For a read of the partition: its epoch and how many records it may
    /// read; `None` when it is not assigned or has enough unfed (then it
    /// is marked skipped, for [`Flow::publish`]).
    fn claim(&self, key: &Part) -> Option<Claim> {
        let mut l = self.lock();
        let x = l.lanes.iter_mut().find(|x| x.key == *key)?;
        let unfed = x.in_flight + x.waiting;
        x.skipped = unfed >= self.low();
        Some(match x.skipped {
            true => Claim::Skip,
            false => Claim::Read(x.epoch, self.want - unfed),
        })
    }

    /// Below this many unfed records a partition is read again.
    fn low(&self) -> usize {
        self.want.div_ceil(2)
    }

    /// `messages` were read at `epoch`: in flight, in the lane of that
    /// epoch's assignment (a rewind keeps `born`), where
    /// [`Flow::admit`] uncounts them.
    fn count(&self, key: &Part, epoch: u64, messages: usize) {
        if messages == 0 {
            return;
        }
        let mut l = self.lock();
        if let Some(x) = l.lanes.iter_mut().find(|x| x.key == *key)
            && epoch >= x.born
        {
            x.in_flight += messages;
        }
    }

    /// The engine's aligner buffers, after an event; true when a
    /// partition the fetcher skipped is wanted again (the fetcher is then
    /// woken).
    pub(super) fn publish(&self, waiting: impl Fn(&Part) -> usize) -> bool {
        let mut l = self.lock();
        let mut wake = false;
        for x in l.lanes.iter_mut() {
            x.waiting = waiting(&x.key);
            if x.skipped && x.in_flight + x.waiting < self.low() {
                x.skipped = false;
                wake = true;
            }
        }
        wake
    }
}

/// What the fetcher may do with a partition queue.
#[derive(Debug, PartialEq, Eq)]
enum Claim {
    /// Read up to this many records, at this epoch.
    Read(u64, usize),
    /// Not now: enough is unfed.
    Skip,
}

/// The fetcher's loop: reads the wanted partitions' queues into batches
/// and sends them, until `stop` or the engine is gone.
pub(super) fn run<C: ConsumerContext + 'static>(
    queues: &Queues<C>,
    flow: &Flow,
    tx: SyncSender<Event>,
    stop: &AtomicBool,
) {
    let mut out: Vec<Batch> = Vec::new();
    let mut empty: Vec<Part> = Vec::new();
    let mut skipped: Vec<Part> = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        {
            let list = queues.lock();
            for (key, q) in list.iter() {
                let _reading = flow.reading.lock().unwrap_or_else(|p| p.into_inner());
                let (epoch, room) = match flow.claim(key) {
                    None => continue,
                    Some(Claim::Skip) => {
                        skipped.push(key.clone());
                        continue;
                    }
                    Some(Claim::Read(epoch, room)) => (epoch, room),
                };
                let (items, data) = flow.buffers();
                let mut b = Batch {
                    part: key.clone(),
                    epoch,
                    items,
                    data,
                    messages: 0,
                };
                while b.messages < room {
                    match q.poll(Duration::ZERO) {
                        None => break,
                        Some(Ok(m)) => {
                            b.data.extend_from_slice(m.payload().unwrap_or(&[]));
                            b.items.push(Item::Msg {
                                offset: m.offset(),
                                timestamp: m.timestamp().to_millis(),
                                end: b.data.len(),
                            });
                            b.messages += 1;
                        }
                        Some(Err(KafkaError::PartitionEOF(_))) => {
                            b.items.push(Item::End);
                            break;
                        }
                        Some(Err(e)) => {
                            b.items.push(Item::Error(e));
                            break;
                        }
                    }
                }
                flow.count(key, epoch, b.messages);
                drop(_reading);
                if b.items.is_empty() {
                    empty.push(key.clone());
                    flow.recycle(b);
                } else {
                    out.push(b);
                }
            }
        }
        if out.is_empty() {
            let idle = Event::Idle {
                read: std::mem::take(&mut empty),
                skipped: std::mem::take(&mut skipped),
            };
            if tx.send(idle).is_err() {
                return;
            }
            queues.wake.wait(Duration::from_millis(20));
            continue;
        }
        empty.clear();
        skipped.clear();
        for b in out.drain(..) {
            if tx.send(Event::Batch(b)).is_err() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn part(p: i32) -> Part {
        (Arc::from("logs"), p)
    }

    fn batch(p: i32, epoch: u64, messages: usize) -> Batch {
        Batch {
            part: part(p),
            epoch,
            items: Vec::new(),
            data: Vec::new(),
            messages,
        }
    }

    /// What the fetcher does per read: claim, then count what it read.
    fn read(flow: &Flow, p: i32, messages: usize) -> Option<(u64, usize)> {
        let Claim::Read(epoch, room) = flow.claim(&part(p))? else {
            return None;
        };
        flow.count(&part(p), epoch, messages.min(room));
        Some((epoch, room))
    }

    #[test]
    fn a_batch_read_before_a_seek_or_a_revocation_is_stale_and_one_read_after_is_not() {
        let flow = Flow::new(50_000);
        flow.assign(&part(0));
        flow.assign(&part(1));
        let (e0, _) = read(&flow, 0, 10).unwrap();
        let (e1, _) = read(&flow, 1, 10).unwrap();
        let mut seeks = Vec::new();
        flow.rewind(&[("logs".into(), 0, 5)], |t, p, at| {
            seeks.push((t.to_string(), p, at))
        });
        assert_eq!(seeks, [("logs".to_string(), 0, 5)]);
        // Partition 0 was sought back: its batch is stale; partition 1's
        // was not touched.
        assert!(!flow.admit(&batch(0, e0, 10)));
        assert!(flow.admit(&batch(1, e1, 10)));
        let (after, room) = read(&flow, 0, 3).unwrap();
        assert_eq!(room, WANT, "the stale batch no longer counts in flight");
        assert!(flow.current(&part(0), after));
        // Revoked and assigned again: a batch of the old assignment is
        // stale and does not count in the new lane.
        flow.revoke(&part(0));
        assert!(!flow.current(&part(0), after));
        flow.assign(&part(0));
        assert!(!flow.admit(&batch(0, after, 3)));
        let (fresh, room) = read(&flow, 0, 1).unwrap();
        assert!(fresh > after, "epochs only grow");
        assert_eq!(room, WANT);
    }

    #[test]
    fn a_partition_is_wanted_again_once_the_engine_fed_its_records() {
        let flow = Flow::new(50_000);
        assert_eq!(flow.want, WANT);
        flow.assign(&part(0));
        let (e, _) = read(&flow, 0, WANT).unwrap();
        // The fetcher did not skip it yet: no wake.
        assert!(!flow.publish(|_| 0));
        // Skipped (all in flight), then fed into the aligner, where they
        // wait: still not wanted, nor once half of them are released.
        assert_eq!(read(&flow, 0, 1), None);
        assert!(flow.admit(&batch(0, e, WANT)));
        assert!(!flow.publish(|_| WANT));
        assert!(!flow.publish(|_| WANT / 2));
        // Below half: wanted, the fetcher woken once, and it may read a
        // batch that fills the lane again.
        assert!(flow.publish(|_| WANT / 2 - 1));
        assert!(!flow.publish(|_| WANT / 2 - 1));
        assert_eq!(read(&flow, 0, 0).map(|r| r.1), Some(WANT / 2 + 1));
        // A small aligner buffer bounds what the fetcher reads ahead.
        assert_eq!(Flow::new(100).want, 50);
    }

    #[test]
    fn a_batch_taken_in_runs_gives_each_payload_once_in_order_then_its_end() {
        let mut b = batch(2, 1, 0);
        for (offset, text) in [(7, "first"), (8, ""), (10, "third line")] {
            b.data.extend_from_slice(text.as_bytes());
            b.items.push(Item::Msg {
                offset,
                timestamp: Some(offset * 1000),
                end: b.data.len(),
            });
            b.messages += 1;
        }
        b.items.push(Item::End);
        let mut at = Cursor::default();
        let mut seen = Vec::new();
        // Two runs, as the engine thread takes them: the cursor carries
        // where the next payload starts from one run to the next.
        for run in [2, usize::MAX] {
            let mut taken = 0;
            while taken < run {
                match b.next(&mut at) {
                    None => break,
                    Some(Ok(m)) => {
                        assert_eq!((m.partition, m.timestamp), (2, Some(m.offset * 1000)));
                        seen.push((m.offset, String::from_utf8_lossy(m.payload).into_owned()));
                        taken += 1;
                    }
                    Some(Err(e)) => {
                        assert!(matches!(e, KafkaError::PartitionEOF(2)));
                        seen.push((-1, "end".into()));
                    }
                }
            }
            assert!(run == 2 || b.done(&at));
        }
        let want = [(7, "first"), (8, ""), (10, "third line"), (-1, "end")];
        assert_eq!(seen, want.map(|(o, t)| (o, t.to_string())));
        assert_eq!(at.messages, 3);
        assert!(b.next(&mut at).is_none());
    }

    #[test]
    fn a_fed_batch_gives_its_buffers_back_emptied_and_the_spares_are_bounded() {
        let flow = Flow::new(50_000);
        let mut b = batch(0, 1, 1);
        b.data.extend_from_slice(b"one payload");
        b.items.push(Item::Msg {
            offset: 0,
            timestamp: None,
            end: b.data.len(),
        });
        flow.recycle(b);
        let (items, data) = flow.buffers();
        assert!(items.is_empty() && data.is_empty());
        assert!(data.capacity() >= 11, "the buffer is kept, not freed");
        // None left: a fresh pair.
        assert_eq!(flow.buffers().1.capacity(), 0);
        for _ in 0..3 * CHANNEL {
            flow.recycle(batch(0, 1, 0));
        }
        assert_eq!(flow.spare.lock().unwrap().len(), CHANNEL + 2);
        // A buffer grown past the bound by huge records is freed.
        let fresh = Flow::new(50_000);
        let mut huge = batch(0, 1, 0);
        huge.data.reserve(SPARE_BYTES + 1);
        fresh.recycle(huge);
        assert!(fresh.spare.lock().unwrap().is_empty());
    }
}
