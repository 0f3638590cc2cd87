//! Buying triggers: how much more often an opportunity follows a trigger
//! within the window than it does for accounts that never had one, how often
//! those opportunities are won, and the typical lag.
//!
//! The baseline is matched in time: for each trigger on day d, the share of
//! never-triggered accounts that opened an opportunity in (d, d + window].
//! That keeps seasonality and the growth of the CRM out of the lift.

use polars::prelude::*;
use serde::{Deserialize, Serialize};

use super::stats::{benjamini_hochberg, normal_two_sided, two_proportions};
use super::{f64_col, str_col};
use crate::error::Result;
use crate::metrics::wilson;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TriggerFinding {
    pub trigger: String,
    pub events: usize,
    pub accounts: usize,
    /// events followed by a new opportunity of the same account within the window
    pub followed: usize,
    pub follow_rate: f64,
    pub follow_rate_ci95: (f64, f64),
    /// the same window after the same days, for accounts with no trigger at all
    pub baseline_follow_rate: Option<f64>,
    pub lift: Option<f64>,
    pub follow_p_value: f64,
    pub follow_q_value: f64,
    /// of the opportunities that followed and have closed: won (incl. later churned)
    pub closed: usize,
    pub won: usize,
    pub win_rate: Option<f64>,
    pub win_rate_ci95: Option<(f64, f64)>,
    /// closed opportunities of never-triggered accounts
    pub baseline_win_rate: Option<f64>,
    pub win_p_value: f64,
    pub win_q_value: f64,
    pub median_lag_days: Option<f64>,
    /// enough events to say anything, and the lift survives the FDR correction
    pub supported: bool,
}

/// Summarise every trigger type. `opportunities` holds all deals, open included.
pub fn summarise(
    accounts: &DataFrame,
    opportunities: &DataFrame,
    triggers: &DataFrame,
    window_days: i64,
    min_events: usize,
    fdr: f64,
) -> Result<Vec<TriggerFinding>> {
    let day = |c: &str| col(c).cast(DataType::Int32);
    let events = triggers
        .clone()
        .lazy()
        .select([col("account_id"), col("trigger"), day("date").alias("__d")])
        .with_row_index("__e", None);
    let opps = opportunities.clone().lazy().select([
        col("account_id"),
        col("opportunity_id"),
        day("created_date").alias("__c"),
        col("outcome"),
    ]);
    let first = events
        .clone()
        .join(
            opps.clone(),
            [col("account_id")],
            [col("account_id")],
            JoinArgs::new(JoinType::Inner),
        )
        .with_column((col("__c") - col("__d")).alias("__lag"))
        .filter(
            col("__lag")
                .gt(lit(0))
                .and(col("__lag").lt_eq(lit(window_days as i32))),
        )
        .sort(
            ["__e", "__lag", "opportunity_id"],
            SortMultipleOptions::default(),
        )
        .group_by([col("__e")])
        .agg([
            col("__lag").first().alias("__lag"),
            col("outcome").first().alias("__outcome"),
        ]);
    let per_event = events.clone().join(
        first,
        [col("__e")],
        [col("__e")],
        JoinArgs::new(JoinType::Left),
    );
    let per_type = per_event
        .clone()
        .group_by([col("trigger")])
        .agg([
            len().cast(DataType::Float64).alias("events"),
            col("account_id")
                .n_unique()
                .cast(DataType::Float64)
                .alias("accounts"),
            col("__lag")
                .is_not_null()
                .cast(DataType::Float64)
                .sum()
                .alias("followed"),
            col("__lag").cast(DataType::Float64).median().alias("lag"),
            col("__outcome")
                .is_not_null()
                .and(col("__outcome").neq(lit("open")))
                .cast(DataType::Float64)
                .sum()
                .alias("closed"),
            col("__outcome")
                .eq(lit("won"))
                .or(col("__outcome").eq(lit("churned")))
                .fill_null(lit(false))
                .cast(DataType::Float64)
                .sum()
                .alias("won"),
        ])
        .sort(["trigger"], SortMultipleOptions::default())
        .collect()?;

    // Never-triggered accounts: their opportunity days and closed outcomes.
    let untriggered = accounts.clone().lazy().select([col("account_id")]).join(
        triggers.clone().lazy().select([col("account_id")]),
        [col("account_id")],
        [col("account_id")],
        JoinArgs::new(JoinType::Anti),
    );
    let n_untriggered = untriggered.clone().collect()?.height();
    let u_opps = opps
        .join(
            untriggered,
            [col("account_id")],
            [col("account_id")],
            JoinArgs::new(JoinType::Semi),
        )
        .sort(["account_id", "__c"], SortMultipleOptions::default())
        .collect()?;
    let u_acc = str_col(&u_opps, "account_id")?;
    let u_day = f64_col(&u_opps, "__c")?;
    let u_out = str_col(&u_opps, "outcome")?;
    let closed_u = u_out
        .iter()
        .filter(|o| o.as_deref().is_some_and(|o| o != "open"))
        .count();
    let won_u = u_out
        .iter()
        .filter(|o| matches!(o.as_deref(), Some("won") | Some("churned")))
        .count();

    // Coverage: for each day d, how many never-triggered accounts opened an
    // opportunity in (d, d + window]. Intervals per account are merged first.
    let ev = per_event.select([col("trigger"), col("__d")]).collect()?;
    let ev_trig = str_col(&ev, "trigger")?;
    let ev_day: Vec<i64> = f64_col(&ev, "__d")?
        .into_iter()
        .map(|d| d.unwrap_or(0.0) as i64)
        .collect();
    let (lo, hi) = (
        ev_day.iter().copied().min().unwrap_or(0),
        ev_day.iter().copied().max().unwrap_or(0),
    );
    let span = (hi - lo + 1).max(1) as usize;
    let mut diff = vec![0i64; span + 1];
    let mut i = 0;
    while i < u_acc.len() {
        let mut j = i;
        let mut cur: Option<(i64, i64)> = None;
        while j < u_acc.len() && u_acc[j] == u_acc[i] {
            if let Some(c) = u_day[j] {
                let c = c as i64;
                // d with c - window <= d <= c - 1, clipped to the event days
                let (a, b) = ((c - window_days).max(lo), (c - 1).min(hi));
                if a <= b {
                    cur = match cur {
                        Some((x, y)) if a <= y + 1 => Some((x, y.max(b))),
                        Some((x, y)) => {
                            diff[(x - lo) as usize] += 1;
                            diff[(y - lo + 1) as usize] -= 1;
                            Some((a, b))
                        }
                        None => Some((a, b)),
                    };
                }
            }
            j += 1;
        }
        if let Some((x, y)) = cur {
            diff[(x - lo) as usize] += 1;
            diff[(y - lo + 1) as usize] -= 1;
        }
        i = j;
    }
    let mut cover = Vec::with_capacity(span);
    let mut run = 0i64;
    for d in diff.iter().take(span) {
        run += d;
        cover.push(run as f64);
    }

    let names = str_col(&per_type, "trigger")?;
    let get = |c: &str| f64_col(&per_type, c);
    let (events_n, accounts_n, followed_n, lag, closed_n, won_n) = (
        get("events")?,
        get("accounts")?,
        get("followed")?,
        get("lag")?,
        get("closed")?,
        get("won")?,
    );
    let mut out = Vec::new();
    let mut pvals = Vec::new();
    for (k, name) in names.iter().enumerate() {
        let name = name.clone().unwrap_or_default();
        let n = events_n[k].unwrap_or(0.0) as usize;
        let x = followed_n[k].unwrap_or(0.0) as usize;
        let baseline = if n_untriggered > 0 {
            let days: Vec<f64> = ev_trig
                .iter()
                .zip(&ev_day)
                .filter(|(t, _)| t.as_deref() == Some(name.as_str()))
                .map(|(_, d)| cover[(*d - lo) as usize] / n_untriggered as f64)
                .collect();
            (!days.is_empty()).then(|| days.iter().sum::<f64>() / days.len() as f64)
        } else {
            None
        };
        let rate = if n > 0 { x as f64 / n as f64 } else { f64::NAN };
        let follow_p = match baseline {
            Some(p0) if p0 > 0.0 && p0 < 1.0 && n > 0 => {
                let se = (p0 * (1.0 - p0) / n as f64).sqrt();
                normal_two_sided((rate - p0) / se)
            }
            _ => 1.0,
        };
        let closed = closed_n[k].unwrap_or(0.0) as usize;
        let won = won_n[k].unwrap_or(0.0) as usize;
        let win_p = two_proportions(won as u64, closed as u64, won_u as u64, closed_u as u64);
        pvals.push(follow_p);
        pvals.push(win_p);
        out.push(TriggerFinding {
            trigger: name,
            events: n,
            accounts: accounts_n[k].unwrap_or(0.0) as usize,
            followed: x,
            follow_rate: rate,
            follow_rate_ci95: wilson(x, n),
            baseline_follow_rate: baseline,
            lift: baseline.filter(|b| *b > 0.0).map(|b| rate / b),
            follow_p_value: follow_p,
            follow_q_value: 1.0,
            closed,
            won,
            win_rate: (closed > 0).then(|| won as f64 / closed as f64),
            win_rate_ci95: (closed > 0).then(|| wilson(won, closed)),
            baseline_win_rate: (closed_u > 0).then(|| won_u as f64 / closed_u as f64),
            win_p_value: win_p,
            win_q_value: 1.0,
            median_lag_days: lag[k],
            supported: false,
        });
    }
    let q = benjamini_hochberg(&pvals);
    for (k, t) in out.iter_mut().enumerate() {
        t.follow_q_value = q[2 * k];
        t.win_q_value = q[2 * k + 1];
        t.supported = t.events >= min_events && t.follow_q_value <= fdr;
    }
    out.sort_by(|a, b| {
        b.lift
            .unwrap_or(0.0)
            .total_cmp(&a.lift.unwrap_or(0.0))
            .then(a.trigger.cmp(&b.trigger))
    });
    Ok(out)
}
