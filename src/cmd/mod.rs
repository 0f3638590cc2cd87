//! One module per subcommand. These add context to the library's typed
//! errors (anyhow) and print what a person needs to know.

use clap::{Parser, Subcommand};

pub mod activate;
pub mod approve;
pub mod bench;
pub mod common;
pub mod export_sql;
pub mod generate;
pub mod run;
pub mod score;
pub mod train;
pub mod validate;

pub use crate::io::synth::read_truth;
pub use crate::pipeline::{EXIT_NOT_READY, NotReady};

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
    /// rows per second and peak memory against a polars-only floor, then
    /// re-score against the re-score floor (polars reads the accounts and
    /// writes files of the same size).
    Bench(bench::Args),
}

pub fn dispatch(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Run(a) => run::run(a),
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
