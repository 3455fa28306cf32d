//! Sparse, bounded time series: counts per minute and per hour.
//!
//! The 60-bucket window ring answers "how many in the last few minutes";
//! releases need more: traffic per version over a canary window, and a
//! before/after picture over hours for the report. A [`Series`] stores only
//! the units that had counts, newest last, and drops units older than what it
//! keeps, so its size is bounded by the retention whatever the volume. In
//! steady state (same minute as the previous point) adding is two compares
//! and an addition — no allocation, which the per-line path relies on.

use std::collections::VecDeque;
use std::ops::AddAssign;

use litemap::LiteMap;
use serde::{Deserialize, Serialize};

use crate::record::EventTime;

pub const MINUTE_MS: i64 = 60_000;
pub const HOUR_MS: i64 = 3_600_000;
/// Minutes kept per series: the longest canary window that can be judged.
pub const MINUTES_KEPT: i64 = 180;
/// Hours kept per series: two weeks of before/after for reports.
pub const HOURS_KEPT: i64 = 14 * 24;

/// Counts per unit (minute or hour number since the epoch), sparse.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Series<V> {
    points: VecDeque<(i64, V)>,
}

impl<V> Default for Series<V> {
    fn default() -> Self {
        Series {
            points: VecDeque::new(),
        }
    }
}

impl<V: Copy + Default + AddAssign> Series<V> {
    /// Adds `v` to unit `t`, keeping only the `keep` newest units. Returns
    /// false (and counts nothing) when `t` is older than what is kept.
    pub fn add(&mut self, t: i64, v: V, keep: i64) -> bool {
        if let Some(last) = self.points.back_mut() {
            if last.0 == t {
                last.1 += v;
                return true;
            }
            if last.0 > t {
                // Out of order: rare, so a search and maybe an insert is fine.
                if t <= last.0 - keep {
                    return false;
                }
                match self.points.binary_search_by_key(&t, |p| p.0) {
                    Ok(i) => self.points[i].1 += v,
                    Err(i) => self.points.insert(i, (t, v)),
                }
                return true;
            }
        }
        if self.points.capacity() == 0 {
            // Most types are seen in a minute or two and never again: one
            // point, not the four a first push would reserve (a million
            // types keep three series each).
            self.points.reserve_exact(1);
        }
        self.points.push_back((t, v));
        while self.points.front().is_some_and(|f| f.0 <= t - keep) {
            self.points.pop_front();
        }
        true
    }

    /// Sum over units `from..=to`.
    pub fn sum(&self, from: i64, to: i64) -> V {
        let mut total = V::default();
        for (t, v) in self.points.iter().rev() {
            if *t < from {
                break;
            }
            if *t <= to {
                total += *v;
            }
        }
        total
    }

    /// The oldest unit still kept.
    pub fn first(&self) -> Option<i64> {
        self.points.front().map(|p| p.0)
    }

    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (i64, V)> + '_ {
        self.points.iter().copied()
    }

    /// Adds every point of `other` (type merges).
    pub fn absorb(&mut self, other: &Series<V>, keep: i64) {
        for (t, v) in other.iter() {
            self.add(t, v, keep);
        }
    }
}

/// Lines and error lines in one unit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Traffic {
    pub lines: u64,
    pub errors: u64,
}

impl AddAssign for Traffic {
    fn add_assign(&mut self, o: Traffic) {
        self.lines += o.lines;
        self.errors += o.errors;
    }
}

impl Traffic {
    /// Error lines / lines (0 without traffic).
    pub fn error_rate(&self) -> f64 {
        if self.lines == 0 {
            0.0
        } else {
            self.errors as f64 / self.lines as f64
        }
    }
}

/// A minute series backed by an hourly one: exact recent history, coarse
/// long history, both bounded.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Timeline<V> {
    pub minutes: Series<V>,
    pub hours: Series<V>,
    /// First minute ever counted: until the minutes reach back past it,
    /// nothing has been dropped and they are complete. Always written (the
    /// state store's per-type encoding is positional).
    #[serde(default)]
    pub first_minute: Option<i64>,
}

impl<V: Copy + Default + AddAssign> Timeline<V> {
    pub fn add(&mut self, time: EventTime, v: V) {
        let minute = time.div_euclid(MINUTE_MS);
        if self.first_minute.is_none_or(|f| minute < f) {
            self.first_minute = Some(minute);
        }
        self.minutes.add(minute, v, MINUTES_KEPT);
        self.hours.add(time.div_euclid(HOUR_MS), v, HOURS_KEPT);
    }

    /// Whether the minute series still holds everything from `minute` on.
    fn minutes_cover(&self, minute: i64) -> bool {
        let (Some(newest), Some(first)) = (self.minutes.iter().last(), self.first_minute) else {
            return true;
        };
        let kept_from = newest.0 - MINUTES_KEPT + 1;
        minute >= kept_from || first >= kept_from
    }

    /// Sum over event times `[from, to)`: by minute while the minutes still
    /// cover `from`, otherwise by whole hours (the hours `from` and `to` fall
    /// in count whole).
    pub fn range(&self, from: EventTime, to: EventTime) -> V {
        if to <= from {
            return V::default();
        }
        let (fm, tm) = (from.div_euclid(MINUTE_MS), (to - 1).div_euclid(MINUTE_MS));
        if self.minutes_cover(fm) {
            self.minutes.sum(fm, tm)
        } else {
            self.hours
                .sum(from.div_euclid(HOUR_MS), (to - 1).div_euclid(HOUR_MS))
        }
    }

    pub fn is_empty(&self) -> bool {
        self.hours.is_empty()
    }

    pub fn absorb(&mut self, other: &Timeline<V>) {
        self.first_minute = match (self.first_minute, other.first_minute) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.minutes.absorb(&other.minutes, MINUTES_KEPT);
        self.hours.absorb(&other.hours, HOURS_KEPT);
    }
}

/// Inserts into a per-type map that is usually left with one entry (one
/// version): its first allocation holds one, not the four a first push
/// reserves — per type, over a million types.
pub fn insert_sized_for_one<V>(map: &mut LiteMap<String, V>, key: String, value: V) {
    if map.is_empty() {
        *map = LiteMap::with_capacity(1);
    }
    map.insert(key, value);
}

/// Services, and versions per service or per type, kept apart at most:
/// label values beyond these (a version string per build, a service name
/// per pod) are counted together under [`OTHER`], so memory stays bounded
/// whatever the input's labels. Real fleets run a handful of versions at
/// once and far fewer services than this.
pub const MAX_SERVICES: usize = 1_000;
pub const MAX_VERSIONS: usize = 64;
/// The bucket of the label values beyond [`MAX_SERVICES`] / [`MAX_VERSIONS`].
pub const OTHER: &str = "(other)";

/// `key`, or [`OTHER`] when a map already holding `len` keys (of which
/// `key` is not one, `known` false) is full at `max`.
pub fn capped(key: &str, known: bool, len: usize, max: usize) -> &str {
    if known || len < max { key } else { OTHER }
}

/// One error type's occurrences: per version by minute (canary windows),
/// all versions by minute and hour (reports).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TypeSeries {
    /// Known version → error lines per minute. Lines without a version are
    /// only in `total`: no canary comparison can name them, and a copy of
    /// `total.minutes` per type is memory for nothing.
    pub by_version: LiteMap<String, Series<u64>>,
    pub total: Timeline<u64>,
}

impl TypeSeries {
    pub fn add(&mut self, version: Option<&str>, time: EventTime) {
        let minute = time.div_euclid(MINUTE_MS);
        match version.filter(|v| !v.is_empty()) {
            Some(v) => self.add_in_version(v, minute),
            None => self.retire_silent_versions(minute),
        }
        self.total.add(time, 1);
    }

    fn add_in_version(&mut self, v: &str, minute: i64) {
        let known = self.by_version.contains_key(v);
        let v = capped(v, known, self.by_version.len(), MAX_VERSIONS);
        match self.by_version.get_mut(v) {
            Some(s) => {
                s.add(minute, 1, MINUTES_KEPT);
            }
            None => {
                let mut s = Series::default();
                s.add(minute, 1, MINUTES_KEPT);
                insert_sized_for_one(&mut self.by_version, v.to_string(), s);
            }
        }
        self.retire_silent_versions(minute);
    }

    /// Versions that fell silent for the whole retention leave, so the map
    /// stays as small as the versions actually running.
    fn retire_silent_versions(&mut self, minute: i64) {
        if self.by_version.len() > 1 {
            self.by_version
                .retain(|_, s| s.iter().last().is_some_and(|p| p.0 > minute - MINUTES_KEPT));
        }
    }

    /// Error lines of `version` in minutes `from..=to`.
    pub fn in_version(&self, version: &str, from: i64, to: i64) -> u64 {
        self.by_version.get(version).map_or(0, |s| s.sum(from, to))
    }

    pub fn is_empty(&self) -> bool {
        self.total.is_empty()
    }

    pub fn absorb(&mut self, other: &TypeSeries) {
        for (v, s) in &other.by_version {
            self.by_version
                .entry(v.clone())
                .or_default()
                .absorb(s, MINUTES_KEPT);
        }
        self.total.absorb(&other.total);
    }
}

/// Lines and error lines per (service, version), for error rates.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RateCounts {
    pub lines: u64,
    pub errors: u64,
    /// Event time span the version was seen over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_seen: Option<EventTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<EventTime>,
    /// The same counts over time (error-rate windows, canary, reports).
    #[serde(default)]
    pub timeline: Timeline<Traffic>,
}

impl RateCounts {
    /// Counts `lines` lines and `errors` error lines at `time` (if known).
    pub fn count(&mut self, time: Option<EventTime>, lines: u64, errors: u64) {
        self.lines += lines;
        self.errors += errors;
        if let Some(t) = time {
            self.first_seen = Some(self.first_seen.map_or(t, |f| f.min(t)));
            self.last_seen = Some(self.last_seen.map_or(t, |l| l.max(t)));
            self.timeline.add(t, Traffic { lines, errors });
        }
    }
}

/// service → version → counts, as the state keeps them.
pub type Rates = std::collections::BTreeMap<String, std::collections::BTreeMap<String, RateCounts>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_without_a_version_count_in_the_total_only() {
        let mut t = TypeSeries::default();
        t.add(None, 60_000);
        t.add(Some("2.0.0"), 60_000);
        assert_eq!(t.total.range(0, 120_000), 2);
        assert_eq!(t.in_version("2.0.0", 0, 2), 1);
        assert_eq!(t.by_version.len(), 1, "no entry for the unknown version");
    }

    #[test]
    fn counts_in_the_same_unit_add_up_and_old_units_are_dropped() {
        let mut s: Series<u64> = Series::default();
        s.add(10, 1, 5);
        s.add(10, 2, 5);
        s.add(12, 1, 5);
        s.add(16, 1, 5);
        assert_eq!(s.first(), Some(12), "unit 10 left the retention");
        assert_eq!(s.sum(0, 100), 2);
    }

    #[test]
    fn late_points_land_in_their_own_unit_unless_too_old() {
        let mut s: Series<u64> = Series::default();
        s.add(10, 1, 5);
        s.add(14, 1, 5);
        assert!(s.add(12, 3, 5));
        assert!(!s.add(9, 1, 5));
        assert_eq!(s.sum(12, 12), 3);
        assert_eq!(s.iter().map(|p| p.0).collect::<Vec<_>>(), [10, 12, 14]);
    }

    #[test]
    fn a_timeline_answers_by_minute_when_it_can() {
        let mut t: Timeline<Traffic> = Timeline::default();
        t.add(
            0,
            Traffic {
                lines: 10,
                errors: 1,
            },
        );
        t.add(
            90_000,
            Traffic {
                lines: 10,
                errors: 0,
            },
        );
        assert_eq!(t.range(60_000, 120_000).lines, 10);
        assert_eq!(
            t.range(0, 120_000),
            Traffic {
                lines: 20,
                errors: 1
            }
        );
    }

    #[test]
    fn a_timeline_falls_back_to_whole_hours_once_minutes_were_dropped() {
        let mut t: Timeline<u64> = Timeline::default();
        t.add(0, 1);
        t.add(30 * MINUTE_MS, 1);
        t.add(5 * HOUR_MS, 1);
        // Minute 0 and 30 left the minutes; the first hour still has both.
        assert_eq!(t.range(0, 10 * MINUTE_MS), 2);
        assert_eq!(t.range(5 * HOUR_MS, 5 * HOUR_MS + 1), 1);
    }
}
