//! `icp run`: the main job, from a CRM export on disk to segment files.

use std::path::PathBuf;

use anyhow::Context;

use crate::cmd::{DataArgs, band_line, input_lines, publish, read_truth, thousands};
use crate::load::{self, Need};
use crate::model::{self, ModelArtifact};
use crate::progress::Stages;
use crate::publish::{new_run_dir, point_latest};
use crate::review::{self, RunFindings};
use crate::score;
use crate::segments;
use crate::signals;

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
    // a bad SOURCE_DATE_EPOCH stops the run before any work
    let run_date = crate::brief::run_date()?;
    let stages = Stages::new("icp run", args.data.quiet);
    stages.start("load");
    let data = load::load_dir(&args.data.data, &cfg, Need::Training)?;
    stages.rows(data.inputs().iter().map(|i| i.rows).sum());
    crate::cmd::require_accounts(&data, Some(args.data.command("validate")))?;
    let truth = args.truth.as_deref().map(read_truth).transpose()?;
    let trained = match model::train_staged(&data, &cfg, truth.as_ref(), &stages) {
        Ok(t) => t,
        // a pilot-size CRM: no model, but a brief a leader can read
        Err(crate::IcpError::NotEnoughEvidence(why)) => {
            return Err(pilot_run(&args, &cfg, &data, run_date, &why)?);
        }
        Err(e) => {
            return Err(anyhow::Error::new(e).context(format!(
                "training on {} stopped ({} rows rejected; `{}` lists them)",
                args.data.data.display(),
                load::rejected_rows(&data.rejects),
                args.data.command("validate")
            )));
        }
    };
    let artifact = trained.artifact;
    // the labelled deals joined with their accounts' columns served the fit
    // only: let them go before the signals stage, where memory peaks
    drop(trained.rows);
    stages.start("score");
    stages.rows(data.accounts.df.height());
    let (scores, scored) = score::score_by_row(&artifact, &data.accounts.df)?;
    let account_ids = crate::ids::text(&data.accounts.df, "account_id")?;
    let index = crate::ids::AccountIndex::new(&account_ids);
    stages.start("signals");
    stages.rows(data.accounts.df.height());
    let opportunities = data
        .opportunities
        .as_ref()
        .context("a training run has an opportunities table")?;
    // each account's CRM status, as the feed publishes it (the accounts'
    // own rows: the index was built from them)
    let crm = {
        let rows: Vec<Option<u32>> = (0..index.len() as u32).map(Some).collect();
        crate::feed::crm_status_by_row(
            &index,
            &rows,
            Some(&opportunities.df),
            data.customers.as_ref().map(|t| &t.df),
        )?
    };
    let findings = signals::analyse(
        &signals::Inputs {
            spec: &artifact.model.spec,
            accounts: &data.accounts.df,
            opportunities: &opportunities.df,
            customers: data.customers.as_ref().map(|t| &t.df),
            triggers: data.triggers.as_ref().map(|t| &t.df),
            labels: &trained.labels.df,
            window_days: artifact.velocity_window.days,
            evaluation: &artifact.evaluation,
            index: &index,
            scored: &scored,
            interviews: data.interviews.as_ref().map(|t| &t.df),
            crm: &crm,
        },
        &cfg.signals,
    )
    .context("computing the signals, exclusions and triggers")?;
    // What approving this run publishes, with its exclusions (withheld when
    // the run is not ready, as `icp approve` does)
    let preview = {
        let mut ids = Vec::new();
        let mut excluded_row = vec![false; index.len()];
        if findings.readiness.ready {
            for (id, mask) in &findings.exclude_masks {
                ids.push(id.clone());
                for r in mask.ones() {
                    if let Some(x) = excluded_row.get_mut(r) {
                        *x = true;
                    }
                }
            }
        }
        // each score row's account row (the scores are in their own order)
        let rows = index.rows_of(&scores, "account_id")?;
        let mut crm_of_scores = Vec::with_capacity(rows.len());
        let mut excluded = Vec::with_capacity(rows.len());
        for r in rows {
            let r = r.context("a scored account the accounts table does not hold")? as usize;
            crm_of_scores.push(crm[r]);
            excluded.push(excluded_row[r]);
        }
        crate::feed::preview(
            &scores,
            &crm_of_scores,
            &excluded,
            ids,
            &artifact.model_id,
            cfg.publish.audience,
            cfg.publish.control_share,
        )?
    };
    stages.start("segments");
    stages.rows(scores.height());
    let band_counts = segments::band_counts(&scores)?;
    let segment_counts: Vec<(u8, usize)> = segments::segments(&scores)?
        .into_iter()
        .map(|(t, s)| (t, s.height()))
        .collect();
    stages.start("brief");
    stages.rows(scores.height());
    // Compare with the model people approved last, if any.
    // A missing or unreadable earlier run skips the comparison, never the run.
    let changes = match review::active(&args.reports) {
        Ok(Some((_, dir))) => match review::diff(&dir, &findings.signals, &scores) {
            Ok(d) => Some(d),
            Err(e) => {
                eprintln!(
                    "warning: not comparing with the active run {} ({e}); the brief has no changes section",
                    dir.display()
                );
                None
            }
        },
        Ok(None) => None,
        Err(e) => {
            eprintln!("warning: cannot read the active model record ({e}); no comparison");
            None
        }
    };
    let change_blocks = changes.as_ref().map(|c| c.blocks());
    let dest = match &args.out {
        Some(o) => o.clone(),
        None => new_run_dir(&args.reports, &artifact.model_id),
    };
    let as_of = crate::outcomes::newest_date(&data);
    let report = crate::cmd::LoadReport::of(&data)?;
    let loaded_lines = report.lines(&data, as_of);
    let data_caveats = report.caveats();

    let earlier = match as_of {
        Some(d) => review::earlier_scorings(&args.reports, &dest, d, 4)?
            .iter()
            .map(|s| crate::outcomes::band_outcomes(s, d, &opportunities.df, &trained.labels.df))
            .collect::<crate::Result<Vec<_>>>()?,
        None => Vec::new(),
    };
    let control = match as_of {
        Some(d) => match review::earlier_control(&args.reports, d) {
            Ok(Some((t, c))) => Some(crate::outcomes::ControlComparison {
                publication_id: t.run_id.clone(),
                as_of: t.as_of.to_string(),
                targeted: crate::outcomes::band_outcomes(
                    &t,
                    d,
                    &opportunities.df,
                    &trained.labels.df,
                )?,
                control: crate::outcomes::band_outcomes(
                    &c,
                    d,
                    &opportunities.df,
                    &trained.labels.df,
                )?,
            }),
            Ok(None) => None,
            Err(e) => {
                eprintln!("warning: cannot read the earlier publications' control group ({e})");
                None
            }
        },
        None => None,
    };
    let bands_now = crate::outcomes::by_band_now(
        &index,
        &scored.band,
        &trained.labels.df,
        &opportunities.df,
        data.customers.as_ref().map(|t| &t.df),
        &crm,
    )?;
    let company = company_name(&args, &cfg);
    let brief = crate::brief::build(
        &crate::brief::BriefInput {
            artifact: &artifact,
            findings: &findings,
            band_counts: &band_counts,
            segment_counts: &segment_counts,
            rejected_rows: load::rejected_rows(&data.rejects),
            data_caveats: &data_caveats,
            changes: change_blocks.as_deref(),
            company: &company,
            run_date,
            as_of,
            params: &cfg.brief,
            bands_now: &bands_now,
            earlier: &earlier,
            control: control.as_ref(),
            preview: &preview,
            publish: &cfg.publish,
        },
        cfg.signals.min_fit_gap,
        cfg.signals.min_margin_gap,
    )?;
    stages.start("publish");
    stages.rows(scores.height());
    // Each account's CRM status and the ICP's exclude criteria it matches:
    // what `icp approve` publishes from, once it knows which are approved.
    let mut trace = crate::progress::Trace::start();
    let crm_frame = {
        // the exclude criteria each account matches, from the masks the
        // refined ICP was costed with (accounts in file order)
        let mut exc: Vec<String> = vec![String::new(); crm.len()];
        for (id, mask) in &findings.exclude_masks {
            for r in mask.ones() {
                if let Some(e) = exc.get_mut(r) {
                    if !e.is_empty() {
                        e.push(';');
                    }
                    e.push_str(id);
                }
            }
        }
        polars::prelude::DataFrame::new(
            crm.len(),
            vec![
                data.accounts.df.column("account_id")?.clone(),
                polars::prelude::Column::new(
                    "crm_status".into(),
                    crm.iter().map(|c| c.as_str()).collect::<Vec<_>>(),
                ),
                polars::prelude::Column::new("exclude_criteria".into(), exc),
            ],
        )?
    };
    trace.lap("publish: crm status and exclude criteria");
    // What publishing writes from is in hand: let the loaded tables, the
    // labels and the account index go (the score rows keep the id and name
    // text they share with the accounts), so the writing does not stack on
    // them.
    let inputs = data.inputs();
    let load::Dataset {
        accounts,
        opportunities: opportunity_table,
        customers,
        triggers,
        interviews,
        rejects,
        ..
    } = data;
    drop(index);
    drop((account_ids, scored, trained.labels));
    drop((accounts, opportunity_table, customers, triggers, interviews));
    crate::progress::release_free_memory();
    let about = About {
        company: company.clone(),
        run_date: run_date.to_string(),
        as_of: as_of.map(|d| d.to_string()),
        owners: cfg.brief.owners.clone(),
    };
    let (dir, counts) = publish(
        &dest,
        "run",
        Some(artifact.model_id.clone()),
        inputs.clone(),
        |w| {
            w.json("model.json", &artifact)?;
            w.json("evaluation.json", &artifact.evaluation)?;
            let mut counts =
                crate::cmd::score::write_scoring(w, &scores, &rejects, args.parquet, None)?;
            write_findings(
                w,
                &artifact,
                &findings,
                &brief,
                changes.as_ref(),
                &about,
                &preview,
            )?;
            w.csv(review::CRM_STATUS, &crm_frame)?;
            w.set_note(
                "proposal: nothing here is targeting until approved; a workflow engine reads reports/published/, written only by icp approve and icp score",
            );
            counts.push(("signals".into(), findings.signals.len()));
            counts.push(("exclusions_proposed".into(), findings.exclusions.len()));
            Ok(counts)
        },
    )?;
    if args.out.is_none() {
        point_latest(&args.reports, &dir)?;
    }
    let run_id = review::run_id_of(&dir)?;
    review::log_event(
        &args.reports,
        &serde_json::json!({
            "event": "run",
            "at": chrono::Utc::now().to_rfc3339(),
            "run_id": run_id,
            "run_dir": dir.display().to_string(),
            "model_id": artifact.model_id,
            "ready": findings.readiness.ready,
            "holdout_auc": artifact.evaluation.auc,
            "signals": findings.signals.len(),
            "exclusions_proposed": findings.exclusions.len(),
            "measurement": brief.measurement,
        }),
    )?;
    stages.finish();
    if !args.data.quiet {
        print_summary(&dir, &artifact, &inputs, &loaded_lines, &counts);
        println!(
            "brief: {} ({}; refined ICP: {} include and {} exclude criteria{}, from {} best-fit signals and {} exclusions)",
            dir.join("brief.html").display(),
            if findings.readiness.ready {
                "ready for review"
            } else {
                "NOT READY"
            },
            findings.icp.include.len(),
            findings.icp.exclude.len(),
            if findings.readiness.ready {
                ""
            } else {
                " withheld"
            },
            findings.signals.len(),
            findings.exclusions.len(),
        );
        // the user's own --reports, so the command runs as printed
        let reports = if args.reports == std::path::Path::new("reports") {
            String::new()
        } else {
            format!(" --reports {}", crate::cmd::shell_quoted(&args.reports))
        };
        println!(
            "review: icp approve {} --by NAME --accept-all-exclusions{reports}   (or --accept-exclusion / --reject-exclusion ID for each; makes this model the active one and publishes)",
            dir.display()
        );
    }
    Ok(RunSummary { dir, artifact })
}

/// Who and when a run's findings are about.
struct About {
    company: String,
    run_date: String,
    as_of: Option<String>,
    owners: crate::config::Owners,
}

/// The evidence files beside the brief.
fn write_findings(
    w: &mut crate::publish::RunWriter,
    artifact: &ModelArtifact,
    f: &signals::Findings,
    brief: &crate::brief::Brief,
    changes: Option<&review::RunDiff>,
    about: &About,
    preview: &crate::feed::Preview,
) -> anyhow::Result<()> {
    w.text("brief.md", &brief.markdown)?;
    w.text("brief.html", &brief.html)?;
    w.json(
        review::FINDINGS,
        &RunFindings {
            model_id: artifact.model_id.clone(),
            readiness: f.readiness.clone(),
            signals: f.signals.clone(),
            exclusions: f.exclusions.clone(),
            icp: Some(f.icp.clone()),
            company: Some(about.company.clone()),
            run_date: Some(about.run_date.clone()),
            as_of: about.as_of.clone(),
            owners: Some(about.owners.clone()),
            triggers: f.triggers.clone(),
            painful: Some(f.painful.clone()),
            preview: Some(preview.clone()),
        },
    )?;
    w.json(
        "signals.json",
        &serde_json::json!({ "baseline": f.baseline, "params": f.signal_params,
            "tested_conditions": f.tested_conditions, "below_support": f.below_support,
            "signals": f.signals }),
    )?;
    w.csv_for_people("signals.csv", &signals::findings_frame(&f.signals)?)?;
    w.json(
        "exclusions.json",
        &serde_json::json!({
            "status": if f.readiness.ready { "proposed: awaiting approval" } else { "withheld: run NOT READY" },
            "exclusions": f.exclusions }),
    )?;
    w.csv_for_people("exclusions.csv", &signals::findings_frame(&f.exclusions)?)?;
    if f.readiness.ready {
        w.csv_for_people("exclusion_matches.csv", &f.exclusion_matches)?;
    }
    w.csv_for_people("finding_accounts.csv", &f.finding_accounts)?;
    w.csv_for_people("painful_customers.csv", &f.painful_accounts)?;
    w.csv_for_people("best_customers.csv", &f.best_accounts)?;
    w.json("icp.json", &f.icp)?;
    w.json("painful.json", &f.painful)?;
    w.json("triggers.json", &f.triggers)?;
    w.json("measurement.json", &brief.measurement)?;
    if let Some(c) = changes {
        w.json("changes.json", c)?;
    }
    Ok(())
}

/// Which account columns the model reads, and which it does not and why:
/// a leaked or people column must be visible where the user looks first.
pub fn feature_lines(spec: &crate::features::FeatureSpec) -> Vec<String> {
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

/// Too little evidence to train: write the pilot brief (NOT READY) into a
/// run directory and return the not-ready error the exit status carries.
fn pilot_run(
    args: &Args,
    cfg: &crate::config::ValidConfig,
    data: &load::Dataset,
    run_date: chrono::NaiveDate,
    why: &str,
) -> anyhow::Result<anyhow::Error> {
    let company = company_name(args, cfg);
    let pilot = crate::brief::pilot::compare(data, why)?;
    let (md, html) = crate::brief::pilot::render(&pilot, &company, run_date, &cfg.signals);
    let dest = match &args.out {
        Some(o) => o.clone(),
        None => new_run_dir(&args.reports, "pilot"),
    };
    let (dir, _) = publish(&dest, "pilot", None, data.inputs(), |w| {
        w.text("brief.md", &md)?;
        w.text("brief.html", &html)?;
        w.json("pilot.json", &pilot)?;
        w.csv_for_people("rejects.csv", &data.rejects)?;
        w.set_note(
            "pilot brief: not enough evidence to train; no model, no criterion, nothing to approve",
        );
        Ok(vec![
            ("best_customers".into(), pilot.best.len()),
            ("poor_fit_customers".into(), pilot.poor_fit.len()),
            ("recent_lost".into(), pilot.recent_lost.len()),
        ])
    })?;
    if !args.data.quiet {
        println!("icp run: NOT READY: not enough evidence to train: {why}");
        for l in input_lines(&data.inputs()) {
            println!("{l}");
        }
        println!(
            "no model trained or published, no criterion proposed; pilot brief (best customers beside poor fits and recent losses): {}",
            dir.join("brief.html").display()
        );
    }
    Ok(anyhow::Error::new(crate::cmd::NotReady).context(format!(
        "not enough evidence to train: {why}; the pilot brief is {} (`{}` lists what is missing)",
        dir.join("brief.md").display(),
        args.data.command("validate")
    )))
}

/// The company's name for titles: the config's, else the data folder's.
fn company_name(args: &Args, cfg: &crate::config::ValidConfig) -> String {
    cfg.brief.company.clone().unwrap_or_else(|| {
        args.data
            .data
            .canonicalize()
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().to_string()))
            .map(|n| {
                // the directory's name as a title: "sample" reads "Sample"
                let mut c = n.chars();
                c.next()
                    .map(|f| f.to_uppercase().chain(c).collect())
                    .unwrap_or(n)
            })
            .unwrap_or_else(|| args.data.data.display().to_string())
    })
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
