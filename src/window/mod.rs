//! Windows: per error type counts over sliding windows in event time.
//!
//! A [`WindowCounts`] is a ring of fixed-size buckets (default 60 × 1 min,
//! 4 bytes each: 240 bytes per tracked type) indexed by absolute bucket
//! number, so records arriving out of order land in their own minute as long
//! as that minute is still in the ring. Event time, not arrival time: a
//! replay of yesterday's logs must give the same windows as the live run.

pub mod clock;

use serde::{Deserialize, Serialize};

use crate::record::EventTime;

/// Bucket geometry shared by every type's counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowSpec {
    pub bucket_ms: i64,
    pub buckets: usize,
}

impl WindowSpec {
    pub fn new(bucket_ms: i64, history_ms: i64) -> WindowSpec {
        let bucket_ms = bucket_ms.max(1);
        WindowSpec {
            bucket_ms,
            buckets: ((history_ms / bucket_ms).max(1)) as usize,
        }
    }

    /// Consistency of a spec read from a state file.
    pub fn validate(&self) -> Result<(), String> {
        if self.bucket_ms < 1 || !(1..=crate::config::MAX_BUCKETS).contains(&self.buckets) {
            return Err(format!(
                "window spec of {} buckets of {} ms (allowed: 1 to {} buckets of at least 1 ms)",
                self.buckets,
                self.bucket_ms,
                crate::config::MAX_BUCKETS
            ));
        }
        Ok(())
    }

    /// Absolute bucket number of an event time.
    pub fn bucket_of(&self, t: EventTime) -> i64 {
        t.div_euclid(self.bucket_ms)
    }

    pub fn bucket_start(&self, b: i64) -> EventTime {
        b * self.bucket_ms
    }
}

/// Counts of one type per bucket.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowCounts {
    /// Newest bucket number written; ring slot = bucket mod len.
    newest: i64,
    counts: Box<[u32]>,
}

impl WindowCounts {
    pub fn new(spec: &WindowSpec) -> WindowCounts {
        WindowCounts {
            newest: i64::MIN,
            counts: vec![0; spec.buckets].into_boxed_slice(),
        }
    }

    fn slot(&self, b: i64) -> usize {
        b.rem_euclid(self.counts.len() as i64) as usize
    }

    /// Adds `n` to bucket `b`. Returns false (and counts nothing) when the
    /// bucket has already left the ring.
    pub fn add(&mut self, b: i64, n: u32) -> bool {
        let len = self.counts.len() as i64;
        if self.newest == i64::MIN {
            self.newest = b;
        } else if b > self.newest {
            // Clear the buckets we skip over: they are new minutes.
            let gap = (b - self.newest).min(len);
            for k in 0..gap {
                let s = self.slot(b - k);
                self.counts[s] = 0;
            }
            self.newest = b;
        } else if b <= self.newest - len {
            return false;
        }
        let s = self.slot(b);
        self.counts[s] = self.counts[s].saturating_add(n);
        true
    }

    /// Sum of buckets `from..=to` that are still in the ring.
    pub fn sum(&self, from: i64, to: i64) -> u64 {
        if self.newest == i64::MIN {
            return 0;
        }
        let len = self.counts.len() as i64;
        let lo = from.max(self.newest - len + 1);
        let hi = to.min(self.newest);
        (lo..=hi).map(|b| self.counts[self.slot(b)] as u64).sum()
    }

    /// The largest sum over `width` consecutive buckets in `from..=to`: the
    /// biggest burst seen, which a surge has to beat.
    pub fn peak(&self, width: i64, from: i64, to: i64) -> u64 {
        if self.newest == i64::MIN || width <= 0 {
            return 0;
        }
        let len = self.counts.len() as i64;
        let lo = from.max(self.newest - len + 1);
        let hi = to.min(self.newest);
        if hi < lo {
            return 0;
        }
        let mut best = 0u64;
        let mut run = 0u64;
        for b in lo..=hi {
            run += self.counts[self.slot(b)] as u64;
            if b - width >= lo {
                run -= self.counts[self.slot(b - width)] as u64;
            }
            best = best.max(run);
        }
        best
    }

    /// Consistency with `spec` of counts read from a state file: the ring
    /// must have the spec's length (an empty one divides by zero).
    pub fn validate(&self, spec: &WindowSpec) -> Result<(), String> {
        if self.counts.len() != spec.buckets {
            return Err(format!(
                "window holds {} buckets, the state's window spec {}",
                self.counts.len(),
                spec.buckets
            ));
        }
        Ok(())
    }

    /// Forgets every count when the newest bucket lies after `limit` (a
    /// bucket from a bogus future time, written by an older version).
    pub fn forget_after(&mut self, limit: i64) -> bool {
        if self.newest != i64::MIN && self.newest > limit {
            self.newest = i64::MIN;
            self.counts.fill(0);
            return true;
        }
        false
    }

    pub fn newest(&self) -> Option<i64> {
        (self.newest != i64::MIN).then_some(self.newest)
    }

    /// The ring as stored: its newest bucket (`i64::MIN` before the first
    /// count) and its slots (bucket mod length). For the state store's
    /// sparse row encoding; [`WindowCounts::from_ring`] is the inverse.
    pub fn ring(&self) -> (i64, &[u32]) {
        (self.newest, &self.counts)
    }

    /// A ring read back from [`WindowCounts::ring`]'s parts: what
    /// deserialising the struct gives (checked against the spec by
    /// [`WindowCounts::validate`], as that is).
    pub fn from_ring(newest: i64, counts: Box<[u32]>) -> WindowCounts {
        WindowCounts { newest, counts }
    }

    /// Heap bytes of this window (for the memory report).
    pub fn heap_bytes(&self) -> usize {
        self.counts.len() * 4
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> WindowSpec {
        WindowSpec::new(60_000, 10 * 60_000)
    }

    #[test]
    fn counts_land_in_their_event_time_bucket_even_out_of_order() {
        let s = spec();
        let mut w = WindowCounts::new(&s);
        assert!(w.add(100, 1));
        assert!(w.add(102, 2));
        assert!(w.add(101, 5));
        assert_eq!(w.sum(100, 102), 8);
        assert_eq!(w.sum(101, 101), 5);
    }

    #[test]
    fn buckets_older_than_the_history_are_refused() {
        let mut w = WindowCounts::new(&spec());
        w.add(100, 1);
        assert!(!w.add(90, 1));
        assert!(w.add(91, 1));
    }

    #[test]
    fn skipped_minutes_read_as_zero_after_the_ring_wraps() {
        let mut w = WindowCounts::new(&spec());
        w.add(100, 7);
        w.add(125, 1);
        assert_eq!(w.sum(100, 125), 1);
        assert_eq!(w.sum(116, 124), 0);
    }

    #[test]
    fn the_peak_is_the_largest_sliding_sum() {
        let mut w = WindowCounts::new(&spec());
        for (b, n) in [(100, 1), (101, 4), (102, 4), (103, 1), (104, 0)] {
            w.add(b, n);
        }
        assert_eq!(w.peak(2, 100, 104), 8);
        assert_eq!(w.peak(1, 100, 104), 4);
    }
}
