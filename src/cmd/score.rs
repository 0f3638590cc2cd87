//! `icp score`: apply an existing model artifact to an accounts file.

use std::path::PathBuf;

use crate::cmd::common::{band_line, input_lines, publication_line};
use crate::config::ValidConfig;
use crate::io::publish::{new_run_dir, point_latest};
use crate::pipeline::publish_with;
use crate::pipeline::score::{Pieces, score_in_pieces};
use crate::stages::model::ModelArtifact;

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Model artifact (model.json of a run or of `icp train`). Default: the
    /// active model, i.e. the last run approved with `icp approve`.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// The daily job: a data directory (accounts required; opportunities and
    /// customers optional, for each account's CRM status), scored with the
    /// active (approved) model and published to <reports>/published/ with
    /// add / move / remove changes against the previous publication.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Without --data: an accounts file to score (.csv or .parquet) into a
    /// scoring directory (not a publication).
    #[arg(long, default_value = "data/sample/accounts.csv")]
    pub accounts: PathBuf,
    /// TOML config for the accounts file's column names; by default the
    /// mapping the model was trained with.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Write the output directory here instead of a new directory under --reports.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Where output directories go; also where the active model is recorded.
    #[arg(long, default_value = "reports")]
    pub reports: PathBuf,
    /// Also write scores.parquet.
    #[arg(long)]
    pub parquet: bool,
    /// Accounts checked and scored at a time; memory grows with it, the
    /// outputs do not change with it.
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub chunk_rows: u64,
    #[arg(long, short)]
    pub quiet: bool,
}

/// `icp score --data DIR`: score with the active model, publish, and say what changed.
fn publish_daily(args: &Args, dir: &std::path::Path) -> anyhow::Result<()> {
    if args.model.is_some() {
        anyhow::bail!(
            "--data publishes with the active (approved) model; to score with another model, use --accounts FILE --model M (a scoring directory, not a publication)"
        );
    }
    let out = crate::pipeline::score::publish_daily(&crate::pipeline::score::Daily {
        data: dir,
        config: args.config.as_deref(),
        reports: &args.reports,
        quiet: args.quiet,
    })?;
    if !args.quiet {
        println!("icp score: model {} (active)", out.artifact.model_id);
        for l in input_lines(&out.inputs) {
            println!("{l}");
        }
        println!("{}", band_line(&out.bands));
        println!("{}", publication_line(&out.published));
    }
    Ok(())
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if let Some(dir) = args.data.clone() {
        return publish_daily(&args, &dir);
    }
    let model_path = crate::cmd::common::model_path(args.model.as_deref(), &args.reports)?;
    let artifact = ModelArtifact::read(&model_path)?;
    let cfg = match &args.config {
        Some(p) => ValidConfig::load(Some(p))?,
        None => artifact.config.clone(),
    };
    let stages = crate::util::progress::Stages::new("icp score", args.quiet);
    let dest = match &args.out {
        Some(o) => o.clone(),
        None => new_run_dir(&args.reports, &format!("score-{}", artifact.model_id)),
    };
    let mut inputs = Vec::new();
    let (dir, counts) = publish_with(&dest, "score", Some(artifact.model_id.clone()), |w| {
        let counts = score_in_pieces(
            w,
            &Pieces {
                accounts: &args.accounts,
                chunk_rows: args.chunk_rows as usize,
                parquet: args.parquet,
            },
            &artifact,
            &cfg,
            &stages,
            &mut inputs,
        )?;
        Ok((inputs.clone(), counts))
    })?;
    if args.out.is_none() {
        point_latest(&args.reports, &dir)?;
    }
    stages.finish();
    if !args.quiet {
        println!("icp score: model {}", artifact.model_id);
        for l in input_lines(&inputs) {
            println!("{l}");
        }
        println!("{}", band_line(&counts));
        println!("outputs: {}", dir.display());
    }
    Ok(())
}
