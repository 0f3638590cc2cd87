//! One module per subcommand. These add context to the library's typed
//! errors (anyhow) and print what a person needs to know.

use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};
use polars::prelude::*;

pub mod activate;
pub mod approve;
pub mod bench;
pub mod export_sql;
pub mod generate;
pub mod run;
pub mod score;
pub mod train;
pub mod validate;

/// Sales Velocity ICP: learn which accounts become fast, successful, retained
/// customers from CRM history, score every account 0-100 with reasons, and
/// write segment files for a workflow engine.
#[derive(Debug, Parser)]
#[command(name = "icp", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Load, check, train, evaluate on a time-based holdout, score every account
    /// and write a run directory (scores, segments, model, rejects, manifest,
    /// and the brief with the refined ICP for approval). Too little evidence
    /// to train: writes a NOT READY pilot brief and exits 2.
    Run(run::Args),
    /// Check a data directory: write rejects.csv and a readiness report, nothing else.
    /// Exits 2 when the data is not ready to train (1 on any other error).
    Validate(validate::Args),
    /// Train and evaluate a model; write the model artifact (model.json).
    Train(train::Args),
    /// The daily job: `--data DIR` scores the CRM with the active (approved)
    /// model and publishes to reports/published/ (scores, targeting
    /// segments, add / move / remove changes). With `--accounts FILE` it
    /// scores one accounts file into a scoring directory instead.
    Score(score::Args),
    /// Write a synthetic CRM with a known ground truth (for tests and demos).
    Generate(generate::Args),
    /// Approve a run after review: record who decided, publish its approved
    /// exclusions and make its model the active one for `icp score`.
    Approve(approve::Args),
    /// Make an earlier approved run's model active again (roll back); the
    /// next `icp score --data` publishes with it.
    Activate(activate::Args),
    /// Write the model's score as one SQL SELECT (score, p_velocity_win, band)
    /// for a warehouse, DuckDB or Spark: for account universes beyond one machine.
    ExportSql(export_sql::Args),
    /// Measure: generate N accounts, run every stage, print time per stage,
    /// rows per second and peak memory against a polars-only floor.
    Bench(bench::Args),
}

pub fn dispatch(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Run(a) => run::run(a).map(|_| ()),
        Command::Validate(a) => validate::run(a),
        Command::Train(a) => train::run(a),
        Command::Score(a) => score::run(a),
        Command::Generate(a) => generate::run(a),
        Command::Approve(a) => approve::run(a),
        Command::Activate(a) => activate::run(a),
        Command::ExportSql(a) => export_sql::run(a),
        Command::Bench(a) => bench::run(a),
    }
}

/// Options shared by the commands that read a data directory.
#[derive(Debug, Clone, clap::Args)]
pub struct DataArgs {
    /// Data directory with accounts and opportunities (.csv or .parquet),
    /// optionally customers and triggers.
    #[arg(long, default_value = "data/sample")]
    pub data: PathBuf,
    /// TOML config mapping the CRM's column and stage names onto the contract
    /// and setting the knobs (see data/examples/). Defaults apply without one.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Print nothing but errors.
    #[arg(long, short)]
    pub quiet: bool,
}

impl DataArgs {
    pub fn config(&self) -> anyhow::Result<icp_config::ValidConfig> {
        Ok(icp_config::ValidConfig::load(self.config.as_deref())?)
    }

    /// `icp SUB --data D --config C`: a command the tool suggests, with the
    /// user's own data and config, so it runs as printed.
    pub fn command(&self, sub: &str) -> String {
        let mut c = format!("icp {sub} --data {}", shell_quoted(&self.data));
        if let Some(cfg) = &self.config {
            c.push_str(&format!(" --config {}", shell_quoted(cfg)));
        }
        c
    }
}

/// A path as a POSIX shell reads it back: as it is when it holds only
/// characters no shell treats specially, else in single quotes.
pub fn shell_quoted(p: &Path) -> String {
    let s = p.display().to_string();
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_./-:@%+=,".contains(c));
    if plain {
        s
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

use crate::config as icp_config;

/// Read a generator truth file (account_id, p_velocity_win_true).
pub fn read_truth(path: &Path) -> anyhow::Result<DataFrame> {
    let df = CsvReadOptions::default()
        .with_has_header(true)
        .try_into_reader_with_file_path(Some(path.to_path_buf()))
        .and_then(|r| r.finish())
        .map_err(|e| anyhow::anyhow!("{}: cannot read the truth file: {e}", path.display()))?;
    for c in ["account_id", "p_velocity_win_true"] {
        if df.column(c).is_err() {
            anyhow::bail!("{}: truth file lacks the column `{c}`", path.display());
        }
    }
    Ok(df
        .lazy()
        .select([
            col("account_id").cast(DataType::String),
            col("p_velocity_win_true"),
        ])
        .collect()?)
}

/// Stop when no account row survived the checks: there is nothing to score.
/// `lister` is the command that lists the rejects, with the user's own
/// options, when there is one.
pub fn require_accounts(data: &crate::load::Dataset, lister: Option<String>) -> anyhow::Result<()> {
    require_rows(&data.accounts.input, lister)
}

pub fn require_rows(a: &crate::load::InputFile, lister: Option<String>) -> anyhow::Result<()> {
    if a.used == 0 {
        anyhow::bail!(
            "{}: no usable account rows ({} read, {} rejected){}",
            a.file,
            a.rows,
            a.rejected,
            lister
                .map(|c| format!("; `{c}` lists the rejects"))
                .unwrap_or_default()
        );
    }
    Ok(())
}

/// Exit code of `icp validate` when the data cannot train a model yet
/// (1 is any other error).
pub const EXIT_NOT_READY: u8 = 2;

/// The verdict of `icp validate` and of `icp run` at pilot size when the
/// data is not ready to train (exit status [`EXIT_NOT_READY`]).
#[derive(Debug, thiserror::Error)]
#[error("the data is not ready to train")]
pub struct NotReady;

/// The model file: the one given, or the active model's.
pub fn model_path(given: Option<&Path>, reports: &Path) -> anyhow::Result<PathBuf> {
    match given {
        Some(m) => Ok(m.to_path_buf()),
        None => match crate::review::active_model(reports)? {
            Some(p) => Ok(p),
            None => anyhow::bail!(
                "no active model in {}: approve a run first (icp approve RUN --by NAME), \
                 or pass an explicit model file with --model",
                reports.display()
            ),
        },
    }
}

/// "12,345"
pub use crate::util::thousands;

/// Lines saying how many rows each input had, used and rejected.
pub fn input_lines(inputs: &[crate::load::InputFile]) -> Vec<String> {
    inputs
        .iter()
        .map(|i| {
            format!(
                "  {:<14} {:>10} rows read, {:>10} used, {:>8} rejected  ({})",
                i.table,
                thousands(i.rows),
                thousands(i.used),
                thousands(i.rejected),
                i.file
            )
        })
        .collect()
}

/// What the loader did beyond using and rejecting rows, read once from the
/// rejects: stages the config does not map and cells read as missing.
pub struct LoadReport {
    /// (stage, deals), most first
    pub unknown_stages: Vec<(String, usize)>,
    /// (file, column, cells, an example value)
    pub cells: Vec<(String, String, usize, String)>,
}

impl LoadReport {
    pub fn of(data: &crate::load::Dataset) -> anyhow::Result<LoadReport> {
        Ok(LoadReport {
            unknown_stages: crate::load::unknown_stages(&data.rejects)?,
            cells: crate::load::notes_by_column(&data.rejects)?,
        })
    }

    /// The summary's lines, where the user looks first: footers skipped,
    /// cells read as missing, unmapped stages (with the lines that map
    /// them), columns the config excludes, and the date the data is as of.
    pub fn lines(
        &self,
        data: &crate::load::Dataset,
        as_of: Option<chrono::NaiveDate>,
    ) -> Vec<String> {
        let mut out = Vec::new();
        for i in data.inputs() {
            if i.footer_lines > 0 {
                out.push(format!(
                    "  {}: {} report footer lines after the data skipped (not rows)",
                    i.file, i.footer_lines
                ));
            }
        }
        for (file, column, n, example) in &self.cells {
            out.push(format!(
                "  {file}: {} cells of `{column}` read as missing (for example {example:?}; rejects.csv lists each, the rows are used)",
                thousands(*n)
            ));
        }
        if !self.unknown_stages.is_empty() {
            out.push(format!(
                "  {} deals rejected for a stage the config does not map; to use them, add to the config's [outcomes]:",
                thousands(self.unmapped_deals())
            ));
            out.extend(
                crate::load::outcome_lines(&self.unknown_stages)
                    .into_iter()
                    .map(|l| format!("  {l}")),
            );
        }
        if !data.excluded_columns.is_empty() {
            out.push(format!(
                "  {}: {} columns excluded by the config's [features] exclude, never read: {}",
                data.accounts.input.file,
                data.excluded_columns.len(),
                data.excluded_columns.join(", ")
            ));
        }
        if let Some(d) = as_of {
            out.push(format!(
                "data as of {d} (the newest closed, created, churn or trigger date; open deals' expected close dates are not used)"
            ));
        }
        out
    }

    fn unmapped_deals(&self) -> usize {
        self.unknown_stages.iter().map(|u| u.1).sum()
    }

    /// The brief's words for what was left out or read as missing.
    pub fn caveats(&self) -> Vec<String> {
        // "name: count, name: count"
        let listed = |items: &mut dyn Iterator<Item = (&String, usize)>| {
            items
                .map(|(name, n)| format!("{name}: {}", thousands(n)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut out = Vec::new();
        if !self.unknown_stages.is_empty() {
            out.push(format!(
                "{} deals whose stage the config does not map ({})",
                thousands(self.unmapped_deals()),
                listed(&mut self.unknown_stages.iter().map(|(s, n)| (s, *n)))
            ));
        }
        if !self.cells.is_empty() {
            out.push(format!(
                "{} unreadable or out-of-range number cells, read as missing ({})",
                thousands(self.cells.iter().map(|c| c.2).sum()),
                listed(&mut self.cells.iter().map(|(_, c, n, _)| (c, *n)))
            ));
        }
        out
    }
}

/// "accounts: 1,234 high, ..." from the manifest counts.
pub fn band_line(counts: &[(String, usize)]) -> String {
    let c = |k: &str| counts.iter().find(|x| x.0 == k).map(|x| x.1).unwrap_or(0);
    let [high, medium, low] = crate::domain::Band::NAMES;
    let unscored = crate::domain::Band::UNSCORED;
    let key = |b: &str| format!("band_{b}");
    format!(
        "accounts: {} {high}, {} {medium}, {} {low}, {} {unscored} (too little data)",
        thousands(c(&key(high))),
        thousands(c(&key(medium))),
        thousands(c(&key(low))),
        thousands(c(&key(unscored)))
    )
}

/// Write a run directory with `write`, then move it into place; on any error
/// the temporary directory is removed and nothing is published.
pub fn publish(
    dest: &Path,
    kind: &str,
    model_id: Option<String>,
    inputs: Vec<crate::load::InputFile>,
    write: impl FnOnce(&mut crate::publish::RunWriter) -> anyhow::Result<Vec<(String, usize)>>,
) -> anyhow::Result<(PathBuf, Vec<(String, usize)>)> {
    publish_with(dest, kind, model_id, |w| Ok((inputs, write(w)?)))
}

/// [`publish`] for writers that learn the input row counts as they go.
pub fn publish_with(
    dest: &Path,
    kind: &str,
    model_id: Option<String>,
    write: impl FnOnce(
        &mut crate::publish::RunWriter,
    ) -> anyhow::Result<(Vec<crate::load::InputFile>, Vec<(String, usize)>)>,
) -> anyhow::Result<(PathBuf, Vec<(String, usize)>)> {
    let mut trace = crate::progress::Trace::start();
    let mut w = crate::publish::RunWriter::create(dest)?;
    trace.lap("publish: create");
    match write(&mut w) {
        Ok((inputs, counts)) => {
            trace.lap("publish: files");
            let dir = w.finish(kind, model_id, inputs, counts.clone())?;
            trace.lap("publish: manifest and swap");
            Ok((dir, counts))
        }
        Err(e) => {
            w.abandon();
            Err(e)
        }
    }
}
