//! Stage 2: turn closed opportunities into labelled examples.
//!
//! A *velocity win* is a won deal, whose customer has not churned, that closed
//! within the velocity window (closed - created <= window days). Lost and
//! churned deals are negatives. Open deals carry no label.
//!
//! The window defaults to the median sales cycle of the won deals in the
//! *training* part of the time split, so the holdout never shapes the label.

use chrono::NaiveDate;
use polars::prelude::*;
use serde::{Deserialize, Serialize};

use crate::config::{HoldoutBy, ValidConfig};
use crate::domain::Outcome;
use crate::error::{IcpError, Result};
use crate::io::load::Dataset;

/// The labelled, time-ordered closed opportunities and how they were split.
#[derive(Debug, Clone)]
pub struct Labels {
    /// opportunity_id, account_id, created_date, closed_date, outcome (effective),
    /// cycle_days, amount, label, holdout; sorted by closed_date, opportunity_id.
    pub df: DataFrame,
    pub window: Window,
    /// first date of the holdout: a close date, or with
    /// `holdout_by = "created_date"` a creation date
    pub cutoff: NaiveDate,
    pub holdout_by: HoldoutBy,
    /// creation cohorts: the last creation date whose deals had time to
    /// close (deals created later are in neither part)
    pub holdout_to: Option<NaiveDate>,
    pub n_train: usize,
    pub n_holdout: usize,
    /// open deals created on or after the cutoff (creation cohorts only):
    /// no outcome yet, so in neither part
    pub left_open: usize,
    /// closed deals created after `holdout_to`, left out of both parts
    pub left_recent: usize,
}

/// What to try when a close-date holdout lacks one class: lead-cohort data,
/// where losses are closed later by a rule, holds out by creation cohort.
pub const HOLDOUT_BY_HINT: &str = "If the latest close dates are mostly losses closed by a rule (lead-cohort data), set `holdout_by = \"created_date\"` in the config's [model] section to hold out the most recent creation cohort instead.";

impl Labels {
    /// "deals closed from 2024-10-29" or "deals created from ...".
    pub fn holdout_words(&self) -> String {
        match self.holdout_to {
            Some(to) => format!("deals created from {} to {to}", self.cutoff),
            None => format!("deals {} from {}", self.holdout_by.verb(), self.cutoff),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Window {
    pub days: i64,
    /// "config" or how it was derived from the data
    pub source: String,
}

pub fn epoch_days_to_date(d: i32) -> NaiveDate {
    NaiveDate::from_num_days_from_ce_opt(d + 719_163).unwrap_or(NaiveDate::MIN)
}

/// The labels' copy of each deal's loss reason (a reserved `__` name).
pub const LOSS_REASON: &str = "__loss_reason";

/// Label the closed opportunities and split them by time.
pub fn label(data: &Dataset, cfg: &ValidConfig) -> Result<Labels> {
    let opps = data
        .opportunities
        .as_ref()
        .ok_or_else(|| IcpError::NotEnoughEvidence("no opportunities file".into()))?;
    let df = closed_deals(data, &opps.df)?;
    let (df, holdout_to, left_recent) = settled_deals(cfg.model.holdout_by, &opps.df, df)?;
    let n = df.height();
    if n < 2 {
        return Err(IcpError::NotEnoughEvidence(format!(
            "{n} closed opportunities (won, lost or churned){}; a model needs a history of closed deals",
            if left_recent > 0 {
                format!(" created early enough to have closed ({left_recent} more are too recent)")
            } else {
                String::new()
            }
        )));
    }
    // Time split: the most recent `holdout_fraction` of closed deals, by
    // close date or by creation date, whole days together.
    let by = cfg.model.holdout_by;
    let split_column = by.column();
    let mut dates: Vec<i32> = df
        .column(split_column)?
        .cast(&DataType::Int32)?
        .i32()?
        .into_no_null_iter()
        .collect();
    dates.sort_unstable();
    let idx = ((n as f64) * (1.0 - cfg.model.holdout_fraction)).floor() as usize;
    let cutoff = dates[idx.min(n - 1)];
    let n_train = dates.iter().filter(|&&d| d < cutoff).count();
    let n_holdout = n - n_train;
    if n_train == 0 {
        return Err(IcpError::NotEnoughEvidence(format!(
            "every closed opportunity was {} on the same day; a time-based holdout needs history before it",
            by.verb()
        )));
    }
    let in_holdout = col(split_column).cast(DataType::Int32).gt_eq(lit(cutoff));
    let left_open = match by {
        HoldoutBy::ClosedDate => 0,
        HoldoutBy::CreatedDate => opps
            .df
            .clone()
            .lazy()
            .filter(
                col("outcome")
                    .eq(Outcome::Open.lit())
                    .and(in_holdout.clone().fill_null(lit(false))),
            )
            .collect()?
            .height(),
    };
    let window = velocity_window(cfg, &df, &in_holdout)?;
    let df = df
        .lazy()
        .with_columns([
            col("outcome")
                .eq(Outcome::Won.lit())
                .and(col("cycle_days").lt_eq(lit(window.days)))
                .alias("label"),
            in_holdout.alias("holdout"),
        ])
        .collect()?;
    Ok(Labels {
        df,
        window,
        cutoff: epoch_days_to_date(cutoff),
        holdout_by: by,
        holdout_to: holdout_to.map(epoch_days_to_date),
        n_train,
        n_holdout,
        left_open,
        left_recent,
    })
}

/// The closed deals, each with its effective outcome (a churned customer's
/// win counts as churned) and its cycle, in close-date order.
fn closed_deals(data: &Dataset, opps: &DataFrame) -> Result<DataFrame> {
    let mut lf = opps
        .clone()
        .lazy()
        .filter(col("outcome").neq(Outcome::Open.lit()));
    // A won deal whose account churned (customers.status) counts as churned.
    if let Some(c) = &data.customers {
        let churned =
            c.df.clone()
                .lazy()
                .filter(col("status").eq(lit("churned")))
                .select([
                    col("account_id"),
                    col("churn_date"),
                    lit(true).alias("__churned"),
                ]);
        lf = lf
            .join(
                churned,
                [col("account_id")],
                [col("account_id")],
                JoinArgs::new(JoinType::Left),
            )
            .with_column(
                when(
                    col("outcome")
                        .eq(Outcome::Won.lit())
                        .and(col("__churned").is_not_null())
                        .and(
                            col("churn_date")
                                .is_null()
                                .or(col("churn_date").gt_eq(col("closed_date"))),
                        ),
                )
                .then(Outcome::Churned.lit())
                .otherwise(col("outcome"))
                .alias("outcome"),
            );
    }
    let df = lf
        .with_column(
            (col("closed_date").cast(DataType::Int32) - col("created_date").cast(DataType::Int32))
                .cast(DataType::Int64)
                .alias("cycle_days"),
        )
        .sort(
            ["closed_date", "opportunity_id"],
            SortMultipleOptions::default(),
        )
        .select([
            col("opportunity_id"),
            col("account_id"),
            col("created_date"),
            col("closed_date"),
            col("outcome"),
            col("cycle_days"),
            col("amount"),
            // for the refined ICP's loss reasons, without a join back; a
            // reserved name, so an accounts column called loss_reason is
            // never confused with it (training rows join the two)
            col("loss_reason").cast(DataType::String).alias(LOSS_REASON),
        ])
        .collect()?;
    Ok(df)
}

/// With creation cohorts, the deals created too recently to have closed
/// left out: the deals kept, the last creation day kept, and how many left.
fn settled_deals(
    holdout_by: HoldoutBy,
    opps: &DataFrame,
    df: DataFrame,
) -> Result<(DataFrame, Option<i32>, usize)> {
    // A creation cohort is judged only once its deals have had time to
    // close: in lead-cohort data the fast wins close first and the losses
    // months later, so a recent cohort's closed deals are mostly wins. Deals
    // created after the newest date minus the 95th percentile of the time
    // to close are left out of both parts.
    Ok(match holdout_by {
        HoldoutBy::ClosedDate => (df, None, 0),
        HoldoutBy::CreatedDate => {
            let day = |d: &DataFrame, c: &str| -> Result<Option<i32>> {
                Ok(d.column(c)?.cast(&DataType::Int32)?.i32()?.max())
            };
            let newest = day(opps, "created_date")?.max(day(&df, "closed_date")?);
            let mut cycles: Vec<i64> = df
                .column("cycle_days")?
                .i64()?
                .into_no_null_iter()
                .collect();
            cycles.sort_unstable();
            match (newest, cycles.is_empty()) {
                (Some(newest), false) => {
                    let k = ((cycles.len() as f64) * 0.95).ceil() as usize;
                    let settle = cycles[k.clamp(1, cycles.len()) - 1];
                    let end = newest - settle as i32;
                    let before = df.height();
                    let kept = df
                        .lazy()
                        .filter(col("created_date").cast(DataType::Int32).lt_eq(lit(end)))
                        .collect()?;
                    let gone = before - kept.height();
                    (kept, Some(end), gone)
                }
                _ => (df, None, 0),
            }
        }
    })
}

/// The velocity window: the config's, or the median sales cycle of the won
/// deals before the holdout (so the holdout never shapes the label).
fn velocity_window(cfg: &ValidConfig, df: &DataFrame, in_holdout: &Expr) -> Result<Window> {
    Ok(match cfg.velocity_window_days {
        Some(days) => Window {
            days,
            source: "config ([label] velocity_window_days)".into(),
        },
        None => {
            let won = df
                .clone()
                .lazy()
                .filter(
                    in_holdout.clone().not().and(
                        col("outcome")
                            .eq(Outcome::Won.lit())
                            .or(col("outcome").eq(Outcome::Churned.lit())),
                    ),
                )
                .select([col("cycle_days").cast(DataType::Float64)])
                .collect()?;
            let mut v: Vec<f64> = won
                .column("cycle_days")?
                .f64()?
                .into_no_null_iter()
                .collect();
            if v.is_empty() {
                return Err(IcpError::NotEnoughEvidence(
                    "no won deal before the holdout, so there is no sales cycle to derive the velocity window from".into(),
                ));
            }
            v.sort_by(f64::total_cmp);
            let median = median_sorted(&v);
            Window {
                days: (median.ceil() as i64).max(1),
                source: format!(
                    "median sales cycle of the {} won deals before the holdout",
                    crate::util::thousands(v.len())
                ),
            }
        }
    })
}

pub use crate::util::median_sorted;
