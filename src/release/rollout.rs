//! `rollout-check`: should a canary rollout go on?
//!
//! A CD pipeline asks between two steps. The answer is computed from the
//! same counts and the same test as `canary_regression` alerts, over the
//! last `window` of event time up to the state's watermark, and says what to
//! do next: the next traffic step, hold (not enough traffic to tell) or roll
//! back (significantly worse), with the evidence.

use serde::Serialize;

use super::Ledger;
use crate::alert::{CanaryComparison, rfc3339};
use crate::config::{Config, Dur};
use crate::fingerprint::Fingerprint;

use super::series::MINUTE_MS;
use super::{TypeComparison, compare_service};

/// What the pipeline asks.
#[derive(Clone, Debug)]
pub struct RolloutRequest {
    pub service: String,
    pub stable: String,
    pub canary: String,
    pub current_percentage: u32,
    /// Defaults to `release.canary_window`.
    pub window: Option<Dur>,
}

/// What to do next, printed as JSON.
#[derive(Clone, Debug, Serialize)]
pub struct Verdict {
    /// What to do: `proceed`, `hold` (not enough traffic to judge yet) or
    /// `roll_back` (the canary is significantly worse). `proceed` below
    /// says the same for older readers.
    pub decision: Decision,
    pub proceed: bool,
    pub next_percentage: u32,
    pub reason: String,
    pub evidence: Evidence,
}

/// The gate's answer; `faultline rollout-check` maps it to its exit code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Proceed,
    Hold,
    RollBack,
}

#[derive(Clone, Debug, Serialize)]
pub struct Evidence {
    pub service: String,
    pub window: WindowSpan,
    /// Overall error rate of both versions (per 1,000 lines), ratio, p-value.
    pub error_rate: CanaryComparison,
    pub error_rate_regression: bool,
    /// Types that never occurred in the stable version.
    pub new_in_canary: Vec<NewInCanary>,
    /// Every type with errors in the window, most significant first.
    pub types: Vec<TypeComparison>,
    /// The canary's latency against the stable version's (`signals`);
    /// absent when either logs no durations in the window.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency: Option<crate::alert::LatencyComparison>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_regression: Option<bool>,
    /// Requests (or lines) of both versions in the window and any open
    /// traffic episode of the service (`signals`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub traffic: Option<TrafficEvidence>,
}

/// Traffic of both versions over the window.
#[derive(Clone, Debug, Serialize)]
pub struct TrafficEvidence {
    /// `requests` or `lines` (the service logs no request fields).
    pub measure: String,
    pub stable: u64,
    pub canary: u64,
    /// The canary's share of the two, in percent.
    pub canary_percent: f64,
    /// `traffic_drop` or `traffic_spike` when the service is in one now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub open_episode: Option<crate::alert::Kind>,
}

#[derive(Clone, Debug, Serialize)]
pub struct WindowSpan {
    pub from: String,
    pub until: String,
    pub minutes: i64,
}

#[derive(Clone, Debug, Serialize)]
pub struct NewInCanary {
    pub fingerprint: Fingerprint,
    pub template: String,
    pub first_seen: String,
    /// Occurrences in the window.
    pub count: u64,
    pub p_value: f64,
    /// Significant (enough occurrences given the canary's share of lines).
    pub regression: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum RolloutError {
    #[error("the state has no records yet")]
    Empty,
    #[error("service `{0}` has no records in the state")]
    UnknownService(String),
    #[error("window {0} is longer than the {1} minutes of history kept")]
    WindowTooLong(Dur, i64),
}

/// Judges the canary. Pure: the same state gives the same verdict.
pub fn check(
    state: &Ledger<'_>,
    cfg: &Config,
    req: &RolloutRequest,
) -> Result<Verdict, RolloutError> {
    let watermark = state.watermark.ok_or(RolloutError::Empty)?;
    if !state.rates.contains_key(&req.service) {
        return Err(RolloutError::UnknownService(req.service.clone()));
    }
    let window = req.window.unwrap_or(cfg.release.canary_window);
    let w = (window.as_millis() / MINUTE_MS).max(1);
    if w > super::series::MINUTES_KEPT {
        return Err(RolloutError::WindowTooLong(
            window,
            super::series::MINUTES_KEPT,
        ));
    }
    // The current minute counts: a pipeline asking now wants the latest.
    let to = watermark.div_euclid(MINUTE_MS);
    let from = to - w + 1;
    let rc = &cfg.release;
    let cmp = compare_service(state, rc, &req.service, &req.stable, &req.canary, from, to);
    let new_in_canary: Vec<NewInCanary> = cmp
        .types
        .iter()
        .filter(|t| t.only_in_canary)
        .map(|t| NewInCanary {
            fingerprint: t.fingerprint,
            template: t.template.clone(),
            first_seen: t.first_seen.clone(),
            count: t.cmp.canary.errors,
            p_value: t.cmp.p_value,
            regression: t.regression,
        })
        .collect();
    let er = &cmp.error_rate;
    let worse_types: Vec<&TypeComparison> = cmp.types.iter().filter(|t| t.regression).collect();
    let (decision, next, reason) = if er.canary.lines < rc.min_lines
        || er.stable.lines < rc.min_lines
    {
        (
            Decision::Hold,
            req.current_percentage,
            format!(
                "hold: not enough traffic to judge ({} lines of {} and {} of {} in the last {w} min; need {} each)",
                er.canary.lines, req.canary, er.stable.lines, req.stable, rc.min_lines
            ),
        )
    } else if cmp.error_rate_regression || !worse_types.is_empty() {
        let mut why = Vec::new();
        if cmp.error_rate_regression {
            why.push(format!(
                "error rate {:.2} ‰ vs {:.2} ‰ ({}, p = {:.1e})",
                er.canary.per_1000,
                er.stable.per_1000,
                er.ratio
                    .map_or("stable has none".into(), |r| format!("{r:.2}×")),
                er.p_value
            ));
        }
        if !worse_types.is_empty() {
            let n_new = worse_types.iter().filter(|t| t.only_in_canary).count();
            why.push(format!(
                "{} error type(s) significantly worse in {} ({} of them never seen in {}): {}",
                worse_types.len(),
                req.canary,
                n_new,
                req.stable,
                worse_types
                    .iter()
                    .take(3)
                    .map(|t| t.template.as_str())
                    .collect::<Vec<_>>()
                    .join("; ")
            ));
        }
        (
            Decision::RollBack,
            0,
            format!("roll back: {}", why.join("; ")),
        )
    } else {
        let next = rc
            .steps
            .iter()
            .copied()
            .find(|&p| p > req.current_percentage)
            .unwrap_or(100);
        (
            Decision::Proceed,
            next,
            format!(
                "proceed: {} is not significantly worse than {} over the last {w} min (error rate {:.2} ‰ vs {:.2} ‰, p = {:.2}; {} type(s) seen only in the canary, none significant)",
                req.canary,
                req.stable,
                er.canary.per_1000,
                er.stable.per_1000,
                er.p_value,
                new_in_canary.len()
            ),
        )
    };
    Ok(Verdict {
        decision,
        proceed: decision == Decision::Proceed,
        next_percentage: next,
        reason,
        evidence: Evidence {
            service: req.service.clone(),
            window: WindowSpan {
                from: rfc3339(from * MINUTE_MS),
                until: rfc3339((to + 1) * MINUTE_MS),
                minutes: w,
            },
            error_rate: cmp.error_rate.clone(),
            error_rate_regression: cmp.error_rate_regression,
            new_in_canary,
            types: cmp.types,
            latency: None,
            latency_regression: None,
            traffic: None,
        },
    })
}
