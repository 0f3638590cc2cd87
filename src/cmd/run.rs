//! `icp run`: the main job, from a CRM export on disk to segment files.

use std::path::PathBuf;

use anyhow::Context;

use crate::cmd::{DataArgs, band_line, input_lines, publish, read_truth, thousands};
use crate::load::{self, Need};
use crate::model::{self, ModelArtifact};
use crate::publish::{new_run_dir, point_latest};
use crate::score;

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub data: DataArgs,
    /// Write the run directory here instead of a new directory under --reports.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Where run directories go; `<reports>/latest` points at the newest run.
    #[arg(long, default_value = "reports")]
    pub reports: PathBuf,
    /// Also write scores.parquet.
    #[arg(long)]
    pub parquet: bool,
    /// Generator truth file (account_id, p_velocity_win_true): reports the
    /// oracle AUC on the same holdout deals. For synthetic data only.
    #[arg(long)]
    pub truth: Option<PathBuf>,
}

/// What a run produced, for callers and tests.
pub struct RunSummary {
    pub dir: PathBuf,
    pub artifact: ModelArtifact,
}

pub fn run(args: Args) -> anyhow::Result<RunSummary> {
    let cfg = args.data.config()?;
    let data = load::load_dir(&args.data.data, &cfg, Need::Training)?;
    let truth = args.truth.as_deref().map(read_truth).transpose()?;
    let trained = model::train(&data, &cfg, truth.as_ref()).with_context(|| {
        format!(
            "training on {} stopped ({} rows rejected; `icp validate --data {}` lists them)",
            args.data.data.display(),
            data.rejects.height(),
            args.data.data.display()
        )
    })?;
    let artifact = trained.artifact;
    let scores = score::score(&artifact, &data.accounts.df)?;
    let dest = match &args.out {
        Some(o) => o.clone(),
        None => new_run_dir(&args.reports, &artifact.model_id),
    };
    let (dir, counts) = publish(
        &dest,
        "run",
        Some(artifact.model_id.clone()),
        data.inputs(),
        |w| {
            w.json("model.json", &artifact)?;
            w.json("evaluation.json", &artifact.evaluation)?;
            crate::cmd::score::write_scoring(w, &scores, &data.rejects, args.parquet)
        },
    )?;
    if args.out.is_none() {
        point_latest(&args.reports, &dir)?;
    }
    if !args.data.quiet {
        print_summary(&dir, &artifact, &data.inputs(), &counts);
    }
    Ok(RunSummary { dir, artifact })
}

fn print_summary(
    dir: &std::path::Path,
    a: &ModelArtifact,
    inputs: &[load::InputFile],
    counts: &[(String, usize)],
) {
    let e = &a.evaluation;
    println!("icp run: model {}", a.model_id);
    for l in input_lines(inputs) {
        println!("{l}");
    }
    println!(
        "velocity window: {} days ({})",
        a.velocity_window.days, a.velocity_window.source
    );
    println!(
        "holdout: {} deals closed from {} ({} velocity wins, {} accounts never seen in training); trained on {} deals",
        thousands(e.holdout_deals),
        e.holdout_from,
        thousands(e.holdout_velocity_wins),
        thousands(e.holdout_accounts_unseen),
        thousands(e.train_deals)
    );
    println!(
        "holdout quality: AUC {:.3} (95% CI {:.3}-{:.3}), Brier {:.4} (base rate alone {:.4})",
        e.auc, e.auc_ci95.0, e.auc_ci95.1, e.brier, e.brier_base_rate
    );
    if let Some(o) = &e.oracle {
        println!(
            "oracle (true probabilities) on the same {} deals: AUC {:.3}; model {:.3}",
            thousands(o.deals),
            o.oracle_auc,
            o.model_auc
        );
        if let (Some(m), Some(t)) = (o.unseen_model_auc, o.unseen_oracle_auc) {
            println!(
                "  on the {} deals of accounts never seen in training: model {:.3}, oracle {:.3}",
                thousands(o.unseen_deals),
                m,
                t
            );
        }
    }
    println!("verdict: {}", e.verdict);
    println!("{}", band_line(counts));
    println!("outputs: {}", dir.display());
}
