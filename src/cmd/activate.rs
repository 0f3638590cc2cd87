//! `icp activate`: roll back to an earlier approved run's model.

use std::path::PathBuf;

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// An approved run directory, or its name under --reports.
    pub run: PathBuf,
    /// Who decides (recorded in the events log).
    #[arg(long)]
    pub by: String,
    /// Why.
    #[arg(long)]
    pub note: Option<String>,
    /// Where active.json, active/ and events.jsonl live.
    #[arg(long, default_value = "reports")]
    pub reports: PathBuf,
    #[arg(long, short)]
    pub quiet: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let a = crate::review::activate(
        &args.reports,
        &args.run,
        &args.by,
        args.note.as_deref(),
        &chrono::Utc::now().to_rfc3339(),
    )?;
    if !args.quiet {
        println!(
            "active model: {} of run {} (approved by {} at {}); the next icp score --data publishes with it",
            a.model_id, a.run_id, a.approved_by, a.approved_at
        );
    }
    Ok(())
}
