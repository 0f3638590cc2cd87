//! Shared helpers at the bottom of the layering: the one number style of
//! every people-facing output (briefs, summaries), so a figure reads the
//! same wherever it appears.

/// A count with thousands separators: 1,512.
pub fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// A share as a percentage with one decimal: 23.5%. Not a number: n/a.
pub fn pct(x: f64) -> String {
    if x.is_finite() {
        format!("{:.1}%", 100.0 * x)
    } else {
        "n/a".into()
    }
}

pub fn opt_pct(x: Option<f64>) -> String {
    x.map(pct).unwrap_or_else(|| "n/a".into())
}

/// A share with its 95% interval: 48.8% (34.3%-63.5%).
pub fn pct_ci(x: f64, ci: (f64, f64)) -> String {
    format!("{} ({}-{})", pct(x), pct(ci.0), pct(ci.1))
}

/// Money, short: $950, $8.9k, $135k, $2.6M, $1.2B. Negative values keep
/// their sign in front of the dollar.
pub fn money(x: f64) -> String {
    if !x.is_finite() {
        return "n/a".into();
    }
    let sign = if x < 0.0 { "-" } else { "" };
    let a = x.abs();
    // round first so 999.6 reads $1.0k, not $1000
    let body = if a < 999.5 {
        format!("{a:.0}")
    } else if a < 9_950.0 {
        format!("{:.1}k", a / 1e3)
    } else if a < 999_500.0 {
        format!("{:.0}k", a / 1e3)
    } else if a < 9_950_000.0 {
        format!("{:.1}M", a / 1e6)
    } else if a < 999_500_000.0 {
        format!("{:.0}M", a / 1e6)
    } else {
        format!("{:.1}B", a / 1e9)
    };
    format!("{sign}${body}")
}

pub fn opt_money(x: Option<f64>) -> String {
    x.map(money).unwrap_or_else(|| "n/a".into())
}

/// A number with a fixed count of decimals, or n/a.
pub fn opt_num(x: Option<f64>, digits: usize) -> String {
    x.filter(|v| v.is_finite())
        .map(|v| format!("{v:.digits$}"))
        .unwrap_or_else(|| "n/a".into())
}

/// A p- or q-value: `< 0.001`, else two significant digits (0.016, 0.35).
pub fn p_value(p: f64) -> String {
    if !p.is_finite() {
        return "n/a".into();
    }
    if p < 0.001 {
        return "< 0.001".into();
    }
    if p >= 0.1 {
        return format!("{p:.2}");
    }
    // 0.001 <= p < 0.1: two significant digits
    let digits = (-p.log10()).ceil() as usize + 1;
    format!("{p:.digits$}")
}

/// Median of sorted values (NaN when empty).
pub fn median_sorted(v: &[f64]) -> f64 {
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Median of a slice (NaN-free values), sorting it; None when empty.
pub fn median(v: &mut [f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some(median_sorted(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_number_style() {
        assert_eq!(thousands(1512), "1,512");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000_000), "1,000,000");
        assert_eq!(money(8917.0), "$8.9k");
        assert_eq!(money(16_400.0), "$16k");
        assert_eq!(money(135_000.0), "$135k");
        assert_eq!(money(950.0), "$950");
        assert_eq!(money(999.6), "$1.0k");
        assert_eq!(money(2_600_000.0), "$2.6M");
        assert_eq!(money(33_800_000.0), "$34M");
        assert_eq!(money(-4_200.0), "-$4.2k");
        assert_eq!(pct(0.2349), "23.5%");
        assert_eq!(pct(f64::NAN), "n/a");
        assert_eq!(p_value(2.0e-15), "< 0.001");
        assert_eq!(p_value(0.0163), "0.016");
        assert_eq!(p_value(0.00354), "0.0035");
        assert_eq!(p_value(0.35), "0.35");
        assert_eq!(p_value(0.05), "0.050");
        assert_eq!(p_value(0.01), "0.010");
        assert_eq!(p_value(0.001), "0.0010");
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&mut []), None);
    }
}
