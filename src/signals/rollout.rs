//! Latency and traffic in `rollout-check`'s verdict.
//!
//! The error-rate gate (`release::rollout::check`) decides first; this
//! adds the canary's latency comparison (the same test as
//! `latency_regression` alerts, over the gate's window) and both versions'
//! traffic to the evidence, and tightens the decision:
//!
//! * a significant latency regression holds at the current percentage
//!   (exit 1), unless the error rate already rolls back: latency that is
//!   worse but not failing requests is a reason to stop widening the
//!   canary and look, as the scenario (a) asks, not proof that the
//!   release is broken (a new version's caches and pools start cold, and
//!   a slower endpoint may be the price of a feature). docs/release.md
//!   argues it;
//! * an open `traffic_drop` of the service holds a `proceed`: something
//!   other than the error rate is wrong, and more traffic on the canary
//!   would not tell what.
//!
//! Too few timed requests to judge latency leave the decision as it was
//! and say so in the reason: services that log no durations must not be
//! held forever.

use crate::alert::Kind;
use crate::config::Config;
use crate::release::rollout::{Decision, RolloutRequest, TrafficEvidence, Verdict};
use crate::series::{MINUTE_MS, Rates};

use super::Signals;
use super::detect::{compare, regressed};

/// Adds latency and traffic to `verdict` for the window it judged.
pub fn amend(
    verdict: &mut Verdict,
    signals: &Signals,
    rates: &Rates,
    cfg: &Config,
    req: &RolloutRequest,
) {
    if !cfg.signals.enabled {
        return;
    }
    let (Some(from), Some(until)) = (
        parse(&verdict.evidence.window.from),
        parse(&verdict.evidence.window.until),
    ) else {
        return;
    };
    let (fm, tm) = (from.div_euclid(MINUTE_MS), until.div_euclid(MINUTE_MS) - 1);
    let svc = &req.service;
    let latency = compare(signals, cfg, svc, &req.stable, &req.canary, (fm, tm));
    let regression = latency.as_ref().map(|c| regressed(c, cfg));
    let (measure, stable, canary) = {
        let s = signals.version_requests(svc, &req.stable, from, until);
        let c = signals.version_requests(svc, &req.canary, from, until);
        if s + c > 0 {
            ("requests", s, c)
        } else {
            let lines = |v: &str| {
                rates
                    .get(svc)
                    .and_then(|m| m.get(v))
                    .map_or(0, |r| r.timeline.range(from, until).lines)
            };
            ("lines", lines(&req.stable), lines(&req.canary))
        }
    };
    let open = signals.watch.traffic.get(svc).map(|e| e.kind);
    verdict.evidence.traffic = Some(TrafficEvidence {
        measure: measure.into(),
        stable,
        canary,
        canary_percent: if stable + canary == 0 {
            0.0
        } else {
            (canary as f64 * 1000.0 / (stable + canary) as f64).round() / 10.0
        },
        open_episode: open,
    });
    match (&latency, regression) {
        (Some(c), Some(true)) => {
            let q = (c.quantile * 100.0).round();
            let why = format!(
                "p{q} latency {:.1} ms in {} vs {:.1} ms in {} (p = {:.1e})",
                c.canary.p95_ms,
                req.canary,
                c.stable.as_ref().map_or(0.0, |s| s.p95_ms),
                req.stable,
                c.p_value
            );
            if verdict.decision != Decision::Proceed {
                verdict.reason = format!("{}; {why}", verdict.reason);
            } else {
                let rest = verdict.reason.trim_start_matches("proceed: ");
                verdict.reason = format!("hold: {why}; otherwise {rest}");
                verdict.decision = Decision::Hold;
                verdict.proceed = false;
                verdict.next_percentage = req.current_percentage;
            }
        }
        (Some(c), Some(false)) if verdict.decision == Decision::Proceed => {
            let enough = c.canary.requests >= cfg.signals.latency_min_requests;
            verdict.reason.push_str(&if enough {
                format!(
                    "; latency not significantly worse (p95 {:.1} ms vs {:.1} ms)",
                    c.canary.p95_ms,
                    c.stable.as_ref().map_or(0.0, |s| s.p95_ms)
                )
            } else {
                format!(
                    "; latency not judged yet ({} timed requests of {}, need {})",
                    c.canary.requests, req.canary, cfg.signals.latency_min_requests
                )
            });
        }
        _ => {}
    }
    if open == Some(Kind::TrafficDrop) && verdict.decision == Decision::Proceed {
        verdict.decision = Decision::Hold;
        verdict.proceed = false;
        verdict.next_percentage = req.current_percentage;
        verdict.reason = format!(
            "hold: {svc} is in a traffic drop ({measure} far below its own recent baseline); {}",
            verdict.reason
        );
    }
    verdict.evidence.latency = latency;
    verdict.evidence.latency_regression = regression;
}

fn parse(s: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|d| d.timestamp_millis())
}
