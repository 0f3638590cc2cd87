//! Significance tests and multiple-testing control for the findings.
//!
//! Small cells get Fisher's exact test, large ones the normal approximation;
//! every p-value of a run goes through one Benjamini-Hochberg family, so a
//! finding is never claimed from one or two anecdotes among hundreds tried.

/// Two-sided p-value of a standard normal statistic.
pub fn normal_two_sided(z: f64) -> f64 {
    if !z.is_finite() {
        return if z.is_nan() { 1.0 } else { 0.0 };
    }
    libm::erfc(z.abs() / std::f64::consts::SQRT_2).min(1.0)
}

fn ln_choose(n: f64, k: f64) -> f64 {
    libm::lgamma(n + 1.0) - libm::lgamma(k + 1.0) - libm::lgamma(n - k + 1.0)
}

/// Longest tail that Fisher's test sums before the normal approximation is used.
const MAX_EXACT_TERMS: u64 = 20_000;

/// Two-sided p-value that the share `x / n` differs from `y / m`.
///
/// Fisher's exact test (doubled smaller tail) when any expected count is under
/// 10, else the pooled two-proportion z-test.
pub fn two_proportions(x: u64, n: u64, y: u64, m: u64) -> f64 {
    if n == 0 || m == 0 {
        return 1.0;
    }
    let (k, total) = (x + y, n + m);
    let (nf, mf, kf, tf) = (n as f64, m as f64, k as f64, total as f64);
    let expected_min = [
        nf * kf / tf,
        nf * (tf - kf) / tf,
        mf * kf / tf,
        mf * (tf - kf) / tf,
    ]
    .into_iter()
    .fold(f64::INFINITY, f64::min);
    let lo = k.saturating_sub(m);
    let hi = k.min(n);
    if expected_min < 10.0 && hi - lo <= MAX_EXACT_TERMS {
        // hypergeometric: x ~ H(total, k, n)
        let ln_denom = ln_choose(tf, nf);
        let pmf = |i: u64| {
            (ln_choose(kf, i as f64) + ln_choose(tf - kf, (n - i) as f64) - ln_denom).exp()
        };
        let lower: f64 = (lo..=x).map(pmf).sum();
        let upper: f64 = (x..=hi).map(pmf).sum();
        return (2.0 * lower.min(upper)).min(1.0);
    }
    let p = kf / tf;
    let se = (p * (1.0 - p) * (1.0 / nf + 1.0 / mf)).sqrt();
    if se == 0.0 {
        return 1.0;
    }
    normal_two_sided((x as f64 / nf - y as f64 / mf) / se)
}

/// Two-sided p-value that two means differ (Welch's z on large samples), from
/// count, sum and sum of squares of each group.
pub fn two_means(a: (f64, f64, f64), b: (f64, f64, f64)) -> f64 {
    let var = |(n, s, q): (f64, f64, f64)| {
        if n < 2.0 {
            f64::NAN
        } else {
            ((q - s * s / n) / (n - 1.0)).max(0.0)
        }
    };
    let (va, vb) = (var(a), var(b));
    if !(va.is_finite() && vb.is_finite()) {
        return 1.0;
    }
    let se = (va / a.0 + vb / b.0).sqrt();
    if se == 0.0 {
        return if a.1 / a.0 == b.1 / b.0 { 1.0 } else { 0.0 };
    }
    normal_two_sided((a.1 / a.0 - b.1 / b.0) / se)
}

/// Benjamini-Hochberg adjusted p-values (q-values), in input order.
pub fn benjamini_hochberg(p: &[f64]) -> Vec<f64> {
    let m = p.len();
    let mut idx: Vec<usize> = (0..m).collect();
    idx.sort_by(|&a, &b| p[a].total_cmp(&p[b]).then(a.cmp(&b)));
    let mut q = vec![1.0; m];
    let mut running = 1.0f64;
    for (rank, &i) in idx.iter().enumerate().rev() {
        let v = (p[i] * m as f64 / (rank + 1) as f64).min(1.0);
        running = running.min(v);
        q[i] = running;
    }
    q
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fisher_matches_a_textbook_table() {
        // Lady tasting tea: 3 of 4 right vs 1 of 4, two-sided p = 0.486
        let p = two_proportions(3, 4, 1, 4);
        assert!((p - 0.4857).abs() < 1e-3, "{p}");
    }

    #[test]
    fn large_equal_shares_are_not_significant_and_different_ones_are() {
        assert!(two_proportions(500, 1000, 1000, 2000) > 0.99);
        assert!(two_proportions(600, 1000, 1000, 2000) < 1e-6);
    }

    #[test]
    fn bh_is_monotone_and_matches_a_hand_computed_case() {
        let q = benjamini_hochberg(&[0.01, 0.04, 0.03, 0.5]);
        // sorted: 0.01*4/1=0.04, 0.03*4/2=0.06, 0.04*4/3=0.0533 -> 0.0533, 0.5
        assert!((q[0] - 0.04).abs() < 1e-12);
        assert!((q[2] - 0.053333).abs() < 1e-5);
        assert!((q[1] - 0.053333).abs() < 1e-5);
        assert!((q[3] - 0.5).abs() < 1e-12);
    }

    #[test]
    fn means_test_sees_a_shift() {
        // 100 values of mean 4 sd ~1 against 100 of mean 3
        let g = |n: f64, mean: f64| (n, n * mean, n * (mean * mean + 1.0));
        assert!(two_means(g(100.0, 4.0), g(100.0, 3.0)) < 1e-6);
        assert!(two_means(g(100.0, 4.0), g(100.0, 4.0)) > 0.99);
    }
}
