//! Applying the checks: a checked frame split into used rows and rejects (each
//! row's first failing check), and the stops when most of a column is unreadable.

use std::collections::BTreeMap;
use std::path::Path;

use polars::prelude::*;

use super::checks::{Check, Note};
use super::hash::file_name;
use super::{InputFile, ROW, Table};
use crate::error::{IcpError, Result};
use crate::util::DecimalMark;

/// Name of the column holding the index of a row's first failing check.
const FAILED: &str = "__failed";

/// The index of the first failing check (null where every check passes):
/// one small integer per row; the reason, column and value strings are
/// built afterwards for the rejected rows alone ([`failure_text`]).
fn first_failure(checks: &[Check]) -> Expr {
    let mut idx = lit(NULL).cast(DataType::UInt32);
    for (k, c) in checks.iter().enumerate().rev() {
        idx = when(c.bad.clone()).then(lit(k as u32)).otherwise(idx);
    }
    idx.alias(FAILED)
}

/// The reason, column and (raw, at most 200 characters) value of the check
/// that [`first_failure`] found, for rows that have one.
fn failure_text(checks: &[Check], value_of: impl Fn(&str) -> Expr) -> [Expr; 3] {
    let null = || lit(NULL).cast(DataType::String);
    let mut reason = null();
    let mut column = null();
    let mut value = null();
    for (k, c) in checks.iter().enumerate().rev() {
        let this = col(FAILED).eq(lit(k as u32)).fill_null(lit(false));
        reason = when(this.clone())
            .then(lit(c.reason.clone()))
            .otherwise(reason);
        column = when(this.clone())
            .then(lit(c.column.clone()))
            .otherwise(column);
        value = when(this)
            .then(
                value_of(&c.column)
                    .cast(DataType::String)
                    .str()
                    .head(lit(200)),
            )
            .otherwise(value);
    }
    [
        reason.alias("reason"),
        column.alias("column"),
        value.alias("value"),
    ]
}

/// Split a checked frame into used rows and reject rows; cells failing a
/// note are nulled in the used rows and listed as notes.
#[allow(clippy::too_many_arguments)]
pub(super) fn split(
    lf: LazyFrame,
    checks: &[Check],
    notes: &[Note],
    typed: Vec<Expr>,
    path: &Path,
    table: &str,
    raw_rows: usize,
    keep: Vec<Expr>,
    pre_rejects: DataFrame,
    rejects: &mut Vec<DataFrame>,
) -> Result<Table> {
    // Checks see the cleaned text; only then are columns replaced by their
    // parsed values (a value that fails to parse must be rejected, not nulled).
    let mut trace = crate::util::progress::Trace::start();
    let mut flags = vec![first_failure(checks)];
    flags.extend(
        notes
            .iter()
            .enumerate()
            .map(|(k, n)| n.bad.clone().alias(note_flag(k))),
    );
    let nulled = nulled_notes(notes);
    let df = lf
        .with_columns(flags)
        .with_columns(typed)
        .with_columns(nulled)
        .collect()
        .map_err(|e| IcpError::read(path, e))?;
    trace.lap("split: checks");
    let name = file_name(path);
    number_column_check(path, &df, notes)?;
    let [reason, column, value] = failure_text(checks, |c| col(format!("__raw_{c}")));
    let rej = df
        .clone()
        .lazy()
        .filter(col(FAILED).is_not_null())
        .with_columns([reason, column, value])
        .select([
            lit(name.clone()).alias("file"),
            col(ROW).cast(DataType::UInt64).alias("row"),
            col("column"),
            col("value"),
            col("reason"),
        ])
        .collect()?;
    trace.lap("split: rejects");
    date_column_check(path, &rej, raw_rows)?;
    let rejected = rej.height() + pre_rejects.height();
    let mut parts = vec![pre_rejects.lazy(), rej.lazy()];
    parts.extend(noted_rows(&df, notes, &name));
    let rej = concat(parts, UnionArgs::default())?
        .sort(
            ["row"],
            SortMultipleOptions::default().with_maintain_order(true),
        )
        .collect()?;
    let used = df
        .lazy()
        .filter(col(FAILED).is_null())
        .sort([ROW], SortMultipleOptions::default())
        .select(keep)
        .collect()?;
    trace.lap("split: used");
    let input = InputFile {
        table: table.into(),
        file: name,
        sha256: String::new(), // filled in by the caller, once per file
        rows: raw_rows,
        used: used.height(),
        rejected,
        footer_lines: 0,
    };
    rejects.push(rej);
    Ok(Table { df: used, input })
}

/// Name of the column flagging the cells that fail the `k`th note.
fn note_flag(k: usize) -> String {
    format!("__note_{k}")
}

/// A noted cell is missing in the used row: each noted column, nulled
/// where any of its notes flags the cell.
fn nulled_notes(notes: &[Note]) -> Vec<Expr> {
    let mut noted: BTreeMap<&str, Expr> = BTreeMap::new();
    for (k, n) in notes.iter().enumerate() {
        let f = col(note_flag(k));
        let e = match noted.remove(n.column.as_str()) {
            Some(e) => e.or(f),
            None => f,
        };
        noted.insert(&n.column, e);
    }
    noted
        .into_iter()
        .map(|(c, f)| {
            when(f)
                .then(lit(NULL).cast(DataType::Float64))
                .otherwise(col(c))
                .alias(c)
        })
        .collect()
}

/// The notes' rows for `rejects.csv`: one per noted cell of a used row,
/// note by note.
fn noted_rows(df: &DataFrame, notes: &[Note], name: &str) -> Vec<LazyFrame> {
    let mut parts = Vec::new();
    for (k, n) in notes.iter().enumerate() {
        parts.push(
            df.clone()
                .lazy()
                .filter(col(FAILED).is_null().and(col(note_flag(k))))
                .select([
                    lit(name.to_string()).alias("file"),
                    col(ROW).cast(DataType::UInt64).alias("row"),
                    lit(n.column.clone()).alias("column"),
                    col(format!("__raw_{}", n.column))
                        .cast(DataType::String)
                        .str()
                        .head(lit(200))
                        .alias("value"),
                    lit(n.reason.clone()).alias("reason"),
                ]),
        );
    }
    parts
}

/// When most of a numeric column cannot be read, stop and say what the
/// values look like and the config line that reads them: otherwise the
/// column would quietly be all missing.
fn number_column_check(path: &Path, df: &DataFrame, notes: &[Note]) -> Result<()> {
    for (k, n) in notes.iter().enumerate() {
        let Some(mark) = n.unreadable else {
            continue;
        };
        let raw = df.column(&format!("__raw_{}", n.column))?.str()?.clone();
        let filled = raw.len() - raw.null_count();
        let flag = df.column(&format!("__note_{k}"))?.bool()?.clone();
        let bad: Vec<&str> = raw
            .iter()
            .zip(flag.iter())
            .filter_map(|(v, f)| if f == Some(true) { v } else { None })
            .collect();
        // "1.250" reads as 1.25 with a decimal point: when every value
        // with a point is written so, the column is thousands from a
        // decimal-comma locale, not decimals, and no answer is right
        if mark == DecimalMark::Point {
            // one pass, stopped by the first value with other decimals
            let (mut dotted, mut first) = (0usize, None);
            let all_thousands = raw.iter().flatten().filter(|v| v.contains('.')).all(|v| {
                dotted += 1;
                first.get_or_insert(v);
                crate::util::dot_thousands_shape(v)
            });
            if all_thousands && dotted >= 3 {
                return Err(IcpError::Data {
                    path: path.into(),
                    message: format!(
                        "{} values of `{}` are written like {:?} (a point before exactly three digits) and none with other decimals: thousands grouped by points, as a decimal-comma locale writes them? Add decimal = \",\" to the config's [files] section (if they are decimals, write them with more or fewer than three places)",
                        crate::util::thousands(dotted),
                        n.column,
                        first.unwrap_or_default()
                    ),
                });
            }
        }
        if filled < 4 || bad.len() * 2 <= filled {
            continue;
        }
        let hint = match crate::util::number_hint(&bad, mark) {
            Some(h) => format!("; {h}"),
            None => String::new(),
        };
        return Err(IcpError::Data {
            path: path.into(),
            message: format!(
                "{} of {} values of `{}` are not numbers as read (for example {:?}){hint}",
                crate::util::thousands(bad.len()),
                crate::util::thousands(filled),
                n.column,
                &bad[..bad.len().min(3)],
            ),
        });
    }
    Ok(())
}

/// When most of a date column fails to parse, stop and say what the dates
/// look like and the `date_format` line that reads them: otherwise the run
/// goes on to a puzzling "no closed deals".
fn date_column_check(path: &Path, rej: &DataFrame, rows: usize) -> Result<()> {
    if rows < 4 || rej.height() * 2 <= rows {
        return Ok(());
    }
    let reasons = rej.column("reason")?.str()?;
    let columns = rej.column("column")?.str()?;
    let values = rej.column("value")?.str()?;
    let mut by_col: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for ((r, c), v) in reasons.iter().zip(columns.iter()).zip(values.iter()) {
        let (Some(r), Some(c)) = (r, c) else { continue };
        if r.starts_with("expected an ISO 8601 date")
            || r.starts_with("expected a date in the format")
        {
            by_col.entry(c).or_default().push(v.unwrap_or(""));
        }
    }
    for (c, vals) in by_col {
        if vals.len() * 2 <= rows {
            continue;
        }
        let hint = match date_format_hint(&vals) {
            Some((fmt, like)) => format!(
                "; they look like {like} ({}): add date_format = \"{fmt}\" to the config",
                vals[0]
            ),
            None => format!("; for example {:?}", &vals[..vals.len().min(3)]),
        };
        return Err(IcpError::Data {
            path: path.into(),
            message: format!(
                "{} of {} values of `{c}` are not dates in the expected format{hint}",
                crate::util::thousands(vals.len()),
                crate::util::thousands(rows)
            ),
        });
    }
    Ok(())
}

/// The chrono format dates like these are written in, and in words.
fn date_format_hint(values: &[&str]) -> Option<(String, &'static str)> {
    let mut sep = None;
    let mut day_first = false;
    let mut month_first = false;
    let mut year_first = false;
    let mut seen = 0;
    for v in values.iter().take(200) {
        let v = v.split_whitespace().next().unwrap_or("");
        let Some(s) = ['/', '.', '-'].into_iter().find(|s| v.contains(*s)) else {
            continue;
        };
        let parts: Vec<&str> = v.split(s).collect();
        if parts.len() != 3
            || !parts
                .iter()
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        {
            continue;
        }
        sep = Some(s);
        seen += 1;
        let n = |i: usize| parts[i].parse::<u32>().unwrap_or(0);
        if parts[0].len() == 4 {
            year_first = true;
        } else if n(0) > 12 {
            day_first = true;
        } else if n(1) > 12 {
            month_first = true;
        }
    }
    let s = sep?;
    if seen == 0 {
        return None;
    }
    Some(if year_first {
        (format!("%Y{s}%m{s}%d"), "year first")
    } else if day_first && !month_first {
        (format!("%d{s}%m{s}%Y"), "day/month/year")
    } else {
        (format!("%m{s}%d{s}%Y"), "US month/day/year")
    })
}
