//! Judging latency and traffic when event time enters a new minute.
//!
//! * `latency_regression` (canary): over `release.canary_window` of closed
//!   minutes, the newest version of a service against the version with
//!   most lines ([`crate::release::pair`], as the error-rate canary), with
//!   [`latency::canary_test`]: the canary's requests above the stable
//!   quantile's upper confidence bound × `signals.latency_factor` × the
//!   sketches' error margin, against the share a canary no worse would
//!   have, one-sided binomial. Once per (service, canary version).
//! * `latency_regression` (objective): the service's quantile over each
//!   closed minute above `signals.objective_ms` for `signals.objective_for`
//!   in a row (minutes with fewer than 20 timed requests neither count nor
//!   break the run). Once per breach; it re-arms when a minute is back
//!   under.
//! * `traffic_drop` / `traffic_spike`: the service's requests (or lines,
//!   when it logs no request fields) over `signals.traffic_window` against
//!   its own minutes just before (`signals.traffic_baseline`): the count
//!   must be at most `drop_ratio` (at least `spike_ratio`) × the expected
//!   one, improbable under a quasi-Poisson model with the baseline's own
//!   over-dispersion (p < `traffic_p_value`), and — when the state reaches
//!   back a day — beyond the same ratio against the same time yesterday,
//!   and the same time a week earlier (each hour of the window and the
//!   hours on either side, see `days_ago`), so a daily trough or peak, or
//!   a weekday/weekend step, is not a drop or a spike. The expectation
//!   freezes while an episode is open; the episode ends (an
//!   `episode_end`) when the window is back between the two ratios of it.
//!
//! Why this holds on a stranger's services: every threshold is relative to
//! the service's own past and its own noise (dispersion), significance
//! grows with the evidence (a quiet service needs a longer silence than a
//! busy one: silence over a window where 14 dispersion-adjusted requests
//! were expected is p ≈ 1e-6), and the latency test compares versions of
//! the same service over the same minutes, so daily cycles and load affect
//! both sides.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::Signals;
use super::latency::{self, Sketch};
use crate::alert::{
    Alert, AlertTimes, EpisodeInfo, Kind, LatencyComparison, LatencySide, ReleaseFields, Severity,
    TrafficStats, alert_id, rfc3339,
};
use crate::config::Config;
use crate::detect::stats::{dispersion, ln_gamma, poisson_sf};
use crate::release::round3;
use crate::series::{HOUR_MS, MINUTE_MS, Rates};

/// Timed requests a minute needs before its quantile is judged against the
/// objective: below it one slow request is a p95.
const OBJECTIVE_MIN_REQUESTS: u64 = 20;
/// Most over-dispersion credited to a baseline (as the error rate does).
const MAX_DISPERSION: f64 = 100.0;
/// Minutes of history a service needs before its traffic is judged.
const MIN_HISTORY_MINUTES: i64 = 30;

/// What the judgements remember between minutes (in the state).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Watch {
    /// service → the open traffic episode.
    #[serde(default)]
    pub traffic: BTreeMap<String, TrafficEpisode>,
    /// `service\u{1f}canary` of canary latency regressions already alerted.
    #[serde(default)]
    pub latency_fired: BTreeSet<String>,
    /// service → first minute of the current run above the objective, and
    /// whether it has alerted.
    #[serde(default)]
    pub objective: BTreeMap<String, (i64, bool)>,
}

/// An open `traffic_drop` or `traffic_spike`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrafficEpisode {
    pub kind: Kind,
    /// Last minute of the window that opened it.
    pub start_minute: i64,
    /// The expectation frozen when it opened (per minute), and its
    /// dispersion.
    pub per_minute: f64,
    pub dispersion: f64,
    pub opened_by: String,
}

/// P(X ≤ k) for X ~ Poisson(λ).
pub fn poisson_cdf(k: u64, lambda: f64) -> f64 {
    if lambda <= 0.0 {
        return 1.0;
    }
    if (k as f64) >= lambda {
        return 1.0; // not below expectation: never a drop
    }
    // Σ_{i≤k} e^{-λ} λ^i / i!, from the largest term (i = k) downwards.
    let kf = k as f64;
    let ln_last = -lambda + kf * lambda.ln() - ln_gamma(kf + 1.0);
    let (mut term, mut sum) = (1.0, 1.0);
    let mut i = kf;
    while i > 0.0 {
        term *= i / lambda;
        sum += term;
        if term < sum * 1e-16 {
            break;
        }
        i -= 1.0;
    }
    (ln_last + sum.ln()).exp().min(1.0)
}

/// Runs every judgement for the minutes closed when event time entered
/// `minute`.
pub fn on_minute(
    signals: &mut Signals,
    rates: &Rates,
    cfg: &Config,
    minute: i64,
    now_ms: i64,
    out: &mut Vec<Alert>,
) {
    if !cfg.signals.enabled {
        return;
    }
    traffic(signals, rates, cfg, minute, now_ms, out);
    canary_latency(signals, rates, cfg, minute, now_ms, out);
    if cfg.signals.objective_ms > 0.0 {
        objective(signals, cfg, minute, now_ms, out);
    }
}

/// How a service's traffic is counted: requests when it logs request
/// fields (any in the baseline or window), else lines.
fn per_minute_counts(
    signals: &Signals,
    rates: &Rates,
    service: &str,
    from: i64,
    to: i64,
) -> (&'static str, Vec<u64>) {
    // One pass over each version's (at most 180) kept minutes.
    let mut counts = vec![0u64; (to - from + 1).max(0) as usize];
    let add = |counts: &mut Vec<u64>, points: &mut dyn Iterator<Item = (i64, u64)>| {
        for (m, n) in points {
            if (from..=to).contains(&m) {
                counts[(m - from) as usize] += n;
            }
        }
    };
    if let Some(vs) = signals.services.get(service) {
        for v in vs.values() {
            add(&mut counts, &mut v.requests.minutes.iter());
        }
    }
    if counts.iter().any(|&c| c > 0) {
        return ("requests", counts);
    }
    if let Some(vs) = rates.get(service) {
        for r in vs.values() {
            add(
                &mut counts,
                &mut r.timeline.minutes.iter().map(|(m, t)| (m, t.lines)),
            );
        }
    }
    ("lines", counts)
}

const DAY_MS: i64 = 86_400_000;

/// The same window `days` days earlier, from the hourly series: the rate
/// of the hours it falls in, scaled to the window, and the lowest and
/// highest such rate of those hours and the one on either side. `None`
/// when that day is not in the state (the hours reach back 14 days).
///
/// A change must beat the lowest (for a drop) or the highest (for a
/// spike): a usual step that falls inside the window's hour, or an hour
/// earlier or later than it did (a clock change, a schedule that slips),
/// is then no change. Hours are the finest resolution a day or a week
/// back.
fn days_ago(
    signals: &Signals,
    rates: &Rates,
    service: &str,
    measure: &str,
    (from, to): (i64, i64),
    days: i64,
) -> Option<DaysAgo> {
    let (a, b) = (
        from * MINUTE_MS - days * DAY_MS,
        (to + 1) * MINUTE_MS - days * DAY_MS,
    );
    let (ha, hb) = (a.div_euclid(HOUR_MS), (b - 1).div_euclid(HOUR_MS));
    let first_hour = rates
        .get(service)?
        .values()
        .filter_map(|r| r.timeline.hours.first())
        .min()?;
    if first_hour > ha - 2 {
        return None; // the service was not yet (fully) seen then
    }
    let count = |h0: i64, h1: i64| -> Option<u64> {
        Some(if measure == "requests" {
            signals
                .services
                .get(service)?
                .values()
                .map(|v| v.requests.hours.sum(h0, h1))
                .sum()
        } else {
            rates
                .get(service)?
                .values()
                .map(|r| r.timeline.hours.sum(h0, h1).lines)
                .sum()
        })
    };
    let per_window = |n: u64, hours: i64| n as f64 / (hours as f64 * 60.0) * (to - from + 1) as f64;
    let mid = per_window(count(ha, hb)?, hb - ha + 1);
    let (mut lo, mut hi) = (f64::INFINITY, 0.0f64);
    for h in ha - 1..=hb + 1 {
        let r = per_window(count(h, h)?, 1);
        lo = lo.min(r);
        hi = hi.max(r);
    }
    Some(DaysAgo { mid, lo, hi })
}

/// [`days_ago`]'s expectation for the window, and its range over the
/// neighbouring hours.
#[derive(Clone, Copy, Debug)]
struct DaysAgo {
    mid: f64,
    lo: f64,
    hi: f64,
}

fn traffic(
    signals: &mut Signals,
    rates: &Rates,
    cfg: &Config,
    minute: i64,
    now_ms: i64,
    out: &mut Vec<Alert>,
) {
    let g = &cfg.signals;
    let w = (g.traffic_window.as_millis() / MINUTE_MS).max(1);
    let bw = (g.traffic_baseline.as_millis() / MINUTE_MS).max(5);
    let (from, to) = (minute - w, minute - 1);
    let bfrom = from - bw;
    for (service, versions) in rates {
        // The service must have been seen for the whole baseline (a new
        // service has no "usual" yet), and not be the "(other)" bucket.
        let Some(first) = versions.values().filter_map(|r| r.first_seen).min() else {
            continue;
        };
        if service == crate::series::OTHER
            || first.div_euclid(MINUTE_MS) > bfrom
            || bw < MIN_HISTORY_MINUTES
        {
            continue;
        }
        let (measure, counts) = per_minute_counts(signals, rates, service, bfrom, to);
        let (base, win) = counts.split_at(bw as usize);
        let count: u64 = win.iter().sum();
        let open = signals.watch.traffic.get(service).cloned();
        let (per_minute, disp) = match &open {
            Some(ep) => (ep.per_minute, ep.dispersion),
            None => (
                base.iter().sum::<u64>() as f64 / bw as f64,
                dispersion(base.iter().copied(), MAX_DISPERSION),
            ),
        };
        let expected = per_minute * w as f64;
        if let Some(ep) = open {
            // Over when the window is back between the two ratios.
            let back = (count as f64) > g.drop_ratio * expected
                && (count as f64) < g.spike_ratio * expected;
            if back {
                signals.watch.traffic.remove(service);
                let mut a = Alert::new(
                    Kind::EpisodeEnd,
                    alert_id(Kind::EpisodeEnd, &ep.opened_by, to),
                    Severity::Low,
                    service.clone(),
                    format!(
                        "{} {measure} back to {count} in {w} min (expected {expected:.0})",
                        service
                    ),
                    times(
                        (ep.start_minute - w + 1) * MINUTE_MS,
                        (to + 1) * MINUTE_MS,
                        now_ms,
                    ),
                );
                a.release = ReleaseFields {
                    episode: Some(EpisodeInfo {
                        of: ep.kind,
                        opened_by: ep.opened_by,
                        start: rfc3339((ep.start_minute - w + 1) * MINUTE_MS),
                        end: Some(rfc3339((to + 1) * MINUTE_MS)),
                        suppressed: 0,
                    }),
                    ..ReleaseFields::default()
                };
                out.push(a);
            }
            continue;
        }
        if expected <= 0.0 {
            continue;
        }
        let k = (count as f64 / disp).floor() as u64;
        // The same window yesterday and a week ago, when the state holds
        // them: a change must be one against each, so a daily trough and a
        // weekday/weekend step (Saturday's quiet afternoon) are not drops.
        let day = days_ago(signals, rates, service, measure, (from, to), 1);
        let week = days_ago(signals, rates, service, measure, (from, to), 7);
        let n = count as f64;
        // Each reference must see a change too: beyond its ratio and
        // improbable under it (with the same dispersion), so a quiet
        // window in a usually quiet hour is not a drop by chance.
        let refs = [day, week];
        let drop_p = |e: f64| poisson_cdf(k, e / disp);
        let spike_p = |e: f64| poisson_sf((n / disp).ceil() as u64, e / disp);
        let (kind, p) = if n <= g.drop_ratio * expected
            && refs
                .iter()
                .all(|r| r.is_none_or(|d| n <= g.drop_ratio * d.lo))
        {
            let worst = refs
                .iter()
                .flatten()
                .map(|d| drop_p(d.lo))
                .fold(0.0, f64::max);
            (Kind::TrafficDrop, drop_p(expected).max(worst))
        } else if n >= g.spike_ratio * expected
            && refs
                .iter()
                .all(|r| r.is_none_or(|d| n >= g.spike_ratio * d.hi))
        {
            let worst = refs
                .iter()
                .flatten()
                .map(|d| spike_p(d.hi))
                .fold(0.0, f64::max);
            (Kind::TrafficSpike, spike_p(expected).max(worst))
        } else {
            continue;
        };
        if p >= g.traffic_p_value {
            continue;
        }
        let id = alert_id(kind, service, to);
        let ratio = count as f64 / expected;
        let what = match kind {
            Kind::TrafficDrop if count == 0 => {
                format!("{service} went silent: no {measure} in {w} min (expected {expected:.0})")
            }
            Kind::TrafficDrop => format!(
                "{service} {measure} dropped to {count} in {w} min, {:.0} % of the expected {expected:.0}",
                ratio * 100.0
            ),
            _ => format!(
                "{service} {measure} rose to {count} in {w} min, {ratio:.1}× the expected {expected:.0}"
            ),
        };
        let severity = match kind {
            Kind::TrafficDrop if count == 0 => Severity::Critical,
            _ => Severity::High,
        };
        let mut a = Alert::new(
            kind,
            id.clone(),
            severity,
            service.clone(),
            what,
            times(from * MINUTE_MS, (to + 1) * MINUTE_MS - 1, now_ms),
        );
        a.release = ReleaseFields {
            traffic: Some(TrafficStats {
                measure: measure.to_string(),
                window_s: (w * 60) as u64,
                count,
                expected: round3(expected),
                expected_yesterday: day.map(|d| round3(d.mid)),
                expected_last_week: week.map(|d| round3(d.mid)),
                ratio: round3(ratio),
                dispersion: round3(disp),
                p_value: p,
            }),
            ..ReleaseFields::default()
        };
        out.push(a);
        signals.watch.traffic.insert(
            service.clone(),
            TrafficEpisode {
                kind,
                start_minute: to,
                per_minute,
                dispersion: disp,
                opened_by: id,
            },
        );
    }
    // Services no longer in the rates have no episode to keep.
    signals.watch.traffic.retain(|s, _| rates.contains_key(s));
}

fn times(first: i64, event: i64, now_ms: i64) -> AlertTimes {
    AlertTimes {
        first_seen: first,
        event_time: event,
        detected_at: now_ms,
    }
}

fn side(version: &str, s: &Sketch) -> LatencySide {
    let (p50, p95, p99) = super::percentiles(s);
    LatencySide {
        version: version.to_string(),
        requests: s.count(),
        p50_ms: round3(p50),
        p95_ms: round3(p95),
        p99_ms: round3(p99),
    }
}

/// The canary comparison of one service over closed minutes `from..=to`,
/// `None` when either version has no timed request in it.
pub fn compare(
    signals: &Signals,
    cfg: &Config,
    service: &str,
    stable: &str,
    canary: &str,
    (from, to): (i64, i64),
) -> Option<LatencyComparison> {
    let g = &cfg.signals;
    let range = (from * MINUTE_MS, (to + 1) * MINUTE_MS);
    let s = signals.latency(service, stable, range.0, range.1)?;
    let c = signals.latency(service, canary, range.0, range.1)?;
    let q = g.latency_quantile;
    let t = latency::canary_test(&s, &c, q, g.latency_factor, g.relative_accuracy)?;
    let (sq, cq) = (s.quantile(q)?, c.quantile(q)?);
    Some(LatencyComparison {
        test: "canary".into(),
        window_s: ((to - from + 1) * 60) as u64,
        quantile: q,
        stable: Some(side(stable, &s)),
        canary: side(canary, &c),
        threshold_ms: round3(t.threshold_ms),
        above: t.above,
        expected_share: round3(t.expected_share),
        ratio: (sq > 0.0).then(|| round3(cq / sq)),
        p_value: t.p_value,
    })
}

/// Whether a comparison is a regression under the configuration.
pub fn regressed(c: &LatencyComparison, cfg: &Config) -> bool {
    let g = &cfg.signals;
    let enough = c.canary.requests >= g.latency_min_requests
        && c.stable
            .as_ref()
            .is_some_and(|s| s.requests >= g.latency_min_requests);
    enough && c.p_value < g.latency_p_value
}

fn canary_latency(
    signals: &mut Signals,
    rates: &Rates,
    cfg: &Config,
    minute: i64,
    now_ms: i64,
    out: &mut Vec<Alert>,
) {
    let w = (cfg.release.canary_window.as_millis() / MINUTE_MS).max(1);
    let (from, to) = (minute - w, minute - 1);
    for (service, versions) in rates {
        if !signals.services.contains_key(service) {
            continue;
        }
        let Some((stable, canary)) = crate::release::pair(versions, from, to) else {
            continue;
        };
        let key = format!("{service}\u{1f}{canary}");
        if signals.watch.latency_fired.contains(&key) {
            continue;
        }
        let Some(c) = compare(signals, cfg, service, &stable, &canary, (from, to)) else {
            continue;
        };
        tracing::debug!(minute, service = service.as_str(), comparison = ?c, "canary latency");
        if !regressed(&c, cfg) {
            continue;
        }
        let q = (c.quantile * 100.0).round();
        let sp = c.stable.as_ref().map_or(0.0, |s| s.p95_ms);
        let what = format!(
            "p{q} latency {:.1} ms in {canary} vs {:.1} ms in {stable} ({}×, p = {:.1e})",
            quantile_of(&c.canary, c.quantile),
            c.stable.as_ref().map_or(sp, |s| quantile_of(s, c.quantile)),
            c.ratio.map_or("–".to_string(), |r| format!("{r:.2}")),
            c.p_value
        );
        let first = versions
            .get(&canary)
            .and_then(|r| r.first_seen)
            .unwrap_or(from * MINUTE_MS);
        let mut a = Alert::new(
            Kind::LatencyRegression,
            alert_id(Kind::LatencyRegression, &key, 0),
            if c.ratio.is_some_and(|r| r >= 2.0) {
                Severity::High
            } else {
                Severity::Medium
            },
            service.clone(),
            what,
            times(first, (to + 1) * MINUTE_MS - 1, now_ms),
        )
        .with_version(Some(canary.clone()));
        a.release = ReleaseFields {
            latency: Some(c),
            ..ReleaseFields::default()
        };
        out.push(a);
        signals.watch.latency_fired.insert(key);
    }
    // Forget canaries whose service or version is gone (bounded).
    let known = |k: &String| {
        k.split_once('\u{1f}')
            .is_some_and(|(s, v)| signals.services.get(s).is_some_and(|m| m.contains_key(v)))
    };
    let keep: BTreeSet<String> = signals
        .watch
        .latency_fired
        .iter()
        .filter(|k| known(k))
        .cloned()
        .collect();
    signals.watch.latency_fired = keep;
}

/// The side's value at quantile `q` (p50/p95/p99 as stored; others p95).
fn quantile_of(s: &LatencySide, q: f64) -> f64 {
    if (q - 0.5).abs() < 1e-9 {
        s.p50_ms
    } else if (q - 0.99).abs() < 1e-9 {
        s.p99_ms
    } else {
        s.p95_ms
    }
}

fn objective(signals: &mut Signals, cfg: &Config, minute: i64, now_ms: i64, out: &mut Vec<Alert>) {
    let g = &cfg.signals;
    let need = (g.objective_for.as_millis() / MINUTE_MS).max(1);
    let m = minute - 1;
    let services: Vec<String> = signals.services.keys().cloned().collect();
    for service in services {
        let Some(s) = signals.service_latency(&service, m * MINUTE_MS, (m + 1) * MINUTE_MS) else {
            continue;
        };
        if s.count() < OBJECTIVE_MIN_REQUESTS {
            continue;
        }
        let Some(v) = s.quantile(g.latency_quantile) else {
            continue;
        };
        // The sketch's error never makes a breach: the value must exceed
        // the objective by more than it.
        if v <= g.objective_ms * (1.0 + g.relative_accuracy) {
            signals.watch.objective.remove(&service);
            continue;
        }
        let (since, fired) = *signals
            .watch
            .objective
            .entry(service.clone())
            .or_insert((m, false));
        if fired || m - since + 1 < need {
            continue;
        }
        signals
            .watch
            .objective
            .insert(service.clone(), (since, true));
        let Some(run) = signals.service_latency(&service, since * MINUTE_MS, (m + 1) * MINUTE_MS)
        else {
            continue;
        };
        let q = (g.latency_quantile * 100.0).round();
        let mut a = Alert::new(
            Kind::LatencyRegression,
            alert_id(
                Kind::LatencyRegression,
                &format!("{service}\u{1f}objective"),
                since,
            ),
            Severity::High,
            service.clone(),
            format!(
                "{service} p{q} latency above the {:.0} ms objective for {} min",
                g.objective_ms,
                m - since + 1
            ),
            times(since * MINUTE_MS, (m + 1) * MINUTE_MS - 1, now_ms),
        );
        a.release = ReleaseFields {
            latency: Some(LatencyComparison {
                test: "objective".into(),
                window_s: ((m - since + 1) * 60) as u64,
                quantile: g.latency_quantile,
                stable: None,
                canary: side("", &run),
                threshold_ms: g.objective_ms,
                above: run.count_above(g.objective_ms, g.relative_accuracy),
                expected_share: round3(1.0 - g.latency_quantile),
                ratio: None,
                p_value: 1.0,
            }),
            ..ReleaseFields::default()
        };
        out.push(a);
    }
    signals
        .watch
        .objective
        .retain(|s, _| signals.services.contains_key(s));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_poisson_lower_tail_matches_known_values() {
        // P(X ≤ 0 | λ = 14) = e^-14
        assert!((poisson_cdf(0, 14.0) - (-14f64).exp()).abs() < 1e-15);
        // P(X ≤ 2 | λ = 5) = e^-5 (1 + 5 + 12.5) = 0.124652019
        assert!((poisson_cdf(2, 5.0) - 0.124_652_019_483_081_6).abs() < 1e-12);
        assert_eq!(poisson_cdf(7, 5.0), 1.0);
    }
}
