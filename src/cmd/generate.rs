//! `icp generate`: a synthetic CRM with a documented ground truth.

use std::path::PathBuf;

use crate::io::synth::{self, Format};

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Number of accounts (about half get opportunities).
    #[arg(long, default_value_t = 5000)]
    pub accounts: usize,
    /// Seed: the same seed gives byte-identical files.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Data directory to write accounts, opportunities, customers, triggers and interviews to.
    #[arg(long)]
    pub out: PathBuf,
    /// Where to write each account's true probability of a velocity win
    /// (kept out of the data directory); default: <out>_truth.csv beside it.
    #[arg(long)]
    pub truth: Option<PathBuf>,
    /// Also write the wide CRM's account columns (region, tech_stack,
    /// multi_location, has_ops_owner) with their planted effects: a strong,
    /// specific poor fit and a broad, weak one (README, "The synthetic
    /// ground truth").
    #[arg(long)]
    pub wide: bool,
    #[arg(long, value_enum, default_value_t = Format::Csv)]
    pub format: Format,
    #[arg(long, short)]
    pub quiet: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let truth = args.truth.clone().unwrap_or_else(|| {
        let name = args
            .out
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "data".into());
        args.out.with_file_name(format!("{name}_truth.csv"))
    });
    if truth.starts_with(&args.out) {
        anyhow::bail!(
            "--truth {} is inside --out {}: the truth must stay out of the data directory the pipeline reads",
            truth.display(),
            args.out.display()
        );
    }
    let s = synth::generate_shaped(args.accounts, args.seed, args.wide)?;
    synth::write(&s, &args.out, &truth, args.format)?;
    if !args.quiet {
        println!(
            "icp generate: {} accounts, {} opportunities, {} customers, {} triggers, {} interviews -> {}",
            s.accounts.height(),
            s.opportunities.height(),
            s.customers.height(),
            s.triggers.height(),
            s.interviews.height(),
            args.out.display()
        );
        println!(
            "truth (velocity window {} days): {}",
            s.window_days,
            truth.display()
        );
    }
    Ok(())
}
