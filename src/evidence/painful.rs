//! Painful customers: won accounts with high revenue that churned, took far
//! longer than the velocity window, or are hard or unprofitable to serve.
//! Revenue alone makes them look like the ICP; the pain says they are not.

use polars::prelude::*;
use serde::{Deserialize, Serialize};

use crate::config::SignalParams;
use crate::domain::Outcome;
use crate::error::Result;
use crate::evidence::signals::rows::code_col;
use crate::stages::features::FeatureSpec;
use crate::util::frame::{f64_col, str_col};
use crate::util::metrics::wilson;
use crate::util::stats::{benjamini_hochberg, two_proportions};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PainfulSummary {
    /// accounts with at least one won deal (later churned included)
    pub won_accounts: usize,
    /// won revenue at or above which an account counts as high-revenue
    pub high_revenue_from: Option<f64>,
    pub high_revenue_accounts: usize,
    pub painful_accounts: usize,
    /// won accounts with a velocity win, not churned, delivery fit 4+ where known
    pub best_accounts: usize,
    /// what the painful share among high-revenue customers: conditions they share
    pub shared_conditions: Vec<SharedCondition>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SharedCondition {
    pub condition: String,
    /// high-revenue customers in the condition, and how many are painful
    pub accounts: usize,
    pub painful: usize,
    pub painful_share: f64,
    pub painful_share_ci95: (f64, f64),
    /// painful share over the share among all high-revenue customers
    pub lift: f64,
    pub q_value: f64,
}

/// The columns of the painful and best customer lists (painful ones say
/// whether they churned and why they hurt).
fn list_columns(painful: bool) -> Vec<Expr> {
    let mut v = vec![
        col("account_id"),
        col("account_name"),
        col("won_revenue"),
        col("won_deals"),
        col("longest_cycle_days"),
    ];
    if painful {
        v.push(col("churned"));
    }
    v.extend([col("delivery_fit"), col("gross_margin")]);
    if painful {
        v.push(col("pain"));
    }
    v
}

/// The painful-customer list (a frame) and its summary.
/// `codes` ([`crate::evidence::signals::conditions::account_codes`]) has
/// the accounts' rows; both are reached by account row through `index`.
// the accounts, their codes and index, and the tables behind the lists
#[allow(clippy::too_many_arguments)]
pub fn painful(
    spec: &FeatureSpec,
    accounts: &DataFrame,
    index: &crate::util::ids::AccountIndex,
    codes: &DataFrame,
    labels: &DataFrame,
    customers: Option<&DataFrame>,
    window_days: i64,
    params: &SignalParams,
) -> Result<(DataFrame, PainfulSummary, DataFrame)> {
    let base = won_accounts_frame(accounts, index, labels, customers)?;
    let won_accounts = base.height();
    let mut rev: Vec<f64> = f64_col(&base, "won_revenue")?
        .into_iter()
        .flatten()
        .filter(|v| v.is_finite())
        .collect();
    rev.sort_by(f64::total_cmp);
    let threshold = (!rev.is_empty())
        .then(|| crate::stages::features::quantile_sorted(&rev, params.painful_revenue_quantile));
    let slow = (params.painful_slow_factor * window_days as f64).ceil() as i64;
    let high = col("won_revenue").gt_eq(lit(threshold.unwrap_or(f64::INFINITY)));
    // Why each high-revenue customer is painful, in words.
    let pain = pain_words(&base, slow, params)?;
    let mut with_pain = base;
    with_pain.with_column(Column::new("pain".into(), pain))?;
    let flagged = with_pain
        .lazy()
        .with_column(high.clone().fill_null(lit(false)).alias("__high"))
        .with_column(
            col("__high")
                .and(col("pain").str().len_chars().gt(lit(0)))
                .alias("__painful"),
        )
        .collect()?;
    let (list, best_list) = customer_lists(&flagged)?;
    let best = best_list.height();
    let high_n = flagged
        .clone()
        .lazy()
        .filter(col("__high"))
        .collect()?
        .height();

    // Conditions the painful share, among high-revenue customers: their
    // codes gathered by account row
    let high = flagged
        .lazy()
        .filter(col("__high"))
        .select([col("account_id"), col("__painful")])
        .collect()?;
    let hr = high
        .hstack(gather(codes.drop("account_id")?, index, &high)?.columns())?
        .lazy();
    let total_painful = list.height();
    let cands = condition_counts(spec, &hr, params)?;
    let shared = shared_conditions(cands, total_painful, high_n, params);
    Ok((
        list,
        PainfulSummary {
            won_accounts,
            high_revenue_from: threshold,
            high_revenue_accounts: high_n,
            painful_accounts: total_painful,
            best_accounts: best,
            shared_conditions: shared,
        },
        best_list,
    ))
}

/// One row per account with a won deal: won revenue and deals, longest
/// cycle, churn and velocity win, with delivery fit, margin and name.
fn won_accounts_frame(
    accounts: &DataFrame,
    index: &crate::util::ids::AccountIndex,
    labels: &DataFrame,
    customers: Option<&DataFrame>,
) -> Result<DataFrame> {
    let won = labels
        .clone()
        .lazy()
        .filter(col("outcome").neq(Outcome::Lost.lit()))
        .group_by([col("account_id")])
        .agg([
            col("amount").sum().alias("won_revenue"),
            len().cast(DataType::UInt32).alias("won_deals"),
            col("cycle_days").max().alias("longest_cycle_days"),
            col("outcome")
                .eq(Outcome::Churned.lit())
                .any(true)
                .alias("churned"),
            col("label").any(true).alias("velocity_win"),
        ]);
    let cust = match customers {
        Some(c) => c.clone().lazy().select([
            col("account_id"),
            col("delivery_fit").cast(DataType::Float64),
            col("gross_margin").cast(DataType::Float64),
        ]),
        None => DataFrame::new(
            0,
            vec![
                Column::new_empty("account_id".into(), &DataType::String),
                Column::new_empty("delivery_fit".into(), &DataType::Float64),
                Column::new_empty("gross_margin".into(), &DataType::Float64),
            ],
        )?
        .lazy(),
    };
    let base = won
        .join(
            cust,
            [col("account_id")],
            [col("account_id")],
            JoinArgs::new(JoinType::Left),
        )
        .collect()?;
    // the account's name, gathered by its row
    let names = match accounts.column("account_name") {
        Ok(c) => DataFrame::new(accounts.height(), vec![c.cast(&DataType::String)?])?,
        Err(_) => DataFrame::new(
            accounts.height(),
            vec![Column::full_null(
                "account_name".into(),
                accounts.height(),
                &DataType::String,
            )],
        )?,
    };
    let names = gather(names, index, &base)?;
    Ok(base.hstack(names.columns())?)
}

/// Rows of `by_row` (a frame in the accounts' row order) for each account
/// of `of`'s `account_id` column; nulls for an id the accounts do not hold.
fn gather(
    by_row: DataFrame,
    index: &crate::util::ids::AccountIndex,
    of: &DataFrame,
) -> Result<DataFrame> {
    let idx: IdxCa = index
        .rows_of(of, "account_id")?
        .into_iter()
        .map(|r| r.map(|r| r as IdxSize))
        .collect();
    Ok(by_row.take(&idx)?)
}

/// Per won account, why it hurts: churned, slow, poor fit, low margin
/// ("" when none applies).
fn pain_words(base: &DataFrame, slow: i64, params: &SignalParams) -> Result<Vec<String>> {
    let mut pain: Vec<String> = Vec::with_capacity(base.height());
    let churned = base.column("churned")?.bool()?.clone();
    let cycle = f64_col(base, "longest_cycle_days")?;
    let fit = f64_col(base, "delivery_fit")?;
    let margin = f64_col(base, "gross_margin")?;
    for (i, ch) in churned.iter().enumerate() {
        let mut why = Vec::new();
        if ch == Some(true) {
            why.push("churned".to_string());
        }
        if cycle[i].is_some_and(|c| c > slow as f64) {
            why.push(format!("sales cycle over {slow} days"));
        }
        if fit[i].is_some_and(|f| f <= params.painful_fit_max) {
            why.push("poor delivery fit".to_string());
        }
        if margin[i].is_some_and(|m| m < params.painful_margin_below) {
            why.push("low margin".to_string());
        }
        pain.push(why.join("; "));
    }
    Ok(pain)
}

/// The painful list and the best-customer list (velocity win, not churned,
/// delivery fit 4+ where known), both by won revenue, highest first.
fn customer_lists(flagged: &DataFrame) -> Result<(DataFrame, DataFrame)> {
    let list = flagged
        .clone()
        .lazy()
        .filter(col("__painful"))
        .select(list_columns(true))
        .sort_by_exprs(
            [col("won_revenue"), col("account_id")],
            SortMultipleOptions::default().with_order_descending_multi([true, false]),
        )
        .collect()?;
    let best_list = flagged
        .clone()
        .lazy()
        .filter(
            col("velocity_win")
                .and(col("churned").not())
                .and(col("delivery_fit").gt_eq(lit(4.0)).fill_null(lit(true))),
        )
        .select(list_columns(false))
        .sort_by_exprs(
            [col("won_revenue"), col("account_id")],
            SortMultipleOptions::default().with_order_descending_multi([true, false]),
        )
        .collect()?;
    Ok((list, best_list))
}

/// Per condition cell of every variable: high-revenue customers in it and
/// how many are painful, kept when both reach the minimums.
fn condition_counts(
    spec: &FeatureSpec,
    hr: &LazyFrame,
    params: &SignalParams,
) -> Result<Vec<(String, usize, usize)>> {
    let mut cands: Vec<(String, usize, usize)> = Vec::new();
    for i in 0..spec.variables.len() {
        let c = code_col(i);
        let g = hr
            .clone()
            .filter(col(c.as_str()).is_not_null())
            .group_by([col(c.as_str())])
            .agg([
                len().cast(DataType::Float64).alias("n"),
                col("__painful").cast(DataType::Float64).sum().alias("k"),
            ])
            .sort([c.as_str()], SortMultipleOptions::default())
            .collect()?;
        let keys = str_col(&g, &c)?;
        let (n, k) = (f64_col(&g, "n")?, f64_col(&g, "k")?);
        for (j, key) in keys.iter().enumerate() {
            let Some(key) = key else { continue };
            let Some(cell) = crate::evidence::signals::conditions::cell_of(spec, i, key) else {
                continue;
            };
            let (n, k) = (n[j].unwrap_or(0.0) as usize, k[j].unwrap_or(0.0) as usize);
            if n >= params.min_accounts && k >= params.min_wins {
                cands.push((spec.describe_cell(&cell), n, k));
            }
        }
    }
    Ok(cands)
}

/// The conditions whose painful share beats the high-revenue base share,
/// after the FDR correction, highest lift first.
fn shared_conditions(
    cands: Vec<(String, usize, usize)>,
    total_painful: usize,
    high_n: usize,
    params: &SignalParams,
) -> Vec<SharedCondition> {
    let p: Vec<f64> = cands
        .iter()
        .map(|(_, n, k)| {
            two_proportions(
                *k as u64,
                *n as u64,
                (total_painful - k) as u64,
                (high_n - n) as u64,
            )
        })
        .collect();
    let q = benjamini_hochberg(&p);
    let base_share = total_painful as f64 / high_n.max(1) as f64;
    let mut shared: Vec<SharedCondition> = cands
        .into_iter()
        .zip(q)
        .filter_map(|((condition, n, k), q)| {
            let share = k as f64 / n as f64;
            let lift = share / base_share;
            (q <= params.fdr && lift >= params.min_lift).then(|| SharedCondition {
                condition,
                accounts: n,
                painful: k,
                painful_share: share,
                painful_share_ci95: wilson(k, n),
                lift,
                q_value: q,
            })
        })
        .collect();
    shared.sort_by(|a, b| {
        b.lift
            .total_cmp(&a.lift)
            .then(a.condition.cmp(&b.condition))
    });
    shared
}
