//! Layer 5, the evidence behind the ICP: best-fit signals and poor-fit
//! exclusions ([`signals`]), buying triggers ([`triggers`]), painful
//! customers ([`painful`]), the readiness gates ([`readiness`]), the refined
//! ICP chosen from the findings ([`refine`]) and how earlier scorings turned
//! out ([`measure`]). [`analyse`] gathers them for one run.
//!
//! The pipeline proposes; the brief asks people to decide. Nothing here is
//! published as final targeting: exclusions stay proposals until approved.

pub mod measure;
pub mod painful;
pub mod readiness;
pub mod refine;
pub mod signals;
pub mod triggers;

use polars::prelude::*;

use crate::config::SignalParams;
use crate::error::Result;
use crate::stages::features::FeatureSpec;
use crate::stages::model::Evaluation;
use crate::util::frame::{f64_col, text_col};
use painful::PainfulSummary;
use readiness::Readiness;
use signals::conditions;
use signals::rows::{account_rows, deal_rows};
use signals::{Baseline, Finding};
use triggers::TriggerFinding;

/// Everything the brief reports, with the frames written beside it.
#[derive(Debug, Clone)]
pub struct Findings {
    pub signal_params: SignalParams,
    pub readiness: Readiness,
    pub baseline: Baseline,
    pub signals: Vec<Finding>,
    /// proposals; published (as `exclusions.csv`) only when the run is ready
    pub exclusions: Vec<Finding>,
    pub tested_conditions: usize,
    pub below_support: usize,
    /// tests run over all conditions (the multiple-testing family), and of
    /// them on single conditions and on pairs
    pub tests: usize,
    pub single_tests: usize,
    pub pair_tests: usize,
    pub painful: PainfulSummary,
    pub triggers: Vec<TriggerFinding>,
    /// finding_id, condition, account_id, deals, velocity_wins, churned_deals
    pub finding_accounts: DataFrame,
    /// exclusion_id, criterion, account_id (prospects only)
    pub exclusion_matches: DataFrame,
    pub painful_accounts: DataFrame,
    /// the refined ICP: a few include and exclude criteria chosen from the
    /// signals and exclusions above
    pub icp: refine::RefinedIcp,
    /// best customers: velocity win, retained, delivery fit 4+ where known
    pub best_accounts: DataFrame,
    /// the accounts (in the accounts' row order) each exclude criterion of
    /// the refined ICP matches
    pub exclude_masks: Vec<(String, signals::rows::Bits)>,
}

pub struct Inputs<'a> {
    pub spec: &'a FeatureSpec,
    pub accounts: &'a DataFrame,
    pub opportunities: &'a DataFrame,
    pub customers: Option<&'a DataFrame>,
    pub triggers: Option<&'a DataFrame>,
    /// labelled deals (see [`crate::stages::label::Labels`])
    pub labels: &'a DataFrame,
    pub window_days: i64,
    pub evaluation: &'a Evaluation,
    /// the accounts' ids as row numbers
    pub index: &'a crate::util::ids::AccountIndex<'a>,
    /// the model's scores of every account, by the accounts' row
    pub scored: &'a crate::stages::score::ByRow,
    /// buyer interview quotes (account_id, date, role, quote)
    pub interviews: Option<&'a DataFrame>,
    /// each account's CRM status, by the accounts' row (as the feed publishes it)
    pub crm: &'a [crate::domain::CrmStatus],
    /// called between the steps, when the step's frames are gone: the
    /// caller's say over process memory (the run hands free pages back to
    /// the system there), not the analysis's
    pub between_steps: fn(),
}

pub fn analyse(inp: &Inputs, params: &SignalParams) -> Result<Findings> {
    let mut trace = crate::util::progress::Trace::start();
    // the triggers and painful customers first: each needs memory for a
    // while, and here it does not stack on the frames built below
    let (readiness, triggers) = readiness_and_triggers(inp, params)?;
    trace.lap("readiness+triggers");
    (inp.between_steps)();
    let codes = conditions::account_codes(inp.spec, inp.accounts)?;
    let (painful_accounts, painful, best_accounts) = painful::painful(
        inp.spec,
        inp.accounts,
        inp.index,
        &codes,
        inp.labels,
        inp.customers,
        inp.window_days,
        params,
    )?;
    trace.lap("codes+painful");
    (inp.between_steps)();
    let (deals, customers) = deal_and_customer_frames(inp, &codes)?;
    let period_days = period_days(inp.labels)?;
    trace.lap("deal/customer frames");
    (inp.between_steps)();
    let mut screen = conditions::screen(inp.spec, &deals, customers.as_ref(), params, period_days)?;
    trace.lap("screen");
    (inp.between_steps)();
    let nv = inp.spec.variables.len();
    let deal_rows = deal_rows(&deals, inp.index.len(), nv)?;
    let account_rows = account_rows(
        &codes,
        inp.index,
        inp.labels,
        inp.scored,
        inp.customers,
        inp.interviews,
        inp.crm,
        nv,
    )?;
    // the accounts' cells live on in the account rows' bits
    drop((codes, customers));
    trace.lap("deal/account rows");
    (inp.between_steps)();
    let (icp, exclude_masks) =
        refined_icp(&mut screen, &deal_rows, &account_rows, params, inp.accounts)?;
    trace.lap("refine");
    let exclusion_matches = conditions::exclusion_matches(
        &account_rows,
        &crate::util::ids::text(inp.accounts, "account_id")?,
        &screen.exclusions,
    )?;
    drop(account_rows);
    trace.lap("exclusion_matches");
    (inp.between_steps)();
    let behind: Vec<&Finding> = screen.signals.iter().chain(&screen.exclusions).collect();
    let finding_accounts = conditions::finding_accounts(&deals, &deal_rows, &behind)?;
    drop(deal_rows);
    trace.lap("finding_accounts");
    (inp.between_steps)();
    Ok(Findings {
        signal_params: params.clone(),
        readiness,
        baseline: screen.baseline,
        signals: screen.signals,
        exclusions: screen.exclusions,
        tested_conditions: screen.tested,
        below_support: screen.below_support,
        tests: screen.tests,
        single_tests: screen.single_tests,
        pair_tests: screen.pair_tests,
        painful,
        triggers,
        finding_accounts,
        exclusion_matches,
        painful_accounts,
        exclude_masks: icp
            .exclude
            .iter()
            .map(|c| c.finding.id.clone())
            .zip(exclude_masks)
            .collect(),
        icp,
        best_accounts,
    })
}

/// The readiness gates, then the buying triggers (none without trigger rows).
fn readiness_and_triggers(
    inp: &Inputs,
    params: &SignalParams,
) -> Result<(Readiness, Vec<TriggerFinding>)> {
    let readiness = readiness::assess(
        &readiness::GateInputs {
            labels: inp.labels,
            opportunities: inp.opportunities,
            customers: inp.customers,
            evaluation: inp.evaluation,
        },
        params,
    )?;
    let triggers = match inp.triggers {
        Some(t) if t.height() > 0 => triggers::summarise(
            inp.index,
            inp.opportunities,
            t,
            params.trigger_window_days,
            params.min_accounts,
            params.fdr,
        )?,
        _ => Vec::new(),
    };
    Ok((readiness, triggers))
}

/// The deal frame and, with customers, the customer frame.
fn deal_and_customer_frames(
    inp: &Inputs,
    codes: &DataFrame,
) -> Result<(DataFrame, Option<DataFrame>)> {
    // built once and read by the screen, the refined ICP and the finding
    // lists; one chunk each, so sums do not depend on how they were put
    // together
    let mut deals = conditions::deal_frame(inp.labels, codes, inp.index)?;
    deals.rechunk_mut_par();
    let customers = match inp.customers {
        Some(c) => {
            let mut df = conditions::customer_frame(inp.labels, c, codes, inp.index)?;
            df.rechunk_mut_par();
            Some(df)
        }
        None => None,
    };
    Ok((deals, customers))
}

/// The refined ICP chosen from the screen's findings (which it reorders and
/// renumbers), its criteria's best customers named, and the accounts each
/// exclude criterion matches.
fn refined_icp(
    screen: &mut conditions::Screen,
    deal_rows: &signals::rows::DealRows,
    account_rows: &signals::rows::AccountRows,
    params: &SignalParams,
    accounts: &DataFrame,
) -> Result<(refine::RefinedIcp, Vec<signals::rows::Bits>)> {
    let (mut icp, exclude_masks) = refine::refine(
        &mut screen.signals,
        &mut screen.exclusions,
        deal_rows,
        account_rows,
        screen.baseline.velocity_win_rate,
        screen.baseline.average_deal,
        &refine::IcpParams {
            max_criteria: params.max_criteria,
            min_accounts: params.min_accounts,
            fwer: params.criterion_fwer,
            single_tests: screen.single_tests,
            pair_tests: screen.pair_tests,
            rules: params.icp.clone(),
        },
    );
    name_best_customers(&mut icp, accounts)?;
    Ok((icp, exclude_masks))
}

/// Name each criterion's best customers (rows of the accounts frame).
fn name_best_customers(icp: &mut refine::RefinedIcp, accounts: &DataFrame) -> Result<()> {
    let ids = text_col(accounts, "account_id")?;
    let names = if accounts
        .get_column_names()
        .iter()
        .any(|c| c.as_str() == "account_name")
    {
        Some(text_col(accounts, "account_name")?)
    } else {
        None
    };
    for c in icp
        .include
        .iter_mut()
        .chain(icp.exclude.iter_mut())
        .chain(icp.review.iter_mut())
    {
        c.best_customers = c
            .best_rows
            .iter()
            .map(|&(r, won_revenue)| {
                let id = ids.get(r).unwrap_or_default().to_string();
                refine::NamedAccount {
                    name: names
                        .as_ref()
                        .and_then(|n| n.get(r))
                        .filter(|n| !n.trim().is_empty())
                        .unwrap_or(&id)
                        .to_string(),
                    account_id: id,
                    won_revenue,
                }
            })
            .collect();
    }
    Ok(())
}

/// Days from the first to the last close date of the labelled deals (at
/// least one): the period that sales velocity is measured over.
fn period_days(labels: &DataFrame) -> Result<f64> {
    let d = labels
        .clone()
        .lazy()
        .select([
            col("closed_date").cast(DataType::Int32).min().alias("lo"),
            col("closed_date").cast(DataType::Int32).max().alias("hi"),
        ])
        .collect()?;
    let lo = f64_col(&d, "lo")?.first().copied().flatten();
    let hi = f64_col(&d, "hi")?.first().copied().flatten();
    Ok(match (lo, hi) {
        (Some(a), Some(b)) => (b - a).max(1.0),
        _ => 1.0,
    })
}
