//! The optional tables: customers, interviews and triggers, each read and
//! checked against the accounts that survived their checks.

use std::path::Path;

use polars::prelude::*;

use super::checks::{
    Check, account_checks, check, date_checks, duplicate, map_columns, parse_date, parse_number,
    prepare,
};
use super::raw::{Raw, read_raw};
use super::split_rows::split;
use super::{ROW, Table};
use crate::config::{CUSTOMER_COLUMNS, INTERVIEW_COLUMNS, TRIGGER_COLUMNS, ValidConfig};
use crate::error::Result;

pub(super) fn load_customers(
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
    } = read_raw(path, cfg)?;
    let (exprs, _, present) = map_columns(
        &raw,
        path,
        "customers",
        CUSTOMER_COLUMNS,
        &["account_id", "status"],
        cfg,
    )?;
    let lf = prepare(raw, exprs, &present, ids);
    let status = col("status").str().to_lowercase();
    let mut checks = account_checks();
    checks.extend([
        check(
            "account_id",
            duplicate("account_id")?,
            "duplicate account_id (one customers row per account; the first is kept)",
        ),
        check(
            "status",
            col("status").is_null(),
            "missing status (expected active or churned)",
        ),
        check(
            "status",
            status
                .clone()
                .neq(lit("active"))
                .and(status.clone().neq(lit("churned"))),
            "unknown status (expected active or churned)",
        ),
    ]);
    let mut typed = vec![status.alias("status")];
    customer_optional(&present, cfg, &mut checks, &mut typed);
    let mut keep = vec![
        col(ROW),
        col("account_id"),
        col("status"),
        col("churn_date"),
        col("delivery_fit"),
        col("gross_margin"),
    ];
    if present.contains(&"notes") {
        keep.push(col("notes"));
    } else {
        keep.push(lit(NULL).cast(DataType::String).alias("notes"));
    }
    split(
        lf,
        &checks,
        &[],
        typed,
        path,
        "customers",
        rows,
        keep,
        pre_rejects,
        rejects,
    )
    .map(|mut t| {
        t.input.footer_lines = footer_lines;
        t
    })
}

/// The customer's optional churn date and scores: checked when the file has
/// them, null columns when it does not.
fn customer_optional(
    present: &[&str],
    cfg: &ValidConfig,
    checks: &mut Vec<Check>,
    typed: &mut Vec<Expr>,
) {
    if present.contains(&"churn_date") {
        let d = parse_date("churn_date", cfg);
        checks.extend(date_checks("churn_date", &d, cfg));
        typed.push(d.alias("churn_date"));
    } else {
        typed.push(lit(NULL).cast(DataType::Date).alias("churn_date"));
    }
    if present.contains(&"delivery_fit") {
        let v = parse_number("delivery_fit", cfg.files.decimal_mark());
        checks.push(check(
            "delivery_fit",
            col("delivery_fit").is_not_null().and(
                v.clone()
                    .is_null()
                    .or(v.clone().lt(lit(1.0)))
                    .or(v.clone().gt(lit(5.0)))
                    .or(v.clone().neq(v.clone().floor())),
            ),
            "expected a whole number from 1 to 5",
        ));
        typed.push(v.alias("delivery_fit"));
    } else {
        typed.push(lit(NULL).cast(DataType::Float64).alias("delivery_fit"));
    }
    if present.contains(&"gross_margin") {
        let v = parse_number("gross_margin", cfg.files.decimal_mark());
        checks.push(check(
            "gross_margin",
            col("gross_margin").is_not_null().and(
                v.clone()
                    .is_null()
                    .or(v.clone().is_nan())
                    .or(v.clone().lt(lit(0.0)))
                    .or(v.clone().gt(lit(1.0))),
            ),
            "expected a number from 0 to 1",
        ));
        typed.push(v.alias("gross_margin"));
    } else {
        typed.push(lit(NULL).cast(DataType::Float64).alias("gross_margin"));
    }
}

pub(super) fn load_interviews(
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
    } = read_raw(path, cfg)?;
    let (exprs, _, present) = map_columns(
        &raw,
        path,
        "interviews",
        INTERVIEW_COLUMNS,
        &["account_id", "quote"],
        cfg,
    )?;
    let lf = prepare(raw, exprs, &present, ids);
    let mut checks = account_checks();
    checks.push(check("quote", col("quote").is_null(), "missing quote"));
    let mut typed = Vec::new();
    if present.contains(&"date") {
        let d = parse_date("date", cfg);
        checks.extend(date_checks("date", &d, cfg));
        typed.push(d.alias("date"));
    } else {
        typed.push(lit(NULL).cast(DataType::Date).alias("date"));
    }
    let role = if present.contains(&"role") {
        col("role")
    } else {
        lit(NULL).cast(DataType::String).alias("role")
    };
    let keep = vec![col(ROW), col("account_id"), col("date"), role, col("quote")];
    split(
        lf,
        &checks,
        &[],
        typed,
        path,
        "interviews",
        rows,
        keep,
        pre_rejects,
        rejects,
    )
    .map(|mut t| {
        t.input.footer_lines = footer_lines;
        t
    })
}

pub(super) fn load_triggers(
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
    } = read_raw(path, cfg)?;
    let (exprs, _, _) = map_columns(
        &raw,
        path,
        "triggers",
        TRIGGER_COLUMNS,
        TRIGGER_COLUMNS,
        cfg,
    )?;
    let lf = prepare(raw, exprs, TRIGGER_COLUMNS, ids);
    let d = parse_date("date", cfg);
    let mut checks = account_checks();
    checks.push(check(
        "trigger",
        col("trigger").is_null(),
        "missing trigger",
    ));
    checks.push(check("date", col("date").is_null(), "missing date"));
    checks.extend(date_checks("date", &d, cfg));
    let typed = vec![d.alias("date")];
    let keep = vec![
        col(ROW),
        col("account_id"),
        col("trigger").str().to_lowercase(),
        col("date"),
    ];
    split(
        lf,
        &checks,
        &[],
        typed,
        path,
        "triggers",
        rows,
        keep,
        pre_rejects,
        rejects,
    )
    .map(|mut t| {
        t.input.footer_lines = footer_lines;
        t
    })
}
