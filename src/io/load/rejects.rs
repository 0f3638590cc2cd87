//! The rejects table (file, row, column, value, reason): building it, and
//! reading it back for counts, cell notes and unmapped deal stages.

use std::collections::BTreeMap;

use polars::prelude::*;

use crate::domain::Outcome;
use crate::error::Result;

/// One rejects frame (file, row, column, value, reason) from several, in order.
pub fn concat_rejects(parts: Vec<DataFrame>) -> Result<DataFrame> {
    Ok(if parts.is_empty() {
        empty_rejects()
    } else {
        let lfs: Vec<LazyFrame> = parts.into_iter().map(|d: DataFrame| d.lazy()).collect();
        concat(lfs, UnionArgs::default())?.collect()?
    })
}

pub(super) fn empty_rejects() -> DataFrame {
    DataFrame::new(
        0,
        vec![
            Column::new_empty("file".into(), &DataType::String),
            Column::new_empty("row".into(), &DataType::UInt64),
            Column::new_empty("column".into(), &DataType::String),
            Column::new_empty("value".into(), &DataType::String),
            Column::new_empty("reason".into(), &DataType::String),
        ],
    )
    .expect("static schema")
}

/// The start of a `rejects.csv` reason that notes a cell, not a row: the
/// row was used, with that cell read as missing.
pub const NOTE_PREFIX: &str = "row kept, cell read as missing: ";

/// Rows rejected in a rejects frame (cell notes are not rows).
pub fn rejected_rows(rejects: &DataFrame) -> usize {
    rejects.height() - noted_cells(rejects)
}

/// Cell notes in a rejects frame: cells read as missing in rows that were used.
pub fn noted_cells(rejects: &DataFrame) -> usize {
    rejects
        .column("reason")
        .ok()
        .and_then(|c| c.str().ok().cloned())
        .map_or(0, |r| {
            r.iter()
                .filter(|v| v.is_some_and(|v| v.starts_with(NOTE_PREFIX)))
                .count()
        })
}

/// Cells read as missing, by file and column: (file, column, cells, an
/// example value), for the run's summary.
pub fn notes_by_column(rejects: &DataFrame) -> Result<Vec<(String, String, usize, String)>> {
    let mut out: BTreeMap<(String, String), (usize, String)> = BTreeMap::new();
    let (f, c, v, r) = (
        rejects.column("file")?.str()?,
        rejects.column("column")?.str()?,
        rejects.column("value")?.str()?,
        rejects.column("reason")?.str()?,
    );
    for i in 0..rejects.height() {
        if !r.get(i).is_some_and(|r| r.starts_with(NOTE_PREFIX)) {
            continue;
        }
        let e = out
            .entry((
                f.get(i).unwrap_or("").to_string(),
                c.get(i).unwrap_or("").to_string(),
            ))
            .or_insert((0, v.get(i).unwrap_or("").to_string()));
        e.0 += 1;
    }
    Ok(out
        .into_iter()
        .map(|((f, c), (n, v))| (f, c, n, v))
        .collect())
}

/// Deals with unmapped stages that stop a run when they are also more than
/// 5% of the deals.
pub const MIN_UNKNOWN_STOP: usize = 3;

/// The reason of a deal whose stage is not mapped.
pub const UNKNOWN_OUTCOME: &str = "unknown outcome (expected won, lost, churned or open, or a stage mapped in the config's [outcomes])";

/// Stages that are not mapped, with their deals, most first (ties by name).
pub fn unknown_stages(rejects: &DataFrame) -> Result<Vec<(String, usize)>> {
    let mut by: BTreeMap<String, usize> = BTreeMap::new();
    let (v, r) = (
        rejects.column("value")?.str()?,
        rejects.column("reason")?.str()?,
    );
    for (v, r) in v.iter().zip(r.iter()) {
        if r == Some(UNKNOWN_OUTCOME) {
            *by.entry(v.unwrap_or("").to_string()).or_default() += 1;
        }
    }
    let mut out: Vec<(String, usize)> = by.into_iter().collect();
    out.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    Ok(out)
}

/// The `[outcomes]` lines that would map these stages, with a guess at the
/// outcome from the stage's words (open unless it says won, lost or churned).
pub fn outcome_lines(unknown: &[(String, usize)]) -> Vec<String> {
    unknown
        .iter()
        .map(|(stage, n)| {
            let l = stage.to_lowercase();
            let guess = if l.contains("churn") {
                Outcome::Churned
            } else if l.contains("lost") || l.contains("won't") || l.contains("wont ") {
                Outcome::Lost
            } else if l.contains("won") {
                Outcome::Won
            } else {
                Outcome::Open
            }
            .as_str();
            // a TOML string, so the line can be pasted as it is
            format!(
                "  {} = \"{guess}\"   # {} deals",
                toml::Value::String(stage.clone()),
                crate::util::thousands(*n)
            )
        })
        .collect()
}
