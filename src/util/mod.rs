//! Layer 0, helpers every other layer may use: the one number style of
//! every people-facing output (briefs, summaries), so a figure reads the
//! same wherever it appears; and below, hashing and account ids, frame
//! column helpers, statistics, model metrics and progress timing.

pub mod frame;
pub mod ids;
pub mod metrics;
pub mod progress;
pub mod stats;

/// A count with thousands separators: 1,512.
pub fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
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

/// Append `x` with `decimals` (0 or 1) fraction digits, exactly as
/// `format!("{x:.0}")` / `{x:.1}` (with `plus`: `{x:+.0}` / `{x:+.1}`)
/// writes it: the exact binary value rounded half to even, a minus sign on
/// every negative value (also one that rounds to zero). Why: the score
/// reasons format three such numbers per account, and the standard
/// formatter falls back to its slow exact algorithm on ties (12.5, 0.25).
/// Values it cannot do exactly with integers go to `format!`.
pub fn push_fixed(out: &mut String, x: f64, decimals: u8, plus: bool) {
    use std::fmt::Write;
    // below 2^52 the integer part and the scaled mantissa fit in u64
    let scale: u64 = match decimals {
        0 if x.is_finite() && x.abs() < 4_503_599_627_370_496.0 => 1,
        1 if x.is_finite() && x.abs() < 4_503_599_627_370_496.0 => 10,
        _ => {
            let _ = match plus {
                true => write!(out, "{x:+.*}", decimals as usize),
                false => write!(out, "{x:.*}", decimals as usize),
            };
            return;
        }
    };
    let bits = x.to_bits();
    let exp = ((bits >> 52) & 0x7ff) as i32;
    let frac = bits & ((1u64 << 52) - 1);
    // x = mant * 2^e exactly
    let (mant, e) = if exp == 0 {
        (frac, -1074)
    } else {
        (frac | (1u64 << 52), exp - 1075)
    };
    let scaled = mant as u128 * scale as u128; // < 2^57
    let q: u128 = if e >= 0 {
        scaled << e
    } else {
        let s = (-e) as u32;
        if s >= 64 {
            // under 2^-7 of a unit after scaling: rounds to zero
            0
        } else {
            let q = scaled >> s;
            let rem = scaled & ((1u128 << s) - 1);
            let half = 1u128 << (s - 1);
            if rem > half || (rem == half && q & 1 == 1) {
                q + 1
            } else {
                q
            }
        }
    };
    if x.is_sign_negative() {
        out.push('-');
    } else if plus {
        out.push('+');
    }
    let mut b = itoa::Buffer::new();
    if decimals == 0 {
        out.push_str(b.format(q));
    } else {
        out.push_str(b.format(q / 10));
        out.push('.');
        out.push(char::from(b'0' + (q % 10) as u8));
    }
}

#[cfg(test)]
mod fixed_tests {
    use super::push_fixed;

    fn check(x: f64) {
        for (d, plus) in [(0u8, false), (1, false), (0, true), (1, true)] {
            let want = match (d, plus) {
                (0, false) => format!("{x:.0}"),
                (1, false) => format!("{x:.1}"),
                (0, true) => format!("{x:+.0}"),
                _ => format!("{x:+.1}"),
            };
            let mut got = String::new();
            push_fixed(&mut got, x, d, plus);
            assert_eq!(
                got,
                want,
                "{x:e} ({:#x}) at {d} decimals, plus {plus}",
                x.to_bits()
            );
        }
    }

    /// Ties (exact halves), values one ulp either side of them, signed
    /// zeros, subnormals, the 2^52 edge, non-finite values and 600,000
    /// pseudo-random values and bit patterns: every one as `format!`.
    #[test]
    fn fixed_digits_are_the_standard_formatters() {
        let mut hard = vec![
            0.0,
            -0.0,
            0.05,
            0.25,
            -0.25,
            0.35,
            0.45,
            0.5,
            1.5,
            2.5,
            -2.5,
            12.5,
            0.95,
            9.95,
            99.95,
            -0.04,
            -0.4,
            1e-300,
            f64::MIN_POSITIVE,
            5e-324,
            -5e-324,
            4_503_599_627_370_495.5,
            4_503_599_627_370_496.0,
            1e16,
            f64::MAX,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ];
        for k in 0..2000 {
            let t = k as f64 / 20.0;
            hard.extend([t, -t, t + 0.5, t + 0.05, t - 0.05]);
        }
        for x in hard {
            check(x);
            check(f64::from_bits(x.to_bits().wrapping_add(1)));
            check(f64::from_bits(x.to_bits().wrapping_sub(1)));
        }
        let mut s: u64 = 0x9e3779b97f4a7c15;
        for _ in 0..200_000 {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            check(f64::from_bits(s));
            check((s >> 11) as f64 / (1u64 << 53) as f64 * 200.0 - 100.0);
            check((s % 2_000_000) as f64 / 8.0);
        }
    }
}

/// Which character separates the decimals in the CRM's numbers
/// (`[files] decimal`): the other one, a space or an apostrophe groups
/// thousands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DecimalMark {
    #[default]
    Point,
    Comma,
}

/// Currency signs a CRM or spreadsheet writes beside an amount.
const CURRENCY_SIGNS: &[char] = &[
    '$', '€', '£', '¥', '₹', '₩', '₽', '₺', '₪', '₫', '฿', '¢', '₱', '₦', '₴', '₡', '₲', '₵',
];

fn is_space(c: char) -> bool {
    c.is_whitespace() || c == '\u{a0}' || c == '\u{202f}'
}

/// Strips a currency code or sign ("USD", "US$", "$", "EUR", "€") from one
/// end of `t`: at most three ASCII capitals and the signs around them.
fn strip_currency(t: &str, front: bool) -> &str {
    let is_cur = |c: char| CURRENCY_SIGNS.contains(&c) || c.is_ascii_uppercase();
    let chars: Vec<(usize, char)> = if front {
        t.char_indices().collect()
    } else {
        t.char_indices().rev().collect()
    };
    let mut letters = 0;
    let mut taken = 0;
    for &(_, c) in &chars {
        if !is_cur(c) {
            break;
        }
        if c.is_ascii_uppercase() {
            letters += 1;
        }
        taken += 1;
    }
    // a code is three capitals (USD, EUR); with a sign, fewer (US$, R$):
    // "R1" is a region code, not a currency and a number
    let signed = taken > letters;
    if taken == 0 || taken == chars.len() || letters > 3 || (!signed && letters != 3) {
        return t;
    }
    let cut = if front {
        chars[taken].0
    } else {
        chars[taken - 1].0
    };
    let rest = if front { &t[cut..] } else { &t[..cut] };
    rest.trim_matches(is_space)
}

/// A number as CRMs and spreadsheets write it: "1,234.56", "USD 1,234.56",
/// "$1,234.56", "1.234,56 EUR" (with [`DecimalMark::Comma`]), "(1,200)" for
/// a negative, "1 250" or "1'250". Thousands groups must be of three digits,
/// so "1,25" is not read as 125. None for anything else, and for values that
/// are not finite (no "inf" or "NaN").
pub fn parse_crm_number(s: &str, mark: DecimalMark) -> Option<f64> {
    // the common case, a plain number (the loader trims cells): no
    // allocation, no pass over characters
    let plain = |t: &str| {
        !t.is_empty()
            && t.bytes()
                .all(|b| b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.' | b'e' | b'E'))
            && (mark == DecimalMark::Point || !t.contains('.'))
    };
    if plain(s) {
        return s.parse::<f64>().ok().filter(|v| v.is_finite());
    }
    // text without a digit ("private", "n/a") is no number: said at once
    if !s.bytes().any(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut t = s.trim_matches(is_space);
    if !t.is_empty()
        && t.bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.' | b'e' | b'E'))
        && (mark == DecimalMark::Point || !t.contains('.'))
    {
        return t.parse::<f64>().ok().filter(|v| v.is_finite());
    }
    let mut neg = false;
    if t.len() >= 2 && t.starts_with('(') && t.ends_with(')') {
        neg = true;
        t = t[1..t.len() - 1].trim_matches(is_space);
    }
    if let Some(r) = t.strip_prefix('-') {
        neg = !neg;
        t = r.trim_matches(is_space);
    }
    t = strip_currency(t, true);
    t = strip_currency(t, false);
    if let Some(r) = t.strip_prefix('-') {
        neg = !neg;
        t = r;
    } else if let Some(r) = t.strip_prefix('+') {
        t = r;
    }
    let (dec, group_marks): (char, &[char]) = match mark {
        DecimalMark::Point => ('.', &[',', ' ', '\u{a0}', '\u{202f}', '\'']),
        DecimalMark::Comma => (',', &['.', ' ', '\u{a0}', '\u{202f}', '\'']),
    };
    let (int, frac) = match t.split_once(dec) {
        Some((i, f)) => (i, Some(f)),
        None => (t, None),
    };
    if int.is_empty() && frac.is_none_or(str::is_empty) {
        return None;
    }
    let mut clean = String::with_capacity(t.len());
    // the integer part: plain digits, or groups of three after the first
    let group = int.chars().find(|c| group_marks.contains(c));
    match group {
        None => {
            if !int.bytes().all(|b| b.is_ascii_digit()) {
                // scientific notation, only without groups: 1.5e6
                let body = t.replace(dec, ".");
                if frac.is_none()
                    && body.contains(['e', 'E'])
                    && body
                        .bytes()
                        .all(|b| b.is_ascii_digit() || b"eE+-.".contains(&b))
                {
                    return body
                        .parse::<f64>()
                        .ok()
                        .filter(|v| v.is_finite())
                        .map(|v| if neg { -v } else { v });
                }
                return None;
            }
            clean.push_str(int);
        }
        Some(g) => {
            let parts: Vec<&str> = int.split(g).collect();
            let ok = parts.iter().enumerate().all(|(i, p)| {
                p.bytes().all(|b| b.is_ascii_digit())
                    && if i == 0 {
                        (1..=3).contains(&p.len())
                    } else {
                        p.len() == 3
                    }
            });
            if !ok {
                return None;
            }
            parts.iter().for_each(|p| clean.push_str(p));
        }
    }
    if let Some(f) = frac {
        if !f.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        clean.push('.');
        clean.push_str(f);
    }
    let v: f64 = clean.parse().ok()?;
    v.is_finite().then_some(if neg { -v } else { v })
}

/// Cells that say "no value" in words: blank, not an unreadable number.
pub fn is_null_token(s: &str) -> bool {
    let t = s.trim();
    // no allocation: this runs on every cell of a column
    t.len() <= 7
        && [
            "n/a", "na", "#n/a", "-", "--", "null", "none", "nan", "(blank)",
        ]
        .iter()
        .any(|w| t.eq_ignore_ascii_case(w))
}

/// A number written like "1.250" or "12.500.000" (a point before exactly
/// three digits, the first group not 0): thousands grouped by points, as a
/// decimal-comma locale writes them, or a decimal with three places.
pub fn dot_thousands_shape(s: &str) -> bool {
    let t = strip_currency(strip_currency(s.trim_matches(is_space), true), false);
    let mut groups = t.split('.');
    let first = groups.next().unwrap_or("");
    let rest: Vec<&str> = groups.collect();
    !rest.is_empty()
        && (1..=3).contains(&first.len())
        && !first.starts_with('0')
        && first.bytes().all(|b| b.is_ascii_digit())
        && rest
            .iter()
            .all(|g| g.len() == 3 && g.bytes().all(|b| b.is_ascii_digit()))
}

/// What unreadable numbers look like, for the message that stops a run:
/// the `[files] decimal` line that would read them, when one would.
pub fn number_hint(values: &[&str], mark: DecimalMark) -> Option<String> {
    let other = match mark {
        DecimalMark::Point => DecimalMark::Comma,
        DecimalMark::Comma => DecimalMark::Point,
    };
    let sample: Vec<&&str> = values.iter().take(200).collect();
    if sample.is_empty() {
        return None;
    }
    let read = sample
        .iter()
        .filter(|v| parse_crm_number(v, other).is_some())
        .count();
    (read * 5 >= sample.len() * 4).then(|| match other {
        DecimalMark::Comma => "they look like numbers with a decimal comma (1.234,56): add decimal = \",\" to the config's [files] section".to_string(),
        DecimalMark::Point => "they look like numbers with a decimal point (1,234.56): remove decimal = \",\" from the config's [files] section".to_string(),
    })
}

#[cfg(test)]
mod number_tests {
    use super::{DecimalMark::*, parse_crm_number as p};

    #[test]
    fn numbers_read_as_crms_write_them() {
        for (s, want) in [
            ("1234.5", 1234.5),
            ("  42 ", 42.0),
            ("-7", -7.0),
            ("1,250", 1250.0),
            ("USD 11,894.29", 11894.29),
            ("$11,894.29", 11894.29),
            ("US$ 1,000", 1000.0),
            ("11,894.29 USD", 11894.29),
            ("(1,200.00)", -1200.0),
            ("-$5", -5.0),
            ("€ 3", 3.0),
            ("1 250 000", 1_250_000.0),
            ("1'250.5", 1250.5),
            ("1.5e6", 1.5e6),
            (".5", 0.5),
            ("64,849,005", 64_849_005.0),
        ] {
            assert_eq!(p(s, Point), Some(want), "{s:?}");
        }
        for (s, want) in [
            ("1.234,56 EUR", 1234.56),
            ("11.894,29", 11894.29),
            ("1.250", 1250.0),
            ("64.849.005,00 EUR", 64_849_005.0),
            ("3,5", 3.5),
            ("7", 7.0),
            ("€1.000", 1000.0),
        ] {
            assert_eq!(p(s, Comma), Some(want), "{s:?} with a decimal comma");
        }
    }

    #[test]
    fn what_is_not_a_number_is_not_read() {
        for s in [
            "",
            " ",
            "n/a",
            "TBD",
            "see notes",
            "inf",
            "NaN",
            "1,25",
            "12,3456",
            "1.234,56",
            "$",
            "USD",
            "1,2,3",
            "--5",
            "12abc",
            "ABCD 12",
            "(415) 555-0132",
            "R1",
            "A 5",
        ] {
            assert_eq!(p(s, Point), None, "{s:?}");
        }
        // with a decimal comma, a point groups thousands: "1.25" is not 125
        for s in ["1.25", "1,234.56", "1.2.3"] {
            assert_eq!(p(s, Comma), None, "{s:?} with a decimal comma");
        }
    }

    #[test]
    fn dot_thousands_are_recognised() {
        use super::dot_thousands_shape as d;
        for s in ["1.250", "12.500.000", "999.000", "1.250 EUR", "€ 3.000"] {
            assert!(d(s), "{s}");
        }
        for s in [
            "1.25", "0.250", "1250", "1,250", "12.5000", "1.250,00", "abc.def",
        ] {
            assert!(!d(s), "{s}");
        }
    }

    #[test]
    fn the_hint_names_the_decimal_line_that_reads_the_values() {
        let de = ["11.894,29 EUR", "1.250,00 EUR", "3,50 EUR"];
        assert!(
            super::number_hint(&de, Point)
                .unwrap()
                .contains("decimal = \",\"")
        );
        assert_eq!(super::number_hint(&["n/a", "TBD"], Point), None);
    }
}
