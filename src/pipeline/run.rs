//! One run (`icp run`): load and check, train with a time-based holdout,
//! score every account, gather the evidence, write the brief and the run
//! directory, log the event. Too little evidence to train gives a pilot
//! brief instead.

use std::path::{Path, PathBuf};

use anyhow::Context;
use polars::prelude::*;

use super::{LoadReport, publish};
use crate::config::ValidConfig;
use crate::domain::CrmStatus;
use crate::evidence::{self, Findings};
use crate::io::load::{self, Dataset, InputFile, Need};
use crate::io::publish::{RunWriter, new_run_dir, point_latest};
use crate::report::brief::{self, Brief};
use crate::review::{self, EXCLUSION_MATCHES, FINDING_ACCOUNTS, RunDiff, RunFindings};
use crate::stages::model::{self, ModelArtifact};
use crate::stages::score::{self, ByRow};
use crate::stages::segments;
use crate::util::ids::AccountIndex;
use crate::util::progress::{Stages, Trace};

/// What a run is asked to do, already checked.
pub struct RunRequest<'a> {
    /// the data directory
    pub data: &'a Path,
    pub cfg: &'a ValidConfig,
    /// the run directory; by default a new one under `reports`
    pub out: Option<&'a Path>,
    pub reports: &'a Path,
    /// also write scores.parquet
    pub parquet: bool,
    /// the generator's truth file (synthetic data only), for the oracle AUC
    pub truth: Option<&'a Path>,
    pub quiet: bool,
    /// the command that lists the rejects, with the user's own options
    pub validate_command: String,
}

/// A run's result: a run directory to review, or a pilot brief.
pub enum Outcome {
    Run(Box<RunSummary>),
    Pilot(PilotSummary),
}

/// What a run produced, for the summary a person reads.
pub struct RunSummary {
    pub dir: PathBuf,
    pub artifact: ModelArtifact,
    pub inputs: Vec<InputFile>,
    /// what the loader did beyond using and rejecting rows
    pub loaded_lines: Vec<String>,
    /// the manifest's counts
    pub counts: Vec<(String, usize)>,
    pub ready: bool,
    /// include and exclude criteria of the refined ICP
    pub criteria: (usize, usize),
    pub signals: usize,
    pub exclusions: usize,
}

/// Too little evidence to train: where the pilot brief went, and why.
pub struct PilotSummary {
    pub dir: PathBuf,
    pub why: String,
    pub inputs: Vec<InputFile>,
}

/// The scored accounts and what they are matched with, by account row.
struct Scored<'a> {
    scores: DataFrame,
    by_row: ByRow,
    index: AccountIndex<'a>,
    /// each account's CRM status, as the feed publishes it
    crm: Vec<CrmStatus>,
}

pub fn run(req: &RunRequest) -> anyhow::Result<Outcome> {
    // a bad SOURCE_DATE_EPOCH stops the run before any work
    let run_date = brief::run_date()?;
    let stages = Stages::new("icp run", req.quiet);
    stages.start("load");
    let data = load::load_dir(req.data, req.cfg, Need::Training)?;
    stages.rows(data.inputs().iter().map(|i| i.rows).sum());
    super::require_accounts(&data, Some(req.validate_command.clone()))?;
    let truth = req.truth.map(crate::io::synth::read_truth).transpose()?;
    let trained = match model::train_staged(&data, req.cfg, truth.as_ref(), &stages) {
        Ok(t) => t,
        // a pilot-size CRM: no model, but a brief a leader can read
        Err(crate::error::IcpError::NotEnoughEvidence(why)) => {
            return Ok(Outcome::Pilot(pilot(req, &data, run_date, why)?));
        }
        Err(e) => {
            return Err(anyhow::Error::new(e).context(format!(
                "training on {} stopped ({} rows rejected; `{}` lists them)",
                req.data.display(),
                load::rejected_rows(&data.rejects),
                req.validate_command
            )));
        }
    };
    let artifact = trained.artifact;
    // the labelled deals joined with their accounts' columns served the fit
    // only: let them go before the signals stage, where memory peaks
    drop(trained.rows);
    let labels = trained.labels.df;
    stages.start("score");
    stages.rows(data.accounts.df.height());
    let account_ids = crate::util::ids::text(&data.accounts.df, "account_id")?;
    let scored = score_accounts(&artifact, &data, &account_ids, &stages)?;
    let findings = analyse(req.cfg, &artifact, &data, &labels, &scored)?;
    let preview = preview(req.cfg, &artifact, &findings, &scored)?;
    let Draft {
        brief,
        changes,
        dest,
        as_of,
        loaded_lines,
        company,
        measured,
    } = draft(
        req,
        run_date,
        &stages,
        &Analysed {
            data: &data,
            artifact: &artifact,
            findings: &findings,
            labels: &labels,
            scored: &scored,
            preview: &preview,
        },
    )?;
    stages.start("publish");
    stages.rows(scored.scores.height());
    let mut trace = Trace::start();
    let crm_frame = crm_frame(&data.accounts.df, &scored.crm, &findings)?;
    trace.lap("publish: crm status and exclude criteria");
    let inputs = data.inputs();
    let (scores, rejects) = keep_for_writing(data, scored);
    drop((labels, measured, account_ids));
    crate::util::progress::release_free_memory();
    let about = About {
        company,
        run_date: run_date.to_string(),
        as_of: as_of.map(|d| d.to_string()),
        owners: req.cfg.brief.owners.clone(),
    };
    let written = RunFiles {
        artifact: &artifact,
        findings: &findings,
        brief: &brief,
        changes: changes.as_ref(),
        about: &about,
        preview: &preview,
        scores: &scores,
        rejects: &rejects,
        crm_frame: &crm_frame,
        parquet: req.parquet,
    };
    let (dir, counts) = publish(
        &dest,
        "run",
        Some(artifact.model_id.clone()),
        inputs.clone(),
        |w| written.write(w),
    )?;
    if req.out.is_none() {
        point_latest(req.reports, &dir)?;
    }
    log_run(req.reports, &dir, &artifact, &findings, &brief)?;
    stages.finish();
    Ok(Outcome::Run(Box::new(RunSummary {
        dir,
        inputs,
        loaded_lines,
        counts,
        ready: findings.readiness.ready,
        criteria: (findings.icp.include.len(), findings.icp.exclude.len()),
        signals: findings.signals.len(),
        exclusions: findings.exclusions.len(),
        artifact,
    })))
}

/// What the brief is written from, once the evidence is in.
struct Analysed<'a> {
    data: &'a Dataset,
    artifact: &'a ModelArtifact,
    findings: &'a Findings,
    labels: &'a DataFrame,
    scored: &'a Scored<'a>,
    preview: &'a crate::feed::Preview,
}

/// The brief and what a run's summary says beside it.
struct Draft {
    brief: Brief,
    changes: Option<RunDiff>,
    /// the run directory to write
    dest: PathBuf,
    as_of: Option<chrono::NaiveDate>,
    loaded_lines: Vec<String>,
    company: String,
    measured: Measured,
}

/// Count the bands and segments, compare with the active run, measure
/// earlier scorings, and write the brief.
fn draft(
    req: &RunRequest,
    run_date: chrono::NaiveDate,
    stages: &Stages,
    a: &Analysed,
) -> anyhow::Result<Draft> {
    let (data, scored) = (a.data, a.scored);
    stages.start("segments");
    stages.rows(scored.scores.height());
    let band_counts = segments::band_counts(&scored.scores)?;
    let segment_counts: Vec<(u8, usize)> = segments::segments(&scored.scores)?
        .into_iter()
        .map(|(t, s)| (t, s.height()))
        .collect();
    stages.start("brief");
    stages.rows(scored.scores.height());
    let changes = compare_with_active(req.reports, a.findings, &scored.scores);
    let dest = match req.out {
        Some(o) => o.to_path_buf(),
        None => new_run_dir(req.reports, &a.artifact.model_id),
    };
    let as_of = crate::evidence::measure::newest_date(data);
    let report = LoadReport::of(data)?;
    let loaded_lines = report.lines(data, as_of);
    let measured = measure(req.reports, &dest, as_of, data, a.labels, scored)?;
    let company = company_name(req.data, req.cfg);
    let brief = brief::build(
        &brief::BriefInput {
            artifact: a.artifact,
            findings: a.findings,
            band_counts: &band_counts,
            segment_counts: &segment_counts,
            rejected_rows: load::rejected_rows(&data.rejects),
            data_caveats: &report.caveats(),
            changes: changes.as_ref().map(|c| c.blocks()).as_deref(),
            company: &company,
            run_date,
            as_of,
            params: &req.cfg.brief,
            bands_now: &measured.bands_now,
            earlier: &measured.earlier,
            control: measured.control.as_ref(),
            preview: a.preview,
            publish: &req.cfg.publish,
        },
        req.cfg.signals.min_fit_gap,
        req.cfg.signals.min_margin_gap,
    )?;
    Ok(Draft {
        brief,
        changes,
        dest,
        as_of,
        loaded_lines,
        company,
        measured,
    })
}

/// The deals of a training run (the loader requires them for training).
fn opportunities(data: &Dataset) -> anyhow::Result<&DataFrame> {
    Ok(&data
        .opportunities
        .as_ref()
        .context("a training run has an opportunities table")?
        .df)
}

/// Score every account and index the accounts by row (the "score" stage),
/// then find each one's CRM status (the accounts' own rows: the index was
/// built from them), the first step of the "signals" stage.
fn score_accounts<'a>(
    artifact: &ModelArtifact,
    data: &Dataset,
    account_ids: &'a StringChunked,
    stages: &Stages,
) -> anyhow::Result<Scored<'a>> {
    let (scores, by_row) = score::score_by_row(artifact, &data.accounts.df)?;
    let index = AccountIndex::new(account_ids);
    stages.start("signals");
    stages.rows(data.accounts.df.height());
    let rows: Vec<Option<u32>> = (0..index.len() as u32).map(Some).collect();
    let crm = crate::feed::crm_status_by_row(
        &index,
        &rows,
        Some(opportunities(data)?),
        data.customers.as_ref().map(|t| &t.df),
    )?;
    Ok(Scored {
        scores,
        by_row,
        index,
        crm,
    })
}

/// The signals, exclusions, triggers, painful customers, readiness and the
/// refined ICP.
fn analyse(
    cfg: &ValidConfig,
    artifact: &ModelArtifact,
    data: &Dataset,
    labels: &DataFrame,
    scored: &Scored,
) -> anyhow::Result<Findings> {
    evidence::analyse(
        &evidence::Inputs {
            spec: &artifact.model.spec,
            accounts: &data.accounts.df,
            opportunities: opportunities(data)?,
            customers: data.customers.as_ref().map(|t| &t.df),
            triggers: data.triggers.as_ref().map(|t| &t.df),
            labels,
            window_days: artifact.velocity_window.days,
            evaluation: &artifact.evaluation,
            index: &scored.index,
            scored: &scored.by_row,
            interviews: data.interviews.as_ref().map(|t| &t.df),
            crm: &scored.crm,
            between_steps: crate::util::progress::release_free_memory,
        },
        &cfg.signals,
    )
    .context("computing the signals, exclusions and triggers")
}

/// What approving this run publishes, with its exclusions (withheld when
/// the run is not ready, as `icp approve` does).
fn preview(
    cfg: &ValidConfig,
    artifact: &ModelArtifact,
    findings: &Findings,
    scored: &Scored,
) -> anyhow::Result<crate::feed::Preview> {
    let mut ids = Vec::new();
    let mut excluded_row = vec![false; scored.index.len()];
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
    let rows = scored.index.rows_of(&scored.scores, "account_id")?;
    let mut crm_of_scores = Vec::with_capacity(rows.len());
    let mut excluded = Vec::with_capacity(rows.len());
    for r in rows {
        let r = r.context("a scored account the accounts table does not hold")? as usize;
        crm_of_scores.push(scored.crm[r]);
        excluded.push(excluded_row[r]);
    }
    Ok(crate::feed::preview(
        &scored.scores,
        &crm_of_scores,
        &excluded,
        ids,
        &artifact.model_id,
        cfg.publish.audience,
        cfg.publish.control_share,
    )?)
}

/// Compare with the model people approved last, if any. A missing or
/// unreadable earlier run skips the comparison, never the run.
fn compare_with_active(reports: &Path, findings: &Findings, scores: &DataFrame) -> Option<RunDiff> {
    match review::active(reports) {
        Ok(Some((_, dir))) => match review::diff(&dir, &findings.signals, scores) {
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
    }
}

/// How earlier scorings and their control group turned out, and where
/// each band stands today.
struct Measured {
    earlier: Vec<crate::evidence::measure::ScoringOutcomes>,
    control: Option<crate::evidence::measure::ControlComparison>,
    bands_now: Vec<crate::evidence::measure::BandNow>,
}

fn measure(
    reports: &Path,
    dest: &Path,
    as_of: Option<chrono::NaiveDate>,
    data: &Dataset,
    labels: &DataFrame,
    scored: &Scored,
) -> anyhow::Result<Measured> {
    use crate::evidence::measure::{self, ControlComparison};
    let opportunities = opportunities(data)?;
    let earlier = match as_of {
        Some(d) => review::earlier_scorings(reports, dest, d, 4)?
            .iter()
            .map(|s| measure::band_outcomes(s, d, opportunities, labels))
            .collect::<crate::error::Result<Vec<_>>>()?,
        None => Vec::new(),
    };
    let control = match as_of {
        Some(d) => match review::earlier_control(reports, d) {
            Ok(Some((t, c))) => Some(ControlComparison {
                publication_id: t.run_id.clone(),
                as_of: t.as_of.to_string(),
                targeted: measure::band_outcomes(&t, d, opportunities, labels)?,
                control: measure::band_outcomes(&c, d, opportunities, labels)?,
            }),
            Ok(None) => None,
            Err(e) => {
                eprintln!("warning: cannot read the earlier publications' control group ({e})");
                None
            }
        },
        None => None,
    };
    let bands_now = measure::by_band_now(
        &scored.index,
        &scored.by_row.band,
        labels,
        opportunities,
        data.customers.as_ref().map(|t| &t.df),
        &scored.crm,
    )?;
    Ok(Measured {
        earlier,
        control,
        bands_now,
    })
}

/// Each account's CRM status and the ICP's exclude criteria it matches,
/// from the masks the refined ICP was costed with (accounts in file order):
/// what `icp approve` publishes from, once it knows which are approved.
fn crm_frame(
    accounts: &DataFrame,
    crm: &[CrmStatus],
    findings: &Findings,
) -> anyhow::Result<DataFrame> {
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
    Ok(DataFrame::new(
        crm.len(),
        vec![
            accounts.column("account_id")?.clone(),
            Column::new(
                "crm_status".into(),
                crm.iter().map(|c| c.as_str()).collect::<Vec<_>>(),
            ),
            Column::new("exclude_criteria".into(), exc),
        ],
    )?)
}

/// What publishing writes from is in hand: let the loaded tables, the
/// labels and the account index go (the score rows keep the id and name
/// text they share with the accounts), so the writing does not stack on
/// them. Returns the scores and the rejects.
fn keep_for_writing(data: Dataset, scored: Scored) -> (DataFrame, DataFrame) {
    let Scored {
        scores,
        by_row,
        index,
        crm,
    } = scored;
    let Dataset {
        accounts,
        opportunities,
        customers,
        triggers,
        interviews,
        rejects,
        ..
    } = data;
    drop((by_row, index, crm));
    drop((accounts, opportunities, customers, triggers, interviews));
    (scores, rejects)
}

/// Who and when a run's findings are about.
struct About {
    company: String,
    run_date: String,
    as_of: Option<String>,
    owners: crate::config::Owners,
}

/// Everything a run directory holds beside its manifest.
struct RunFiles<'a> {
    artifact: &'a ModelArtifact,
    findings: &'a Findings,
    brief: &'a Brief,
    changes: Option<&'a RunDiff>,
    about: &'a About,
    preview: &'a crate::feed::Preview,
    scores: &'a DataFrame,
    rejects: &'a DataFrame,
    crm_frame: &'a DataFrame,
    parquet: bool,
}

impl RunFiles<'_> {
    /// Write them; returns the manifest's counts.
    fn write(&self, w: &mut RunWriter) -> anyhow::Result<Vec<(String, usize)>> {
        let f = self.findings;
        w.json("model.json", self.artifact)?;
        w.json("evaluation.json", &self.artifact.evaluation)?;
        let mut counts =
            super::score::write_scoring(w, self.scores, self.rejects, self.parquet, None)?;
        self.write_findings(w)?;
        w.csv(review::CRM_STATUS, self.crm_frame)?;
        w.set_note(
            "proposal: nothing here is targeting until approved; a workflow engine reads reports/published/, written only by icp approve and icp score",
        );
        counts.push(("signals".into(), f.signals.len()));
        counts.push(("exclusions_proposed".into(), f.exclusions.len()));
        Ok(counts)
    }

    /// The evidence files beside the brief.
    fn write_findings(&self, w: &mut RunWriter) -> anyhow::Result<()> {
        let (f, about, brief) = (self.findings, self.about, self.brief);
        w.text("brief.md", &brief.markdown)?;
        w.text("brief.html", &brief.html)?;
        w.json(
            review::FINDINGS,
            &RunFindings {
                model_id: self.artifact.model_id.clone(),
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
                preview: Some(self.preview.clone()),
            },
        )?;
        w.json(
            "signals.json",
            &serde_json::json!({ "baseline": f.baseline, "params": f.signal_params,
                "tested_conditions": f.tested_conditions, "below_support": f.below_support,
                "signals": f.signals }),
        )?;
        let frame = crate::evidence::signals::findings_frame;
        w.csv_for_people("signals.csv", &frame(&f.signals)?)?;
        w.json(
            "exclusions.json",
            &serde_json::json!({
                "status": if f.readiness.ready { "proposed: awaiting approval" } else { "withheld: run NOT READY" },
                "exclusions": f.exclusions }),
        )?;
        w.csv_for_people("exclusions.csv", &frame(&f.exclusions)?)?;
        // membership rows, millions at scale, for analysts and `icp
        // approve`: Parquet (ids and conditions dictionary-encoded), values
        // exact
        if f.readiness.ready {
            w.parquet(EXCLUSION_MATCHES, &f.exclusion_matches)?;
        }
        w.parquet(FINDING_ACCOUNTS, &f.finding_accounts)?;
        w.csv_for_people("painful_customers.csv", &f.painful_accounts)?;
        w.csv_for_people("best_customers.csv", &f.best_accounts)?;
        w.json("icp.json", &f.icp)?;
        w.json("painful.json", &f.painful)?;
        w.json("triggers.json", &f.triggers)?;
        w.json("measurement.json", &brief.measurement)?;
        if let Some(c) = self.changes {
            w.json("changes.json", c)?;
        }
        Ok(())
    }
}

/// The run's line in the events log.
fn log_run(
    reports: &Path,
    dir: &Path,
    artifact: &ModelArtifact,
    findings: &Findings,
    brief: &Brief,
) -> anyhow::Result<()> {
    let run_id = crate::io::publish::run_id_of(dir)?;
    review::log_event(
        reports,
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
    Ok(())
}

/// Too little evidence to train: write the pilot brief (NOT READY) into a
/// run directory.
fn pilot(
    req: &RunRequest,
    data: &Dataset,
    run_date: chrono::NaiveDate,
    why: String,
) -> anyhow::Result<PilotSummary> {
    let company = company_name(req.data, req.cfg);
    let pilot = brief::pilot::compare(data, &why)?;
    let (md, html) = brief::pilot::render(&pilot, &company, run_date, &req.cfg.signals);
    let dest = match req.out {
        Some(o) => o.to_path_buf(),
        None => new_run_dir(req.reports, "pilot"),
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
    Ok(PilotSummary {
        dir,
        why,
        inputs: data.inputs(),
    })
}

/// The company's name for titles: the config's, else the data folder's.
fn company_name(data: &Path, cfg: &ValidConfig) -> String {
    cfg.brief.company.clone().unwrap_or_else(|| {
        data.canonicalize()
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().to_string()))
            .map(|n| {
                // the directory's name as a title: "sample" reads "Sample"
                let mut c = n.chars();
                c.next()
                    .map(|f| f.to_uppercase().chain(c).collect())
                    .unwrap_or(n)
            })
            .unwrap_or_else(|| data.display().to_string())
    })
}
