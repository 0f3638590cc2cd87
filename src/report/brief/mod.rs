//! Stage 8: the ICP refinement brief that leadership reviews and approves.
//!
//! The first screen says what to do and what is asked of whom; the refined
//! ICP follows, then the evidence. Every claim names its evidence (counts,
//! intervals and the file beside the brief it comes from). The brief
//! proposes; `icp approve` records the decision.

pub mod charts;
mod decide;
pub mod doc;
pub mod pilot;

use chrono::NaiveDate;
use doc::{Block, Chart};

use crate::config::BriefParams;
use crate::domain::Band;
use crate::error::Result;
use crate::evidence::Findings;
use crate::evidence::measure::{BandNow, ScoringOutcomes};
use crate::evidence::refine::Criterion;
use crate::evidence::signals::{Baseline, Finding};
use crate::stages::model::ModelArtifact;
use crate::util::{money, opt_money, opt_num, opt_pct, p_value, pct, pct_ci, thousands as n};

/// Everything the brief is written from.
pub struct BriefInput<'a> {
    pub artifact: &'a ModelArtifact,
    pub findings: &'a Findings,
    /// (band, accounts) in the order high, medium, low, unscored
    pub band_counts: &'a [(String, usize)],
    /// (threshold, accounts at or above it)
    pub segment_counts: &'a [(u8, usize)],
    pub rejected_rows: usize,
    /// what the loader left out or read as missing, in words (unmapped
    /// stages, unreadable cells): the reader weighs the findings by it
    pub data_caveats: &'a [String],
    /// what changed since the active model's run, already worded
    pub changes: Option<&'a [Block]>,
    pub company: &'a str,
    pub run_date: NaiveDate,
    /// newest date in the inputs
    pub as_of: Option<NaiveDate>,
    pub params: &'a BriefParams,
    /// today's accounts by band: customers' value, risk, churn, loss reasons
    pub bands_now: &'a [BandNow],
    /// what happened next to the accounts of earlier scorings, by band
    pub earlier: &'a [ScoringOutcomes],
    /// targeted against withheld accounts of the latest earlier publication
    /// with a control group
    pub control: Option<&'a crate::evidence::measure::ControlComparison>,
    /// what approving the run publishes, with its recommended exclusions
    pub preview: &'a crate::feed::Preview,
    pub publish: &'a crate::config::PublishParams,
}

pub struct Brief {
    pub markdown: String,
    pub html: String,
    pub measurement: Measurement,
}

/// One kind of evidence and how many of the ICP's criteria it backs.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct Alignment {
    /// win/loss, retention, margin, delivery
    pub kind: String,
    /// false when the data has none of this evidence
    pub available: bool,
    pub criteria: usize,
    pub backed: usize,
    pub rate: Option<f64>,
    /// criteria whose evidence of this kind points the other way
    #[serde(default)]
    pub against: Vec<String>,
}

/// The measures a quarterly re-run compares with (measurement.json). None
/// is true by construction: each can come out badly.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct Measurement {
    /// won (incl. later churned) over closed deals
    pub close_rate: f64,
    pub median_sales_cycle_days: Option<f64>,
    pub churn_rate: Option<f64>,
    pub mean_delivery_fit: Option<f64>,
    pub sales_velocity_per_day: Option<f64>,
    /// per kind of evidence: the share of the ICP's criteria (include and
    /// exclude) it backs
    pub icp_evidence_alignment_rate: Vec<Alignment>,
    /// kinds of evidence the data does not have at all
    pub missing_evidence: Vec<String>,
    /// what followed each earlier scoring, by the band it gave
    pub band_outcomes: Vec<ScoringOutcomes>,
    /// targeted against control accounts of an earlier publication
    #[serde(default)]
    pub control: Option<crate::evidence::measure::ControlComparison>,
}

/// Does a criterion's retention / margin / delivery evidence point the same
/// way as the criterion? (include: no worse than baseline; exclude: worse.)
/// None: that kind of evidence is not measured for it.
fn backs(c: &Criterion, kind: &str, b: &Baseline, fit_gap: f64, margin_gap: f64) -> Option<bool> {
    let f = &c.finding;
    let include = c.kind == "include";
    match kind {
        "win/loss" => Some(if include {
            f.lift > 1.0
        } else {
            f.kinds.iter().any(|k| k == "rate")
        }),
        "retention" => {
            let (x, bx) = (f.churn_rate?, b.churn_rate?);
            if f.won_deals < 10 {
                return None;
            }
            Some(if include {
                x <= bx * 1.1 + 0.01
            } else {
                x > bx
            })
        }
        "margin" => {
            let (x, bx) = (f.gross_margin?, b.gross_margin?);
            Some(if include {
                x >= bx - margin_gap
            } else {
                x < bx
            })
        }
        "delivery" => {
            let (x, bx) = (f.delivery_fit?, b.delivery_fit?);
            Some(if include { x >= bx - fit_gap } else { x < bx })
        }
        _ => None,
    }
}

pub const EVIDENCE_KINDS: [&str; 4] = ["win/loss", "retention", "margin", "delivery"];

pub fn measurement(inp: &BriefInput, fit_gap: f64, margin_gap: f64) -> Measurement {
    let f = inp.findings;
    let b = &f.baseline;
    let criteria: Vec<&Criterion> = f.icp.include.iter().chain(&f.icp.exclude).collect();
    let available = |k: &str| match k {
        "retention" => b.churn_rate.is_some(),
        "margin" => b.gross_margin.is_some(),
        "delivery" => b.delivery_fit.is_some(),
        _ => true,
    };
    let align: Vec<Alignment> = EVIDENCE_KINDS
        .iter()
        .map(|k| {
            let backed = criteria
                .iter()
                .filter(|c| backs(c, k, b, fit_gap, margin_gap) == Some(true))
                .count();
            Alignment {
                kind: k.to_string(),
                available: available(k),
                criteria: criteria.len(),
                against: criteria
                    .iter()
                    .filter(|c| backs(c, k, b, fit_gap, margin_gap) == Some(false))
                    .map(|c| c.finding.id.clone())
                    .collect(),
                backed,
                rate: (available(k) && !criteria.is_empty())
                    .then(|| backed as f64 / criteria.len() as f64),
            }
        })
        .collect();
    Measurement {
        close_rate: b.close_rate,
        median_sales_cycle_days: b.median_cycle_days,
        churn_rate: b.churn_rate,
        mean_delivery_fit: b.delivery_fit,
        sales_velocity_per_day: b.sales_velocity_per_day,
        missing_evidence: align
            .iter()
            .filter(|a| !a.available)
            .map(|a| a.kind.clone())
            .collect(),
        icp_evidence_alignment_rate: align,
        band_outcomes: inp.earlier.to_vec(),
        control: inp.control.cloned(),
    }
}

/// The run date: `SOURCE_DATE_EPOCH` (seconds) when set, so a rebuilt
/// brief can be byte-identical; otherwise today (UTC). A value that is not
/// a time is an error: a silent "today" would break the reproducibility it
/// was set for.
pub fn run_date() -> crate::error::Result<NaiveDate> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Err(_) => Ok(chrono::Utc::now().date_naive()),
        Ok(s) => s
            .trim()
            .parse::<i64>()
            .ok()
            .and_then(|t| chrono::DateTime::from_timestamp(t, 0))
            .map(|t| t.date_naive())
            .ok_or_else(|| {
                crate::error::IcpError::Usage(format!(
                    "SOURCE_DATE_EPOCH = {s:?}: expected whole seconds since 1970-01-01 (unset it to use today's date)"
                ))
            }),
    }
}

fn role(name: &Option<String>, title: &str) -> String {
    match name {
        Some(p) => format!("{p} ({title})"),
        None => title.to_string(),
    }
}

fn ids(list: &[Criterion]) -> String {
    list.iter()
        .map(|c| c.finding.id.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn named(list: &[Criterion]) -> String {
    list.iter()
        .map(|c| format!("{} {}", c.finding.id, c.finding.condition))
        .collect::<Vec<_>>()
        .join("; ")
}

fn share(k: usize, of: usize) -> String {
    if of == 0 {
        "n/a".into()
    } else {
        pct(k as f64 / of as f64)
    }
}

const TOP: usize = 15;

pub fn build(inp: &BriefInput, fit_gap: f64, margin_gap: f64) -> Result<Brief> {
    let f = inp.findings;
    let m = measurement(inp, fit_gap, margin_gap);
    let due = inp.run_date + chrono::Duration::days(inp.params.review_days);
    let mut d: Vec<Block> = Vec::new();

    // ---- The first screen: who, when, status, what to do, decisions.
    let title = first_screen(&mut d, inp, due);

    decide::decision_card(&mut d, inp);
    decide::publication_preview(&mut d, inp);
    d.push(Block::Heading(2, "What to do".into()));
    d.push(Block::Bullets(recommendations(inp)));

    decide::refined_icp(&mut d, inp);
    decide::pilot_plan(&mut d, inp);
    customers(&mut d, f);
    triggers(&mut d, f);
    segments(&mut d, inp);
    measurement_section(&mut d, inp, &m);
    if let Some(ch) = inp.changes {
        d.push(Block::Heading(2, "Changes since the active model".into()));
        d.extend(ch.iter().cloned());
    }

    decision_tasks(&mut d, inp, due);
    appendix(&mut d, inp)?;

    Ok(Brief {
        markdown: doc::markdown(&d),
        html: doc::html(&title, &d),
        measurement: m,
    })
}

/// The first screen's head: run, data age and status (proposal or NOT
/// READY, with the failed gates). Returns the title.
fn first_screen(d: &mut Vec<Block>, inp: &BriefInput, due: NaiveDate) -> String {
    let a = inp.artifact;
    let f = inp.findings;
    let r = &f.readiness;
    let title = format!("{}: ICP refinement brief", inp.company);
    d.push(Block::Heading(1, title.clone()));
    d.push(Block::Para(format!(
        "Run {} on CRM data as of {}. Model {} (program {}); {} input rows rejected (rejects.csv).",
        inp.run_date,
        inp.as_of
            .map(|x| x.to_string())
            .unwrap_or_else(|| "unknown".into()),
        a.model_id,
        a.program_version,
        n(inp.rejected_rows)
    )));
    if !inp.data_caveats.is_empty() {
        d.push(Block::Para(format!(
            "Left out or read as missing: {}.",
            inp.data_caveats.join("; ")
        )));
    }
    if let Some(as_of) = inp.as_of {
        let age = (inp.run_date - as_of).num_days();
        if age > 30 {
            d.push(Block::Callout(format!(
                "The data is {age} days old (newest date {as_of}): deals and triggers since then are missing. Re-export the CRM before acting on triggers."
            )));
        }
    }
    let failed: Vec<&crate::evidence::readiness::Gate> =
        r.gates.iter().filter(|g| !g.passed).collect();
    if r.ready {
        d.push(Block::Callout(format!(
            "PROPOSAL for leadership approval: nothing here changes targeting until it is approved (icp approve). Decisions are due {due}."
        )));
    } else {
        d.push(Block::Callout(format!(
            "NOT READY: {} failed. Do not change targeting on this run: the evidence is kept below, no exclusion is published and the model should not be approved until this is fixed.",
            failed
                .iter()
                .map(|g| g.gate.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
        readiness(d, f);
    }
    title
}

/// Who decides what, by the due date, and how to record it (icp approve).
fn decision_tasks(d: &mut Vec<Block>, inp: &BriefInput, due: NaiveDate) {
    let a = inp.artifact;
    let r = &inp.findings.readiness;
    let icp = &inp.findings.icp;
    let owners = &inp.params.owners;
    let leader = role(&owners.revenue_leader, "founder / revenue leader");
    let sales = role(&owners.sales, "head of sales");
    let delivery = role(&owners.delivery, "head of delivery");
    d.push(Block::Heading(
        2,
        format!("Recording the decisions, by {due}"),
    ));
    let mut tasks = Vec::new();
    if r.ready && !(icp.include.is_empty() && icp.exclude.is_empty()) {
        tasks.push(format!(
            "{leader}: approve the refined ICP below as targeting guidance (include {}), or send it back for a re-run with different settings.",
            if icp.include.is_empty() { "none".into() } else { ids(&icp.include) },
        ));
        for x in &icp.exclude {
            tasks.push(format!(
                "{leader}: keep or reject exclusion {} ({}): {} of {} prospects, {} expected value.",
                x.finding.id,
                x.finding.condition,
                n(x.prospects_matching),
                n(icp.prospects),
                money(x.expected_pipeline)
            ));
        }
    }
    tasks.push(format!(
        "{sales}: approve model {} as the active scoring model{}, and confirm the include criteria match what the field sees.",
        a.model_id,
        if r.ready { "" } else { " (not recommended: the run is NOT READY)" }
    ));
    let fit_x: Vec<&Criterion> = icp
        .exclude
        .iter()
        .filter(|c| c.finding.kinds.iter().any(|k| k == "fit" || k == "margin"))
        .collect();
    if !fit_x.is_empty() {
        tasks.push(format!(
            "{delivery}: confirm the delivery-fit and margin evidence behind {}.",
            fit_x
                .iter()
                .map(|c| c.finding.id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if !icp.review.is_empty() {
        tasks.push(format!(
            "{leader} with {sales}: decide the review list ({}): targeted, excluded, or neither.",
            ids(&icp.review)
        ));
    }
    d.push(Block::Checklist(tasks));
    if owners.sales.is_none() || owners.delivery.is_none() || owners.revenue_leader.is_none() {
        d.push(Block::Para(
            "Owners without a name are roles: name them in the config ([brief] owners = { sales, delivery, revenue_leader }).".into(),
        ));
    }
    d.push(Block::Para(
        "Record the decision with: icp approve RUN --by NAME (repeat --by when several decide), one --accept-exclusion ID or --reject-exclusion ID per exclude criterion (or --accept-all-exclusions), and --note TEXT; RUN is this run directory (printed by icp run; reports/latest is the newest). Approval takes the include criteria and the model as a whole; only exclude criteria are kept or rejected one by one, and findings that are not criteria are evidence, not decisions.".into(),
    ));
}

/// The appendix: readiness, criteria checks, model quality, every finding
/// and the terms used.
fn appendix(d: &mut Vec<Block>, inp: &BriefInput) -> Result<()> {
    let f = inp.findings;
    let r = &f.readiness;
    d.push(Block::Heading(2, "Appendix: how we know".into()));
    if r.ready {
        d.push(Block::Para(format!(
            "Readiness: all {} gates pass ({}).",
            r.gates.len(),
            r.gates
                .iter()
                .map(|g| g.gate.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
        readiness(d, f);
    }
    decide::criteria_checks(d, inp);
    model_quality(d, inp)?;
    supporting(d, f);
    d.push(Block::Heading(2, "Terms".into()));
    d.push(Block::Bullets(vec![
        "Velocity win: a deal won within the velocity window (the median sales cycle) whose customer did not churn: fast, successful, retained.".into(),
        "Lift: a group's velocity-win rate over everyone's; 1.50 means half again as often.".into(),
        "95% CI: the range the true rate lies in, given how few deals there are; narrow means solid.".into(),
        format!("q (BH): the chance a finding is a fluke after allowing for testing many conditions (Benjamini-Hochberg); findings need {} or less. Criteria need more: their own test times the number of tests of their kind (Bonferroni) at {} or less.", f.signal_params.fdr, f.signal_params.criterion_fwer),
        "AUC: how often the model ranks a velocity win above a deal that was not one; 0.5 is chance, 1.0 perfect.".into(),
        "Expected value of a prospect: its segment's velocity-win rate x its average deal (the average prospect: all deals' rate x average deal); summed over prospects.".into(),
        "Prospect: an account whose CRM status is prospect: no customer record, no won or open deal (lost deals allowed). Open opportunity: an open deal and no win. The published segments hold both.".into(),
        "Model id: the fingerprint of the scoring model; approvals name it so the scores people act on are the ones they approved.".into(),
    ]));
    Ok(())
}

fn band<'a>(
    e: &'a crate::stages::model::Evaluation,
    name: &str,
) -> Option<&'a crate::stages::model::BandStats> {
    e.bands.iter().find(|b| b.band == name)
}

/// Three to five plain recommendations with their effect in the leader's terms.
fn recommendations(inp: &BriefInput) -> Vec<String> {
    let f = inp.findings;
    let icp = &f.icp;
    let mut out = Vec::new();
    if !f.readiness.ready {
        out.push("Keep targeting as it is until the failed readiness gates above are fixed; then re-run.".into());
    }
    ranking(&mut out, inp);
    if !icp.include.is_empty() {
        let c = &icp.include_coverage;
        out.push(format!(
            "Aim new outbound at the refined ICP ({}): on closed deals, accounts matching one became velocity wins {} of the time against {} for the rest ({} against {} on the later deals that played no part in choosing them); {} of {} prospects fit (match one and no exclusion), {} of them also in the High band: start there.",
            named(&icp.include),
            opt_pct(c.velocity_win_rate),
            opt_pct(c.other_velocity_win_rate),
            opt_pct(icp.include_later.velocity_win_rate),
            pct(icp.include_later.baseline),
            n(icp.prospects_fitting),
            n(icp.prospects),
            n(icp.prospects_fitting_high)
        ));
    } else {
        out.push("No condition adds enough velocity wins to be an include criterion: keep the current ICP and use the scores.".into());
    }
    exclusion_advice(&mut out, f);
    if let Some(t) = f.triggers.iter().find(|t| t.timing_supported) {
        out.push(format!(
            "Call accounts within {} days of a {}: a new opportunity followed {} of the time (median {} days later) against {} for comparable accounts on the same days. Those deals were won {} against {} otherwise: {}",
            t.window_days,
            t.trigger.replace('_', " "),
            pct(t.follow_rate),
            opt_num(t.median_lag_days, 0),
            opt_pct(t.baseline_follow_rate),
            opt_pct(t.win_rate),
            opt_pct(t.baseline_win_rate),
            if t.fit_supported {
                "they also fit better."
            } else {
                "a trigger tells when to call, not who fits."
            }
        ));
    }
    if !icp.review.is_empty() {
        out.push(format!(
            "Weigh the {} review items (mixed evidence, broad but weak, or not holding up on later deals) before targeting or excluding them: {}.",
            icp.review.len(),
            named(&icp.review)
        ));
    }
    out
}

/// Whether to rank accounts by score, and how strong a ranking it is.
fn ranking(out: &mut Vec<String>, inp: &BriefInput) {
    let e = &inp.artifact.evaluation;
    let count = |b: &str| {
        inp.band_counts
            .iter()
            .find(|x| x.0 == b)
            .map(|x| x.1)
            .unwrap_or(0)
    };
    let prospects_in = |b: &str| {
        inp.bands_now
            .iter()
            .find(|x| x.band == b)
            .map(|x| x.prospects)
            .unwrap_or(0)
    };
    let (high, low) = (Band::High.as_str(), Band::Low.as_str());
    match (e.reliable, band(e, high), band(e, low)) {
        (true, Some(h), Some(l)) => out.push(format!(
            "Work the {} High accounts first ({} of them prospects): on {} deals the model never saw, High won {} against {} for Low, and {} against {} became velocity wins (fast, retained).",
            n(count(high)),
            n(prospects_in(high)),
            n(e.holdout_deals),
            pct(h.win_rate),
            pct(l.win_rate),
            pct(h.velocity_win_share),
            pct(l.velocity_win_share)
        )),
        _ => out.push(format!(
            "Do not rank accounts by score yet: {}.",
            e.verdict
        )),
    }
    if e.reliable {
        let strength = if e.auc >= 0.75 {
            "a strong ranking"
        } else if e.auc >= 0.65 {
            "a moderate ranking"
        } else {
            "a weak but real ranking: useful for ordering a list, not for judging one account"
        };
        if let Some(first) = out.last_mut() {
            first.push_str(&format!(" The score is {strength}."));
        }
    }
}

/// What the exclusions give up, once the run is ready to publish them.
fn exclusion_advice(out: &mut Vec<String>, f: &Findings) {
    let icp = &f.icp;
    if f.readiness.ready && !icp.exclude.is_empty() {
        let biggest = icp
            .exclude
            .iter()
            .max_by(|x, y| x.expected_pipeline.total_cmp(&y.expected_pipeline));
        out.push(format!(
            "Stop outbound to the {} of {} prospects ({}) that match an exclusion ({}). The trade-off: they hold {} of the {} expected value of all prospects ({}; each prospect at its segment's velocity-win rate x average deal), and current customers matching them booked {} of their {}{}.",
            n(icp.prospects_excluded),
            n(icp.prospects),
            share(icp.prospects_excluded, icp.prospects),
            ids(&icp.exclude),
            money(icp.expected_pipeline_excluded),
            money(icp.expected_pipeline_all),
            pct(icp.expected_pipeline_excluded / icp.expected_pipeline_all),
            money(icp.customer_revenue_excluded),
            money(icp.customer_revenue_all),
            biggest
                .map(|b| format!(
                    "; {} ({}) alone gives up {} of expected value: decide it on its own",
                    b.finding.id,
                    b.finding.condition,
                    money(b.expected_pipeline)
                ))
                .unwrap_or_default()
        ));
    }
}

fn readiness(d: &mut Vec<Block>, f: &Findings) {
    d.push(Block::Heading(2, "Readiness gates".into()));
    d.push(Block::Table {
        head: vec!["gate".into(), "result".into(), "why".into()],
        rows: f
            .readiness
            .gates
            .iter()
            .map(|g| {
                vec![
                    g.gate.clone(),
                    if g.passed { "pass" } else { "FAIL" }.into(),
                    g.detail.clone(),
                ]
            })
            .collect(),
    });
}

fn model_quality(d: &mut Vec<Block>, inp: &BriefInput) -> Result<()> {
    let a = inp.artifact;
    let e = &a.evaluation;
    d.push(Block::Heading(2, "How good the model is".into()));
    d.push(Block::Bullets(quality_notes(a)));
    d.push(Block::Charts(vec![
        Chart {
            svg: charts::lift_by_decile(&e.calibration, e.base_rate)?,
            alt: "Chart: holdout lift by score decile (brief.html).".into(),
        },
        Chart {
            svg: charts::calibration(&e.calibration)?,
            alt: "Chart: calibration on the holdout (brief.html).".into(),
        },
    ]));
    d.push(Block::Table {
        head: vec![
            "band (holdout)".into(),
            "deals".into(),
            "win rate (95% CI)".into(),
            "velocity-win share (95% CI)".into(),
            "median cycle of wins (days)".into(),
        ],
        rows: e
            .bands
            .iter()
            .map(|b| {
                let k = |r: f64| (r * b.deals as f64).round() as usize;
                vec![
                    b.band.clone(),
                    n(b.deals),
                    pct_ci(
                        b.win_rate,
                        crate::util::metrics::wilson(k(b.win_rate), b.deals),
                    ),
                    pct_ci(
                        b.velocity_win_share,
                        crate::util::metrics::wilson(k(b.velocity_win_share), b.deals),
                    ),
                    opt_num(b.median_cycle_days_won, 0),
                ]
            })
            .collect(),
    });
    let skipped = &a.model.spec.skipped;
    if !skipped.is_empty() {
        d.push(Block::Para(
            "Account columns kept out of the model, and why (columns the sale itself writes and columns naming people or records are dropped by the leak guard; [features] allow in the config keeps a column you vouch for):".into(),
        ));
        d.push(Block::Bullets(
            skipped
                .iter()
                .map(|(c, why)| format!("{c}: {why}"))
                .collect(),
        ));
    }
    Ok(())
}

/// The verdict, the holdout it rests on, the scores and the model's inputs,
/// in words.
fn quality_notes(a: &ModelArtifact) -> Vec<String> {
    let e = &a.evaluation;
    let mut q = vec![
        format!("Verdict: {}.", e.verdict),
        format!(
            "Holdout: {} deals that {} from {} on, never used for fitting{}; {} velocity wins (base rate {}). Velocity win: won within {} days ({}) and not churned.",
            n(e.holdout_deals),
            match e.holdout_by {
                crate::config::HoldoutBy::ClosedDate => "closed",
                crate::config::HoldoutBy::CreatedDate => "were created",
            },
            e.holdout_from,
            match e.holdout_by {
                crate::config::HoldoutBy::ClosedDate => String::new(),
                crate::config::HoldoutBy::CreatedDate => format!(
                    " (a creation cohort, up to {}: the model trained on deals created before it; left out: {} deals created later, too recent to have closed, and {} still open)",
                    e.holdout_to.as_deref().unwrap_or("the newest date"),
                    n(e.holdout_left_recent),
                    n(e.holdout_left_open)
                ),
            },
            n(e.holdout_velocity_wins),
            pct(e.base_rate),
            a.velocity_window.days,
            a.velocity_window.source
        ),
        format!(
            "ROC AUC {:.3} (95% CI {:.3}-{:.3}); Brier {:.4} against {:.4} for the base rate alone.",
            e.auc, e.auc_ci95.0, e.auc_ci95.1, e.brier, e.brier_base_rate
        ),
    ];
    if let Some(u) = e.unseen_accounts_auc {
        q.push(format!(
            "On the {} holdout accounts never seen in training: AUC {:.3}.",
            n(e.holdout_accounts_unseen),
            u
        ));
    }
    let spec = &a.model.spec;
    let shape = match spec.numeric_shape() {
        crate::config::NumericShape::Splines => "as smooth curves (splines)",
        _ => "as bands",
    };
    let how = match a.config.features.numeric_shape {
        crate::config::NumericShape::Auto => "chosen by cross-validation over bands and curves",
        _ => "as the config sets it",
    };
    q.push(format!(
        "Inputs: {} columns; sizes and other numbers enter {shape}, {how}; {} interaction terms (a value or band of one column together with one of another) passed the screen.",
        spec.variables.len(),
        spec.interactions.len()
    ));
    if let Some(o) = &e.oracle {
        q.push(format!(
            "Against the generator's true probabilities on the same deals: oracle AUC {:.3}, model {:.3}.",
            o.oracle_auc, o.model_auc
        ));
    }
    q
}

fn finding_rows(list: &[Finding]) -> Vec<Vec<String>> {
    list.iter()
        .take(TOP)
        .map(|s| {
            vec![
                s.id.clone(),
                s.condition.clone(),
                s.criterion.clone().unwrap_or_else(|| "-".into()),
                n(s.accounts),
                n(s.deals),
                pct_ci(s.velocity_win_rate, s.velocity_win_rate_ci95),
                format!("{:.2}", s.lift),
                opt_num(s.median_cycle_days, 0),
                opt_pct(s.churn_rate),
                opt_money(s.average_deal),
                opt_money(s.sales_velocity_per_day),
                p_value(s.q_value),
            ]
        })
        .collect()
}

const FINDING_HEAD: [&str; 12] = [
    "id",
    "condition",
    "ICP criterion",
    "accounts",
    "deals",
    "velocity-win rate (95% CI)",
    "lift",
    "median cycle (days)",
    "churn",
    "average deal",
    "velocity per day",
    "q (BH)",
];

fn supporting(d: &mut Vec<Block>, f: &Findings) {
    let p = &f.signal_params;
    let b = &f.baseline;
    d.push(Block::Heading(
        2,
        "Supporting evidence: every finding".into(),
    ));
    d.push(Block::Para(format!(
        "Every condition that passed the tests, with the ICP criterion it is or supports. A dash means it is not part of the refined ICP: it adds little beyond the criteria or falls short of their bar, so it is neither targeted nor excluded. Signals: deals become velocity wins at least {:.2}x as often as the baseline ({} of {} deals); exclusions: fewer velocity wins, more churn, lower delivery fit or lower margin. Each with at least {} accounts and {} velocity wins (signals), surviving a Benjamini-Hochberg correction over all {} tests of {} conditions ({} more conditions were below the support minimum and not tested); pairs must also beat each part alone. Sales velocity per day: closed opportunities per 30 days (over the {} days of the data) x close rate x average deal / median cycle in days, capped at what was booked per day; the whole book runs at {} a day. Files: signals.csv, exclusions.csv, and the accounts behind each finding in finding_accounts.parquet.",
        p.min_lift,
        pct(b.velocity_win_rate),
        n(b.deals),
        p.min_accounts,
        p.min_wins,
        n(f.tests),
        n(f.tested_conditions),
        n(f.below_support),
        n(b.period_days.round() as usize),
        opt_money(b.sales_velocity_per_day)
    )));
    for (name, list, file) in [
        ("Best-fit signals", &f.signals, "signals.csv"),
        ("Poor-fit exclusions", &f.exclusions, "exclusions.csv"),
    ] {
        d.push(Block::Heading(3, name.into()));
        if list.is_empty() {
            d.push(Block::Para("None pass.".into()));
            continue;
        }
        d.push(Block::Table {
            head: FINDING_HEAD.iter().map(|s| s.to_string()).collect(),
            rows: finding_rows(list),
        });
        if list.len() > TOP {
            d.push(Block::Para(format!(
                "{} more in {file}.",
                n(list.len() - TOP)
            )));
        }
    }
}

fn customers(d: &mut Vec<Block>, f: &Findings) {
    d.push(Block::Heading(2, "Painful and best customers".into()));
    let p = &f.painful;
    d.push(Block::Para(format!(
        "Of {} won customers, {} are high-revenue (won revenue {} or more); {} of those churned, took over {:.0}x the velocity window to close, or have poor delivery fit or low margin (painful_customers.csv). For contrast, {} customers are the best kind: a velocity win, retained, delivery fit 4+ where known (best_customers.csv).",
        n(p.won_accounts),
        n(p.high_revenue_accounts),
        opt_money(p.high_revenue_from),
        n(p.painful_accounts),
        f.signal_params.painful_slow_factor,
        n(p.best_accounts)
    )));
    d.push(Block::Heading(
        3,
        "Conditions painful customers share".into(),
    ));
    if p.shared_conditions.is_empty() {
        d.push(Block::Para(
            "None found: no condition holds a painful share clearly above the rest of the high-revenue customers.".into(),
        ));
    } else {
        d.push(Block::Table {
            head: vec![
                "condition they share".into(),
                "high-revenue customers".into(),
                "painful".into(),
                "painful share (95% CI)".into(),
                "lift".into(),
            ],
            rows: p
                .shared_conditions
                .iter()
                .take(TOP)
                .map(|s| {
                    vec![
                        s.condition.clone(),
                        n(s.accounts),
                        n(s.painful),
                        pct_ci(s.painful_share, s.painful_share_ci95),
                        format!("{:.2}", s.lift),
                    ]
                })
                .collect(),
        });
    }
    let list = |df: &polars::prelude::DataFrame, why: Option<&str>| -> Vec<Vec<String>> {
        let take = df.head(Some(10));
        let col = |c: &str| crate::util::frame::str_col(&take, c).unwrap_or_default();
        let ids = col("account_id");
        let names = col("account_name");
        let rev = crate::util::frame::f64_col(&take, "won_revenue").unwrap_or_default();
        let pain = why.map(col);
        (0..take.height())
            .map(|i| {
                let mut r = vec![
                    ids.get(i).cloned().flatten().unwrap_or_default(),
                    names.get(i).cloned().flatten().unwrap_or_default(),
                    opt_money(rev.get(i).copied().flatten()),
                ];
                if let Some(p) = &pain {
                    r.push(p.get(i).cloned().flatten().unwrap_or_default());
                }
                r
            })
            .collect()
    };
    if f.painful_accounts.height() > 0 {
        d.push(Block::Heading(3, "The largest painful customers".into()));
        d.push(Block::Table {
            head: vec![
                "account".into(),
                "name".into(),
                "won revenue".into(),
                "why painful".into(),
            ],
            rows: list(&f.painful_accounts, Some("pain")),
        });
    }
    if f.best_accounts.height() > 0 {
        d.push(Block::Heading(3, "The largest best customers".into()));
        d.push(Block::Table {
            head: vec!["account".into(), "name".into(), "won revenue".into()],
            rows: list(&f.best_accounts, None),
        });
    }
}

fn triggers(d: &mut Vec<Block>, f: &Findings) {
    d.push(Block::Heading(2, "Buying triggers".into()));
    if f.triggers.is_empty() {
        d.push(Block::Para(
            "No triggers file, or no trigger events.".into(),
        ));
        return;
    }
    let w = f.signal_params.trigger_window_days;
    d.push(Block::Para(format!(
        "Two questions per trigger. Timing: is a new opportunity opened within {w} days of the trigger more often than by comparable accounts (never triggered, with the same prior activity: an opportunity before that day or none) over the same {w} days? Fit: are the opportunities that follow won more often than those of accounts without a trigger? A trigger that passes timing but not fit says when to call, not who fits (triggers.json)."
    )));
    d.push(Block::Table {
        head: [
            "trigger",
            "events",
            "had prior opportunity",
            &format!("opportunity within {w} days (95% CI)"),
            "comparable accounts",
            "lift",
            "timing",
            "won of closed (95% CI)",
            "others' win rate",
            "fit",
            "median lag (days)",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
        rows: f
            .triggers
            .iter()
            .map(|t| {
                vec![
                    t.trigger.clone(),
                    n(t.events),
                    pct(t.prior_activity_share),
                    pct_ci(t.follow_rate, t.follow_rate_ci95),
                    opt_pct(t.baseline_follow_rate),
                    opt_num(t.lift, 2),
                    if t.timing_supported {
                        "supported"
                    } else {
                        "not supported"
                    }
                    .into(),
                    match (t.win_rate, t.win_rate_ci95) {
                        (Some(x), Some(ci)) => format!("{} of {}", pct_ci(x, ci), n(t.closed)),
                        _ => "n/a".into(),
                    },
                    opt_pct(t.baseline_win_rate),
                    if t.fit_supported {
                        "wins more"
                    } else {
                        "no difference shown"
                    }
                    .into(),
                    opt_num(t.median_lag_days, 0),
                ]
            })
            .collect(),
    });
}

fn segments(d: &mut Vec<Block>, inp: &BriefInput) {
    d.push(Block::Heading(2, "Segments and qualification".into()));
    band_table(d, inp);
    qualification(d, inp.findings);
    d.push(Block::Table {
        head: vec![
            "run directory's segment file (every scored account: before the audience, exclusions and control)".into(),
            "accounts".into(),
        ],
        rows: inp
            .segment_counts
            .iter()
            .map(|(t, c)| vec![crate::domain::Segment::ScoreAtLeast(*t).file_name(), n(*c)])
            .collect(),
    });
}

/// Each band's accounts and prospects, with what to do and expect.
fn band_table(d: &mut Vec<Block>, inp: &BriefInput) {
    let e = &inp.artifact.evaluation;
    let icp = &inp.findings.icp;
    let expect = |name: &str| {
        band(e, name)
            .map(|b| {
                format!(
                    "on the holdout: won {}, velocity wins {}",
                    pct(b.win_rate),
                    pct(b.velocity_win_share)
                )
            })
            .unwrap_or_default()
    };
    d.push(Block::Table {
        head: vec![
            "band".into(),
            "accounts".into(),
            "prospects".into(),
            "what to expect".into(),
        ],
        rows: inp
            .band_counts
            .iter()
            .map(|(b, c)| {
                let banded: usize = inp.bands_now.iter().map(|x| x.prospects).sum();
                let prospects = inp
                    .bands_now
                    .iter()
                    .find(|x| &x.band == b)
                    .map(|x| n(x.prospects))
                    .unwrap_or_else(|| n(icp.prospects.saturating_sub(banded)));
                let what = match Band::parse(b) {
                    Some(band) => {
                        let act = match band {
                            Band::High => "work first",
                            Band::Medium => "nurture",
                            Band::Low => "deprioritise",
                        };
                        format!(
                            "score {}: {act}; {}",
                            band.range_words(),
                            expect(band.as_str())
                        )
                    }
                    None => "too little data to score: enrich before targeting".into(),
                };
                vec![b.clone(), n(*c), prospects, what]
            })
            .collect(),
    });
}

/// Qualification checklists built from the ICP's criteria and triggers.
fn qualification(d: &mut Vec<Block>, f: &Findings) {
    let icp = &f.icp;
    let inc = if icp.include.is_empty() {
        "no include criterion yet: rely on the score".to_string()
    } else {
        icp.include
            .iter()
            .map(|c| c.finding.condition.clone())
            .collect::<Vec<_>>()
            .join(", or ")
    };
    let exc = icp
        .exclude
        .iter()
        .map(|c| c.finding.condition.clone())
        .collect::<Vec<_>>()
        .join("; ");
    let trig: Vec<String> = f
        .triggers
        .iter()
        .filter(|t| t.timing_supported)
        .map(|t| t.trigger.replace('_', " "))
        .collect();
    let trig_q = if trig.is_empty() {
        None
    } else {
        Some(format!(
            "ask whether a {} happened in the last {} days (then call now)",
            trig.join(", "),
            f.signal_params.trigger_window_days
        ))
    };
    let mut high = vec![format!("confirm one of: {inc}")];
    if !exc.is_empty() {
        high.push(format!(
            "once the exclusions are approved, disqualify if any of: {exc}"
        ));
    }
    high.extend(trig_q.clone());
    let mut medium = vec![format!(
        "move to High treatment when one of these holds: {inc}"
    )];
    medium.extend(trig_q.clone());
    let mut low = vec!["no outbound spend".to_string()];
    if let Some(t) = &trig_q {
        low.push(format!(
            "{t}, and reconsider only if an include criterion also holds"
        ));
    }
    d.push(Block::Para(
        "Qualification checklists for sales reps:".into(),
    ));
    d.push(Block::Bullets(vec![
        format!("High: {}.", high.join("; ")),
        format!("Medium: {}.", medium.join("; ")),
        format!("Low: {}.", low.join("; ")),
    ]));
}

fn measurement_section(d: &mut Vec<Block>, inp: &BriefInput, m: &Measurement) {
    d.push(Block::Heading(2, "Measurement plan".into()));
    d.push(Block::Para(
        "Each measure below can come out badly; the next run compares with these values (measurement.json), and the events log (reports/events.jsonl) records every run and approval.".into(),
    ));
    earlier_bands(d, inp);
    control_comparison(d, inp);
    bands_today(d, inp);
    baseline_values(d, m);
}

/// What the accounts of each earlier scoring did next, by the band it gave.
fn earlier_bands(d: &mut Vec<Block>, inp: &BriefInput) {
    d.push(Block::Heading(
        3,
        "Did the bands convert in practice?".into(),
    ));
    if inp.earlier.is_empty() {
        d.push(Block::Para(
            "No earlier scoring of these accounts yet. The next run reads the scores of every earlier run under the reports directory and shows, band by band, what happened next: new opportunities, wins, velocity wins, cycle and churn.".into(),
        ));
    } else {
        for s in inp.earlier {
            d.push(Block::Para(format!(
                "Accounts as scored by run {} (data as of {}), and what they did in the {} days since:",
                s.run_id,
                s.as_of,
                n(s.days_since.max(0) as usize)
            )));
            d.push(Block::Table {
                head: [
                    "band then",
                    "accounts",
                    "opened an opportunity (95% CI)",
                    "closed",
                    "won (95% CI)",
                    "velocity wins (95% CI)",
                    "median cycle of wins (days)",
                    "churned",
                ]
                .iter()
                .map(|s| s.to_string())
                .collect(),
                rows: s
                    .bands
                    .iter()
                    .map(|b| {
                        let opt_ci = |x: Option<f64>, ci: Option<(f64, f64)>| match (x, ci) {
                            (Some(x), Some(ci)) => pct_ci(x, ci),
                            _ => "n/a".into(),
                        };
                        vec![
                            b.band.clone(),
                            n(b.accounts),
                            b.new_opportunity_rate
                                .map(|x| pct_ci(x, b.new_opportunity_rate_ci95))
                                .unwrap_or_else(|| "n/a".into()),
                            n(b.closed),
                            opt_ci(b.win_rate, b.win_rate_ci95),
                            opt_ci(b.velocity_win_rate, b.velocity_win_rate_ci95),
                            opt_num(b.median_cycle_days_won, 0),
                            format!("{} of {}", n(b.churned), n(b.won)),
                        ]
                    })
                    .collect(),
            });
        }
    }
}

/// Targeted against withheld accounts of the latest publication with a
/// control group: whether targeting itself made the difference.
fn control_comparison(d: &mut Vec<Block>, inp: &BriefInput) {
    d.push(Block::Heading(
        3,
        "Did targeting help? Targeted against the control group".into(),
    ));
    match inp.control {
        None => d.push(Block::Para(
            "No control group yet. With [publish] control_share (for example 0.1), each publication withholds that share of each band's targeting accounts (the same accounts for a model's life, listed in segments/control.csv); the next run compares what happened to targeted and withheld accounts, band by band.".into(),
        )),
        Some(c) => {
            d.push(Block::Para(format!(
                "Publication {} (data as of {}) targeted some accounts and withheld others of the same bands; what each did since:",
                c.publication_id, c.as_of
            )));
            let cell = |x: Option<f64>, ci: Option<(f64, f64)>| match (x, ci) {
                (Some(x), Some(ci)) => pct_ci(x, ci),
                _ => "n/a".into(),
            };
            d.push(Block::Table {
                head: [
                    "band",
                    "targeted",
                    "withheld",
                    "opened an opportunity: targeted",
                    "withheld",
                    "won: targeted",
                    "withheld",
                    "velocity wins: targeted",
                    "withheld",
                ]
                .iter()
                .map(|s| s.to_string())
                .collect(),
                rows: c
                    .targeted
                    .bands
                    .iter()
                    .zip(&c.control.bands)
                    .map(|(t, w)| {
                        vec![
                            t.band.clone(),
                            n(t.accounts),
                            n(w.accounts),
                            cell(t.new_opportunity_rate, Some(t.new_opportunity_rate_ci95)),
                            cell(w.new_opportunity_rate, Some(w.new_opportunity_rate_ci95)),
                            cell(t.win_rate, t.win_rate_ci95),
                            cell(w.win_rate, w.win_rate_ci95),
                            cell(t.velocity_win_rate, t.velocity_win_rate_ci95),
                            cell(w.velocity_win_rate, w.velocity_win_rate_ci95),
                        ]
                    })
                    .collect(),
            });
        }
    }
}

/// Today's customers, churn, onboarding risk and losses, by band.
fn bands_today(d: &mut Vec<Block>, inp: &BriefInput) {
    d.push(Block::Heading(
        3,
        "Customers and losses by band today".into(),
    ));
    d.push(Block::Table {
        head: [
            "band",
            "won accounts",
            "mean won revenue",
            "churned",
            "onboarding risk (delivery fit 2 or less)",
            "lost deals",
            "top loss reasons",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
        rows: inp
            .bands_now
            .iter()
            .map(|b| {
                vec![
                    b.band.clone(),
                    n(b.won_accounts),
                    opt_money(b.mean_won_revenue),
                    format!("{} ({})", n(b.churned_accounts), opt_pct(b.churn_rate)),
                    format!("{} of {}", n(b.onboarding_risk), n(b.fit_known)),
                    n(b.lost_deals),
                    b.loss_reasons
                        .iter()
                        .map(|(r, k)| format!("{r} {}", share(*k, b.lost_deals)))
                        .collect::<Vec<_>>()
                        .join(", "),
                ]
            })
            .collect(),
    });
}

/// The values the next run compares with, and the evidence still missing.
fn baseline_values(d: &mut Vec<Block>, m: &Measurement) {
    d.push(Block::Heading(3, "Baseline values".into()));
    let mut rows = vec![
        vec![
            "close rate".into(),
            pct(m.close_rate),
            "won (incl. later churned) over closed deals".into(),
        ],
        vec![
            "sales cycle (days)".into(),
            opt_num(m.median_sales_cycle_days, 0),
            "median days from created to closed, won deals".into(),
        ],
        vec![
            "churn".into(),
            opt_pct(m.churn_rate),
            "churned over won deals".into(),
        ],
        vec![
            "delivery fit".into(),
            opt_num(m.mean_delivery_fit, 2),
            "mean delivery_fit (1-5) of customers with a closed deal".into(),
        ],
        vec![
            "sales velocity per day".into(),
            opt_money(m.sales_velocity_per_day),
            "closed opportunities per 30 days x close rate x average deal / median cycle days; capped at bookings per day".into(),
        ],
    ];
    for al in &m.icp_evidence_alignment_rate {
        rows.push(vec![
            format!("icp_evidence_alignment_rate ({})", al.kind),
            match al.rate {
                Some(x) if al.against.is_empty() => {
                    format!("{} ({} of {})", pct(x), n(al.backed), n(al.criteria))
                }
                Some(x) => format!(
                    "{} ({} of {}; against: {})",
                    pct(x),
                    n(al.backed),
                    n(al.criteria),
                    al.against.join(", ")
                ),
                None if !al.available => "missing".into(),
                None => "n/a".into(),
            },
            format!(
                "share of the refined ICP's criteria whose {} evidence points the same way ({}); the rest lack that evidence (too few customers) or point the other way",
                al.kind,
                match al.kind.as_str() {
                    "win/loss" => "include: velocity wins above the baseline; exclude: fewer velocity wins among its reasons",
                    "retention" => "include: churn at most 10% above the baseline (plus one point); exclude: churn above it",
                    "margin" => "include: gross margin no more than min_margin_gap below the baseline; exclude: below it",
                    _ => "include: delivery fit no more than min_fit_gap below the baseline; exclude: below it",
                }
            ),
        ]);
    }
    d.push(Block::Table {
        head: vec!["measure".into(), "today".into(), "definition".into()],
        rows,
    });
    if !m.missing_evidence.is_empty() {
        d.push(Block::Callout(format!(
            "Missing evidence: {}. Add it (customers.csv: status, delivery_fit, gross_margin) before trusting the criteria on those counts.",
            m.missing_evidence.join(", ")
        )));
    }
}

#[cfg(test)]
mod tests {
    use crate::evidence::signals::conditions::sales_velocity;

    /// 120 closed deals over 360 days: 10 per 30-day period; 60 won at $10k
    /// on average; cycle 60 days: 10 x 0.5 x $10,000 / 60 = $833 a day,
    /// below the $1,667 a day booked ($600k / 360).
    #[test]
    fn sales_velocity_by_its_definition_and_never_above_bookings() {
        let v = sales_velocity(120.0, 60.0, 10_000.0, 60.0, 360.0, 600_000.0).unwrap();
        assert!((v - 10.0 * 0.5 * 10_000.0 / 60.0).abs() < 1e-9, "{v}");
        // a faster cycle is a higher velocity...
        let fast = sales_velocity(120.0, 60.0, 10_000.0, 40.0, 360.0, 600_000.0).unwrap();
        assert!((fast - 1_250.0).abs() < 1e-9, "{fast}");
        // ...but never above what was booked per day ($1,666.67)
        let faster = sales_velocity(120.0, 60.0, 10_000.0, 15.0, 360.0, 600_000.0).unwrap();
        assert!((faster - 600_000.0 / 360.0).abs() < 1e-9, "{faster}");
        // half the won deals lack an amount: only $300k booked, $833 a day
        let capped = sales_velocity(120.0, 60.0, 10_000.0, 30.0, 360.0, 300_000.0).unwrap();
        assert!((capped - 300_000.0 / 360.0).abs() < 1e-9, "{capped}");
        assert_eq!(sales_velocity(0.0, 0.0, 1.0, 30.0, 360.0, 0.0), None);
    }
}
