//! The offset guard both stages put between their consumer and their
//! transactions (issue 15). A stage commits, with its batch, the offset of
//! each partition it read; that commit is only as good as the batch: every
//! record between the offset the batch started from and the offset it
//! commits must have been taken in that batch. So the first message of a
//! partition after an assignment must be where the group's committed
//! offset says the partition stands, and later ones must come after it;
//! any other message is not taken and the partition is sought back, with a
//! warning naming it and both offsets. One comparison per message.
//!
//! A message ahead of the committed offset is not always a skip: a
//! transactional topic leaves a marker after each batch (stage 2's events
//! topic always does, so its committed offset usually names a marker), and
//! read_committed hides aborted records. So a message ahead is refused
//! quietly, the partition sought back, and the first message after the
//! seek decides: the same offset again means nothing readable lay between;
//! an earlier one means the consumer would have skipped records (warned).
//! A first readable record past the committed offset after the seek can
//! also be the topic's retention having deleted records nobody read: the
//! partition's first offset says so (an error naming the range lost).

/// Where the next message of a partition may start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Expect {
    /// Not yet compared with the group's committed offset: the partition
    /// is new since the last assignment (or rewind). The stage resolves it
    /// before it asks [`Guard::judge`].
    Unchecked,
    /// The first message must be at this offset, the group's committed
    /// one. A message before it would be taken twice; one past it may skip
    /// records (see the module's comment).
    Exactly(i64),
    /// The next message must be at or past this offset: after a message
    /// (offsets only grow; a transactional topic leaves gaps for its
    /// markers).
    AtLeast(i64),
    /// Sought back to `to` after a message at `refused`, ahead of it: the
    /// next message says whether anything readable lay between.
    Sought { to: i64, refused: i64 },
}

/// What a stage does with a message ([`Guard::judge`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    Take,
    /// Not taken: the partition is sought to this offset.
    SeekBack(i64),
}

/// One partition's guard, with the names its warnings use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Guard {
    pub(super) expect: Expect,
    /// `stage 1` or `stage 2`.
    stage: &'static str,
    /// What the stage calls the partition's topic (`input`, `events`).
    kind: &'static str,
    /// Messages refused because the consumer handed out one before where
    /// the partition stood, or confirmed to have skipped records (for the
    /// log and the tests).
    pub(super) misplaced: u64,
}

impl Guard {
    pub(super) fn new(stage: &'static str, kind: &'static str) -> Guard {
        Guard {
            expect: Expect::Unchecked,
            stage,
            kind,
            misplaced: 0,
        }
    }

    /// The verdict on the message at `off` of partition `name`. `first`
    /// gives the partition's first offset (its low watermark), asked only
    /// when a seek back landed past where the partition stood.
    pub(super) fn judge(
        &mut self,
        name: &str,
        off: i64,
        first: impl FnOnce() -> Option<i64>,
    ) -> Verdict {
        let (stage, kind) = (self.stage, self.kind);
        let to = match self.expect {
            Expect::Unchecked => off,
            Expect::Exactly(e) if off == e => off,
            Expect::AtLeast(e) if off >= e => off,
            Expect::Exactly(e) if off > e => {
                // Perhaps markers or aborted records between: seek back
                // and let the next message say (no warning yet).
                tracing::debug!(stage, partition = %name, offset = off, expected = e, "the first message is past the committed offset; sought back to see what lies between");
                self.expect = Expect::Sought {
                    to: e,
                    refused: off,
                };
                return Verdict::SeekBack(e);
            }
            Expect::Sought { to, refused } if off >= to => {
                if off < refused {
                    let why = format!(
                        "the records between would be skipped: the first readable one is at {off}"
                    );
                    self.misplaced(name, refused, to, &why);
                } else if off > to
                    && let Some(low) = first()
                    && low > to
                {
                    tracing::error!(
                        partition = %name,
                        committed = to,
                        first = low,
                        "{stage}: records {to}..{low} of the {kind} partition were deleted by the \
                         topic's retention before this group read them; they are lost (raise the \
                         topic's `retention.ms` above the longest time this stage may be down); \
                         going on from {low}"
                    );
                }
                off
            }
            Expect::Exactly(e) | Expect::AtLeast(e) | Expect::Sought { to: e, .. } => {
                self.misplaced(name, off, e, "it was taken already");
                if !matches!(self.expect, Expect::Sought { .. }) {
                    self.expect = Expect::AtLeast(e);
                }
                return Verdict::SeekBack(e);
            }
        };
        self.expect = Expect::AtLeast(to + 1);
        Verdict::Take
    }

    /// Counts and warns of a message at `off` not taken because the
    /// partition stands at `to`.
    fn misplaced(&mut self, name: &str, off: i64, to: i64, why: &str) {
        self.misplaced += 1;
        let (stage, kind) = (self.stage, self.kind);
        tracing::warn!(
            partition = %name,
            offset = off,
            expected = to,
            "{stage}: the consumer handed out a message that is not where the {kind} partition \
             stands ({why}); not taken, the partition is sought back to {to}"
        );
    }
}

/// `FAULTLINE_FAILPOINT_<STAGE>_START_SHIFT=K` (tests only): the first
/// message of every partition after each assignment is taken for the
/// consumer starting `K` records away from the committed offset (ahead if
/// positive): the partition is sought there, as a fetcher that started at
/// the wrong offset would stand. The guard must bring it back.
#[derive(Debug, Default)]
pub(super) struct StartShift {
    by: Option<i64>,
    /// Partitions shifted since the last assignment.
    shifted: Vec<String>,
}

impl StartShift {
    pub(super) fn from_env(var: &str) -> StartShift {
        StartShift {
            by: std::env::var(var)
                .ok()
                .and_then(|v| v.parse().ok())
                .filter(|&k: &i64| k != 0),
            shifted: Vec::new(),
        }
    }

    /// Where to seek partition `name`, whose first message after an
    /// assignment is at `off`, if the failpoint shifts it (once per
    /// assignment).
    pub(super) fn shift(&mut self, name: &str, off: i64) -> Option<i64> {
        let k = self.by?;
        if self.shifted.iter().any(|s| s == name) {
            return None;
        }
        self.shifted.push(name.to_string());
        let to = (off + k).max(0);
        tracing::info!(partition = %name, offset = off, to, "failpoint: shifting the partition's start");
        Some(to)
    }

    /// A new assignment: every partition may be shifted again.
    pub(super) fn reset(&mut self) {
        self.shifted.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(expect: Expect) -> Guard {
        let mut g = Guard::new("stage 2", "events");
        g.expect = expect;
        g
    }

    #[test]
    fn messages_where_the_partition_stands_are_taken_and_move_it_on() {
        let mut g = guard(Expect::Exactly(10));
        assert_eq!(g.judge("p", 10, || None), Verdict::Take);
        // A transaction marker at 11: the next readable record is at 12.
        assert_eq!(g.judge("p", 12, || None), Verdict::Take);
        assert_eq!(g.expect, Expect::AtLeast(13));
        assert_eq!(g.misplaced, 0);
    }

    #[test]
    fn a_first_message_past_a_marker_is_sought_back_once_and_then_taken_without_a_warning() {
        let mut g = guard(Expect::Exactly(10));
        assert_eq!(g.judge("p", 11, || None), Verdict::SeekBack(10));
        assert_eq!(g.judge("p", 11, || Some(0)), Verdict::Take);
        assert_eq!(g.misplaced, 0);
        assert_eq!(g.expect, Expect::AtLeast(12));
    }

    #[test]
    fn a_first_message_that_would_skip_records_is_refused_and_counted() {
        let mut g = guard(Expect::Exactly(10));
        assert_eq!(g.judge("p", 23, || None), Verdict::SeekBack(10));
        // After the seek the consumer hands out 10: 10..23 were readable.
        assert_eq!(g.judge("p", 10, || None), Verdict::Take);
        assert_eq!(g.misplaced, 1);
    }

    #[test]
    fn a_message_before_where_the_partition_stands_is_refused() {
        let mut g = guard(Expect::Exactly(10));
        assert_eq!(g.judge("p", 3, || None), Verdict::SeekBack(10));
        assert_eq!(g.expect, Expect::AtLeast(10));
        assert_eq!(g.judge("p", 10, || None), Verdict::Take);
        let mut g = guard(Expect::AtLeast(20));
        assert_eq!(g.judge("p", 19, || None), Verdict::SeekBack(20));
        // Still sought back while waiting to confirm a seek.
        let mut g = guard(Expect::Sought {
            to: 10,
            refused: 15,
        });
        assert_eq!(g.judge("p", 9, || None), Verdict::SeekBack(10));
        assert_eq!(
            g.expect,
            Expect::Sought {
                to: 10,
                refused: 15
            }
        );
        assert_eq!(g.misplaced, 1);
    }

    #[test]
    fn records_deleted_by_retention_are_taken_as_lost_not_sought_forever() {
        let mut g = guard(Expect::Exactly(10));
        assert_eq!(g.judge("p", 50, || None), Verdict::SeekBack(10));
        let mut asked = false;
        let v = g.judge("p", 50, || {
            asked = true;
            Some(50)
        });
        assert_eq!(v, Verdict::Take);
        assert!(
            asked,
            "the first offset is read to tell retention from markers"
        );
        assert_eq!(g.expect, Expect::AtLeast(51));
    }

    #[test]
    fn the_start_shift_failpoint_shifts_each_partition_once_per_assignment() {
        let mut s = StartShift {
            by: Some(13),
            shifted: Vec::new(),
        };
        assert_eq!(s.shift("a", 5), Some(18));
        assert_eq!(s.shift("a", 5), None);
        assert_eq!(
            StartShift {
                by: Some(-13),
                shifted: Vec::new()
            }
            .shift("b", 5),
            Some(0)
        );
        s.reset();
        assert_eq!(s.shift("a", 7), Some(20));
        assert_eq!(StartShift::default().shift("a", 7), None);
    }
}
