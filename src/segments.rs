//! Stage 6: the segment files a workflow engine reads every day.

use polars::prelude::*;

use crate::error::Result;
use crate::score::STATUS_SCORED;

pub const THRESHOLDS: [u8; 7] = [30, 40, 50, 60, 70, 80, 90];

/// What a segment file says of each account.
pub const COLUMNS: [&str; 5] = ["account_id", "account_name", "domain", "score", "band"];

/// The segment-file columns of scored accounts.
pub fn columns(scores: &DataFrame) -> Result<DataFrame> {
    Ok(scores.select(COLUMNS)?)
}

pub fn file_name(threshold: u8) -> String {
    format!("segments/score_gte_{threshold}.csv")
}

/// Every segment at once. Sorted by score (desc), the accounts at or above a
/// threshold are a prefix of the scored accounts: one sort, seven slices.
pub fn segments(scores: &DataFrame) -> Result<Vec<(u8, DataFrame)>> {
    let sorted = scores
        .clone()
        .lazy()
        .filter(col("status").eq(lit(STATUS_SCORED)))
        .select(COLUMNS.map(col))
        .sort_by_exprs(
            [col("score"), col("account_id")],
            SortMultipleOptions::default().with_order_descending_multi([true, false]),
        )
        .collect()?;
    let s: Vec<i64> = sorted
        .column("score")?
        .cast(&DataType::Int64)?
        .i64()?
        .iter()
        .map(|v| v.unwrap_or(i64::MIN))
        .collect();
    Ok(THRESHOLDS
        .iter()
        .map(|&t| {
            let n = s.partition_point(|&v| v >= t as i64);
            (t, sorted.slice(0, n))
        })
        .collect())
}

/// Accounts per band, for summaries: (band, count) in a fixed order.
pub fn band_counts(scores: &DataFrame) -> Result<Vec<(String, usize)>> {
    let bands = scores.column("band")?.str()?;
    Ok(["high", "medium", "low", crate::score::BAND_UNSCORED]
        .iter()
        .map(|b| {
            (
                b.to_string(),
                bands.iter().filter(|v| *v == Some(*b)).count(),
            )
        })
        .collect())
}
