//! Stage 6: the evidence behind the ICP. Best-fit signals, poor-fit
//! exclusions, painful customers, buying triggers and the readiness gates,
//! each with support, intervals and a correction for testing many conditions.
//!
//! The pipeline proposes; the brief asks people to decide. Nothing here is
//! published as final targeting: exclusions stay proposals until approved.

pub mod conditions;
pub mod painful;
pub mod readiness;
pub mod stats;
pub mod triggers;

use polars::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::features::FeatureSpec;
use crate::model::Evaluation;

pub use conditions::{Baseline, Finding};
pub use painful::PainfulSummary;
pub use readiness::{Gate, Readiness};
pub use triggers::TriggerFinding;

/// The knobs of the findings (`[signals]` in the config).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SignalParams {
    /// a condition needs this many accounts with a closed deal to be tested
    pub min_accounts: usize,
    /// and a best-fit signal this many velocity wins
    pub min_wins: usize,
    /// Benjamini-Hochberg false discovery rate
    pub fdr: f64,
    /// a signal's rate must be at least this multiple of the baseline
    /// (an exclusion's at most its inverse)
    pub min_lift: f64,
    /// also test pairs of conditions
    pub pairs: bool,
    /// delivery fit (1-5) this far below the baseline makes a segment hard to serve
    pub min_fit_gap: f64,
    /// gross margin this far below the baseline is a low-margin segment
    pub min_margin_gap: f64,
    pub trigger_window_days: i64,
    /// painful: a cycle longer than this multiple of the velocity window
    pub painful_slow_factor: f64,
    pub painful_fit_max: f64,
    pub painful_margin_below: f64,
    /// high revenue: at or above this quantile of won revenue per account
    pub painful_revenue_quantile: f64,
    pub min_won: usize,
    pub min_lost: usize,
    pub max_generic_loss_share: f64,
    /// the refined ICP keeps at most this many include (and exclude) criteria
    #[serde(default = "default_max_criteria")]
    pub max_criteria: usize,
    /// a refined-ICP criterion's own p-value times the number of tests of
    /// its kind, single or pair (Bonferroni), must be at most this
    #[serde(default = "default_criterion_fwer")]
    pub criterion_fwer: f64,
    /// loss reasons that say nothing specific, as [`readiness::reason_key`]s
    #[serde(default = "readiness::default_generic_reasons")]
    pub generic_reasons: Vec<String>,
    /// when a finding becomes a criterion of the refined ICP (`[icp]`)
    #[serde(default)]
    pub icp: IcpRules,
}

/// When a finding is worth acting on (`[icp]` in the config).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct IcpRules {
    /// an include criterion's deals become velocity wins at least this
    /// multiple of the baseline
    pub min_include_lift: f64,
    /// an exclusion: a segment where working a prospect does not pay; its
    /// velocity-win rate at most this multiple of the baseline ...
    pub max_exclude_lift: f64,
    /// ... and the upper end of its 95% interval below this multiple
    pub max_exclude_upper_lift: f64,
    /// the cost of working one prospect: when set, exclude where a
    /// prospect's expected value is below it (the rule in dollars)
    #[serde(default)]
    pub cost_per_prospect: Option<f64>,
    /// the exclusions together give up at most this share of all
    /// prospects' expected value
    pub max_excluded_value: f64,
}

impl Default for IcpRules {
    fn default() -> Self {
        IcpRules {
            min_include_lift: 1.5,
            max_exclude_lift: 0.5,
            max_exclude_upper_lift: 0.8,
            cost_per_prospect: None,
            max_excluded_value: 0.15,
        }
    }
}

fn default_criterion_fwer() -> f64 {
    0.01
}

fn default_max_criteria() -> usize {
    7
}

impl Default for SignalParams {
    fn default() -> Self {
        SignalParams {
            min_accounts: 20,
            min_wins: 5,
            fdr: 0.05,
            min_lift: 1.25,
            pairs: true,
            min_fit_gap: 0.5,
            min_margin_gap: 0.05,
            trigger_window_days: 90,
            painful_slow_factor: 2.0,
            painful_fit_max: 2.0,
            painful_margin_below: 0.45,
            painful_revenue_quantile: 0.75,
            min_won: 50,
            min_lost: 50,
            max_generic_loss_share: 0.6,
            max_criteria: default_max_criteria(),
            criterion_fwer: default_criterion_fwer(),
            generic_reasons: readiness::default_generic_reasons(),
            icp: IcpRules::default(),
        }
    }
}

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
    pub icp: crate::icp::RefinedIcp,
    /// best customers: velocity win, retained, delivery fit 4+ where known
    pub best_accounts: DataFrame,
    /// the accounts (in the accounts' row order) each exclude criterion of
    /// the refined ICP matches
    pub exclude_masks: Vec<(String, crate::icp::Bits)>,
}

pub struct Inputs<'a> {
    pub spec: &'a FeatureSpec,
    pub accounts: &'a DataFrame,
    pub opportunities: &'a DataFrame,
    pub customers: Option<&'a DataFrame>,
    pub triggers: Option<&'a DataFrame>,
    /// labelled deals (see [`crate::label::Labels`])
    pub labels: &'a DataFrame,
    pub window_days: i64,
    pub evaluation: &'a Evaluation,
    /// the accounts' ids as row numbers
    pub index: &'a crate::ids::AccountIndex<'a>,
    /// the model's scores of every account, by the accounts' row
    pub scored: &'a crate::score::ByRow,
    /// buyer interview quotes (account_id, date, role, quote)
    pub interviews: Option<&'a DataFrame>,
    /// each account's CRM status, by the accounts' row (as the feed publishes it)
    pub crm: &'a [crate::feed::CrmStatus],
}

pub fn analyse(inp: &Inputs, params: &SignalParams) -> Result<Findings> {
    let mut trace = crate::progress::Trace::start();
    let readiness = readiness::assess(
        &readiness::GateInputs {
            labels: inp.labels,
            opportunities: inp.opportunities,
            customers: inp.customers,
            evaluation: inp.evaluation,
        },
        params,
    )?;
    // the triggers and painful customers first: each needs memory for a
    // while, and here it does not stack on the frames built below
    let triggers = match inp.triggers {
        Some(t) if t.height() > 0 => triggers::summarise(
            inp.accounts,
            inp.opportunities,
            t,
            params.trigger_window_days,
            params.min_accounts,
            params.fdr,
        )?,
        _ => Vec::new(),
    };
    trace.lap("readiness+triggers");
    crate::progress::release_free_memory();
    let codes = conditions::account_codes(inp.spec, inp.accounts)?;
    let (painful_accounts, painful, best_accounts) = painful::painful(
        inp.spec,
        inp.accounts,
        &codes,
        inp.labels,
        inp.customers,
        inp.window_days,
        params,
    )?;
    trace.lap("codes+painful");
    crate::progress::release_free_memory();
    // built once and read by the screen, the refined ICP and the finding
    // lists; one chunk each, so sums do not depend on how they were put
    // together
    let mut deals = conditions::deal_frame(inp.labels, &codes, inp.index)?;
    deals.rechunk_mut_par();
    let customers = match inp.customers {
        Some(c) => {
            let mut df = conditions::customer_frame(inp.labels, c, &codes, inp.index)?;
            df.rechunk_mut_par();
            Some(df)
        }
        None => None,
    };
    let period_days = period_days(inp.labels)?;
    trace.lap("deal/customer frames");
    crate::progress::release_free_memory();
    let mut screen = conditions::screen(inp.spec, &deals, customers.as_ref(), params, period_days)?;
    trace.lap("screen");
    crate::progress::release_free_memory();
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
    crate::progress::release_free_memory();
    let (mut icp, exclude_masks) = crate::icp::refine(
        &mut screen.signals,
        &mut screen.exclusions,
        &deal_rows,
        &account_rows,
        screen.baseline.velocity_win_rate,
        screen.baseline.average_deal,
        &crate::icp::IcpParams {
            max_criteria: params.max_criteria,
            min_accounts: params.min_accounts,
            fwer: params.criterion_fwer,
            single_tests: screen.single_tests,
            pair_tests: screen.pair_tests,
            rules: params.icp.clone(),
        },
    );
    name_best_customers(&mut icp, inp.accounts)?;
    trace.lap("refine");
    let exclusion_matches = conditions::exclusion_matches(
        &account_rows,
        &crate::ids::text(inp.accounts, "account_id")?,
        &screen.exclusions,
    )?;
    drop((deal_rows, account_rows));
    trace.lap("exclusion_matches");
    crate::progress::release_free_memory();
    let behind: Vec<&Finding> = screen.signals.iter().chain(&screen.exclusions).collect();
    let finding_accounts = conditions::finding_accounts(&deals, &behind)?;
    trace.lap("finding_accounts");
    crate::progress::release_free_memory();
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

/// Name each criterion's best customers (rows of the accounts frame).
fn name_best_customers(icp: &mut crate::icp::RefinedIcp, accounts: &DataFrame) -> Result<()> {
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
                crate::icp::NamedAccount {
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

/// The labelled deals as the refined-ICP selection reads them.
fn deal_rows(df: &DataFrame, n_accounts: usize, n_vars: usize) -> Result<crate::icp::DealRows> {
    let mut trace = crate::progress::Trace::start();
    let cells = crate::icp::Coded::from_frame(df, n_vars)?;
    trace.lap("deal rows: coded");
    // the account's row number (a deal of an unknown account, which the
    // loader rejects, would count as one more account)
    let account: Vec<u32> = df
        .column(conditions::ACCOUNT_ROW)?
        .as_materialized_series()
        .cast(&DataType::UInt32)?
        .u32()?
        .iter()
        .map(|r| r.unwrap_or(n_accounts as u32))
        .collect();
    // a flag column, a null as false
    let flags = |name: &str| -> Result<Vec<bool>> {
        Ok(df
            .column(name)?
            .as_materialized_series()
            .cast(&DataType::Boolean)?
            .bool()?
            .iter()
            .map(|v| v.unwrap_or(false))
            .collect())
    };
    let label = flags("label")?;
    let holdout = flags("holdout")?;
    let lost: Vec<bool> = text_col(df, "outcome")?
        .iter()
        .map(|o| o == Some("lost"))
        .collect();
    Ok(crate::icp::DealRows {
        cells,
        n_accounts: n_accounts + 1,
        account,
        velocity_win: crate::icp::Bits::from_bools(&label),
        holdout: crate::icp::Bits::from_bools(&holdout),
        lost: crate::icp::Bits::from_bools(&lost),
        loss_reason: str_col(df, "loss_reason")?,
    })
}

/// Every account: its cells, whether it is a prospect or a current customer
/// (its CRM status, as the feed publishes it) and its won revenue, the
/// model's probability, its first customer note and interview quote.
// eight inputs, each a different table the rows are gathered from; a
// struct of them would only rename the list (the unit test builds them)
#[allow(clippy::too_many_arguments)]
fn account_rows(
    codes: &DataFrame,
    index: &crate::ids::AccountIndex,
    labels: &DataFrame,
    scored: &crate::score::ByRow,
    customers: Option<&DataFrame>,
    interviews: Option<&DataFrame>,
    crm: &[crate::feed::CrmStatus],
    n_vars: usize,
) -> Result<crate::icp::AccountRows> {
    let mut trace = crate::progress::Trace::start();
    let cells = crate::icp::Coded::from_frame(codes, n_vars)?;
    trace.lap("account rows: coded");
    let n = index.len();
    if scored.p.len() != n || scored.band.len() != n || codes.height() != n || crm.len() != n {
        return Err(crate::IcpError::Invalid(format!(
            "internal: {} accounts indexed, {} scored, {} coded",
            n,
            scored.p.len(),
            codes.height()
        )));
    }
    let mut customer = vec![false; n];
    let mut revenue = vec![0.0; n];
    let l_out = text_col(labels, "outcome")?;
    let l_amt = f64_col(labels, "amount")?;
    for ((r, o), m) in index
        .rows_of(labels, "account_id")?
        .into_iter()
        .zip(l_out.iter())
        .zip(&l_amt)
    {
        let Some(r) = r else { continue };
        let r = r as usize;
        if o == Some("won") {
            revenue[r] += m.unwrap_or(0.0);
        }
    }
    // the first note of each account
    let mut note: Vec<Option<String>> = vec![None; n];
    if let Some(c) = customers
        && c.get_column_names().iter().any(|n| n.as_str() == "notes")
    {
        let notes = text_col(c, "notes")?;
        for (r, t) in index
            .rows_of(c, "account_id")?
            .into_iter()
            .zip(notes.iter())
        {
            if let (Some(r), Some(t)) = (r, t) {
                note[r as usize].get_or_insert_with(|| t.to_string());
            }
        }
    }
    // the first quote of each account, in date order (undated last)
    let mut quote: Vec<Option<String>> = vec![None; n];
    if let Some(iv) = interviews {
        let iv = iv
            .clone()
            .lazy()
            .sort(
                ["account_id", "date"],
                SortMultipleOptions::default().with_nulls_last(true),
            )
            .collect()?;
        let (ivid, d, r, q) = (
            str_col(&iv, "account_id")?,
            str_col(&iv, "date")?,
            str_col(&iv, "role")?,
            str_col(&iv, "quote")?,
        );
        for (i, acc) in index.rows_of(&iv, "account_id")?.into_iter().enumerate() {
            let (Some(acc), Some(text)) = (acc, q[i].as_deref()) else {
                continue;
            };
            let slot = &mut quote[acc as usize];
            if slot.is_some() {
                continue;
            }
            let mut who: Vec<String> = [r[i].clone(), d[i].clone()].into_iter().flatten().collect();
            // tied to its account, so a reader can look it up
            if let Some(id) = &ivid[i] {
                who.push(format!("account {id}"));
            }
            *slot = Some(if who.is_empty() {
                format!("\"{}\"", text.trim())
            } else {
                format!("\"{}\" ({})", text.trim(), who.join(", "))
            });
        }
    }
    trace.lap("account rows: by row");
    // one definition of each status, the feed's
    let prospect: Vec<bool> = crm
        .iter()
        .map(|c| *c == crate::feed::CrmStatus::Prospect)
        .collect();
    for (r, c) in crm.iter().enumerate() {
        customer[r] = *c == crate::feed::CrmStatus::Customer;
        if !customer[r] {
            revenue[r] = 0.0;
        }
    }
    let prospect_high: Vec<bool> = prospect
        .iter()
        .zip(&scored.band)
        .map(|(p, b)| *p && *b == Some(crate::domain::Band::High))
        .collect();
    Ok(crate::icp::AccountRows {
        cells,
        prospect: crate::icp::Bits::from_bools(&prospect),
        prospect_high: crate::icp::Bits::from_bools(&prospect_high),
        p: scored.p.clone(),
        customer: crate::icp::Bits::from_bools(&customer),
        customer_revenue: revenue,
        note,
        quote,
    })
}

/// A column as optional strings (any dtype is cast).
pub(crate) fn str_col(df: &DataFrame, name: &str) -> Result<Vec<Option<String>>> {
    let s = df
        .column(name)?
        .as_materialized_series()
        .cast(&DataType::String)?;
    Ok(s.str()?.iter().map(|v| v.map(str::to_string)).collect())
}

/// A column as text, to iterate as borrowed `Option<&str>` (no allocation
/// per row, unlike [`str_col`]).
pub(crate) fn text_col(df: &DataFrame, name: &str) -> Result<StringChunked> {
    crate::ids::text(df, name)
}

/// A column as optional floats (any numeric dtype is cast).
pub(crate) fn f64_col(df: &DataFrame, name: &str) -> Result<Vec<Option<f64>>> {
    let s = df
        .column(name)?
        .as_materialized_series()
        .cast(&DataType::Float64)?;
    Ok(s.f64()?.iter().collect())
}

/// Findings as a flat table (signals.csv, exclusions.csv).
pub fn findings_frame(list: &[Finding]) -> Result<DataFrame> {
    let s = |f: &dyn Fn(&Finding) -> String| list.iter().map(f).collect::<Vec<String>>();
    let u = |f: &dyn Fn(&Finding) -> usize| list.iter().map(|x| f(x) as u64).collect::<Vec<u64>>();
    let x = |f: &dyn Fn(&Finding) -> f64| list.iter().map(f).collect::<Vec<f64>>();
    let o = |f: &dyn Fn(&Finding) -> Option<f64>| list.iter().map(f).collect::<Vec<Option<f64>>>();
    let cols = vec![
        Column::new("id".into(), s(&|f| f.id.clone())),
        Column::new("condition".into(), s(&|f| f.condition.clone())),
        Column::new("accounts".into(), u(&|f| f.accounts)),
        Column::new("deals".into(), u(&|f| f.deals)),
        Column::new("velocity_wins".into(), u(&|f| f.velocity_wins)),
        Column::new("velocity_win_rate".into(), x(&|f| f.velocity_win_rate)),
        Column::new("rate_ci95_low".into(), x(&|f| f.velocity_win_rate_ci95.0)),
        Column::new("rate_ci95_high".into(), x(&|f| f.velocity_win_rate_ci95.1)),
        Column::new("lift".into(), x(&|f| f.lift)),
        Column::new("median_cycle_days".into(), o(&|f| f.median_cycle_days)),
        Column::new("churn_rate".into(), o(&|f| f.churn_rate)),
        Column::new("average_deal".into(), o(&|f| f.average_deal)),
        Column::new(
            "sales_velocity_per_day".into(),
            o(&|f| f.sales_velocity_per_day),
        ),
        Column::new("delivery_fit".into(), o(&|f| f.delivery_fit)),
        Column::new("gross_margin".into(), o(&|f| f.gross_margin)),
        Column::new("p_value".into(), x(&|f| f.p_value)),
        Column::new("q_value".into(), x(&|f| f.q_value)),
        Column::new("evidence".into(), s(&|f| f.evidence.join("; "))),
        Column::new(
            "icp_criterion".into(),
            s(&|f| f.criterion.clone().unwrap_or_default()),
        ),
    ];
    Ok(DataFrame::new(list.len(), cols)?)
}
