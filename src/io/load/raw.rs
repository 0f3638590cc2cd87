//! Reading a file as text columns (CSV or Parquet) with each row's number,
//! and rejecting before any check the rows no check could read: ragged
//! records, undecodable text and oversized cells.

use std::path::Path;

use polars::prelude::*;

use super::ROW;
use super::csv_bytes::{
    delimiter_hint, ragged_records, strip_footer, to_comma_separated, windows_1252_to_utf8,
};
use super::hash::file_name;
use super::rejects::empty_rejects;
use crate::config::{ValidConfig, WINDOWS_1252};
use crate::error::{IcpError, Result};

/// Cells longer than this are rejected: no CRM field is a 64 KiB value, and
/// a runaway cell (a missing closing quote swallowing the file) is a bad row.
pub const MAX_CELL_BYTES: usize = 64 * 1024;

/// A file read as text: the rows to check, how many rows it had, and the
/// rows rejected before any check (undecodable or oversized cells).
pub struct Raw {
    pub(super) df: DataFrame,
    pub(super) rows: usize,
    pub(super) pre_rejects: DataFrame,
    /// report footer lines cut from the end of the file
    pub(super) footer_lines: usize,
}

/// [`read_raw_text`], then reject rows whose cells are not UTF-8 text or are
/// too large to be a field, so every later check sees sane text.
pub(super) fn read_raw(path: &Path, cfg: &ValidConfig) -> Result<Raw> {
    let cp1252 = cfg.files.encoding.as_deref() == Some(WINDOWS_1252);
    let delimiter = cfg.files.delimiter_byte();
    let (df, ragged, footer_lines) = guarded(path, || read_raw_text(path, cp1252, delimiter))?;
    let raw = checked_cells(path, df)?;
    Ok(Raw {
        footer_lines,
        ..split_ragged(path, raw, &ragged)?
    })
}

/// A record whose field count is not the header's: its fields and text.
#[derive(Debug, Clone)]
pub(super) struct Ragged {
    fields: usize,
    header: usize,
    text: String,
}

/// Marks the first cell of a ragged record replaced by an empty row, so the
/// reader keeps its place (and its row number) without guessing its cells.
const RAGGED_MARK: &str = "\u{1}ragged-record-";

/// Take the marked ragged records out of the rows and list them as rejects
/// (`too_many_fields` / `too_few_fields`), each with its row number.
pub(super) fn split_ragged(path: &Path, mut raw: Raw, ragged: &[Ragged]) -> Result<Raw> {
    if ragged.is_empty() {
        return Ok(raw);
    }
    let Some(first) = raw
        .df
        .get_column_names()
        .into_iter()
        .find(|n| n.as_str() != ROW)
        .cloned()
    else {
        return Ok(raw);
    };
    let cells = raw.df.column(&first)?.str()?.clone();
    let rows = raw.df.column(ROW)?.cast(&DataType::UInt64)?;
    let rows = rows.u64()?;
    let (mut r_row, mut r_val, mut r_why) = (vec![], vec![], vec![]);
    let mut keep = Vec::with_capacity(raw.df.height());
    for (i, v) in cells.iter().enumerate() {
        let k = v
            .and_then(|v| v.strip_prefix(RAGGED_MARK))
            .and_then(|k| k.parse::<usize>().ok())
            .and_then(|k| ragged.get(k));
        keep.push(k.is_none());
        if let Some(r) = k {
            r_row.push(rows.get(i).unwrap_or(0));
            r_val.push(r.text.chars().take(200).collect::<String>());
            r_why.push(if r.fields > r.header {
                format!(
                    "too_many_fields: {} fields where the header has {} (a value with a comma not in quotes?)",
                    r.fields, r.header
                )
            } else {
                format!(
                    "too_few_fields: {} fields where the header has {}",
                    r.fields, r.header
                )
            });
        }
    }
    let n = r_row.len();
    let rej = DataFrame::new(
        n,
        vec![
            Column::new("file".into(), vec![file_name(path); n]),
            Column::new("row".into(), r_row),
            Column::new("column".into(), vec!["(line)"; n]),
            Column::new("value".into(), r_val),
            Column::new("reason".into(), r_why),
        ],
    )?;
    let keep: BooleanChunked = keep.into_iter().map(Some).collect();
    raw.df = raw.df.filter(&keep)?;
    raw.pre_rejects = concat([raw.pre_rejects.lazy(), rej.lazy()], UnionArgs::default())?
        .sort(["row"], SortMultipleOptions::default())
        .collect()?;
    Ok(raw)
}

/// A reader panic (polars on some malformed inputs) becomes an error naming the file.
pub(super) fn guarded<T>(path: &Path, read: impl FnOnce() -> Result<T>) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(read)).map_err(|_| {
        IcpError::read(
            path,
            "the CSV/Parquet reader failed on this file (is it a CSV with a header row, or Parquet?)",
        )
    })?
}

pub(super) fn checked_cells(path: &Path, df: DataFrame) -> Result<Raw> {
    use rayon::prelude::*;
    let rows = df.height();
    // One pass over the text, the columns in parallel; only the (rare) bad
    // cells allocate. A cell is read for U+FFFD only when it holds its
    // first byte (0xEF), so clean text costs one byte scan.
    let per_column: Vec<Vec<(usize, String, String)>> = df
        .columns()
        .par_iter()
        .filter(|c| c.name().as_str() != ROW)
        .map(|c| -> Result<Vec<(usize, String, String)>> {
            let ca = c.as_materialized_series().str()?.clone();
            let mut out = Vec::new();
            for (i, v) in ca.iter().enumerate() {
                let Some(v) = v else { continue };
                let why = if v.len() > MAX_CELL_BYTES {
                    format!(
                        "cell of {} bytes (at most {} allowed)",
                        crate::util::thousands(v.len()),
                        crate::util::thousands(MAX_CELL_BYTES)
                    )
                } else if memchr::memchr(0xEF, v.as_bytes()).is_some() && v.contains('\u{FFFD}') {
                    "not valid UTF-8 text (a file saved by Excel on Windows is Windows-1252: set [files] encoding = \"windows-1252\" in the config, or save it as UTF-8)".into()
                } else {
                    continue;
                };
                out.push((i, v.chars().take(200).collect(), why));
            }
            Ok(out)
        })
        .collect::<Result<_>>()?;
    // a row's first bad cell, in column order, is the one reported
    let names: Vec<String> = df
        .columns()
        .iter()
        .filter(|c| c.name().as_str() != ROW)
        .map(|c| c.name().to_string())
        .collect();
    let mut is_bad = vec![false; rows];
    let mut bad: Vec<(usize, String, String, String)> = Vec::new();
    for (name, cells) in names.iter().zip(per_column) {
        for (i, v, why) in cells {
            if !is_bad[i] {
                is_bad[i] = true;
                bad.push((i, name.clone(), v, why));
            }
        }
    }
    if bad.is_empty() {
        return Ok(Raw {
            df,
            rows,
            pre_rejects: empty_rejects(),
            footer_lines: 0,
        });
    }
    bad.sort_by_key(|b| b.0);
    let row_ids: Vec<u64> = df
        .column(ROW)?
        .cast(&DataType::UInt64)?
        .u64()?
        .iter()
        .map(|v| v.unwrap_or(0))
        .collect();
    let (mut r_row, mut r_col, mut r_val, mut r_why) = (vec![], vec![], vec![], vec![]);
    for (i, c, v, why) in bad {
        r_row.push(row_ids[i]);
        r_col.push(c);
        r_val.push(v);
        r_why.push(why);
    }
    let n = r_row.len();
    let pre_rejects = DataFrame::new(
        n,
        vec![
            Column::new("file".into(), vec![file_name(path); n]),
            Column::new("row".into(), r_row),
            Column::new("column".into(), r_col),
            Column::new("value".into(), r_val),
            Column::new("reason".into(), r_why),
        ],
    )?;
    let keep: BooleanChunked = is_bad.iter().map(|b| Some(!*b)).collect();
    Ok(Raw {
        df: df.filter(&keep)?,
        rows,
        pre_rejects,
        footer_lines: 0,
    })
}

/// Read a file with every column as text, plus its row number as users count
/// them (CSV: the line, header = 1; Parquet: 1-based row).
pub(super) fn read_raw_text(
    path: &Path,
    cp1252: bool,
    delimiter: u8,
) -> Result<(DataFrame, Vec<Ragged>, usize)> {
    if is_parquet(path) {
        let f = std::fs::File::open(path).map_err(|e| IcpError::read(path, e))?;
        let df = ParquetReader::new(f)
            .finish()
            .map_err(|e| IcpError::read(path, e))?;
        let names: Vec<PlSmallStr> = df.get_column_names_owned();
        let df = df
            .lazy()
            .with_row_index(ROW, Some(1))
            .with_columns(
                names
                    .iter()
                    .map(|n| col(n.clone()).cast(DataType::String))
                    .collect::<Vec<_>>(),
            )
            .collect()
            .map_err(|e| IcpError::read(path, e))?;
        // Parquet: no ragged records, no footer
        return Ok((df, Vec::new(), 0));
    }
    if std::fs::metadata(path).is_ok_and(|m| m.len() == 0) {
        return Err(empty_file(path));
    }
    let bytes = std::fs::read(path).map_err(|e| IcpError::read(path, e))?;
    parse_csv_bytes(path, bytes, 2, cp1252, delimiter)
}

/// CSV bytes (a whole file, or a piece with the header in front) as text
/// columns, rows numbered from `first_row`: decoded (`cp1252`) and
/// rewritten comma-separated (`delimiter`) first. One bad line must not stop
/// a daily job: records whose field count is not the header's become
/// placeholder rows (see [`split_ragged`]); only bytes that are mostly
/// ragged (the wrong delimiter, say) stop the run.
pub(super) fn parse_csv_bytes(
    path: &Path,
    bytes: Vec<u8>,
    first_row: u64,
    cp1252: bool,
    delimiter: u8,
) -> Result<(DataFrame, Vec<Ragged>, usize)> {
    let bytes = if cp1252 {
        windows_1252_to_utf8(&bytes)
    } else {
        bytes
    };
    let mut bytes = if delimiter == b',' {
        bytes
    } else {
        to_comma_separated(&bytes, delimiter)
    };
    let footer_lines = strip_footer(&mut bytes);
    let mut ragged = Vec::new();
    let (header, bad) = ragged_records(&bytes);
    if bad.is_empty() {
        // the bytes are in memory already: parse them, not the file again
        let df = text_csv_options(first_row, std::str::from_utf8(&bytes).is_ok())
            .into_reader_with_file_handle(std::io::Cursor::new(bytes))
            .finish()
            .map_err(|e| csv_error(path, e))?;
        return Ok((df, ragged, footer_lines));
    }
    let records = bytes.iter().filter(|b| **b == b'\n').count().max(1);
    // decided on a whole file, or on the first piece of one: a later piece
    // of a few records must not stop what the whole file would not
    if first_row == 2 && bad.len() * 2 > records {
        return Err(IcpError::read(
            path,
            format!(
                "{} of about {} lines do not have the header's {} fields: the file is not {} as expected{}",
                crate::util::thousands(bad.len()),
                crate::util::thousands(records),
                header,
                match delimiter {
                    b',' => "comma-separated".to_string(),
                    b'\t' => "tab-separated ([files] delimiter)".to_string(),
                    d => format!("{}-separated ([files] delimiter)", d as char),
                },
                if delimiter == b',' {
                    delimiter_hint(&bytes)
                } else {
                    String::new()
                }
            ),
        ));
    }
    let mut fixed = Vec::with_capacity(bytes.len());
    let mut at = 0;
    for (k, (range, fields)) in bad.iter().enumerate() {
        fixed.extend_from_slice(&bytes[at..range.start]);
        fixed.extend_from_slice(format!("{RAGGED_MARK}{k}").as_bytes());
        fixed.extend(std::iter::repeat_n(b',', header.saturating_sub(1)));
        ragged.push(Ragged {
            fields: *fields,
            header,
            text: String::from_utf8_lossy(&bytes[range.clone()]).into_owned(),
        });
        at = range.end;
    }
    fixed.extend_from_slice(&bytes[at..]);
    let df = text_csv_options(first_row, std::str::from_utf8(&fixed).is_ok())
        .into_reader_with_file_handle(std::io::Cursor::new(fixed))
        .finish()
        .map_err(|e| csv_error(path, e))?;
    Ok((df, ragged, footer_lines))
}

/// Every column as text, undecodable bytes kept visible (U+FFFD) so the row
/// can be rejected, and each row's number from `first_row` on. `valid`:
/// the bytes are known to be UTF-8, so the reader need not decode them
/// lossily (a copy of every cell).
fn text_csv_options(first_row: u64, valid: bool) -> CsvReadOptions {
    let encoding = if valid {
        CsvEncoding::Utf8
    } else {
        CsvEncoding::LossyUtf8
    };
    CsvReadOptions::default()
        .with_has_header(true)
        .with_infer_schema_length(Some(0))
        .map_parse_options(move |o| o.with_encoding(encoding))
        .with_row_index(Some(RowIndex {
            name: ROW.into(),
            offset: first_row as IdxSize,
        }))
}

fn csv_error(path: &Path, e: PolarsError) -> IcpError {
    match ragged_line(path) {
        Some((line, n, h)) => IcpError::read(
            path,
            format!(
                "line {line} has {n} fields but the header has {h} (a value with a comma \
                 must be quoted, or a delimiter is stray)"
            ),
        ),
        None => IcpError::read(path, e),
    }
}

pub(super) fn empty_file(path: &Path) -> IcpError {
    IcpError::read(
        path,
        "the file is empty (expected a header row naming the columns, then one row per record)",
    )
}

pub(super) fn is_parquet(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("parquet"))
}

/// The first ragged record of a file: (its line, fields, the header's
/// fields), from the same scan that turns ragged records into rejects.
fn ragged_line(path: &Path) -> Option<(usize, usize, usize)> {
    let bytes = std::fs::read(path).ok()?;
    let (header, bad) = ragged_records(&bytes);
    let (range, fields) = bad.into_iter().find(|(_, f)| *f > header)?;
    let line = 1 + bytes[..range.start].iter().filter(|b| **b == b'\n').count();
    Some((line, fields, header))
}
