//! `icp approve`: people decide. Records who approved which run and their
//! decision on every exclude criterion, makes that run's model the active
//! one and publishes its scoring to `reports/published/`.

use std::path::PathBuf;

use crate::review::{self, ApproveRequest};

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// The run directory to approve (as printed by `icp run`), or its name
    /// under --reports (`latest` is the newest run).
    pub run: PathBuf,
    /// Who approves (recorded in the run's approval.json and the events
    /// log); repeat when several decide together.
    #[arg(long, required = true)]
    pub by: Vec<String>,
    /// Why, or under which conditions.
    #[arg(long)]
    pub note: Option<String>,
    /// An exclude criterion of the refined ICP (X01, X02, ...) not to
    /// publish; repeat for several. Other exclusions are supporting evidence
    /// and are never published.
    #[arg(long = "reject-exclusion", value_name = "ID")]
    pub reject_exclusion: Vec<String>,
    /// An exclude criterion to publish; every one must be accepted or
    /// rejected (a run is not approved with a criterion left undecided).
    #[arg(long = "accept-exclusion", value_name = "ID")]
    pub accept_exclusion: Vec<String>,
    /// Accept every exclude criterion not rejected with --reject-exclusion.
    #[arg(long)]
    pub accept_all_exclusions: bool,
    /// Where active.json and events.jsonl live.
    #[arg(long, default_value = "reports")]
    pub reports: PathBuf,
    #[arg(long, short)]
    pub quiet: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let done = review::approve(&ApproveRequest {
        reports: &args.reports,
        run: &args.run,
        by: &args.by,
        note: args.note.as_deref(),
        reject_exclusions: &args.reject_exclusion,
        accept_exclusions: &args.accept_exclusion,
        accept_all: args.accept_all_exclusions,
        now: chrono::Utc::now().to_rfc3339(),
    })?;
    let a = &done.approval;
    if !args.quiet {
        println!(
            "approved run {} (model {}) by {} at {}",
            a.run_id, a.model_id, a.approved_by, a.approved_at
        );
        if a.ready {
            println!(
                "exclusions published: {} ({} rejected) -> {}",
                if a.exclusions_approved.is_empty() {
                    "none".to_string()
                } else {
                    a.exclusions_approved.join(", ")
                },
                a.exclusions_rejected.len(),
                review::APPROVED_EXCLUSIONS
            );
        } else {
            println!("the run is NOT READY: its exclusions stay unpublished");
        }
        println!(
            "active model: {} (icp score uses it by default)",
            args.reports.join(review::ACTIVE).display()
        );
        match &done.publication {
            Some(p) => println!("{}", crate::cmd::common::publication_line(p)),
            None => {
                println!("nothing published: the run predates publications (re-run it to publish)")
            }
        }
    }
    Ok(())
}
