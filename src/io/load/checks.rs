//! The pieces every table loader checks with: row checks and cell notes as
//! polars expressions, column mapping, cleaning, and number and date parsing.

use std::path::Path;

use polars::prelude::*;

use super::ROW;
use super::rejects::NOTE_PREFIX;
use crate::config::ValidConfig;
use crate::error::{IcpError, Result};
use crate::util::DecimalMark;

/// Trim text, and turn empty cells into nulls.
pub(super) fn clean(name: &str) -> Expr {
    col(name)
        .map(
            |c: Column| {
                let s = c.cast(&DataType::String)?;
                Ok(clean_text(s.str()?).into_column())
            },
            |_, f| Ok(Field::new(f.name().clone(), DataType::String)),
        )
        .alias(name)
}

/// [`clean`] on one column: trimmed as `str::trim` trims, empty cells null.
/// A column with nothing to trim or blank (the usual export) is returned
/// as it is, not copied.
fn clean_text(ca: &StringChunked) -> StringChunked {
    let untidy = |v: &str| v.is_empty() || v.trim().len() != v.len();
    if !ca.iter().flatten().any(untidy) {
        return ca.clone();
    }
    let mut out: StringChunked = ca
        .iter()
        .map(|v| v.map(str::trim).filter(|v| !v.is_empty()))
        .collect();
    out.rename(ca.name().clone());
    out
}

/// A row check: rows where `bad` is true are rejected for `reason` on `column`.
pub(super) struct Check {
    pub(super) column: String,
    pub(super) bad: Expr,
    pub(super) reason: String,
}

pub(super) fn check(column: &str, bad: Expr, reason: impl Into<String>) -> Check {
    Check {
        column: column.to_string(),
        bad: bad.fill_null(lit(false)),
        reason: reason.into(),
    }
}

/// Map configured source columns onto canonical names. Returns the selected
/// expressions, the source columns consumed and the canonical columns present.
pub(super) fn map_columns<'a>(
    raw: &DataFrame,
    path: &Path,
    table: &str,
    canonical: &[&'a str],
    required: &[&str],
    cfg: &ValidConfig,
) -> Result<(Vec<Expr>, Vec<String>, Vec<&'a str>)> {
    let present: Vec<String> = raw
        .get_column_names()
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut exprs = vec![col(ROW)];
    let mut used = Vec::new();
    let mut mapped = Vec::new();
    for &c in canonical {
        let src = cfg.source(table, c);
        if present.iter().any(|p| p == src) {
            exprs.push(col(src).alias(c));
            used.push(src.to_string());
            mapped.push(c);
        } else if required.contains(&c) {
            let found: Vec<&str> = present
                .iter()
                .filter(|p| p.as_str() != ROW)
                .map(String::as_str)
                .collect();
            let expected = if src == c {
                format!("the {table} column `{c}`")
            } else {
                format!("the {table} column `{src}`, mapped to `{c}` by the config")
            };
            let mut found = found.join(", ");
            // one column whose name holds the other delimiters: say so
            if !found.contains(", ") {
                if found.contains(';') {
                    found.push_str(" (one column: the file looks semicolon-separated, as Excel writes CSV in much of Europe: add delimiter = \";\" to the config's [files] section)");
                } else if found.contains('\t') {
                    found.push_str(
                        " (one column: the file looks tab-separated: add delimiter = \"\\t\" to the config's [files] section)",
                    );
                }
            }
            return Err(IcpError::MissingColumn {
                path: path.into(),
                column: src.into(),
                expected,
                found,
            });
        }
    }
    Ok((exprs, used, mapped))
}

/// A cell check on an optional column: a cell that fails it is read as
/// missing and noted, and its row is kept.
pub(super) struct Note {
    pub(super) column: String,
    pub(super) bad: Expr,
    pub(super) reason: String,
    /// the cell is unreadable as a number with this decimal mark (not
    /// merely out of range): when most of a column is, the run stops and
    /// says what the values look like
    pub(super) unreadable: Option<DecimalMark>,
}

pub(super) fn note(column: &str, bad: Expr, reason: impl Into<String>) -> Note {
    Note {
        column: column.to_string(),
        bad: bad.fill_null(lit(false)),
        reason: format!("{NOTE_PREFIX}{}", reason.into()),
        unreadable: None,
    }
}

/// The note for a cell that is not a number as CRMs write them.
pub(super) fn unreadable_number(column: &str, mark: DecimalMark) -> Note {
    let example = match mark {
        DecimalMark::Point => "1,250, USD 1,234.56 or (1,200) for a negative",
        DecimalMark::Comma => "1.250, 1.234,56 EUR or (1.200) for a negative",
    };
    let parsed = col(format!("__num_{column}"));
    Note {
        unreadable: Some(mark),
        ..note(
            column,
            col(column).is_not_null().and(parsed.is_null()),
            format!("not a number (expected a number such as {example})"),
        )
    }
}

/// A text column read as numbers the way CRMs write them
/// ([`crate::util::parse_crm_number`]); a blank or unreadable cell is null.
pub(super) fn parse_number(name: &str, mark: DecimalMark) -> Expr {
    col(name).map(
        move |c: Column| {
            let s = c.cast(&DataType::String)?;
            let out: Float64Chunked = s
                .str()?
                .iter()
                .map(|v| v.and_then(|v| crate::util::parse_crm_number(v, mark)))
                .collect();
            Ok(out.with_name(c.name().clone()).into_column())
        },
        |_, f| Ok(Field::new(f.name().clone(), DataType::Float64)),
    )
}

pub(super) fn parse_date(name: &str, cfg: &ValidConfig) -> Expr {
    let (src, format) = match &cfg.date_format {
        Some(f) => (col(name), f.clone()),
        // ISO 8601: a time part, if any, is ignored.
        None => (col(name).str().head(lit(10)), "%Y-%m-%d".to_string()),
    };
    src.str().to_date(StrptimeOptions {
        format: Some(format.into()),
        strict: false,
        exact: true,
        cache: true,
    })
}

/// Dates a CRM can plausibly hold.
fn impossible_date(d: Expr) -> Expr {
    let lo = 1900i32; // days from 1970: year bounds, checked through the year
    let hi = 2100i32;
    d.clone()
        .dt()
        .year()
        .lt(lit(lo))
        .or(d.dt().year().gt(lit(hi)))
}

fn expected_date(cfg: &ValidConfig) -> String {
    match &cfg.date_format {
        Some(f) => format!("expected a date in the format {f}"),
        None => "expected an ISO 8601 date (YYYY-MM-DD)".into(),
    }
}

/// Raw (pre-parse) copies of every checked column, so rejects show what the user wrote.
pub(super) fn with_raw(lf: LazyFrame, cols: &[&str]) -> LazyFrame {
    lf.with_columns(
        cols.iter()
            .map(|c| col(*c).alias(format!("__raw_{c}")))
            .collect::<Vec<_>>(),
    )
}

pub(super) fn duplicate(id: &str) -> Result<Expr> {
    Ok(col(id)
        .is_not_null()
        .and(col(ROW).min().over([col(id)])?.neq(col(ROW))))
}

/// Known account ids, for the unknown-account check (a left join, not a row loop).
fn known_flag(lf: LazyFrame, ids: &DataFrame) -> LazyFrame {
    let known = ids
        .clone()
        .lazy()
        .select([col("account_id"), lit(true).alias("__known")]);
    lf.join(
        known,
        [col("account_id")],
        [col("account_id")],
        JoinArgs::new(JoinType::Left),
    )
}

/// Clean and keep a raw copy of the mapped columns, and flag known accounts.
pub(super) fn prepare(
    raw: DataFrame,
    exprs: Vec<Expr>,
    present: &[&str],
    ids: &DataFrame,
) -> LazyFrame {
    let lf = raw
        .lazy()
        .select(exprs)
        .with_columns(present.iter().map(|c| clean(c)).collect::<Vec<_>>());
    known_flag(with_raw(lf, present), ids)
}

/// The row must name an account that survived the accounts checks.
pub(super) fn account_checks() -> Vec<Check> {
    vec![
        check(
            "account_id",
            col("account_id").is_null(),
            "missing account_id",
        ),
        // a deal linked to several companies (HubSpot writes their ids
        // joined by ';'): which one bought is not ours to guess
        check(
            "account_id",
            col("__known").is_null().and(
                col("account_id")
                    .str()
                    .split(lit(";"))
                    .list()
                    .len()
                    .gt(lit(1u32)),
            ),
            "several account ids in one cell (a deal linked to more than one company): export the deal's primary company only",
        ),
        check(
            "account_id",
            col("__known").is_null(),
            "unknown account_id (not among the valid rows of the accounts file)",
        ),
    ]
}

/// A date cell, if present, must parse and be plausible.
pub(super) fn date_checks(column: &str, parsed: &Expr, cfg: &ValidConfig) -> Vec<Check> {
    vec![
        check(
            column,
            col(column).is_not_null().and(parsed.clone().is_null()),
            expected_date(cfg),
        ),
        check(
            column,
            impossible_date(parsed.clone()),
            "impossible date (expected a year from 1900 to 2100)",
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Polars' own trim and blank-to-null: what [`clean`] must give.
    fn by_polars(df: &DataFrame) -> DataFrame {
        let t = col("v").str().strip_chars(lit(NULL));
        df.clone()
            .lazy()
            .select([when(t.clone().str().len_bytes().eq(lit(0)))
                .then(lit(NULL).cast(DataType::String))
                .otherwise(t)
                .alias("v")])
            .collect()
            .unwrap()
    }

    #[test]
    fn clean_trims_and_blanks_as_polars_does() {
        let cases: [Vec<Option<&str>>; 3] = [
            vec![Some("a"), Some("b c"), None],
            vec![
                Some(" a "),
                Some(""),
                Some("  "),
                Some("\u{a0}x\u{2003}"),
                None,
                Some("x\t\r"),
            ],
            vec![Some("tidy"), Some(" ")],
        ];
        for cells in cases {
            let df = DataFrame::new(cells.len(), vec![Column::new("v".into(), &cells)]).unwrap();
            let ours = df.clone().lazy().select([clean("v")]).collect().unwrap();
            assert_eq!(ours, by_polars(&df), "{cells:?}");
        }
    }
}
