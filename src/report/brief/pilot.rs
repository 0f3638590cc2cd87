//! The brief at pilot size: too few deals to train a model or claim a
//! criterion, yet a leader still gets something to read. Best customers
//! beside poor-fit customers and recent lost deals, side by side on every
//! account column, with what each comparison suggests and how much more
//! evidence would make it a criterion. Nothing is proposed or published.

use polars::prelude::*;
use serde::Serialize;

use super::doc::{self, Block};
use crate::domain::Outcome;
use crate::error::Result;
use crate::io::load::Dataset;
use crate::util::frame::{f64_col, str_col};
use crate::util::{money, thousands as n};

/// At most this many accounts in each customer group (the seed workflow's
/// "ten best customers, ten poor-fit customers").
pub const GROUP_SIZE: usize = 10;
/// and this many of the most recent lost deals
pub const RECENT_LOST: usize = 20;

/// What would turn a lead into a criterion, said beside each lead.
const MORE_EVIDENCE: &str = "a criterion needs a segment of [signals] min_accounts (20 by default) accounts with closed deals and a test that survives the correction";

#[derive(Debug, Clone, Serialize)]
pub struct PilotAccount {
    pub account_id: String,
    pub name: String,
    pub won_revenue: f64,
    pub why: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub column: String,
    pub best: String,
    pub poor_fit: String,
    pub recent_lost: String,
    pub suggests: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Pilot {
    pub reason: String,
    pub won_deals: usize,
    pub lost_deals: usize,
    pub best: Vec<PilotAccount>,
    pub poor_fit: Vec<PilotAccount>,
    pub recent_lost: Vec<PilotAccount>,
    pub comparisons: Vec<Comparison>,
}

#[derive(Default, Clone)]
struct Acc {
    won: bool,
    churned: bool,
    revenue: f64,
    /// longest cycle of its won deals
    cycle: Option<i64>,
    fit: Option<f64>,
    /// newest lost close date (days since 1970)
    lost_on: Option<i32>,
}

fn day(df: &DataFrame, c: &str) -> Result<Vec<Option<i32>>> {
    Ok(df
        .column(c)?
        .as_materialized_series()
        .cast(&DataType::Date)?
        .cast(&DataType::Int32)?
        .i32()?
        .iter()
        .collect())
}

/// Compare best customers, poor-fit customers and recent lost deals.
pub fn compare(data: &Dataset, reason: &str) -> Result<Pilot> {
    let acc = &data.accounts.df;
    let ids = str_col(acc, "account_id")?;
    let names = if acc
        .get_column_names()
        .iter()
        .any(|c| c.as_str() == "account_name")
    {
        str_col(acc, "account_name")?
    } else {
        vec![None; ids.len()]
    };
    let pos: std::collections::HashMap<&str, usize> = ids
        .iter()
        .enumerate()
        .filter_map(|(i, a)| a.as_deref().map(|a| (a, i)))
        .collect();
    let mut per = vec![Acc::default(); ids.len()];
    let (won_deals, lost_deals, mut cycles) = read_deals(data, &pos, &mut per)?;
    read_customers(data, &pos, &mut per)?;
    cycles.sort_unstable();
    let median_cycle = cycles.get(cycles.len() / 2).copied();
    let account = |r: usize, why: String| PilotAccount {
        account_id: ids[r].clone().unwrap_or_default(),
        name: names[r]
            .clone()
            .unwrap_or_else(|| ids[r].clone().unwrap_or_default()),
        won_revenue: per[r].revenue,
        why,
    };
    let (best_rows, poor_rows, lost_rows) = groups(&per, median_cycle);
    let best: Vec<PilotAccount> = best_rows
        .iter()
        .map(|&r| account(r, "won fast, retained".into()))
        .collect();
    let poor_fit: Vec<PilotAccount> = poor_rows
        .iter()
        .map(|&r| account(r, why_poor(&per[r], median_cycle)))
        .collect();
    let recent_lost: Vec<PilotAccount> = lost_rows
        .iter()
        .map(|&r| {
            let d = per[r]
                .lost_on
                .and_then(|d| chrono::NaiveDate::from_num_days_from_ce_opt(d + 719_163))
                .map(|d| format!("lost {d}"))
                .unwrap_or_default();
            account(r, d)
        })
        .collect();
    let comparisons = side_by_side(acc, &best_rows, &poor_rows, &lost_rows)?;
    Ok(Pilot {
        reason: reason.to_string(),
        won_deals,
        lost_deals,
        best,
        poor_fit,
        recent_lost,
        comparisons,
    })
}

/// Won and lost deals onto their accounts: revenue, cycles, newest loss.
/// Returns the won and lost deal counts and every won deal's cycle.
fn read_deals(
    data: &Dataset,
    pos: &std::collections::HashMap<&str, usize>,
    per: &mut [Acc],
) -> Result<(usize, usize, Vec<i64>)> {
    let (mut won_deals, mut lost_deals) = (0, 0);
    let mut cycles: Vec<i64> = Vec::new();
    if let Some(o) = &data.opportunities {
        let o = &o.df;
        let (a, out, amt) = (
            str_col(o, "account_id")?,
            str_col(o, "outcome")?,
            f64_col(o, "amount")?,
        );
        let (created, closed) = (day(o, "created_date")?, day(o, "closed_date")?);
        for i in 0..a.len() {
            let Some(&r) = a[i].as_deref().and_then(|x| pos.get(x)) else {
                continue;
            };
            let p = &mut per[r];
            let outcome = out[i].as_deref().and_then(Outcome::canonical);
            match outcome {
                Some(Outcome::Won | Outcome::Churned) => {
                    won_deals += 1;
                    p.won = true;
                    p.churned |= outcome == Some(Outcome::Churned);
                    p.revenue += amt[i].unwrap_or(0.0);
                    if let (Some(c), Some(d)) = (created[i], closed[i]) {
                        let cy = (d - c) as i64;
                        cycles.push(cy);
                        p.cycle = Some(p.cycle.map_or(cy, |x| x.max(cy)));
                    }
                }
                Some(Outcome::Lost) => {
                    lost_deals += 1;
                    p.lost_on = p.lost_on.max(closed[i]);
                }
                _ => {}
            }
        }
    }
    Ok((won_deals, lost_deals, cycles))
}

/// Customer records onto their accounts: churn status and delivery fit.
fn read_customers(
    data: &Dataset,
    pos: &std::collections::HashMap<&str, usize>,
    per: &mut [Acc],
) -> Result<()> {
    if let Some(c) = &data.customers {
        let c = &c.df;
        let a = str_col(c, "account_id")?;
        let st = str_col(c, "status")?;
        let fit = if c
            .get_column_names()
            .iter()
            .any(|x| x.as_str() == "delivery_fit")
        {
            f64_col(c, "delivery_fit")?
        } else {
            vec![None; a.len()]
        };
        for i in 0..a.len() {
            let Some(&r) = a[i].as_deref().and_then(|x| pos.get(x)) else {
                continue;
            };
            per[r].churned |= st[i]
                .as_deref()
                .is_some_and(|s| s.eq_ignore_ascii_case("churned"));
            if fit[i].is_some() {
                per[r].fit = fit[i];
            }
        }
    }
    Ok(())
}

/// The three groups as account rows: best and poor-fit customers by won
/// revenue, and the accounts of the most recent losses.
fn groups(per: &[Acc], median_cycle: Option<i64>) -> (Vec<usize>, Vec<usize>, Vec<usize>) {
    let by_revenue = |mut v: Vec<usize>| {
        v.sort_by(|a, b| per[*b].revenue.total_cmp(&per[*a].revenue).then(a.cmp(b)));
        v.truncate(GROUP_SIZE);
        v
    };
    let fast = |p: &Acc| match (p.cycle, median_cycle) {
        (Some(c), Some(m)) => c <= m,
        _ => true,
    };
    let best_rows = by_revenue(
        (0..per.len())
            .filter(|&r| {
                let p = &per[r];
                p.won && !p.churned && fast(p) && p.fit.is_none_or(|f| f >= 4.0)
            })
            .collect(),
    );
    let poor_rows = by_revenue(
        (0..per.len())
            .filter(|&r| {
                let p = &per[r];
                p.won
                    && (p.churned
                        || p.fit.is_some_and(|f| f <= 2.0)
                        || matches!((p.cycle, median_cycle), (Some(c), Some(m)) if c > 2 * m))
            })
            .collect(),
    );
    let mut lost_rows: Vec<usize> = (0..per.len())
        .filter(|&r| per[r].lost_on.is_some())
        .collect();
    lost_rows.sort_by(|a, b| per[*b].lost_on.cmp(&per[*a].lost_on).then(a.cmp(b)));
    lost_rows.truncate(RECENT_LOST);
    (best_rows, poor_rows, lost_rows)
}

/// Why a poor-fit customer is one, in words.
fn why_poor(p: &Acc, median_cycle: Option<i64>) -> String {
    let mut w = Vec::new();
    if p.churned {
        w.push("churned".to_string());
    }
    if p.fit.is_some_and(|f| f <= 2.0) {
        w.push("poor delivery fit".into());
    }
    if let (Some(c), Some(m)) = (p.cycle, median_cycle)
        && c > 2 * m
    {
        w.push(format!("took {c} days to close"));
    }
    w.join(", ")
}

/// One comparison per account column, identifiers and internal columns aside.
fn side_by_side(
    acc: &DataFrame,
    best_rows: &[usize],
    poor_rows: &[usize],
    lost_rows: &[usize],
) -> Result<Vec<Comparison>> {
    // every account column, side by side
    let mut comparisons = Vec::new();
    for c in acc.columns() {
        let name = c.name().as_str();
        if name.starts_with("__") || crate::stages::features::IDENTIFIERS.contains(&name) {
            continue;
        }
        let s = c.as_materialized_series();
        comparisons.push(if s.dtype().is_primitive_numeric() {
            let v = f64_col(acc, name)?;
            numeric_row(name, &v, best_rows, poor_rows, lost_rows)
        } else {
            let v = str_col(acc, name)?;
            category_row(name, &v, best_rows, poor_rows, lost_rows)
        });
    }
    Ok(comparisons)
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    crate::util::median(&mut v)
}

/// A median as read: dollars for money columns, whole numbers otherwise.
fn number(name: &str, x: f64) -> String {
    let l = name.to_lowercase();
    if l.contains("revenue") || l.contains("amount") || l.contains("arr") {
        money(x)
    } else if x.abs() >= 10_000.0 && !l.contains("year") {
        n(x.round() as usize)
    } else {
        crate::util::opt_num(Some(x), 0)
    }
}

fn numeric_row(name: &str, v: &[Option<f64>], b: &[usize], p: &[usize], l: &[usize]) -> Comparison {
    let of = |rows: &[usize]| median(rows.iter().filter_map(|&r| v[r]).collect());
    let show = |m: Option<f64>, rows: &[usize]| match m {
        Some(m) => format!(
            "median {} ({} known)",
            number(name, m),
            rows.iter().filter(|&&r| v[r].is_some()).count()
        ),
        None => "unknown".into(),
    };
    let (mb, mp, ml) = (of(b), of(p), of(l));
    let others: Vec<usize> = p.iter().chain(l).copied().collect();
    let mo = of(&others);
    let suggests = match (mb, mo) {
        (Some(x), Some(y)) if y > 0.0 && x >= 1.5 * y => format!(
            "a lead: best customers run larger (median {} against {}); {}",
            number(name, x),
            number(name, y),
            MORE_EVIDENCE
        ),
        (Some(x), Some(y)) if x > 0.0 && y >= 1.5 * x => format!(
            "a lead: best customers run smaller (median {} against {}); {}",
            number(name, x),
            number(name, y),
            MORE_EVIDENCE
        ),
        (Some(_), Some(_)) => "no difference worth following yet".into(),
        _ => "too few known values to compare".into(),
    };
    Comparison {
        column: name.to_string(),
        best: show(mb, b),
        poor_fit: show(mp, p),
        recent_lost: show(ml, l),
        suggests,
    }
}

fn category_row(
    name: &str,
    v: &[Option<String>],
    b: &[usize],
    p: &[usize],
    l: &[usize],
) -> Comparison {
    let top = |rows: &[usize]| -> Option<(String, usize)> {
        let mut m: std::collections::BTreeMap<&str, usize> = Default::default();
        for &r in rows {
            if let Some(x) = v[r].as_deref().filter(|x| !x.trim().is_empty()) {
                *m.entry(x).or_default() += 1;
            }
        }
        m.into_iter()
            .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(a.0)))
            .map(|(k, c)| (k.to_string(), c))
    };
    let count = |rows: &[usize], val: &str| {
        rows.iter()
            .filter(|&&r| v[r].as_deref() == Some(val))
            .count()
    };
    let show = |rows: &[usize]| match top(rows) {
        Some((k, c)) => format!("{k}: {c} of {}", rows.len()),
        None => "unknown".into(),
    };
    let others: Vec<usize> = p.iter().chain(l).copied().collect();
    let lead = |from: &[usize], against: &[usize], who: &str, them: &str| -> Option<String> {
        let (k, c) = top(from)?;
        let o = count(against, &k);
        let share = c as f64 / from.len().max(1) as f64;
        let other = o as f64 / against.len().max(1) as f64;
        (c >= 3 && share >= 2.0 * other).then(|| {
            format!(
                "a lead: {name} = {k} is commoner among {who} ({c} of {}) than among {them} ({o} of {}); {}",
                from.len(),
                against.len(),
                MORE_EVIDENCE
            )
        })
    };
    let suggests = lead(b, &others, "best customers", "poor fits and recent losses")
        .or_else(|| lead(&others, b, "poor fits and recent losses", "best customers"))
        .unwrap_or_else(|| "no difference worth following yet".into());
    Comparison {
        column: name.to_string(),
        best: show(b),
        poor_fit: show(p),
        recent_lost: show(l),
        suggests,
    }
}

/// The pilot brief as Markdown and HTML.
pub fn render(
    p: &Pilot,
    company: &str,
    run_date: chrono::NaiveDate,
    s: &crate::config::SignalParams,
) -> (String, String) {
    let title = format!("{company}: ICP pilot brief");
    let mut d: Vec<Block> = vec![Block::Heading(1, title.clone())];
    d.push(Block::Callout(format!(
        "NOT READY: too little evidence to train a model or claim a criterion ({}). No model was trained or published and no criterion is proposed: do not change targeting from one or two anecdotes. What follows compares best customers with poor fits and recent losses, to decide what to record and watch.",
        p.reason
    )));
    d.push(Block::Para(format!(
        "Run {run_date}. The data holds {} won and {} lost deals. A model needs at least {} won and {} lost deals, with enough of each among the most recent ones to check it on; a criterion needs a segment of at least {} accounts with closed deals whose difference survives the correction for testing many conditions.{}",
        n(p.won_deals),
        n(p.lost_deals),
        n(s.min_won),
        n(s.min_lost),
        n(s.min_accounts),
        if p.won_deals < s.min_won || p.lost_deals < s.min_lost {
            format!(
                " About {} more won and {} more lost deals would get there.",
                n(s.min_won.saturating_sub(p.won_deals)),
                n(s.min_lost.saturating_sub(p.lost_deals))
            )
        } else {
            " The reason above says what is still short.".into()
        }
    )));
    d.push(Block::Heading(
        2,
        "Side by side, on every account column".into(),
    ));
    d.push(Block::Para(format!(
        "Best customers: won fast (within the median sales cycle), retained, delivery fit 4+ where known (up to {GROUP_SIZE}, by won revenue). Poor-fit customers: churned, delivery fit 2 or less, or twice the median cycle (up to {GROUP_SIZE}). Recent lost deals: the accounts of the {RECENT_LOST} latest losses. A lead is a hypothesis to check on the next quarter's deals, not a criterion."
    )));
    d.push(Block::Table {
        head: [
            "column",
            "best customers",
            "poor-fit customers",
            "recent lost deals",
            "what it suggests",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
        rows: p
            .comparisons
            .iter()
            .map(|c| {
                vec![
                    c.column.clone(),
                    c.best.clone(),
                    c.poor_fit.clone(),
                    c.recent_lost.clone(),
                    c.suggests.clone(),
                ]
            })
            .collect(),
    });
    let list = |title: &str, v: &[PilotAccount], d: &mut Vec<Block>| {
        d.push(Block::Heading(2, title.into()));
        if v.is_empty() {
            d.push(Block::Para("None in this data.".into()));
            return;
        }
        d.push(Block::Table {
            head: ["account", "name", "won revenue", "why"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            rows: v
                .iter()
                .map(|a| {
                    vec![
                        a.account_id.clone(),
                        a.name.clone(),
                        money(a.won_revenue),
                        a.why.clone(),
                    ]
                })
                .collect(),
        });
    };
    list("Best customers", &p.best, &mut d);
    list("Poor-fit customers", &p.poor_fit, &mut d);
    list("Recent lost deals", &p.recent_lost, &mut d);
    d.push(Block::Heading(2, "Next".into()));
    d.push(Block::Bullets(vec![
        "Record a specific loss reason on every lost deal (what this buyer lacked, not \"price\" alone) and a delivery fit on every customer.".into(),
        "Re-run icp run when the data holds the won and lost deals above; icp validate says what is still missing.".into(),
    ]));
    (doc::markdown(&d), doc::html(&title, &d))
}
