//! The opportunities table: deal checks, outcomes mapped from the CRM's
//! stages, and the stop when too many deals have an unmapped stage.

use std::path::Path;

use polars::prelude::*;

use super::checks::{
    Check, account_checks, check, date_checks, duplicate, map_columns, note, parse_date,
    parse_number, prepare, unreadable_number,
};
use super::raw::Raw;
use super::rejects::{MIN_UNKNOWN_STOP, UNKNOWN_OUTCOME, outcome_lines, unknown_stages};
use super::split_rows::split;
use super::{ROW, Table};
use crate::config::{OPPORTUNITY_COLUMNS, ValidConfig};
use crate::domain::Outcome;
use crate::error::{IcpError, Result};

/// The newest year among the opportunities' created and closed dates (the
/// cells that parse), read from the raw text before any check.
pub(super) fn newest_year(raw: &Raw, cfg: &ValidConfig) -> Result<Option<i32>> {
    let mut best: Option<i32> = None;
    for canonical in ["created_date", "closed_date"] {
        let name = cfg
            .columns
            .opportunities
            .get(canonical)
            .map(String::as_str)
            .unwrap_or(canonical);
        if !raw.df.get_column_names().iter().any(|c| c.as_str() == name) {
            continue;
        }
        // an impossible date is rejected later; it must not set the bound
        let year = parse_date(name, cfg).dt().year();
        let plausible = year
            .clone()
            .gt_eq(lit(1900))
            .and(year.clone().lt_eq(lit(2100)));
        let y = raw
            .df
            .clone()
            .lazy()
            .select([year.filter(plausible).max().alias("y")])
            .collect()?;
        if let Some(v) = y.column("y")?.i32()?.get(0) {
            best = Some(best.map_or(v, |b| b.max(v)));
        }
    }
    Ok(best)
}

pub(super) fn load_opportunities(
    raw: Raw,
    path: &Path,
    cfg: &ValidConfig,
    ids: &DataFrame,
    rejects: &mut Vec<DataFrame>,
) -> Result<Table> {
    let Raw {
        df: raw,
        rows,
        pre_rejects,
        footer_lines,
    } = raw;
    let required = ["opportunity_id", "account_id", "created_date", "outcome"];
    let (exprs, _, present) = map_columns(
        &raw,
        path,
        "opportunities",
        OPPORTUNITY_COLUMNS,
        &required,
        cfg,
    )?;
    let lf = prepare(raw, exprs, &present, ids);
    let outcome = outcome_expr(cfg);
    let has_closed = present.contains(&"closed_date");
    let closed = if has_closed {
        parse_date("closed_date", cfg)
    } else {
        lit(NULL).cast(DataType::Date)
    };
    // parsed once, then read by every check that needs them
    let mut parsed = vec![
        outcome.alias("__outcome"),
        parse_date("created_date", cfg).alias("__created"),
        closed.alias("__closed"),
    ];
    if present.contains(&"amount") {
        parsed.push(parse_number("amount", cfg.files.decimal_mark()).alias("__num_amount"));
    }
    let lf = lf.with_columns(parsed);
    let (outcome, created, closed) = (col("__outcome"), col("__created"), col("__closed"));
    let checks = deal_checks(&outcome, &created, &closed, has_closed, cfg)?;
    let mut typed = vec![
        outcome.alias("outcome"),
        created.alias("created_date"),
        closed.alias("closed_date"),
    ];
    // the amount is optional: an unreadable or negative one is read as
    // missing and noted, and the deal is kept
    let mut notes = Vec::new();
    if present.contains(&"amount") {
        let v = col("__num_amount");
        let scale = cfg.scale.get("amount").copied().unwrap_or(1.0);
        notes.push(unreadable_number("amount", cfg.files.decimal_mark()));
        notes.push(note(
            "amount",
            v.clone().lt(lit(0.0)),
            "negative amount (expected a number >= 0)",
        ));
        typed.push((v * lit(scale)).alias("amount"));
    } else {
        typed.push(lit(NULL).cast(DataType::Float64).alias("amount"));
    }
    let table = split(
        lf,
        &checks,
        &notes,
        typed,
        path,
        "opportunities",
        rows,
        deal_keep(&present),
        pre_rejects,
        rejects,
    )
    .map(|mut t| {
        t.input.footer_lines = footer_lines;
        t
    })?;
    unknown_stage_stop(rejects.as_slice(), rows, path)?;
    Ok(table)
}

/// The deal's outcome: the config's stage names first, then the canonical words.
fn outcome_expr(cfg: &ValidConfig) -> Expr {
    let lower = col("outcome").str().to_lowercase();
    let mut outcome = lit(NULL).cast(DataType::String);
    let mut pairs: Vec<(String, &str)> = cfg
        .outcomes
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str()))
        .collect();
    for o in [Outcome::Won, Outcome::Lost, Outcome::Churned, Outcome::Open] {
        let w = o.as_str();
        if !cfg.outcomes.contains_key(w) {
            pairs.push((w.to_string(), w));
        }
    }
    for (from, to) in pairs.iter().rev() {
        outcome = when(lower.clone().eq(lit(from.clone())))
            .then(lit(*to))
            .otherwise(outcome);
    }
    outcome
}

/// A deal's row checks, on its parsed outcome and dates: ids, account,
/// created date, outcome, then the closed date a closed deal needs.
fn deal_checks(
    outcome: &Expr,
    created: &Expr,
    closed: &Expr,
    has_closed: bool,
    cfg: &ValidConfig,
) -> Result<Vec<Check>> {
    let closed_outcome = outcome.clone().neq(Outcome::Open.lit());
    let mut checks = vec![
        check(
            "opportunity_id",
            col("opportunity_id").is_null(),
            "missing opportunity_id",
        ),
        check(
            "opportunity_id",
            duplicate("opportunity_id")?,
            "duplicate opportunity_id (an earlier row has the same id; the first is kept)",
        ),
    ];
    checks.extend(account_checks());
    checks.push(check(
        "created_date",
        col("created_date").is_null(),
        "missing created_date",
    ));
    checks.extend(date_checks("created_date", created, cfg));
    checks.push(check(
        "outcome",
        col("outcome").is_null(),
        "missing outcome",
    ));
    checks.push(check("outcome", outcome.clone().is_null(), UNKNOWN_OUTCOME));
    if has_closed {
        checks.push(check(
            "closed_date",
            closed_outcome.clone().and(col("closed_date").is_null()),
            "missing closed_date (required for won, lost and churned)",
        ));
        checks.extend(date_checks("closed_date", closed, cfg));
        checks.push(check(
            "closed_date",
            closed.clone().lt(created.clone()),
            "closed before created (closed_date is earlier than created_date)",
        ));
    } else {
        checks.push(check("closed_date", closed_outcome.clone(), "missing closed_date (required for won, lost and churned; the file has no closed_date column)"));
    }
    Ok(checks)
}

/// The columns a used deal keeps; optional text columns the file lacks are null.
fn deal_keep(present: &[&str]) -> Vec<Expr> {
    let mut keep = vec![
        col(ROW),
        col("opportunity_id"),
        col("account_id"),
        col("created_date"),
        col("closed_date"),
        col("outcome"),
        col("amount"),
    ];
    for c in ["loss_reason", "product", "source", "owner"] {
        if present.contains(&c) {
            keep.push(col(c));
        } else {
            keep.push(lit(NULL).cast(DataType::String).alias(c));
        }
    }
    keep
}

/// A renamed or added stage drops its deals: more than a few, and the
/// model learns from a biased part of the history, so stop and say so
/// (one or two stray deals in a tiny file are listed, not a stop).
fn unknown_stage_stop(rejects: &[DataFrame], rows: usize, path: &Path) -> Result<()> {
    if let Some(rej) = rejects.last() {
        let unknown = unknown_stages(rej)?;
        let n: usize = unknown.iter().map(|u| u.1).sum();
        if n >= MIN_UNKNOWN_STOP && n * 20 > rows {
            return Err(IcpError::Data {
                path: path.into(),
                message: format!(
                    "{} of {} deals ({}) have a stage the config does not map, more than 5%: add them to the config's [outcomes] section, for example\n{}",
                    crate::util::thousands(n),
                    crate::util::thousands(rows),
                    crate::util::pct(n as f64 / rows as f64),
                    outcome_lines(&unknown).join("\n")
                ),
            });
        }
    }
    Ok(())
}
