//! Event-time alignment of a partitioned source (Kafka): the engine is fed
//! from one merged stream in which every partition's records keep their
//! order and, across partitions, the record with the smallest event time
//! goes first.
//!
//! A consumer reads partitions at whatever pace the broker delivers them;
//! on a backlog one partition can be hours ahead of another in event time.
//! Fed in arrival order, the engine's watermark follows the fastest
//! partition and the records of the slow ones arrive behind the lateness
//! horizon, so windows close without them. Here, as in Kafka Streams
//! (task idling) and Flink (watermark alignment), parsed records wait per
//! partition and [`Aligner::pop_ready`] releases the buffered head with the
//! smallest event time, but only when every partition whose buffer is empty
//! cannot deliver anything earlier: it is at its end (the consumer reported
//! end of partition), or it has been silent for `max_idle` (a partition that
//! stopped receiving records must not stall the others forever; live latency
//! is bounded by that). Lateness then only covers disorder *within* a
//! partition, which is how the producer wrote it.
//!
//! Buffers are bounded: the Kafka source reads a partition only when its
//! buffer is empty ([`Aligner::waiting`]), and a partition holding
//! `capacity` entries anyway is reported by [`Aligner::pause_changes`] to be
//! paused at the consumer, and to be resumed once drained to half. The offset to commit for a partition is the
//! first offset of its oldest buffered entry (or, with nothing buffered, the
//! offset after the last message consumed): a restart re-reads exactly the
//! records the engine has not seen.
//!
//! The module knows nothing of Kafka: keys, offsets, event times and the
//! clock are passed in, so the rules are unit-tested here.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// One buffered unit: the records parsed from the messages at offsets
/// `from..` (one message, or several joined into one record), with the
/// event time that orders it.
#[derive(Debug)]
pub struct Entry<T> {
    pub from: i64,
    /// Event time (ms); `None` when the records carried none.
    pub time: Option<i64>,
    pub item: T,
}

struct Lane<K, T> {
    key: K,
    buf: VecDeque<Entry<T>>,
    /// Offset after the last message consumed.
    next: Option<i64>,
    /// The consumer reported the partition's end and nothing came since.
    at_end: bool,
    /// Offset after the last message when the end was last reported.
    /// librdkafka reports an end once per end offset: after a seek back
    /// (a rolled-back batch) it does not report the same end again, so
    /// reaching it again counts as the end.
    end: Option<i64>,
    /// When the last message arrived (or the partition was assigned).
    last_arrival: Instant,
    paused: bool,
    /// Order key of the last entry pushed; an entry without event time
    /// takes it, so it stays behind its predecessor.
    last_time: Option<i64>,
}

impl<K, T> Lane<K, T> {
    fn head_time(&self) -> Option<Option<i64>> {
        self.buf.front().map(|e| e.time)
    }

    /// Whether this empty lane may still deliver a record earlier than the
    /// others' heads.
    fn may_deliver(&self, now: Instant, max_idle: Duration) -> bool {
        self.buf.is_empty()
            && !self.at_end
            && now.saturating_duration_since(self.last_arrival) < max_idle
    }
}

/// Per-partition buffers merged by event time. `K` names a partition.
pub struct Aligner<K, T> {
    lanes: Vec<Lane<K, T>>,
    capacity: usize,
    max_idle: Duration,
    buffered: usize,
    /// Lanes paused: with none paused and fewer entries buffered in all
    /// than one lane's capacity, [`Aligner::pause_changes`] has nothing to
    /// look at (asked once per message).
    paused: usize,
}

impl<K: PartialEq + Clone, T> Aligner<K, T> {
    /// `capacity`: entries per partition before it is paused (at least 2);
    /// `max_idle`: how long an empty partition that is not at its end may
    /// hold the others back.
    pub fn new(capacity: usize, max_idle: Duration) -> Aligner<K, T> {
        Aligner {
            lanes: Vec::new(),
            capacity: capacity.max(2),
            max_idle,
            buffered: 0,
            paused: 0,
        }
    }

    // Few partitions per instance: a linear scan beats hashing a key per
    // record.
    fn lane(&mut self, key: &K, now: Instant) -> &mut Lane<K, T> {
        let i = match self.lanes.iter().position(|l| l.key == *key) {
            Some(i) => i,
            None => {
                self.lanes.push(Lane {
                    key: key.clone(),
                    buf: VecDeque::new(),
                    next: None,
                    at_end: false,
                    end: None,
                    last_arrival: now,
                    paused: false,
                    last_time: None,
                });
                self.lanes.len() - 1
            }
        };
        &mut self.lanes[i]
    }

    /// A partition was assigned: it holds the others back until it delivers,
    /// reaches its end or idles.
    pub fn assign(&mut self, key: &K, now: Instant) {
        self.lane(key, now);
    }

    /// A partition was revoked: its buffered entries are dropped (the next
    /// owner re-reads them from the committed offset). Returns how many.
    pub fn revoke(&mut self, key: &K) -> usize {
        let Some(i) = self.lanes.iter().position(|l| l.key == *key) else {
            return 0;
        };
        let lane = self.lanes.swap_remove(i);
        self.buffered -= lane.buf.len();
        self.paused -= usize::from(lane.paused);
        lane.buf.len()
    }

    /// A message at `offset` was read from the partition (its records may
    /// come later, in one [`push`](Self::push)).
    pub fn consumed(&mut self, key: &K, offset: i64, now: Instant) {
        let lane = self.lane(key, now);
        lane.next = Some(offset + 1);
        lane.at_end = lane.end == Some(offset + 1);
        lane.last_arrival = now;
    }

    /// The consumer reached the partition's end: while its buffer is empty
    /// it holds nothing back.
    pub fn reached_end(&mut self, key: &K, now: Instant) {
        let lane = self.lane(key, now);
        lane.at_end = true;
        lane.end = lane.next.or(lane.end);
    }

    /// Whether the consumer reported the partition's end and nothing came
    /// since: it has nothing more to read now.
    pub fn at_end(&self, key: &K) -> bool {
        self.lanes.iter().any(|l| l.key == *key && l.at_end)
    }

    /// Buffers the records parsed from the messages at `from..`.
    pub fn push(&mut self, key: &K, from: i64, time: Option<i64>, item: T, now: Instant) {
        let lane = self.lane(key, now);
        let time = time.or(lane.last_time);
        lane.last_time = time;
        lane.buf.push_back(Entry { from, time, item });
        self.buffered += 1;
    }

    /// The buffered head with the smallest event time, when no partition
    /// with an empty buffer may still deliver an earlier one.
    pub fn pop_ready(&mut self, now: Instant) -> Option<(&K, Entry<T>)> {
        let i = self.ready_lane(now)?;
        let lane = &mut self.lanes[i];
        let e = lane.buf.pop_front()?;
        self.buffered -= 1;
        Some((&lane.key, e))
    }

    /// Whether [`pop_ready`](Self::pop_ready) would return an entry.
    pub fn ready(&self, now: Instant) -> bool {
        self.ready_lane(now).is_some()
    }

    fn ready_lane(&self, now: Instant) -> Option<usize> {
        if self.buffered == 0 {
            return None;
        }
        let max_idle = self.max_idle;
        if self.lanes.iter().any(|l| l.may_deliver(now, max_idle)) {
            return None;
        }
        // `None < Some(_)`: entries with no time at all go first, as the
        // engine stamps them with its watermark anyway.
        Some(
            self.lanes
                .iter()
                .enumerate()
                .filter_map(|(i, l)| l.head_time().map(|t| (t, i)))
                .min()?
                .1,
        )
    }

    /// The partitions known (assigned or read from).
    pub fn partitions(&self) -> impl Iterator<Item = &K> {
        self.lanes.iter().map(|l| &l.key)
    }

    /// The offset to commit for the partition: its oldest buffered entry's
    /// first offset, else the offset after the last message consumed.
    pub fn commit_offset(&self, key: &K) -> Option<i64> {
        let l = self.lanes.iter().find(|l| l.key == *key)?;
        l.buf.front().map(|e| e.from).or(l.next)
    }

    /// Entries buffered for the partition: the source reads a partition
    /// whose buffer is empty, and leaves the others' records where the
    /// consumer keeps them.
    pub fn waiting(&self, key: &K) -> usize {
        self.lanes
            .iter()
            .find(|l| l.key == *key)
            .map_or(0, |l| l.buf.len())
    }

    /// Every partition with its offset to commit.
    pub fn commit_offsets(&self) -> impl Iterator<Item = (&K, i64)> {
        self.lanes
            .iter()
            .filter_map(|l| Some((&l.key, l.buf.front().map(|e| e.from).or(l.next)?)))
    }

    /// Partitions to pause (buffer full) and to resume (drained to half),
    /// noted as done.
    pub fn pause_changes(&mut self) -> (Vec<K>, Vec<K>) {
        let (mut pause, mut resume) = (Vec::new(), Vec::new());
        if self.paused == 0 && self.buffered < self.capacity {
            return (pause, resume);
        }
        for l in &mut self.lanes {
            if !l.paused && l.buf.len() >= self.capacity {
                l.paused = true;
                self.paused += 1;
                pause.push(l.key.clone());
            } else if l.paused && l.buf.len() <= self.capacity / 2 {
                l.paused = false;
                self.paused -= 1;
                resume.push(l.key.clone());
            }
        }
        (pause, resume)
    }

    /// Drops every buffered entry (a rolled-back batch: the source seeks
    /// back and reads them again). Returns the partitions that were paused,
    /// now to be resumed.
    pub fn clear(&mut self, now: Instant) -> Vec<K> {
        let mut resume = Vec::new();
        for l in &mut self.lanes {
            l.buf.clear();
            // A partition that delivered nothing is not read again (the
            // source seeks back only what it read): still at its end.
            l.at_end = l.at_end && l.next.is_none();
            l.next = None;
            l.last_arrival = now;
            l.last_time = None;
            if std::mem::take(&mut l.paused) {
                resume.push(l.key.clone());
            }
        }
        self.buffered = 0;
        self.paused = 0;
        resume
    }

    /// Entries buffered over all partitions.
    pub fn len(&self) -> usize {
        self.buffered
    }

    pub fn is_empty(&self) -> bool {
        self.buffered == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IDLE: Duration = Duration::from_secs(2);

    fn drain(a: &mut Aligner<u8, &'static str>, now: Instant) -> Vec<(u8, &'static str)> {
        let mut out = Vec::new();
        while let Some((k, e)) = a.pop_ready(now) {
            out.push((*k, e.item));
        }
        out
    }

    #[test]
    fn partitions_are_merged_by_event_time_and_each_keeps_its_order() {
        let now = Instant::now();
        let mut a = Aligner::new(100, IDLE);
        // Partition 1 runs two hours ahead of partition 0.
        for (k, off, t, item) in [
            (1, 0, 7_200_000, "b0"),
            (1, 1, 7_260_000, "b1"),
            (0, 0, 0, "a0"),
            (0, 1, 7_230_000, "a1"),
            (0, 2, 7_220_000, "a2"),
        ] {
            a.consumed(&k, off, now);
            a.push(&k, off, Some(t), item, now);
        }
        a.reached_end(&0, now);
        a.reached_end(&1, now);
        // a2 is earlier than a1 but stays behind it: disorder within a
        // partition is the windows' lateness to absorb.
        assert_eq!(
            drain(&mut a, now),
            [(0, "a0"), (1, "b0"), (0, "a1"), (0, "a2"), (1, "b1")]
        );
    }

    #[test]
    fn an_empty_partition_holds_the_others_back_until_it_ends_or_idles() {
        let t0 = Instant::now();
        let mut a = Aligner::new(100, IDLE);
        a.assign(&0, t0);
        a.consumed(&1, 0, t0);
        a.push(&1, 0, Some(1_000), "b0", t0);
        // Partition 0 may still have something earlier.
        assert!(a.pop_ready(t0 + Duration::from_millis(500)).is_none());
        // At its end it cannot.
        a.reached_end(&0, t0);
        assert_eq!(drain(&mut a, t0), [(1, "b0")]);
        // A new message clears the end mark; its partition holds back
        // again once its buffer is empty.
        a.consumed(&0, 0, t0);
        a.push(&0, 0, Some(500), "a0", t0);
        a.consumed(&1, 1, t0);
        a.push(&1, 1, Some(2_000), "b1", t0);
        assert_eq!(drain(&mut a, t0), [(0, "a0")]);
        // Silent for max_idle: it stops holding the others back.
        assert!(a.pop_ready(t0 + IDLE / 2).is_none());
        assert_eq!(drain(&mut a, t0 + IDLE), [(1, "b1")]);
    }

    #[test]
    fn the_commit_offset_never_passes_a_buffered_entry() {
        let now = Instant::now();
        let mut a = Aligner::new(100, IDLE);
        assert_eq!(a.commit_offset(&0), None);
        a.consumed(&0, 10, now);
        a.consumed(&0, 11, now);
        // Messages 10 and 11 were joined into one record.
        a.push(&0, 10, Some(5), "a", now);
        a.consumed(&0, 12, now);
        a.push(&0, 12, Some(6), "b", now);
        a.consumed(&0, 13, now);
        assert_eq!(a.commit_offset(&0), Some(10));
        a.reached_end(&0, now);
        assert_eq!(a.pop_ready(now).map(|(_, e)| e.item), Some("a"));
        assert_eq!(a.commit_offset(&0), Some(12));
        assert_eq!(a.pop_ready(now).map(|(_, e)| e.item), Some("b"));
        // Message 13 is still open in the parser (no entry yet): the caller
        // flushes the parser before committing, so 14 is right.
        assert_eq!(a.commit_offsets().collect::<Vec<_>>(), [(&0, 14)]);
    }

    #[test]
    fn a_full_partition_is_paused_and_resumed_once_drained_to_half() {
        let now = Instant::now();
        let mut a = Aligner::new(4, IDLE);
        a.assign(&0, now);
        for off in 0..4 {
            a.consumed(&1, off, now);
            a.push(&1, off, Some(off), "b", now);
        }
        assert_eq!(a.pause_changes(), (vec![1], vec![]));
        assert_eq!(a.pause_changes(), (vec![], vec![]));
        a.reached_end(&0, now);
        a.pop_ready(now);
        assert_eq!(a.pause_changes(), (vec![], vec![]));
        a.pop_ready(now);
        assert_eq!(a.pause_changes(), (vec![], vec![1]));
        assert_eq!(a.len(), 2);
    }

    #[test]
    fn a_revoked_partition_drops_its_buffer_and_holds_nothing_back() {
        let now = Instant::now();
        let mut a = Aligner::new(100, IDLE);
        a.assign(&0, now);
        a.consumed(&1, 0, now);
        a.push(&1, 0, Some(1), "b", now);
        a.consumed(&2, 0, now);
        a.push(&2, 0, Some(2), "c", now);
        assert!(a.pop_ready(now).is_none());
        assert_eq!(a.revoke(&0), 0);
        assert_eq!(a.revoke(&2), 1);
        assert_eq!(drain(&mut a, now), [(1, "b")]);
        assert!(a.is_empty());
    }

    #[test]
    fn a_partition_read_again_up_to_its_reported_end_is_at_its_end() {
        let now = Instant::now();
        let mut a = Aligner::new(100, IDLE);
        a.assign(&0, now);
        for off in 0..3 {
            a.consumed(&1, off, now);
            a.push(&1, off, Some(off), "b", now);
        }
        a.reached_end(&1, now);
        a.reached_end(&0, now);
        assert_eq!(drain(&mut a, now).len(), 3);
        // A rolled-back batch: read again from the start; the consumer
        // does not report the same end twice.
        a.clear(now);
        a.reached_end(&0, now);
        for off in 0..3 {
            a.consumed(&1, off, now);
            a.push(&1, off, Some(off), "b", now);
        }
        assert_eq!(drain(&mut a, now).len(), 3);
        // With nothing buffered it holds nothing back: partition 0's next
        // record goes at once.
        a.consumed(&0, 0, now);
        a.push(&0, 0, Some(10), "a", now);
        assert_eq!(drain(&mut a, now), [(0, "a")]);
        // A record past the reported end: not at the end any more.
        a.consumed(&1, 3, now);
        a.push(&1, 3, Some(20), "b", now);
        a.consumed(&0, 1, now);
        a.push(&0, 1, Some(30), "a", now);
        assert_eq!(drain(&mut a, now), [(1, "b")]);
    }

    #[test]
    fn a_partition_is_at_its_end_from_the_report_until_its_next_message() {
        let now = Instant::now();
        let mut a = Aligner::<u8, &str>::new(100, IDLE);
        assert!(!a.at_end(&0), "unknown partition");
        a.consumed(&0, 0, now);
        assert!(!a.at_end(&0));
        a.reached_end(&0, now);
        assert!(a.at_end(&0));
        a.consumed(&0, 1, now);
        assert!(!a.at_end(&0), "a message past the reported end");
    }

    #[test]
    fn entries_without_event_time_stay_behind_their_predecessor() {
        let now = Instant::now();
        let mut a = Aligner::new(100, IDLE);
        a.consumed(&0, 0, now);
        a.push(&0, 0, Some(100), "a0", now);
        a.consumed(&0, 1, now);
        a.push(&0, 1, None, "a1", now);
        a.consumed(&1, 0, now);
        a.push(&1, 0, Some(50), "b0", now);
        a.consumed(&1, 1, now);
        a.push(&1, 1, Some(150), "b1", now);
        a.reached_end(&0, now);
        a.reached_end(&1, now);
        assert_eq!(
            drain(&mut a, now),
            [(1, "b0"), (0, "a0"), (0, "a1"), (1, "b1")]
        );
    }

    #[test]
    fn a_paused_partition_revoked_leaves_the_others_paused_and_resumed_as_before() {
        let now = Instant::now();
        let mut a = Aligner::new(2, IDLE);
        for off in 0..2 {
            a.consumed(&0, off, now);
            a.push(&0, off, Some(off), "a", now);
        }
        assert_eq!(a.pause_changes(), (vec![0], vec![]));
        assert_eq!(a.revoke(&0), 2);
        // Nothing buffered, nothing paused: nothing to change.
        assert_eq!(a.pause_changes(), (vec![], vec![]));
        for off in 0..2 {
            a.consumed(&1, off, now);
            a.push(&1, off, Some(off), "b", now);
        }
        assert_eq!(a.pause_changes(), (vec![1], vec![]));
        a.reached_end(&1, now);
        assert!(a.pop_ready(now).is_some());
        assert_eq!(a.pause_changes(), (vec![], vec![1]));
        assert_eq!(a.pause_changes(), (vec![], vec![]));
    }

    #[test]
    fn clearing_drops_everything_and_resumes_paused_partitions() {
        let now = Instant::now();
        let mut a = Aligner::new(2, IDLE);
        for off in 0..2 {
            a.consumed(&0, off, now);
            a.push(&0, off, Some(off), "a", now);
        }
        assert_eq!(a.pause_changes().0, [0]);
        assert_eq!(a.clear(now), [0]);
        assert!(a.is_empty());
        assert_eq!(a.commit_offset(&0), None);
    }
}
