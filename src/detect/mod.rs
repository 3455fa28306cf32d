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
//!
//! Ids hash (kind, subject, episode) — never wall-clock or arrival order —
//! so a replay, a restart or another instance produces the same ids.

pub mod stats;

use std::collections::HashMap;

use crate::alert::{
    Alert, AlertTimes, Kind, Severity, StormEntry, StormSummary, WindowStats, alert_id,
};
use crate::baseline::{Baseline, ErrorType};
use crate::config::{Config, DetectConfig, SampleMode};
use crate::fingerprint::Fingerprint;
use crate::record::{EventTime, Level, Record};

const MINUTE_MS: i64 = 60_000;

#[derive(Debug, Default, serde::Serialize, serde::Deserialize, Clone)]
struct StormMinute {
    minute: i64,
    alerted: usize,
    suppressed: Vec<(Fingerprint, String, u64)>,
    first_time: EventTime,
    version: Option<String>,
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
}

impl Detector {
    pub fn new(cfg: &Config) -> Detector {
        Detector {
            cfg: cfg.detect.clone(),
            samples: cfg.alerts.samples,
            storms: HashMap::new(),
        }
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
        if !t.novel_done && !learning {
            t.novel_done = true;
            if self.cfg.novel {
                let minute = time.div_euclid(MINUTE_MS);
                let s = self.storms.entry(t.service().to_string()).or_default();
                if s.minute != minute {
                    // A new minute: the previous one's storm (if any) is
                    // flushed by `on_watermark`; start counting afresh.
                    if !s.suppressed.is_empty() {
                        out.push(storm_alert(t.service(), s, now_ms));
                    }
                    *s = StormMinute {
                        minute,
                        first_time: time,
                        ..StormMinute::default()
                    };
                }
                if s.alerted < self.cfg.storm_per_minute {
                    s.alerted += 1;
                    out.push(novel_alert(t, rec, time, now_ms, self.samples));
                } else {
                    if s.suppressed.is_empty() {
                        s.first_time = time;
                        s.version = rec.version.clone();
                    }
                    s.suppressed.push((t.fingerprint, t.template.clone(), 1));
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
        let p = stats::poisson_sf(recent, expected);
        let surging = recent >= cfg.surge_min_count
            && ratio >= cfg.surge_min_ratio
            && recent > peak
            && p < cfg.surge_p_value;
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
            Alert::new(
                Kind::Surge,
                alert_id(Kind::Surge, &fp, now_b),
                severity,
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
            .with_sample(sample_of(rec, t, self.samples))
            .with_window(Some(stats))
            .with_samples(more_samples(t, rec, self.samples)),
        );
    }

    /// Emits storm summaries for minutes that event time has left behind.
    pub fn on_watermark(&mut self, watermark: EventTime, now_ms: i64, out: &mut Vec<Alert>) {
        let minute = watermark.div_euclid(MINUTE_MS);
        let mut services: Vec<&String> = self
            .storms
            .iter()
            .filter(|(_, s)| s.minute < minute && !s.suppressed.is_empty())
            .map(|(k, _)| k)
            .collect();
        services.sort();
        let services: Vec<String> = services.into_iter().cloned().collect();
        for svc in services {
            if let Some(s) = self.storms.get_mut(&svc) {
                out.push(storm_alert(&svc, s, now_ms));
                s.suppressed.clear();
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
    Alert::new(
        Kind::Novel,
        alert_id(Kind::Novel, &fp, 0),
        severity,
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
    .with_sample(sample_of(rec, t, mode))
    .with_samples(more_samples(t, rec, mode))
}

fn storm_alert(service: &str, s: &StormMinute, now_ms: i64) -> Alert {
    let mut top: Vec<StormEntry> = s
        .suppressed
        .iter()
        .map(|(fp, tpl, n)| StormEntry {
            fingerprint: *fp,
            template: tpl.clone(),
            count: *n,
        })
        .collect();
    top.sort_by(|a, b| {
        b.count
            .cmp(&a.count)
            .then(a.fingerprint.cmp(&b.fingerprint))
    });
    top.truncate(10);
    let total = (s.alerted + s.suppressed.len()) as u64;
    Alert::new(
        Kind::Storm,
        alert_id(Kind::Storm, service, s.minute),
        Severity::Critical,
        service,
        format!("{} new error types in one minute", total),
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
}
