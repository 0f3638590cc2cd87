//! An accounts file read in pieces of bounded size, for scoring files of any
//! size: cut at record ends, each piece read and checked like a whole file.

use std::path::{Path, PathBuf};

use polars::prelude::*;

use super::raw::{
    Raw, checked_cells, empty_file, guarded, is_parquet, parse_csv_bytes, read_raw_text,
    split_ragged,
};
use crate::config::{ValidConfig, WINDOWS_1252};
use crate::error::{IcpError, Result};

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
    footer_lines: usize,
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
            footer_lines: 0,
        })
    }

    /// True once the last piece has been returned.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Report footer lines cut from the pieces read so far (the last one).
    pub fn footer_lines(&self) -> usize {
        self.footer_lines
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
                // a footer is at the file's end: in the last piece
                let (df, r, footer) = guarded(&path, || {
                    parse_csv_bytes(&path, buf, first, cp1252, delimiter)
                })?;
                self.footer_lines += footer;
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
