//! A frame's CSV bytes exactly as polars' CSV writer gives them (header,
//! quote style "necessary", `\n`, nulls empty, integers by itoa and floats
//! by zmij, the crates polars itself formats with), rendered in parallel
//! chunks and handed over in order.
//!
//! Why: polars' writer formats a million score rows on one thread while the
//! other core waits; the outputs of a run are mostly such files.

use polars::prelude::*;
use rayon::prelude::*;

use crate::error::Result;

/// One column, in the type it is written from.
enum Cells {
    Text(StringChunked),
    Int(Int64Chunked),
    Uint(UInt64Chunked),
    Float(Float64Chunked),
    Float32(Float32Chunked),
    Bool(BooleanChunked),
    /// a column of one repeated value (a polars scalar column), rendered
    /// once instead of materialised a million times
    Same(Vec<u8>),
}

impl Cells {
    /// None for a type this module does not write (the caller falls back
    /// to polars' writer).
    fn of(c: &Column) -> Result<Option<Cells>> {
        if let Some(sc) = c.as_scalar_column() {
            // of no rows (an empty frame), the value has nothing to say
            let one = sc.as_single_value_series();
            return Ok(Cells::of_series(&one)?.map(|cell| {
                let mut buf = Vec::new();
                if !one.is_empty() {
                    cell.write(&mut buf, 0);
                }
                Cells::Same(buf)
            }));
        }
        Cells::of_series(c.as_materialized_series())
    }

    fn of_series(s: &Series) -> Result<Option<Cells>> {
        let s = s.rechunk();
        Ok(Some(match s.dtype() {
            DataType::String => Cells::Text(s.str()?.clone()),
            DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 => {
                Cells::Int(s.cast(&DataType::Int64)?.i64()?.clone())
            }
            DataType::UInt8 | DataType::UInt16 | DataType::UInt32 | DataType::UInt64 => {
                Cells::Uint(s.cast(&DataType::UInt64)?.u64()?.clone())
            }
            DataType::Float64 => Cells::Float(s.f64()?.clone()),
            DataType::Float32 => Cells::Float32(s.f32()?.clone()),
            DataType::Boolean => Cells::Bool(s.bool()?.clone()),
            _ => return Ok(None),
        }))
    }

    #[inline]
    fn write(&self, buf: &mut Vec<u8>, i: usize) {
        match self {
            Cells::Text(c) => text(buf, c.get(i)),
            Cells::Int(c) => {
                if let Some(v) = c.get(i) {
                    buf.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
                }
            }
            Cells::Uint(c) => {
                if let Some(v) = c.get(i) {
                    buf.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
                }
            }
            Cells::Float(c) => {
                if let Some(v) = c.get(i) {
                    buf.extend_from_slice(zmij::Buffer::new().format(v).as_bytes());
                }
            }
            Cells::Float32(c) => {
                if let Some(v) = c.get(i) {
                    buf.extend_from_slice(zmij::Buffer::new().format(v).as_bytes());
                }
            }
            Cells::Bool(c) => {
                if let Some(v) = c.get(i) {
                    buf.extend_from_slice(if v { b"true" } else { b"false" });
                }
            }
            Cells::Same(v) => buf.extend_from_slice(v),
        }
    }
}

/// Rows rendered per task; a batch of tasks is held in memory at once.
const CHUNK: usize = 32_768;

/// Write `df` as CSV to `out`, in parallel chunks written in row order.
/// Returns false (having written nothing) when a column's type is not one
/// this module writes.
pub fn write_frame(df: &DataFrame, out: &mut (impl std::io::Write + Send)) -> Result<bool> {
    write(df, out, true)
}

/// The rows of `df` as CSV without the header, as polars' writer would give
/// them: rendered here in parallel, or by polars for a type this module
/// does not write. For files written a batch of rows at a time.
pub fn rows(df: &DataFrame) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    write_rows(df, &mut out)?;
    Ok(out)
}

/// [`rows`] written to `out` as they are rendered (one batch written while
/// the next is rendered).
pub fn write_rows(df: &DataFrame, out: &mut (impl std::io::Write + Send)) -> Result<()> {
    if !write(df, out, false)? {
        CsvWriter::new(out)
            .include_header(false)
            .finish(&mut df.clone())?;
    }
    Ok(())
}

fn write(df: &DataFrame, out: &mut (impl std::io::Write + Send), header: bool) -> Result<bool> {
    let mut cols = Vec::with_capacity(df.width());
    for c in df.columns() {
        match Cells::of(c)? {
            Some(x) => cols.push(x),
            None => return Ok(false),
        }
    }
    if header {
        let mut line = Vec::new();
        for (k, name) in df.get_column_names().iter().enumerate() {
            if k > 0 {
                line.push(b',');
            }
            text(&mut line, Some(name.as_str()));
        }
        line.push(b'\n');
        out.write_all(&line)?;
    }
    let n = df.height();
    let starts: Vec<usize> = (0..n).step_by(CHUNK).collect();
    let render = |s: usize| {
        let e = (s + CHUNK).min(n);
        let mut buf = Vec::with_capacity((e - s) * 16 * cols.len());
        for i in s..e {
            for (k, c) in cols.iter().enumerate() {
                if k > 0 {
                    buf.push(b',');
                }
                c.write(&mut buf, i);
            }
            buf.push(b'\n');
        }
        buf
    };
    // one batch is written (and hashed, by the caller's writer) while the
    // next is rendered
    let batch = 4 * rayon::current_num_threads().max(1);
    let mut ready: Vec<Vec<u8>> = Vec::new();
    for group in starts.chunks(batch) {
        let (next, written) = rayon::join(
            || group.par_iter().map(|&s| render(s)).collect::<Vec<_>>(),
            || ready.iter().try_for_each(|p| out.write_all(p)),
        );
        written?;
        ready = next;
    }
    for p in &ready {
        out.write_all(p)?;
    }
    Ok(true)
}

/// A text cell as polars' CSV writer writes it (quote style "necessary"):
/// null empty, an empty string `""`, quoted when it holds a comma, a line
/// break or a quote (quotes doubled).
pub fn text(buf: &mut Vec<u8>, v: Option<&str>) {
    let Some(s) = v else { return };
    if s.is_empty() {
        buf.extend_from_slice(b"\"\"");
        return;
    }
    let b = s.as_bytes();
    // a short cell (an id, a name, a band) in one plain pass: two memchr
    // calls cost more than its bytes
    let special = |c: &u8| matches!(c, b'"' | b',' | b'\n' | b'\r');
    if b.len() <= 32 && !b.iter().any(special) {
        buf.extend_from_slice(b);
        return;
    }
    let has_quote = memchr::memchr(b'"', b).is_some();
    if !has_quote && memchr::memchr3(b',', b'\n', b'\r', b).is_none() {
        buf.extend_from_slice(b);
        return;
    }
    buf.push(b'"');
    if has_quote {
        // each quote doubled: copy the spans between them
        let mut from = 0;
        for q in memchr::memchr_iter(b'"', b) {
            buf.extend_from_slice(&b[from..=q]);
            buf.push(b'"');
            from = q + 1;
        }
        buf.extend_from_slice(&b[from..]);
    } else {
        buf.extend_from_slice(b);
    }
    buf.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every type written, with what polars' writer finds hard: nulls, empty
    /// strings, quotes, separators, line breaks, NaN, infinities, -0.0,
    /// tiny and huge floats, integer extremes; more rows than one chunk.
    #[test]
    fn bytes_are_the_polars_csv_writers() {
        let n = CHUNK * 2 + 17;
        let words = [
            "plain",
            "",
            "a,b",
            "say \"hi\"",
            "two\nlines",
            "cr\r",
            "é ü",
            "'=1+1",
        ];
        let floats = [
            0.0,
            -0.0,
            1.0,
            0.1,
            1e-7,
            1e21,
            123456.789,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::MIN_POSITIVE,
            f64::MAX,
            0.571888,
        ];
        let text_col: Vec<Option<&str>> = (0..n)
            .map(|i| (i % 11 != 3).then(|| words[i % words.len()]))
            .collect();
        let float_col: Vec<Option<f64>> = (0..n)
            .map(|i| (i % 13 != 5).then(|| floats[i % floats.len()] * (1.0 + i as f64 * 1e-3)))
            .collect();
        let f32_col: Vec<Option<f32>> = (0..n).map(|i| Some(i as f32 / 7.0)).collect();
        let int_col: Vec<Option<i64>> = (0..n)
            .map(|i| match i % 5 {
                0 => None,
                1 => Some(i64::MIN),
                2 => Some(i64::MAX),
                _ => Some(i as i64 - 1000),
            })
            .collect();
        let u_col: Vec<u64> = (0..n).map(|i| u64::MAX - i as u64).collect();
        let i32_col: Vec<i32> = (0..n).map(|i| -(i as i32)).collect();
        let b_col: Vec<Option<bool>> = (0..n).map(|i| (i % 3 != 0).then_some(i % 2 == 0)).collect();
        let mut df = df![
            "text" => text_col,
            "float" => float_col,
            "f32" => f32_col,
            "int" => int_col,
            "u64" => u_col,
            "i32" => i32_col,
            "bool" => b_col,
        ]
        .expect("frame");
        // one value repeated (as the scores' model_id): a scalar column
        for (name, value) in [
            (
                "same",
                Scalar::new(DataType::String, AnyValue::StringOwned("m-1,\"x\"".into())),
            ),
            ("same_null", Scalar::null(DataType::Float64)),
        ] {
            df.with_column(Column::new_scalar(name.into(), value, n))
                .expect("scalar column");
        }
        let mut want = Vec::new();
        CsvWriter::new(&mut want)
            .include_header(true)
            .finish(&mut df)
            .expect("polars writes");
        let mut got = Vec::new();
        assert!(write_frame(&df, &mut got).expect("writes"));
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(&want)
        );
        // the rows alone (a batch of a streamed file): the same, headerless
        let mut want_rows = Vec::new();
        CsvWriter::new(&mut want_rows)
            .include_header(false)
            .finish(&mut df)
            .expect("polars writes");
        assert_eq!(rows(&df).expect("rows"), want_rows);
        // and an empty frame: the header alone
        let mut empty = df.clear();
        let (mut want, mut got) = (Vec::new(), Vec::new());
        CsvWriter::new(&mut want)
            .include_header(true)
            .finish(&mut empty)
            .expect("polars writes");
        assert!(write_frame(&empty, &mut got).expect("writes"));
        assert_eq!(got, want);
    }

    #[test]
    fn other_types_are_left_to_polars() {
        let df = df!["d" => [1i32]]
            .expect("frame")
            .lazy()
            .select([col("d").cast(DataType::Date)])
            .collect()
            .expect("date");
        let mut got = Vec::new();
        assert!(!write_frame(&df, &mut got).expect("no error"));
        assert!(got.is_empty());
        // rows() hands such a frame to polars
        assert_eq!(rows(&df).expect("rows"), b"1970-01-02\n");
    }
}
