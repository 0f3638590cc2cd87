//! `icp validate`: check a data directory and say whether it can train a model.

use std::path::PathBuf;

use polars::prelude::*;
use serde::Serialize;

use crate::cmd::common::{DataArgs, input_lines};
use crate::domain::Outcome;
use crate::io::load::{self, Need};
use crate::io::publish::RunWriter;
use crate::stages::label;
use crate::util::thousands;

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub data: DataArgs,
    /// Directory for rejects.csv, readiness.json and manifest.json.
    #[arg(long, default_value = "reports/validation")]
    pub out: PathBuf,
}

#[derive(Debug, Serialize)]
pub struct Readiness {
    pub ready_to_train: bool,
    pub problems: Vec<String>,
    pub closed_deals: usize,
    pub won: usize,
    pub lost: usize,
    pub churned: usize,
    pub open: usize,
    pub velocity_window_days: Option<i64>,
    pub velocity_wins: Option<usize>,
    pub holdout_from: Option<String>,
    pub has_customers: bool,
    pub has_triggers: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let cfg = args.data.config()?;
    // data that cannot give a right answer as it is (mostly unreadable
    // numbers or dates, many unmapped stages) is "not ready", exit 2
    let data = match load::load_dir(&args.data.data, &cfg, Need::Training) {
        Ok(d) => d,
        Err(e @ crate::error::IcpError::Data { .. }) => {
            return Err(anyhow::Error::new(crate::pipeline::NotReady).context(e.to_string()));
        }
        Err(e) => return Err(e.into()),
    };
    let r = readiness(&data, &cfg)?;
    let mut w = RunWriter::create(&args.out)?;
    w.csv_for_people("rejects.csv", &data.rejects)?;
    w.json("readiness.json", &r)?;
    let dir = w.finish(
        "validate",
        None,
        data.inputs(),
        vec![("rejects".into(), load::rejected_rows(&data.rejects))],
    )?;
    if !args.data.quiet {
        println!("icp validate: {}", args.data.data.display());
        for l in input_lines(&data.inputs()) {
            println!("{l}");
        }
        let report = crate::pipeline::LoadReport::of(&data)?;
        for l in report.lines(&data, crate::evidence::measure::newest_date(&data)) {
            println!("{l}");
        }
        println!(
            "closed deals: {} ({} won, {} lost, {} churned); {} open",
            thousands(r.closed_deals),
            thousands(r.won),
            thousands(r.lost),
            thousands(r.churned),
            thousands(r.open)
        );
        if let (Some(w), Some(v)) = (r.velocity_window_days, r.velocity_wins) {
            println!("velocity window: {w} days; {} velocity wins", thousands(v));
        }
        if r.ready_to_train {
            println!("ready to train: yes");
        } else {
            println!("ready to train: NO");
            for p in &r.problems {
                println!("  - {p}");
            }
        }
        println!("report: {}", dir.display());
    }
    if !r.ready_to_train {
        return Err(anyhow::Error::new(crate::pipeline::NotReady)
            .context("the problems are listed above and in readiness.json"));
    }
    Ok(())
}

/// What `readiness.json` says: the deals by outcome, and the problems that
/// keep the data from training (too few wins or other deals, before or in
/// the holdout, or no label at all).
fn readiness(data: &load::Dataset, cfg: &crate::config::ValidConfig) -> anyhow::Result<Readiness> {
    let opps = &data
        .opportunities
        .as_ref()
        .expect("training load has opportunities")
        .df;
    let count = |o: &str| -> anyhow::Result<usize> {
        Ok(opps
            .clone()
            .lazy()
            .filter(col("outcome").eq(lit(o)))
            .collect()?
            .height())
    };
    let (won, lost, churned, open) = (
        count(Outcome::Won.as_str())?,
        count(Outcome::Lost.as_str())?,
        count(Outcome::Churned.as_str())?,
        count(Outcome::Open.as_str())?,
    );
    let mut problems = Vec::new();
    let (mut window, mut wins, mut from) = (None, None, None);
    match label::label(data, cfg) {
        Ok(l) => {
            window = Some(l.window.days);
            wins = Some(l.df.column("label")?.bool()?.sum().unwrap_or(0) as usize);
            from = Some(l.cutoff.to_string());
            let ev = &cfg.evidence;
            let y: Vec<bool> = l.df.column("label")?.bool()?.no_null_iter().collect();
            let h: Vec<bool> = l.df.column("holdout")?.bool()?.no_null_iter().collect();
            let hp = y.iter().zip(&h).filter(|(y, h)| **y && **h).count();
            let tp = y.iter().filter(|b| **b).count() - hp;
            if tp < ev.min_train_positives {
                problems.push(format!(
                    "{tp} velocity wins before the holdout (need {})",
                    ev.min_train_positives
                ));
            }
            if l.n_train - tp < ev.min_train_negatives {
                problems.push(format!(
                    "{} other closed deals before the holdout (need {})",
                    l.n_train - tp,
                    ev.min_train_negatives
                ));
            }
            if hp < ev.min_holdout_per_class || l.n_holdout - hp < ev.min_holdout_per_class {
                let hint = match l.holdout_by {
                    crate::config::HoldoutBy::ClosedDate => format!(" {}", label::HOLDOUT_BY_HINT),
                    crate::config::HoldoutBy::CreatedDate => String::new(),
                };
                problems.push(format!(
                    "the holdout ({}) has {hp} velocity wins and {} other deals (need {} of each).{hint}",
                    l.holdout_words(),
                    l.n_holdout - hp,
                    ev.min_holdout_per_class
                ));
            }
        }
        Err(e) => problems.push(e.to_string()),
    }
    let r = Readiness {
        ready_to_train: problems.is_empty(),
        problems,
        closed_deals: won + lost + churned,
        won,
        lost,
        churned,
        open,
        velocity_window_days: window,
        velocity_wins: wins,
        holdout_from: from,
        has_customers: data.customers.is_some(),
        has_triggers: data.triggers.is_some(),
    };
    Ok(r)
}
