//! People decide: approvals, the active model, the measurement log and the
//! quarter-on-quarter comparison with the active model's run.
//!
//! A run's outputs are never rewritten. Approval adds `approval.json` and
//! `exclusions_approved.csv` to the run directory (each written whole, then
//! renamed) and points `<reports>/active.json` at the run; every run and
//! approval appends one line to `<reports>/events.jsonl`.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use polars::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{IcpError, Result};
use crate::evidence::readiness::Readiness;
use crate::evidence::signals::Finding;
use crate::io::publish::{
    neutralise_formulas, read_json, read_parquet, read_text_csv, run_id_of, write_atomic,
};
use crate::report::brief::doc::Block;

pub const ACTIVE: &str = "active.json";
/// A copy of the active run's model and decisions, so that moving or
/// deleting old run directories never breaks the daily job.
pub const ACTIVE_DIR: &str = "active";
/// What a run writes for the feed: each account's CRM status and the ICP's
/// exclude criteria it matches.
pub const CRM_STATUS: &str = "crm_status.csv";
pub const EVENTS: &str = "events.jsonl";
pub const APPROVAL: &str = "approval.json";
pub const APPROVED_EXCLUSIONS: &str = "exclusions_approved.csv";
/// What a run writes for review (see `cmd::run`).
pub const FINDINGS: &str = "findings.json";
/// Each proposed exclusion's matching prospects (a run that is ready).
pub const EXCLUSION_MATCHES: &str = "exclusion_matches.parquet";
/// The accounts behind every signal and exclusion.
pub const FINDING_ACCOUNTS: &str = "finding_accounts.parquet";

/// A run's findings.json: what was found and what is asked, self-describing
/// (every condition in words and as column / level / range).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunFindings {
    pub model_id: String,
    pub readiness: Readiness,
    pub signals: Vec<Finding>,
    pub exclusions: Vec<Finding>,
    /// the refined ICP: the criteria approvals decide on (runs made before
    /// it existed have none: their exclusions are decided one by one)
    #[serde(default)]
    pub icp: Option<crate::evidence::refine::RefinedIcp>,
    #[serde(default)]
    pub company: Option<String>,
    #[serde(default)]
    pub run_date: Option<String>,
    /// newest date in the data the run read
    #[serde(default)]
    pub as_of: Option<String>,
    #[serde(default)]
    pub owners: Option<crate::config::Owners>,
    #[serde(default)]
    pub triggers: Vec<crate::evidence::triggers::TriggerFinding>,
    #[serde(default)]
    pub painful: Option<crate::evidence::painful::PainfulSummary>,
    /// what approving the run publishes, with its recommended exclusions
    #[serde(default)]
    pub preview: Option<crate::feed::Preview>,
}

/// The newest earlier publication (data before `as_of`) that withheld a
/// control group: its targeted accounts by band, and its control accounts by
/// band (both as earlier scorings, so their outcomes are counted alike).
pub fn earlier_control(
    reports: &Path,
    as_of: chrono::NaiveDate,
) -> Result<
    Option<(
        crate::evidence::measure::EarlierScoring,
        crate::evidence::measure::EarlierScoring,
    )>,
> {
    let Ok(entries) = fs::read_dir(reports.join(crate::feed::PUBLICATIONS)) else {
        return Ok(None);
    };
    // (as-of date, id, previous id, directory) of each candidate
    let mut found: Vec<(chrono::NaiveDate, String, Option<String>, PathBuf)> = Vec::new();
    for e in entries.flatten() {
        let dir = e.path();
        let control = dir.join("segments/control.csv");
        let Ok(m) = read_json::<crate::io::publish::Manifest>(&dir.join("manifest.json")) else {
            continue;
        };
        let Some(then) = m
            .as_of
            .as_deref()
            .and_then(|d| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
        else {
            continue;
        };
        if control.is_file() && then < as_of {
            found.push((then, m.run_id, m.previous_id, dir));
        }
    }
    // the newest data; among publications of the same data, the last one
    // (the one no other of them replaced)
    let newest = found.iter().map(|f| f.0).max();
    let same: Vec<&(chrono::NaiveDate, String, Option<String>, PathBuf)> =
        found.iter().filter(|f| Some(f.0) == newest).collect();
    let best = same
        .iter()
        .filter(|f| !same.iter().any(|g| g.2.as_deref() == Some(f.1.as_str())))
        .min_by(|a, b| a.1.cmp(&b.1))
        .or(same.first())
        .map(|f| (f.0, f.1.clone(), f.3.clone()));
    let Some((then, id, dir)) = best else {
        return Ok(None);
    };
    let read = |rel: &str| -> Result<std::collections::HashMap<String, String>> {
        let df = read_text_csv(&dir.join(rel))?;
        Ok(crate::util::frame::str_col(&df, "account_id")?
            .into_iter()
            .zip(crate::util::frame::str_col(&df, "band")?)
            .filter_map(|(a, b)| Some((a?, b?)))
            .collect())
    };
    let mut targeted = std::collections::HashMap::new();
    for b in crate::domain::Band::ALL {
        targeted.extend(read(&crate::domain::Segment::Band(b).file_name())?);
    }
    let control = read("segments/control.csv")?;
    let mk = |bands| crate::evidence::measure::EarlierScoring {
        run_id: id.clone(),
        as_of: then,
        bands,
    };
    Ok(Some((mk(targeted), mk(control))))
}

/// Earlier scorings of the accounts: every run directory under `reports`
/// (but `skip`) whose data ends before `as_of`, newest first, at most `max`.
pub fn earlier_scorings(
    reports: &Path,
    skip: &Path,
    as_of: chrono::NaiveDate,
    max: usize,
) -> Result<Vec<crate::evidence::measure::EarlierScoring>> {
    let Ok(entries) = fs::read_dir(reports) else {
        return Ok(Vec::new());
    };
    let skip = skip.canonicalize().ok();
    let mut found: Vec<(chrono::NaiveDate, String, PathBuf)> = Vec::new();
    for e in entries.flatten() {
        let dir = e.path();
        if !dir.is_dir() || dir.canonicalize().ok() == skip {
            continue;
        }
        // the `latest` link points at a run listed anyway
        if e.file_type().map(|t| t.is_symlink()).unwrap_or(false) {
            continue;
        }
        let (fj, sc) = (dir.join(FINDINGS), dir.join("scores.csv"));
        if !fj.is_file() || !sc.is_file() {
            continue;
        }
        let Ok(f) = read_json::<RunFindings>(&fj) else {
            continue;
        };
        let Some(then) = f
            .as_of
            .as_deref()
            .and_then(|d| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
        else {
            continue;
        };
        if then < as_of {
            found.push((then, run_id_of(&dir).unwrap_or_default(), dir));
        }
    }
    found.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    found.dedup_by(|a, b| a.0 == b.0 && a.1 == b.1);
    let mut out = Vec::new();
    for (then, run_id, dir) in found.into_iter().take(max) {
        // an unreadable old run is skipped, never a reason to stop this one
        let Ok(df) = CsvReadOptions::default()
            .with_infer_schema_length(Some(0))
            .with_columns(Some(["account_id".into(), "band".into()].into()))
            .try_into_reader_with_file_path(Some(dir.join("scores.csv")))
            .and_then(|r| r.finish())
        else {
            continue;
        };
        let ids = crate::util::frame::str_col(&df, "account_id")?;
        let bands = crate::util::frame::str_col(&df, "band")?;
        out.push(crate::evidence::measure::EarlierScoring {
            run_id,
            as_of: then,
            bands: ids
                .into_iter()
                .zip(bands)
                .filter_map(|(a, b)| Some((a?, b?)))
                .collect(),
        });
    }
    Ok(out)
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Approval {
    pub format: String,
    pub run_id: String,
    pub model_id: String,
    pub approved_by: String,
    /// every person who decided (`approved_by` joins them)
    #[serde(default)]
    pub deciders: Vec<String>,
    pub approved_at: String,
    pub note: Option<String>,
    pub ready: bool,
    pub exclusions_approved: Vec<String>,
    pub exclusions_rejected: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Active {
    pub format: String,
    /// the run directory, relative to the reports directory when inside it
    pub run_dir: String,
    pub run_id: String,
    pub model_id: String,
    pub approved_by: String,
    pub approved_at: String,
}

/// Append one JSON line to the measurement log.
pub fn log_event(reports: &Path, event: &serde_json::Value) -> Result<()> {
    fs::create_dir_all(reports).map_err(|e| IcpError::write(reports, e))?;
    let path = reports.join(EVENTS);
    let mut line = serde_json::to_string(event).map_err(|e| IcpError::write(&path, e))?;
    line.push('\n');
    let mut f = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(|e| IcpError::write(&path, e))?;
    // one write per line: concurrent appenders do not interleave
    f.write_all(line.as_bytes())
        .map_err(|e| IcpError::write(&path, e))
}

/// The active model's run directory, if a run has been approved. The
/// directory may since have been moved or deleted: the model and decisions
/// live on in [`active_dir`].
pub fn active(reports: &Path) -> Result<Option<(Active, PathBuf)>> {
    let path = reports.join(ACTIVE);
    if !path.exists() {
        return Ok(None);
    }
    let a: Active = read_json(&path)?;
    let dir = {
        let p = PathBuf::from(&a.run_dir);
        if p.is_absolute() { p } else { reports.join(p) }
    };
    Ok(Some((a, dir)))
}

/// Where the active model's artifact and approved criteria are kept.
fn active_dir(reports: &Path) -> PathBuf {
    reports.join(ACTIVE_DIR)
}

/// The active model's artifact: the copy kept at approval, or (approvals
/// made before copies were kept) the run directory's.
pub fn active_model(reports: &Path) -> Result<Option<PathBuf>> {
    let copy = active_dir(reports).join("model.json");
    if copy.is_file() {
        return Ok(Some(copy));
    }
    match active(reports)? {
        Some((_, dir)) if dir.join("model.json").is_file() => Ok(Some(dir.join("model.json"))),
        Some((a, dir)) => Err(IcpError::read(
            reports.join(ACTIVE),
            format!(
                "the active run {} ({}) has no model.json and no copy is kept in {} (was the run directory moved or deleted?); approve or activate a run again",
                a.run_id,
                dir.display(),
                active_dir(reports).display()
            ),
        )),
        None => Ok(None),
    }
}

/// The approved exclude criteria of the active model (none before any
/// approval, or for runs made before the refined ICP).
pub fn active_exclusions(reports: &Path) -> Result<Vec<Finding>> {
    // the kept copy, or (approvals made before copies) the run directory,
    // as for the model itself
    let dir = match active_dir(reports) {
        d if d.join(APPROVAL).is_file() => d,
        d => match active(reports)? {
            Some((_, run)) if run.join(APPROVAL).is_file() => run,
            _ => d,
        },
    };
    let (icp_path, appr_path) = (dir.join("icp.json"), dir.join(APPROVAL));
    if !icp_path.is_file() || !appr_path.is_file() {
        return Ok(Vec::new());
    }
    let icp: crate::evidence::refine::RefinedIcp = read_json(&icp_path)?;
    let appr: Approval = read_json(&appr_path)?;
    Ok(icp
        .exclude
        .into_iter()
        .map(|c| c.finding)
        .filter(|f| appr.exclusions_approved.contains(&f.id))
        .collect())
}

/// Make an approved run's model the active one: its copy in `reports/active/`
/// first, then `reports/active.json` naming the run (relative to `reports`
/// when inside it).
fn make_active(reports: &Path, dir: &Path, appr: &Approval) -> Result<Active> {
    keep_active(reports, dir, appr)?;
    let run_dir = match (dir.canonicalize(), reports.canonicalize()) {
        (Ok(d), Ok(r)) => d
            .strip_prefix(&r)
            .map(|p| p.to_path_buf())
            .unwrap_or(d.clone()),
        _ => dir.to_path_buf(),
    };
    let active = Active {
        format: "icp-active/1".into(),
        run_dir: run_dir.to_string_lossy().to_string(),
        run_id: appr.run_id.clone(),
        model_id: appr.model_id.clone(),
        approved_by: appr.approved_by.clone(),
        approved_at: appr.approved_at.clone(),
    };
    let text = serde_json::to_string_pretty(&active).map_err(|e| IcpError::write(ACTIVE, e))?;
    write_atomic(&reports.join(ACTIVE), (text + "\n").as_bytes())?;
    Ok(active)
}

/// Copy a run's model, refined ICP and decision into `reports/active/`
/// (replaced whole, atomically).
fn keep_active(reports: &Path, run: &Path, appr: &Approval) -> Result<()> {
    let mut w = crate::io::publish::RunWriter::create(&active_dir(reports))?;
    let copied = (|| -> Result<()> {
        for f in ["model.json", "icp.json", FINDINGS] {
            let src = run.join(f);
            if src.is_file() {
                let (dst, _) = w.open(f)?;
                fs::copy(&src, &dst).map_err(|e| IcpError::write(&dst, e))?;
                w.record(f, 1)?;
            }
        }
        // the decision itself, from memory: an approval is recorded in the
        // run directory only once it is active and published
        let text = serde_json::to_string_pretty(appr).map_err(|e| IcpError::write(APPROVAL, e))?;
        let (dst, _) = w.open(APPROVAL)?;
        fs::write(&dst, text + "\n").map_err(|e| IcpError::write(&dst, e))?;
        w.record(APPROVAL, 1)?;
        Ok(())
    })();
    if let Err(e) = copied {
        w.abandon();
        return Err(e);
    }
    w.set_note("the active model: a copy of the approved run's model and decisions");
    let model_id = read_json::<RunFindings>(&run.join(FINDINGS))
        .ok()
        .map(|f| f.model_id);
    w.finish("active", model_id, Vec::new(), Vec::new())?;
    Ok(())
}

/// What publishing an approved run needs, read and checked before anything
/// is made active or published.
struct Prepared {
    scores: DataFrame,
    crm: Vec<crate::domain::CrmStatus>,
    excluded: std::collections::HashMap<String, Vec<String>>,
    findings: RunFindings,
    manifest: crate::io::publish::Manifest,
    config: crate::config::ValidConfig,
    rejects: DataFrame,
}

/// Read and check what publishing a run needs. Runs made before
/// `crm_status.csv` existed cannot be published (None).
fn prepare_publication(run: &Path, approved: &[String]) -> Result<Option<Prepared>> {
    let status_path = run.join(CRM_STATUS);
    if !status_path.is_file() {
        return Ok(None);
    }
    let scores = read_text_csv(&run.join("scores.csv"))?;
    let st = read_text_csv(&status_path)?;
    let ids = crate::util::frame::str_col(&st, "account_id")?;
    let crm_col = crate::util::frame::str_col(&st, "crm_status")?;
    let exc_col = crate::util::frame::str_col(&st, "exclude_criteria")?;
    let mut crm_of = std::collections::HashMap::new();
    let mut excluded = std::collections::HashMap::new();
    for i in 0..ids.len() {
        let Some(a) = ids[i].clone() else { continue };
        if let Some(c) = crm_col[i]
            .as_deref()
            .and_then(crate::domain::CrmStatus::parse)
        {
            crm_of.insert(a.clone(), c);
        }
        let x: Vec<String> = exc_col[i]
            .as_deref()
            .unwrap_or("")
            .split(';')
            .filter(|x| approved.iter().any(|a| a == x))
            .map(str::to_string)
            .collect();
        if !x.is_empty() {
            excluded.insert(a, x);
        }
    }
    // in the scores' row order; an account without a known status would
    // read as a prospect, a targeting candidate: the run is incomplete
    let score_ids = crate::util::frame::str_col(&scores, "account_id")?;
    let crm: Vec<crate::domain::CrmStatus> = score_ids
        .iter()
        .filter_map(|a| a.as_ref().and_then(|a| crm_of.get(a)).copied())
        .collect();
    if crm.len() != score_ids.len() {
        let first = score_ids
            .iter()
            .find(|a| a.as_ref().is_none_or(|a| !crm_of.contains_key(a)))
            .cloned()
            .flatten()
            .unwrap_or_default();
        return Err(IcpError::Artifact {
            path: status_path,
            message: format!(
                "{} of the {} scored accounts have no known CRM status (the first: {first:?}); without it an account would be targeted as a prospect, so nothing is published: rerun `icp run`",
                crate::util::thousands(score_ids.len() - crm.len()),
                crate::util::thousands(score_ids.len())
            ),
        });
    }
    Ok(Some(Prepared {
        findings: read_json(&run.join(FINDINGS))?,
        manifest: read_json(&run.join("manifest.json"))?,
        // the run's own settings decide the audience and the control
        // group: an unreadable model.json stops the publication, never
        // defaults
        config: crate::stages::model::ModelArtifact::read(&run.join("model.json"))?.config,
        rejects: read_text_csv(&run.join("rejects.csv"))?,
        scores,
        crm,
        excluded,
    }))
}

/// Publish an approved run's scoring to `reports/published/`.
fn publish_run(reports: &Path, p: Prepared) -> Result<crate::feed::Published> {
    let publish = &p.config.publish;
    crate::feed::publish(&crate::feed::Publish {
        reports,
        by: "approve",
        model_id: &p.findings.model_id,
        as_of: p.findings.as_of.clone(),
        audience: publish.audience,
        control_share: publish.control_share,
        inputs: p.manifest.inputs,
        scores: &p.scores,
        crm: &p.crm,
        excluded: &p.excluded,
        rejects: &p.rejects,
        crm_import: &p.config.crm_import(),
    })
}

/// Resolve a run argument: a directory, or `latest` / a run name under `reports`.
fn resolve_run(reports: &Path, run: &Path) -> Result<PathBuf> {
    let candidates = [run.to_path_buf(), reports.join(run)];
    for c in candidates {
        if c.join("manifest.json").is_file() {
            return Ok(c);
        }
    }
    Err(IcpError::read(
        run,
        format!(
            "not a run directory (expected a directory with manifest.json, here or under {})",
            reports.display()
        ),
    ))
}

pub struct ApproveRequest<'a> {
    pub reports: &'a Path,
    pub run: &'a Path,
    /// who decided (the sales, delivery and founder owners often together)
    pub by: &'a [String],
    pub note: Option<&'a str>,
    pub reject_exclusions: &'a [String],
    pub accept_exclusions: &'a [String],
    /// accept every exclude criterion not rejected explicitly
    pub accept_all: bool,
    /// RFC 3339 time of the decision
    pub now: String,
}

/// What an approval did.
#[derive(Debug, Clone)]
pub struct Approved {
    pub approval: Approval,
    /// the approved run's scoring, published to `reports/published/` (None
    /// for runs made before publications existed)
    pub publication: Option<crate::feed::Published>,
}

/// Record an approval, make the run's model the active one and publish its
/// scoring.
pub fn approve(req: &ApproveRequest) -> Result<Approved> {
    let names: Vec<String> = req
        .by
        .iter()
        .map(|b| b.trim().to_string())
        .filter(|b| !b.is_empty())
        .collect();
    if names.is_empty() {
        return Err(IcpError::Usage("--by: the approver's name is empty".into()));
    }
    let by = names.join(", ");
    let dir = resolve_run(req.reports, req.run)?;
    let approval_path = dir.join(APPROVAL);
    if approval_path.exists() {
        let prev: Approval = read_json(&approval_path)?;
        return Err(IcpError::Usage(format!(
            "run {} was already approved by {} at {}; decisions are not rewritten (re-run to make a new proposal)",
            prev.run_id, prev.approved_by, prev.approved_at
        )));
    }
    let f: RunFindings = read_json(&dir.join(FINDINGS))?;
    let run_id = run_id_of(&dir)?;
    let approved = decide_exclusions(req, &f, &run_id)?;
    write_approved_exclusions(&dir, &approved)?;
    let approval = Approval {
        format: "icp-approval/1".into(),
        run_id: run_id.clone(),
        model_id: f.model_id.clone(),
        approved_by: by.clone(),
        deciders: names.clone(),
        approved_at: req.now.clone(),
        note: req.note.map(str::to_string),
        ready: f.readiness.ready,
        exclusions_approved: approved,
        exclusions_rejected: req.reject_exclusions.to_vec(),
    };
    record_approval(req, &dir, &approval_path, approval)
}

/// The exclude criteria approved: every flag must name a criterion of the
/// run and, for a ready run, every criterion must be decided.
fn decide_exclusions(req: &ApproveRequest, f: &RunFindings, run_id: &str) -> Result<Vec<String>> {
    // Decisions are about the refined ICP's exclude criteria; the other
    // exclusions are supporting evidence and never published. Runs made
    // before the refined ICP decide every exclusion.
    let decidable: Vec<&Finding> = match &f.icp {
        Some(icp) => icp.exclude.iter().map(|c| &c.finding).collect(),
        None => f.exclusions.iter().collect(),
    };
    let known: BTreeSet<&str> = decidable.iter().map(|x| x.id.as_str()).collect();
    for (flag, r) in req
        .reject_exclusions
        .iter()
        .map(|r| ("--reject-exclusion", r))
        .chain(
            req.accept_exclusions
                .iter()
                .map(|r| ("--accept-exclusion", r)),
        )
    {
        if !known.contains(r.as_str()) {
            let evidence = f
                .exclusions
                .iter()
                .find(|x| &x.id == r)
                .map(|x| match &x.criterion {
                    Some(c) => format!(" ({r} is supporting evidence for {c}, not a criterion)"),
                    None => format!(" ({r} is supporting evidence, not a criterion)"),
                })
                .unwrap_or_default();
            return Err(IcpError::Usage(format!(
                "{flag} {r}: run {run_id} has no such exclude criterion{evidence}; the criteria to decide are: {}",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.iter().copied().collect::<Vec<_>>().join(", ")
                }
            )));
        }
    }
    let rejected: BTreeSet<&str> = req.reject_exclusions.iter().map(String::as_str).collect();
    let accepted: BTreeSet<&str> = req.accept_exclusions.iter().map(String::as_str).collect();
    if let Some(both) = rejected.intersection(&accepted).next() {
        return Err(IcpError::Usage(format!(
            "{both} is both accepted and rejected: decide it once"
        )));
    }
    // Every exclude criterion is decided explicitly, never by omission.
    // Exclusions of a NOT READY run are evidence only: none is published.
    if f.readiness.ready && !req.accept_all {
        let undecided: Vec<&str> = known
            .iter()
            .copied()
            .filter(|id| !rejected.contains(id) && !accepted.contains(id))
            .collect();
        if !undecided.is_empty() {
            let list: Vec<String> = decidable
                .iter()
                .filter(|x| undecided.contains(&x.id.as_str()))
                .map(|x| format!("{} ({})", x.id, x.condition))
                .collect();
            return Err(IcpError::Usage(format!(
                "undecided exclude criteria of run {run_id}: {}; add --accept-exclusion ID or --reject-exclusion ID for each (or --accept-all-exclusions to accept every one not rejected)",
                list.join("; ")
            )));
        }
    }
    let approved: Vec<String> = if f.readiness.ready {
        decidable
            .iter()
            .map(|x| x.id.clone())
            .filter(|id| !rejected.contains(id.as_str()))
            .collect()
    } else {
        Vec::new()
    };
    Ok(approved)
}

/// Write the run's `exclusions_approved.csv`: the matches of the approved
/// criteria, by criterion then account.
fn write_approved_exclusions(dir: &Path, approved: &[String]) -> Result<()> {
    let matches_path = dir.join(EXCLUSION_MATCHES);
    // runs written before the Parquet file listed the matches as CSV
    let old_csv = dir.join("exclusion_matches.csv");
    let matches = if matches_path.is_file() {
        read_parquet(&matches_path)?
    } else if old_csv.is_file() {
        read_text_csv(&old_csv)?
    } else {
        crate::evidence::signals::conditions::empty_matches()?
    };
    let keep = Series::new("__keep".into(), approved.to_vec());
    let published = matches
        .lazy()
        .filter(col("exclusion_id").is_in(lit(keep).implode(false), false))
        .sort(
            ["exclusion_id", "account_id"],
            SortMultipleOptions::default(),
        )
        .collect()?;
    // a file people open: formula starts neutralised, as in every such CSV
    let mut published = neutralise_formulas(&published)?;
    let mut buf = Vec::new();
    CsvWriter::new(&mut buf)
        .include_header(true)
        .finish(&mut published)?;
    write_atomic(&dir.join(APPROVED_EXCLUSIONS), &buf)?;
    Ok(())
}

/// Make the run's model active, publish its scoring, then record the
/// approval in the run and the events log.
fn record_approval(
    req: &ApproveRequest,
    dir: &Path,
    approval_path: &Path,
    approval: Approval,
) -> Result<Approved> {
    // Active and published first, recorded in the run last: a crash before
    // the record leaves a run that can be approved again (every step is
    // idempotent), never one marked approved that was not published.
    // a damaged run (model.json, CRM statuses) stops here, before its
    // model is made active
    let prepared = prepare_publication(dir, &approval.exclusions_approved)?;
    fs::create_dir_all(req.reports).map_err(|e| IcpError::write(req.reports, e))?;
    make_active(req.reports, dir, &approval)?;
    let publication = prepared.map(|p| publish_run(req.reports, p)).transpose()?;
    let text =
        serde_json::to_string_pretty(&approval).map_err(|e| IcpError::write(approval_path, e))?;
    write_atomic(approval_path, (text + "\n").as_bytes())?;
    log_event(
        req.reports,
        &serde_json::json!({
            "event": "approval",
            "at": approval.approved_at,
            "run_id": approval.run_id,
            "model_id": approval.model_id,
            "by": approval.approved_by,
            "note": approval.note,
            "ready": approval.ready,
            "exclusions_approved": approval.exclusions_approved,
            "exclusions_rejected": approval.exclusions_rejected,
        }),
    )?;
    if let Some(p) = &publication {
        log_event(
            req.reports,
            &serde_json::json!({
                "event": "publication",
                "at": req.now,
                "publication_id": p.id,
                "previous_id": p.previous,
                "by": "approve",
                "model_id": approval.model_id,
                "changes": p.actions,
            }),
        )?;
    }
    Ok(Approved {
        approval,
        publication,
    })
}

/// Make an earlier approved run's model active again (a roll-back). A run
/// never approved is refused.
pub fn activate(
    reports: &Path,
    run: &Path,
    by: &str,
    note: Option<&str>,
    now: &str,
) -> Result<Active> {
    let by = by.trim();
    if by.is_empty() {
        return Err(IcpError::Usage("--by: the name is empty".into()));
    }
    let dir = resolve_run(reports, run)?;
    let appr_path = dir.join(APPROVAL);
    if !appr_path.is_file() {
        return Err(IcpError::Usage(format!(
            "run {} was never approved, so its model cannot be made active: review it and run icp approve {} --by NAME",
            run_id_of(&dir)?,
            dir.display()
        )));
    }
    let appr: Approval = read_json(&appr_path)?;
    let active = make_active(reports, &dir, &appr)?;
    log_event(
        reports,
        &serde_json::json!({
            "event": "activation",
            "at": now,
            "run_id": appr.run_id,
            "model_id": appr.model_id,
            "by": by,
            "note": note,
        }),
    )?;
    Ok(active)
}

/// What changed since the active model's run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RunDiff {
    pub against_run_id: String,
    pub against_model_id: String,
    pub signals_gained: Vec<String>,
    pub signals_lost: Vec<String>,
    /// condition, lift then, lift now
    pub signals_changed: Vec<(String, f64, f64)>,
    pub thresholds: Vec<ThresholdMove>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ThresholdMove {
    pub threshold: u8,
    pub before: usize,
    pub after: usize,
    /// accounts at or above the threshold now that were not before (new accounts included)
    pub entered: usize,
    /// accounts at or above it before that are not now (removed accounts included)
    pub left: usize,
}

/// A lift counts as changed when it moves by more than this fraction.
const LIFT_CHANGE: f64 = 0.10;

fn scored(path: &Path) -> Result<BTreeMap<String, Option<i64>>> {
    scores_map(&read_text_csv(path)?)
}

fn scores_map(df: &DataFrame) -> Result<BTreeMap<String, Option<i64>>> {
    let ids = crate::util::frame::str_col(df, "account_id")?;
    let sc = crate::util::frame::str_col(df, "score")?;
    let st = crate::util::frame::str_col(df, "status")?;
    Ok(ids
        .into_iter()
        .zip(sc)
        .zip(st)
        .filter_map(|((id, s), st)| {
            let ok = st.as_deref() == Some(crate::domain::STATUS_SCORED);
            id.map(|id| (id, s.filter(|_| ok).and_then(|s| s.parse().ok())))
        })
        .collect())
}

/// Compare a new run with the active model's run directory.
pub fn diff(old_dir: &Path, new_signals: &[Finding], new_scores: &DataFrame) -> Result<RunDiff> {
    let old: RunFindings = read_json(&old_dir.join(FINDINGS))?;
    let before: BTreeMap<&str, f64> = old
        .signals
        .iter()
        .map(|s| (s.condition.as_str(), s.lift))
        .collect();
    let after: BTreeMap<&str, f64> = new_signals
        .iter()
        .map(|s| (s.condition.as_str(), s.lift))
        .collect();
    let gained = after
        .keys()
        .filter(|k| !before.contains_key(*k))
        .map(|k| k.to_string())
        .collect();
    let lost = before
        .keys()
        .filter(|k| !after.contains_key(*k))
        .map(|k| k.to_string())
        .collect();
    let changed = after
        .iter()
        .filter_map(|(k, &now)| {
            let then = *before.get(k)?;
            ((now - then).abs() > LIFT_CHANGE * then.abs()).then(|| (k.to_string(), then, now))
        })
        .collect();
    let old_scores = scored(&old_dir.join("scores.csv"))?;
    let new_scores = scores_map(new_scores)?;
    let ids: BTreeSet<&String> = old_scores.keys().chain(new_scores.keys()).collect();
    let thresholds = crate::domain::Segment::THRESHOLDS
        .iter()
        .map(|&t| {
            let at = |m: &BTreeMap<String, Option<i64>>, id: &String| {
                m.get(id).copied().flatten().is_some_and(|s| s >= t as i64)
            };
            let (mut before, mut after, mut entered, mut left) = (0, 0, 0, 0);
            for id in &ids {
                let (b, a) = (at(&old_scores, id), at(&new_scores, id));
                before += b as usize;
                after += a as usize;
                entered += (a && !b) as usize;
                left += (b && !a) as usize;
            }
            ThresholdMove {
                threshold: t,
                before,
                after,
                entered,
                left,
            }
        })
        .collect();
    Ok(RunDiff {
        against_run_id: run_id_of(old_dir)?,
        against_model_id: old.model_id,
        signals_gained: gained,
        signals_lost: lost,
        signals_changed: changed,
        thresholds,
    })
}

impl RunDiff {
    /// The brief's section on what changed.
    pub fn blocks(&self) -> Vec<Block> {
        let list = |v: &[String]| {
            if v.is_empty() {
                "none".to_string()
            } else {
                v.join("; ")
            }
        };
        let mut b = vec![
            Block::Para(format!(
                "Compared with run {} (model {}), the active model when this run was made (changes.json).",
                self.against_run_id, self.against_model_id
            )),
            Block::Bullets(vec![
                format!("Signals gained: {}", list(&self.signals_gained)),
                format!("Signals lost: {}", list(&self.signals_lost)),
                format!(
                    "Signals whose lift changed by more than {:.0}%: {}",
                    100.0 * LIFT_CHANGE,
                    if self.signals_changed.is_empty() {
                        "none".to_string()
                    } else {
                        self.signals_changed
                            .iter()
                            .map(|(c, a, b)| format!("{c} ({a:.2} -> {b:.2})"))
                            .collect::<Vec<_>>()
                            .join("; ")
                    }
                ),
            ]),
        ];
        b.push(Block::Table {
            head: vec![
                "segment".into(),
                "accounts before".into(),
                "after".into(),
                "entered".into(),
                "left".into(),
            ],
            rows: self
                .thresholds
                .iter()
                .map(|t| {
                    vec![
                        format!("score >= {}", t.threshold),
                        crate::util::thousands(t.before),
                        crate::util::thousands(t.after),
                        crate::util::thousands(t.entered),
                        crate::util::thousands(t.left),
                    ]
                })
                .collect(),
        });
        b
    }
}
