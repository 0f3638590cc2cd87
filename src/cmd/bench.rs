//! `icp bench`: generate N accounts, run the pipeline the way users do (one
//! child process per command, so each has its own peak memory), and print
//! where the time goes, against the floor of reading the inputs and writing
//! the outputs with polars alone.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, bail};
use polars::prelude::*;
use serde::Serialize;

use crate::io::synth;
use crate::util::progress::{TIMINGS_ENV, Timings};
use crate::util::thousands;

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Accounts to generate (about 0.6 opportunities each).
    #[arg(long, default_value_t = 100_000)]
    pub accounts: usize,
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Working directory; data of the same size and seed is generated once
    /// and reused. Results go to <dir>/<accounts>-s<seed>/bench.json.
    #[arg(long, default_value = "bench")]
    pub dir: PathBuf,
    /// Thread counts to re-score with; outputs must be byte-identical across them.
    #[arg(long, value_delimiter = ',', default_value = "1,2")]
    pub threads: Vec<usize>,
    /// Skip `icp run` and re-score with this model (for universes too large
    /// to train on here, e.g. a model from a 1M-account bench).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Generate only the project's own account columns. By default the
    /// bench runs on the wide CRM's (`icp generate --wide`: region, tech
    /// stack, multi-location, operations owner), where more conditions,
    /// findings and membership rows cost more; results then go to
    /// <dir>/<accounts>-s<seed>-narrow/.
    #[arg(long)]
    pub narrow: bool,
}

#[derive(Debug, Serialize)]
struct Machine {
    cores: usize,
    memory_bytes: Option<u64>,
    build: &'static str,
}

#[derive(Debug, Serialize)]
struct ScoreRun {
    threads: usize,
    wall_seconds: f64,
    timings: Timings,
    identical_to_first: bool,
}

#[derive(Debug, Serialize)]
struct Report {
    accounts: usize,
    opportunities: usize,
    seed: u64,
    /// "wide" (the wide CRM's account columns) or "narrow"
    shape: &'static str,
    machine: Machine,
    floor_read_seconds: f64,
    floor_read_rows: usize,
    floor_write_seconds: f64,
    /// the re-score's own floor: polars alone reads the accounts and
    /// writes the re-score's CSVs (scores, CRM import, segments)
    rescore_floor_seconds: f64,
    run_wall_seconds: Option<f64>,
    run: Option<Timings>,
    score: Vec<ScoreRun>,
}

const BUILD: &str = if cfg!(debug_assertions) {
    "dev (polars unoptimised: NOT the product's speed; use --release)"
} else {
    "release"
};

pub fn run(args: Args) -> anyhow::Result<()> {
    if args.threads.is_empty() || args.threads.contains(&0) {
        bail!("--threads takes thread counts of 1 or more, e.g. 1,2");
    }
    let shape = if args.narrow { "-narrow" } else { "" };
    let base = args
        .dir
        .join(format!("{}-s{}{shape}", args.accounts, args.seed));
    let data = base.join("data");
    let generated = ensure_data(
        &data,
        &base.join("truth.csv"),
        (args.accounts, args.seed, !args.narrow),
    )?;
    let opportunities = csv_rows(&data.join("opportunities.csv"))?;
    let exe = std::env::current_exe().context("locating the icp binary")?;

    // 1. icp run, as a user runs it
    let (run_wall, run_t, outputs) = match &args.model {
        Some(_) => (None, None, None),
        None => {
            let out = base.join("run");
            let (wall, t) = child(
                &exe,
                &base,
                "run",
                &[
                    "run",
                    "--quiet",
                    "--data",
                    s(&data)?,
                    "--out",
                    s(&out)?,
                    "--reports",
                    s(&base.join("reports"))?,
                ],
                None,
            )?;
            (Some(wall), Some(t), Some(out))
        }
    };
    let model = match (&args.model, &outputs) {
        (Some(m), _) => m.clone(),
        (None, Some(o)) => o.join("model.json"),
        (None, None) => unreachable!("either a model or a run"),
    };

    // 2. re-score with the model at each thread count
    let mut score = Vec::new();
    let mut first_manifest: Option<serde_json::Value> = None;
    for &t in &args.threads {
        let out = base.join(format!("score-t{t}"));
        let (wall, timings) = child(
            &exe,
            &base,
            &format!("score-t{t}"),
            &[
                "score",
                "--quiet",
                "--model",
                s(&model)?,
                "--accounts",
                s(&data.join("accounts.csv"))?,
                "--out",
                s(&out)?,
            ],
            Some(t),
        )?;
        let manifest = outputs_of(&out)?;
        let identical = match &first_manifest {
            None => {
                first_manifest = Some(manifest);
                true
            }
            Some(m) => *m == manifest,
        };
        score.push(ScoreRun {
            threads: t,
            wall_seconds: wall,
            timings,
            identical_to_first: identical,
        });
    }

    // 3. the floor: polars alone reads the inputs and writes the same outputs
    let (floor_read_seconds, floor_read_rows) = floor_read(&data)?;
    let written = outputs
        .clone()
        .unwrap_or_else(|| base.join(format!("score-t{}", args.threads[0])));
    let floor_write_seconds = floor_write(&csv_files(&written)?, &base.join("floor"))?;
    let rescore_floor_seconds = {
        let scored = base.join(format!("score-t{}", args.threads[0]));
        let mut files = csv_files(&scored)?;
        files.extend(csv_files(&scored.join("segments"))?);
        floor_read_files(&[data.join("accounts.csv")])?.0
            + floor_write(&files, &base.join("floor"))?
    };

    let report = Report {
        accounts: args.accounts,
        opportunities,
        seed: args.seed,
        shape: if args.narrow { "narrow" } else { "wide" },
        machine: Machine {
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            memory_bytes: mem_total(),
            build: BUILD,
        },
        floor_read_seconds,
        floor_read_rows,
        floor_write_seconds,
        rescore_floor_seconds,
        run_wall_seconds: run_wall,
        run: run_t,
        score,
    };
    std::fs::write(
        base.join("bench.json"),
        serde_json::to_string_pretty(&report)? + "\n",
    )
    .with_context(|| format!("writing {}", base.join("bench.json").display()))?;
    print_report(&report, &base, generated);
    if report.score.iter().any(|r| !r.identical_to_first) {
        bail!("outputs differ between thread counts: scoring is not deterministic");
    }
    Ok(())
}

fn s(p: &Path) -> anyhow::Result<&str> {
    p.to_str()
        .with_context(|| format!("{}: not a UTF-8 path", p.display()))
}

/// Generate the data set unless a complete one of this size and seed is there.
/// Returns the seconds spent generating (None when reused).
/// `(n, seed, wide)`: the generator's size, seed and shape.
fn ensure_data(
    data: &Path,
    truth: &Path,
    (n, seed, wide): (usize, u64, bool),
) -> anyhow::Result<Option<f64>> {
    let marker = data.join(".complete");
    if marker.is_file() {
        return Ok(None);
    }
    let t0 = Instant::now();
    let g = synth::generate_shaped(n, seed, wide)?;
    synth::write(&g, data, truth, synth::Format::Csv)?;
    let shape = if wide { "wide" } else { "narrow" };
    std::fs::write(&marker, format!("{n} accounts, seed {seed}, {shape}\n"))
        .with_context(|| format!("writing {}", marker.display()))?;
    Ok(Some(t0.elapsed().as_secs_f64()))
}

/// Run `icp <args>` as a child; returns its wall time and its own timings.
fn child(
    exe: &Path,
    base: &Path,
    name: &str,
    args: &[&str],
    threads: Option<usize>,
) -> anyhow::Result<(f64, Timings)> {
    let tfile = base.join(format!("timings-{name}.json"));
    let _ = std::fs::remove_file(&tfile);
    let mut cmd = Command::new(exe);
    cmd.args(args).env(TIMINGS_ENV, &tfile);
    if let Some(t) = threads {
        cmd.env("RAYON_NUM_THREADS", t.to_string())
            .env("POLARS_MAX_THREADS", t.to_string());
    }
    eprintln!("bench: icp {}", args.join(" "));
    let t0 = Instant::now();
    let out = cmd
        .output()
        .with_context(|| format!("starting {}", exe.display()))?;
    let wall = t0.elapsed().as_secs_f64();
    if !out.status.success() {
        bail!(
            "icp {} failed ({}):\n{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let t: Timings = serde_json::from_slice(
        &std::fs::read(&tfile).with_context(|| format!("reading {}", tfile.display()))?,
    )
    .with_context(|| format!("parsing {}", tfile.display()))?;
    Ok((wall, t))
}

/// The output files of a run directory and their checksums (its manifest's list).
fn outputs_of(dir: &Path) -> anyhow::Result<serde_json::Value> {
    let m: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.join("manifest.json"))
            .with_context(|| format!("reading {}/manifest.json", dir.display()))?,
    )?;
    Ok(m["files"].clone())
}

fn csv_rows(path: &Path) -> anyhow::Result<usize> {
    Ok(LazyCsvReader::new(PlRefPath::try_from_path(path)?)
        .with_has_header(true)
        .finish()?
        .select([len()])
        .collect()?
        .column("len")?
        .get(0)?
        .extract::<usize>()
        .unwrap_or(0))
}

/// The CSV files directly in `dir`, in name order.
fn csv_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "csv"))
        .collect();
    files.sort();
    Ok(files)
}

/// Read every input CSV with polars' own reader and type inference.
fn floor_read(data: &Path) -> anyhow::Result<(f64, usize)> {
    floor_read_files(&csv_files(data)?)
}

fn floor_read_files(files: &[PathBuf]) -> anyhow::Result<(f64, usize)> {
    let t0 = Instant::now();
    let mut rows = 0;
    for f in files {
        let df = CsvReadOptions::default()
            .with_has_header(true)
            .try_into_reader_with_file_path(Some(f.clone()))?
            .finish()
            .map_err(|e| anyhow::anyhow!("reading {}: {e}", f.display()))?;
        rows += df.height();
    }
    Ok((t0.elapsed().as_secs_f64(), rows))
}

/// Write the CSV `files` again with polars alone (reading them back is not
/// timed).
fn floor_write(files: &[PathBuf], scratch: &Path) -> anyhow::Result<f64> {
    let mut frames = Vec::new();
    for f in files {
        let df = CsvReadOptions::default()
            .with_has_header(true)
            .try_into_reader_with_file_path(Some(f.clone()))?
            .finish()?;
        frames.push((f.file_name().map(|n| n.to_owned()), df));
    }
    std::fs::create_dir_all(scratch)?;
    let t0 = Instant::now();
    for (name, mut df) in frames {
        let p = scratch.join(name.unwrap_or_default());
        let mut f = std::fs::File::create(&p)?;
        CsvWriter::new(&mut f)
            .include_header(true)
            .finish(&mut df)?;
    }
    let secs = t0.elapsed().as_secs_f64();
    let _ = std::fs::remove_dir_all(scratch);
    Ok(secs)
}

fn mem_total() -> Option<u64> {
    crate::util::progress::proc_bytes("/proc/meminfo", "MemTotal:")
}

fn mb(b: Option<u64>) -> String {
    b.map_or("?".into(), |b| format!("{:.0} MB", b as f64 / 1e6))
}

fn print_report(r: &Report, base: &Path, generated: Option<f64>) {
    let floor = r.floor_read_seconds + r.floor_write_seconds;
    println!(
        "icp bench: {} accounts, {} opportunities (seed {}, {} CRM); {} cores, {} RAM; {} build",
        thousands(r.accounts),
        thousands(r.opportunities),
        r.seed,
        r.shape,
        r.machine.cores,
        r.machine.memory_bytes.map_or("?".into(), |b| format!(
            "{:.1} GiB",
            b as f64 / (1u64 << 30) as f64
        )),
        r.machine.build
    );
    match generated {
        Some(s) => println!(
            "data: {} (generated in {s:.1} s)",
            base.join("data").display()
        ),
        None => println!("data: {} (reused)", base.join("data").display()),
    }
    println!();
    println!("floor: polars alone          seconds");
    println!(
        "  read the inputs         {:>9.2}   ({} rows)",
        r.floor_read_seconds,
        thousands(r.floor_read_rows)
    );
    println!("  write the outputs       {:>9.2}", r.floor_write_seconds);
    println!("  floor                   {floor:>9.2}");
    if let (Some(t), Some(wall)) = (&r.run, r.run_wall_seconds) {
        println!();
        println!("icp run                      seconds   cpu s        rows     rows/s   x floor");
        for st in &t.stages {
            let rows = st.rows.map_or(String::new(), thousands);
            let rate = match st.rows {
                Some(n) if st.seconds > 0.0 => thousands((n as f64 / st.seconds) as usize),
                _ => String::new(),
            };
            println!(
                "  {:<22} {:>9.2} {:>7.1} {:>11} {:>10} {:>9.1}",
                st.stage,
                st.seconds,
                st.cpu_seconds,
                rows,
                rate,
                st.seconds / floor.max(1e-9)
            );
        }
        println!(
            "  {:<22} {:>9.2} {:>7.1} {:>11} {:>10} {:>9.1}",
            "total (wall)",
            wall,
            t.stages.iter().map(|s| s.cpu_seconds).sum::<f64>(),
            "",
            "",
            wall / floor.max(1e-9)
        );
        println!("  peak RSS               {:>12}", mb(t.peak_rss_bytes));
    }
    println!();
    println!(
        "re-score floor: polars alone reads the accounts and writes the re-score's CSVs (scores, CRM import, segments): {:.2} s",
        r.rescore_floor_seconds
    );
    println!(
        "icp score (existing model)   threads   wall s   score s  x floor    peak RSS   outputs"
    );
    for s in &r.score {
        let score_s = s
            .timings
            .stages
            .iter()
            .find(|x| x.stage == "score")
            .map_or(0.0, |x| x.seconds);
        println!(
            "                             {:>7} {:>8.2} {:>9.2} {:>8.1} {:>11}   {}",
            s.threads,
            s.wall_seconds,
            score_s,
            s.wall_seconds / r.rescore_floor_seconds.max(1e-9),
            mb(s.timings.peak_rss_bytes),
            if std::ptr::eq(s, &r.score[0]) {
                "(reference)"
            } else if s.identical_to_first {
                "byte-identical"
            } else {
                "DIFFERENT"
            }
        );
    }
    println!();
    println!("figures: {}", base.join("bench.json").display());
}
