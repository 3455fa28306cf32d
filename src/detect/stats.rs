//! Small-count statistics for surge detection.
//!
//! A bare ratio misfires on low counts (2 → 6 is "3×" and means nothing).
//! The Poisson upper tail asks the right question — how likely is a count
//! this high if the type kept its usual rate? — and behaves at 0, 1 or 2.

/// ln Γ(x) for x > 0 (Lanczos, g = 7, n = 9; ~15 significant digits).
pub fn ln_gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection keeps the approximation in its accurate range.
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = C[0];
    let t = x + G + 0.5;
    for (i, c) in C.iter().enumerate().skip(1) {
        a += c / (x + i as f64);
    }
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

/// P(X ≥ k) for X ~ Poisson(λ): the chance of seeing at least `k` events
/// when `lambda` were expected.
pub fn poisson_sf(k: u64, lambda: f64) -> f64 {
    if k == 0 {
        return 1.0;
    }
    if lambda <= 0.0 {
        return 0.0;
    }
    let k = k as f64;
    if k <= lambda {
        // Not above expectation: never significant, no need to be exact.
        return 1.0;
    }
    // Σ_{i≥k} e^{-λ} λ^i / i!, summed from the first term; the terms fall
    // geometrically once i > λ, so this converges quickly.
    let ln_first = -lambda + k * lambda.ln() - ln_gamma(k + 1.0);
    let mut term = 1.0;
    let mut sum = 1.0;
    let mut i = k;
    loop {
        i += 1.0;
        term *= lambda / i;
        sum += term;
        if term < sum * 1e-15 || i > k + 100_000.0 {
            break;
        }
    }
    (ln_first + sum.ln()).exp().min(1.0)
}

/// Index of dispersion of per-bucket counts (variance / mean), at least 1
/// and at most `max`: how much clumpier than a Poisson stream a series is.
/// 1 when the series is empty or all zero.
pub fn dispersion(counts: impl Iterator<Item = u64>, max: f64) -> f64 {
    let (mut n, mut sum, mut sq) = (0f64, 0f64, 0f64);
    for c in counts {
        let c = c as f64;
        n += 1.0;
        sum += c;
        sq += c * c;
    }
    if n < 2.0 || sum == 0.0 {
        return 1.0;
    }
    let mean = sum / n;
    let var = (sq - n * mean * mean) / (n - 1.0);
    (var / mean).clamp(1.0, max.max(1.0))
}

/// P(X ≥ k) for X ~ Binomial(n, p): the canary test. Given n errors over
/// both versions, each lands in the canary with probability p (its share
/// of lines) if both versions err at the same rate.
pub fn binomial_sf(k: u64, n: u64, p: f64) -> f64 {
    if k == 0 {
        return 1.0;
    }
    if k > n {
        return 0.0;
    }
    if p <= 0.0 {
        return 0.0;
    }
    if p >= 1.0 {
        return 1.0;
    }
    let (nf, lp, lq) = (n as f64, p.ln(), (1.0 - p).ln());
    let ln_pmf = |i: f64| {
        ln_gamma(nf + 1.0) - ln_gamma(i + 1.0) - ln_gamma(nf - i + 1.0) + i * lp + (nf - i) * lq
    };
    let mean = nf * p;
    if (k as f64) > mean {
        // Upper tail: terms fall once past the mean, sum until negligible.
        let mut sum = 0.0;
        for i in k..=n {
            let t = ln_pmf(i as f64).exp();
            sum += t;
            if t < sum * 1e-16 {
                break;
            }
        }
        sum.min(1.0)
    } else {
        // At or below the mean: 1 − lower tail, summed downwards.
        let mut sum = 0.0;
        for i in (0..k).rev() {
            let t = ln_pmf(i as f64).exp();
            sum += t;
            if t < sum * 1e-16 {
                break;
            }
        }
        (1.0 - sum).clamp(0.0, 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ln_gamma_matches_factorials() {
        assert!((ln_gamma(1.0)).abs() < 1e-12);
        assert!((ln_gamma(5.0) - 24f64.ln()).abs() < 1e-10);
        assert!((ln_gamma(11.0) - 3_628_800f64.ln()).abs() < 1e-9);
    }

    #[test]
    fn poisson_tail_matches_known_values() {
        // P(X ≥ 3 | λ=1) = 1 − e^{-1}(1 + 1 + 1/2) = 0.0803013970713942
        assert!((poisson_sf(3, 1.0) - 0.080_301_397_071_394_2).abs() < 1e-12);
        assert_eq!(poisson_sf(0, 5.0), 1.0);
        assert_eq!(poisson_sf(2, 5.0), 1.0);
    }

    #[test]
    fn binomial_tail_matches_known_values() {
        // P(X ≥ 2 | n=3, p=0.5) = (3 + 1) / 8
        assert!((binomial_sf(2, 3, 0.5) - 0.5).abs() < 1e-12);
        assert!((binomial_sf(1, 2, 0.1) - 0.19).abs() < 1e-12);
        assert_eq!(binomial_sf(0, 5, 0.3), 1.0);
        assert_eq!(binomial_sf(6, 5, 0.3), 0.0);
    }

    #[test]
    fn three_against_two_is_noise_but_ten_only_in_a_tenth_is_not() {
        assert!(binomial_sf(3, 5, 0.5) > 0.1);
        assert!(binomial_sf(10, 10, 0.1) < 1e-9);
    }

    #[test]
    fn clumped_counts_are_over_dispersed_and_steady_ones_are_not() {
        let steady = [2u64, 3, 2, 1, 2, 3, 2, 2, 1, 2];
        assert_eq!(dispersion(steady.into_iter(), 100.0), 1.0);
        let mut clumps = vec![0u64; 60];
        clumps[10] = 12;
        clumps[40] = 9;
        let phi = dispersion(clumps.into_iter(), 100.0);
        assert!(phi > 8.0, "{phi}");
        assert_eq!(dispersion(std::iter::empty(), 100.0), 1.0);
    }

    #[test]
    fn a_burst_of_a_clumpy_type_is_not_significant_under_its_own_dispersion() {
        // 12 in the window against 0.8 expected: "one in a billion" for a
        // Poisson stream, ordinary for a type that errs in clumps of ten.
        assert!(poisson_sf(12, 0.8) < 1e-9);
        let phi = 9.0;
        assert!(poisson_sf((12.0f64 / phi).floor() as u64, 0.8 / phi) > 1e-3);
    }

    #[test]
    fn small_counts_are_not_significant_but_large_jumps_are() {
        assert!(poisson_sf(6, 2.0) > 1e-3, "2 → 6 is noise");
        assert!(poisson_sf(100, 10.0) < 1e-30, "10 → 100 is a surge");
    }
}
