//! Writing a run directory: every file goes into a temporary directory that
//! is renamed into place at the end, so a reader never sees half a run.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use polars::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{IcpError, Result};
use crate::io::load::InputFile;
use crate::util::ids::hex;

pub const MANIFEST_FORMAT: &str = "icp-run/1";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OutputFile {
    pub path: String,
    /// data rows (CSV without header; JSON lines or 1 for documents)
    pub rows: usize,
    pub sha256: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub format: String,
    pub run_id: String,
    pub kind: String,
    pub model_id: Option<String>,
    pub program_version: String,
    pub inputs: Vec<InputFile>,
    pub counts: Vec<(String, usize)>,
    pub files: Vec<OutputFile>,
    /// publications: the one this replaces, and the data's as-of date
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub as_of: Option<String>,
    /// what this directory is for its readers
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// A run directory being written.
pub struct RunWriter {
    tmp: PathBuf,
    dest: PathBuf,
    files: Vec<OutputFile>,
    previous_id: Option<String>,
    as_of: Option<String>,
    note: Option<String>,
    trace: crate::util::progress::Trace,
    /// fault injection for the crash-safety test (`ICP_TEST_PUBLISH_DELAY_MS`,
    /// read once): a pause after each file, which widens the window in which
    /// a kill lands mid-publish
    delay: Option<std::time::Duration>,
}

impl RunWriter {
    pub fn create(dest: &Path) -> Result<RunWriter> {
        let parent = dest
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        fs::create_dir_all(parent).map_err(|e| IcpError::write(parent, e))?;
        let name = dest
            .file_name()
            .ok_or_else(|| IcpError::Usage(format!("{}: not a directory name", dest.display())))?
            .to_string_lossy();
        remove_stale_temporaries(parent);
        let tmp = parent.join(format!(".{name}.tmp-{}", std::process::id()));
        if tmp.exists() {
            fs::remove_dir_all(&tmp).map_err(|e| IcpError::write(&tmp, e))?;
        }
        fs::create_dir_all(&tmp).map_err(|e| IcpError::write(&tmp, e))?;
        Ok(RunWriter {
            tmp,
            dest: dest.to_path_buf(),
            files: Vec::new(),
            previous_id: None,
            as_of: None,
            note: None,
            trace: crate::util::progress::Trace::start(),
            delay: std::env::var("ICP_TEST_PUBLISH_DELAY_MS")
                .ok()
                .and_then(|v| v.parse::<u64>().ok())
                .map(std::time::Duration::from_millis),
        })
    }

    /// Say in the manifest what the directory is for its readers.
    pub fn set_note(&mut self, note: impl Into<String>) {
        self.note = Some(note.into());
    }

    /// A publication: the one it replaces (part of its id, so a repeated
    /// publication of the same content is a new one) and the data's as-of
    /// date.
    pub fn set_publication(
        &mut self,
        previous: Option<String>,
        as_of: Option<String>,
        note: String,
    ) {
        self.previous_id = previous;
        self.as_of = as_of;
        self.note = Some(note);
    }

    /// Write a file of the run from byte slices, hashing them as they go
    /// (no re-read), and list it in the manifest.
    pub fn bytes(&mut self, rel: &str, parts: &[&[u8]], rows: usize) -> Result<()> {
        use std::io::Write;
        let (path, mut out) = self.hashing(rel)?;
        for p in parts {
            out.write_all(p).map_err(|e| IcpError::write(&path, e))?;
        }
        out.flush().map_err(|e| IcpError::write(&path, e))?;
        self.recorded(rel, rows, hex(&out.hash.finalize()));
        Ok(())
    }

    /// List a file written under the run (at `rel`) in the manifest.
    pub fn record(&mut self, rel: &str, rows: usize) -> Result<()> {
        let path = self.tmp.join(rel);
        // streamed: an output may be larger than memory
        let mut h = Sha256::new();
        let mut f = fs::File::open(&path).map_err(|e| IcpError::write(&path, e))?;
        std::io::copy(&mut f, &mut h).map_err(|e| IcpError::write(&path, e))?;
        self.recorded(rel, rows, hex(&h.finalize()));
        Ok(())
    }

    fn recorded(&mut self, rel: &str, rows: usize, sha256: String) {
        if let Some(d) = self.delay {
            std::thread::sleep(d);
        }
        self.files.push(OutputFile {
            path: rel.into(),
            rows,
            sha256,
        });
        self.trace.lap(rel);
        // each file's render buffers are freed: give their pages back
        // before the next file allocates its own
        crate::util::progress::release_free_memory();
    }

    /// A scratch directory inside the run being written; it is gone when the
    /// run is published or abandoned (or, after a crash, at the next run).
    pub fn scratch(&self, name: &str) -> Result<PathBuf> {
        let dir = self.tmp.join(format!(".{name}"));
        fs::create_dir_all(&dir).map_err(|e| IcpError::write(&dir, e))?;
        Ok(dir)
    }

    /// A CSV written in batches, for outputs too large to hold at once: the
    /// header (from `like`'s columns) now, rows with each `write`.
    pub fn csv_stream(&mut self, rel: &str, like: &DataFrame) -> Result<CsvStream> {
        let (path, mut file) = self.hashing(rel)?;
        CsvWriter::new(&mut file)
            .include_header(true)
            .finish(&mut like.clear())
            .map_err(|e| IcpError::write(&path, e))?;
        Ok(CsvStream {
            rel: rel.into(),
            path,
            file,
            rows: 0,
        })
    }

    /// Finish a streamed CSV and list it in the manifest.
    pub fn close(&mut self, s: CsvStream) -> Result<()> {
        use std::io::Write;
        let CsvStream {
            rel,
            path,
            mut file,
            rows,
        } = s;
        file.flush().map_err(|e| IcpError::write(&path, e))?;
        // hashed as it was written: no second read of the file
        self.recorded(&rel, rows, hex(&file.hash.finalize()));
        Ok(())
    }

    /// Create a file of the run at `rel`, buffered and hashed as it is
    /// written (no second read of the file for the manifest).
    fn hashing(&self, rel: &str) -> Result<(PathBuf, Hashing<std::io::BufWriter<fs::File>>)> {
        let (path, f) = self.open(rel)?;
        Ok((
            path,
            Hashing {
                inner: std::io::BufWriter::with_capacity(1 << 20, f),
                hash: Sha256::new(),
            },
        ))
    }

    /// Create a file of the run at `rel`; [`RunWriter::record`] it once written.
    pub fn open(&self, rel: &str) -> Result<(PathBuf, fs::File)> {
        self.trace.restart();
        let path = self.tmp.join(rel);
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(|e| IcpError::write(dir, e))?;
        }
        let f = fs::File::create(&path).map_err(|e| IcpError::write(&path, e))?;
        Ok((path, f))
    }

    pub fn csv(&mut self, rel: &str, df: &DataFrame) -> Result<()> {
        use std::io::Write;
        let (path, mut out) = self.hashing(rel)?;
        let mut df = df.clone();
        if !crate::io::csv_out::write_frame(&df, &mut out).map_err(|e| IcpError::write(&path, e))? {
            CsvWriter::new(&mut out)
                .include_header(true)
                .finish(&mut df)
                .map_err(|e| IcpError::write(&path, e))?;
        }
        out.flush().map_err(|e| IcpError::write(&path, e))?;
        self.recorded(rel, df.height(), hex(&out.hash.finalize()));
        Ok(())
    }

    /// A CSV meant to be opened by people (in a spreadsheet): text cells that
    /// a spreadsheet would run as a formula get a leading `'`.
    pub fn csv_for_people(&mut self, rel: &str, df: &DataFrame) -> Result<()> {
        self.csv(rel, &neutralise_formulas(df)?)
    }

    pub fn parquet(&mut self, rel: &str, df: &DataFrame) -> Result<()> {
        let (path, f) = self.open(rel)?;
        let mut df = df.clone();
        ParquetWriter::new(f)
            .finish(&mut df)
            .map_err(|e| IcpError::write(&path, e))?;
        self.record(rel, df.height())
    }

    pub fn json<T: Serialize>(&mut self, rel: &str, value: &T) -> Result<()> {
        let text = serde_json::to_string_pretty(value).map_err(|e| IcpError::write(rel, e))?;
        self.text(rel, &(text + "\n"))
    }

    pub fn text(&mut self, rel: &str, text: &str) -> Result<()> {
        let (path, _) = self.open(rel)?;
        fs::write(&path, text).map_err(|e| IcpError::write(&path, e))?;
        self.record(rel, 1)
    }

    /// Write the manifest and move the run into place. Returns the final path.
    pub fn finish(
        mut self,
        kind: &str,
        model_id: Option<String>,
        inputs: Vec<InputFile>,
        counts: Vec<(String, usize)>,
    ) -> Result<PathBuf> {
        // scratch directories are not part of the run
        if let Ok(entries) = fs::read_dir(&self.tmp) {
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().starts_with('.') {
                    let _ = fs::remove_dir_all(e.path());
                }
            }
        }
        // A content id: same inputs, settings and outputs give the same id.
        let mut h = Sha256::new();
        h.update(kind.as_bytes());
        for i in &inputs {
            h.update(i.sha256.as_bytes());
        }
        for f in &self.files {
            h.update(f.path.as_bytes());
            h.update(f.sha256.as_bytes());
        }
        if let Some(p) = &self.previous_id {
            h.update(b"previous");
            h.update(p.as_bytes());
        }
        // publications are "p-", everything else a run ("r-")
        let prefix = if kind == "publication" { "p" } else { "r" };
        let run_id = format!("{prefix}-{}", &hex(&h.finalize())[..12]);
        self.files.sort_by(|a, b| a.path.cmp(&b.path));
        let manifest = Manifest {
            format: MANIFEST_FORMAT.into(),
            run_id,
            kind: kind.into(),
            model_id,
            program_version: env!("CARGO_PKG_VERSION").into(),
            inputs,
            counts,
            files: std::mem::take(&mut self.files),
            previous_id: self.previous_id.take(),
            as_of: self.as_of.take(),
            note: self.note.take(),
        };
        let text = serde_json::to_string_pretty(&manifest)
            .map_err(|e| IcpError::write("manifest.json", e))?;
        let mpath = self.tmp.join("manifest.json");
        fs::write(&mpath, text + "\n").map_err(|e| IcpError::write(&mpath, e))?;
        // a file that did not reach the disk must not replace the old run
        if let Err(e) = sync_dir(&self.tmp) {
            let _ = fs::remove_dir_all(&self.tmp);
            return Err(e);
        }
        if self.dest.exists() {
            // Replace: swap the two directories in one step, so that at every
            // moment `dest` is either the whole old run or the whole new one.
            exchange(&self.tmp, &self.dest)?;
            let _ = fs::remove_dir_all(&self.tmp);
        } else {
            fs::rename(&self.tmp, &self.dest).map_err(|e| IcpError::write(&self.dest, e))?;
        }
        Ok(self.dest.clone())
    }

    /// Give up: remove the temporary directory.
    pub fn abandon(self) {
        let _ = fs::remove_dir_all(&self.tmp);
    }
}

/// A writer that hashes what passes through it.
struct Hashing<W> {
    inner: W,
    hash: Sha256,
}

impl<W: std::io::Write> std::io::Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// A CSV of a run being written in batches; see [`RunWriter::csv_stream`].
pub struct CsvStream {
    rel: String,
    path: PathBuf,
    file: Hashing<std::io::BufWriter<fs::File>>,
    rows: usize,
}

impl CsvStream {
    /// Append rows (same columns as the header). Each row's text depends on
    /// that row alone, so batches give the bytes one whole frame would.
    pub fn write(&mut self, df: &DataFrame) -> Result<()> {
        if df.height() == 0 {
            return Ok(());
        }
        // rendered in parallel while the previous batch is hashed and written
        crate::io::csv_out::write_rows(df, &mut self.file)
            .map_err(|e| IcpError::write(&self.path, e))?;
        self.rows += df.height();
        Ok(())
    }

    /// Append `rows` rows already rendered (by [`crate::io::csv_out::rows`]),
    /// for the same rows written to several files.
    pub fn write_rendered(&mut self, bytes: &[u8], rows: usize) -> Result<()> {
        use std::io::Write;
        self.file
            .write_all(bytes)
            .map_err(|e| IcpError::write(&self.path, e))?;
        self.rows += rows;
        Ok(())
    }
}

/// Atomically swap two directories (Linux renameat2 RENAME_EXCHANGE). Where
/// the file system cannot, fall back to two renames (a short gap without `b`).
fn exchange(a: &Path, b: &Path) -> Result<()> {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::ffi::OsStrExt;
        let ca =
            std::ffi::CString::new(a.as_os_str().as_bytes()).map_err(|e| IcpError::write(a, e))?;
        let cb =
            std::ffi::CString::new(b.as_os_str().as_bytes()).map_err(|e| IcpError::write(b, e))?;
        // SAFETY: both are valid NUL-terminated paths; the call only renames.
        let rc = unsafe {
            libc::renameat2(
                libc::AT_FDCWD,
                ca.as_ptr(),
                libc::AT_FDCWD,
                cb.as_ptr(),
                libc::RENAME_EXCHANGE,
            )
        };
        if rc == 0 {
            return Ok(());
        }
        let err = std::io::Error::last_os_error();
        if !matches!(err.raw_os_error(), Some(libc::EINVAL) | Some(libc::ENOSYS)) {
            return Err(IcpError::write(b, err));
        }
    }
    let old = a.with_extension("old");
    fs::rename(b, &old).map_err(|e| IcpError::write(b, e))?;
    fs::rename(a, b).map_err(|e| IcpError::write(b, e))?;
    // `a` is where callers expect the old contents
    fs::rename(&old, a).map_err(|e| IcpError::write(a, e))
}

/// Remove `.NAME.tmp-PID` leftovers of runs that were killed (their process
/// is gone), so a crash costs disk space only until the next run.
fn remove_stale_temporaries(parent: &Path) {
    if !Path::new("/proc/self").exists() {
        return;
    }
    let Ok(entries) = fs::read_dir(parent) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.starts_with('.') {
            continue;
        }
        let Some((_, tail)) = name.rsplit_once(".tmp-") else {
            continue;
        };
        let pid = tail.split('.').next().unwrap_or("");
        if pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        if pid != std::process::id().to_string() && !Path::new("/proc").join(pid).exists() {
            let p = e.path();
            let _ = if p.is_dir() {
                fs::remove_dir_all(&p)
            } else {
                fs::remove_file(&p)
            };
        }
    }
}

/// Prefix text cells that begin like a spreadsheet formula (`=`, `+`, `-`,
/// `@`, tab, carriage return) with `'`, so a spreadsheet shows them as text.
pub fn neutralise_formulas(df: &DataFrame) -> Result<DataFrame> {
    fn needs(s: &str) -> bool {
        s.starts_with(['=', '+', '-', '@', '\t', '\r'])
    }
    fn fix(s: &str) -> std::borrow::Cow<'_, str> {
        if needs(s) {
            std::borrow::Cow::Owned(format!("'{s}"))
        } else {
            std::borrow::Cow::Borrowed(s)
        }
    }
    let mut out = df.clone();
    for c in df.columns() {
        if c.dtype() != &DataType::String {
            continue;
        }
        let ca = c.as_materialized_series().str()?.clone();
        // most columns hold no such cell: leave them, uncopied
        if !ca.iter().flatten().any(needs) {
            continue;
        }
        let fixed: StringChunked = ca.iter().map(|o| o.map(fix)).collect();
        out.with_column(fixed.with_name(c.name().clone()).into_series().into())?;
    }
    Ok(out)
}

fn sync_dir(dir: &Path) -> Result<()> {
    use rayon::prelude::*;
    fn files(dir: &Path, out: &mut Vec<PathBuf>) {
        if let Ok(entries) = fs::read_dir(dir) {
            for e in entries.flatten() {
                let p = e.path();
                if p.is_dir() {
                    files(&p, out);
                } else {
                    out.push(p);
                }
            }
        }
    }
    let mut all = Vec::new();
    files(dir, &mut all);
    // and the folders themselves (their entries: the files' names)
    #[cfg(unix)]
    {
        fn dirs(dir: &Path, out: &mut Vec<PathBuf>) {
            out.push(dir.to_path_buf());
            if let Ok(entries) = fs::read_dir(dir) {
                for e in entries.flatten() {
                    if e.path().is_dir() {
                        dirs(&e.path(), out);
                    }
                }
            }
        }
        dirs(dir, &mut all);
    }
    // the files are flushed to disk side by side: one waits on the disk
    // while another is written back
    all.par_iter().try_for_each(|p| {
        fs::File::open(p)
            .and_then(|f| f.sync_all())
            .map_err(|e| IcpError::write(p, format!("cannot flush to disk: {e}")))
    })
}

/// Point `reports/latest` at `run` (a symlink swapped in with a rename).
pub fn point_latest(reports: &Path, run: &Path) -> Result<()> {
    let name = run
        .file_name()
        .ok_or_else(|| IcpError::Usage("run directory has no name".into()))?;
    let link = reports.join("latest");
    let tmp = reports.join(format!(".latest.tmp-{}", std::process::id()));
    let _ = fs::remove_file(&tmp);
    #[cfg(unix)]
    std::os::unix::fs::symlink(name, &tmp).map_err(|e| IcpError::write(&tmp, e))?;
    #[cfg(not(unix))]
    fs::write(&tmp, name.to_string_lossy().as_bytes()).map_err(|e| IcpError::write(&tmp, e))?;
    fs::rename(&tmp, &link).map_err(|e| IcpError::write(&link, e))?;
    Ok(())
}

/// A fresh run directory name under `reports`: UTC time plus the model id.
pub fn new_run_dir(reports: &Path, tag: &str) -> PathBuf {
    let now = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
    reports.join(format!("run-{now}-{tag}"))
}
/// A JSON file this program wrote, as `T`.
pub fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T> {
    let text = fs::read_to_string(path).map_err(|e| IcpError::read(path, e))?;
    serde_json::from_str(&text)
        .map_err(|e| IcpError::read(path, format!("not the expected JSON: {e}")))
}

/// A Parquet file this program wrote, its text columns as text.
pub fn read_parquet(path: &Path) -> Result<DataFrame> {
    let f = fs::File::open(path).map_err(|e| IcpError::read(path, e))?;
    ParquetReader::new(f)
        .finish()
        .map_err(|e| IcpError::read(path, e))
}

/// A CSV this program wrote, every column read as text.
pub fn read_text_csv(path: &Path) -> Result<DataFrame> {
    CsvReadOptions::default()
        .with_infer_schema_length(Some(0))
        .try_into_reader_with_file_path(Some(path.to_path_buf()))?
        .finish()
        .map_err(|e| IcpError::read(path, e))
}

/// Write a file whole: a temporary sibling, then a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let name = path
        .file_name()
        .ok_or_else(|| IcpError::Usage(format!("{}: not a file name", path.display())))?
        .to_string_lossy()
        .to_string();
    let tmp = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    {
        let mut f = fs::File::create(&tmp).map_err(|e| IcpError::write(&tmp, e))?;
        f.write_all(bytes).map_err(|e| IcpError::write(&tmp, e))?;
        f.sync_all().map_err(|e| IcpError::write(&tmp, e))?;
    }
    fs::rename(&tmp, path).map_err(|e| IcpError::write(path, e))
}

/// The run id recorded in a run directory's manifest.
pub fn run_id_of(dir: &Path) -> Result<String> {
    let m: Manifest = read_json(&dir.join("manifest.json"))?;
    Ok(m.run_id)
}
