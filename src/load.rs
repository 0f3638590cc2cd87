//! Stage 1: read the data directory, map the CRM's columns onto the contract,
//! check every row, and split rows into *used* and *rejected* (with a reason).
//!
//! Every check is a polars expression; a row's reason is the first check it
//! fails, so each input row appears at most once in `rejects.csv`.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use polars::prelude::*;
use sha2::{Digest, Sha256};

use crate::config::{
    CUSTOMER_COLUMNS, INTERVIEW_COLUMNS, OPPORTUNITY_COLUMNS, TRIGGER_COLUMNS, ValidConfig,
};
use crate::error::{IcpError, Result};

/// Name of the column that carries each row's position in its file.
pub const ROW: &str = "__row";

/// The account columns the contract names; all others are extra features.
pub const ACCOUNT_COLUMNS: &[&str] = &[
    "account_id",
    "account_name",
    "domain",
    "industry",
    "country",
    "employees",
    "annual_revenue",
    "founded_year",
];

/// The fingerprint and row accounting of one input file.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct InputFile {
    pub table: String,
    pub file: String,
    pub sha256: String,
    pub rows: usize,
    pub used: usize,
    pub rejected: usize,
}

/// One checked table: only valid rows, canonical names and types.
#[derive(Debug, Clone)]
pub struct Table {
    pub df: DataFrame,
    pub input: InputFile,
}

/// Everything read from a data directory.
#[derive(Debug, Clone)]
pub struct Dataset {
    pub accounts: Table,
    pub opportunities: Option<Table>,
    pub customers: Option<Table>,
    pub triggers: Option<Table>,
    /// buyer interview quotes (account_id, date, role, quote): evidence for
    /// the brief, never a model input
    pub interviews: Option<Table>,
    /// file, row, column, value, reason
    pub rejects: DataFrame,
    /// extra account columns (beyond the contract's) and whether they are numeric
    pub extra_columns: BTreeMap<String, ColumnKind>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ColumnKind {
    Numeric,
    Categorical,
}

impl Dataset {
    pub fn inputs(&self) -> Vec<InputFile> {
        [
            Some(&self.accounts),
            self.opportunities.as_ref(),
            self.customers.as_ref(),
            self.triggers.as_ref(),
            self.interviews.as_ref(),
        ]
        .into_iter()
        .flatten()
        .map(|t| t.input.clone())
        .collect()
    }
}

/// What the loader must find: a training run needs opportunities, scoring does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    Training,
    ScoringOnly,
}

/// Load and check a data directory.
pub fn load_dir(dir: &Path, cfg: &ValidConfig, need: Need) -> Result<Dataset> {
    load_dir_with(dir, cfg, need, None)
}

/// [`load_dir`] reading extra account columns as a model was trained on them.
pub fn load_dir_with(
    dir: &Path,
    cfg: &ValidConfig,
    need: Need,
    kind_hints: Option<&BTreeMap<String, ColumnKind>>,
) -> Result<Dataset> {
    if !dir.is_dir() {
        return Err(IcpError::read(
            dir,
            "not a directory (expected a data directory holding accounts.csv and opportunities.csv, or .parquet)",
        ));
    }
    let acc_path = locate(dir, "accounts", cfg.files.accounts.as_deref())?.ok_or_else(|| {
        IcpError::MissingInput {
            dir: dir.into(),
            what: "accounts".into(),
            expected: "accounts.csv or accounts.parquet".into(),
        }
    })?;
    let opp_path = locate(dir, "opportunities", cfg.files.opportunities.as_deref())?;
    if need == Need::Training && opp_path.is_none() {
        return Err(IcpError::MissingInput {
            dir: dir.into(),
            what: "opportunities".into(),
            expected: "opportunities.csv or opportunities.parquet".into(),
        });
    }
    let cust_path = locate(dir, "customers", cfg.files.customers.as_deref())?;
    let trig_path = locate(dir, "triggers", cfg.files.triggers.as_deref())?;
    let int_path = locate(dir, "interviews", cfg.files.interviews.as_deref())?;
    let mut data = load_files(
        &acc_path,
        opp_path.as_deref(),
        cust_path.as_deref(),
        trig_path.as_deref(),
        cfg,
        kind_hints,
    )?;
    if let Some(p) = int_path {
        let ids = data.accounts.df.select(["account_id"])?;
        let mut rejects = vec![data.rejects];
        data.interviews = Some(fingerprinted(
            load_interviews(&p, cfg, &ids, &mut rejects)?,
            &p,
        )?);
        data.rejects = concat_rejects(rejects)?;
    }
    Ok(data)
}

/// Load explicit files. `numeric_hints` forces extra account columns to a
/// kind (scoring with a model must read them as the model was trained).
pub fn load_files(
    accounts_path: &Path,
    opportunities: Option<&Path>,
    customers: Option<&Path>,
    triggers: Option<&Path>,
    cfg: &ValidConfig,
    kind_hints: Option<&BTreeMap<String, ColumnKind>>,
) -> Result<Dataset> {
    let mut rejects = Vec::new();
    let mut trace = crate::progress::Trace::start();
    let raw = read_raw(accounts_path, cfg)?;
    trace.lap("read accounts");
    // the opportunities first: their newest date bounds the founded years
    let opp_raw = opportunities.map(|p| read_raw(p, cfg)).transpose()?;
    let newest = match &opp_raw {
        Some(r) => newest_year(r, cfg)?,
        None => None,
    };
    let (accounts, extra_columns) = load_accounts(
        raw,
        accounts_path,
        cfg,
        kind_hints,
        None,
        newest,
        &mut rejects,
    )?;
    trace.lap("check accounts");
    let accounts = fingerprinted(accounts, accounts_path)?;
    trace.lap("fingerprint accounts");
    let ids = accounts.df.select(["account_id"])?;
    let opportunities = match (opportunities, opp_raw) {
        (Some(p), Some(raw)) => Some(fingerprinted(
            load_opportunities(raw, p, cfg, &ids, &mut rejects)?,
            p,
        )?),
        _ => None,
    };
    trace.lap("opportunities");
    let customers = customers
        .map(|p| fingerprinted(load_customers(p, cfg, &ids, &mut rejects)?, p))
        .transpose()?;
    trace.lap("customers");
    let triggers = triggers
        .map(|p| fingerprinted(load_triggers(p, cfg, &ids, &mut rejects)?, p))
        .transpose()?;
    trace.lap("triggers");
    let rejects = concat_rejects(rejects)?;
    trace.lap("rejects");
    Ok(Dataset {
        accounts,
        opportunities,
        customers,
        triggers,
        interviews: None,
        rejects,
        extra_columns,
    })
}

fn fingerprinted(mut t: Table, path: &Path) -> Result<Table> {
    t.input.sha256 = sha256_file(path)?;
    Ok(t)
}

/// One rejects frame (file, row, column, value, reason) from several, in order.
pub fn concat_rejects(parts: Vec<DataFrame>) -> Result<DataFrame> {
    Ok(if parts.is_empty() {
        empty_rejects()
    } else {
        let lfs: Vec<LazyFrame> = parts.into_iter().map(|d: DataFrame| d.lazy()).collect();
        concat(lfs, UnionArgs::default())?.collect()?
    })
}

pub fn empty_rejects() -> DataFrame {
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

/// Find `stem.csv` / `stem.parquet` in `dir`, or the file the config names.
fn locate(dir: &Path, stem: &str, configured: Option<&str>) -> Result<Option<PathBuf>> {
    if let Some(name) = configured {
        let p = dir.join(name);
        if !p.is_file() {
            return Err(IcpError::MissingInput {
                dir: dir.into(),
                what: stem.into(),
                expected: format!("{name} (named in the config's [files])"),
            });
        }
        return Ok(Some(p));
    }
    let csv = dir.join(format!("{stem}.csv"));
    let pq = dir.join(format!("{stem}.parquet"));
    match (csv.is_file(), pq.is_file()) {
        (true, true) => Err(IcpError::read(
            dir,
            format!(
                "both {stem}.csv and {stem}.parquet exist; keep one, or name it in the config's [files]"
            ),
        )),
        (true, false) => Ok(Some(csv)),
        (false, true) => Ok(Some(pq)),
        (false, false) => Ok(None),
    }
}

/// sha256 of a file's bytes, streamed.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path).map_err(|e| IcpError::read(path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| IcpError::read(path, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex(&h.finalize()))
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Cells longer than this are rejected: no CRM field is a 64 KiB value, and
/// a runaway cell (a missing closing quote swallowing the file) is a bad row.
pub const MAX_CELL_BYTES: usize = 64 * 1024;

/// A file read as text: the rows to check, how many rows it had, and the
/// rows rejected before any check (undecodable or oversized cells).
pub struct Raw {
    df: DataFrame,
    rows: usize,
    pre_rejects: DataFrame,
}

/// [`read_raw_text`], then reject rows whose cells are not UTF-8 text or are
/// too large to be a field, so every later check sees sane text.
fn read_raw(path: &Path, cfg: &ValidConfig) -> Result<Raw> {
    let cp1252 = cfg.files.encoding.as_deref() == Some(WINDOWS_1252);
    let delimiter = cfg.files.delimiter_byte();
    let (df, ragged) = guarded(path, || read_raw_text(path, cp1252, delimiter))?;
    let raw = checked_cells(path, df)?;
    split_ragged(path, raw, &ragged)
}

/// A record whose field count is not the header's: its fields and text.
#[derive(Debug, Clone)]
struct Ragged {
    fields: usize,
    header: usize,
    text: String,
}

/// Marks the first cell of a ragged record replaced by an empty row, so the
/// reader keeps its place (and its row number) without guessing its cells.
const RAGGED_MARK: &str = "\u{1}ragged-record-";

/// Ragged records of a CSV (quote-aware): (byte range without the line end,
/// fields), and the header's field count. Blank lines are left alone.
fn ragged_records(bytes: &[u8]) -> (usize, Vec<(std::ops::Range<usize>, usize)>) {
    let (mut start, mut fields, mut quoted) = (0usize, 1usize, false);
    let mut header: Option<usize> = None;
    let mut out = Vec::new();
    let mut end_record = |start: usize, end: usize, fields: usize, header: &mut Option<usize>| {
        let end = if end > start && bytes[end - 1] == b'\r' {
            end - 1
        } else {
            end
        };
        match *header {
            None => *header = Some(fields),
            Some(h) if end > start && fields != h => out.push((start..end, fields)),
            _ => {}
        }
    };
    let mut i = 0;
    while i < bytes.len() {
        // a record on one line without quotes (nearly all of them): its
        // fields are its commas plus one, counted a line at a time
        if !quoted && start == i {
            let rest = &bytes[i..];
            let nl = memchr::memchr(b'\n', rest).unwrap_or(rest.len());
            let line = &rest[..nl];
            if memchr::memchr(b'"', line).is_none() {
                let commas = line.iter().filter(|&&c| c == b',').count();
                if nl < rest.len() {
                    end_record(i, i + nl, commas + 1, &mut header);
                    i += nl + 1;
                    start = i;
                    continue;
                }
                // the last record, without a line end
                fields = commas + 1;
                break;
            }
        }
        let b = bytes[i];
        if quoted {
            if b == b'"' {
                if bytes.get(i + 1) == Some(&b'"') {
                    i += 1;
                } else {
                    quoted = false;
                }
            }
        } else {
            match b {
                b'"' => quoted = true,
                b',' => fields += 1,
                b'\n' => {
                    end_record(start, i, fields, &mut header);
                    start = i + 1;
                    fields = 1;
                }
                _ => {}
            }
        }
        i += 1;
    }
    if start < bytes.len() {
        end_record(start, bytes.len(), fields, &mut header);
    }
    (header.unwrap_or(0), out)
}

/// Take the marked ragged records out of the rows and list them as rejects
/// (`too_many_fields` / `too_few_fields`), each with its row number.
fn split_ragged(path: &Path, mut raw: Raw, ragged: &[Ragged]) -> Result<Raw> {
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
fn guarded<T>(path: &Path, read: impl FnOnce() -> Result<T>) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(read)).map_err(|_| {
        IcpError::read(
            path,
            "the CSV/Parquet reader failed on this file (is it a CSV with a header row, or Parquet?)",
        )
    })?
}

fn checked_cells(path: &Path, df: DataFrame) -> Result<Raw> {
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
                        crate::cmd::thousands(v.len()),
                        crate::cmd::thousands(MAX_CELL_BYTES)
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
    })
}

/// Read a file with every column as text, plus its row number as users count
/// them (CSV: the line, header = 1; Parquet: 1-based row).
fn read_raw_text(path: &Path, cp1252: bool, delimiter: u8) -> Result<(DataFrame, Vec<Ragged>)> {
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
        // Parquet: no ragged records
        return Ok((df, Vec::new()));
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
fn parse_csv_bytes(
    path: &Path,
    bytes: Vec<u8>,
    first_row: u64,
    cp1252: bool,
    delimiter: u8,
) -> Result<(DataFrame, Vec<Ragged>)> {
    let bytes = if cp1252 {
        windows_1252_to_utf8(&bytes)
    } else {
        bytes
    };
    let bytes = if delimiter == b',' {
        bytes
    } else {
        to_comma_separated(&bytes, delimiter)
    };
    let mut ragged = Vec::new();
    let (header, bad) = ragged_records(&bytes);
    if bad.is_empty() {
        // the bytes are in memory already: parse them, not the file again
        let df = text_csv_options(first_row)
            .into_reader_with_file_handle(std::io::Cursor::new(bytes))
            .finish()
            .map_err(|e| csv_error(path, e))?;
        return Ok((df, ragged));
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
    let df = text_csv_options(first_row)
        .into_reader_with_file_handle(std::io::Cursor::new(fixed))
        .finish()
        .map_err(|e| csv_error(path, e))?;
    Ok((df, ragged))
}

/// A CSV separated by `delimiter` rewritten comma-separated, so one reader
/// and one ragged-record scan serve every delimiter. Quote-aware: a quoted
/// field is copied as it is (a comma inside quotes is already safe); an
/// unquoted field holding a comma is quoted. Records and line ends stay
/// where they were, so row numbers do not move.
fn to_comma_separated(bytes: &[u8], delimiter: u8) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + bytes.len() / 64);
    let mut field: Vec<u8> = Vec::new();
    let (mut quoted, mut in_quotes) = (false, false);
    let flush = |field: &mut Vec<u8>, quoted: bool, out: &mut Vec<u8>| {
        if !quoted && field.contains(&b',') {
            out.push(b'"');
            for &b in field.iter() {
                if b == b'"' {
                    out.push(b'"');
                }
                out.push(b);
            }
            out.push(b'"');
        } else {
            out.extend_from_slice(field);
        }
        field.clear();
    };
    for &b in bytes {
        if in_quotes {
            field.push(b);
            if b == b'"' {
                in_quotes = false;
            }
            continue;
        }
        match b {
            b'"' => {
                if field.is_empty() {
                    quoted = true;
                }
                in_quotes = true;
                field.push(b);
            }
            b if b == delimiter => {
                flush(&mut field, quoted, &mut out);
                quoted = false;
                out.push(b',');
            }
            b'\n' | b'\r' => {
                flush(&mut field, quoted, &mut out);
                quoted = false;
                out.push(b);
            }
            _ => field.push(b),
        }
    }
    flush(&mut field, quoted, &mut out);
    out
}

/// The `[files] encoding` value for Excel's default on Windows.
pub const WINDOWS_1252: &str = "windows-1252";

/// Windows-1252 bytes as UTF-8: Latin-1, but for the 32 codes 0x80-0x9F
/// (the euro sign, curly quotes, dashes and a few letters).
fn windows_1252_to_utf8(bytes: &[u8]) -> Vec<u8> {
    const HIGH: [char; 32] = [
        '\u{20AC}', '\u{FFFD}', '\u{201A}', '\u{0192}', '\u{201E}', '\u{2026}', '\u{2020}',
        '\u{2021}', '\u{02C6}', '\u{2030}', '\u{0160}', '\u{2039}', '\u{0152}', '\u{FFFD}',
        '\u{017D}', '\u{FFFD}', '\u{FFFD}', '\u{2018}', '\u{2019}', '\u{201C}', '\u{201D}',
        '\u{2022}', '\u{2013}', '\u{2014}', '\u{02DC}', '\u{2122}', '\u{0161}', '\u{203A}',
        '\u{0153}', '\u{FFFD}', '\u{017E}', '\u{0178}',
    ];
    let mut out = String::with_capacity(bytes.len() + bytes.len() / 16);
    for &b in bytes {
        out.push(match b {
            0x80..=0x9F => HIGH[(b - 0x80) as usize],
            _ => b as char,
        });
    }
    out.into_bytes()
}

/// What a file's first line says about its delimiter, for the error message.
fn delimiter_hint(bytes: &[u8]) -> String {
    let first = bytes.split(|b| *b == b'\n').next().unwrap_or(&[]);
    let count = |c: u8| first.iter().filter(|b| **b == c).count();
    let (commas, semis, tabs) = (count(b','), count(b';'), count(b'\t'));
    if semis > commas && semis >= tabs {
        " (the header looks semicolon-separated, as Excel writes CSV in much of Europe: add delimiter = \";\" to the config's [files] section, or save it comma-separated)".into()
    } else if tabs > commas {
        " (the header looks tab-separated: add delimiter = \"\\t\" to the config's [files] section, or save it comma-separated)".into()
    } else {
        String::new()
    }
}

/// Every column as text, undecodable bytes kept visible (U+FFFD) so the row
/// can be rejected, and each row's number from `first_row` on.
fn text_csv_options(first_row: u64) -> CsvReadOptions {
    CsvReadOptions::default()
        .with_has_header(true)
        .with_infer_schema_length(Some(0))
        .map_parse_options(|o| o.with_encoding(CsvEncoding::LossyUtf8))
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

fn empty_file(path: &Path) -> IcpError {
    IcpError::read(
        path,
        "the file is empty (expected a header row naming the columns, then one row per record)",
    )
}

pub fn is_parquet(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("parquet"))
}

/// An accounts file read in pieces of at most `rows` records, so that a file
/// of any size is checked and scored in bounded memory. A CSV is cut at
/// record ends (a newline outside quotes, found the way polars' own parallel
/// reader finds them) and each piece is parsed with the header in front, its
/// rows numbered as in the whole file; Parquet is read whole and sliced.
pub struct Pieces {
    path: PathBuf,
    rows: usize,
    cp1252: bool,
    delimiter: u8,
    next_row: u64,
    source: Source,
    started: bool,
    done: bool,
}

enum Source {
    Csv {
        reader: std::io::BufReader<std::fs::File>,
        header: Vec<u8>,
    },
    Frame {
        df: DataFrame,
        at: usize,
    },
}

impl Pieces {
    /// `cfg`'s `[files]` encoding and delimiter apply to every piece.
    pub fn open(path: &Path, rows: usize, cfg: &ValidConfig) -> Result<Pieces> {
        let source = if is_parquet(path) {
            Source::Frame {
                // Parquet: no ragged records
                df: guarded(path, || read_raw_text(path, false, b','))?.0,
                at: 0,
            }
        } else {
            let f = std::fs::File::open(path).map_err(|e| IcpError::read(path, e))?;
            if f.metadata().is_ok_and(|m| m.len() == 0) {
                return Err(empty_file(path));
            }
            let mut reader = std::io::BufReader::with_capacity(1 << 20, f);
            let mut header = Vec::new();
            read_record(&mut reader, &mut header).map_err(|e| IcpError::read(path, e))?;
            Source::Csv { reader, header }
        };
        Ok(Pieces {
            path: path.to_path_buf(),
            rows: rows.max(1),
            cp1252: cfg.files.encoding.as_deref() == Some(WINDOWS_1252),
            delimiter: cfg.files.delimiter_byte(),
            next_row: 2,
            source,
            started: false,
            done: false,
        })
    }

    /// True once the last piece has been returned.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// The next piece (the first one always, even with no rows), checked
    /// cell by cell like a whole file.
    pub fn next_piece(&mut self) -> Result<Option<Raw>> {
        use std::io::BufRead;
        if self.done {
            return Ok(None);
        }
        let path = self.path.clone();
        let mut ragged = Vec::new();
        let df = match &mut self.source {
            Source::Frame { df, at } => {
                let n = self.rows.min(df.height() - *at);
                let piece = df.slice(*at as i64, n);
                *at += n;
                self.done = *at >= df.height();
                piece
            }
            Source::Csv { reader, header } => {
                let mut buf = header.clone();
                let mut records = 0;
                while records < self.rows {
                    let got =
                        read_record(reader, &mut buf).map_err(|e| IcpError::read(&path, e))?;
                    if got == 0 {
                        break;
                    }
                    records += 1;
                }
                let at_end = reader
                    .fill_buf()
                    .map_err(|e| IcpError::read(&path, e))?
                    .is_empty();
                self.done = at_end;
                if records == 0 && self.started {
                    return Ok(None);
                }
                let first = self.next_row;
                let (cp1252, delimiter) = (self.cp1252, self.delimiter);
                let (df, r) = guarded(&path, || {
                    parse_csv_bytes(&path, buf, first, cp1252, delimiter)
                })?;
                ragged = r;
                self.next_row += df.height() as u64;
                df
            }
        };
        self.started = true;
        let raw = checked_cells(&path, df)?;
        Ok(Some(split_ragged(&path, raw, &ragged)?))
    }
}

/// Append one CSV record, through its end of line, to `buf`: lines are
/// joined while a quote is open. Returns the bytes read (0 at end of file).
fn read_record(r: &mut impl std::io::BufRead, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    let (mut total, mut quoted) = (0, false);
    loop {
        let start = buf.len();
        let n = r.read_until(b'\n', buf)?;
        if n == 0 {
            return Ok(total);
        }
        total += n;
        if buf[start..].iter().filter(|&&b| b == b'"').count() % 2 == 1 {
            quoted = !quoted;
        }
        if !quoted {
            return Ok(total);
        }
    }
}

/// Account ids met in earlier pieces (as 128-bit hashes: 16 bytes an id,
/// and a false match is as likely as two random 128-bit keys colliding).
#[derive(Debug, Default)]
pub struct SeenIds(std::collections::HashSet<u128>);

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

/// The first ragged record of a file: (its line, fields, the header's
/// fields), from the same scan that turns ragged records into rejects.
fn ragged_line(path: &Path) -> Option<(usize, usize, usize)> {
    let bytes = std::fs::read(path).ok()?;
    let (header, bad) = ragged_records(&bytes);
    let (range, fields) = bad.into_iter().find(|(_, f)| *f > header)?;
    let line = 1 + bytes[..range.start].iter().filter(|b| **b == b'\n').count();
    Some((line, fields, header))
}

/// Trim text, and turn empty cells into nulls.
fn clean(name: &str) -> Expr {
    let t = col(name).str().strip_chars(lit(NULL));
    when(t.clone().str().len_bytes().eq(lit(0)))
        .then(lit(NULL).cast(DataType::String))
        .otherwise(t)
        .alias(name)
}

/// A row check: rows where `bad` is true are rejected for `reason` on `column`.
struct Check {
    column: String,
    bad: Expr,
    reason: String,
}

fn check(column: &str, bad: Expr, reason: impl Into<String>) -> Check {
    Check {
        column: column.to_string(),
        bad: bad.fill_null(lit(false)),
        reason: reason.into(),
    }
}

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

/// Map configured source columns onto canonical names. Returns the selected
/// expressions, the source columns consumed and the canonical columns present.
fn map_columns<'a>(
    raw: &DataFrame,
    path: &Path,
    table: &str,
    canonical: &[&'a str],
    required: &[&str],
    cfg: &ValidConfig,
) -> Result<(Vec<Expr>, Vec<String>, Vec<&'a str>)> {
    let present: Vec<String> = raw
        .get_column_names()
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut exprs = vec![col(ROW)];
    let mut used = Vec::new();
    let mut mapped = Vec::new();
    for &c in canonical {
        let src = cfg.source(table, c);
        if present.iter().any(|p| p == src) {
            exprs.push(col(src).alias(c));
            used.push(src.to_string());
            mapped.push(c);
        } else if required.contains(&c) {
            let found: Vec<&str> = present
                .iter()
                .filter(|p| p.as_str() != ROW)
                .map(String::as_str)
                .collect();
            let expected = if src == c {
                format!("the {table} column `{c}`")
            } else {
                format!("the {table} column `{src}`, mapped to `{c}` by the config")
            };
            let mut found = found.join(", ");
            // one column whose name holds the other delimiters: say so
            if !found.contains(", ") {
                if found.contains(';') {
                    found.push_str(" (one column: the file looks semicolon-separated, as Excel writes CSV in much of Europe: add delimiter = \";\" to the config's [files] section)");
                } else if found.contains('\t') {
                    found.push_str(
                        " (one column: the file looks tab-separated: add delimiter = \"\\t\" to the config's [files] section)",
                    );
                }
            }
            return Err(IcpError::MissingColumn {
                path: path.into(),
                column: src.into(),
                expected,
                found,
            });
        }
    }
    Ok((exprs, used, mapped))
}

pub fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

/// Split a checked frame into used rows and reject rows.
#[allow(clippy::too_many_arguments)]
fn split(
    lf: LazyFrame,
    checks: &[Check],
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
    let mut trace = crate::progress::Trace::start();
    let df = lf
        .with_column(first_failure(checks))
        .with_columns(typed)
        .collect()
        .map_err(|e| IcpError::read(path, e))?;
    trace.lap("split: checks");
    let name = file_name(path);
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
    let rej = concat([pre_rejects.lazy(), rej.lazy()], UnionArgs::default())?
        .sort(["row"], SortMultipleOptions::default())
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
        rejected: rej.height(),
    };
    rejects.push(rej);
    Ok(Table { df: used, input })
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
        return Err(IcpError::Invalid(format!(
            "{}: {} of {} values of `{c}` are not dates in the expected format{hint}",
            path.display(),
            crate::util::thousands(vals.len()),
            crate::util::thousands(rows)
        )));
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

fn parse_number(name: &str) -> Expr {
    col(name).cast(DataType::Float64)
}

fn parse_date(name: &str, cfg: &ValidConfig) -> Expr {
    let (src, format) = match &cfg.date_format {
        Some(f) => (col(name), f.clone()),
        // ISO 8601: a time part, if any, is ignored.
        None => (col(name).str().head(lit(10)), "%Y-%m-%d".to_string()),
    };
    src.str().to_date(StrptimeOptions {
        format: Some(format.into()),
        strict: false,
        exact: true,
        cache: true,
    })
}

/// Dates a CRM can plausibly hold.
fn impossible_date(d: Expr) -> Expr {
    let lo = 1900i32; // days from 1970: year bounds, checked through the year
    let hi = 2100i32;
    d.clone()
        .dt()
        .year()
        .lt(lit(lo))
        .or(d.dt().year().gt(lit(hi)))
}

fn expected_date(cfg: &ValidConfig) -> String {
    match &cfg.date_format {
        Some(f) => format!("expected a date in the format {f}"),
        None => "expected an ISO 8601 date (YYYY-MM-DD)".into(),
    }
}

/// Raw (pre-parse) copies of every checked column, so rejects show what the user wrote.
fn with_raw(lf: LazyFrame, cols: &[&str]) -> LazyFrame {
    lf.with_columns(
        cols.iter()
            .map(|c| col(*c).alias(format!("__raw_{c}")))
            .collect::<Vec<_>>(),
    )
}

/// Flags rows whose account id appeared in an earlier piece of the file.
const EARLIER: &str = "__earlier";

/// For each row of a piece: was its (cleaned) id seen in an earlier piece?
/// Then remember this piece's ids.
fn seen_before(raw: &DataFrame, cfg: &ValidConfig, seen: &mut SeenIds) -> Result<Column> {
    let src = cfg.source("accounts", "account_id");
    let ids = raw
        .clone()
        .lazy()
        .select([col(src).alias("account_id")])
        .select([clean("account_id")])
        .collect()?;
    let ids = ids.column("account_id")?.str()?.clone();
    let keys: Vec<Option<u128>> = ids.iter().map(|v| v.map(SeenIds::key)).collect();
    let before: BooleanChunked = keys
        .iter()
        .map(|k| Some(k.is_some_and(|k| seen.0.contains(&k))))
        .collect();
    seen.0.extend(keys.into_iter().flatten());
    Ok(before.with_name(EARLIER.into()).into_column())
}

fn duplicate(id: &str) -> Result<Expr> {
    Ok(col(id)
        .is_not_null()
        .and(col(ROW).min().over([col(id)])?.neq(col(ROW))))
}

fn load_accounts(
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
    } = raw;
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
    if let Some(seen) = earlier {
        let earlier = seen_before(&raw, cfg, seen)?;
        raw.with_column(earlier)?;
        exprs.push(col(EARLIER));
    }
    let have_earlier = raw.column(EARLIER).is_ok();
    let mut lf = raw.lazy().select(exprs);
    let text_cols: Vec<String> = present
        .iter()
        .map(|s| s.to_string())
        .chain(extras.iter().cloned())
        .collect();
    lf = lf.with_columns(text_cols.iter().map(|c| clean(c)).collect::<Vec<_>>());
    lf = with_raw(lf, &present);

    // Decide the kind of each extra column: numeric when every value parses.
    let mut trace = crate::progress::Trace::start();
    let mut kinds = BTreeMap::new();
    if !extras.is_empty() {
        let probe = lf
            .clone()
            .select(
                extras
                    .iter()
                    .map(|c| {
                        (col(c.as_str()).is_not_null().and(parse_number(c).is_null()))
                            .or(parse_number(c).is_nan())
                            .sum()
                            .alias(c.as_str())
                    })
                    .collect::<Vec<_>>(),
            )
            .collect()
            .map_err(|e| IcpError::read(path, e))?;
        let nonnull = lf
            .clone()
            .select(
                extras
                    .iter()
                    .map(|c| col(c.as_str()).count().alias(c.as_str()))
                    .collect::<Vec<_>>(),
            )
            .collect()?;
        for c in &extras {
            let bad = probe.column(c)?.get(0)?.extract::<u64>().unwrap_or(1);
            let n = nonnull.column(c)?.get(0)?.extract::<u64>().unwrap_or(0);
            let kind = match kind_hints.and_then(|h| h.get(c)) {
                Some(k) => *k,
                // scoring: a column the model was not trained with is only carried
                None if kind_hints.is_some() => ColumnKind::Categorical,
                None if n > 0 && bad == 0 => ColumnKind::Numeric,
                None => ColumnKind::Categorical,
            };
            kinds.insert(c.clone(), kind);
        }
    }

    trace.lap("accounts: kinds of extra columns");
    let mut checks = vec![
        check(
            "account_id",
            col("account_id").is_null(),
            "missing account_id (required, must be non-empty)",
        ),
        check(
            "account_id",
            if have_earlier {
                duplicate("account_id")?.or(col(EARLIER))
            } else {
                duplicate("account_id")?
            },
            "duplicate account_id (an earlier row has the same id; the first is kept)",
        ),
    ];
    // a founding year after the data's newest year (plus one: a company
    // founded this year, recorded as next) is a typo; without dated data,
    // only impossible years are. From the data, not the clock, so the same
    // inputs give the same rejects whenever they are run.
    let this_year = newest.map_or(2099.0, |y| y as f64);
    let mut typed = Vec::new();
    let mut parsed = Vec::new();
    for &c in &["employees", "annual_revenue", "founded_year"] {
        if !present.contains(&c) {
            continue;
        }
        // parsed once, then read by every check
        parsed.push(parse_number(c).alias(format!("__num_{c}")));
        let v = col(format!("__num_{c}"));
        let scale = cfg.scale.get(c).copied().unwrap_or(1.0);
        let cname = c;
        checks.push(check(
            cname,
            col(c).is_not_null().and(v.clone().is_null()),
            "expected a number",
        ));
        checks.push(check(
            cname,
            v.clone().is_finite().not(),
            "expected a finite number",
        ));
        match c {
            "employees" => {
                checks.push(check(
                    cname,
                    v.clone().lt(lit(0.0)),
                    "expected a whole number >= 0",
                ));
                checks.push(check(
                    cname,
                    v.clone().neq(v.clone().floor()),
                    "expected a whole number >= 0",
                ));
            }
            "annual_revenue" => checks.push(check(
                cname,
                v.clone().lt(lit(0.0)),
                "expected a number >= 0",
            )),
            _ => checks.push(check(
                cname,
                v.clone()
                    .lt(lit(1600.0))
                    .or(v.clone().gt(lit(this_year + 1.0)))
                    .or(v.clone().neq(v.clone().floor())),
                format!(
                    "expected a whole year between 1600 and {}",
                    this_year as i64 + 1
                ),
            )),
        }
        typed.push((v * lit(scale)).alias(c));
    }
    for c in &extras {
        if kinds.get(c) == Some(&ColumnKind::Numeric) {
            parsed.push(parse_number(c).alias(format!("__num_{c}")));
            let v = col(format!("__num_{c}"));
            checks.push(check(
                c,
                col(c.as_str())
                    .is_not_null()
                    .and(v.clone().is_null().or(v.clone().is_finite().not())),
                "expected a number (this extra column is numeric)",
            ));
            typed.push(v.alias(c.as_str()));
        }
    }
    lf = with_raw(lf, &extras.iter().map(|s| s.as_str()).collect::<Vec<_>>());
    lf = lf.with_columns(parsed);
    let mut keep: Vec<Expr> = vec![col(ROW)];
    keep.extend(present.iter().map(|c| col(*c)));
    keep.extend(extras.iter().map(|c| col(c.as_str())));
    let table = split(
        lf,
        &checks,
        typed,
        path,
        "accounts",
        rows,
        keep,
        pre_rejects,
        rejects,
    )?;
    Ok((table, kinds))
}

/// Known account ids, for the unknown-account check (a left join, not a row loop).
fn known_flag(lf: LazyFrame, ids: &DataFrame) -> LazyFrame {
    let known = ids
        .clone()
        .lazy()
        .select([col("account_id"), lit(true).alias("__known")]);
    lf.join(
        known,
        [col("account_id")],
        [col("account_id")],
        JoinArgs::new(JoinType::Left),
    )
}

/// Clean and keep a raw copy of the mapped columns, and flag known accounts.
fn prepare(raw: DataFrame, exprs: Vec<Expr>, present: &[&str], ids: &DataFrame) -> LazyFrame {
    let lf = raw
        .lazy()
        .select(exprs)
        .with_columns(present.iter().map(|c| clean(c)).collect::<Vec<_>>());
    known_flag(with_raw(lf, present), ids)
}

/// The row must name an account that survived the accounts checks.
fn account_checks() -> Vec<Check> {
    vec![
        check(
            "account_id",
            col("account_id").is_null(),
            "missing account_id",
        ),
        // a deal linked to several companies (HubSpot writes their ids
        // joined by ';'): which one bought is not ours to guess
        check(
            "account_id",
            col("__known").is_null().and(
                col("account_id")
                    .str()
                    .split(lit(";"))
                    .list()
                    .len()
                    .gt(lit(1u32)),
            ),
            "several account ids in one cell (a deal linked to more than one company): export the deal's primary company only",
        ),
        check(
            "account_id",
            col("__known").is_null(),
            "unknown account_id (not among the valid rows of the accounts file)",
        ),
    ]
}

/// A date cell, if present, must parse and be plausible.
fn date_checks(column: &str, parsed: &Expr, cfg: &ValidConfig) -> Vec<Check> {
    vec![
        check(
            column,
            col(column).is_not_null().and(parsed.clone().is_null()),
            expected_date(cfg),
        ),
        check(
            column,
            impossible_date(parsed.clone()),
            "impossible date (expected a year from 1900 to 2100)",
        ),
    ]
}

/// The newest year among the opportunities' created and closed dates (the
/// cells that parse), read from the raw text before any check.
fn newest_year(raw: &Raw, cfg: &ValidConfig) -> Result<Option<i32>> {
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

fn load_opportunities(
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

    // outcome: the config's stage names first, then the canonical words.
    let lower = col("outcome").str().to_lowercase();
    let mut outcome = lit(NULL).cast(DataType::String);
    let mut pairs: Vec<(String, &str)> = cfg
        .outcomes
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str()))
        .collect();
    for w in ["won", "lost", "churned", "open"] {
        if !cfg.outcomes.contains_key(w) {
            pairs.push((w.to_string(), w));
        }
    }
    for (from, to) in pairs.iter().rev() {
        outcome = when(lower.clone().eq(lit(from.clone())))
            .then(lit(*to))
            .otherwise(outcome);
    }
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
        parsed.push(parse_number("amount").alias("__amount"));
    }
    let lf = lf.with_columns(parsed);
    let (outcome, created, closed) = (col("__outcome"), col("__created"), col("__closed"));
    let closed_outcome = outcome.clone().neq(lit("open"));
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
    checks.extend(date_checks("created_date", &created, cfg));
    checks.push(check(
        "outcome",
        col("outcome").is_null(),
        "missing outcome",
    ));
    checks.push(check(
        "outcome",
        outcome.clone().is_null(),
        "unknown outcome (expected won, lost, churned or open, or a stage mapped in the config's [outcomes])",
    ));
    if has_closed {
        checks.push(check(
            "closed_date",
            closed_outcome.clone().and(col("closed_date").is_null()),
            "missing closed_date (required for won, lost and churned)",
        ));
        checks.extend(date_checks("closed_date", &closed, cfg));
        checks.push(check(
            "closed_date",
            closed.clone().lt(created.clone()),
            "closed before created (closed_date is earlier than created_date)",
        ));
    } else {
        checks.push(check("closed_date", closed_outcome.clone(), "missing closed_date (required for won, lost and churned; the file has no closed_date column)"));
    }
    let mut typed = vec![
        outcome.alias("outcome"),
        created.alias("created_date"),
        closed.alias("closed_date"),
    ];
    if present.contains(&"amount") {
        let v = col("__amount");
        let scale = cfg.scale.get("amount").copied().unwrap_or(1.0);
        checks.push(check(
            "amount",
            col("amount").is_not_null().and(v.clone().is_null()),
            "expected a number",
        ));
        checks.push(check(
            "amount",
            v.clone().is_finite().not(),
            "expected a finite number",
        ));
        checks.push(check(
            "amount",
            v.clone().lt(lit(0.0)),
            "negative amount (expected a number >= 0)",
        ));
        typed.push((v * lit(scale)).alias("amount"));
    } else {
        typed.push(lit(NULL).cast(DataType::Float64).alias("amount"));
    }
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
    split(
        lf,
        &checks,
        typed,
        path,
        "opportunities",
        rows,
        keep,
        pre_rejects,
        rejects,
    )
}

fn load_customers(
    path: &Path,
    cfg: &ValidConfig,
    ids: &DataFrame,
    rejects: &mut Vec<DataFrame>,
) -> Result<Table> {
    let Raw {
        df: raw,
        rows,
        pre_rejects,
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
    if present.contains(&"churn_date") {
        let d = parse_date("churn_date", cfg);
        checks.extend(date_checks("churn_date", &d, cfg));
        typed.push(d.alias("churn_date"));
    } else {
        typed.push(lit(NULL).cast(DataType::Date).alias("churn_date"));
    }
    if present.contains(&"delivery_fit") {
        let v = parse_number("delivery_fit");
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
        let v = parse_number("gross_margin");
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
        typed,
        path,
        "customers",
        rows,
        keep,
        pre_rejects,
        rejects,
    )
}

fn load_interviews(
    path: &Path,
    cfg: &ValidConfig,
    ids: &DataFrame,
    rejects: &mut Vec<DataFrame>,
) -> Result<Table> {
    let Raw {
        df: raw,
        rows,
        pre_rejects,
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
        typed,
        path,
        "interviews",
        rows,
        keep,
        pre_rejects,
        rejects,
    )
}

fn load_triggers(
    path: &Path,
    cfg: &ValidConfig,
    ids: &DataFrame,
    rejects: &mut Vec<DataFrame>,
) -> Result<Table> {
    let Raw {
        df: raw,
        rows,
        pre_rejects,
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
        typed,
        path,
        "triggers",
        rows,
        keep,
        pre_rejects,
        rejects,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The byte-at-a-time reading the line fast path must agree with.
    fn ragged_slowly(bytes: &[u8]) -> (usize, Vec<(std::ops::Range<usize>, usize)>) {
        let (mut start, mut fields, mut quoted) = (0usize, 1usize, false);
        let mut header: Option<usize> = None;
        let mut out = Vec::new();
        let mut end_record =
            |start: usize, end: usize, fields: usize, header: &mut Option<usize>| {
                let end = if end > start && bytes[end - 1] == b'\r' {
                    end - 1
                } else {
                    end
                };
                match *header {
                    None => *header = Some(fields),
                    Some(h) if end > start && fields != h => out.push((start..end, fields)),
                    _ => {}
                }
            };
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            if quoted {
                if b == b'"' {
                    if bytes.get(i + 1) == Some(&b'"') {
                        i += 1;
                    } else {
                        quoted = false;
                    }
                }
            } else {
                match b {
                    b'"' => quoted = true,
                    b',' => fields += 1,
                    b'\n' => {
                        end_record(start, i, fields, &mut header);
                        start = i + 1;
                        fields = 1;
                    }
                    _ => {}
                }
            }
            i += 1;
        }
        if start < bytes.len() {
            end_record(start, bytes.len(), fields, &mut header);
        }
        (header.unwrap_or(0), out)
    }

    #[test]
    fn other_delimiters_are_rewritten_comma_separated() {
        let semi = b"id;name;note\r\nA1;Smith, Jones & Co;\"says \"\"hi\"\"; ok\"\nA2;;x\n";
        assert_eq!(
            String::from_utf8(to_comma_separated(semi, b';')).unwrap(),
            "id,name,note\r\nA1,\"Smith, Jones & Co\",\"says \"\"hi\"\"; ok\"\nA2,,x\n"
        );
        // a quoted field with a newline stays one field; tabs work the same
        let tab = b"a\tb\n\"x\ny\"\t2";
        assert_eq!(
            String::from_utf8(to_comma_separated(tab, b'\t')).unwrap(),
            "a,b\n\"x\ny\",2"
        );
    }

    #[test]
    fn ragged_records_agree_with_reading_byte_by_byte() {
        let alphabet = b"ab,,\"\n\r x";
        let mut s: u64 = 7;
        for case in 0..5_000 {
            let len = case % 60;
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    s = s
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    alphabet[(s >> 33) as usize % alphabet.len()]
                })
                .collect();
            assert_eq!(
                ragged_records(&bytes),
                ragged_slowly(&bytes),
                "{:?}",
                String::from_utf8_lossy(&bytes)
            );
        }
    }
}
