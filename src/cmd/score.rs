//! `icp score`: apply an existing model artifact to an accounts file.

use std::path::PathBuf;

use anyhow::Context;
use polars::prelude::*;

use crate::cmd::{band_line, input_lines, publish};
use crate::config::ValidConfig;
use crate::load;
use crate::model::ModelArtifact;
use crate::publish::{RunWriter, new_run_dir, point_latest};
use crate::score;
use crate::segments;

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Model artifact (model.json of a run or of `icp train`). Default: the
    /// active model, i.e. the last run approved with `icp approve`.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Accounts file to score (.csv or .parquet).
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
    #[arg(long, short)]
    pub quiet: bool,
}

/// Write scores, segment files and rejects; returns the counts for the manifest.
pub fn write_scoring(
    w: &mut RunWriter,
    scores: &DataFrame,
    rejects: &DataFrame,
    parquet: bool,
) -> anyhow::Result<Vec<(String, usize)>> {
    w.csv("scores.csv", scores)?;
    if parquet {
        w.parquet("scores.parquet", scores)?;
    }
    let mut counts = vec![("accounts_scored".to_string(), scores.height())];
    for (t, seg) in segments::segments(scores)? {
        counts.push((format!("score_gte_{t}"), seg.height()));
        w.csv(&segments::file_name(t), &seg)?;
    }
    for (b, n) in segments::band_counts(scores)? {
        counts.push((format!("band_{b}"), n));
    }
    w.csv_for_people("rejects.csv", rejects)?;
    counts.push(("rejects".into(), rejects.height()));
    Ok(counts)
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let model_path = crate::cmd::model_path(args.model.as_deref(), &args.reports)?;
    let artifact = ModelArtifact::read(&model_path)?;
    let cfg = match &args.config {
        Some(p) => ValidConfig::load(Some(p))?,
        None => artifact.config.clone(),
    };
    let stages = crate::progress::Stages::new("icp score", args.quiet);
    stages.start("load");
    let data = load::load_files(
        &args.accounts,
        None,
        None,
        None,
        &cfg,
        Some(&artifact.extra_column_kinds),
    )
    .with_context(|| format!("loading {}", args.accounts.display()))?;
    crate::cmd::require_accounts(&data)?;
    stages.start("score");
    stages.rows(data.accounts.df.height());
    let scores = score::score(&artifact, &data.accounts.df)
        .with_context(|| format!("scoring {}", args.accounts.display()))?;
    stages.start("publish");
    stages.rows(scores.height());
    let dest = match &args.out {
        Some(o) => o.clone(),
        None => new_run_dir(&args.reports, &format!("score-{}", artifact.model_id)),
    };
    let (dir, counts) = publish(
        &dest,
        "score",
        Some(artifact.model_id.clone()),
        data.inputs(),
        |w| write_scoring(w, &scores, &data.rejects, args.parquet),
    )?;
    if args.out.is_none() {
        point_latest(&args.reports, &dir)?;
    }
    stages.finish();
    if !args.quiet {
        println!("icp score: model {}", artifact.model_id);
        for l in input_lines(&data.inputs()) {
            println!("{l}");
        }
        println!("{}", band_line(&counts));
        println!("outputs: {}", dir.display());
    }
    Ok(())
}
