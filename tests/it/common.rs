use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use polars::prelude::*;

/// 2025-07-01T00:00:00Z, the day after the generated data ends: the run
/// date of every test run and of reports/example.
pub const RUN_DATE_EPOCH: &str = "1751328000";

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn fixture(name: &str) -> PathBuf {
    root().join("tests/fixtures").join(name)
}

/// The `icp` binary with `args`, run in `cwd` on the fixed run date: the
/// one way the tests start it.
pub fn icp_command(args: &[&str], cwd: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_icp"));
    c.args(args)
        // the brief's run date, fixed so outputs are byte-identical
        .env("SOURCE_DATE_EPOCH", RUN_DATE_EPOCH)
        .current_dir(cwd);
    c
}

pub fn icp(args: &[&str], cwd: &Path) -> Output {
    icp_command(args, cwd)
        .output()
        .expect("the icp binary runs")
}

/// `icp run --quiet` on `data` (the default sample when None) into `out`,
/// with the active model and events log under `reports`, never in the
/// repository's reports/. Asserts success.
pub fn run_quiet(data: Option<&Path>, out: &Path, reports: &Path, extra: &[&str]) {
    let mut args = vec!["run", "--quiet"];
    if let Some(d) = data {
        args.extend(["--data", d.to_str().unwrap()]);
    }
    args.extend([
        "--out",
        out.to_str().unwrap(),
        "--reports",
        reports.to_str().unwrap(),
    ]);
    args.extend_from_slice(extra);
    let o = icp(&args, &root());
    assert!(o.status.success(), "{}", stderr(&o));
}

pub fn json(p: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(p).expect("read json")).expect("parse json")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A generated data set shared by the tests of one process: (dir, truth).
pub fn generated(n: usize, seed: u64) -> (PathBuf, PathBuf) {
    /// (accounts, seed, data directory, truth file) of each CRM generated
    type Generated = Vec<(usize, u64, PathBuf, PathBuf)>;
    static CACHE: OnceLock<std::sync::Mutex<Generated>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let mut c = cache.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(hit) = c.iter().find(|x| x.0 == n && x.1 == seed) {
        return (hit.2.clone(), hit.3.clone());
    }
    let base = tempfile::tempdir().expect("tempdir").keep();
    let dir = base.join("data");
    let truth = base.join("truth.csv");
    let s = icp::io::synth::generate(n, seed).expect("generate");
    icp::io::synth::write(&s, &dir, &truth, icp::io::synth::Format::Csv).expect("write");
    c.push((n, seed, dir.clone(), truth.clone()));
    (dir, truth)
}

pub fn read_csv(path: &Path) -> DataFrame {
    CsvReadOptions::default()
        .with_has_header(true)
        .with_infer_schema_length(Some(0))
        .try_into_reader_with_file_path(Some(path.to_path_buf()))
        .expect("open csv")
        .finish()
        .expect("read csv")
}

/// A Parquet file of a run directory (the membership files).
pub fn read_parquet(path: &Path) -> DataFrame {
    let f = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    ParquetReader::new(f).finish().expect("read parquet")
}

pub fn strings(df: &DataFrame, c: &str) -> Vec<String> {
    df.column(c)
        .expect("column")
        .cast(&DataType::String)
        .expect("cast")
        .str()
        .expect("str")
        .iter()
        .map(|v| v.unwrap_or("").to_string())
        .collect()
}

/// Every file under `dir`, relative path -> bytes.
pub fn tree(dir: &Path) -> Vec<(String, Vec<u8>)> {
    fn walk(base: &Path, d: &Path, out: &mut Vec<(String, Vec<u8>)>) {
        let mut entries: Vec<_> = std::fs::read_dir(d).expect("read_dir").flatten().collect();
        entries.sort_by_key(|e| e.path());
        for e in entries {
            let p = e.path();
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                let rel = p.strip_prefix(base).expect("prefix").display().to_string();
                out.push((rel, std::fs::read(&p).expect("read")));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out
}
