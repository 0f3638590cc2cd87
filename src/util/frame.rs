//! Frame columns as plain Rust values, for the loops polars expressions do
//! not fit.

use polars::prelude::*;

use crate::error::Result;

/// A column as optional strings (any dtype is cast).
pub fn str_col(df: &DataFrame, name: &str) -> Result<Vec<Option<String>>> {
    let s = df
        .column(name)?
        .as_materialized_series()
        .cast(&DataType::String)?;
    Ok(s.str()?.iter().map(|v| v.map(str::to_string)).collect())
}

/// A column as text, to iterate as borrowed `Option<&str>` (no allocation
/// per row, unlike [`str_col`]).
pub fn text_col(df: &DataFrame, name: &str) -> Result<StringChunked> {
    super::ids::text(df, name)
}

/// A column as optional floats (any numeric dtype is cast).
pub fn f64_col(df: &DataFrame, name: &str) -> Result<Vec<Option<f64>>> {
    let s = df
        .column(name)?
        .as_materialized_series()
        .cast(&DataType::Float64)?;
    Ok(s.f64()?.iter().collect())
}

/// A flag column as booleans, a null as false.
pub fn flag_col(df: &DataFrame, name: &str) -> Result<Vec<bool>> {
    Ok(df
        .column(name)?
        .as_materialized_series()
        .cast(&DataType::Boolean)?
        .bool()?
        .iter()
        .map(|v| v.unwrap_or(false))
        .collect())
}

/// A text column of runs of one value each (`(value, rows)`, in order),
/// each value's bytes held once: the membership tables repeat a finding's
/// id and condition on every one of its accounts, millions of rows.
pub fn repeated_text<'a>(
    name: &str,
    runs: impl IntoIterator<Item = (&'a str, usize)>,
) -> Result<Column> {
    let mut out = StringChunked::full_null(name.into(), 0);
    for (value, rows) in runs {
        if rows > 0 {
            out.append(&StringChunked::full(name.into(), value, rows))?;
        }
    }
    out.set_sorted_flag(polars::series::IsSorted::Not);
    Ok(out.into_column())
}
