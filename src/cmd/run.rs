//! `icp run`: the main job, from a CRM export on disk to segment files.

use std::path::PathBuf;

use crate::cmd::common::{DataArgs, band_line, input_lines};
use crate::io::load;
use crate::pipeline::{
    self,
    run::{Outcome, PilotSummary, RunRequest},
};
use crate::stages::model::ModelArtifact;
use crate::util::thousands;

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

pub fn run(args: Args) -> anyhow::Result<()> {
    let cfg = args.data.config()?;
    let outcome = pipeline::run::run(&RunRequest {
        data: &args.data.data,
        cfg: &cfg,
        out: args.out.as_deref(),
        reports: &args.reports,
        parquet: args.parquet,
        truth: args.truth.as_deref(),
        quiet: args.data.quiet,
        validate_command: args.data.command("validate"),
    })?;
    let s = match outcome {
        Outcome::Run(s) => s,
        Outcome::Pilot(p) => return Err(not_ready(&args, &p)),
    };
    if args.data.quiet {
        return Ok(());
    }
    print_summary(&s.dir, &s.artifact, &s.inputs, &s.loaded_lines, &s.counts);
    println!(
        "brief: {} ({}; refined ICP: {} include and {} exclude criteria{}, from {} best-fit signals and {} exclusions)",
        s.dir.join("brief.html").display(),
        if s.ready {
            "ready for review"
        } else {
            "NOT READY"
        },
        s.criteria.0,
        s.criteria.1,
        if s.ready { "" } else { " withheld" },
        s.signals,
        s.exclusions,
    );
    // the user's own --reports, so the command runs as printed
    let reports = if args.reports == std::path::Path::new("reports") {
        String::new()
    } else {
        format!(
            " --reports {}",
            crate::cmd::common::shell_quoted(&args.reports)
        )
    };
    println!(
        "review: icp approve {} --by NAME --accept-all-exclusions{reports}   (or --accept-exclusion / --reject-exclusion ID for each; makes this model the active one and publishes)",
        s.dir.display()
    );
    Ok(())
}

/// Which account columns the model reads, and which it does not and why:
/// a leaked or people column must be visible where the user looks first.
fn feature_lines(spec: &crate::stages::features::FeatureSpec) -> Vec<String> {
    let used: Vec<String> = spec
        .variables
        .iter()
        .map(|v| v.column().to_string())
        .collect();
    let mut out = vec![format!("features: {}", used.join(", "))];
    if !spec.skipped.is_empty() {
        out.push(format!(
            "not features ({} {}; the reasons are in the brief and model.json):",
            spec.skipped.len(),
            if spec.skipped.len() == 1 {
                "column"
            } else {
                "columns"
            }
        ));
        for (c, why) in &spec.skipped {
            out.push(format!("  {c}: {why}"));
        }
    }
    out
}

/// A pilot-size CRM: say where the pilot brief is, and return the
/// not-ready error the exit status carries.
fn not_ready(args: &Args, p: &PilotSummary) -> anyhow::Error {
    if !args.data.quiet {
        println!(
            "icp run: NOT READY: not enough evidence to train: {}",
            p.why
        );
        for l in input_lines(&p.inputs) {
            println!("{l}");
        }
        println!(
            "no model trained or published, no criterion proposed; pilot brief (best customers beside poor fits and recent losses): {}",
            p.dir.join("brief.html").display()
        );
    }
    anyhow::Error::new(crate::pipeline::NotReady).context(format!(
        "not enough evidence to train: {}; the pilot brief is {} (`{}` lists what is missing)",
        p.why,
        p.dir.join("brief.md").display(),
        args.data.command("validate")
    ))
}

fn print_summary(
    dir: &std::path::Path,
    a: &ModelArtifact,
    inputs: &[load::InputFile],
    loaded: &[String],
    counts: &[(String, usize)],
) {
    let e = &a.evaluation;
    println!("icp run: model {}", a.model_id);
    for l in input_lines(inputs).iter().chain(loaded) {
        println!("{l}");
    }
    for l in feature_lines(&a.model.spec) {
        println!("{l}");
    }
    println!(
        "velocity window: {} days ({})",
        a.velocity_window.days, a.velocity_window.source
    );
    println!(
        "holdout: {} deals {} from {}{} ({} velocity wins, {} accounts never seen in training); trained on {} deals{}",
        thousands(e.holdout_deals),
        e.holdout_by.verb(),
        e.holdout_from,
        e.holdout_to
            .as_ref()
            .map(|t| format!(" to {t}"))
            .unwrap_or_default(),
        thousands(e.holdout_velocity_wins),
        thousands(e.holdout_accounts_unseen),
        thousands(e.train_deals),
        match &e.holdout_to {
            Some(to) => format!(
                "; left out: {} deals created after {to} (too recent to have closed) and {} still open",
                thousands(e.holdout_left_recent),
                thousands(e.holdout_left_open)
            ),
            None => String::new(),
        }
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
