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
        let mut trace = crate::util::progress::Trace::start();
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
                let records = read_records(reader, &mut buf, self.rows)
                    .map_err(|e| IcpError::read(&path, e))?;
                let at_end = reader
                    .fill_buf()
                    .map_err(|e| IcpError::read(&path, e))?
                    .is_empty();
                self.done = at_end;
                if records == 0 && self.started {
                    return Ok(None);
                }
                trace.lap("piece: records");
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
        trace.lap("piece: parsed");
        let raw = checked_cells(&path, df)?;
        trace.lap("piece: cells checked");
        Ok(Some(split_ragged(&path, raw, &ragged)?))
    }
}

/// Append up to `max` CSV records to `buf`, a block at a time (as
/// [`read_record`] would one by one). Returns the records appended.
fn read_records(
    r: &mut impl std::io::BufRead,
    buf: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<usize> {
    let (mut records, mut quoted, mut open) = (0, false, false);
    while records < max {
        let block = r.fill_buf()?;
        if block.is_empty() {
            // a last record without its line end
            return Ok(records + open as usize);
        }
        let mut used = block.len();
        for at in memchr::memchr2_iter(b'"', b'\n', block) {
            if block[at] == b'"' {
                quoted = !quoted;
            } else if !quoted {
                records += 1;
                if records == max {
                    used = at + 1;
                    break;
                }
            }
        }
        buf.extend_from_slice(&block[..used]);
        // bytes of a record not yet ended
        open = buf.last().is_some_and(|&b| b != b'\n') || quoted;
        r.consume(used);
    }
    Ok(records)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Records one by one: what a block at a time must give.
    fn one_by_one(bytes: &[u8], max: usize) -> (usize, Vec<u8>) {
        let mut r = std::io::BufReader::new(bytes);
        let mut buf = Vec::new();
        let mut n = 0;
        while n < max && read_record(&mut r, &mut buf).unwrap() > 0 {
            n += 1;
        }
        (n, buf)
    }

    #[test]
    fn records_a_block_at_a_time_are_the_records_one_by_one() {
        let files: [&[u8]; 6] = [
            b"a,b\n1,2\n3,4\n",
            b"a,b\n1,\"x\ny\"\n3,4",
            b"a,\"b\"\"\n\"\n\n\n1,2\r\n",
            b"",
            b"\"never closed\n1,2\n",
            b"1\n2\n3\n4\n5\n6\n7\n",
        ];
        for bytes in files {
            for max in [1, 2, 3, 100] {
                // blocks of 1 to 5 bytes: record ends fall on every boundary
                for cap in 1..6 {
                    let mut r = std::io::BufReader::with_capacity(cap, bytes);
                    let mut buf = Vec::new();
                    let mut got = Vec::new();
                    loop {
                        let n = read_records(&mut r, &mut buf, max).unwrap();
                        if n == 0 {
                            break;
                        }
                        got.push((n, std::mem::take(&mut buf)));
                    }
                    let mut want = Vec::new();
                    let mut rest: &[u8] = bytes;
                    loop {
                        let (n, b) = one_by_one(rest, max);
                        if n == 0 {
                            break;
                        }
                        rest = &rest[b.len()..];
                        want.push((n, b));
                    }
                    assert_eq!(
                        got,
                        want,
                        "{:?} max {max} cap {cap}",
                        String::from_utf8_lossy(bytes)
                    );
                }
            }
        }
    }
}
