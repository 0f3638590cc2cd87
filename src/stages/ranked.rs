//! Scores of a file scored in pieces, put back in rank order (score desc,
//! then account_id; unscored last) without holding every account at once.
//!
//! A score takes one of 101 values, so this is a distribution sort: each
//! piece's (already sorted) scores are cut into runs of one score and each
//! run is spilled as Parquet into that score's bucket; then the buckets are
//! read back from 100 down to 0, then unscored, each sorted by account_id.
//! Memory is one piece plus one bucket (about 1% of the accounts, as scores
//! are percentiles of a frozen reference; unscored accounts form one bucket).

use std::path::{Path, PathBuf};

use polars::prelude::*;

use crate::error::{IcpError, Result};

/// Bucket of accounts without a score, read last.
const UNSCORED: usize = 101;

pub struct Buckets {
    dir: PathBuf,
    pieces: usize,
    /// the columns of the scores, for empty outputs
    like: Option<DataFrame>,
}

impl Buckets {
    pub fn new(dir: &Path) -> Buckets {
        Buckets {
            dir: dir.to_path_buf(),
            pieces: 0,
            like: None,
        }
    }

    /// Spill one piece's scores, as [`crate::stages::score::score`] returns them
    /// (sorted: each score's accounts are one run).
    pub fn add(&mut self, scores: &DataFrame) -> Result<()> {
        if self.like.is_none() {
            self.like = Some(scores.clear());
        }
        let score = scores.column("score")?.cast(&DataType::Int64)?;
        let score = score.i64()?;
        let key = |v: Option<i64>| v.map_or(UNSCORED, |s| s.clamp(0, 100) as usize);
        let n = scores.height();
        let mut start = 0;
        while start < n {
            let k = key(score.get(start));
            let mut end = start + 1;
            while end < n && key(score.get(end)) == k {
                end += 1;
            }
            let dir = self.dir.join(format!("b{k:03}"));
            std::fs::create_dir_all(&dir).map_err(|e| IcpError::write(&dir, e))?;
            let path = dir.join(format!("p{:06}.parquet", self.pieces));
            let f = std::fs::File::create(&path).map_err(|e| IcpError::write(&path, e))?;
            // uncompressed: at 10M the spill never held more disk than the
            // outputs it becomes (3.98 GB either way), and LZ4 cost 3-4 s
            ParquetWriter::new(f)
                .with_compression(ParquetCompression::Uncompressed)
                .with_statistics(StatisticsOptions::empty())
                .finish(&mut scores.slice(start as i64, end - start))
                .map_err(|e| IcpError::write(&path, e))?;
            start = end;
        }
        self.pieces += 1;
        Ok(())
    }

    /// An empty frame with the scores' columns (None before the first piece).
    pub fn like(&self) -> Option<&DataFrame> {
        self.like.as_ref()
    }

    /// Hand every bucket to `f` in rank order: (score, its accounts sorted by
    /// account_id). Each bucket's files are removed once read.
    pub fn drain(self, mut f: impl FnMut(Option<i64>, DataFrame) -> Result<()>) -> Result<()> {
        for k in (0..=100).rev().chain([UNSCORED]) {
            let dir = self.dir.join(format!("b{k:03}"));
            if !dir.is_dir() {
                continue;
            }
            let mut parts: Vec<PathBuf> = std::fs::read_dir(&dir)
                .map_err(|e| IcpError::read(&dir, e))?
                .flatten()
                .map(|e| e.path())
                .collect();
            parts.sort();
            let mut frames = Vec::with_capacity(parts.len());
            for p in &parts {
                let file = std::fs::File::open(p).map_err(|e| IcpError::read(p, e))?;
                frames.push(
                    ParquetReader::new(file)
                        .finish()
                        .map_err(|e| IcpError::read(p, e))?
                        .lazy(),
                );
            }
            let bucket = concat(frames, UnionArgs::default())?
                .sort(["account_id"], SortMultipleOptions::default())
                .collect()?;
            std::fs::remove_dir_all(&dir).map_err(|e| IcpError::write(&dir, e))?;
            f((k != UNSCORED).then_some(k as i64), bucket)?;
        }
        Ok(())
    }
}
