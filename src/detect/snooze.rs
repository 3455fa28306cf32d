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

/// Carries snoozes over the merges the baseline made since the last call
/// ([`Baseline::muted_merges`]): a snoozed type folded into another id (a
/// learner merge, a layout's re-key, an operator's merge) keeps its snooze
/// under the new id, so it still ends, and still reopens the alert, when
/// due. The merged type's own mute wins: its snooze stays, and a type muted
/// without an end stays muted (the source's snooze is dropped).
pub fn follow_merges(snoozes: &mut Snoozes, b: &mut Baseline) {
    for m in std::mem::take(&mut b.muted_merges) {
        let into = b.canonical(m.into);
        let Some(mut s) = snoozes.remove(&m.from) else {
            continue;
        };
        if m.into_muted || snoozes.contains_key(&into) {
            continue;
        }
        // Counted from the source's count; the merged type's count now
        // includes the target's too.
        if let Some(n) = s.until_count.as_mut() {
            *n = n.saturating_add(m.into_count);
        }
        snoozes.insert(into, s);
    }
}

/// Re-keys snoozes stored under an id that is now an alias (a state
/// written before snoozes followed merges): each goes to the type its id
/// resolves to, unless that type has its own.
pub fn follow_aliases(snoozes: &mut Snoozes, b: &Baseline) {
    if b.aliases.is_empty() {
        return;
    }
    let stale: Vec<Fingerprint> = snoozes
        .keys()
        .filter(|&&fp| b.canonical(fp) != fp)
        .copied()
        .collect();
    for fp in stale {
        if let Some(s) = snoozes.remove(&fp) {
            snoozes.entry(b.canonical(fp)).or_insert(s);
        }
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

    /// A second type of the same message, seen `n` times.
    fn known(b: &mut Baseline, n: i64) -> Fingerprint {
        let typed = crate::fingerprint::Typed {
            fingerprint: Fingerprint(0x9),
            template: "disk full on <*>".into(),
            ..Default::default()
        };
        for i in 0..n {
            b.observe(&typed, &Record::default(), T + i, Origin::Live);
        }
        typed.fingerprint
    }

    /// Folds `from` into `into` as a learner merge or a layout's re-key does.
    fn fold(b: &mut Baseline, from: Fingerprint, into: Fingerprint) {
        b.merge(&crate::fingerprint::Typed {
            fingerprint: into,
            template: "disk full on <*>".into(),
            merged: vec![from],
            ..Default::default()
        });
    }

    #[test]
    fn a_snoozed_type_re_keyed_to_a_new_id_keeps_its_snooze_and_ends_it_on_time() {
        let (mut b, fp) = baseline(Origin::Live);
        let mut snoozes = Snoozes::new();
        snoozes.insert(fp, Snooze::new(None, Some(2), 1, Some(T), T));
        let new = Fingerprint(0x9);
        fold(&mut b, fp, new);
        follow_merges(&mut snoozes, &mut b);
        assert!(b.muted_merges.is_empty(), "drained");
        assert!(!snoozes.contains_key(&fp));
        assert!(b.get(new).unwrap().muted, "the mute moved with the type");
        assert!(occur(&mut b, &mut snoozes, new, T + 1).is_empty());
        assert!(occur(&mut b, &mut snoozes, new, T + 2).is_empty());
        let out = occur(&mut b, &mut snoozes, new, T + 3);
        assert_eq!(
            out.len(),
            1,
            "the third occurrence reopens, as before the re-key"
        );
        assert_eq!(out[0].fingerprint, Some(new));
        assert!(!b.get(new).unwrap().muted);
    }

    #[test]
    fn a_snoozed_type_folded_into_a_known_one_mutes_it_counting_from_the_source() {
        let (mut b, fp) = baseline(Origin::Live);
        let into = known(&mut b, 10);
        b.get_mut(fp).unwrap().resolved_at = Some(T);
        let mut snoozes = Snoozes::new();
        snoozes.insert(fp, Snooze::new(None, Some(2), 1, Some(T), T));
        fold(&mut b, fp, into);
        follow_merges(&mut snoozes, &mut b);
        let t = b.get(into).unwrap();
        assert!(t.muted, "muted if any part was");
        assert_eq!(t.resolved_at, Some(T), "resolved at the latest resolution");
        assert_eq!(t.count, 11);
        assert!(occur(&mut b, &mut snoozes, into, T + 20).is_empty());
        assert!(occur(&mut b, &mut snoozes, into, T + 21).is_empty());
        assert!(
            b.get(into).unwrap().muted,
            "two occurrences still pass muted"
        );
        assert_eq!(occur(&mut b, &mut snoozes, into, T + 22).len(), 1);
    }

    #[test]
    fn a_type_muted_without_an_end_stays_muted_when_a_snoozed_type_folds_into_it() {
        let (mut b, fp) = baseline(Origin::Live);
        let into = known(&mut b, 1);
        b.get_mut(into).unwrap().muted = true;
        let mut snoozes = Snoozes::new();
        snoozes.insert(fp, Snooze::new(None, Some(1), 1, Some(T), T));
        fold(&mut b, fp, into);
        follow_merges(&mut snoozes, &mut b);
        assert!(
            snoozes.is_empty(),
            "the source's snooze would unmute the target"
        );
        for i in 1..5 {
            assert!(occur(&mut b, &mut snoozes, into, T + i).is_empty());
        }
        assert!(b.get(into).unwrap().muted);
    }

    #[test]
    fn a_snooze_stored_under_an_alias_follows_it_to_its_type() {
        let (mut b, fp) = baseline(Origin::Live);
        let new = Fingerprint(0x9);
        fold(&mut b, fp, new);
        b.muted_merges.clear(); // as an older faultline, which did not record them
        let mut snoozes = Snoozes::new();
        snoozes.insert(fp, Snooze::new(None, Some(2), 1, Some(T), T));
        follow_aliases(&mut snoozes, &b);
        assert_eq!(snoozes.keys().copied().collect::<Vec<_>>(), vec![new]);
    }
}
