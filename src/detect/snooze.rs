//! Snooze: a mute that ends by itself, after a time or after a number of
//! further occurrences (`POST /api/v1/types/{fp}/mute` with `until` or
//! `count`, `faultline types mute --until/--count`).
//!
//! A snoozed type is muted (`ErrorType::muted`, so every detector already
//! ignores it) and has an entry in [`Snoozes`], which lives in the state and
//! is saved with it. The entry ends the mute:
//! - `until`: when event time reaches it (what a replay of the same logs
//!   does, whenever it runs); under `run` also when the wall clock does
//!   ([`expire`] with `wall`), because a quiet stream moves no event time
//!   and the operator who said "2 h" meant two hours of their clock (a
//!   moment already past on the wall clock is judged in event time only:
//!   it names a point of a stream that runs behind the clock);
//! - `count`: at the occurrence after the `count` more the operator let
//!   pass (counted on the type, so aliases and merges count too).
//!
//! When it recurs after the snooze, the type's `novel` alert goes out again
//! ([`reopen`]): with the same labels as the first one (so Alertmanager
//! shows that alert firing again, and a silence on it still applies) but a
//! new id (the snooze's end), so sinks that deduplicate by id keep both.
//! Known types (baseline origin) get no such alert: their surges alert as
//! before once unmuted.
//!
//! The map holds operator marks only (one entry per snoozed type, removed
//! when the mute ends by hand, when the type recurs after its snooze, or
//! when the type is merged away), so it stays as small as what people did.

use crate::alert::{Alert, Kind, alert_id};
pub use crate::baseline::snooze::{Snooze, Snoozes, Until};
use crate::baseline::{Baseline, Origin};
use crate::config::SampleMode;
use crate::fingerprint::Fingerprint;
use crate::record::{EventTime, Record};

/// Ends `fp`'s snooze at `at`: unmutes the type; a known type's entry goes
/// at once (nothing to reopen), a new type's waits for its next occurrence.
fn end(snoozes: &mut Snoozes, b: &mut Baseline, fp: Fingerprint, at: EventTime) {
    let Some(t) = b.get_mut(fp) else {
        snoozes.remove(&fp);
        return;
    };
    t.muted = false;
    if t.origin == Origin::Baseline {
        snoozes.remove(&fp);
    } else if let Some(s) = snoozes.get_mut(&fp) {
        s.ended_at = Some(at);
    }
}

/// Ends the snoozes whose time has come: by event time `time`, and under
/// `run` by the wall clock `wall`. Returns whether any ended (the state
/// changed and wants saving).
pub fn expire(
    snoozes: &mut Snoozes,
    b: &mut Baseline,
    time: Option<EventTime>,
    wall: Option<i64>,
) -> bool {
    let due: Vec<Fingerprint> = snoozes
        .iter()
        .filter(|(_, s)| s.running())
        .filter(|(_, s)| {
            let by_time = matches!((s.until, time), (Some(u), Some(t)) if t >= u);
            let by_wall = matches!((s.wall_until, wall), (Some(u), Some(w)) if w >= u);
            by_time || by_wall
        })
        .map(|(fp, _)| *fp)
        .collect();
    for fp in &due {
        let at = time.or(b.get(*fp).map(|t| t.last_seen)).unwrap_or(0);
        end(snoozes, b, *fp, at);
    }
    !due.is_empty()
}

/// One occurrence of `fp` at `time`, already counted in `b`, before the
/// detectors see it: ends its snooze when this occurrence is past it.
pub fn on_occurrence(snoozes: &mut Snoozes, b: &mut Baseline, fp: Fingerprint, time: EventTime) {
    let Some(s) = snoozes.get(&fp).filter(|s| s.running()) else {
        return;
    };
    let count = b.get(fp).map_or(0, |t| t.count);
    let past_count = s.until_count.is_some_and(|n| count > n);
    let past_time = s.until.is_some_and(|u| time >= u);
    if past_count || past_time {
        end(snoozes, b, fp, time);
    }
}

/// After the detectors saw an occurrence of `fp`: if its snooze ended
/// before, sends its novel alert again (unless one went out for this very
/// occurrence) and forgets the snooze.
#[allow(clippy::too_many_arguments)]
pub fn reopen(
    snoozes: &mut Snoozes,
    b: &Baseline,
    fp: Fingerprint,
    rec: &Record,
    time: EventTime,
    now_ms: i64,
    samples: SampleMode,
    out: &mut Vec<Alert>,
) {
    let Some(ended) = snoozes.get(&fp).and_then(|s| s.ended_at) else {
        return;
    };
    let Some(t) = b.get(fp) else {
        snoozes.remove(&fp);
        return;
    };
    if t.muted {
        // Muted again by hand: the snooze is over, the mute is not.
        snoozes.remove(&fp);
        return;
    }
    snoozes.remove(&fp);
    let already = out
        .iter()
        .any(|a| a.kind == Kind::Novel && a.fingerprint == Some(t.fingerprint));
    if !already {
        let mut a = super::novel_alert(t, rec, time, now_ms, samples);
        a.id = alert_id(Kind::Novel, &t.fingerprint.to_string(), ended);
        out.push(a);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, Dur};

    const T: i64 = 1_793_613_600_000;

    fn baseline(origin: Origin) -> (Baseline, Fingerprint) {
        let mut b = Baseline::new(&Config::default(), 0);
        let typed = crate::fingerprint::Typed {
            fingerprint: Fingerprint(0x5),
            template: "disk full on <*>".into(),
            ..Default::default()
        };
        let rec = Record {
            message: "disk full on /var".into(),
            ..Default::default()
        };
        b.observe(&typed, &rec, T, origin);
        b.get_mut(Fingerprint(0x5)).unwrap().muted = true;
        (b, Fingerprint(0x5))
    }

    fn occur(b: &mut Baseline, snoozes: &mut Snoozes, fp: Fingerprint, t: i64) -> Vec<Alert> {
        b.get_mut(fp).unwrap().count += 1;
        on_occurrence(snoozes, b, fp, t);
        let mut out = Vec::new();
        let rec = Record {
            message: "disk full on /tmp".into(),
            ..Default::default()
        };
        reopen(snoozes, b, fp, &rec, t, T, SampleMode::Raw, &mut out);
        out
    }

    #[test]
    fn until_takes_a_time_or_a_duration_from_now() {
        assert_eq!("2026-11-02T10:00:00Z".parse::<Until>(), Ok(Until::At(T)));
        assert_eq!("2h".parse::<Until>(), Ok(Until::For(Dur::secs(7200))));
        assert!("soon".parse::<Until>().unwrap_err().contains("RFC 3339"));
        let s = Snooze::new("30m".parse().ok(), None, 4, Some(T), T + 5_000_000);
        assert_eq!(
            s.until,
            Some(T + 1_800_000),
            "event time from the watermark"
        );
        assert_eq!(
            s.wall_until,
            Some(T + 5_000_000 + 1_800_000),
            "wall clock from now"
        );
        let at = |now| Snooze::new(Some(Until::At(T)), None, 4, Some(T - 1), now);
        assert_eq!(
            at(T - 1).wall_until,
            Some(T),
            "ahead of the wall clock: both"
        );
        assert_eq!(at(T + 1).wall_until, None, "behind it: event time only");
    }

    #[test]
    fn a_count_snooze_lets_n_occurrences_pass_and_the_next_reopens_the_alert() {
        let (mut b, fp) = baseline(Origin::Live);
        let mut snoozes = Snoozes::new();
        snoozes.insert(fp, Snooze::new(None, Some(2), 1, Some(T), T));
        assert!(occur(&mut b, &mut snoozes, fp, T + 1).is_empty());
        assert!(occur(&mut b, &mut snoozes, fp, T + 2).is_empty());
        assert!(b.get(fp).unwrap().muted, "two more passed muted");
        let out = occur(&mut b, &mut snoozes, fp, T + 3);
        assert!(!b.get(fp).unwrap().muted);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].kind, Kind::Novel);
        assert_ne!(
            out[0].id,
            alert_id(Kind::Novel, &fp.to_string(), 0),
            "a new id, the same labels"
        );
        assert!(snoozes.is_empty(), "forgotten once reopened");
        assert!(occur(&mut b, &mut snoozes, fp, T + 4).is_empty());
    }

    #[test]
    fn a_time_snooze_ends_in_event_time_or_on_the_wall_clock_and_reopens_on_recurrence() {
        let (mut b, fp) = baseline(Origin::Live);
        let mut snoozes = Snoozes::new();
        snoozes.insert(fp, Snooze::new("1h".parse().ok(), None, 1, Some(T), T));
        assert!(!expire(&mut snoozes, &mut b, Some(T + 60_000), None));
        assert!(b.get(fp).unwrap().muted);
        assert!(expire(&mut snoozes, &mut b, Some(T + 3_600_000), None));
        assert!(!b.get(fp).unwrap().muted, "event time reached `until`");
        assert_eq!(snoozes[&fp].ended_at, Some(T + 3_600_000));
        let out = occur(&mut b, &mut snoozes, fp, T + 3_700_000);
        assert_eq!(out.len(), 1, "the recurrence reopens the alert");

        // The wall clock ends it although event time stands still.
        let (mut b, fp) = baseline(Origin::Live);
        let mut snoozes = Snoozes::new();
        snoozes.insert(fp, Snooze::new("1h".parse().ok(), None, 1, Some(T), T));
        assert!(expire(&mut snoozes, &mut b, None, Some(T + 3_600_000)));
        assert!(!b.get(fp).unwrap().muted);
    }

    #[test]
    fn a_known_type_is_unmuted_without_a_novel_alert() {
        let (mut b, fp) = baseline(Origin::Baseline);
        let mut snoozes = Snoozes::new();
        snoozes.insert(fp, Snooze::new(None, Some(0), 1, Some(T), T));
        assert!(occur(&mut b, &mut snoozes, fp, T + 1).is_empty());
        assert!(!b.get(fp).unwrap().muted);
        assert!(snoozes.is_empty());
    }
}
