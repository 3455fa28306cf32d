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

pub mod report;
pub mod rollout;
/// The time series moved to [`crate::series`] (the baseline counts with
/// them too); the old path stays an alias.
pub use crate::series;

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde::{Deserialize, Serialize};

use crate::alert::{
    Alert, AlertTimes, CanaryComparison, ErrorRateStats, Kind, ResolvedInfo, Severity, VersionSide,
    alert_id, rfc3339,
};
use crate::baseline::{Baseline, ErrorType};
use crate::config::{Config, RatesConfig, ReleaseConfig, SampleMode};
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
}

impl ReleaseState {
    /// Keeps what reports need: every kind but `novel` (new types are in
    /// the baseline with their first occurrence), without extra samples.
    pub fn log(&mut self, a: &Alert) {
        if a.kind == Kind::Novel {
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
                template: t.template.clone(),
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
    let (from, to) = (minute - w, minute - 1);
    for (svc, versions) in rates {
        let mut tr = Traffic::default();
        for rc in versions.values() {
            tr += rc.timeline.minutes.sum(from, to);
        }
        let episodes = &mut release.rate_episodes;
        if tr.lines == 0 {
            // The service went quiet: whatever comes next is a new episode.
            episodes.remove(svc);
            continue;
        }
        if tr.lines < r.min_lines {
            // Too little traffic to judge either way: the episode stays.
            continue;
        }
        let rate = tr.error_rate();
        let Some((sev, threshold)) = ladder(rate, r) else {
            episodes.remove(svc);
            continue;
        };
        if tr.errors < r.min_errors {
            continue;
        }
        let ep = episodes.entry(svc.clone()).or_insert(RateEpisode {
            start_minute: to,
            severity: Severity::Low,
        });
        if sev <= ep.severity {
            continue;
        }
        ep.severity = sev;
        let start = ep.start_minute;
        out.push(
            Alert::new(
                Kind::ErrorRate,
                alert_id(
                    Kind::ErrorRate,
                    &format!("{svc}\u{1f}{}", sev.as_str()),
                    start,
                ),
                sev,
                svc.clone(),
                format!(
                    "{:.2} % of {} lines were errors over {} min (above {} %)",
                    rate * 100.0,
                    tr.lines,
                    w,
                    threshold * 100.0
                ),
                AlertTimes {
                    first_seen: (start - w + 1) * MINUTE_MS,
                    event_time: minute * MINUTE_MS,
                    detected_at: now_ms,
                },
            )
            .with_release(crate::alert::ReleaseFields {
                error_rate: Some(ErrorRateStats {
                    window_s: (w * 60) as u64,
                    lines: tr.lines,
                    errors: tr.errors,
                    rate: round3(rate * 1000.0) / 1000.0,
                    threshold,
                }),
                ..Default::default()
            }),
        );
    }
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
        Alert::new(
            Kind::Regression,
            alert_id(Kind::Regression, &t.fingerprint.to_string(), at),
            Severity::High,
            t.service(),
            t.template.clone(),
            AlertTimes {
                first_seen: t.first_seen,
                event_time: time,
                detected_at: now_ms,
            },
        )
        .with_fingerprint(Some(t.fingerprint))
        .with_version(rec.version.clone())
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
