//! Latency sketches: one mergeable DDSketch per service × version × minute
//! (and hour), and the canary test on them.
//!
//! Why DDSketch (the `sketches-ddsketch` crate, a port of Datadog's
//! reference implementation): its error is *relative* and guaranteed —
//! every quantile it returns lies within `α` (default 1 %) of a true
//! sample quantile's value, whatever the distribution — and sketches merge
//! exactly, so a 30-minute p95 is the p95 of the merged minute sketches,
//! not an average of per-minute p95s (which is no quantile at all). Its
//! store grows in chunks of 128 bins and collapses the lowest bins beyond
//! [`MAX_BINS`], so a sketch never takes more than 8 KiB whatever it is
//! fed. A t-digest would be smaller but gives no bound on its error.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};
use sketches_ddsketch::{Config as SketchConfig, DDSketch};

use crate::detect::stats::binomial_sf;

/// Bins per sketch: with α = 1 % this spans 1 µs to 10+ minutes before the
/// lowest bins collapse (and only the lowest quantiles lose accuracy then).
pub const MAX_BINS: u32 = 1024;
/// The smallest duration told apart from zero, in milliseconds (1 µs).
const MIN_MS: f64 = 1e-3;

/// A quantile sketch of request durations in milliseconds.
#[derive(Clone, Serialize, Deserialize)]
pub struct Sketch(DDSketch);

impl std::fmt::Debug for Sketch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sketch(n={})", self.0.count())
    }
}

impl PartialEq for Sketch {
    fn eq(&self, o: &Sketch) -> bool {
        self.0.count() == o.0.count() && self.0.sum() == o.0.sum()
    }
}

impl Sketch {
    pub fn new(alpha: f64) -> Sketch {
        Sketch(DDSketch::new(SketchConfig::new(alpha, MAX_BINS, MIN_MS)))
    }

    pub fn add(&mut self, ms: f64) {
        self.0.add(ms);
    }

    pub fn count(&self) -> u64 {
        self.0.count() as u64
    }

    /// Merges `o` in; sketches of another accuracy are skipped (a changed
    /// `signals.relative_accuracy` starts new sketches; old ones age out).
    pub fn merge(&mut self, o: &Sketch) {
        let _ = self.0.merge(&o.0);
    }

    /// The `q` quantile in milliseconds; `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        self.0.quantile(q.clamp(0.0, 1.0)).ok().flatten()
    }

    /// How many values are above `ms`, counted conservatively: a value is
    /// only counted when the sketch can tell it lies above (its quantile
    /// estimate exceeds `ms` by the relative accuracy). Found by bisection
    /// on the rank, each step one quantile query.
    pub fn count_above(&self, ms: f64, alpha: f64) -> u64 {
        let n = self.count();
        if n == 0 {
            return 0;
        }
        let bar = ms * (1.0 + alpha);
        // Smallest rank r (0..n) whose value exceeds `bar`.
        let (mut lo, mut hi) = (0u64, n);
        while lo < hi {
            let mid = (lo + hi) / 2;
            let q = if n == 1 {
                0.0
            } else {
                mid as f64 / (n - 1) as f64
            };
            match self.quantile(q) {
                Some(v) if v > bar => hi = mid,
                _ => lo = mid + 1,
            }
        }
        n - lo
    }
}

/// Sketches per unit (minute or hour number), newest last, at most `keep`
/// units back from the newest.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SketchSeries {
    points: VecDeque<(i64, Sketch)>,
}

impl SketchSeries {
    /// Adds `ms` to unit `t`; false when `t` is older than what is kept.
    pub fn add(&mut self, t: i64, ms: f64, keep: i64, alpha: f64) -> bool {
        match self.points.back_mut() {
            Some((last, s)) if *last == t => {
                s.add(ms);
                return true;
            }
            Some((last, _)) if *last > t => {
                if t <= *last - keep {
                    return false;
                }
                match self.points.binary_search_by_key(&t, |p| p.0) {
                    Ok(i) => self.points[i].1.add(ms),
                    Err(i) => {
                        let mut s = Sketch::new(alpha);
                        s.add(ms);
                        self.points.insert(i, (t, s));
                    }
                }
                return true;
            }
            _ => {}
        }
        let mut s = Sketch::new(alpha);
        s.add(ms);
        self.points.push_back((t, s));
        while self.points.front().is_some_and(|f| f.0 <= t - keep) {
            self.points.pop_front();
        }
        true
    }

    /// The merged sketch of units `from..=to`, `None` when it holds none.
    pub fn merged(&self, from: i64, to: i64) -> Option<Sketch> {
        let mut out: Option<Sketch> = None;
        for (t, s) in self.points.iter().rev() {
            if *t < from {
                break;
            }
            if *t > to {
                continue;
            }
            match &mut out {
                Some(o) => o.merge(s),
                None => out = Some(s.clone()),
            }
        }
        out
    }

    pub fn iter(&self) -> impl Iterator<Item = &(i64, Sketch)> {
        self.points.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }
}

/// The canary test's verdict.
#[derive(Clone, Debug, PartialEq)]
pub struct CanaryTest {
    /// `factor` × the stable quantile: canary requests are counted above it.
    pub threshold_ms: f64,
    /// Canary requests counted above the threshold.
    pub above: u64,
    /// The stable version's share of requests above its own quantile (≈
    /// 1 − q): what the canary's share above the threshold may be at most.
    pub expected_share: f64,
    pub p_value: f64,
}

/// Is the canary's `q` quantile worse than `factor` × the stable one's?
///
/// Let `t` be the stable version's `q` quantile. A canary no worse than
/// `factor` × stable has at most the stable share of requests above `t`
/// above `factor·t`. So count the stable requests above `t` (`k_s` of
/// `n_s`) and the canary requests above `factor·t` (`k_c` of `n_c`); if the
/// shares were equal, `k_c` given `k_s + k_c` would be binomial with the
/// canary's share of requests `n_c / (n_s + n_c)` — the conditional test
/// of two Poisson rates, the same the error-rate canary uses. Its upper
/// tail is the p-value. Small samples thus need a large difference, and
/// both counts are taken so that the sketch's relative error (`alpha`)
/// works against a regression: stable values that may lie above `t` are
/// counted, canary values only when they surely lie above `factor·t`.
pub fn canary_test(
    stable: &Sketch,
    canary: &Sketch,
    q: f64,
    factor: f64,
    alpha: f64,
) -> Option<CanaryTest> {
    let n_s = stable.count();
    let n_c = canary.count();
    if n_s == 0 || n_c == 0 {
        return None;
    }
    let t = stable.quantile(q)?;
    // `count_above(x)` counts estimates above x(1+α): every true value
    // above t has an estimate above t(1−α).
    let k_s = stable.count_above(t * (1.0 - alpha) / (1.0 + alpha), alpha);
    let threshold_ms = t * factor;
    let k_c = canary.count_above(threshold_ms, alpha);
    let share = n_c as f64 / (n_s + n_c) as f64;
    Some(CanaryTest {
        threshold_ms,
        above: k_c,
        expected_share: k_s as f64 / n_s as f64,
        p_value: binomial_sf(k_c, k_s + k_c, share),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// z with P(Z > z) = p for a standard normal (Acklam's rational
    /// approximation of the inverse, relative error < 1.2e-9 — far below what
    /// a confidence bound needs).
    fn normal_upper_z(p: f64) -> f64 {
        let p = p.clamp(1e-300, 0.5);
        // Lower-tail region of Acklam's algorithm for P(Z < -z) = p.
        const C: [f64; 6] = [
            -7.784_894_002_430_293e-3,
            -3.223_964_580_411_365e-1,
            -2.400_758_277_161_838,
            -2.549_732_539_343_734,
            4.374_664_141_464_968,
            2.938_163_982_698_783,
        ];
        const D: [f64; 4] = [
            7.784_695_709_041_462e-3,
            3.224_671_290_700_398e-1,
            2.445_134_137_142_996,
            3.754_408_661_907_416,
        ];
        const A: [f64; 6] = [
            -3.969_683_028_665_376e1,
            2.209_460_984_245_205e2,
            -2.759_285_104_469_687e2,
            1.383_577_518_672_69e2,
            -3.066_479_806_614_716e1,
            2.506_628_277_459_239,
        ];
        const B: [f64; 5] = [
            -5.447_609_879_822_406e1,
            1.615_858_368_580_409e2,
            -1.556_989_798_598_866e2,
            6.680_131_188_771_972e1,
            -1.328_068_155_288_572e1,
        ];
        let x = if p < 0.02425 {
            let q = (-2.0 * p.ln()).sqrt();
            (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
                / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
        } else {
            let q = p - 0.5;
            let r = q * q;
            (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
                / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
        };
        -x
    }

    /// Deterministic log-normal-ish durations: `median` × e^(σ·z) over an
    /// even grid of normal quantiles, shuffled by a stride.
    fn durations(n: usize, median: f64, sigma: f64) -> Vec<f64> {
        (0..n)
            .map(|i| {
                let u = ((i * 7919) % n) as f64 / n as f64 + 0.5 / n as f64;
                let z = if u < 0.5 {
                    -normal_upper_z(u)
                } else {
                    normal_upper_z(1.0 - u)
                };
                median * (sigma * z).exp()
            })
            .collect()
    }

    fn sketch(v: &[f64]) -> Sketch {
        let mut s = Sketch::new(0.01);
        for &x in v {
            s.add(x);
        }
        s
    }

    #[test]
    fn the_normal_quantile_matches_known_values() {
        assert!((normal_upper_z(0.05) - 1.644_853_6).abs() < 1e-6);
        assert!((normal_upper_z(1e-3) - 3.090_232_3).abs() < 1e-6);
        assert!(normal_upper_z(0.5).abs() < 1e-9);
    }

    #[test]
    fn quantiles_are_within_the_relative_accuracy() {
        let v = durations(10_000, 100.0, 0.5);
        let s = sketch(&v);
        let mut sorted = v.clone();
        sorted.sort_by(f64::total_cmp);
        for q in [0.5, 0.95, 0.99] {
            let truth = sorted[(q * (sorted.len() - 1) as f64) as usize];
            let got = s.quantile(q).unwrap();
            assert!(
                (got - truth).abs() <= 0.011 * truth,
                "q{q}: {got} vs {truth}"
            );
        }
    }

    #[test]
    fn counts_above_a_value_match_the_data_within_a_bin() {
        let v = durations(5_000, 100.0, 0.5);
        let s = sketch(&v);
        let truth = v.iter().filter(|&&x| x > 200.0).count() as u64;
        let got = s.count_above(200.0, 0.01);
        assert!(got <= truth, "conservative: {got} > {truth}");
        let near = v.iter().filter(|&&x| x > 200.0 * 1.03).count() as u64;
        assert!(got >= near, "{got} < {near}");
    }

    #[test]
    fn merged_minutes_give_the_quantile_of_all_their_values() {
        let v = durations(6_000, 50.0, 0.7);
        let mut series = SketchSeries::default();
        for (i, &x) in v.iter().enumerate() {
            series.add(i as i64 % 6, x, 180, 0.01);
        }
        let merged = series.merged(0, 5).unwrap();
        let all = sketch(&v);
        assert_eq!(merged.count(), 6_000);
        assert_eq!(merged.quantile(0.95), all.quantile(0.95));
    }

    #[test]
    fn a_canary_30_percent_slower_fails_with_enough_requests() {
        let stable = sketch(&durations(9_000, 100.0, 0.5));
        let canary = sketch(&durations(1_000, 130.0, 0.5));
        let t = canary_test(&stable, &canary, 0.95, 1.1, 0.01).unwrap();
        assert!(t.p_value < 1e-3, "{t:?}");
    }

    #[test]
    fn the_same_distribution_never_fails_whatever_the_sample_size() {
        for n in [20, 200, 2_000, 20_000] {
            let stable = sketch(&durations(n * 9, 100.0, 0.5));
            let canary = sketch(&durations(n, 100.0, 0.5));
            let t = canary_test(&stable, &canary, 0.95, 1.1, 0.01).unwrap();
            assert!(t.p_value > 0.05, "n = {n}: {t:?}");
        }
    }

    #[test]
    fn a_small_canary_sample_needs_a_large_difference() {
        let stable = sketch(&durations(900, 100.0, 0.5));
        let canary = sketch(&durations(30, 130.0, 0.5));
        let t = canary_test(&stable, &canary, 0.95, 1.1, 0.01).unwrap();
        assert!(t.p_value > 1e-3, "{t:?}");
    }
}
