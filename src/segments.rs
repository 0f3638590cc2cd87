//! Stage 6: the segment files a workflow engine reads every day.

use polars::prelude::*;

use crate::error::Result;
use crate::score::STATUS_SCORED;

pub const THRESHOLDS: [u8; 7] = [30, 40, 50, 60, 70, 80, 90];

pub fn file_name(threshold: u8) -> String {
    format!("segments/score_gte_{threshold}.csv")
}

/// The accounts whose score is at or above `threshold`, sorted by score
/// (desc) then account_id; accounts without a score are in no segment.
pub fn segment(scores: &DataFrame, threshold: u8) -> Result<DataFrame> {
    Ok(scores
        .clone()
        .lazy()
        .filter(
            col("status").eq(lit(STATUS_SCORED)).and(
                col("score")
                    .cast(DataType::Int32)
                    .gt_eq(lit(threshold as i32)),
            ),
        )
        .sort_by_exprs(
            [col("score"), col("account_id")],
            SortMultipleOptions::default().with_order_descending_multi([true, false]),
        )
        .select([
            col("account_id"),
            col("account_name"),
            col("domain"),
            col("score"),
            col("band"),
        ])
        .collect()?)
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
