//! Detect: decides which occurrences deserve an alert.
//!
//! * **novel** — the first occurrence after warm-up of a type the baseline
//!   does not know: one alert, at once, once for the life of the state.
//! * **surge** — a type's count over the recent window is significantly
//!   above its own rate (Poisson tail, see [`stats`]), above a minimum count
//!   and ratio, and above the biggest burst it showed before: normal
//!   burstiness learned during warm-up does not page. One alert per
//!   episode; a new episode needs the rate to fall back and a cooldown.
//! * **storm** — beyond `storm_per_minute` novel types in one minute for one
//!   service, the rest are summarised in one `storm` alert.
//! * **own novelty rate** — a service that minted a new type for most of
//!   its error records during warm-up (`novel_rate_max_share`) will keep
//!   doing so: a new type there is its level, not a change. After warm-up
//!   its new types open a storm episode at once (one summary alert, the
//!   types recorded as known) instead of one `novel` alert each.
//!
//! Ids hash (kind, subject, episode) — never wall-clock or arrival order —
//! so a replay, a restart or another instance produces the same ids.

pub mod snooze;
pub mod stats;

use std::collections::HashMap;

use crate::alert::{
    Alert, AlertTimes, EpisodeInfo, Kind, Severity, StormEntry, StormSummary, WindowStats,
    alert_id, rfc3339,
};
use crate::baseline::{Baseline, ErrorType};
use crate::config::{Config, DetectConfig, SampleMode};
use crate::fingerprint::Fingerprint;
use crate::record::{EventTime, Level, Record};

const MINUTE_MS: i64 = 60_000;

/// Examples kept per storm (alert and end record).
const STORM_TOP: usize = 10;

#[derive(Debug, Default, serde::Serialize, serde::Deserialize, Clone)]
struct StormMinute {
    minute: i64,
    alerted: usize,
    /// New types of this minute not alerted (before the storm alert went
    /// out; the episode counts the rest): only the `STORM_TOP` the storm
    /// alert names (see [`suppress`]), the others counted in `dropped`.
    suppressed: Vec<(Fingerprint, String, u64)>,
    /// Suppressed types of this minute beyond `suppressed` (absent in
    /// older states, whose list is whole).
    #[serde(default)]
    dropped: u64,
    first_time: EventTime,
    version: Option<String>,
    /// New types seen in `minute`, alerted or not.
    #[serde(default)]
    count: u64,
    /// The storm under way for the service, if any.
    #[serde(default)]
    episode: Option<StormEpisode>,
}

/// One storm: from the minute a service's new types passed
/// `storm_per_minute` until `storm_quiet` passed without a busy minute.
/// While it lasts, new types are recorded as known without alerting: a
/// flood of distinct messages is one incident, and its types are not "new"
/// after it either.
#[derive(Debug, serde::Serialize, serde::Deserialize, Clone)]
struct StormEpisode {
    start_minute: i64,
    /// Id of the `storm` alert (set when it went out).
    opened_by: Option<String>,
    /// New types since the storm began (those alerted before it included).
    total: u64,
    /// New types not alerted.
    suppressed: u64,
    top: Vec<(Fingerprint, String, u64)>,
    /// Last minute with at least a quarter of `storm_per_minute` new types.
    last_busy: i64,
    /// Opened because the service has no stable vocabulary (absent in
    /// older states: a storm of the per-minute kind).
    #[serde(default)]
    unsettled: bool,
}

/// What a service's warm-up showed of its vocabulary: error records and,
/// of those, first sightings of a type.
#[derive(Debug, Default, Clone, Copy, serde::Serialize, serde::Deserialize)]
struct Vocabulary {
    errors: u64,
    first: u64,
}

/// Detector state that is not per type (per-type state lives in the
/// baseline's [`ErrorType`]s).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Detector {
    #[serde(skip, default)]
    cfg: DetectConfig,
    #[serde(skip, default)]
    samples: SampleMode,
    storms: HashMap<String, StormMinute>,
    /// Per service, its warm-up vocabulary (at most
    /// [`crate::series::MAX_SERVICES`] services; a service beyond is judged
    /// stable, so its new types keep alerting). Absent in older states:
    /// every service stable, as before.
    #[serde(default)]
    vocabulary: HashMap<String, Vocabulary>,
}

impl Detector {
    pub fn new(cfg: &Config) -> Detector {
        Detector {
            cfg: cfg.detect.clone(),
            samples: cfg.alerts.samples,
            storms: HashMap::new(),
            vocabulary: HashMap::new(),
        }
    }

    /// Counts a warm-up error record of `service`, `first` when it was the
    /// first sighting of its type.
    fn learn_vocabulary(&mut self, service: &str, first: bool) {
        let full = self.vocabulary.len() >= crate::series::MAX_SERVICES;
        let v = match self.vocabulary.get_mut(service) {
            Some(v) => v,
            None if full => return,
            None => self.vocabulary.entry(service.to_string()).or_default(),
        };
        v.errors += 1;
        v.first += u64::from(first);
    }

    /// True when `service` showed no stable vocabulary in its warm-up:
    /// enough error records, and more than `novel_rate_max_share` of them
    /// first sightings of a type. Its novelty rate is compared with its own
    /// past, never with a fixed expectation of what logs look like.
    fn unsettled(&self, service: &str) -> bool {
        self.vocabulary.get(service).is_some_and(|v| {
            v.errors >= self.cfg.novel_rate_min_errors
                && v.first as f64 > self.cfg.novel_rate_max_share * v.errors as f64
        })
    }

    /// Re-applies configuration after loading from the state.
    pub fn reconfigure(&mut self, cfg: &Config) {
        self.cfg = cfg.detect.clone();
        self.samples = cfg.alerts.samples;
    }

    /// Judges one error occurrence already recorded in `b`.
    /// `learning` is true during warm-up: state is updated, nothing alerts.
    #[allow(clippy::too_many_arguments)]
    pub fn on_error(
        &mut self,
        b: &mut Baseline,
        fp: Fingerprint,
        rec: &Record,
        time: EventTime,
        learning: bool,
        now_ms: i64,
        out: &mut Vec<Alert>,
    ) {
        let spec = b.spec;
        let Some(t) = b.get_mut(fp) else {
            return;
        };
        if t.muted {
            return;
        }
        if learning && self.cfg.novel {
            // `observe_at` has counted this record: 1 is a first sighting.
            self.learn_vocabulary(t.service(), t.count == 1);
        }
        if !t.novel_done && !learning {
            t.novel_done = true;
            if self.cfg.novel {
                let minute = time.div_euclid(MINUTE_MS);
                let unsettled = self.unsettled(t.service());
                // An unsettled service's episode lasts while any new type
                // comes: its usual rate is what the episode summarises.
                let busy = if unsettled {
                    1
                } else {
                    (self.cfg.storm_per_minute as u64 / 4).max(1)
                };
                let s = self.storms.entry(t.service().to_string()).or_default();
                if s.minute != minute {
                    // A new minute: the previous one's storm alert (if
                    // any is pending) goes out; start counting afresh.
                    announce(t.service(), s, now_ms, out);
                    s.minute = minute;
                    s.alerted = 0;
                    s.count = 0;
                    s.first_time = time;
                }
                s.count += 1;
                if let Some(ep) = s.episode.as_mut() {
                    ep.total += 1;
                    ep.suppressed += 1;
                    if ep.top.len() < STORM_TOP {
                        ep.top.push((t.fingerprint, t.template.clone(), 1));
                    }
                    if s.count >= busy {
                        ep.last_busy = minute;
                    }
                    if ep.opened_by.is_none() {
                        suppress(s, t.fingerprint, &t.template);
                    }
                } else if !unsettled && s.alerted < self.cfg.storm_per_minute {
                    s.alerted += 1;
                    out.push(novel_alert(t, rec, time, now_ms, self.samples));
                } else {
                    s.first_time = time;
                    s.version = rec.version.clone();
                    suppress(s, t.fingerprint, &t.template);
                    s.episode = Some(StormEpisode {
                        start_minute: minute,
                        opened_by: None,
                        total: s.count,
                        suppressed: 1,
                        top: vec![(t.fingerprint, t.template.clone(), 1)],
                        last_busy: minute,
                        unsettled,
                    });
                }
            }
            return;
        }
        if !self.cfg.surge {
            return;
        }
        self.judge_surge(t, rec, time, learning, now_ms, spec, out);
    }

    #[allow(clippy::too_many_arguments)]
    fn judge_surge(
        &self,
        t: &mut ErrorType,
        rec: &Record,
        time: EventTime,
        learning: bool,
        now_ms: i64,
        spec: crate::window::WindowSpec,
        out: &mut Vec<Alert>,
    ) {
        let Some(w) = t.window.as_ref() else {
            return;
        };
        let cfg = &self.cfg;
        let k = (cfg.surge_window.as_millis() / spec.bucket_ms).max(1);
        let now_b = spec.bucket_of(time);
        let recent = w.sum(now_b - k + 1, now_b);
        let window_min = (k * spec.bucket_ms) as f64 / 60_000.0;
        let bucket_min = spec.bucket_ms as f64 / 60_000.0;

        // The type's usual rate: the most generous of its in-ring history,
        // its long-run average and an imported history rate. Generous on
        // purpose — a missed marginal surge costs less than a false page.
        let first_b = spec.bucket_of(t.first_seen);
        let hist_from = (now_b - spec.buckets as i64 + 1).max(first_b);
        let hist_to = now_b - k;
        let hist_buckets = hist_to - hist_from + 1;
        let mut rate = cfg.surge_min_baseline_per_min;
        let mut have_history = t.history_rate_per_min.is_some();
        if let Some(r) = t.history_rate_per_min {
            rate = rate.max(r);
        }
        if hist_buckets >= k {
            have_history = true;
            let hist = w.sum(hist_from, hist_to);
            rate = rate.max(hist as f64 / (hist_buckets as f64 * bucket_min));
            let age_min = (time - t.first_seen) as f64 / 60_000.0 - window_min;
            if age_min > window_min {
                let older = t.count.saturating_sub(recent);
                rate = rate.max(older as f64 / age_min);
            }
        }
        let peak = t.surge.peak.max(if hist_buckets >= k {
            w.peak(k, hist_from, hist_to)
        } else {
            0
        });
        let expected = rate * window_min;
        let ratio = recent as f64 / expected.max(1e-9);

        if let Some(start) = t.surge.episode_start {
            // The episode lasts until the rate has come back down.
            if (recent as f64)
                < (cfg.surge_min_ratio * expected).max(cfg.surge_min_count as f64) / 2.0
            {
                t.surge.episode_start = None;
                t.surge.last_end = Some(time);
                let _ = start;
            }
            return;
        }
        let young = t.origin == crate::baseline::Origin::Live
            && time - t.first_seen < cfg.surge_new_type_history.as_millis();
        if !have_history || young {
            t.surge.peak = t.surge.peak.max(recent);
            return;
        }
        let cooling = t
            .surge
            .last_end
            .is_some_and(|end| time - end < cfg.cooldown.as_millis());
        let mut p = stats::poisson_sf(recent, expected);
        let mut surging = recent >= cfg.surge_min_count
            && ratio >= cfg.surge_min_ratio
            && recent > peak
            && p < cfg.surge_p_value;
        if surging && hist_buckets >= k {
            // Only now (rarely) pay for the dispersion: errors come in
            // clumps (a retry loop, one failure logged by every worker), so
            // their counts vary more than a Poisson stream's and its tail
            // calls ordinary clumps "one in a million". Quasi-Poisson: the
            // count and its expectation scaled down by the dispersion
            // measured in the type's own history.
            let phi = stats::dispersion(
                (hist_from..=hist_to).map(|b| w.sum(b, b)),
                cfg.surge_max_dispersion,
            );
            if phi > 1.0 {
                p = stats::poisson_sf((recent as f64 / phi).floor() as u64, expected / phi);
                surging = p < cfg.surge_p_value;
            }
        }
        if !surging {
            t.surge.peak = t.surge.peak.max(recent);
            return;
        }
        if learning || cooling {
            // A burst we may not alert on still teaches what is normal.
            t.surge.peak = t.surge.peak.max(recent);
            return;
        }
        t.surge.episode_start = Some(now_b);
        let stats = WindowStats {
            length_s: (k * spec.bucket_ms / 1000) as u64,
            count: recent,
            baseline_rate_per_min: round3(rate),
            rate_per_min: round3(recent as f64 / window_min),
            ratio: round3(ratio),
            score: round3(-(p.max(1e-300)).log10()),
        };
        let severity = if ratio >= 20.0 {
            Severity::Critical
        } else if ratio >= 8.0 {
            Severity::High
        } else {
            Severity::Medium
        };
        let fp = t.fingerprint.to_string();
        out.push(
            Alert::about_type(
                Kind::Surge,
                alert_id(Kind::Surge, &fp, now_b),
                severity,
                t,
                rec.version.clone(),
                time,
                now_ms,
            )
            .with_sample(sample_of(rec, t, self.samples))
            .with_window(Some(stats))
            .with_samples(more_samples(t, rec, self.samples)),
        );
    }

    /// Emits storm alerts for minutes that event time has left behind, and
    /// the end record of storms that have been quiet for `storm_quiet`.
    pub fn on_watermark(&mut self, watermark: EventTime, now_ms: i64, out: &mut Vec<Alert>) {
        let minute = watermark.div_euclid(MINUTE_MS);
        let quiet = (self.cfg.storm_quiet.as_millis() / MINUTE_MS).max(1);
        let mut services: Vec<&String> = self
            .storms
            .iter()
            .filter(|(_, s)| {
                s.episode.as_ref().is_some_and(|ep| {
                    (ep.opened_by.is_none() && s.minute < minute)
                        || (watermark != EventTime::MAX && minute - ep.last_busy > quiet)
                })
            })
            .map(|(k, _)| k)
            .collect();
        services.sort();
        let services: Vec<String> = services.into_iter().cloned().collect();
        for svc in services {
            let Some(s) = self.storms.get_mut(&svc) else {
                continue;
            };
            if s.minute < minute {
                announce(&svc, s, now_ms, out);
            }
            if watermark != EventTime::MAX
                && let Some(ep) = s.episode.as_ref()
                && ep.opened_by.is_some()
                && minute - ep.last_busy > quiet
            {
                out.push(storm_end(
                    &svc,
                    ep,
                    (ep.last_busy + quiet + 1) * MINUTE_MS,
                    now_ms,
                ));
                s.episode = None;
            }
        }
    }

    /// End of input: flush every pending storm.
    pub fn finish(&mut self, now_ms: i64, out: &mut Vec<Alert>) {
        self.on_watermark(EventTime::MAX, now_ms, out);
    }
}

fn round3(x: f64) -> f64 {
    if x.is_finite() {
        (x * 1000.0).round() / 1000.0
    } else {
        0.0
    }
}

fn sample_of(rec: &Record, t: &ErrorType, mode: SampleMode) -> Option<String> {
    match mode {
        SampleMode::Raw => Some(rec.message.clone()),
        SampleMode::Masked => Some(t.template.clone()),
        SampleMode::None => None,
    }
}

fn more_samples(t: &ErrorType, rec: &Record, mode: SampleMode) -> Vec<String> {
    match mode {
        SampleMode::Raw => t
            .samples
            .iter()
            .filter(|s| **s != rec.message)
            .take(3)
            .cloned()
            .collect(),
        _ => Vec::new(),
    }
}

fn novel_alert(
    t: &ErrorType,
    rec: &Record,
    time: EventTime,
    now_ms: i64,
    mode: SampleMode,
) -> Alert {
    let severity = if rec.level == Some(Level::Fatal) {
        Severity::Critical
    } else {
        Severity::High
    };
    let fp = t.fingerprint.to_string();
    Alert::about_type(
        Kind::Novel,
        alert_id(Kind::Novel, &fp, 0),
        severity,
        t,
        rec.version.clone(),
        time,
        now_ms,
    )
    .with_sample(sample_of(rec, t, mode))
    .with_samples(more_samples(t, rec, mode))
}

/// Sends the storm alert of a service whose storm began in a minute that
/// has closed, if it has not gone out yet.
fn announce(service: &str, s: &mut StormMinute, now_ms: i64, out: &mut Vec<Alert>) {
    if s.episode.as_ref().is_some_and(|ep| ep.opened_by.is_none()) {
        let a = storm_alert(service, s, now_ms);
        if let Some(ep) = s.episode.as_mut() {
            ep.opened_by = Some(a.id.clone());
        }
        out.push(a);
        s.suppressed.clear();
        s.dropped = 0;
    }
}

/// Records a suppressed new type of the minute, keeping only what the
/// storm alert names: every entry counts 1, so [`top_of`] takes the
/// `STORM_TOP` smallest fingerprints, and those are the ones kept; the
/// rest are counted. A minute of a million new types held them all (and
/// the state rewrote them at every checkpoint: 3.4 MB per checkpoint at
/// 60,000 new types a minute, most of a checkpoint's cost).
fn suppress(s: &mut StormMinute, fp: Fingerprint, template: &str) {
    if s.suppressed.len() < STORM_TOP {
        s.suppressed.push((fp, template.to_string(), 1));
        return;
    }
    s.dropped += 1;
    if let Some(last) = s.suppressed.iter_mut().max_by_key(|e| e.0)
        && fp < last.0
    {
        *last = (fp, template.to_string(), 1);
    }
}

fn top_of(entries: &[(Fingerprint, String, u64)]) -> Vec<StormEntry> {
    let mut top: Vec<StormEntry> = entries
        .iter()
        .map(|(fp, tpl, n)| StormEntry {
            fingerprint: *fp,
            template: crate::fingerprint::delimited::readable(tpl).into_owned(),
            count: *n,
        })
        .collect();
    top.sort_by(|a, b| {
        b.count
            .cmp(&a.count)
            .then(a.fingerprint.cmp(&b.fingerprint))
    });
    top.truncate(STORM_TOP);
    top
}

fn storm_alert(service: &str, s: &StormMinute, now_ms: i64) -> Alert {
    let top = top_of(&s.suppressed);
    let total = (s.alerted + s.suppressed.len()) as u64 + s.dropped;
    let id = alert_id(Kind::Storm, service, s.minute);
    let unsettled = s.episode.as_ref().is_some_and(|ep| ep.unsettled);
    Alert::new(
        Kind::Storm,
        id.clone(),
        // A flood of new types is an incident; new types from a service
        // that mints them as a rule are its level: worth a look, not a page.
        if unsettled {
            Severity::Medium
        } else {
            Severity::Critical
        },
        service,
        if unsettled {
            format!(
                "{} new error types in one minute from a service without a stable \
                 vocabulary (most of its warm-up errors were new types)",
                total
            )
        } else {
            format!("{} new error types in one minute", total)
        },
        AlertTimes {
            first_seen: s.first_time,
            event_time: s.minute * MINUTE_MS,
            detected_at: now_ms,
        },
    )
    .with_version(s.version.clone())
    .with_window(Some(WindowStats {
        length_s: 60,
        count: total,
        baseline_rate_per_min: 0.0,
        rate_per_min: total as f64,
        ratio: 0.0,
        score: 0.0,
    }))
    .with_storm(Some(StormSummary {
        novel_types: total,
        top,
    }))
    .with_release(crate::alert::ReleaseFields {
        episode: Some(EpisodeInfo {
            of: Kind::Storm,
            opened_by: id,
            start: rfc3339(s.minute * MINUTE_MS),
            end: None,
            suppressed: s.suppressed.len() as u64 + s.dropped,
        }),
        ..Default::default()
    })
}

/// The `episode_end` record of a storm: its totals and first examples.
fn storm_end(service: &str, ep: &StormEpisode, end: EventTime, now_ms: i64) -> Alert {
    let opened_by = ep.opened_by.clone().unwrap_or_default();
    let minutes = (end / MINUTE_MS - ep.start_minute).max(1);
    Alert::new(
        Kind::EpisodeEnd,
        alert_id(Kind::EpisodeEnd, &opened_by, end / MINUTE_MS),
        Severity::Low,
        service,
        format!(
            "storm over: {} new error types in {} min ({} not alerted)",
            ep.total, minutes, ep.suppressed
        ),
        AlertTimes {
            first_seen: ep.start_minute * MINUTE_MS,
            event_time: end,
            detected_at: now_ms,
        },
    )
    .with_storm(Some(StormSummary {
        novel_types: ep.total,
        top: top_of(&ep.top),
    }))
    .with_release(crate::alert::ReleaseFields {
        episode: Some(EpisodeInfo {
            of: Kind::Storm,
            opened_by,
            start: rfc3339(ep.start_minute * MINUTE_MS),
            end: Some(rfc3339(end)),
            suppressed: ep.suppressed,
        }),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn judged(errors: u64, first: u64) -> Detector {
        let mut d = Detector::new(&Config::default());
        for i in 0..errors {
            d.learn_vocabulary("svc", i < first);
        }
        d
    }

    #[test]
    fn a_service_is_unsettled_only_with_enough_errors_and_mostly_first_sightings() {
        assert!(judged(20, 11).unsettled("svc"));
        assert!(!judged(20, 10).unsettled("svc"), "half is not more");
        assert!(!judged(19, 19).unsettled("svc"), "too few to judge");
        assert!(!judged(20, 20).unsettled("other"), "never seen");
    }

    #[test]
    fn the_vocabulary_map_stops_growing_at_the_service_bound() {
        let mut d = Detector::new(&Config::default());
        for i in 0..crate::series::MAX_SERVICES + 5 {
            d.learn_vocabulary(&format!("svc-{i}"), true);
        }
        assert_eq!(d.vocabulary.len(), crate::series::MAX_SERVICES);
    }

    #[test]
    fn the_vocabulary_survives_a_save_and_an_older_detector_loads_without_one() {
        let d = judged(30, 25);
        let json = serde_json::to_string(&d).expect("detector serialises");
        let mut back: Detector = serde_json::from_str(&json).expect("detector loads");
        back.reconfigure(&Config::default());
        assert!(back.unsettled("svc"));

        let old: Detector = serde_json::from_str(r#"{"storms":{}}"#).expect("old detector");
        assert!(old.vocabulary.is_empty());
    }
}
