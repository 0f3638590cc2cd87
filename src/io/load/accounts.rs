//! The accounts table: id checks (within a file, and across the pieces of
//! one), number notes, and the kinds of the extra columns.

use std::collections::BTreeMap;
use std::path::Path;

use polars::prelude::*;

use super::checks::{
    Check, Note, check, clean, map_columns, note, parse_number, unreadable_number, with_raw,
};
use super::raw::Raw;
use super::split_rows::split;
use super::{ColumnKind, ROW, Table};
use crate::config::{ACCOUNT_COLUMNS, ValidConfig};
use crate::error::{IcpError, Result};
use crate::util::DecimalMark;

/// Account ids met so far in a file, in earlier pieces and earlier rows
/// of this one (as 128-bit hashes: 16 bytes an id, and a false match is as
/// likely as two random 128-bit keys colliding).
#[derive(Debug, Default)]
pub struct SeenIds(rustc_hash::FxHashSet<u128>);

impl SeenIds {
    fn key(id: &str) -> u128 {
        use std::hash::{Hash, Hasher};
        let half = |salt: u8| {
            let mut h = std::hash::DefaultHasher::new();
            salt.hash(&mut h);
            id.hash(&mut h);
            h.finish() as u128
        };
        (half(0) << 64) | half(1)
    }
}

/// The accounts file's columns that the config excludes, in file order.
pub(super) fn excluded_by_config(raw: &Raw, cfg: &ValidConfig) -> Vec<String> {
    // a column mapped onto a contract column is read under that name
    // (the exclusion of a canonical column acts on the model, by that name)
    let mapped =
        |n: &str| cfg.columns.accounts.values().any(|v| v == n) || ACCOUNT_COLUMNS.contains(&n);
    raw.df
        .get_column_names()
        .iter()
        .map(|n| n.to_string())
        .filter(|n| cfg.features.exclude.contains(n) && !mapped(n))
        .collect()
}

/// Check one piece of an accounts file: like a whole file, and an id met in
/// an earlier piece is a duplicate (the first row is kept). The result's
/// input record has no fingerprint; the caller hashes the file once.
pub fn accounts_piece(
    raw: Raw,
    path: &Path,
    cfg: &ValidConfig,
    kind_hints: Option<&BTreeMap<String, ColumnKind>>,
    seen: &mut SeenIds,
    rejects: &mut Vec<DataFrame>,
) -> Result<Table> {
    Ok(load_accounts(raw, path, cfg, kind_hints, Some(seen), None, rejects)?.0)
}

/// Flags rows whose account id appeared in an earlier row of the file.
const EARLIER: &str = "__earlier";

/// For each row of a piece: was its (cleaned) id seen in an earlier row,
/// of this piece or an earlier one? One pass in row order, remembering
/// each id as it goes: the first row of an id is kept, as in a whole file.
fn seen_before(raw: &DataFrame, cfg: &ValidConfig, seen: &mut SeenIds) -> Result<Column> {
    let src = cfg.source("accounts", "account_id");
    let ids = raw
        .clone()
        .lazy()
        .select([col(src).alias("account_id")])
        .select([clean("account_id")])
        .collect()?;
    let ids = ids.column("account_id")?.str()?.clone();
    let before: BooleanChunked = ids
        .iter()
        .map(|v| Some(v.is_some_and(|v| !seen.0.insert(SeenIds::key(v)))))
        .collect();
    Ok(before.with_name(EARLIER.into()).into_column())
}

/// Decide the kind of each extra column: numeric when its values are
/// numbers as CRMs write them (all of them, or all but a stray few in a
/// large column: those become missing cells, noted).
fn extra_kinds(
    lf: &LazyFrame,
    extras: &[String],
    path: &Path,
    mark: DecimalMark,
    kind_hints: Option<&BTreeMap<String, ColumnKind>>,
) -> Result<BTreeMap<String, ColumnKind>> {
    let mut kinds = BTreeMap::new();
    if let Some(hints) = kind_hints {
        // scoring: the model's kinds; a column it was not trained with is
        // only carried (no need to read the cells)
        for c in extras {
            let kind = hints.get(c).copied().unwrap_or(ColumnKind::Categorical);
            kinds.insert(c.clone(), kind);
        }
        return Ok(kinds);
    }
    if !extras.is_empty() {
        let text = lf
            .clone()
            .select(extras.iter().map(|c| col(c.as_str())).collect::<Vec<_>>())
            .collect()
            .map_err(|e| IcpError::read(path, e))?;
        for c in extras {
            // filled cells, and those that are no number ("n/a" and the
            // like say "no value": they count as neither)
            let (mut n, mut bad) = (0usize, 0usize);
            let cells = text.column(c)?.str()?;
            let filled = cells.len() - cells.null_count();
            for v in cells.iter().flatten() {
                if crate::util::is_null_token(v) {
                    continue;
                }
                n += 1;
                if crate::util::parse_crm_number(v, mark).is_none() {
                    bad += 1;
                    // text, not numbers: no need to read on
                    if bad * 10 > filled {
                        break;
                    }
                }
            }
            // numbers but for a stray few (at most 1 in 10): those are
            // cells read as missing, noted
            let kind = if n > 0 && bad * 10 <= n {
                ColumnKind::Numeric
            } else {
                ColumnKind::Categorical
            };
            kinds.insert(c.clone(), kind);
        }
    }
    Ok(kinds)
}

/// An account needs an id, once: a repeat (in this piece of the file, or
/// in an earlier one) is rejected and the first row kept.
fn account_id_checks() -> Vec<Check> {
    vec![
        check(
            "account_id",
            col("account_id").is_null(),
            "missing account_id (required, must be non-empty)",
        ),
        check(
            "account_id",
            col(EARLIER),
            "duplicate account_id (an earlier row has the same id; the first is kept)",
        ),
    ]
}

/// The notes, typed values and parsed numbers of the account's number
/// columns (firmographics, then numeric extra columns).
fn number_notes(
    present: &[&str],
    extras: &[String],
    kinds: &BTreeMap<String, ColumnKind>,
    cfg: &ValidConfig,
    mark: DecimalMark,
    newest: Option<i32>,
) -> (Vec<Note>, Vec<Expr>, Vec<Expr>) {
    // Numbers are optional firmographics: a cell that is unreadable or out
    // of range is read as missing and noted; the account is kept.
    // A founding year after the data's newest year (plus one: a company
    // founded this year, recorded as next) is a typo; without dated data,
    // only impossible years are. From the data, not the clock, so the same
    // inputs give the same notes whenever they are run.
    let this_year = newest.map_or(2099.0, |y| y as f64);
    let mut notes = Vec::new();
    let mut typed = Vec::new();
    let mut parsed = Vec::new();
    for &c in &["employees", "annual_revenue", "founded_year"] {
        if !present.contains(&c) {
            continue;
        }
        // parsed once, then read by every check
        parsed.push(parse_number(c, mark).alias(format!("__num_{c}")));
        let v = col(format!("__num_{c}"));
        let scale = cfg.scale.get(c).copied().unwrap_or(1.0);
        notes.push(unreadable_number(c, mark));
        notes.push(match c {
            "employees" => note(
                c,
                v.clone()
                    .lt(lit(0.0))
                    .or(v.clone().neq(v.clone().floor())),
                match mark {
                    DecimalMark::Point => "expected a whole number >= 0 (if 1.250 means one thousand two hundred and fifty, the file writes numbers with a decimal comma: set [files] decimal = \",\")",
                    DecimalMark::Comma => "expected a whole number >= 0",
                },
            ),
            "annual_revenue" => note(c, v.clone().lt(lit(0.0)), "expected a number >= 0"),
            _ => note(
                c,
                v.clone()
                    .lt(lit(1600.0))
                    .or(v.clone().gt(lit(this_year + 1.0)))
                    .or(v.clone().neq(v.clone().floor())),
                format!(
                    "expected a whole year between 1600 and {}",
                    this_year as i64 + 1
                ),
            ),
        });
        typed.push((v * lit(scale)).alias(c));
    }
    for c in extras {
        if kinds.get(c) == Some(&ColumnKind::Numeric) {
            parsed.push(parse_number(c, mark).alias(format!("__num_{c}")));
            notes.push(unreadable_number(c, mark));
            typed.push(col(format!("__num_{c}")).alias(c.as_str()));
        }
    }
    (notes, typed, parsed)
}

pub(super) fn load_accounts(
    raw: Raw,
    path: &Path,
    cfg: &ValidConfig,
    kind_hints: Option<&BTreeMap<String, ColumnKind>>,
    earlier: Option<&mut SeenIds>,
    newest: Option<i32>,
    rejects: &mut Vec<DataFrame>,
) -> Result<(Table, BTreeMap<String, ColumnKind>)> {
    let Raw {
        df: mut raw,
        rows,
        pre_rejects,
        footer_lines,
    } = raw;
    let mark = cfg.files.decimal_mark();
    let (mut exprs, used, present) = map_columns(
        &raw,
        path,
        "accounts",
        ACCOUNT_COLUMNS,
        &["account_id"],
        cfg,
    )?;
    let mut extras: Vec<String> = Vec::new();
    for name in raw.get_column_names() {
        let n = name.as_str();
        if n == ROW || used.iter().any(|u| u == n) || ACCOUNT_COLUMNS.contains(&n) {
            continue;
        }
        if cfg.features.exclude.iter().any(|x| x == n) {
            continue;
        }
        exprs.push(col(n));
        extras.push(n.to_string());
    }
    // a file read in pieces is not judged whole by one piece: its
    // unreadable numbers are noted, never a stop
    let judge_numbers = earlier.is_none();
    // a whole file: its ids start here
    let mut whole = SeenIds::default();
    let flags = seen_before(&raw, cfg, earlier.unwrap_or(&mut whole))?;
    drop(whole);
    raw.with_column(flags)?;
    exprs.push(col(EARLIER));
    let mut lf = raw.lazy().select(exprs);
    let text_cols: Vec<String> = present
        .iter()
        .map(|s| s.to_string())
        .chain(extras.iter().cloned())
        .collect();
    lf = lf.with_columns(text_cols.iter().map(|c| clean(c)).collect::<Vec<_>>());
    lf = with_raw(lf, &present);

    let mut trace = crate::util::progress::Trace::start();
    let kinds = extra_kinds(&lf, &extras, path, mark, kind_hints)?;
    trace.lap("accounts: kinds of extra columns");
    let checks = account_id_checks();
    let (mut notes, typed, parsed) = number_notes(&present, &extras, &kinds, cfg, mark, newest);
    if !judge_numbers {
        notes.iter_mut().for_each(|n| n.unreadable = None);
    }
    lf = with_raw(lf, &extras.iter().map(|s| s.as_str()).collect::<Vec<_>>());
    lf = lf.with_columns(parsed);
    let mut keep: Vec<Expr> = vec![col(ROW)];
    keep.extend(present.iter().map(|c| col(*c)));
    keep.extend(extras.iter().map(|c| col(c.as_str())));
    let table = split(
        lf,
        &checks,
        &notes,
        typed,
        path,
        "accounts",
        rows,
        keep,
        pre_rejects,
        rejects,
    )?;
    let mut table = table;
    table.input.footer_lines = footer_lines;
    Ok((table, kinds))
}
