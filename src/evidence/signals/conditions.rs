//! Best-fit signals and poor-fit exclusions: the firmographic conditions (one
//! category value, one numeric band, or a pair of them) whose deals become
//! velocity wins far more, or far less, often than the baseline.
//!
//! Conditions come from the model's feature spec, so a band here is the same
//! band the model scores with. Every count is one group-by per variable (pair),
//! not one scan per condition; complements ("the rest") follow by subtraction.

use std::collections::BTreeMap;

use polars::prelude::*;
use serde::{Deserialize, Serialize};

use super::rows::{ACCOUNT_ROW, code_col};
use crate::config::SignalParams;
use crate::error::Result;
use crate::stages::features::{Cell, FeatureSpec, Variable};
use crate::util::frame::{f64_col, flag_col};
use crate::util::metrics::wilson;
use crate::util::stats::{two_means, two_proportions};

/// account_id and each variable's cell code (a kept category value or a bin
/// number, as text; null where the value is missing).
pub fn account_codes(spec: &FeatureSpec, accounts: &DataFrame) -> Result<DataFrame> {
    let mut exprs = vec![col("account_id")];
    for (i, v) in spec.variables.iter().enumerate() {
        let e = match v {
            Variable::Categorical { column, .. } => col(column.as_str()).cast(DataType::String),
            Variable::Numeric { .. } => spec.bin_index(i).cast(DataType::String),
        };
        exprs.push(e.alias(code_col(i)));
    }
    // each account's row number: counting distinct accounts on an integer
    // is much cheaper than on the id text, and gives the same counts
    Ok(accounts
        .clone()
        .lazy()
        .select(exprs)
        .with_row_index(ACCOUNT_ROW, None)
        .collect()?)
}

/// The cell a code names, or None for "(other)" values that have no cell.
pub fn cell_of(spec: &FeatureSpec, var: usize, code: &str) -> Option<Cell> {
    match &spec.variables[var] {
        Variable::Categorical { levels, .. } => {
            levels.iter().any(|l| l == code).then(|| Cell::Level {
                var,
                level: code.to_string(),
            })
        }
        Variable::Numeric { .. } => code.parse().ok().map(|bin| Cell::Bin { var, bin }),
    }
}

/// Additive counts of a group of deals (and of the customers among them).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Tally {
    pub deals: f64,
    pub vwins: f64,
    pub won: f64,
    pub churned: f64,
    pub amount_sum: f64,
    pub amount_n: f64,
    /// delivery fit of the group's customers: count, sum, sum of squares
    pub fit: (f64, f64, f64),
    pub margin: (f64, f64, f64),
}

impl Tally {
    fn minus(&self, o: &Tally) -> Tally {
        let d = |a: (f64, f64, f64), b: (f64, f64, f64)| (a.0 - b.0, a.1 - b.1, a.2 - b.2);
        Tally {
            deals: self.deals - o.deals,
            vwins: self.vwins - o.vwins,
            won: self.won - o.won,
            churned: self.churned - o.churned,
            amount_sum: self.amount_sum - o.amount_sum,
            amount_n: self.amount_n - o.amount_n,
            fit: d(self.fit, o.fit),
            margin: d(self.margin, o.margin),
        }
    }
    pub fn rate(&self) -> f64 {
        ratio(self.vwins, self.deals)
    }
    pub fn churn_rate(&self) -> Option<f64> {
        (self.won > 0.0).then(|| self.churned / self.won)
    }
    fn mean(m: (f64, f64, f64)) -> Option<f64> {
        (m.0 > 0.0).then(|| m.1 / m.0)
    }
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 { a / b } else { f64::NAN }
}

/// One group's tally plus what does not add up across groups.
#[derive(Debug, Clone, Default)]
struct Group {
    tally: Tally,
    accounts: usize,
    median_cycle: Option<f64>,
}

/// What a finding is about, and the evidence for it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Finding {
    /// S01.. for best-fit signals, X01.. for exclusions (rank order)
    pub id: String,
    /// the condition in plain words; also the key that quarterly diffs match on
    pub condition: String,
    pub cells: Vec<Cell>,
    pub accounts: usize,
    pub deals: usize,
    pub velocity_wins: usize,
    pub velocity_win_rate: f64,
    pub velocity_win_rate_ci95: (f64, f64),
    /// velocity-win rate over the baseline rate of all labelled deals
    pub lift: f64,
    pub median_cycle_days: Option<f64>,
    /// churned share of the group's won deals
    pub churn_rate: Option<f64>,
    pub average_deal: Option<f64>,
    /// sales velocity per day (see [`sales_velocity`])
    #[serde(default)]
    pub sales_velocity_per_day: Option<f64>,
    pub delivery_fit: Option<f64>,
    pub gross_margin: Option<f64>,
    /// the test that qualified the finding, adjusted for testing many conditions
    pub p_value: f64,
    pub q_value: f64,
    /// why it is a finding, in plain words with the numbers
    pub evidence: Vec<String>,
    /// won deals (later churned included) and their share of the closed deals
    #[serde(default)]
    pub won_deals: usize,
    #[serde(default)]
    pub close_rate: f64,
    /// sum of the won deals' amounts
    #[serde(default)]
    pub booked_revenue: f64,
    /// the condition as structured terms (column, level or range)
    #[serde(default)]
    pub terms: Vec<Term>,
    /// which kinds of evidence made it an exclusion: rate, churn, fit, margin
    #[serde(default)]
    pub kinds: Vec<String>,
    /// the refined-ICP criterion this finding is, or supports (set by [`crate::evidence::refine`])
    #[serde(default)]
    pub criterion: Option<String>,
    /// up to three verbatim notes from the accounts behind it (loss reasons,
    /// customer notes, interview quotes)
    #[serde(default)]
    pub notes: Vec<String>,
}

#[cfg(test)]
impl Finding {
    /// A finding of `cells` with every figure zero or empty, for tests to
    /// set what they look at.
    pub(crate) fn bare(id: &str, cells: Vec<Cell>) -> Finding {
        Finding {
            id: id.into(),
            condition: format!("{cells:?}"),
            cells,
            accounts: 0,
            deals: 0,
            velocity_wins: 0,
            velocity_win_rate: 0.0,
            velocity_win_rate_ci95: (0.0, 0.0),
            lift: 1.0,
            median_cycle_days: None,
            churn_rate: None,
            average_deal: None,
            sales_velocity_per_day: None,
            delivery_fit: None,
            gross_margin: None,
            p_value: 0.0,
            q_value: 0.0,
            evidence: vec![],
            won_deals: 0,
            close_rate: 0.0,
            booked_revenue: 0.0,
            terms: vec![],
            kinds: vec![],
            criterion: None,
            notes: vec![],
        }
    }
}

/// One part of a condition, structured: a category level or a numeric range
/// `[from, to)` in the column's own units (company age in years for a
/// founding year).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Term {
    pub column: String,
    /// what the range is measured in, when it is not the column itself
    pub quantity: String,
    pub level: Option<String>,
    pub range: Option<(Option<f64>, Option<f64>)>,
}

fn terms_of(spec: &FeatureSpec, cells: &[Cell]) -> Vec<Term> {
    cells
        .iter()
        .map(|c| match c {
            Cell::Level { var, level } => Term {
                column: spec.variables[*var].column().to_string(),
                quantity: spec.variables[*var].display_name(),
                level: Some(level.clone()),
                range: None,
            },
            Cell::Bin { var, bin } => Term {
                column: spec.variables[*var].column().to_string(),
                quantity: spec.variables[*var].display_name(),
                level: None,
                range: Some(spec.bin_bounds(*var, *bin)),
            },
        })
        .collect()
}

/// Baseline figures every finding is compared with.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Baseline {
    pub deals: usize,
    pub accounts: usize,
    pub velocity_wins: usize,
    pub velocity_win_rate: f64,
    /// won deals (later churned included) and their share of closed deals
    pub won_deals: usize,
    pub close_rate: f64,
    pub median_cycle_days: Option<f64>,
    pub churn_rate: Option<f64>,
    pub average_deal: Option<f64>,
    /// days from the first to the last close date of the labelled deals
    #[serde(default)]
    pub period_days: f64,
    /// sum of the won deals' amounts over the period
    #[serde(default)]
    pub booked_revenue: f64,
    #[serde(default)]
    pub sales_velocity_per_day: Option<f64>,
    pub delivery_fit: Option<f64>,
    pub gross_margin: Option<f64>,
}

/// The result of screening every condition.
#[derive(Debug, Clone)]
pub struct Screen {
    pub baseline: Baseline,
    pub signals: Vec<Finding>,
    pub exclusions: Vec<Finding>,
    /// conditions with enough support that were tested
    pub tested: usize,
    /// conditions seen but below the support minimum
    pub below_support: usize,
    /// tests run (the multiple-testing family), and of them on single
    /// conditions and on pairs
    pub tests: usize,
    pub single_tests: usize,
    pub pair_tests: usize,
}

fn deal_aggs() -> Vec<Expr> {
    let won = || col("__won");
    vec![
        len().cast(DataType::Float64).alias("deals"),
        col(ACCOUNT_ROW)
            .n_unique()
            .cast(DataType::Float64)
            .alias("accounts"),
        col("label").cast(DataType::Float64).sum().alias("vwins"),
        won().cast(DataType::Float64).sum().alias("won"),
        col("__churned")
            .cast(DataType::Float64)
            .sum()
            .alias("churned"),
        col("cycle_days")
            .cast(DataType::Float64)
            .filter(won())
            .median()
            .alias("cycle_med"),
        col("amount").filter(won()).sum().alias("amount_sum"),
        col("amount")
            .filter(won())
            .count()
            .cast(DataType::Float64)
            .alias("amount_n"),
    ]
}

fn customer_aggs() -> Vec<Expr> {
    let mut v = Vec::new();
    for (c, tag) in [("delivery_fit", "fit"), ("gross_margin", "margin")] {
        let x = || col(c).cast(DataType::Float64);
        v.push(
            x().count()
                .cast(DataType::Float64)
                .alias(format!("{tag}_n")),
        );
        v.push(x().sum().alias(format!("{tag}_s")));
        v.push((x() * x()).sum().alias(format!("{tag}_q")));
    }
    v
}

/// The deals (and the customers among their accounts) as the screen counts
/// them: per variable, each row's cell as a small integer, and the columns
/// the tallies add up. Every condition's group is then one pass over these
/// arrays into a table of cells, instead of a polars group-by on text keys.
///
/// Sums run in the frames' row order, as polars' group-by sums a group's
/// rows, so the tallies are those it gave, to the bit.
struct Counts {
    /// per variable: each cell's key (the kept level, or the bin number as
    /// text), and each deal's / customer's cell (`NONE`: in no cell)
    keys: Vec<Vec<String>>,
    deal_cell: Vec<Vec<u32>>,
    customer_cell: Vec<Vec<u32>>,
    account: Vec<u32>,
    /// the deals in account order (ties in row order), to count distinct
    /// accounts per cell
    by_account: Vec<u32>,
    label: Vec<bool>,
    won: Vec<bool>,
    churned: Vec<bool>,
    cycle: Vec<Option<f64>>,
    amount: Vec<Option<f64>>,
    fit: Vec<Option<f64>>,
    margin: Vec<Option<f64>>,
}

const NONE: u32 = u32::MAX;

/// A float column summed over a group as polars' group-by sums it
/// (polars-core `agg_sum`): a group of one row gives that row's value (0
/// when null), a larger one the Kahan sum (polars-utils `KahanSum`) of its
/// non-null values in row order. The same steps, so the same bits, -0.0
/// included.
#[derive(Debug, Clone, Copy, Default)]
struct Kahan {
    sum: f64,
    err: f64,
    rows: u32,
    first: Option<f64>,
}

impl Kahan {
    /// One row of the group (None: a null value).
    fn add(&mut self, x: Option<f64>) {
        self.rows += 1;
        if self.rows == 1 {
            self.first = x;
        }
        let Some(x) = x else { return };
        let y = x - self.err;
        let sum = self.sum + y;
        let err = (sum - self.sum) - y;
        self.sum = sum;
        // as polars: an infinite error term would turn the sum into NaN
        if err.is_finite() {
            self.err = err;
        }
    }

    fn total(&self) -> f64 {
        if self.rows == 1 {
            self.first.unwrap_or(0.0)
        } else {
            self.sum
        }
    }
}

/// (count, Kahan sum, Kahan sum of squares) of the non-null values.
#[derive(Debug, Clone, Copy, Default)]
struct Moments {
    n: f64,
    s: Kahan,
    q: Kahan,
}

impl Moments {
    /// One customer of the group (None: the value is missing).
    fn add(&mut self, x: Option<f64>) {
        self.n += x.is_some() as u8 as f64;
        self.s.add(x);
        self.q.add(x.map(|x| x * x));
    }
    fn tuple(&self) -> (f64, f64, f64) {
        (self.n, self.s.total(), self.q.total())
    }
}

impl Counts {
    fn new(spec: &FeatureSpec, deals: &DataFrame, customers: Option<&DataFrame>) -> Result<Counts> {
        let nv = spec.variables.len();
        let mut keys: Vec<Vec<String>> = vec![Vec::new(); nv];
        let mut deal_cell = Vec::with_capacity(nv);
        let mut customer_cell = Vec::with_capacity(nv);
        for (v, keys) in keys.iter_mut().enumerate() {
            // a key gets its cell number when first seen; values that are
            // no cell (a rare level) get NONE, as do missing values
            let mut number: rustc_hash::FxHashMap<String, u32> = Default::default();
            let mut cells_of = |df: &DataFrame| -> Result<Vec<u32>> {
                let text = crate::util::frame::text_col(df, &code_col(v))?;
                let mut out = Vec::with_capacity(text.len());
                let mut last: Option<(&str, u32)> = None;
                for k in text.iter() {
                    let Some(k) = k else {
                        out.push(NONE);
                        continue;
                    };
                    if let Some((lk, lc)) = last
                        && lk == k
                    {
                        out.push(lc);
                        continue;
                    }
                    let c = match number.get(k) {
                        Some(&c) => c,
                        None => {
                            let c = if cell_of(spec, v, k).is_some() {
                                keys.push(k.to_string());
                                (keys.len() - 1) as u32
                            } else {
                                NONE
                            };
                            number.insert(k.to_string(), c);
                            c
                        }
                    };
                    last = Some((k, c));
                    out.push(c);
                }
                Ok(out)
            };
            deal_cell.push(cells_of(deals)?);
            if let Some(c) = customers {
                customer_cell.push(cells_of(c)?);
            }
        }
        let account: Vec<u32> = deals
            .column(ACCOUNT_ROW)?
            .as_materialized_series()
            .cast(&DataType::UInt32)?
            .u32()?
            .iter()
            .map(|v| v.unwrap_or(NONE))
            .collect();
        let mut by_account: Vec<u32> = (0..account.len() as u32).collect();
        by_account.sort_by_key(|&d| account[d as usize]);
        let (fit, margin) = match customers {
            Some(c) => (f64_col(c, "delivery_fit")?, f64_col(c, "gross_margin")?),
            None => (Vec::new(), Vec::new()),
        };
        Ok(Counts {
            keys,
            deal_cell,
            customer_cell,
            account,
            by_account,
            label: flag_col(deals, "label")?,
            won: flag_col(deals, "__won")?,
            churned: flag_col(deals, "__churned")?,
            cycle: f64_col(deals, "cycle_days")?,
            amount: f64_col(deals, "amount")?,
            fit,
            margin,
        })
    }

    /// The groups of the deals by the cells of `vars` (none: one group of
    /// every deal), keyed by the cells' text keys; only groups with deals.
    fn groups(&self, vars: &[usize]) -> BTreeMap<Vec<String>, Group> {
        let size: usize = vars.iter().map(|&v| self.keys[v].len()).product();
        // the cell of row r, or None when one of its variables has no cell
        let cell = |cells: &[Vec<u32>], r: usize| -> Option<usize> {
            let mut at = 0usize;
            for &v in vars {
                let c = cells[v][r];
                if c == NONE {
                    return None;
                }
                at = at * self.keys[v].len() + c as usize;
            }
            Some(at)
        };
        let mut g: Vec<Group> = vec![Group::default(); size];
        let mut cycles: Vec<Vec<f64>> = vec![Vec::new(); size];
        let mut amount_n = vec![0usize; size];
        let mut amount = vec![Kahan::default(); size];
        for r in 0..self.account.len() {
            let Some(k) = cell(&self.deal_cell, r) else {
                continue;
            };
            let t = &mut g[k].tally;
            t.deals += 1.0;
            t.vwins += self.label[r] as u8 as f64;
            if self.won[r] {
                t.won += 1.0;
                if let Some(c) = self.cycle[r] {
                    cycles[k].push(c);
                }
                // polars sums the won rows' amounts: nulls are rows too
                amount[k].add(self.amount[r]);
                amount_n[k] += self.amount[r].is_some() as usize;
            }
            t.churned += self.churned[r] as u8 as f64;
        }
        // distinct accounts: a cell sees each account's deals one after another
        let mut last = vec![NONE; size];
        for &d in &self.by_account {
            let d = d as usize;
            let Some(k) = cell(&self.deal_cell, d) else {
                continue;
            };
            if last[k] != self.account[d] || g[k].accounts == 0 {
                last[k] = self.account[d];
                g[k].accounts += 1;
            }
        }
        for (k, x) in g.iter_mut().enumerate() {
            x.tally.amount_sum = amount[k].total();
            x.tally.amount_n = amount_n[k] as f64;
            x.median_cycle = crate::util::median(&mut cycles[k]);
        }
        if !self.customer_cell.is_empty() {
            let mut fit = vec![Moments::default(); size];
            let mut margin = vec![Moments::default(); size];
            for r in 0..self.fit.len() {
                let Some(k) = cell(&self.customer_cell, r) else {
                    continue;
                };
                fit[k].add(self.fit[r]);
                margin[k].add(self.margin[r]);
            }
            for (k, x) in g.iter_mut().enumerate() {
                x.tally.fit = fit[k].tuple();
                x.tally.margin = margin[k].tuple();
            }
        }
        let mut out = BTreeMap::new();
        for (k, x) in g.into_iter().enumerate() {
            if x.tally.deals == 0.0 {
                continue;
            }
            // the cell number back into one key per variable
            let mut key = vec![String::new(); vars.len()];
            let mut rest = k;
            for (slot, &v) in key.iter_mut().zip(vars).rev() {
                let n = self.keys[v].len();
                *slot = self.keys[v][rest % n].clone();
                rest /= n;
            }
            out.insert(key, x);
        }
        out
    }
}

/// Every deal as one group, summed by polars' column kernels (the numbers
/// the brief's totals have always had).
fn total(deals: &DataFrame, customers: Option<&DataFrame>) -> Result<Group> {
    let d = deals.clone().lazy().select(deal_aggs()).collect()?;
    let get = |df: &DataFrame, c: &str| -> Result<Option<f64>> {
        Ok(f64_col(df, c)?.first().copied().flatten())
    };
    let v = |c: &str| -> Result<f64> { Ok(get(&d, c)?.unwrap_or(0.0)) };
    let mut g = Group {
        tally: Tally {
            deals: v("deals")?,
            vwins: v("vwins")?,
            won: v("won")?,
            churned: v("churned")?,
            amount_sum: v("amount_sum")?,
            amount_n: v("amount_n")?,
            ..Default::default()
        },
        accounts: v("accounts")? as usize,
        median_cycle: get(&d, "cycle_med")?,
    };
    if let Some(c) = customers {
        let cdf = c.clone().lazy().select(customer_aggs()).collect()?;
        let c = |name: &str| -> Result<f64> { Ok(get(&cdf, name)?.unwrap_or(0.0)) };
        g.tally.fit = (c("fit_n")?, c("fit_s")?, c("fit_q")?);
        g.tally.margin = (c("margin_n")?, c("margin_s")?, c("margin_q")?);
    }
    Ok(g)
}

/// Deals with the flags and cell codes the screen groups on.
pub fn deal_frame(
    labels: &DataFrame,
    codes: &DataFrame,
    index: &crate::util::ids::AccountIndex,
) -> Result<DataFrame> {
    let deals = labels
        .clone()
        .lazy()
        .select([
            col("opportunity_id"),
            col("account_id"),
            col("outcome"),
            col("cycle_days"),
            col("amount"),
            col("label"),
            col("holdout"),
            col(crate::stages::label::LOSS_REASON).alias("loss_reason"),
            col("outcome").neq(lit("lost")).alias("__won"),
            col("outcome").eq(lit("churned")).alias("__churned"),
        ])
        .collect()?;
    with_codes(deals, index.rows_of(labels, "account_id")?, codes)
}

/// `df` with each row's account codes beside it: the codes' rows gathered by
/// account row (null for an account the accounts do not hold), where a join
/// on the id text used to be.
fn with_codes(df: DataFrame, rows: Vec<Option<u32>>, codes: &DataFrame) -> Result<DataFrame> {
    let idx: IdxCa = rows.into_iter().map(|r| r.map(|r| r as IdxSize)).collect();
    let gathered = codes.drop("account_id")?.take(&idx)?;
    Ok(df.hstack(gathered.columns())?)
}

/// Customers (accounts with a labelled deal) with delivery fit, margin and codes.
pub fn customer_frame(
    labels: &DataFrame,
    customers: &DataFrame,
    codes: &DataFrame,
    index: &crate::util::ids::AccountIndex,
) -> Result<DataFrame> {
    let mut labelled = vec![false; index.len()];
    for r in index.rows_of(labels, "account_id")?.into_iter().flatten() {
        labelled[r as usize] = true;
    }
    let rows: Vec<Option<u32>> = index
        .rows_of(customers, "account_id")?
        .into_iter()
        .map(|r| r.filter(|&r| labelled[r as usize]))
        .collect();
    let keep: BooleanChunked = rows.iter().map(|r| Some(r.is_some())).collect();
    let kept = customers
        .select(["account_id", "delivery_fit", "gross_margin"])?
        .filter(&keep)?;
    with_codes(kept, rows.into_iter().flatten().map(Some).collect(), codes)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Test {
    Rate,
    Churn,
    Fit,
    Margin,
    /// a pair against its first part alone, then its second part alone
    BeyondA,
    BeyondB,
}

struct Candidate {
    cells: Vec<Cell>,
    group: Group,
    /// for pairs: the tallies of each part alone
    parts: Vec<Tally>,
}

/// Screen every single and pair condition and keep those the evidence backs.
pub fn screen(
    spec: &FeatureSpec,
    deals: &DataFrame,
    customers: Option<&DataFrame>,
    params: &SignalParams,
    period_days: f64,
) -> Result<Screen> {
    let counts = Counts::new(spec, deals, customers)?;
    // the whole book as polars sums a column (not as a group-by does)
    let total = total(deals, customers)?;
    let t = total.tally;
    let base_rate = t.rate();
    let nv = spec.variables.len();
    use rayon::prelude::*;
    let singles: Vec<BTreeMap<Vec<String>, Group>> = (0..nv)
        .into_par_iter()
        .map(|i| counts.groups(&[i]))
        .collect();
    let mut candidates: Vec<Candidate> = Vec::new();
    let mut below_support = 0usize;
    let supported = |g: &Group| g.accounts >= params.min_accounts;
    for (i, map) in singles.iter().enumerate() {
        for (k, g) in map {
            let Some(cell) = cell_of(spec, i, &k[0]) else {
                continue;
            };
            if !supported(g) {
                below_support += 1;
                continue;
            }
            candidates.push(Candidate {
                cells: vec![cell],
                group: g.clone(),
                parts: vec![],
            });
        }
    }
    if params.pairs {
        let ij: Vec<(usize, usize)> = (0..nv)
            .flat_map(|i| ((i + 1)..nv).map(move |j| (i, j)))
            .collect();
        let all: Vec<BTreeMap<Vec<String>, Group>> = ij
            .par_iter()
            .map(|&(i, j)| counts.groups(&[i, j]))
            .collect();
        for (&(i, j), pairs) in ij.iter().zip(all) {
            {
                for (k, g) in pairs {
                    let (Some(a), Some(b)) = (cell_of(spec, i, &k[0]), cell_of(spec, j, &k[1]))
                    else {
                        continue;
                    };
                    if !supported(&g) {
                        below_support += 1;
                        continue;
                    }
                    let part = |v: usize, code: &str| {
                        singles[v]
                            .get(&vec![code.to_string()])
                            .map(|g| g.tally)
                            .unwrap_or_default()
                    };
                    let parts = vec![part(i, &k[0]), part(j, &k[1])];
                    candidates.push(Candidate {
                        cells: vec![a, b],
                        group: g,
                        parts,
                    });
                }
            }
        }
    }
    // Every test of every supported condition, in one FDR family.
    let mut tests: Vec<(usize, Test, f64)> = Vec::new();
    for (ci, c) in candidates.iter().enumerate() {
        let g = &c.group.tally;
        let rest = t.minus(g);
        let u = |x: f64| x.max(0.0).round() as u64;
        tests.push((
            ci,
            Test::Rate,
            two_proportions(u(g.vwins), u(g.deals), u(rest.vwins), u(rest.deals)),
        ));
        if c.parts.is_empty() {
            if g.won >= 10.0 && rest.won >= 10.0 {
                tests.push((
                    ci,
                    Test::Churn,
                    two_proportions(u(g.churned), u(g.won), u(rest.churned), u(rest.won)),
                ));
            }
            if g.fit.0 >= 10.0 && rest.fit.0 >= 10.0 {
                tests.push((ci, Test::Fit, two_means(g.fit, rest.fit)));
            }
            if g.margin.0 >= 10.0 && rest.margin.0 >= 10.0 {
                tests.push((ci, Test::Margin, two_means(g.margin, rest.margin)));
            }
        } else {
            for (pi, kind) in [(0, Test::BeyondA), (1, Test::BeyondB)] {
                let other = c.parts[pi].minus(g);
                tests.push((
                    ci,
                    kind,
                    two_proportions(u(g.vwins), u(g.deals), u(other.vwins), u(other.deals)),
                ));
            }
        }
    }
    let p: Vec<f64> = tests.iter().map(|t| t.2).collect();
    let q = crate::util::stats::benjamini_hochberg(&p);
    let mut qs: Vec<BTreeMap<&'static str, (f64, f64)>> = vec![BTreeMap::new(); candidates.len()];
    for ((ci, kind, p), q) in tests.iter().zip(&q) {
        let name = match kind {
            Test::Rate => "rate",
            Test::Churn => "churn",
            Test::Fit => "fit",
            Test::Margin => "margin",
            Test::BeyondA => "beyond_a",
            Test::BeyondB => "beyond_b",
        };
        qs[*ci].insert(name, (*p, *q));
    }
    let base_churn = t.churn_rate();
    let base_fit = Tally::mean(t.fit);
    let base_margin = Tally::mean(t.margin);
    let baseline = Baseline {
        deals: t.deals as usize,
        accounts: total.accounts,
        velocity_wins: t.vwins as usize,
        velocity_win_rate: base_rate,
        won_deals: t.won as usize,
        close_rate: ratio(t.won, t.deals),
        median_cycle_days: total.median_cycle,
        churn_rate: base_churn,
        average_deal: average_deal(&t),
        period_days,
        booked_revenue: t.amount_sum,
        sales_velocity_per_day: velocity(&t, total.median_cycle, period_days),
        delivery_fit: base_fit,
        gross_margin: base_margin,
    };
    let pct = |x: f64| format!("{:.1}%", 100.0 * x);
    let mut signals = Vec::new();
    let mut exclusions = Vec::new();
    for (ci, c) in candidates.iter().enumerate() {
        let g = &c.group.tally;
        let rate = g.rate();
        let lift = rate / base_rate;
        let sig = |name: &str| qs[ci].get(name).is_some_and(|(_, q)| *q <= params.fdr);
        let pq = |name: &str| qs[ci].get(name).copied().unwrap_or((1.0, 1.0));
        let beyond_parts_up = c.parts.is_empty()
            || (sig("beyond_a") && sig("beyond_b") && c.parts.iter().all(|p| rate > p.rate()));
        let beyond_parts_down = c.parts.is_empty()
            || (sig("beyond_a") && sig("beyond_b") && c.parts.iter().all(|p| rate < p.rate()));
        let condition = c
            .cells
            .iter()
            .map(|cell| spec.describe_cell(cell))
            .collect::<Vec<_>>()
            .join(" and ");
        let finding = |evidence: Vec<String>, (p, q): (f64, f64)| Finding {
            id: String::new(),
            condition: condition.clone(),
            cells: c.cells.clone(),
            accounts: c.group.accounts,
            deals: g.deals as usize,
            velocity_wins: g.vwins as usize,
            velocity_win_rate: rate,
            velocity_win_rate_ci95: wilson(g.vwins as usize, g.deals as usize),
            lift,
            median_cycle_days: c.group.median_cycle,
            churn_rate: g.churn_rate(),
            average_deal: average_deal(g),
            sales_velocity_per_day: velocity(g, c.group.median_cycle, period_days),
            delivery_fit: Tally::mean(g.fit),
            gross_margin: Tally::mean(g.margin),
            p_value: p,
            q_value: q,
            evidence,
            won_deals: g.won as usize,
            close_rate: ratio(g.won, g.deals),
            booked_revenue: g.amount_sum,
            terms: terms_of(spec, &c.cells),
            kinds: Vec::new(),
            criterion: None,
            notes: Vec::new(),
        };
        let rate_words = format!(
            "velocity-win rate {} of {} deals vs {} baseline (lift {:.2})",
            pct(rate),
            g.deals as usize,
            pct(base_rate),
            lift
        );
        if g.vwins as usize >= params.min_wins
            && lift >= params.min_lift
            && sig("rate")
            && beyond_parts_up
        {
            let mut ev = vec![rate_words.clone()];
            if !c.parts.is_empty() {
                ev.push(format!(
                    "beats each part alone ({} and {})",
                    pct(c.parts[0].rate()),
                    pct(c.parts[1].rate())
                ));
            }
            signals.push(finding(ev, pq("rate")));
        }
        let mut why = Vec::new();
        let mut kinds: Vec<String> = Vec::new();
        let mut qual = (1.0f64, 1.0f64);
        let mut take = |w: String, kind: &str, pq: (f64, f64)| {
            why.push(w);
            kinds.push(kind.to_string());
            if pq.1 < qual.1 {
                qual = pq;
            }
        };
        if lift <= 1.0 / params.min_lift && sig("rate") && beyond_parts_down {
            // say which: fewer wins, slower wins, or both
            let close = ratio(g.won, g.deals);
            let base_close = ratio(t.won, t.deals);
            let mut parts = Vec::new();
            if close < base_close {
                parts.push(format!(
                    "wins less: {} of closed deals won vs {}",
                    pct(close),
                    pct(base_close)
                ));
            }
            if let (Some(c), Some(bc)) = (c.group.median_cycle, total.median_cycle)
                && c >= 1.1 * bc
            {
                parts.push(format!(
                    "closes slower: median cycle {c:.0} vs {bc:.0} days"
                ));
            }
            if parts.is_empty() {
                parts.push("fewer wins stay fast and retained".into());
            }
            take(
                format!("fewer velocity wins ({rate_words}): {}", parts.join("; ")),
                "rate",
                pq("rate"),
            );
        }
        if let (Some(cr), Some(bc)) = (g.churn_rate(), base_churn)
            && sig("churn")
            && cr >= params.min_lift * bc
            && bc > 0.0
        {
            take(
                format!(
                    "churns: {} of {} won deals churned vs {} baseline",
                    pct(cr),
                    g.won as usize,
                    pct(bc)
                ),
                "churn",
                pq("churn"),
            );
        }
        if let (Some(f), Some(bf)) = (Tally::mean(g.fit), base_fit)
            && sig("fit")
            && f <= bf - params.min_fit_gap
        {
            take(
                format!(
                    "hard to serve: delivery fit {f:.2} of 5 over {} customers vs {bf:.2}",
                    g.fit.0 as usize
                ),
                "fit",
                pq("fit"),
            );
        }
        if let (Some(m), Some(bm)) = (Tally::mean(g.margin), base_margin)
            && sig("margin")
            && m <= bm - params.min_margin_gap
        {
            take(
                format!(
                    "low margin: gross margin {} over {} customers vs {}",
                    pct(m),
                    g.margin.0 as usize,
                    pct(bm)
                ),
                "margin",
                pq("margin"),
            );
        }
        if !why.is_empty() {
            let mut x = finding(why, qual);
            x.kinds = kinds;
            exclusions.push(x);
        }
    }
    signals.sort_by(|a, b| {
        b.lift
            .total_cmp(&a.lift)
            .then(b.accounts.cmp(&a.accounts))
            .then(a.condition.cmp(&b.condition))
    });
    exclusions.sort_by(|a, b| {
        b.evidence
            .len()
            .cmp(&a.evidence.len())
            .then(a.lift.total_cmp(&b.lift))
            .then(b.accounts.cmp(&a.accounts))
            .then(a.condition.cmp(&b.condition))
    });
    for (i, s) in signals.iter_mut().enumerate() {
        s.id = format!("S{:02}", i + 1);
    }
    for (i, s) in exclusions.iter_mut().enumerate() {
        s.id = format!("X{:02}", i + 1);
    }
    Ok(Screen {
        baseline,
        signals,
        exclusions,
        tested: candidates.len(),
        below_support,
        tests: tests.len(),
        single_tests: tests
            .iter()
            .filter(|t| candidates[t.0].parts.is_empty())
            .count(),
        pair_tests: tests
            .iter()
            .filter(|t| !candidates[t.0].parts.is_empty())
            .count(),
    })
}

fn average_deal(t: &Tally) -> Option<f64> {
    (t.amount_n > 0.0).then(|| t.amount_sum / t.amount_n)
}

fn velocity(t: &Tally, median_cycle: Option<f64>, period_days: f64) -> Option<f64> {
    sales_velocity(
        t.deals,
        t.won,
        average_deal(t)?,
        median_cycle?,
        period_days,
        t.amount_sum,
    )
}

/// Sales velocity per day by its usual definition over a stated period of
/// 30 days: opportunities per period x win rate x average deal / cycle
/// length in days. The opportunities are the closed ones per 30 days over
/// the data's period, so a segment's velocity is its own pace, never its
/// all-time total over one cycle; a faster cycle gives a higher velocity.
/// Capped at the revenue actually booked per day (the formula can pass it
/// when the cycle is shorter than the period, or when the average deal
/// extrapolates over won deals without an amount).
pub fn sales_velocity(
    closed_deals: f64,
    won_deals: f64,
    average_deal: f64,
    cycle_days: f64,
    period_days: f64,
    booked: f64,
) -> Option<f64> {
    if !(cycle_days > 0.0 && period_days > 0.0 && closed_deals > 0.0) {
        return None;
    }
    let per_period = closed_deals / period_days * VELOCITY_PERIOD_DAYS;
    let win_rate = won_deals / closed_deals;
    let v = per_period * win_rate * average_deal / cycle_days;
    Some(v.min(booked / period_days))
}

/// The period of "opportunities per period" in sales velocity.
pub const VELOCITY_PERIOD_DAYS: f64 = 30.0;

/// The accounts behind each finding: one row per (finding, account) with the
/// account's deals, velocity wins and churned deals; findings in order, each
/// one's accounts by account_id. Counted on the deals' rows (`rows`, built
/// from `deals`) by account row: no million-row filter, group-by and sort
/// of id text per finding.
pub fn finding_accounts(
    deals: &DataFrame,
    rows: &super::rows::DealRows,
    findings: &[&Finding],
) -> Result<DataFrame> {
    use rayon::prelude::*;
    if findings.is_empty() {
        return Ok(DataFrame::new(
            0,
            vec![
                Column::new_empty("finding_id".into(), &DataType::String),
                Column::new_empty("condition".into(), &DataType::String),
                Column::new_empty("account_id".into(), &DataType::String),
                Column::new_empty("deals".into(), &DataType::UInt32),
                Column::new_empty("velocity_wins".into(), &DataType::UInt32),
                Column::new_empty("churned_deals".into(), &DataType::UInt32),
            ],
        )?);
    }
    if deals.height() != rows.account.len() {
        return Err(crate::error::IcpError::Internal(format!(
            "{} deals for {} deal rows",
            deals.height(),
            rows.account.len()
        )));
    }
    let ids = crate::util::frame::text_col(deals, "account_id")?;
    let churned = flag_col(deals, "__churned")?;
    // each account row's id (as its deals give it), and the accounts in id
    // order once: a finding's accounts are then sorted by this rank
    let mut id_of: Vec<Option<&str>> = vec![None; rows.n_accounts];
    for (d, &a) in rows.account.iter().enumerate() {
        // the row past the accounts holds every deal of an unknown account,
        // which the loader rejects: listed under one id, they would be wrong
        if a as usize + 1 >= rows.n_accounts {
            return Err(crate::error::IcpError::Internal(format!(
                "deal {} has no account in the accounts table",
                ids.get(d).unwrap_or("(blank id)")
            )));
        }
        id_of[a as usize] = ids.get(d);
    }
    let mut by_id: Vec<u32> = (0..rows.n_accounts as u32)
        .filter(|&a| id_of[a as usize].is_some())
        .collect();
    by_id.par_sort_unstable_by_key(|&a| id_of[a as usize]);
    let mut rank = vec![u32::MAX; rows.n_accounts];
    for (k, &a) in by_id.iter().enumerate() {
        rank[a as usize] = k as u32;
    }
    // per finding: (rank, deals, velocity wins, churned), in rank order;
    // each thread counts into a slot per ranked account, cleared after use
    let per: Vec<Vec<(u32, u32, u32, u32)>> = findings
        .par_iter()
        .map_init(
            || vec![u32::MAX; by_id.len()],
            |slot, f| {
                let mut out: Vec<(u32, u32, u32, u32)> = Vec::new();
                // a condition of no cells holds for every deal (as a filter
                // on no terms does); the screen never proposes one
                let mask = match f.cells.is_empty() {
                    true => super::rows::Bits::full(rows.account.len()),
                    false => rows.cells.mask(&f.cells),
                };
                for d in mask.ones() {
                    let r = rank[rows.account[d] as usize];
                    if r == u32::MAX {
                        continue; // a deal without an account id: no row to list
                    }
                    if slot[r as usize] == u32::MAX {
                        slot[r as usize] = out.len() as u32;
                        out.push((r, 0, 0, 0));
                    }
                    let row = &mut out[slot[r as usize] as usize];
                    row.1 += 1;
                    row.2 += rows.velocity_win.get(d) as u32;
                    row.3 += churned[d] as u32;
                }
                for row in &out {
                    slot[row.0 as usize] = u32::MAX;
                }
                out.sort_unstable_by_key(|r| r.0);
                out
            },
        )
        .collect();
    let n: usize = per.iter().map(Vec::len).sum();
    let repeat = |name: &str, text: &dyn Fn(&Finding) -> &str| -> Result<Column> {
        let runs = findings.iter().zip(&per).map(|(f, p)| (text(f), p.len()));
        crate::util::frame::repeated_text(name, runs)
    };
    // the ids in rank order, gathered by rank (no lookup per row)
    let ranked: StringChunked = by_id.iter().map(|&a| id_of[a as usize]).collect();
    let account = ranked.take(&IdxCa::from_vec(
        "".into(),
        per.iter().flatten().map(|r| r.0 as IdxSize).collect(),
    ))?;
    let count = |name: &str, pick: fn(&(u32, u32, u32, u32)) -> u32| -> Column {
        Column::new(
            name.into(),
            per.iter().flatten().map(pick).collect::<Vec<u32>>(),
        )
    };
    let out = DataFrame::new(
        n,
        vec![
            repeat("finding_id", &|f| f.id.as_str())?,
            repeat("condition", &|f| f.condition.as_str())?,
            account.with_name("account_id".into()).into_column(),
            count("deals", |r| r.1),
            count("velocity_wins", |r| r.2),
            count("churned_deals", |r| r.3),
        ],
    )?;
    Ok(out)
}

/// The prospects (accounts with no labelled deal) each exclusion matches:
/// one row per (exclusion, account), exclusions in order, each one's
/// accounts by account_id. From the accounts' cell bits, so no frame of
/// a million accounts is joined, sorted and filtered once per exclusion.
pub fn exclusion_matches(
    accounts: &super::rows::AccountRows,
    ids: &StringChunked,
    exclusions: &[Finding],
) -> Result<DataFrame> {
    if exclusions.is_empty() {
        return empty_matches();
    }
    if ids.len() != accounts.cells.rows() {
        return Err(crate::error::IcpError::Internal(format!(
            "{} account ids for {} coded accounts",
            ids.len(),
            accounts.cells.rows()
        )));
    }
    use rayon::slice::ParallelSliceMut;
    let ids = ids.rechunk();
    let text: Vec<&str> = ids.iter().map(|v| v.unwrap_or("")).collect();
    // the prospects in account_id order, found and sorted once
    let mut order: Vec<u32> = accounts.prospect.ones().map(|r| r as u32).collect();
    order.par_sort_unstable_by(|&a, &b| text[a as usize].cmp(text[b as usize]));
    let (mut runs, mut rows) = (Vec::with_capacity(exclusions.len()), Vec::new());
    for x in exclusions {
        // a condition of no cells holds for every account (as a filter on
        // no terms does); the screen never proposes one
        let mask = (!x.cells.is_empty()).then(|| accounts.cells.mask(&x.cells));
        let before = rows.len();
        for &r in &order {
            if mask.as_ref().is_none_or(|m| m.get(r as usize)) {
                rows.push(r as IdxSize);
            }
        }
        runs.push((x, rows.len() - before));
    }
    let n = rows.len();
    let account_id = ids.take(&IdxCa::from_vec("".into(), rows))?;
    let repeat = |name: &str, text: fn(&Finding) -> &str| {
        crate::util::frame::repeated_text(name, runs.iter().map(|&(x, k)| (text(x), k)))
    };
    Ok(DataFrame::new(
        n,
        vec![
            repeat("exclusion_id", |x| x.id.as_str())?,
            repeat("criterion", |x| x.condition.as_str())?,
            account_id.with_name("account_id".into()).into_column(),
        ],
    )?)
}

/// The exclusion-match table with no rows.
pub fn empty_matches() -> Result<DataFrame> {
    Ok(DataFrame::new(
        0,
        vec![
            Column::new_empty("exclusion_id".into(), &DataType::String),
            Column::new_empty("criterion".into(), &DataType::String),
            Column::new_empty("account_id".into(), &DataType::String),
        ],
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::FeatureParams;

    /// The polars filter that selects a finding's rows from a frame with
    /// codes: the oracle the bit sets are checked against.
    fn condition_expr(cells: &[Cell]) -> Expr {
        cells.iter().fold(lit(true), |e, c| {
            let (var, code) = match c {
                Cell::Level { var, level } => (*var, level.clone()),
                Cell::Bin { var, bin } => (*var, bin.to_string()),
            };
            e.and(col(code_col(var)).eq(lit(code)).fill_null(lit(false)))
        })
    }

    /// The test frames' industry and employees variables, and the cell
    /// "industry = Retail".
    fn industry_and_employees(spec: &FeatureSpec) -> (usize, usize, Cell) {
        let var = |c: &str| {
            spec.variables
                .iter()
                .position(|v| v.column() == c)
                .expect("variable")
        };
        let (ind, emp) = (var("industry"), var("employees"));
        let retail = Cell::Level {
            var: ind,
            level: "Retail".into(),
        };
        (ind, emp, retail)
    }

    /// A finding whose condition text has a comma (quoted in CSV).
    fn named_finding(id: &str, cells: Vec<Cell>) -> Finding {
        Finding {
            condition: format!("condition {id}, with a comma"),
            ..Finding::bare(id, cells)
        }
    }

    /// Main effects of `accounts` in four numeric bands (no interactions)
    /// and the accounts' cell codes.
    fn banded(accounts: &DataFrame) -> (FeatureSpec, DataFrame) {
        let params = FeatureParams {
            exclude: vec![],
            allow: vec![],
            min_level_count: 50,
            max_levels: 20,
            numeric_bins: 4,
            numeric_shape: crate::config::NumericShape::Bands,
            interactions: false,
            min_interaction_count: 1,
            max_features: 100,
        };
        let spec =
            crate::stages::features::fit_main_effects(accounts, &BTreeMap::new(), &params, 2026)
                .expect("spec");
        let codes = account_codes(&spec, accounts).expect("codes");
        (spec, codes)
    }

    /// The polars join, sort and filters the cell bits replaced: what they must equal.
    fn exclusion_matches_by_polars(
        codes: &DataFrame,
        labels: &DataFrame,
        exclusions: &[Finding],
    ) -> Result<DataFrame> {
        if exclusions.is_empty() {
            return empty_matches();
        }
        let labelled = labels.clone().lazy().select([col("account_id")]);
        // found and sorted once (a filter keeps the order), not once per exclusion
        let prospects = codes
            .clone()
            .lazy()
            .join(
                labelled,
                [col("account_id")],
                [col("account_id")],
                JoinArgs::new(JoinType::Anti),
            )
            .sort(["account_id"], SortMultipleOptions::default())
            .collect()?
            .lazy();
        let parts: Vec<LazyFrame> = exclusions
            .iter()
            .map(|x| {
                prospects.clone().filter(condition_expr(&x.cells)).select([
                    lit(x.id.clone()).alias("exclusion_id"),
                    lit(x.condition.clone()).alias("criterion"),
                    col("account_id"),
                ])
            })
            .collect();
        if parts.is_empty() {
            return empty_matches();
        }
        Ok(concat(parts, UnionArgs::default())?.collect()?)
    }

    #[test]
    fn exclusion_matches_are_the_polars_filters_and_the_hand_count() {
        let n = 3000;
        // ids out of order, so the by-id order is the function's doing
        let ids: Vec<String> = (0..n).map(|i| format!("A{:05}", (i * 7919) % n)).collect();
        let industry: Vec<Option<&str>> = (0..n)
            .map(|i| match i % 7 {
                0 => None,
                1 | 2 => Some("Retail"),
                3 | 4 => Some("Software"),
                _ => Some("Logistics"),
            })
            .collect();
        let employees: Vec<Option<f64>> = (0..n)
            .map(|i| (i % 11 != 0).then(|| ((i * 37) % 900) as f64))
            .collect();
        let accounts = df![
            "account_id" => ids.clone(),
            "industry" => industry.clone(),
            "employees" => employees,
        ]
        .expect("accounts");
        let (spec, codes) = banded(&accounts);
        // every third account has a labelled deal (two for some): not a prospect
        let dealt: Vec<String> = (0..n)
            .filter(|i| i % 3 == 0)
            .chain((0..n).filter(|i| i % 9 == 0))
            .map(|i| ids[i].clone())
            .collect();
        let m = dealt.len();
        let labels = df![
            "account_id" => dealt,
            "outcome" => vec!["lost"; m],
            "amount" => vec![1.0; m],
        ]
        .expect("labels");
        let (ind, emp, retail) = industry_and_employees(&spec);
        let exclusions = vec![
            named_finding("X01", vec![retail.clone()]),
            named_finding("X02", vec![Cell::Bin { var: emp, bin: 0 }]),
            named_finding("X03", vec![retail, Cell::Bin { var: emp, bin: 2 }]),
            named_finding(
                "X04",
                vec![Cell::Level {
                    var: ind,
                    level: "Nowhere".into(),
                }],
            ),
            named_finding("X05", vec![]),
        ];
        let id_text = crate::util::ids::text(&accounts, "account_id").expect("ids");
        let index = crate::util::ids::AccountIndex::new(&id_text);
        let scored = crate::stages::score::ByRow {
            p: vec![0.5; n],
            band: vec![None; n],
        };
        // the accounts with a closed deal (i % 3 == 0) are customers here
        let crm: Vec<crate::domain::CrmStatus> = (0..n)
            .map(|i| {
                if i % 3 == 0 {
                    crate::domain::CrmStatus::Customer
                } else {
                    crate::domain::CrmStatus::Prospect
                }
            })
            .collect();
        let rows = super::super::rows::account_rows(
            &codes,
            &index,
            &labels,
            &scored,
            None,
            None,
            &crm,
            spec.variables.len(),
        )
        .expect("account rows");
        let got = exclusion_matches(&rows, &id_text, &exclusions).expect("matches");
        let want = exclusion_matches_by_polars(&codes, &labels, &exclusions).expect("polars");
        assert!(got.equals_missing(&want), "{got}\n{want}");
        // by hand: the prospects (i % 3 != 0) in Retail (i % 7 in 1, 2)
        let retail_prospects = (0..n)
            .filter(|i| i % 3 != 0 && matches!(i % 7, 1 | 2))
            .count();
        let x01 = got
            .column("exclusion_id")
            .expect("id")
            .str()
            .expect("text")
            .iter()
            .filter(|v| *v == Some("X01"))
            .count();
        assert_eq!(x01, retail_prospects);
        assert!(retail_prospects > 500);
    }

    /// The polars filter, group-by and sort `finding_accounts` replaced:
    /// what it must equal.
    fn finding_accounts_by_polars(deals: &DataFrame, findings: &[&Finding]) -> DataFrame {
        let parts: Vec<LazyFrame> = findings
            .iter()
            .map(|f| {
                deals
                    .clone()
                    .lazy()
                    .filter(condition_expr(&f.cells))
                    .group_by([col("account_id")])
                    .agg([
                        len().cast(DataType::UInt32).alias("deals"),
                        col("label")
                            .cast(DataType::UInt32)
                            .sum()
                            .alias("velocity_wins"),
                        col("__churned")
                            .cast(DataType::UInt32)
                            .sum()
                            .alias("churned_deals"),
                    ])
                    .select([
                        lit(f.id.clone()).alias("finding_id"),
                        lit(f.condition.clone()).alias("condition"),
                        col("account_id"),
                        col("deals"),
                        col("velocity_wins"),
                        col("churned_deals"),
                    ])
                    .sort(["account_id"], SortMultipleOptions::default())
            })
            .collect();
        concat(parts, UnionArgs::default())
            .expect("concat")
            .collect()
            .expect("polars")
    }

    #[test]
    fn finding_accounts_are_the_polars_group_by() {
        let n = 2000;
        // ids whose byte order is not their case-blind or numeric order
        let ids: Vec<String> = (0..n)
            .map(|i| match i % 3 {
                0 => format!("a{}", (i * 7919) % n),
                1 => format!("B{}", (i * 7919) % n),
                _ => format!("{}", (i * 7919) % n),
            })
            .collect();
        let industry: Vec<Option<&str>> = (0..n)
            .map(|i| match i % 5 {
                0 => None,
                1 | 2 => Some("Retail"),
                _ => Some("Software"),
            })
            .collect();
        let employees: Vec<Option<f64>> = (0..n)
            .map(|i| (i % 13 != 0).then(|| ((i * 37) % 900) as f64))
            .collect();
        let accounts = df![
            "account_id" => ids.clone(),
            "industry" => industry,
            "employees" => employees,
        ]
        .expect("accounts");
        let (spec, codes) = banded(&accounts);
        // one to three deals for two accounts in three; outcomes and labels
        // mixed, some labels blank
        let mut acc = Vec::new();
        for i in (0..n).filter(|i| i % 3 != 2) {
            for _ in 0..=(i % 4).min(2) {
                acc.push(i);
            }
        }
        let m = acc.len();
        let outcome: Vec<&str> = (0..m)
            .map(|k| ["won", "lost", "churned", "lost"][k % 4])
            .collect();
        let label: Vec<Option<bool>> = (0..m)
            .map(|k| (k % 11 != 0).then_some(k % 4 == 0 && k % 3 != 0))
            .collect();
        let labels = df![
            "opportunity_id" => (0..m).map(|k| format!("O{k}")).collect::<Vec<_>>(),
            "account_id" => acc.iter().map(|&i| ids[i].clone()).collect::<Vec<_>>(),
            "outcome" => outcome,
            "cycle_days" => vec![30.0; m],
            "amount" => vec![1000.0; m],
            "label" => label,
            "holdout" => (0..m).map(|k| k % 5 == 0).collect::<Vec<_>>(),
            crate::stages::label::LOSS_REASON => vec![None::<&str>; m],
        ]
        .expect("labels");
        let id_text = crate::util::ids::text(&accounts, "account_id").expect("ids");
        let index = crate::util::ids::AccountIndex::new(&id_text);
        let deals = deal_frame(&labels, &codes, &index).expect("deals");
        let rows = super::super::rows::deal_rows(&deals, n, spec.variables.len()).expect("rows");
        let (ind, emp, retail) = industry_and_employees(&spec);
        let findings = [
            named_finding("S01", vec![retail.clone()]),
            named_finding("S02", vec![Cell::Bin { var: emp, bin: 1 }]),
            named_finding("X01", vec![retail, Cell::Bin { var: emp, bin: 3 }]),
            // matches no deal
            named_finding(
                "X02",
                vec![Cell::Level {
                    var: ind,
                    level: "Nowhere".into(),
                }],
            ),
            // no cells: every deal
            named_finding("X03", vec![]),
        ];
        let behind: Vec<&Finding> = findings.iter().collect();
        let got = finding_accounts(&deals, &rows, &behind).expect("finding accounts");
        let want = finding_accounts_by_polars(&deals, &behind);
        assert!(got.equals_missing(&want), "{got}\n{want}");
        assert!(got.height() > 1000, "{}", got.height());
        let churned: u64 = got
            .column("churned_deals")
            .expect("churned")
            .u32()
            .expect("u32")
            .iter()
            .flatten()
            .map(u64::from)
            .sum();
        assert!(churned > 0);
        // no findings: an empty table of the same columns
        let none = finding_accounts(&deals, &rows, &[]).expect("empty");
        assert_eq!(none.height(), 0);
        assert_eq!(none.get_column_names(), want.get_column_names());
    }

    /// The polars group-by the tallies replaced: what they must equal, to
    /// the bit.
    fn by_polars(
        deals: &DataFrame,
        customers: &DataFrame,
        keys: &[String],
    ) -> BTreeMap<Vec<String>, Group> {
        let not_null = keys
            .iter()
            .fold(lit(true), |e, k| e.and(col(k.as_str()).is_not_null()));
        let by: Vec<Expr> = keys.iter().map(|k| col(k.as_str())).collect();
        let agg = |df: &DataFrame, aggs: Vec<Expr>| {
            df.clone()
                .lazy()
                .filter(not_null.clone())
                .group_by(by.clone())
                .agg(aggs)
                .collect()
                .expect("group-by")
        };
        let key_of = |df: &DataFrame, i: usize| -> Vec<String> {
            keys.iter()
                .map(|k| {
                    crate::util::frame::str_col(df, k).expect("keys")[i]
                        .clone()
                        .unwrap_or_default()
                })
                .collect()
        };
        let d = agg(deals, deal_aggs());
        let f = |df: &DataFrame, c: &str, i: usize| f64_col(df, c).expect("col")[i];
        let mut out = BTreeMap::new();
        for i in 0..d.height() {
            let g = Group {
                tally: Tally {
                    deals: f(&d, "deals", i).unwrap_or(0.0),
                    vwins: f(&d, "vwins", i).unwrap_or(0.0),
                    won: f(&d, "won", i).unwrap_or(0.0),
                    churned: f(&d, "churned", i).unwrap_or(0.0),
                    amount_sum: f(&d, "amount_sum", i).unwrap_or(0.0),
                    amount_n: f(&d, "amount_n", i).unwrap_or(0.0),
                    ..Default::default()
                },
                accounts: f(&d, "accounts", i).unwrap_or(0.0) as usize,
                median_cycle: f(&d, "cycle_med", i),
            };
            out.insert(key_of(&d, i), g);
        }
        let c = agg(customers, customer_aggs());
        for i in 0..c.height() {
            if let Some(g) = out.get_mut(&key_of(&c, i)) {
                let v = |n: &str| f(&c, n, i).unwrap_or(0.0);
                g.tally.fit = (v("fit_n"), v("fit_s"), v("fit_q"));
                g.tally.margin = (v("margin_n"), v("margin_s"), v("margin_q"));
            }
        }
        out
    }

    /// The group sums where polars does not simply add: one-row groups
    /// (the value itself: -0.0 stays -0.0, a null is 0), nulls among
    /// several rows, and cancellation that Kahan's error term carries.
    #[test]
    fn group_sums_are_polars_group_by_sums() {
        let groups: Vec<Vec<Option<f64>>> = vec![
            vec![Some(-0.0)],
            vec![None],
            vec![Some(-0.0), Some(-0.0)],
            vec![None, Some(-0.0)],
            vec![Some(1e16), Some(1.0), Some(-1e16), Some(0.1)],
            vec![Some(0.1); 10],
            vec![Some(f64::MAX), Some(f64::MAX), Some(-1.0)],
        ];
        let (mut key, mut value) = (Vec::new(), Vec::new());
        for (g, vs) in groups.iter().enumerate() {
            for v in vs {
                key.push(g as u32);
                value.push(*v);
            }
        }
        let df = df!["g" => key, "v" => value].expect("frame");
        let sums = df
            .lazy()
            .group_by([col("g")])
            .agg([col("v").sum()])
            .sort(["g"], SortMultipleOptions::default())
            .collect()
            .expect("group-by");
        let want = f64_col(&sums, "v").expect("sums");
        for (g, vs) in groups.iter().enumerate() {
            let mut k = Kahan::default();
            vs.iter().for_each(|v| k.add(*v));
            let w = want[g].expect("a sum");
            assert_eq!(
                k.total().to_bits(),
                w.to_bits(),
                "group {g}: {} vs {w}",
                k.total()
            );
        }
    }

    #[test]
    fn tallies_are_the_polars_group_by_to_the_bit() {
        let n = 3000;
        let industry: Vec<Option<&str>> = (0..n)
            .map(|i| match i % 9 {
                0 => None,
                1..=3 => Some("Software"),
                4 | 5 => Some("Retail"),
                6 if i % 300 == 6 => Some("Rare"),
                _ => Some("Logistics"),
            })
            .collect();
        let employees: Vec<Option<f64>> = (0..n)
            .map(|i| (i % 17 != 0).then(|| ((i * 37) % 900) as f64))
            .collect();
        let ids: Vec<String> = (0..n).map(|i| format!("A{i:05}")).collect();
        let accounts = df![
            "account_id" => ids.clone(),
            "industry" => industry,
            "employees" => employees,
        ]
        .expect("accounts");
        let (spec, codes) = banded(&accounts);
        // deals: several per account, out of account order; amounts in
        // cents (where the order of a float sum shows), some missing
        let m = 7000;
        let mut s: u64 = 11;
        let mut next = || {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (s >> 33) as usize
        };
        let acc: Vec<String> = (0..m).map(|_| ids[next() % n].clone()).collect();
        let outcome: Vec<&str> = (0..m)
            .map(|_| ["won", "lost", "lost", "churned"][next() % 4])
            .collect();
        let cycle: Vec<i64> = (0..m).map(|_| (next() % 200) as i64).collect();
        let amount: Vec<Option<f64>> = (0..m)
            .map(|_| (next() % 10 != 0).then(|| (next() % 2_000_000) as f64 / 100.0 + 0.01))
            .collect();
        let label: Vec<bool> = (0..m).map(|_| next() % 3 == 0).collect();
        let labels = df![
            "opportunity_id" => (0..m).map(|i| format!("O{i:05}")).collect::<Vec<_>>(),
            "account_id" => acc,
            "outcome" => outcome,
            "cycle_days" => cycle,
            "amount" => amount,
            "label" => label,
            "holdout" => (0..m).map(|i| i % 5 == 0).collect::<Vec<_>>(),
            crate::stages::label::LOSS_REASON => vec![None::<&str>; m],
        ]
        .expect("labels");
        let fit: Vec<Option<f64>> = (0..n)
            .map(|i| (i % 5 != 0).then(|| (1 + i % 5) as f64))
            .collect();
        let margin: Vec<Option<f64>> = (0..n)
            .map(|i| (i % 7 != 0).then(|| 0.3 + (i % 41) as f64 / 97.0))
            .collect();
        let customers = df![
            "account_id" => ids,
            "delivery_fit" => fit,
            "gross_margin" => margin,
        ]
        .expect("customers");
        let account_ids = crate::util::ids::text(&accounts, "account_id").expect("ids");
        let index = crate::util::ids::AccountIndex::new(&account_ids);
        let deals = deal_frame(&labels, &codes, &index).expect("deals");
        let cust = customer_frame(&labels, &customers, &codes, &index).expect("customers");
        let counts = Counts::new(&spec, &deals, Some(&cust)).expect("counts");
        let nv = spec.variables.len();
        assert_eq!(nv, 2, "industry and employees");
        for vars in [vec![0], vec![1], vec![0, 1]] {
            let keys: Vec<String> = vars.iter().map(|&v| code_col(v)).collect();
            let want = by_polars(&deals, &cust, &keys);
            let got = counts.groups(&vars);
            // the tallies hold cells only: polars' groups of values that
            // are no cell (a rare level) are left out
            let want: BTreeMap<_, _> = want
                .into_iter()
                .filter(|(k, _)| {
                    k.iter()
                        .zip(&vars)
                        .all(|(code, &v)| cell_of(&spec, v, code).is_some())
                })
                .collect();
            assert!(!want.is_empty());
            assert_eq!(
                got.keys().collect::<Vec<_>>(),
                want.keys().collect::<Vec<_>>()
            );
            for (k, w) in &want {
                let g = &got[k];
                assert_eq!(g.accounts, w.accounts, "{k:?}");
                assert_eq!(g.median_cycle, w.median_cycle, "{k:?}");
                let (a, b) = (g.tally, w.tally);
                for (x, y) in [
                    (a.deals, b.deals),
                    (a.vwins, b.vwins),
                    (a.won, b.won),
                    (a.churned, b.churned),
                    (a.amount_sum, b.amount_sum),
                    (a.amount_n, b.amount_n),
                    (a.fit.0, b.fit.0),
                    (a.fit.1, b.fit.1),
                    (a.fit.2, b.fit.2),
                    (a.margin.0, b.margin.0),
                    (a.margin.1, b.margin.1),
                    (a.margin.2, b.margin.2),
                ] {
                    assert_eq!(x.to_bits(), y.to_bits(), "{k:?}: {x} vs {y}");
                }
            }
        }
    }
}
