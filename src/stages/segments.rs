//! Stage 6: the segment files a workflow engine reads every day.

use polars::prelude::*;

use crate::domain::STATUS_SCORED;
use crate::domain::Segment;
use crate::error::Result;

/// What a segment file says of each account.
pub const COLUMNS: [&str; 5] = ["account_id", "account_name", "domain", "score", "band"];

/// The segment-file columns of scored accounts.
pub fn columns(scores: &DataFrame) -> Result<DataFrame> {
    Ok(scores.select(COLUMNS)?)
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
    Ok(Segment::THRESHOLDS
        .iter()
        .map(|&t| {
            let n = s.partition_point(|&v| v >= t as i64);
            (t, sorted.slice(0, n))
        })
        .collect())
}

/// The segment files' bytes, rendered once: the accounts at or above a
/// threshold are a prefix of those at or above the lowest, so each file is
/// the header and a prefix of one body (the bytes polars' CSV writer gives).
pub struct Rendered {
    pub header: Vec<u8>,
    pub body: Vec<u8>,
    /// per threshold: rows, and bytes of the body they take
    pub cuts: Vec<(u8, usize, usize)>,
}

/// Render every segment file (see [`Rendered`]).
pub fn render(scores: &DataFrame) -> Result<Rendered> {
    use rayon::prelude::*;
    let all = segments(scores)?;
    // the lowest threshold's segment holds every other one
    let df = &all[0].1;
    let widest = df.height();
    let text = |c: &str| -> Result<StringChunked> {
        Ok(df
            .column(c)?
            .as_materialized_series()
            .cast(&DataType::String)?
            .rechunk()
            .str()?
            .clone())
    };
    let (id, name, domain, band) = (
        text("account_id")?,
        text("account_name")?,
        text("domain")?,
        text("band")?,
    );
    let score = df.column("score")?.cast(&DataType::Int64)?;
    let score = score.i64()?.rechunk();
    const CHUNK: usize = 65_536;
    let starts: Vec<usize> = (0..widest).step_by(CHUNK).collect();
    let parts: Vec<(Vec<u8>, Vec<usize>)> = starts
        .par_iter()
        .map(|&s| {
            let e = (s + CHUNK).min(widest);
            let mut buf = Vec::with_capacity((e - s) * 64);
            let mut ends = Vec::with_capacity(e - s);
            for i in s..e {
                crate::io::csv_out::text(&mut buf, id.get(i));
                buf.push(b',');
                crate::io::csv_out::text(&mut buf, name.get(i));
                buf.push(b',');
                crate::io::csv_out::text(&mut buf, domain.get(i));
                buf.push(b',');
                if let Some(v) = score.get(i) {
                    buf.extend_from_slice(v.to_string().as_bytes());
                }
                buf.push(b',');
                crate::io::csv_out::text(&mut buf, band.get(i));
                buf.push(b'\n');
                ends.push(buf.len());
            }
            (buf, ends)
        })
        .collect();
    let mut body = Vec::with_capacity(parts.iter().map(|p| p.0.len()).sum());
    let mut ends = Vec::with_capacity(widest);
    for (b, e) in parts {
        let at = body.len();
        ends.extend(e.into_iter().map(|x| x + at));
        body.extend_from_slice(&b);
    }
    let cuts = all
        .iter()
        .map(|(t, d)| {
            let n = d.height();
            (*t, n, if n == 0 { 0 } else { ends[n - 1] })
        })
        .collect();
    let mut header = COLUMNS.join(",").into_bytes();
    header.push(b'\n');
    Ok(Rendered { header, body, cuts })
}

/// Accounts per band, for summaries: (band, count) in a fixed order.
/// A band's count in a manifest: "band_high", ..., "band_unscored" (a
/// band's count has its segment's name).
pub fn band_count_key(band: &str) -> String {
    format!("band_{band}")
}

pub fn band_counts(scores: &DataFrame) -> Result<Vec<(String, usize)>> {
    let bands = scores.column("band")?.str()?;
    let [high, medium, low] = crate::domain::Band::NAMES;
    Ok([high, medium, low, crate::domain::Band::UNSCORED]
        .iter()
        .map(|b| {
            (
                b.to_string(),
                bands.iter().filter(|v| *v == Some(*b)).count(),
            )
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rendered files are, byte for byte, what polars' CSV writer makes
    /// of each segment, with names that need quoting and missing values.
    #[test]
    fn rendered_segments_are_the_csv_writer_bytes() {
        let n = 300;
        let ids: Vec<String> = (0..n)
            .map(|i| format!("A{:04}", (i * 7919) % 1000))
            .collect();
        let names: Vec<Option<String>> = (0..n)
            .map(|i| match i % 6 {
                0 => None,
                1 => Some(String::new()),
                2 => Some(format!("Acme, Inc {i}")),
                3 => Some(format!("The \"Best\" Co {i}")),
                4 => Some(format!("Line\nbreak {i}")),
                _ => Some(format!("Plain {i}")),
            })
            .collect();
        let domains: Vec<Option<String>> = (0..n)
            .map(|i| (i % 4 != 0).then(|| format!("d{i}.com")))
            .collect();
        let scores: Vec<Option<i64>> = (0..n)
            .map(|i| (i % 17 != 0).then_some(((i * 37) % 101) as i64))
            .collect();
        let bands: Vec<&str> = scores
            .iter()
            .map(|s| {
                s.map_or(crate::domain::Band::UNSCORED, |s| {
                    crate::stages::model::band(s as u8)
                })
            })
            .collect();
        let status: Vec<&str> = scores
            .iter()
            .map(|s| {
                if s.is_some() {
                    STATUS_SCORED
                } else {
                    "insufficient_data"
                }
            })
            .collect();
        let df = df![
            "account_id" => ids,
            "account_name" => names,
            "domain" => domains,
            "score" => scores,
            "band" => bands,
            "status" => status,
        ]
        .expect("frame");
        let r = render(&df).expect("render");
        let segs = segments(&df).expect("segments");
        assert_eq!(r.cuts.len(), segs.len());
        for ((t, rows, bytes), (t2, seg)) in r.cuts.iter().zip(&segs) {
            assert_eq!(t, t2);
            assert_eq!(*rows, seg.height());
            let mut want = Vec::new();
            CsvWriter::new(&mut want)
                .include_header(true)
                .finish(&mut seg.clone())
                .expect("csv");
            let mut got = r.header.clone();
            got.extend_from_slice(&r.body[..*bytes]);
            assert_eq!(
                String::from_utf8_lossy(&got),
                String::from_utf8_lossy(&want),
                "threshold {t}"
            );
        }
    }
}
