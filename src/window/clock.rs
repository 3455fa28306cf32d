//! Guards event time against records from the future.
//!
//! The watermark only moves forward, and everything (lateness, windows,
//! warm-up, surges) is judged against it: one record dated 2099 would make
//! every later record "late" and silence alerting. So a time more than a
//! grace ahead of (a) this machine's clock or (b) the median of the
//! stream's recent event times (plus twice their interquartile range, so
//! sparse streams advance) cannot move the watermark. After the clock, it
//! is certainly wrong: the engine skips it as `bad_timestamp`. Ahead of
//! the stream only, it may be a real gap: the engine keeps it, counted at
//! the current event time (`held`), so no record is lost.
//!
//! Why this holds on a stranger's logs: a log line cannot have been written
//! after the moment we read it (beyond clock skew, which the grace absorbs),
//! whatever the system; and a real stream moves forward gradually, so one
//! record far ahead of the median of the last few dozen is an outlier, not
//! progress. Old data is never refused: replaying 2005's logs works, both
//! checks only bound from above. A stream that really jumps ahead (a gap
//! of a night, a second file from a later day) confirms its new time with
//! [`CONFIRM`] consecutive records that agree with each other, so the first
//! two after such a jump are held (a warning says so, once). Leads below
//! [`MIN_STREAM_LEAD_MS`] are never held: pauses of minutes to hours are
//! normal.

use std::collections::VecDeque;

use crate::record::EventTime;

/// Recent event times the median is taken over.
pub const RECENT: usize = 31;

/// The least lead over the stream's median that counts as a jump. Real
/// logs pause (a service quiet for an hour, a batch job overnight); the
/// Loghub samples pause for 15 to 50 minutes. A lead below this is let
/// through: it can delay at most this much event time.
pub const MIN_STREAM_LEAD_MS: i64 = 6 * 3_600_000;

/// Consecutive records ahead of the stream, agreeing with each other, that
/// confirm a jump: a stream that moved on (a pause, a second file, a quiet
/// night) says so with every record, a broken clock in one record does not.
pub const CONFIRM: usize = 3;

/// Times needed before the stream check applies (the clock check always
/// does): fewer say nothing about the stream's pace.
const MIN_RECENT: usize = 8;

/// Why a time was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ahead {
    /// Ahead of the wall clock by this many milliseconds.
    OfClock(i64),
    /// Ahead of the median of recent event times by this many milliseconds.
    OfStream(i64),
}

/// The future-timestamp check; one per engine.
#[derive(Clone, Debug)]
pub struct FutureGuard {
    grace_ms: i64,
    recent: VecDeque<EventTime>,
    /// Median of `recent` and the allowed lead over it, recomputed when a
    /// time looks suspicious and every few records (they only need to be
    /// roughly current).
    median: Option<EventTime>,
    lead: i64,
    since_median: usize,
    /// Consecutive times ahead of the stream that agree with each other
    /// (within the lead): [`CONFIRM`] of them are a jump, not an outlier.
    pending: Vec<EventTime>,
    warned: bool,
}

impl FutureGuard {
    pub fn new(grace_ms: i64) -> FutureGuard {
        FutureGuard {
            grace_ms: grace_ms.max(0),
            recent: VecDeque::with_capacity(RECENT),
            median: None,
            lead: 0,
            since_median: 0,
            pending: Vec::new(),
            warned: false,
        }
    }

    /// `Ok` when `t` may move the watermark, given the wall clock `now_ms`.
    pub fn check(&mut self, t: EventTime, now_ms: i64) -> Result<(), Ahead> {
        let ahead = t.saturating_sub(now_ms);
        if ahead > self.grace_ms {
            // Not remembered: no stream can confirm a time after now.
            self.warn(t, Ahead::OfClock(ahead));
            return Err(Ahead::OfClock(ahead));
        }
        self.remember(t);
        if self.recent.len() < MIN_RECENT {
            // Too few times to tell a sparse stream from an outlier.
            return Ok(());
        }
        let m = match self.median {
            Some(m) if t.saturating_sub(m) <= self.lead && self.since_median < RECENT / 4 => m,
            _ => self.recompute(),
        };
        let ahead = t.saturating_sub(m);
        if ahead <= self.lead {
            self.pending.clear();
            return Ok(());
        }
        let agrees = self
            .pending
            .last()
            .is_some_and(|&p| t.abs_diff(p) <= self.lead.unsigned_abs());
        if !agrees {
            self.pending.clear();
        }
        self.pending.push(t);
        if self.pending.len() >= CONFIRM {
            // A jump: the stream's recent times are now the new ones.
            self.recent.clear();
            self.recent.extend(self.pending.drain(..));
            self.median = None;
            return Ok(());
        }
        self.warn(t, Ahead::OfStream(ahead));
        Err(Ahead::OfStream(ahead))
    }

    fn remember(&mut self, t: EventTime) {
        if self.recent.len() == RECENT {
            self.recent.pop_front();
        }
        self.recent.push_back(t);
        self.since_median += 1;
    }

    /// The median of the times before the newest one (the newest is what is
    /// being judged), or the newest when it is the only one; and the lead
    /// allowed over it: the grace plus twice the interquartile range. The
    /// median of a steady stream lags its newest record by half the ring
    /// (15 minutes at one record a minute, 15 hours at one an hour); twice
    /// the IQR covers that lag whatever the rate, and, unlike the full
    /// span, is not widened by a few outliers in the ring.
    fn recompute(&mut self) -> EventTime {
        let mut v: Vec<EventTime> = self.recent.iter().copied().collect();
        if v.len() > 1 {
            v.pop();
        }
        v.sort_unstable();
        let q = |f: usize| v[(v.len() - 1) * f / 4];
        let (q1, m, q3) = (q(1), q(2), q(3));
        self.median = Some(m);
        self.lead = self
            .grace_ms
            .saturating_add(q3.saturating_sub(q1).saturating_mul(2))
            .max(MIN_STREAM_LEAD_MS);
        self.since_median = 0;
        m
    }

    fn warn(&mut self, t: EventTime, why: Ahead) {
        if std::mem::replace(&mut self.warned, true) {
            return;
        }
        let when = chrono::DateTime::from_timestamp_millis(t)
            .map(|d| d.to_rfc3339())
            .unwrap_or_else(|| t.to_string());
        match why {
            Ahead::OfClock(ms) => tracing::warn!(
                record_time = %when,
                "a record is dated {}s after this machine's clock: skipped and counted as \
                 bad_timestamp, it does not move event time (window.future_grace); further \
                 ones are only counted",
                ms / 1000
            ),
            Ahead::OfStream(ms) => tracing::warn!(
                record_time = %when,
                "a record is dated {}s ahead of the stream's recent event times: counted at \
                 the current event time (faultline_held_records_total) until later records \
                 confirm the jump; further ones are only counted",
                ms / 1000
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;
    const NOW: i64 = 1_800_000_000_000;

    #[test]
    fn a_time_far_after_the_wall_clock_is_refused_even_first() {
        let mut g = FutureGuard::new(10 * MIN);
        assert_eq!(
            g.check(253_402_300_799_000, NOW),
            Err(Ahead::OfClock(253_402_300_799_000 - NOW))
        );
        assert!(g.check(NOW + 5 * MIN, NOW).is_ok(), "within the grace");
    }

    #[test]
    fn old_data_is_never_refused() {
        let mut g = FutureGuard::new(10 * MIN);
        let y2005 = 1_104_537_600_000;
        for k in 0..100 {
            assert!(g.check(y2005 + k * MIN, NOW).is_ok());
        }
        // Older than everything so far, too.
        assert!(g.check(y2005 - 365 * 24 * 60 * MIN, NOW).is_ok());
    }

    #[test]
    fn a_sparse_stream_is_not_mistaken_for_jumps() {
        let mut g = FutureGuard::new(10 * MIN);
        let base = NOW - 400 * 24 * 60 * MIN;
        for k in 0..200 {
            assert!(g.check(base + k * 60 * MIN, NOW).is_ok(), "record {k}");
        }
    }

    #[test]
    fn a_few_outliers_do_not_open_the_door_to_the_next() {
        let mut g = FutureGuard::new(10 * MIN);
        let base = NOW - 400 * 24 * 60 * MIN;
        let far = base + 100 * 24 * 60 * MIN;
        for k in 0..200 {
            let ok = g.check(base + k * 1000, NOW).is_ok();
            assert!(ok, "record {k}");
            if k % 10 == 0 && k > 0 {
                assert!(g.check(far + k, NOW).is_err(), "outlier after {k}");
            }
        }
    }

    #[test]
    fn one_outlier_ahead_of_the_stream_is_refused() {
        let mut g = FutureGuard::new(10 * MIN);
        let base = NOW - 400 * 24 * 60 * MIN;
        for k in 0..50 {
            assert!(g.check(base + k * 1000, NOW).is_ok());
        }
        assert!(matches!(
            g.check(base + 30 * 24 * 60 * MIN, NOW),
            Err(Ahead::OfStream(_))
        ));
        assert!(g.check(base + 51_000, NOW).is_ok());
    }

    #[test]
    fn a_real_jump_is_confirmed_by_three_agreeing_records() {
        let mut g = FutureGuard::new(10 * MIN);
        let base = NOW - 10 * 24 * 60 * MIN;
        for k in 0..RECENT as i64 {
            assert!(g.check(base + k * 1000, NOW).is_ok());
        }
        let later = base + 24 * 60 * MIN;
        let refused = (0..RECENT as i64)
            .filter(|k| g.check(later + k * 1000, NOW).is_err())
            .count();
        assert_eq!(refused, CONFIRM - 1);
        assert!(g.check(later + 100_000, NOW).is_ok());
    }
}
