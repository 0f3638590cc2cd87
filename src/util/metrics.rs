//! Holdout quality measures, written out because linfa's cross-validation
//! scores class labels only and its ROC takes f32.

use serde::{Deserialize, Serialize};

/// ROC AUC by the rank-sum formula; tied scores share their average rank.
pub fn auc(p: &[f64], y: &[bool]) -> Option<f64> {
    let n_pos = y.iter().filter(|&&b| b).count();
    let n_neg = y.len() - n_pos;
    if n_pos == 0 || n_neg == 0 {
        return None;
    }
    let mut idx: Vec<usize> = (0..p.len()).collect();
    idx.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
    let mut rank_sum_pos = 0.0;
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && p[idx[j + 1]] == p[idx[i]] {
            j += 1;
        }
        let avg_rank = (i + j) as f64 / 2.0 + 1.0;
        for &k in &idx[i..=j] {
            if y[k] {
                rank_sum_pos += avg_rank;
            }
        }
        i = j + 1;
    }
    let (np, nn) = (n_pos as f64, n_neg as f64);
    Some((rank_sum_pos - np * (np + 1.0) / 2.0) / (np * nn))
}

/// 95% interval of an AUC (Hanley & McNeil 1982).
pub fn auc_ci(a: f64, n_pos: usize, n_neg: usize) -> (f64, f64) {
    let (np, nn) = (n_pos as f64, n_neg as f64);
    let q1 = a / (2.0 - a);
    let q2 = 2.0 * a * a / (1.0 + a);
    let var = (a * (1.0 - a) + (np - 1.0) * (q1 - a * a) + (nn - 1.0) * (q2 - a * a)) / (np * nn);
    let se = var.max(0.0).sqrt();
    ((a - 1.96 * se).max(0.0), (a + 1.96 * se).min(1.0))
}

pub fn brier(p: &[f64], y: &[bool]) -> f64 {
    if p.is_empty() {
        return f64::NAN;
    }
    p.iter()
        .zip(y)
        .map(|(p, &y)| (p - y as u8 as f64).powi(2))
        .sum::<f64>()
        / p.len() as f64
}

pub fn log_loss(p: &[f64], y: &[bool]) -> f64 {
    let eps = 1e-12;
    p.iter()
        .zip(y)
        .map(|(&p, &y)| {
            let p = p.clamp(eps, 1.0 - eps);
            if y { -p.ln() } else { -(1.0 - p).ln() }
        })
        .sum::<f64>()
        / p.len().max(1) as f64
}

/// Wilson score interval for a proportion (95%).
pub fn wilson(k: usize, n: usize) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let z = 1.96f64;
    let (k, n) = (k as f64, n as f64);
    let ph = k / n;
    let d = 1.0 + z * z / n;
    let c = (ph + z * z / (2.0 * n)) / d;
    let h = z * (ph * (1.0 - ph) / n + z * z / (4.0 * n * n)).sqrt() / d;
    ((c - h).max(0.0), (c + h).min(1.0))
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CalibrationBin {
    pub decile: usize,
    pub n: usize,
    pub mean_predicted: f64,
    pub observed_rate: f64,
}

/// Calibration by decile of predicted probability (ties broken by position).
pub fn calibration(p: &[f64], y: &[bool]) -> Vec<CalibrationBin> {
    let mut idx: Vec<usize> = (0..p.len()).collect();
    idx.sort_by(|&a, &b| p[a].total_cmp(&p[b]).then(a.cmp(&b)));
    let n = idx.len();
    (0..10)
        .filter_map(|d| {
            let (lo, hi) = (d * n / 10, (d + 1) * n / 10);
            if hi <= lo {
                return None;
            }
            let part = &idx[lo..hi];
            let m = part.len() as f64;
            Some(CalibrationBin {
                decile: d + 1,
                n: part.len(),
                mean_predicted: part.iter().map(|&i| p[i]).sum::<f64>() / m,
                observed_rate: part.iter().filter(|&&i| y[i]).count() as f64 / m,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_known_values() {
        assert_eq!(
            auc(&[0.1, 0.2, 0.3, 0.4], &[false, false, true, true]),
            Some(1.0)
        );
        assert_eq!(
            auc(&[0.4, 0.3, 0.2, 0.1], &[false, false, true, true]),
            Some(0.0)
        );
        assert_eq!(
            auc(&[0.5, 0.5, 0.5, 0.5], &[false, true, false, true]),
            Some(0.5)
        );
        // one inversion out of four pairs
        assert_eq!(
            auc(&[0.1, 0.3, 0.2, 0.4], &[false, false, true, true]),
            Some(0.75)
        );
        assert_eq!(auc(&[0.1], &[true]), None);
    }

    #[test]
    fn wilson_contains_rate_and_narrows() {
        let (lo, hi) = wilson(50, 100);
        assert!(lo < 0.5 && hi > 0.5);
        let (lo2, hi2) = wilson(500, 1000);
        assert!(hi2 - lo2 < hi - lo);
    }
}
