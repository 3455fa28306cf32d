//! Partition assignment and revocation: where each assigned partition
//! starts (the state's offset when it lags the committed one, so the gap is
//! re-processed silently), and what a revocation commits first.

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::{Offset, TopicPartitionList};

use super::aligned::Part;
use super::*;

impl Core {
    /// Chooses where each assigned partition starts: the state's offset
    /// when it lags the committed one (re-process the gap silently), else
    /// the committed offset (or the start policy for a new group).
    pub(super) fn on_assign<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
        tpl: &TopicPartitionList,
    ) -> TopicPartitionList {
        // The committed offsets are read only once an older instance is
        // fenced: a transaction it left open (killed mid-batch) holds its
        // offsets unstable until `init_transactions` aborts it, and an
        // unstable offset must never be taken for "nothing committed".
        if let Err(BatchError::Fatal(e)) = self.await_init() {
            self.fatal = Some(e);
            return TopicPartitionList::new();
        }
        let mut committed = None;
        for attempt in 0..6 {
            match consumer.committed_offsets(tpl.clone(), Duration::from_secs(10)) {
                Ok(c) => {
                    committed = Some(c);
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %e, attempt, "fetching committed offsets");
                    std::thread::sleep(Duration::from_millis(500));
                }
            }
        }
        let mut out = TopicPartitionList::new();
        let Some(committed) = committed else {
            self.fatal = Some(KafkaSourceError::Stopped(
                "cannot fetch committed offsets for the assigned partitions".into(),
            ));
            return out;
        };
        for e in tpl.elements() {
            let (t, p) = (e.topic(), e.partition());
            let c = committed
                .find_partition(t, p)
                .and_then(|c| match c.offset() {
                    Offset::Offset(n) => Some(n),
                    _ => None,
                });
            let s = self
                .engine
                .state
                .kafka_offsets
                .get(&state_key(t, p))
                .copied();
            let start = match (s, c) {
                (Some(s), Some(c)) if s < c => {
                    tracing::info!(
                        topic = t,
                        partition = p,
                        state = s,
                        committed = c,
                        "state lags the committed offset: re-processing the gap without alerts"
                    );
                    self.silent_until.insert((t.to_string(), p), c);
                    Offset::Offset(s)
                }
                // Group offsets expired or the group is new: the state knows.
                (Some(s), None) => Offset::Offset(s),
                (_, Some(c)) => Offset::Offset(c),
                (None, None) => Offset::Invalid,
            };
            tracing::info!(topic = t, partition = p, start = ?start, "partition assigned");
            // It holds the others back until it delivers, ends or idles.
            let key = (self.topic(t), p);
            self.align.assign(&key, self.clock);
            self.flow.assign(&key);
            let _ = out.add_partition_offset(t, p, start);
        }
        out
    }

    pub(super) fn on_revoke<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
        tpl: &TopicPartitionList,
    ) {
        match self.commit(consumer) {
            Ok(()) => {}
            Err(BatchError::Fatal(e)) => self.fatal = Some(e),
            Err(BatchError::Retry(why)) => {
                self.status.fail(why);
                if let Err(e) = self.rollback(consumer, false) {
                    self.fatal = Some(e);
                }
            }
        }
        for e in tpl.elements() {
            self.streams
                .retain(|s| !(s.partition == e.partition() && *s.topic == *e.topic()));
            // What it buffered is past the committed offset: the next owner
            // reads it again; so is what the fetcher read from it.
            let key: Part = (e.topic().into(), e.partition());
            self.align.revoke(&key);
            self.flow.revoke(&key);
            self.silent_until
                .remove(&(e.topic().to_string(), e.partition()));
            tracing::info!(
                topic = e.topic(),
                partition = e.partition(),
                "partition revoked"
            );
        }
    }
}
