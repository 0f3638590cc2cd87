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

use super::stats::{two_means, two_proportions};
use super::{SignalParams, f64_col, str_col};
use crate::error::Result;
use crate::features::{Cell, FeatureSpec, Variable};
use crate::metrics::wilson;

/// Name of variable `i`'s cell-code column in the frames of this module.
pub fn code_col(i: usize) -> String {
    format!("__c{i}")
}

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

/// Column of [`account_codes`] holding the account's row number.
pub const ACCOUNT_ROW: &str = "__acc";

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
    /// the refined-ICP criterion this finding is, or supports (set by [`crate::icp`])
    #[serde(default)]
    pub criterion: Option<String>,
    /// up to three verbatim notes from the accounts behind it (loss reasons,
    /// customer notes, interview quotes)
    #[serde(default)]
    pub notes: Vec<String>,
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

pub fn terms_of(spec: &FeatureSpec, cells: &[Cell]) -> Vec<Term> {
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

/// Group the deals (and customers) by `keys` and read the groups back.
fn groups(
    deals: &LazyFrame,
    customers: Option<&LazyFrame>,
    keys: &[String],
) -> Result<BTreeMap<Vec<String>, Group>> {
    let not_null = keys
        .iter()
        .fold(lit(true), |e, k| e.and(col(k.as_str()).is_not_null()));
    let by: Vec<Expr> = keys.iter().map(|k| col(k.as_str())).collect();
    let read_keys = |df: &DataFrame| -> Result<Vec<Vec<String>>> {
        let cols: Vec<Vec<Option<String>>> =
            keys.iter().map(|k| str_col(df, k)).collect::<Result<_>>()?;
        Ok((0..df.height())
            .map(|i| {
                cols.iter()
                    .map(|c| c[i].clone().unwrap_or_default())
                    .collect()
            })
            .collect())
    };
    let agg = |lf: &LazyFrame, aggs: Vec<Expr>| -> Result<DataFrame> {
        let lf = lf.clone().filter(not_null.clone());
        let out = if by.is_empty() {
            lf.select(aggs).collect()?
        } else {
            lf.group_by(by.clone()).agg(aggs).collect()?
        };
        Ok(out)
    };
    let mut out: BTreeMap<Vec<String>, Group> = BTreeMap::new();
    let d = agg(deals, deal_aggs())?;
    let dk = read_keys(&d)?;
    let get = |df: &DataFrame, c: &str| f64_col(df, c);
    let (n, a, vw, w, ch, cm, asum, an) = (
        get(&d, "deals")?,
        get(&d, "accounts")?,
        get(&d, "vwins")?,
        get(&d, "won")?,
        get(&d, "churned")?,
        get(&d, "cycle_med")?,
        get(&d, "amount_sum")?,
        get(&d, "amount_n")?,
    );
    for (i, k) in dk.into_iter().enumerate() {
        let g = out.entry(k).or_default();
        g.tally.deals = n[i].unwrap_or(0.0);
        g.accounts = a[i].unwrap_or(0.0) as usize;
        g.tally.vwins = vw[i].unwrap_or(0.0);
        g.tally.won = w[i].unwrap_or(0.0);
        g.tally.churned = ch[i].unwrap_or(0.0);
        g.median_cycle = cm[i];
        g.tally.amount_sum = asum[i].unwrap_or(0.0);
        g.tally.amount_n = an[i].unwrap_or(0.0);
    }
    if let Some(c) = customers {
        let cdf = agg(c, customer_aggs())?;
        let ck = read_keys(&cdf)?;
        let cols: Vec<Vec<Option<f64>>> = [
            "fit_n", "fit_s", "fit_q", "margin_n", "margin_s", "margin_q",
        ]
        .iter()
        .map(|c| get(&cdf, c))
        .collect::<Result<_>>()?;
        for (i, k) in ck.into_iter().enumerate() {
            // customers without a labelled deal in this group add nothing
            if let Some(g) = out.get_mut(&k) {
                let v = |j: usize| cols[j][i].unwrap_or(0.0);
                g.tally.fit = (v(0), v(1), v(2));
                g.tally.margin = (v(3), v(4), v(5));
            }
        }
    }
    Ok(out)
}

/// Deals with the flags and cell codes the screen groups on.
pub fn deal_frame(labels: &DataFrame, codes: &DataFrame) -> LazyFrame {
    labels
        .clone()
        .lazy()
        .select([
            col("opportunity_id"),
            col("account_id"),
            col("outcome"),
            col("cycle_days"),
            col("amount"),
            col("label"),
            col("loss_reason"),
            col("outcome").neq(lit("lost")).alias("__won"),
            col("outcome").eq(lit("churned")).alias("__churned"),
        ])
        .join(
            codes.clone().lazy(),
            [col("account_id")],
            [col("account_id")],
            JoinArgs::new(JoinType::Left),
        )
}

/// Customers (accounts with a labelled deal) with delivery fit, margin and codes.
pub fn customer_frame(labels: &DataFrame, customers: &DataFrame, codes: &DataFrame) -> LazyFrame {
    let labelled = labels
        .clone()
        .lazy()
        .select([col("account_id")])
        .unique_stable(None, UniqueKeepStrategy::First);
    customers
        .clone()
        .lazy()
        .select([col("account_id"), col("delivery_fit"), col("gross_margin")])
        .join(
            labelled,
            [col("account_id")],
            [col("account_id")],
            JoinArgs::new(JoinType::Semi),
        )
        .join(
            codes.clone().lazy(),
            [col("account_id")],
            [col("account_id")],
            JoinArgs::new(JoinType::Left),
        )
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
    deals: &LazyFrame,
    customers: Option<&LazyFrame>,
    params: &SignalParams,
    period_days: f64,
) -> Result<Screen> {
    let total = groups(deals, customers, &[])?
        .into_values()
        .next()
        .unwrap_or_default();
    let t = total.tally;
    let base_rate = t.rate();
    let nv = spec.variables.len();
    // the group-bys are independent and each leaves a core idle part of
    // the time: run them side by side, read in a fixed order
    use rayon::prelude::*;
    let singles: Vec<BTreeMap<Vec<String>, Group>> = (0..nv)
        .into_par_iter()
        .map(|i| groups(deals, customers, &[code_col(i)]))
        .collect::<Result<_>>()?;
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
            .map(|&(i, j)| groups(deals, customers, &[code_col(i), code_col(j)]))
            .collect::<Result<_>>()?;
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
    let q = super::stats::benjamini_hochberg(&p);
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
            if let (Some(c), Some(bc)) = (c.group.median_cycle, total.median_cycle) {
                if c >= 1.1 * bc {
                    parts.push(format!(
                        "closes slower: median cycle {c:.0} vs {bc:.0} days"
                    ));
                }
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
        if let (Some(cr), Some(bc)) = (g.churn_rate(), base_churn) {
            if sig("churn") && cr >= params.min_lift * bc && bc > 0.0 {
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
        }
        if let (Some(f), Some(bf)) = (Tally::mean(g.fit), base_fit) {
            if sig("fit") && f <= bf - params.min_fit_gap {
                take(
                    format!(
                        "hard to serve: delivery fit {f:.2} of 5 over {} customers vs {bf:.2}",
                        g.fit.0 as usize
                    ),
                    "fit",
                    pq("fit"),
                );
            }
        }
        if let (Some(m), Some(bm)) = (Tally::mean(g.margin), base_margin) {
            if sig("margin") && m <= bm - params.min_margin_gap {
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

/// The expression that selects a finding's accounts from a frame with codes.
pub fn condition_expr(cells: &[Cell]) -> Expr {
    cells.iter().fold(lit(true), |e, c| {
        let (var, code) = match c {
            Cell::Level { var, level } => (*var, level.clone()),
            Cell::Bin { var, bin } => (*var, bin.to_string()),
        };
        e.and(col(code_col(var)).eq(lit(code)).fill_null(lit(false)))
    })
}

/// The accounts behind each finding: one row per (finding, account) with the
/// account's deals, velocity wins and churned deals.
pub fn finding_accounts(deals: &LazyFrame, findings: &[&Finding]) -> Result<DataFrame> {
    let mut parts = Vec::with_capacity(findings.len());
    for f in findings {
        parts.push(
            deals
                .clone()
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
                .sort(["account_id"], SortMultipleOptions::default()),
        );
    }
    if parts.is_empty() {
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
    Ok(concat(parts, UnionArgs::default())?.collect()?)
}

/// Prospects (accounts with no closed deal) that match each exclusion.
pub fn exclusion_matches(
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
