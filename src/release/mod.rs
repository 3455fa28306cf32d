//! Release: judges versions against each other, as a rollout goes on.
//!
//! Counting happens on the way in (the pipeline keeps lines and error lines
//! per service and version, and each type's occurrences per version, as
//! [`series`]). This module turns those counts into decisions:
//!
//! * **error_rate** — a service's share of error lines over a short window
//!   crossed a step of the ladder (1 %, 2 %, 5 % by default). One alert per
//!   step per episode; an episode ends when the rate drops below the first
//!   step.
//! * **canary_regression** — while two versions of a service run side by
//!   side, the newer one errs more, overall or for one error type, by more
//!   than a factor *and* significantly. Rates are per traffic (per 1,000
//!   lines of each version), and the test is conditional: given the n errors
//!   both versions produced, how likely is it that the canary got this many
//!   if its share of errors were its share of lines? So 3 against 2 never
//!   fires, while ten occurrences of a type seen only in a 10 % canary do.
//! * **regression** — a type an operator marked resolved occurs again (in or
//!   after the version that carries the fix, when one was named).
//!
//! Evaluation runs when event time enters a new minute and judges only
//! closed minutes, so a replay gives the same alerts as the live run, and
//! alert ids hash what the alert is about (service, version, subject,
//! episode) — never wall-clock time.

pub mod chart;
pub mod report;
pub mod rollout;
/// The time series moved to [`crate::series`] (the baseline counts with
/// them too); the old path stays an alias.
pub use crate::series;

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde::{Deserialize, Serialize};

use crate::alert::{
    Alert, AlertTimes, CanaryComparison, EpisodeInfo, ErrorRateStats, Kind, ResolvedInfo, Severity,
    VersionSide, alert_id, rfc3339,
};
use crate::baseline::{Baseline, ErrorType};
use crate::config::{Config, RateMode, RatesConfig, ReleaseConfig, SampleMode};
use crate::detect::stats::binomial_sf;
use crate::fingerprint::Fingerprint;
use crate::record::{EventTime, Record};
use crate::series::{RateCounts, Rates};
use series::{MINUTE_MS, Traffic};

/// What release judgements and reports read from the durable state: the
/// known types, traffic per service and version, and the release memory.
/// `State` sits above this module and lends its parts ([`crate::state::State::ledger`]),
/// so release never depends on the state that persists it.
#[derive(Clone, Copy)]
pub struct Ledger<'a> {
    pub baseline: &'a Baseline,
    pub rates: &'a Rates,
    pub release: &'a ReleaseState,
    /// Largest event time seen.
    pub watermark: Option<EventTime>,
}

/// Alerts kept in the state's log for reports (oldest dropped first).
pub const ALERT_LOG_KEPT: usize = 1_000;

/// What the release checks remember between minutes and restarts.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ReleaseState {
    /// Service → its open error-rate episode.
    #[serde(default)]
    pub rate_episodes: BTreeMap<String, RateEpisode>,
    /// Canary comparisons already alerted, as `service/version/subject`:
    /// each fires once per canary version.
    #[serde(default)]
    pub canary_fired: BTreeSet<String>,
    /// The latest alerts but novel ones, oldest first (reports).
    #[serde(default)]
    pub alert_log: VecDeque<Alert>,
    /// Service → what the error-rate check remembers between minutes
    /// (rise and end timers, the frozen baseline, past episodes).
    #[serde(default)]
    pub rate_watch: BTreeMap<String, RateWatch>,
}

impl ReleaseState {
    /// Keeps what reports need: every kind but `novel` (new types are in
    /// the baseline with their first occurrence) and `episode_end`, without
    /// extra samples.
    pub fn log(&mut self, a: &Alert) {
        // Episode ends are not incidents: the report shows open episodes
        // from `rate_episodes`.
        if matches!(a.kind, Kind::Novel | Kind::EpisodeEnd) {
            return;
        }
        if self.alert_log.len() >= ALERT_LOG_KEPT {
            self.alert_log.pop_front();
        }
        let mut kept = a.clone();
        kept.samples = Vec::new();
        self.alert_log.push_back(kept);
    }
}

/// An error-rate episode: from the first minute above the ladder until the
/// rate drops below it again.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RateEpisode {
    /// Last minute of the window that opened the episode (part of the ids).
    pub start_minute: i64,
    /// Highest step alerted so far.
    pub severity: Severity,
    /// Id of the alert that opened the episode (its end record names it).
    #[serde(default)]
    pub opened_by: Option<String>,
}

/// Orders version strings the way people read them: `1.10.0 > 1.9.3`,
/// `2.0.0 > 2.0.0-rc1` is not attempted (pre-releases compare as text after
/// the numbers). The empty string (unknown version) sorts first.
pub fn version_cmp(a: &str, b: &str) -> Ordering {
    /// Runs of digits and runs of letters; separators only separate.
    fn parts(s: &str) -> impl Iterator<Item = &str> {
        let b = s.as_bytes();
        let mut i = 0;
        std::iter::from_fn(move || {
            while i < b.len() && !b[i].is_ascii_alphanumeric() {
                i += 1;
            }
            if i >= b.len() {
                return None;
            }
            let start = i;
            let digit = b[i].is_ascii_digit();
            while i < b.len() && b[i].is_ascii_alphanumeric() && b[i].is_ascii_digit() == digit {
                i += 1;
            }
            Some(&s[start..i])
        })
    }
    let (mut x, mut y) = (parts(a), parts(b));
    loop {
        match (x.next(), y.next()) {
            (None, None) => return a.cmp(b),
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(p), Some(q)) => {
                let o = match (p.parse::<u64>(), q.parse::<u64>()) {
                    (Ok(m), Ok(n)) => m.cmp(&n),
                    (Ok(_), Err(_)) => Ordering::Greater,
                    (Err(_), Ok(_)) => Ordering::Less,
                    (Err(_), Err(_)) => p.cmp(q),
                };
                if o != Ordering::Equal {
                    return o;
                }
            }
        }
    }
}

pub(crate) fn round3(x: f64) -> f64 {
    if x.is_finite() {
        (x * 1000.0).round() / 1000.0
    } else {
        0.0
    }
}

/// The newest known version of a service (ignoring unknown ones), when it
/// has at least two: with one version there is nothing to be new against.
pub fn newest_of_several(versions: &BTreeMap<String, RateCounts>) -> Option<&str> {
    let mut known = versions
        .keys()
        .map(String::as_str)
        .filter(|v| !v.is_empty());
    let first = known.next()?;
    let mut newest = first;
    let mut several = false;
    for v in known {
        several = true;
        if version_cmp(v, newest) == Ordering::Greater {
            newest = v;
        }
    }
    several.then_some(newest)
}

/// Fills the release fields of a novel alert: the versions the type was
/// seen in, and `new_in_version` when that is only the newest one.
pub fn enrich_novel(a: &mut Alert, baseline: &Baseline, rates: &Rates) {
    let Some(t) = a.fingerprint.and_then(|fp| baseline.get(fp)) else {
        return;
    };
    a.release.versions = t
        .versions
        .keys()
        .filter(|v| !v.is_empty())
        .cloned()
        .collect();
    let newest = rates.get(t.service()).and_then(newest_of_several);
    if let Some(n) = newest
        && a.release.versions.len() == 1
        && a.release.versions[0] == n
    {
        a.release.new_in_version = Some(n.to_string());
    }
}

/// One side-by-side comparison of two versions.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TypeComparison {
    pub fingerprint: Fingerprint,
    pub template: String,
    /// RFC 3339.
    pub first_seen: String,
    /// The type never occurred in the stable version (not just in the window).
    pub only_in_canary: bool,
    #[serde(flatten)]
    pub cmp: CanaryComparison,
    /// Worse by more than the factor, significantly.
    pub regression: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ServiceComparison {
    pub service: String,
    /// Minutes `from..=to` compared.
    pub from_minute: i64,
    pub to_minute: i64,
    pub error_rate: CanaryComparison,
    pub error_rate_regression: bool,
    /// Types with errors in either version within the window, worst first.
    pub types: Vec<TypeComparison>,
}

fn side(version: &str, lines: u64, errors: u64) -> VersionSide {
    VersionSide {
        version: version.to_string(),
        lines,
        errors,
        per_1000: if lines == 0 {
            0.0
        } else {
            round3(errors as f64 * 1000.0 / lines as f64)
        },
    }
}

/// The conditional binomial test of `canary` against `stable`.
fn judge(
    subject: String,
    window_s: u64,
    stable: VersionSide,
    canary: VersionSide,
) -> CanaryComparison {
    let n = stable.errors + canary.errors;
    let share = if stable.lines + canary.lines == 0 {
        0.0
    } else {
        canary.lines as f64 / (stable.lines + canary.lines) as f64
    };
    let p = binomial_sf(canary.errors, n, share);
    let ratio = if stable.errors == 0 || canary.lines == 0 {
        None
    } else {
        Some(round3(
            (canary.errors as f64 / canary.lines as f64)
                / (stable.errors as f64 / stable.lines as f64),
        ))
    };
    CanaryComparison {
        subject,
        window_s,
        stable,
        canary,
        ratio,
        p_value: p,
    }
}

fn worse(c: &CanaryComparison, factor: f64, p_value: f64) -> bool {
    c.canary.errors > 0 && c.ratio.is_none_or(|r| r > factor) && c.p_value < p_value
}

/// Compares `canary` with `stable` for `service` over minutes `from..=to`.
pub fn compare_service(
    state: &Ledger<'_>,
    cfg: &ReleaseConfig,
    service: &str,
    stable: &str,
    canary: &str,
    from: i64,
    to: i64,
) -> ServiceComparison {
    let window_s = ((to - from + 1) * 60) as u64;
    let traffic = |v: &str| {
        state
            .rates
            .get(service)
            .and_then(|m| m.get(v))
            .map(|rc| rc.timeline.minutes.sum(from, to))
            .unwrap_or_default()
    };
    let (s, c) = (traffic(stable), traffic(canary));
    let error_rate = judge(
        "error_rate".into(),
        window_s,
        side(stable, s.lines, s.errors),
        side(canary, c.lines, c.errors),
    );
    let error_rate_regression = worse(&error_rate, cfg.error_rate_factor, cfg.p_value);
    let mut types: Vec<TypeComparison> = state
        .baseline
        .types
        .values()
        .filter(|t| t.service() == service && !t.muted)
        .filter_map(|t| {
            let es = t.series.in_version(stable, from, to);
            let ec = t.series.in_version(canary, from, to);
            if es + ec == 0 {
                return None;
            }
            let cmp = judge(
                t.fingerprint.to_string(),
                window_s,
                side(stable, s.lines, es),
                side(canary, c.lines, ec),
            );
            let regression = worse(&cmp, cfg.type_factor, cfg.p_value);
            Some(TypeComparison {
                fingerprint: t.fingerprint,
                template: t.readable_template().into_owned(),
                first_seen: rfc3339(t.first_seen),
                only_in_canary: !t.versions.contains_key(stable) && t.versions.contains_key(canary),
                cmp,
                regression,
            })
        })
        .collect();
    types.sort_by(|a, b| {
        a.cmp
            .p_value
            .total_cmp(&b.cmp.p_value)
            .then(a.fingerprint.cmp(&b.fingerprint))
    });
    ServiceComparison {
        service: service.to_string(),
        from_minute: from,
        to_minute: to,
        error_rate,
        error_rate_regression,
        types,
    }
}

/// Judges the minutes that closed when event time entered `minute`.
/// Reads the known types and the traffic counts; updates only the release
/// memory.
pub fn on_minute(
    baseline: &Baseline,
    rates: &Rates,
    release: &mut ReleaseState,
    cfg: &Config,
    minute: i64,
    now_ms: i64,
    out: &mut Vec<Alert>,
) {
    error_rates(rates, release, &cfg.rates, minute, now_ms, out);
    if cfg.release.canary {
        canaries(baseline, rates, release, cfg, (minute, now_ms), out);
    }
}

fn ladder(rate: f64, r: &RatesConfig) -> Option<(Severity, f64)> {
    if rate > r.critical {
        Some((Severity::Critical, r.critical))
    } else if rate > r.high {
        Some((Severity::High, r.high))
    } else if rate > r.medium {
        Some((Severity::Medium, r.medium))
    } else {
        None
    }
}

/// A service's own recent past, for `rates.mode = "change"`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct RateBaseline {
    /// Error lines per line over the baseline minutes.
    pub rate: f64,
    /// Pearson dispersion of the per-minute error counts (≥ 1): how much
    /// burstier than a binomial stream the service's errors are.
    pub dispersion: f64,
    pub lines: u64,
}

/// Episode ranges kept per service to leave out of later baselines.
const EXCLUDED_KEPT: usize = 8;

/// What the error-rate check remembers per service between minutes.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RateWatch {
    /// First window end (minute) at which the rise condition held, while
    /// the episode has not opened yet.
    #[serde(default)]
    pub rising_since: Option<i64>,
    /// First window end at which the end condition held, in an episode.
    #[serde(default)]
    pub falling_since: Option<i64>,
    /// The baseline frozen when the rise began: an episode is judged
    /// against what came before it, not against itself.
    #[serde(default)]
    pub baseline: Option<RateBaseline>,
    /// Minutes of past episodes (`from..=to`), left out of baselines.
    #[serde(default)]
    pub excluded: Vec<(i64, i64)>,
}

impl RateWatch {
    /// An episode over minutes `from..=to` ended: leave them out of later
    /// baselines (forgetting ranges older than `oldest`), start afresh.
    fn close(&mut self, from: i64, to: i64, oldest: i64) {
        self.excluded.push((from, to));
        self.excluded.retain(|(_, b)| *b >= oldest);
        if self.excluded.len() > EXCLUDED_KEPT {
            let extra = self.excluded.len() - EXCLUDED_KEPT;
            self.excluded.drain(..extra);
        }
        self.close_nothing();
    }

    /// No rise or fall under way any more.
    fn close_nothing(&mut self) {
        self.rising_since = None;
        self.falling_since = None;
        self.baseline = None;
    }
}

/// The service's traffic per minute over `from..=to`, all versions.
fn minutes_of(
    versions: &BTreeMap<String, RateCounts>,
    from: i64,
    to: i64,
) -> BTreeMap<i64, Traffic> {
    let mut m: BTreeMap<i64, Traffic> = BTreeMap::new();
    for rc in versions.values() {
        for (t, v) in rc.timeline.minutes.iter() {
            if (from..=to).contains(&t) {
                *m.entry(t).or_default() += v;
            }
        }
    }
    m
}

/// The baseline over `from..=to` without the excluded minutes; None when
/// it has fewer than `min_lines` lines (no past to compare with).
fn baseline_of(
    versions: &BTreeMap<String, RateCounts>,
    from: i64,
    to: i64,
    excluded: &[(i64, i64)],
    min_lines: u64,
) -> Option<RateBaseline> {
    let minutes: Vec<Traffic> = minutes_of(versions, from, to)
        .into_iter()
        .filter(|(t, _)| !excluded.iter().any(|(a, b)| (*a..=*b).contains(t)))
        .map(|(_, v)| v)
        .collect();
    let (lines, errors) = minutes
        .iter()
        .fold((0u64, 0u64), |(l, e), v| (l + v.lines, e + v.errors));
    if lines < min_lines || lines == 0 {
        return None;
    }
    let rate = errors as f64 / lines as f64;
    // Quasi-Poisson: Pearson's X² over the minutes, per degree of freedom.
    // A service whose errors come in clumps (retries, one failure logged by
    // many workers) has φ > 1, and its window is tested with counts scaled
    // down by φ — the standard correction, learned from the service itself.
    let mut x2 = 0.0;
    let mut n = 0u32;
    for m in &minutes {
        let e = m.lines as f64 * rate;
        if e > 0.0 {
            x2 += (m.errors as f64 - e).powi(2) / e;
            n += 1;
        }
    }
    let dispersion = if n >= 5 {
        (x2 / (n - 1) as f64).clamp(1.0, 100.0)
    } else {
        1.0
    };
    Some(RateBaseline {
        rate,
        dispersion,
        lines,
    })
}

/// P(errors this high | the baseline rate), quasi-Poisson.
fn rise_p_value(errors: u64, lines: u64, b: &RateBaseline) -> f64 {
    // Half an error over the baseline's lines as a floor: a baseline with
    // no errors does not make the first one infinitely surprising.
    let rate = b.rate.max(0.5 / b.lines.max(1) as f64);
    let expected = lines as f64 * rate;
    crate::detect::stats::poisson_sf(
        (errors as f64 / b.dispersion).floor() as u64,
        expected / b.dispersion,
    )
}

fn error_rates(
    rates: &Rates,
    release: &mut ReleaseState,
    r: &RatesConfig,
    minute: i64,
    now_ms: i64,
    out: &mut Vec<Alert>,
) {
    if !r.enabled {
        return;
    }
    let w = (r.window.as_millis() / MINUTE_MS).max(1);
    let hold = (r.hold.as_millis() / MINUTE_MS).max(1);
    let bw = (r.baseline_window.as_millis() / MINUTE_MS).max(1);
    let (from, to) = (minute - w, minute - 1);
    let change = r.mode == RateMode::Change;
    for (svc, versions) in rates {
        let mut tr = Traffic::default();
        for rc in versions.values() {
            tr += rc.timeline.minutes.sum(from, to);
        }
        let episodes = &mut release.rate_episodes;
        let watch = release.rate_watch.entry(svc.clone()).or_default();
        if tr.lines == 0 {
            // The service went quiet: the episode (if any) is over, and
            // whatever comes next is a new one.
            if let Some(ep) = episodes.remove(svc) {
                out.push(rate_end(svc, &ep, tr, w, to, minute, now_ms));
                watch.close(ep.start_minute - w + 1, to, to - w - bw);
            }
            watch.close_nothing();
            continue;
        }
        if tr.lines < r.min_lines {
            // Too little traffic to judge either way: the episode stays.
            continue;
        }
        let rate = tr.error_rate();
        let step = ladder(rate, r);
        // The own past: frozen while a rise or an episode is under way.
        let base = if change {
            match watch.baseline {
                Some(b) if watch.rising_since.is_some() || episodes.contains_key(svc) => Some(b),
                _ => baseline_of(
                    versions,
                    to - w - bw + 1,
                    to - w,
                    &watch.excluded,
                    r.min_lines,
                ),
            }
        } else {
            None
        };
        let significant = !change
            || base.is_some_and(|b| {
                rate >= r.min_ratio * b.rate && rise_p_value(tr.errors, tr.lines, &b) < r.p_value
            });
        let up = step.is_some() && tr.errors >= r.min_errors && significant;
        if let Some(ep) = episodes.get_mut(svc) {
            // In an episode: escalate at once, end only after the rate
            // stayed below the hysteresis level for `hold`.
            let level = match base {
                Some(b) => r.medium.max(r.min_ratio * b.rate),
                None => r.medium,
            };
            if rate < r.hysteresis * level {
                let since = *watch.falling_since.get_or_insert(to);
                if to - since + 1 >= hold {
                    let ep = episodes.remove(svc).expect("episode present");
                    out.push(rate_end(svc, &ep, tr, w, to, minute, now_ms));
                    watch.close(ep.start_minute - w + 1, to, to - w - bw);
                }
                continue;
            }
            watch.falling_since = None;
            let Some((sev, threshold)) = step else {
                continue;
            };
            if !up || sev <= ep.severity {
                continue;
            }
            ep.severity = sev;
            let start = ep.start_minute;
            let a = rate_alert(svc, sev, threshold, start, tr, w, minute, now_ms, base);
            ep.opened_by.get_or_insert_with(|| a.id.clone());
            out.push(a);
            continue;
        }
        if !up {
            watch.rising_since = None;
            watch.baseline = None;
            continue;
        }
        let since = *watch.rising_since.get_or_insert(to);
        if watch.baseline.is_none() {
            watch.baseline = base;
        }
        if to - since + 1 < hold {
            continue;
        }
        let (sev, threshold) = step.expect("up implies a step");
        let a = rate_alert(svc, sev, threshold, since, tr, w, minute, now_ms, base);
        episodes.insert(
            svc.clone(),
            RateEpisode {
                start_minute: since,
                severity: sev,
                opened_by: Some(a.id.clone()),
            },
        );
        watch.rising_since = None;
        out.push(a);
    }
}

#[allow(clippy::too_many_arguments)]
fn rate_alert(
    svc: &str,
    sev: Severity,
    threshold: f64,
    start: i64,
    tr: Traffic,
    w: i64,
    minute: i64,
    now_ms: i64,
    base: Option<RateBaseline>,
) -> Alert {
    let rate = tr.error_rate();
    let id = alert_id(
        Kind::ErrorRate,
        &format!("{svc}\u{1f}{}", sev.as_str()),
        start,
    );
    let against = match base {
        Some(b) => format!(", usually {:.2} %", b.rate * 100.0),
        None => String::new(),
    };
    let template = format!(
        "{:.2} % of {} lines were errors over {} min (above {} %{against})",
        rate * 100.0,
        tr.lines,
        w,
        threshold * 100.0
    );
    let first = (start - w + 1) * MINUTE_MS;
    let release = crate::alert::ReleaseFields {
        error_rate: Some(ErrorRateStats {
            window_s: (w * 60) as u64,
            lines: tr.lines,
            errors: tr.errors,
            rate: round3(rate * 1000.0) / 1000.0,
            threshold,
            baseline_rate: base.map(|b| round3(b.rate * 1000.0) / 1000.0),
        }),
        episode: Some(EpisodeInfo {
            of: Kind::ErrorRate,
            opened_by: id.clone(),
            start: rfc3339(first),
            end: None,
            suppressed: 0,
        }),
        ..Default::default()
    };
    let head = (id, Kind::ErrorRate, sev);
    service_record(head, svc, template, first, minute, now_ms, release)
}

/// An alert about a whole service (no type, no sample).
fn service_record(
    (id, kind, severity): (String, Kind, Severity),
    svc: &str,
    template: String,
    first_seen: EventTime,
    minute: i64,
    now_ms: i64,
    release: crate::alert::ReleaseFields,
) -> Alert {
    Alert::new(
        kind,
        id,
        severity,
        svc,
        template,
        AlertTimes {
            first_seen,
            event_time: minute * MINUTE_MS,
            detected_at: now_ms,
        },
    )
    .with_release(release)
}

/// The `episode_end` record of an error-rate episode.
fn rate_end(
    svc: &str,
    ep: &RateEpisode,
    tr: Traffic,
    w: i64,
    to: i64,
    minute: i64,
    now_ms: i64,
) -> Alert {
    let opened_by = ep.opened_by.clone().unwrap_or_else(|| {
        alert_id(
            Kind::ErrorRate,
            &format!("{svc}\u{1f}{}", ep.severity.as_str()),
            ep.start_minute,
        )
    });
    let template = format!(
        "error rate back to {:.2} % of {} lines over {} min (episode peaked {})",
        tr.error_rate() * 100.0,
        tr.lines,
        w,
        ep.severity.as_str()
    );
    let first = (ep.start_minute - w + 1) * MINUTE_MS;
    let head = (
        alert_id(Kind::EpisodeEnd, &opened_by, to),
        Kind::EpisodeEnd,
        Severity::Low,
    );
    let release = crate::alert::ReleaseFields {
        episode: Some(EpisodeInfo {
            of: Kind::ErrorRate,
            opened_by,
            start: rfc3339(first),
            end: Some(rfc3339((to + 1) * MINUTE_MS)),
            suppressed: 0,
        }),
        ..Default::default()
    };
    service_record(head, svc, template, first, minute, now_ms, release)
}

/// The stable and canary versions of a service in minutes `from..=to`:
/// the newest version with traffic, against the busiest older one.
pub fn pair(
    versions: &BTreeMap<String, RateCounts>,
    from: i64,
    to: i64,
) -> Option<(String, String)> {
    let active: Vec<(&str, u64)> = versions
        .iter()
        .filter(|(v, _)| !v.is_empty())
        .map(|(v, rc)| (v.as_str(), rc.timeline.minutes.sum(from, to).lines))
        .filter(|(_, n)| *n > 0)
        .collect();
    let canary = active
        .iter()
        .map(|a| a.0)
        .max_by(|a, b| version_cmp(a, b))?;
    let stable = active
        .iter()
        .filter(|a| a.0 != canary)
        .max_by(|a, b| a.1.cmp(&b.1).then(version_cmp(a.0, b.0)))?
        .0;
    Some((stable.to_string(), canary.to_string()))
}

fn canaries(
    baseline: &Baseline,
    rates: &Rates,
    release: &mut ReleaseState,
    cfg: &Config,
    (minute, now_ms): (i64, i64),
    out: &mut Vec<Alert>,
) {
    let rc = &cfg.release;
    let w = (rc.canary_window.as_millis() / MINUTE_MS).max(1);
    let (from, to) = (minute - w, minute - 1);
    let pairs: Vec<(String, String, String)> = rates
        .iter()
        .filter_map(|(svc, vs)| pair(vs, from, to).map(|(s, c)| (svc.clone(), s, c)))
        .collect();
    for (svc, stable, canary) in pairs {
        let ledger = Ledger {
            baseline,
            rates,
            release,
            watermark: None,
        };
        let cmp = compare_service(&ledger, rc, &svc, &stable, &canary, from, to);
        if cmp.error_rate.stable.lines < rc.min_lines || cmp.error_rate.canary.lines < rc.min_lines
        {
            continue;
        }
        let canary_first = rates
            .get(&svc)
            .and_then(|m| m.get(&canary))
            .and_then(|r| r.first_seen)
            .unwrap_or(from * MINUTE_MS);
        let mut fire = |subject: &str,
                        c: &CanaryComparison,
                        t: Option<&ErrorType>,
                        release: &mut ReleaseState| {
            let key = format!("{svc}/{canary}/{subject}");
            if !release.canary_fired.insert(key) {
                return;
            }
            let ratio = c
                .ratio
                .map_or("only in the canary".to_string(), |r| format!("{r:.2}×"));
            let what = match t {
                Some(t) => t.template.clone(),
                None => format!(
                    "error rate {:.2} ‰ in {canary} vs {:.2} ‰ in {stable} ({ratio}, p = {:.1e})",
                    c.canary.per_1000, c.stable.per_1000, c.p_value
                ),
            };
            out.push(
                Alert::new(
                    Kind::CanaryRegression,
                    alert_id(
                        Kind::CanaryRegression,
                        &format!("{svc}\u{1f}{canary}\u{1f}{subject}"),
                        0,
                    ),
                    if c.ratio.is_none_or(|r| r >= 2.0) {
                        Severity::High
                    } else {
                        Severity::Medium
                    },
                    svc.clone(),
                    what,
                    AlertTimes {
                        first_seen: t.map_or(canary_first, |t| t.first_seen),
                        event_time: minute * MINUTE_MS,
                        detected_at: now_ms,
                    },
                )
                .with_fingerprint(t.map(|t| t.fingerprint))
                .with_version(Some(canary.clone()))
                .with_sample(t.and_then(|t| match cfg.alerts.samples {
                    SampleMode::Raw => t.samples.first().cloned(),
                    SampleMode::Masked => Some(t.template.clone()),
                    SampleMode::None => None,
                }))
                .with_release(crate::alert::ReleaseFields {
                    canary: Some(c.clone()),
                    ..Default::default()
                }),
            );
        };
        if cmp.error_rate_regression {
            fire("error_rate", &cmp.error_rate, None, release);
        }
        for tc in cmp.types.iter().filter(|t| t.regression) {
            let t = baseline.types.get(&tc.fingerprint).map(|t| (**t).clone());
            fire(&tc.cmp.subject, &tc.cmp, t.as_ref(), release);
        }
    }
}

/// A resolved type occurred: reopen it and, unless still learning, alert.
/// With a fix version, occurrences in older versions (still running during
/// the rollout) are expected and change nothing.
#[allow(clippy::too_many_arguments)]
pub fn check_regression(
    b: &mut Baseline,
    fp: Fingerprint,
    rec: &Record,
    time: EventTime,
    learning: bool,
    cfg: &Config,
    now_ms: i64,
    out: &mut Vec<Alert>,
) {
    let Some(t) = b.get_mut(fp) else {
        return;
    };
    let Some(at) = t.resolved_at else {
        return;
    };
    if time <= at {
        // Not after the resolution: part of what was resolved.
        return;
    }
    if let Some(fix) = &t.resolved_in {
        match rec.version.as_deref() {
            Some(v) if version_cmp(v, fix) != Ordering::Less => {}
            _ => return,
        }
    }
    let resolved = ResolvedInfo {
        resolved_at: rfc3339(at),
        in_version: t.resolved_in.take(),
    };
    t.resolved_at = None;
    if learning || t.muted || !cfg.release.regression {
        return;
    }
    out.push(
        Alert::about_type(
            Kind::Regression,
            alert_id(Kind::Regression, &t.fingerprint.to_string(), at),
            Severity::High,
            t,
            rec.version.clone(),
            time,
            now_ms,
        )
        .with_sample(match cfg.alerts.samples {
            SampleMode::Raw => Some(rec.message.clone()),
            SampleMode::Masked => Some(t.template.clone()),
            SampleMode::None => None,
        })
        .with_release(crate::alert::ReleaseFields {
            versions: t
                .versions
                .keys()
                .filter(|v| !v.is_empty())
                .cloned()
                .collect(),
            resolved: Some(resolved),
            ..Default::default()
        }),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::State;

    #[test]
    fn versions_order_by_their_numbers_not_their_text() {
        assert_eq!(version_cmp("1.10.0", "1.9.3"), Ordering::Greater);
        assert_eq!(version_cmp("2.0.0", "1.9.3"), Ordering::Greater);
        assert_eq!(version_cmp("1.9.3", "1.9.3"), Ordering::Equal);
        assert_eq!(version_cmp("", "0.1"), Ordering::Less);
        assert_eq!(version_cmp("v2", "v10"), Ordering::Less);
    }

    #[test]
    fn the_ladder_names_the_highest_step_crossed() {
        let r = RatesConfig::default();
        assert_eq!(ladder(0.005, &r), None);
        assert_eq!(ladder(0.015, &r).map(|l| l.0), Some(Severity::Medium));
        assert_eq!(ladder(0.03, &r).map(|l| l.0), Some(Severity::High));
        assert_eq!(ladder(0.2, &r).map(|l| l.0), Some(Severity::Critical));
    }

    #[test]
    fn the_default_release_configuration_is_valid_and_a_ladder_out_of_order_is_not() {
        let mut cfg = Config::default();
        assert!(cfg.validate().is_ok());
        cfg.rates.high = 0.5;
        cfg.rates.critical = 0.1;
        assert!(cfg.validate().is_err());
    }

    #[test]
    fn the_newest_of_several_versions_ignores_the_unknown_one_and_needs_two() {
        let mut m: BTreeMap<String, RateCounts> = BTreeMap::new();
        m.insert("1.9.3".into(), RateCounts::default());
        m.insert("".into(), RateCounts::default());
        assert_eq!(
            newest_of_several(&m),
            None,
            "one known version is not a release"
        );
        m.insert("1.10.0".into(), RateCounts::default());
        assert_eq!(newest_of_several(&m), Some("1.10.0"));
    }

    #[test]
    fn a_state_written_before_release_tracking_still_loads() {
        let cfg = Config::default();
        let mut st = State::new(Baseline::new(&cfg, 1), crate::detect::Detector::new(&cfg));
        st.rates
            .entry("api".into())
            .or_default()
            .insert("1.0".into(), RateCounts::default());
        let mut v = serde_json::to_value(&st).unwrap();
        v.as_object_mut().unwrap().remove("release");
        let rc = v["rates"]["api"]["1.0"].as_object_mut().unwrap();
        rc.remove("timeline");
        let back: State = serde_json::from_value(v).unwrap();
        assert_eq!(back.rates["api"]["1.0"], RateCounts::default());
        assert!(back.release.alert_log.is_empty());
    }

    #[test]
    fn three_errors_against_two_are_not_a_regression_but_a_canary_only_type_is() {
        let even = judge("x".into(), 60, side("1", 1000, 2), side("2", 1000, 3));
        assert!(!worse(&even, 1.2, 0.001), "{even:?}");
        let only = judge("x".into(), 60, side("1", 9000, 0), side("2", 1000, 12));
        assert!(worse(&only, 2.0, 0.001), "{only:?}");
        assert_eq!(only.ratio, None);
    }
}
